#!/usr/bin/env bash
# Prepare a Debian or Raspberry Pi OS box for the appliance: packages, user, directories, config, ALSA
# defaults, the scripts and the systemd units. Idempotent: run it again after changing any of them.
# Then install a release with install-release.sh.
#
#   provision.sh [options]        (as root)
#
# Options:
#   --root DIR          prefix every path with DIR (tests, building an image)                 [/]
#   --no-packages       do not apt-get install anything
#   --no-user           do not create the `appliance` user or chown its directories
#   --config FILE       install FILE as /etc/appliance/appliance.toml (else a default one, if none)
#   --alsa-card N       default ALSA card for /etc/asound.conf; `auto`: the first card that is not
#                       HDMI; `none`: leave ALSA alone                                        [auto]
#   --no-enable         install the units without enabling them
#   --systemctl CMD     the systemctl to call (a stand-in in tests)                     [$SYSTEMCTL or systemctl]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PACKAGES=(python3 python3-venv libportaudio2 alsa-utils espeak-ng ca-certificates util-linux)
INSTALL_PACKAGES=1 MAKE_USER=1 CONFIG_SOURCE="" ALSA_CARD=auto ENABLE=1
own_option() {
  case $1 in
    --no-packages) INSTALL_PACKAGES=0 ;;
    --no-user) MAKE_USER=0 ;;
    --config) CONFIG_SOURCE=${2:?}; SHIFT=2 ;;
    --alsa-card) ALSA_CARD=${2:?}; SHIFT=2 ;;
    --no-enable) ENABLE=0 ;;
    --systemctl) SYSTEMCTL=${2:?}; SHIFT=2 ;;
    *) return 1 ;;
  esac
}
parse_options own_option "$@"
SOURCE_DIR="$(cd "$SCRIPTS_DIR/.." && pwd)"
[ -f "$SOURCE_DIR/systemd/appliance.service" ] || usage_error "no systemd/ beside $SCRIPTS_DIR: run it from a checkout"

install_packages() {
  local missing=() package
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

make_user() {
  if ! id -u appliance >/dev/null 2>&1; then
    useradd --system --user-group --home-dir /var/lib/appliance --no-create-home --shell /usr/sbin/nologin appliance
    log "created the appliance user"
  fi
  usermod -a -G audio appliance
}

make_directories() {
  install -d -m 0755 "$RELEASES" "$INSTALLED_SCRIPTS" "$UNIT_DIR"
  install -d -m 0755 "$CONF_DIR"
  install -d -m 0750 "$STATE_DIR" "$UPDATE_DIR" "$CACHE_DIR"
  if ((MAKE_USER)); then
    chown appliance:appliance "$STATE_DIR" "$UPDATE_DIR" "$CACHE_DIR"
  fi
}

install_config() {
  if [ -n "$CONFIG_SOURCE" ]; then
    install -m 0644 "$CONFIG_SOURCE" "$CONFIG"
    log "installed $CONFIG_SOURCE as ${CONFIG#"$ROOT"}"
  elif [ ! -f "$CONFIG" ]; then
    cat >"$CONFIG" <<'EOF'
# The appliance's config (written by provision.sh; the keys are in the project README).
# Changes made over MQTT (config.set) are kept in /var/lib/appliance and override this file.

[models]
dir = "/opt/appliance/current/models"   # each release carries its own, checked, models

[state]
dir = "/var/lib/appliance"

[mqtt]
enabled = false
EOF
    chmod 0644 "$CONFIG"
  fi
  if [ ! -f "$ENV_FILE" ]; then
    printf '# Secrets named in the config as env:NAME, one NAME=value a line (root only).\n' >"$ENV_FILE"
  fi
  chmod 0600 "$ENV_FILE"
}

# The first sound card that is not HDMI (a Raspberry Pi's card 0 is), from a /proc/asound/cards listing.
pick_alsa_card() {
  local cards="$ROOT/proc/asound/cards"
  [ -r "$cards" ] || cards=/proc/asound/cards
  [ -r "$cards" ] || return 0
  awk '/^ *[0-9]+ \[/ && tolower($0) !~ /hdmi/ { print $1; exit }' "$cards"
}

configure_alsa() {
  local card=$ALSA_CARD asound="$ROOT/etc/asound.conf"
  [ "$card" != none ] || return 0
  [ "$card" != auto ] || card="$(pick_alsa_card)"
  if [ -z "$card" ]; then
    log "no sound card found that is not HDMI: ALSA defaults left alone"
    return 0
  fi
  [[ $card =~ ^[0-9]+$ ]] || usage_error "--alsa-card takes a card number, auto or none"
  if [ -f "$asound" ] && ! grep -q '^# provision.sh' "$asound"; then
    log "${asound#"$ROOT"} exists and is not ours: left alone"
    return 0
  fi
  mkdir -p "$(dirname "$asound")"
  printf '# provision.sh: the appliance plays and records on this card by default.\ndefaults.pcm.card %s\ndefaults.ctl.card %s\n' \
    "$card" "$card" >"$asound"
  log "ALSA default card: $card"
}

install_units_and_scripts() {
  local file
  for file in "$SOURCE_DIR"/systemd/*.service "$SOURCE_DIR"/systemd/*.path; do
    install -m 0644 "$file" "$UNIT_DIR/"
  done
  for file in "$SCRIPTS_DIR"/*.sh; do
    install -m 0755 "$file" "$INSTALLED_SCRIPTS/"
  done
  install -m 0644 "$SCRIPTS_DIR/README.md" "$INSTALLED_SCRIPTS/"
  "$SYSTEMCTL" daemon-reload
  if ((ENABLE)); then
    "$SYSTEMCTL" enable appliance.service appliance-update.path appliance-commit.service
  fi
}

main() {
  ((INSTALL_PACKAGES)) && install_packages
  ((MAKE_USER)) && make_user
  make_directories
  install_config
  configure_alsa
  install_units_and_scripts
  if [ -n "$(link_version "$CURRENT")" ]; then
    log "provisioned; release $(link_version "$CURRENT") is current"
  else
    log "provisioned; next: ${INSTALLED_SCRIPTS#"$ROOT"}/install-release.sh --version V --wheel appliance-V-py3-none-any.whl"
  fi
}

main
