# Source this to find the reference toolchain built by `npm run tools`:
#   . tools/env.sh
# Exports the path of each binary (an already-set variable wins, so CI or a
# developer can point one at another build). It only sets paths: whether a
# binary exists is for the caller to check (`npm run tools` builds them).
# Node tests can read .tools/manifest.json instead (written by the build).

if [ -n "${BASH_SOURCE:-}" ]; then
  _etcdts_tools_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
elif [ -n "${ZSH_VERSION:-}" ]; then
  # shellcheck disable=SC2296
  _etcdts_tools_root="$(cd "$(dirname "${(%):-%x}")/.." && pwd)"
else
  # POSIX sh: no way to know the sourced file's path; assume the repo root.
  _etcdts_tools_root="$(pwd)"
fi

export ETCDTS_TOOLS_BIN="${ETCDTS_TOOLS_BIN:-$_etcdts_tools_root/.tools/bin}"
export ETCD36_BIN="${ETCD36_BIN:-$ETCDTS_TOOLS_BIN/etcd}"
export ETCDCTL36_BIN="${ETCDCTL36_BIN:-$ETCDTS_TOOLS_BIN/etcdctl}"
export BENCHMARK_BIN="${BENCHMARK_BIN:-$ETCDTS_TOOLS_BIN/benchmark}"
export KUBE_APISERVER_BIN="${KUBE_APISERVER_BIN:-$ETCDTS_TOOLS_BIN/kube-apiserver}"
export KUBE_CONTROLLER_MANAGER_BIN="${KUBE_CONTROLLER_MANAGER_BIN:-$ETCDTS_TOOLS_BIN/kube-controller-manager}"
export KUBECTL_BIN="${KUBECTL_BIN:-$ETCDTS_TOOLS_BIN/kubectl}"
export HELM_BIN="${HELM_BIN:-$ETCDTS_TOOLS_BIN/helm}"
unset _etcdts_tools_root
