#!/usr/bin/env bash
# Runs k8s.io/apiserver's own etcd3 storage tests against an external server
# (real etcd 3.6 from the toolchain, or ours) — see README.md.
#
#   test/clients/k8s-storage/run.sh etcd|ours [go test flags, e.g. -run 'TestCreate$' -count=1]
#
# The apiserver module at the version matching KUBERNETES_VERSION (tools/versions.env)
# is copied out of the Go module cache into .tmp/k8s-storage/, its embedded-etcd
# test server is replaced by testserver/test_server.go, and `go test` runs in
# ./pkg/storage/etcd3/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
target="${1:?usage: run.sh etcd|ours [go test flags]}"
shift
# shellcheck source=../../../tools/versions.env
. "$root/tools/versions.env"
. "$root/tools/env.sh"
go="${GO_BIN:-$(command -v go || echo /usr/local/go/bin/go)}"
# k8s.io/kubernetes v1.X.Y publishes its staging modules as v0.X.Y.
apiserver_version="v0.${KUBERNETES_VERSION#v1.}"

case "$target" in
  etcd) export ETCDTS_STORAGE_SERVER="$ETCD36_BIN" ;;
  ours) export ETCDTS_STORAGE_SERVER="$(command -v node) $root/dist/node/src/main.js" ;;
  *) echo "run.sh: target must be etcd or ours" >&2; exit 2 ;;
esac

export GOFLAGS=-mod=mod
src="$("$go" mod download -json "k8s.io/apiserver@$apiserver_version" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
[ -d "$src" ] || { echo "run.sh: could not download k8s.io/apiserver@$apiserver_version" >&2; exit 1; }
work="$root/.tmp/k8s-storage/apiserver-$apiserver_version"
if [ ! -f "$work/go.mod" ]; then
  mkdir -p "$work"
  cp -r "$src/." "$work/"
  chmod -R u+w "$work"
fi
cp "$here/testserver/test_server.go" "$work/pkg/storage/etcd3/testserver/test_server.go"
cd "$work"
exec "$go" test ./pkg/storage/etcd3/ "$@"
