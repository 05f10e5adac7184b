# apt.sh - sourced by scripts/setup.sh and scripts/check-hip.sh.
# apt_ensure LABEL PKG...: installs (apt, with sudo when not root) the packages
# of the list that are not installed yet; nothing when all are.
apt_ensure() {
  local label=$1; shift
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "$label: installing ${missing[*]}"
  local SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
