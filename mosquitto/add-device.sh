#!/usr/bin/env bash
# Give one device its broker account: username = its [mqtt] device_id, a password, and an ACL block that
# lets it publish only its own topics and replies and read only its own, its group's and the fleet's
# commands and desired state (acl/device.acl). Run again for the same id: the password and the block
# are replaced (a new group, a new password), never duplicated.
#
#   add-device.sh [options] DEVICE_ID
#
# The generated password is printed on stdout, once; give it to the device as [mqtt] password (by
# reference: password = "file:/etc/appliance/mqtt-password" or "env:NAME"), with username = DEVICE_ID.
# Exit status: 0 done, 1 failed (mosquitto_passwd, reload), 2 bad usage (a bad id, group or option).
#
# Options:
#   --group NAME       the device's [mqtt] group                                       [default]
#   --password PASS    its password; '-' reads one line from stdin          [generated, printed]
#   --prefix PREFIX    the fleet's [mqtt] topic_prefix                               [appliance]
#   --dir DIR          where the passwd and acl files are               [/etc/mosquitto/appliance]
#   --remove           take the device's account and ACL block out instead
#   --reload           make the running broker read the files again (SIGHUP): `systemctl reload
#                      mosquitto` under systemd, else the pid in /run/mosquitto/mosquitto.pid
#   --pid-file FILE    reload the broker whose pid is in FILE
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

GROUP=default
NAME_WHAT="device id"

own_option() {
  case $1 in
    --group) GROUP=${2:?--group needs a name}; SHIFT=2 ;;
    *) return 1 ;;
  esac
}
parse_options own_option "$@"
check_name "$GROUP" "group"

apply_account device device.acl "$GROUP"
