#!/usr/bin/env bash
# Is the appliance up and healthy? Run after every install and rollback; useful by hand or from a timer.
#
#   health-check.sh [--version VERSION] [options]
#
# Healthy means: appliance.service is active (it is Type=notify, so READY=1 came: models loaded,
# transports started) and is still the same run --settle seconds later; and, when MQTT is on in the
# config, the device's retained status on the broker says online with the expected version (checked
# with the current release's own `appliance fleet ls`, so the config's broker, TLS and password apply).
# Exit status: 0 healthy, 1 not healthy within --timeout, 2 bad usage.
#
# Options:
#   --root DIR         prefix every path with DIR                                          [/]
#   --version V        the version that must be running                                   [the current link's]
#   --timeout S        how long to wait for READY and MQTT online                         [120]
#   --settle S         how long the service must stay up (same invocation)                [5]
#   --no-mqtt          skip the MQTT check (devices without a broker)
#   --config FILE      the device config                              [/etc/appliance/appliance.toml]
#   --systemctl CMD    the systemctl to call (a stand-in in tests)                   [$SYSTEMCTL or systemctl]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

VERSION="" TIMEOUT=120 SETTLE=5 NO_MQTT=0 CONFIG_ARG=""
own_option() {
  case $1 in
    --version) VERSION=${2:?}; SHIFT=2 ;;
    --timeout) TIMEOUT=${2:?}; SHIFT=2 ;;
    --settle) SETTLE=${2:?}; SHIFT=2 ;;
    --no-mqtt) NO_MQTT=1 ;;
    --config) CONFIG_ARG=${2:?}; SHIFT=2 ;;
    --systemctl) SYSTEMCTL=${2:?}; SHIFT=2 ;;
    *) return 1 ;;
  esac
}
parse_options own_option "$@"
[ -n "$CONFIG_ARG" ] && CONFIG=$CONFIG_ARG
[ -n "$VERSION" ] || VERSION="$(link_version "$CURRENT")"
[ -n "$VERSION" ] || usage_error "no --version and no current release"
DEADLINE=$((SECONDS + ${TIMEOUT%.*}))

show() { "$SYSTEMCTL" show -p "$1" --value "$UNIT" 2>/dev/null || true; }

wait_until_active() {
  local state
  while :; do
    state="$(show ActiveState)"
    case $state in
      active) return 0 ;;
      failed)
        log "$UNIT failed ($(show Result)): $(show StatusText)"
        return 1
        ;;
    esac
    if ((SECONDS >= DEADLINE)); then
      log "$UNIT is still ${state:-unknown} after ${TIMEOUT} s: $(show StatusText)"
      return 1
    fi
    sleep 0.5
  done
}

mqtt_online() {
  local app="$CURRENT/.venv/bin/appliance" python="$CURRENT/.venv/bin/python" settings enabled device
  if ! settings="$(with_service_env "$app" config --config "$CONFIG" | "$python" -c 'import json, sys
mqtt = json.load(sys.stdin)["mqtt"]
print("on" if mqtt["enabled"] else "off", mqtt["device_id"])')"; then
    log "cannot read the config with the current release ($app)"
    return 1
  fi
  read -r enabled device <<<"$settings"
  if [ "$enabled" != on ]; then
    log "mqtt is off in the config: not checked"
    return 0
  fi
  while :; do
    if with_service_env "$app" fleet --config "$CONFIG" --timeout 2 --json ls 2>/dev/null \
      | DEVICE="$device" WANT="$VERSION" "$python" -c 'import json, os, sys
for line in sys.stdin:
    status = json.loads(line)
    if status.get("id") == os.environ["DEVICE"] and status.get("state") == "online" \
            and status.get("version") == os.environ["WANT"]:
        sys.exit(0)
sys.exit(1)'; then
      log "$device is online with $VERSION"
      return 0
    fi
    if ((SECONDS >= DEADLINE)); then
      log "$device did not report online with $VERSION on the broker within ${TIMEOUT} s"
      return 1
    fi
    sleep 1
  done
}

main() {
  local invocation
  wait_until_active || exit 1
  invocation="$(show InvocationID)"
  log "$UNIT is active: $(show StatusText)"
  if ((!NO_MQTT)); then
    mqtt_online || exit 1
  fi
  sleep "$SETTLE"
  if [ "$(show ActiveState)" != active ] || [ "$(show InvocationID)" != "$invocation" ]; then
    log "$UNIT did not stay up: it is $(show ActiveState) now, and was restarted or stopped"
    exit 1
  fi
  log "healthy: $VERSION"
}

main
