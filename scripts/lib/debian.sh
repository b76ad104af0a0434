# Sourced by scripts/serve and scripts/test: installs the Debian packages given that
# are not installed yet (and nothing else).
ensure_debian_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    printf '\n== installing Debian packages: %s\n' "${missing[*]}"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# What building Conclave needs besides Rust: libopus for the media bridge and
# recordings (linked through pkg-config), g++ for libwebm's muxer.
BUILD_DEB_PACKAGES=(pkg-config libopus-dev g++)
