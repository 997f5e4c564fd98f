#!/usr/bin/env bash
# At boot (appliance-commit.service, root): decide on a release left on trial, because the update that
# switched to it was cut short (a power cut) or an image was built with --no-restart. Kept if it runs
# healthy (READY, MQTT online, a typed self-test turn, and still the same run --commit-after seconds
# later); otherwise `current` goes back to the previous release, which is restarted and checked.
#
#   commit-release.sh [options]
#
# Exit status: 0 nothing on trial or the release is kept, 1 rolled back (or nothing to go back to), 2 bad
# usage. The outcome (committed, rolled_back) is left in /var/lib/appliance/update/result.json.
#
# Options:
#   --root DIR         prefix every path with DIR                                          [/]
#   --commit-after S   how long the release must run healthy                              [60]
#   --health-timeout S how long to wait for READY and MQTT online                         [120]
#   --no-mqtt          health check without MQTT (devices without a broker)
#   --no-selftest      no typed self-test turn
#   --config FILE      the device config                              [/etc/appliance/appliance.toml]
#   --systemctl CMD    the systemctl to call (a stand-in in tests)                   [$SYSTEMCTL or systemctl]
# shellcheck disable=SC2317  # own_option is called by parse_options, which shellcheck cannot follow
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

COMMIT_AFTER=60 HEALTH_TIMEOUT=120 NO_MQTT=0 SELFTEST=1 CONFIG_ARG=""
own_option() {
  case $1 in
    --commit-after) COMMIT_AFTER=${2:?}; SHIFT=2 ;;
    --health-timeout) HEALTH_TIMEOUT=${2:?}; SHIFT=2 ;;
    --no-mqtt) NO_MQTT=1 ;;
    --no-selftest) SELFTEST=0 ;;
    --config) CONFIG_ARG=${2:?}; SHIFT=2 ;;
    --systemctl) SYSTEMCTL=${2:?}; SHIFT=2 ;;
    *) return 1 ;;
  esac
}
parse_options own_option "$@"
[ -n "$CONFIG_ARG" ] && CONFIG=$CONFIG_ARG

healthy() {
  local options=(--root "$ROOT" --version "$1" --timeout "$HEALTH_TIMEOUT" --settle "$2" --config "$CONFIG"
    --systemctl "$SYSTEMCTL")
  ((NO_MQTT)) && options+=(--no-mqtt)
  "$SCRIPTS_DIR/health-check.sh" "${options[@]}"
}

main() {
  local version previous
  [ -f "$TRIAL_FILE" ] || { log "no release on trial"; exit 0; }
  take_lock || { log "an install or rollback is running: it decides"; exit 0; }
  version="$(trial_field version)" previous="$(trial_field previous)"
  mkdir -p "$UPDATE_DIR"
  if [ "$version" = "$(link_version "$CURRENT")" ] && healthy "$version" 0 \
    && { ((!SELFTEST)) || self_test "$RELEASES/$version"; } && healthy "$version" "$COMMIT_AFTER"; then
    rm -f "$TRIAL_FILE"
    write_result "$UPDATE_DIR/result.json" committed "$version" "$version" "" "$version ran healthy: kept"
    log "$version ran healthy: kept"
    exit 0
  fi
  # boot-check.sh may have gone back already (the release could not start at all).
  if [ ! -f "$TRIAL_FILE" ] || [ "$version" != "$(link_version "$CURRENT")" ]; then
    log "$version is no longer on trial"
    exit 1
  fi
  if ! trial_rollback; then
    log "$version is not healthy and there is no release to go back to"
    exit 1
  fi
  "$SYSTEMCTL" restart "$UNIT" || log "systemctl restart $UNIT failed"
  healthy "$previous" 5 || log "$previous is not healthy after going back either"
  write_result "$UPDATE_DIR/result.json" rolled_back "$version" "$previous" commit \
    "$version did not run healthy after the boot; back on $previous"
  log "$version did not run healthy: back on $previous"
  exit 1
}

main
