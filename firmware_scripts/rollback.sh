#!/usr/bin/env bash
# Go back to the previous release (or any installed one): switch `current`, restart, health check.
#
#   rollback.sh [--to VERSION] [options]
#
# The release rolled back from becomes `previous`, so running it twice goes forward again.
# Exit status: 0 rolled back and healthy, 1 failed (or not healthy afterwards), 2 bad usage.
#
# Options:
#   --root DIR           prefix every path with DIR                                        [/]
#   --to VERSION         the release to go to                                             [the previous link's]
#   --no-restart         only switch the link
#   --health-timeout S   how long to wait for READY and MQTT online                       [120]
#   --settle S           how long the service must stay up                                [5]
#   --no-mqtt            health check without MQTT
#   --config FILE        the device config                            [/etc/appliance/appliance.toml]
#   --systemctl CMD      the systemctl to call (a stand-in in tests)                 [$SYSTEMCTL or systemctl]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

TO="" RESTART=1 HEALTH_TIMEOUT=120 SETTLE=5 NO_MQTT=0 CONFIG_ARG=""
own_option() {
  case $1 in
    --to) TO=${2:?}; SHIFT=2 ;;
    --no-restart) RESTART=0 ;;
    --health-timeout) HEALTH_TIMEOUT=${2:?}; SHIFT=2 ;;
    --settle) SETTLE=${2:?}; SHIFT=2 ;;
    --no-mqtt) NO_MQTT=1 ;;
    --config) CONFIG_ARG=${2:?}; SHIFT=2 ;;
    --systemctl) SYSTEMCTL=${2:?}; SHIFT=2 ;;
    *) return 1 ;;
  esac
}
parse_options own_option "$@"
[ -n "$CONFIG_ARG" ] && CONFIG=$CONFIG_ARG

main() {
  local from to options
  take_lock || { log "another install or rollback is running"; exit 1; }
  from="$(link_version "$CURRENT")"
  to="${TO:-$(link_version "$PREVIOUS")}"
  [ -n "$to" ] || { log "no previous release to go back to"; exit 1; }
  valid_version "$to" || usage_error "not a version: $to"
  [ "$to" != "$from" ] || { log "$to is already the current release"; exit 0; }
  [ -x "$RELEASES/$to/.venv/bin/appliance" ] || { log "release $to is not installed in $RELEASES"; exit 1; }
  set_link "$PREVIOUS" "$from"
  set_link "$CURRENT" "$to"
  rm -f "$TRIAL_FILE" # going back by hand ends a release's trial
  log "current is now $to${from:+ (was $from)}"
  ((RESTART)) || exit 0
  "$SYSTEMCTL" restart "$UNIT" || { log "systemctl restart $UNIT failed"; exit 1; }
  options=(--root "$ROOT" --version "$to" --timeout "$HEALTH_TIMEOUT" --settle "$SETTLE" --config "$CONFIG"
    --systemctl "$SYSTEMCTL")
  ((NO_MQTT)) && options+=(--no-mqtt)
  "$SCRIPTS_DIR/health-check.sh" "${options[@]}" || { log "$to is not healthy after the rollback"; exit 1; }
  log "rolled back to $to"
}

main
