#!/usr/bin/env bash
# Give an operator (the appliance CLI, scripts, dashboards) a broker account that may read and write
# everything under the topic prefix and Home Assistant's discovery topics (acl/operator.acl). With
# --home-assistant the account is Home Assistant's own instead (acl/home-assistant.acl): it reads the
# devices' status, state, telemetry and events, sends commands to one device at a time, and owns
# homeassistant/#; it may not command a group or the fleet nor write desired state. Run again for the
# same name: the password and the block are replaced.
#
#   add-operator.sh [options] NAME
#
# The generated password is printed on stdout, once. Exit status: 0 done, 1 failed, 2 bad usage.
#
# Options:
#   --home-assistant   the account is Home Assistant's (least privilege for its MQTT integration)
#   --password PASS    its password; '-' reads one line from stdin          [generated, printed]
#   --prefix PREFIX    the fleet's [mqtt] topic_prefix                               [appliance]
#   --dir DIR          where the passwd and acl files are               [/etc/mosquitto/appliance]
#   --remove           take the account and its ACL block out instead
#   --reload           make the running broker read the files again (SIGHUP): `systemctl reload
#                      mosquitto` under systemd, else the pid in /run/mosquitto/mosquitto.pid
#   --pid-file FILE    reload the broker whose pid is in FILE
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KIND=operator
NAME_WHAT="account name"

own_option() {
  case $1 in
    --home-assistant) KIND=home-assistant ;;
    *) return 1 ;;
  esac
}
parse_options own_option "$@"

apply_account "$KIND" "$KIND.acl"
