#!/usr/bin/env bash
# Builds the real control plane of `make e2e-k8s` into .tools/k8s-<kubernetes>-etcd-<etcd>/bin, from the Go
# module proxy only: kube-apiserver (k8s.io/kubernetes, through the wrapper module toolchain/kube-apiserver),
# etcd (go.etcd.io/etcd/server/v3, toolchain/etcd) and our KMS v2 plugin (kmsplugin/).
# `build.sh kubectl` also builds kubectl (k8s.io/kubernetes/cmd/kubectl from the same k8s.io/kubernetes
# version, toolchain/kubectl), which only benchmarks/bench_reencrypt.py needs.
# Each binary has its own stamp (a hash of its inputs and the Go version) and is rebuilt only when one of
# its inputs changes, so a warm run builds nothing. Prints the bin folder on stdout; progress goes to stderr.
# Timings (2 cores): docs/real-cluster.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
module_version() { grep -oE "^(require )?[[:space:]]*$1 v[0-9][0-9.]*" "$2" | head -n1 | awk '{print $NF}'; }
k8s="$(module_version k8s.io/kubernetes "$here/toolchain/kube-apiserver/go.mod")"
etcd="$(module_version go.etcd.io/etcd/server/v3 "$here/toolchain/etcd/go.mod")"
[[ -n "$k8s" && -n "$etcd" ]] || { echo "no k8s.io/kubernetes or etcd version in $here/toolchain/*/go.mod" >&2; exit 2; }
kubectl_k8s="$(module_version k8s.io/kubernetes "$here/toolchain/kubectl/go.mod")"
[[ "$kubectl_k8s" == "$k8s" ]] || {
  echo "toolchain/kubectl requires k8s.io/kubernetes $kubectl_k8s, toolchain/kube-apiserver $k8s: make them equal" >&2
  exit 2
}
bin="$root/.tools/k8s-$k8s-etcd-$etcd/bin"
command -v go >/dev/null || { echo "make e2e-k8s needs Go (1.26 or later) on PATH" >&2; exit 2; }
goversion="$(go env GOVERSION)"
mkdir -p "$bin"

# build NAME DIR PACKAGE [go build flags...]: builds DIR's PACKAGE into $bin/NAME unless its stamp is current.
build() {
  local name="$1" dir="$2" package="$3"; shift 3
  local stamp
  stamp="$(cat "$dir"/go.mod "$dir"/go.sum $(find "$dir" -maxdepth 1 -name '*.go' | sort) "$here/build.sh" \
    | sha256sum | cut -c1-16)-$goversion"
  if [[ -x "$bin/$name" && "$(cat "$bin/.stamp-$name" 2>/dev/null)" == "$stamp" ]]; then
    return 0
  fi
  rm -f "$bin/.stamp-$name"
  local start=$SECONDS
  echo "building $name ($package) from its Go module; first run only, see docs/real-cluster.md for timings" >&2
  (cd "$dir" && go build "$@" -o "$bin/$name" "$package")
  echo "$stamp" > "$bin/.stamp-$name"
  echo "$name built in $((SECONDS - start)) s" >&2
}

minor="${k8s#v1.}"; minor="${minor%%.*}"
# kube-apiserver reports its version (GET /version) from these, as Kubernetes' own release build sets them.
build kube-apiserver "$here/toolchain/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver -ldflags "-s -w \
  -X k8s.io/component-base/version.gitVersion=$k8s -X k8s.io/component-base/version.gitMajor=1 \
  -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
build etcd "$here/toolchain/etcd" go.etcd.io/etcd/server/v3 -ldflags "-s -w"
build kmsplugin "$here/kmsplugin" . -ldflags "-s -w"
if [[ "${1:-}" == "kubectl" ]]; then
  build kubectl "$here/toolchain/kubectl" k8s.io/kubernetes/cmd/kubectl -ldflags "-s -w \
    -X k8s.io/component-base/version.gitVersion=$k8s -X k8s.io/component-base/version.gitMajor=1 \
    -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
fi
echo "$bin"
