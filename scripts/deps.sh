# Sourced by scripts/demo and scripts/test. `resil_need_packages PKG...`
# makes sure the Debian packages are installed: as root it installs what is
# missing with apt-get; otherwise it names exactly what is missing and fails.
resil_need_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing Debian packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
    return 1
  fi
}

# Packages every build needs.
RESIL_BUILD_PACKAGES=(cmake make gcc libc6-dev pkgconf)
