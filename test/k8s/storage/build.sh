#!/usr/bin/env bash
# Compiles k8s.io/apiserver's pkg/storage/etcd3 tests (the version pinned in
# go.mod) into bin/etcd3.test, with the upstream embedded-etcd test server
# swapped for ./testserver (a server outside the test process).
# The module cache is read-only and `go -overlay` refuses files in it, so the
# apiserver module is copied to bin/apiserver, its testserver file replaced,
# and the build uses bin/go.mod: our go.mod plus a replace directive to that
# copy (-modfile). Every test file compiles unchanged.
# Output: bin/ (git-ignored). Rebuilds only when an input is newer than it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=-buildvcs=false
command -v go >/dev/null || { echo "build.sh: Go is not installed (needed to build the apiserver storage tests)" >&2; exit 1; }

out=bin/etcd3.test
if [ -x "$out" ] && [ -z "$(find go.mod go.sum testserver build.sh -newer "$out" 2>/dev/null)" ]; then
  echo "$out is up to date"; exit 0
fi
mkdir -p bin
apiserver_dir="$(go list -m -f '{{.Dir}}' k8s.io/apiserver)"
if [ -z "$apiserver_dir" ]; then go mod download k8s.io/apiserver; apiserver_dir="$(go list -m -f '{{.Dir}}' k8s.io/apiserver)"; fi
rm -rf bin/apiserver
cp -r "$apiserver_dir" bin/apiserver
chmod -R u+w bin/apiserver
cp testserver/test_server.go bin/apiserver/pkg/storage/etcd3/testserver/test_server.go
cp go.mod bin/go.mod
cp go.sum bin/go.sum
printf '\nreplace k8s.io/apiserver => %s/bin/apiserver\n' "$PWD" >> bin/go.mod
start=$(date +%s)
go test -c -modfile bin/go.mod -o "$out.tmp" k8s.io/apiserver/pkg/storage/etcd3
mv "$out.tmp" "$out"
echo "built $out in $(( $(date +%s) - start ))s"
