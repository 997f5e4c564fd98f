#!/usr/bin/env bash
# Ask for a signed release to be installed, from inside the unprivileged, sandboxed appliance service.
#
#   request-update.sh --release FILE --sha256 HEX --result-file FILE [--allow-downgrade] [options]
#
# The MQTT `update` command runs this on a device, after it fetched the release into the update folder
# (/var/lib/appliance/update/) and verified it. It drops a request there, where appliance-update.path
# starts appliance-update.service (root), which verifies the release again (it does not trust this
# side), runs install-release.sh on it and writes the outcome next to it; this script waits for that
# outcome and copies it to --result-file. Installing restarts the appliance, and this script with it:
# then the new release (or, after a rollback, the old one) reports itself online on MQTT, and the
# outcome stays in the state directory.
# Exit status: 0 installed, 1 failed, refused, rolled back, busy or no outcome in time, 2 bad usage.
#
# Options:
#   --root DIR         prefix every path with DIR                                          [/]
#   --allow-downgrade  the release may be older than the running one
#   --timeout S        how long to wait for the outcome                                   [1800]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SOURCE="" SHA256="" ALLOW_DOWNGRADE=0 RESULT_FILE="" TIMEOUT=1800
own_option() {
  case $1 in
    --release) SOURCE=${2:?}; SHIFT=2 ;;
    --sha256) SHA256=${2:?}; SHIFT=2 ;;
    --allow-downgrade) ALLOW_DOWNGRADE=1 ;;
    --result-file) RESULT_FILE=${2:?}; SHIFT=2 ;;
    --timeout) TIMEOUT=${2:?}; SHIFT=2 ;;
    *) return 1 ;;
  esac
}
parse_options own_option "$@"
if [ -z "$SOURCE" ] || [ -z "$SHA256" ] || [ -z "$RESULT_FILE" ]; then
  usage_error "--release, --sha256 and --result-file are needed (see --help)"
fi
[[ $SHA256 =~ ^[0-9a-f]{64}$ ]] || usage_error "--sha256 takes 64 lowercase hex digits"
[[ $SOURCE != *$'\n'* ]] || usage_error "the release location is one line"
[[ $SOURCE == "$UPDATE_DIR"/* ]] || usage_error "the release must be in $UPDATE_DIR (the root installer reads only there)"

main() {
  local id tmp outcome deadline=$((SECONDS + TIMEOUT))
  id="$(date +%s)-$$-$RANDOM"
  mkdir -p "$UPDATE_DIR"
  if [ -e "$UPDATE_DIR/request" ] || [ -e "$UPDATE_DIR/request.taken" ]; then
    write_result "$RESULT_FILE" busy "" "" "" "another update is requested or running"
    log "another update is requested or running"
    exit 1
  fi
  tmp="$(mktemp "$UPDATE_DIR/.request.XXXXXX")"
  printf 'id=%s\nrelease=%s\nsha256=%s\nallow_downgrade=%s\n' "$id" "$SOURCE" "$SHA256" "$ALLOW_DOWNGRADE" >"$tmp"
  mv -f "$tmp" "$UPDATE_DIR/request"
  log "requested the release $SHA256 (request $id); waiting for appliance-update.service"
  until grep -qF "\"request\": \"$id\"" "$UPDATE_DIR/result.json" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "no outcome for request $id within $TIMEOUT s"
      exit 1
    fi
    sleep 1
  done
  cp "$UPDATE_DIR/result.json" "$RESULT_FILE"
  outcome="$(sed -n 's/.*"outcome": "\([a-z_]*\)".*/\1/p' "$RESULT_FILE")"
  log "outcome: $outcome"
  [ "$outcome" = installed ] || [ "$outcome" = current ]
}

main
