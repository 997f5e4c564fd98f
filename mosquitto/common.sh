# shellcheck shell=bash disable=SC2034  # the variables are for the scripts that source this
# Shared by add-device.sh and add-operator.sh (sourced, never run): the command line both take, name
# checks, one account's block in the ACL file, its password, and reloading the broker.

PROG="$(basename "$0" .sh)"
SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATES="$SCRIPTS_DIR/acl"
# appliance/config.py MQTT_NAME: one topic level with no wildcard or separator, and an id Home
# Assistant accepts. It is also what keeps a name from widening the ACL lines it is written into.
NAME_PATTERN='^[A-Za-z0-9_-]{1,64}$'
PREFIX_PATTERN='^[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){0,7}$'
# Levels right under the prefix that are not devices: a device by one of these names would read or
# write topics that belong to every device.
RESERVED_NAMES=(all group replies)

DIR=/etc/mosquitto/appliance
PREFIX=appliance
PASSWORD="" REMOVE=0 RELOAD=0 PID_FILE="" NAME=""
NAME_WHAT=name  # what the name is, in messages

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
usage() { awk 'NR > 1 && /^#/ { if ($0 !~ /shellcheck/) { sub(/^# ?/, ""); print }; next } NR > 1 { exit }' "$0"; }
usage_error() { log "$*"; exit 2; }
fail() { log "$*"; exit 1; }

# The command line of both scripts: the options here, anything else by the script's own handler, called
# as `HANDLER "$@"`: it sets what its option means and, when it took the option's value too, SHIFT=2; it
# returns 1 for an option it does not know (bad usage, exit 2). The one operand is the account's name.
parse_options() {
  local handler=$1
  shift
  while (($#)); do
    SHIFT=1
    case $1 in
      --) shift; set_name "$@"; break ;;
      --password) PASSWORD=${2:?--password needs a value}; SHIFT=2 ;;
      --prefix) PREFIX=${2:?--prefix needs a value}; SHIFT=2 ;;
      --dir) DIR=${2:?--dir needs a directory}; SHIFT=2 ;;
      --remove) REMOVE=1 ;;
      --reload) RELOAD=1 ;;
      --pid-file) PID_FILE=${2:?--pid-file needs a file}; SHIFT=2 ;;
      -h | --help) usage; exit 0 ;;
      -*) "$handler" "$@" || usage_error "unknown option $1 (see --help)" ;;
      *) set_name "$1" ;;
    esac
    shift "$SHIFT"
  done
  [ -n "$NAME" ] || usage_error "no $NAME_WHAT given (see --help)"
  check_name "$NAME" "$NAME_WHAT"
  [[ $PREFIX =~ $PREFIX_PATTERN ]] || usage_error "bad topic prefix '$PREFIX': topic levels of letters, digits, '-' and '_'"
  PASSWD="$DIR/passwd"
  ACL="$DIR/acl"
}

set_name() {
  (($# <= 1)) || usage_error "one $NAME_WHAT only, got $(printf '%q ' "$@")"
  [ -z "$NAME" ] || usage_error "one $NAME_WHAT only, got $NAME and $(printf '%q' "${1:-}")"
  NAME=${1:-}
}

check_name() {
  local value=$1 what=$2 reserved
  # printf %q shows a control character or a space as what it is, on one line.
  [[ $value =~ $NAME_PATTERN ]] ||
    usage_error "bad $what $(printf '%q' "$value"): 1-64 letters, digits, '-' and '_' (as [mqtt] device_id and group)"
  # mosquitto_passwd would take it for an option.
  [[ $value != -* ]] || usage_error "bad $what '$value': it may not start with '-'"
  for reserved in "${RESERVED_NAMES[@]}"; do
    [ "$value" != "$reserved" ] || usage_error "bad $what '$value': '$PREFIX/$reserved/' is a topic of the whole fleet"
  done
}

# The files, created on first use: the ACL from its template head, both readable by the broker only
# (Mosquitto reads them after dropping root for its own user).
prepare_files() {
  mkdir -p "$DIR"
  [ -f "$ACL" ] || install -m 0640 "$TEMPLATES/head.acl" "$ACL"
  [ -f "$PASSWD" ] || install -m 0640 /dev/null "$PASSWD"
  if [ "$(id -u)" = 0 ] && getent group mosquitto >/dev/null; then
    chgrp mosquitto "$ACL" "$PASSWD"
  fi
}

# One change at a time: two operators adding devices at once must not lose one of them.
take_lock() {
  exec 9>"$DIR/.lock"
  flock -w 30 9 || fail "another add-device or add-operator holds $DIR/.lock"
}

new_password() {
  # 32 characters from 192 random bits; no character that needs quoting in a TOML or env file.
  head -c 48 /dev/urandom | base64 -w 0 | tr -d '/+=' | cut -c 1-32
}

# Set (or replace) the account's password. mosquitto_passwd reads it twice from stdin, so it never shows
# in the process list; its prompts go to stdout, which is dropped.
check_password() {
  [[ -n $1 && $1 != *$'\n'* ]] || usage_error "bad password: empty, or more than one line"
}

set_password() {
  local password=$1
  printf '%s\n%s\n' "$password" "$password" | mosquitto_passwd "$PASSWD" "$NAME" >/dev/null ||
    fail "mosquitto_passwd could not set the password of $NAME in $PASSWD"
}

remove_password() {
  if grep -q "^$NAME:" "$PASSWD"; then
    mosquitto_passwd -D "$PASSWD" "$NAME" >/dev/null || fail "mosquitto_passwd could not remove $NAME from $PASSWD"
  fi
}

# Rewrite the ACL with the account's block replaced by BLOCK (empty: removed), atomically: the broker
# never reads half a file. A `user NAME` line outside this kind's block (another kind of account, or one
# written by hand) is refused rather than merged, since Mosquitto would add its lines to this account.
replace_block() {
  local kind=$1 block=$2 tmp
  local begin="# >>> $kind $NAME" end="# <<< $kind $NAME"
  tmp="$(mktemp "$DIR/.acl.XXXXXX")"
  awk -v begin="$begin" -v end="$end" '
    $0 == begin { skipping = 1; next }
    skipping && $0 == end { skipping = 0; next }
    !skipping { print }
  ' "$ACL" >"$tmp"
  if grep -qxF "user $NAME" "$tmp"; then
    rm -f "$tmp"
    usage_error "$ACL already has an account $NAME that is not a $kind (or was written by hand): remove it first"
  fi
  if [ -n "$block" ]; then
    printf '%s\n%s\n%s\n' "$begin" "$block" "$end" >>"$tmp"
  fi
  chmod --reference="$ACL" "$tmp"
  chgrp --reference="$ACL" "$tmp" 2>/dev/null || true
  mv -f "$tmp" "$ACL"
}

# A block from its template: comments and blank lines left out, the placeholders filled in. Every value
# was checked against a pattern with no character sed or Mosquitto would read specially.
render() {
  local template=$1 group=${2:-}
  grep -v -e '^#' -e '^[[:space:]]*$' "$TEMPLATES/$template" |
    sed -e "s/@NAME@/$NAME/g" -e "s/@GROUP@/$group/g" -e "s|@PREFIX@|$PREFIX|g"
}

# Ask the running broker to read the password and ACL files again (SIGHUP). Clients stay connected; the
# new ACL applies to their next message.
reload_broker() {
  [ "$RELOAD" = 1 ] || return 0
  local pid
  if [ -z "$PID_FILE" ] && [ -d /run/systemd/system ] && systemctl is-active --quiet mosquitto; then
    systemctl reload mosquitto || fail "systemctl reload mosquitto failed"
    log "reloaded mosquitto"
    return 0
  fi
  local file=${PID_FILE:-/run/mosquitto/mosquitto.pid}
  pid="$(cat "$file" 2>/dev/null)" || fail "cannot reload: no pid file $file (is mosquitto running?)"
  [[ $pid =~ ^[0-9]+$ ]] || fail "cannot reload: $file does not hold a pid"
  kill -HUP "$pid" || fail "cannot reload: no mosquitto with pid $pid"
  log "reloaded mosquitto (pid $pid)"
}

# Add (or replace) one account of KIND from TEMPLATE, or remove it with --remove; then reload if asked.
# The generated password, and only that, goes to stdout.
apply_account() {
  local kind=$1 template=$2 group=${3:-} generated=""
  command -v mosquitto_passwd >/dev/null || fail "mosquitto_passwd is not installed (apt-get install mosquitto)"
  mkdir -p "$DIR"
  take_lock # before the files are created: two first adds at once both found no file, and one failed
  prepare_files
  if [ "$REMOVE" = 1 ]; then
    replace_block "$kind" ""
    remove_password
    log "removed $kind $NAME"
  else
    if [ -z "$PASSWORD" ]; then
      generated="$(new_password)"
      PASSWORD=$generated
    elif [ "$PASSWORD" = - ]; then
      IFS= read -r PASSWORD || [ -n "$PASSWORD" ] || usage_error "no password on stdin"
    fi
    check_password "$PASSWORD"
    replace_block "$kind" "$(render "$template" "$group")"
    set_password "$PASSWORD"
    log "added $kind $NAME${group:+ (group $group)} to $PASSWD and $ACL"
  fi
  reload_broker
  [ -z "$generated" ] || printf '%s\n' "$generated"
}
