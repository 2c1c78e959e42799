# Sourced by scripts/bootstrap and scripts/ensure-services: run as root, install Debian packages.
# Every message names the script that printed it, and a failure says what to do in one line.

say() { echo "$(basename "$0"): $*" >&2; }
die() { say "$*"; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    die "need root for: $* (run as root, or install sudo)"
  fi
}

apt_install() {
  command -v apt-get >/dev/null || die "install $* (this is not Debian: no apt-get)"
  say "installing $*"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}
