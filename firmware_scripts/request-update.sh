#!/usr/bin/env bash
# Ask for a release to be installed, from inside the unprivileged, sandboxed appliance service.
#
#   request-update.sh --version VERSION --wheel FILE|URL --result-file FILE [options]
#
# The MQTT `update` command runs this on a device. It drops a request in the state directory, where
# appliance-update.path starts appliance-update.service (root), which runs install-release.sh on it and
# writes the outcome next to it; this script waits for that outcome and copies it to --result-file.
# Installing restarts the appliance, and this script with it: then the new release (or, after a
# rollback, the old one) reports itself online on MQTT, and the outcome stays in the state directory.
# Exit status: 0 installed, 1 failed, rolled back, busy or no outcome in time, 2 bad usage.
#
# Options:
#   --root DIR         prefix every path with DIR                                          [/]
#   --timeout S        how long to wait for the outcome                                   [1800]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

VERSION="" WHEEL="" RESULT_FILE="" TIMEOUT=1800
own_option() {
  case $1 in
    --version) VERSION=${2:?}; SHIFT=2 ;;
    --wheel) WHEEL=${2:?}; SHIFT=2 ;;
    --result-file) RESULT_FILE=${2:?}; SHIFT=2 ;;
    --timeout) TIMEOUT=${2:?}; SHIFT=2 ;;
    *) return 1 ;;
  esac
}
parse_options own_option "$@"
if [ -z "$VERSION" ] || [ -z "$WHEEL" ] || [ -z "$RESULT_FILE" ]; then
  usage_error "--version, --wheel and --result-file are needed (see --help)"
fi
valid_version "$VERSION" || usage_error "not a version: $VERSION"
[[ $WHEEL != *$'\n'* ]] || usage_error "the wheel location is one line"

main() {
  local id tmp outcome deadline=$((SECONDS + TIMEOUT))
  id="$(date +%s)-$$-$RANDOM"
  mkdir -p "$UPDATE_DIR"
  if [ -e "$UPDATE_DIR/request" ] || [ -e "$UPDATE_DIR/request.taken" ]; then
    write_result "$RESULT_FILE" busy "$VERSION" "" "" "another update is requested or running"
    log "another update is requested or running"
    exit 1
  fi
  tmp="$(mktemp "$UPDATE_DIR/.request.XXXXXX")"
  printf 'id=%s\nversion=%s\nwheel=%s\n' "$id" "$VERSION" "$WHEEL" >"$tmp"
  mv -f "$tmp" "$UPDATE_DIR/request"
  log "requested $VERSION (request $id); waiting for appliance-update.service"
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
