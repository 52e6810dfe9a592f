#!/usr/bin/env bash
# Builds the testbed's control-plane binaries (kube-apiserver, kubectl, etcd) from the Go module proxy and
# caches them by version outside the work tree, so only the first run on a machine builds.
# Prints the directory that holds the binaries.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${NIO_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nio-testbed}

if ! command -v go >/dev/null 2>&1; then
  for candidate in /usr/local/go/bin /usr/lib/go/bin; do
    [ -x "$candidate/go" ] && PATH="$candidate:$PATH"
  done
fi
command -v go >/dev/null 2>&1 || { echo "build-binaries: Go toolchain not found (needed once to build kube-apiserver, kubectl and etcd)" >&2; exit 1; }

module_version() { # module dir, module path
  awk -v m="$2" '$1 == m { print $2; exit }' "$1/go.mod"
}

k8s_version=$(module_version "$here/go/k8s" k8s.io/kubernetes)
etcd_version=$(module_version "$here/go/etcd" go.etcd.io/etcd/server/v3)
[ -n "$k8s_version" ] && [ -n "$etcd_version" ] || { echo "build-binaries: cannot read versions from go.mod" >&2; exit 1; }

out="$cache/bin/k8s-$k8s_version-etcd-$etcd_version"

build() { # module dir, package, binary name, extra ldflags
  local dir=$1 pkg=$2 name=$3 ldflags=${4:-}
  [ -x "$out/$name" ] && return 0
  echo "build-binaries: building $name from $pkg (first run only; this takes several minutes)" >&2
  local tmp
  tmp=$(mktemp -d "$cache/build.XXXXXX")
  (cd "$dir" && go build -ldflags "-s -w $ldflags" -o "$tmp/$name" "$pkg")
  mv "$tmp/$name" "$out/$name"
  rmdir "$tmp"
}

mkdir -p "$out"
build "$here/go/etcd" go.etcd.io/etcd/server/v3 etcd
minor=$(echo "$k8s_version" | cut -d. -f2)
stamp="-X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1"
stamp="$stamp -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version"
build "$here/go/k8s" k8s.io/kubernetes/cmd/kube-apiserver kube-apiserver "$stamp"
build "$here/go/k8s" k8s.io/kubernetes/cmd/kubectl kubectl "$stamp"
echo "$out"
