#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine: Debian packages (when missing), pnpm at the
# version pinned in package.json, and the workspace's Node packages. Idempotent and quick when all is present.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# openssh-server: the simulated hosts' sshd; openssh-client: ssh-keygen and the nixos-anywhere stand-in;
# nix-bin: offline Nix; util-linux: unshare, setpriv; sudo: non-root sshUser on the hosts; openssl: the testbed PKI;
# jq: the hosts' stand-in tools.
debian_packages=(openssh-server openssh-client nix-bin git sudo openssl ca-certificates util-linux procps tar jq)

missing=()
for p in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "install-deps: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# promtool (parses the alert rules in deploy/monitoring; the deploy test skips that check without it) comes from
# Debian's `prometheus` package. Installing that package would also register, and outside containers start, a
# Prometheus server, so only its promtool binary is unpacked into the testbed cache. Optional: a failure is reported
# and ignored.
install_promtool() {
  local cache="${NIO_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nio-testbed}/promtool"
  command -v promtool >/dev/null && return 0
  [ -x "$cache/promtool" ] && return 0
  local tmp
  tmp=$(mktemp -d)
  chmod 755 "$tmp"
  if ! (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1); then
    [ "$(id -u)" -eq 0 ] && apt-get update -qq
    (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1) || {
      rm -rf "$tmp"
      return 1
    }
  fi
  # errexit does not apply inside a function called with ||, so every step checks its own result.
  mkdir -p "$cache" &&
    dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -xO ./usr/bin/promtool >"$cache/promtool.part" &&
    chmod 755 "$cache/promtool.part" &&
    "$cache/promtool.part" --version >/dev/null 2>&1 &&
    mv "$cache/promtool.part" "$cache/promtool" || {
    rm -rf "$tmp" "$cache/promtool.part"
    return 1
  }
  rm -rf "$tmp"
  echo "install-deps: promtool unpacked to $cache/promtool"
}
install_promtool || echo "install-deps: could not get promtool (Debian package prometheus); the promtool checks will skip" >&2

command -v node >/dev/null || { echo "install-deps: Node.js 20 is required" >&2; exit 1; }
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || { echo "install-deps: Node.js >= 20 required, found $(node --version)" >&2; exit 1; }

pnpm_version=$(node -p 'require("./package.json").packageManager.split("@")[1]')
if [ "$(pnpm --version 2>/dev/null || true)" != "$pnpm_version" ]; then
  echo "install-deps: installing pnpm $pnpm_version"
  npm install -g --silent "pnpm@$pnpm_version" >/dev/null
fi

pnpm install --frozen-lockfile --reporter=silent
