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

command -v node >/dev/null || { echo "install-deps: Node.js 20 is required" >&2; exit 1; }
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || { echo "install-deps: Node.js >= 20 required, found $(node --version)" >&2; exit 1; }

pnpm_version=$(node -p 'require("./package.json").packageManager.split("@")[1]')
if [ "$(pnpm --version 2>/dev/null || true)" != "$pnpm_version" ]; then
  echo "install-deps: installing pnpm $pnpm_version"
  npm install -g --silent "pnpm@$pnpm_version" >/dev/null
fi

pnpm install --frozen-lockfile --reporter=silent
