#!/usr/bin/env bash
# Before every start of appliance.service (ExecStartPre=+, as root): count the starts of a release on
# trial, and after too many go back to the release before it, so a release that cannot start does not
# keep the box down, also when an update was cut short by a power cut.
#
#   boot-check.sh [--max-starts N] [options]
#
# A release is on trial from install-release.sh's switch until it has run healthy (its commit step, or
# commit-release.sh at boot). Each start of the unit while it is on trial is counted (on disk, synced);
# the start after --max-starts goes back: `current` to the previous release, the trial ends, and the
# outcome is left in /var/lib/appliance/update/result.json. systemd's Restart= brings the starts; keep
# --max-starts below the unit's StartLimitBurst. It never fails the start itself: at worst it says why.
#
# Options:
#   --root DIR         prefix every path with DIR                                          [/]
#   --max-starts N     starts allowed before going back                                   [3]
# shellcheck disable=SC2317  # own_option is called by parse_options, which shellcheck cannot follow
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

MAX_STARTS=3
own_option() {
  case $1 in
    --max-starts) MAX_STARTS=${2:?}; SHIFT=2 ;;
    *) return 1 ;;
  esac
}
parse_options own_option "$@"
[[ $MAX_STARTS =~ ^[1-9][0-9]*$ ]] || usage_error "--max-starts takes a positive number"

check() {
  local version previous starts
  [ -f "$TRIAL_FILE" ] || return 0
  version="$(trial_field version)" previous="$(trial_field previous)" starts="$(trial_field starts)"
  if [ "$version" != "$(link_version "$CURRENT")" ]; then
    rm -f "$TRIAL_FILE" # the switch never happened, or someone went back by hand
    log "the trial of $version is over: it is not the current release"
    return 0
  fi
  starts=$((${starts:-0} + 1))
  if ((starts <= MAX_STARTS)); then
    write_trial "$version" "$previous" "$(trial_field before)" "$starts"
    log "start $starts of $MAX_STARTS of $version on trial"
    return 0
  fi
  if ! trial_rollback; then
    rm -f "$TRIAL_FILE"
    log "$version did not start $MAX_STARTS times and there is no release to go back to"
    return 0
  fi
  mkdir -p "$UPDATE_DIR"
  write_result "$UPDATE_DIR/result.json" rolled_back "$version" "$previous" boot \
    "$version did not start healthy in $MAX_STARTS starts; back on $previous"
  log "$version did not start healthy in $MAX_STARTS starts: back on $previous"
}

check || log "the boot check failed; starting the current release as it is"
exit 0
