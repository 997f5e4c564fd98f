# shellcheck shell=bash disable=SC2034  # the variables are for the scripts that source this
# Shared by the firmware scripts (sourced, never run): the device layout under --root, logging, the
# systemctl to call, release links and the JSON outcome file.

PROG="$(basename "$0" .sh)"
SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SYSTEMCTL="${SYSTEMCTL:-systemctl}"
PYTHON="${PYTHON:-python3}"
UNIT="appliance.service"
VERSION_PATTERN='^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$'

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
usage() { awk 'NR > 1 && /^#/ { if ($0 !~ /shellcheck/) { sub(/^# ?/, ""); print }; next } NR > 1 { exit }' "$0"; }
usage_error() { log "$*"; exit 2; }

# Every path the scripts touch, under ROOT ("" is the real root; tests and image builds pass --root).
set_root() {
  ROOT="${1%/}"
  APP_DIR="$ROOT/opt/appliance"
  RELEASES="$APP_DIR/releases"
  CURRENT="$APP_DIR/current"
  PREVIOUS="$APP_DIR/previous"
  TRIAL_FILE="$APP_DIR/trial"
  INSTALLED_SCRIPTS="$APP_DIR/scripts"
  CONF_DIR="$ROOT/etc/appliance"
  CONFIG="$CONF_DIR/appliance.toml"
  ENV_FILE="$CONF_DIR/appliance.env"
  STATE_DIR="$ROOT/var/lib/appliance"
  UPDATE_DIR="$STATE_DIR/update"
  CACHE_DIR="$ROOT/var/cache/appliance"
  UNIT_DIR="$ROOT/etc/systemd/system"
  LOCK_FILE="$ROOT/run/lock/appliance-update.lock"
}
set_root ""

# The command line, as every script takes it: --root DIR and -h/--help here, anything else by the script's own
# handler, called as `HANDLER "$@"`: it sets what its option means and, when it took the option's value too,
# SHIFT=2; it returns 1 for an option it does not know, which is bad usage (exit 2).
parse_options() {
  local handler=$1
  shift
  while (($#)); do
    SHIFT=1
    case $1 in
      --root) set_root "${2:?--root needs a directory}"; SHIFT=2 ;;
      -h | --help) usage; exit 0 ;;
      *) "$handler" "$@" || usage_error "unknown option $1 (see --help)" ;;
    esac
    shift "$SHIFT"
  done
}

valid_version() { [[ $1 =~ $VERSION_PATTERN ]]; }

# The version a release link (current, previous) points at, or nothing.
link_version() {
  local target
  target="$(readlink "$1" 2>/dev/null)" || return 0
  basename "$target"
}

# Point a release link at releases/VERSION atomically (rename over the old link), or remove it.
set_link() {
  local link=$1 version=$2
  if [ -z "$version" ]; then
    rm -f "$link"
    return 0
  fi
  ln -sfn "releases/$version" "$link.new"
  mv -Tf "$link.new" "$link"
}

# One installer or rollback at a time, across the MQTT update, an operator and the boot.
take_lock() {
  mkdir -p "$(dirname "$LOCK_FILE")"
  exec 9>"$LOCK_FILE"
  flock -n 9
}

# Run an appliance command with the service's secrets (env:NAME references) in its environment.
with_service_env() {
  (
    if [ -f "$ENV_FILE" ]; then
      set -a
      # shellcheck source=/dev/null
      . "$ENV_FILE"
      set +a
    fi
    exec "$@"
  )
}

# Write the outcome as one JSON object, atomically (a reader never sees half a file; a link planted at
# the name is replaced, not followed).
write_result() {
  local file=$1 outcome=$2 version=$3 running=$4 step=$5 message=$6 request=${7:-}
  [ -n "$file" ] || return 0
  local tmp
  tmp="$(mktemp "$(dirname "$file")/.result.XXXXXX")"
  OUTCOME="$outcome" VERSION="$version" RUNNING="$running" STEP="$step" MESSAGE="$message" REQUEST="$request" \
    "$PYTHON" -c '
import json, os, sys, time
env = os.environ
print(json.dumps({
    "request": env["REQUEST"] or None, "outcome": env["OUTCOME"], "version": env["VERSION"],
    "running": env["RUNNING"] or None, "failed_step": env["STEP"] or None, "message": env["MESSAGE"],
    "ts": round(time.time(), 3),
}))' >"$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$file"
}

# A release on trial: switched to, not yet known good (install-release.sh writes it at the switch and
# removes it once the release ran healthy; boot-check.sh counts its starts; commit-release.sh decides at
# boot). Lines: version, previous (to go back to), before (what `previous` was), starts.
write_trial() {
  local tmp
  tmp="$(mktemp "$APP_DIR/.trial.XXXXXX")"
  printf 'version=%s\nprevious=%s\nbefore=%s\nstarts=%s\n' "$1" "$2" "$3" "$4" >"$tmp"
  sync "$tmp" 2>/dev/null || true # counted starts must survive a power cut
  mv -f "$tmp" "$TRIAL_FILE"
}

trial_field() {
  sed -n "s/^$1=//p" "$TRIAL_FILE" 2>/dev/null | head -n 1
}

# Go back from the release on trial to the one before it (links only; the caller restarts or starts).
trial_rollback() {
  local previous before
  previous="$(trial_field previous)" before="$(trial_field before)"
  [ -n "$previous" ] && [ -x "$RELEASES/$previous/.venv/bin/appliance" ] || return 1
  set_link "$CURRENT" "$previous"
  set_link "$PREVIOUS" "$before"
  rm -f "$TRIAL_FILE"
}

# One typed turn through the release's own agent, as `appliance console --text` runs it on the device's
# config: the release can load its models and answer, not just start.
self_test() {
  local release=$1 reply
  reply="$(printf 'Hello, are you there?\n' | APPLIANCE_MODELS__DIR="$release/models" \
    with_service_env timeout 180 "$release/.venv/bin/appliance" console --text --config "$CONFIG" 2>/dev/null)" || return 1
  [[ $reply =~ agent\>\ [^[:space:]] ]]
}
