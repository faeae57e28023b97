#!/usr/bin/env bash
# Builds the reference toolchain (etcd 3.6, etcdctl, etcd's benchmark,
# kube-apiserver, kube-controller-manager, kubectl, helm) from Go modules
# into .tools/bin/. Versions are pinned in tools/versions.env only.
#
#   npm run tools                      build what is missing or out of date
#   npm run tools -- etcd kubectl      only these tools
#   npm run tools -- --force [tool..]  rebuild even if up to date
#   npm run tools -- --list            show the tool table and exit
#
# Each tool has a stamp (.tools/stamps/<tool>.stamp) holding the module,
# the pinned version, the Go version and the recipe revision; a tool is
# rebuilt only when its binary is missing or its stamp differs.
# See tools/README.md for the wrapper-module technique.
set -euo pipefail

# Bump when the build recipe changes in a way that should rebuild everything
# (flags, ldflags, wrapper layout).
RECIPE_REV=2

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_HOME="$ROOT/.tools"
BIN_DIR="$TOOLS_HOME/bin"
SRC_DIR="$TOOLS_HOME/src"
STAMP_DIR="$TOOLS_HOME/stamps"
MANIFEST="$TOOLS_HOME/manifest.json"

log() { printf '[tools] %s\n' "$*"; }
die() { printf '[tools] ERROR: %s\n' "$*" >&2; exit 1; }

# shellcheck source=tools/versions.env
. "$ROOT/tools/versions.env"
for v in GO_MIN_VERSION ETCD_VERSION ETCD_BENCHMARK_VERSION KUBERNETES_VERSION HELM_VERSION; do
  [[ -n "${!v:-}" ]] || die "tools/versions.env does not set $v"
done

# name | wrapper module (folder under .tools/src) | upstream module | version | main package
TOOLS=(
  "etcd|etcd|go.etcd.io/etcd/server/v3|$ETCD_VERSION|go.etcd.io/etcd/server/v3"
  "etcdctl|etcdctl|go.etcd.io/etcd/etcdctl/v3|$ETCD_VERSION|go.etcd.io/etcd/etcdctl/v3"
  "benchmark|etcd-benchmark|go.etcd.io/etcd/v3|$ETCD_BENCHMARK_VERSION|go.etcd.io/etcd/v3/tools/benchmark"
  "kube-apiserver|kubernetes|k8s.io/kubernetes|$KUBERNETES_VERSION|k8s.io/kubernetes/cmd/kube-apiserver"
  "kube-controller-manager|kubernetes|k8s.io/kubernetes|$KUBERNETES_VERSION|k8s.io/kubernetes/cmd/kube-controller-manager"
  "kubectl|kubernetes|k8s.io/kubernetes|$KUBERNETES_VERSION|k8s.io/kubernetes/cmd/kubectl"
  "helm|helm|helm.sh/helm/v3|$HELM_VERSION|helm.sh/helm/v3/cmd/helm"
)

# ---------------------------------------------------------------- arguments
FORCE=0
WANT=()
for arg in "$@"; do
  case "$arg" in
    --force|-f) FORCE=1 ;;
    --list)
      printf '%-24s %-16s %-28s %s\n' TOOL WRAPPER MODULE VERSION
      for t in "${TOOLS[@]}"; do IFS='|' read -r n g m ver _ <<<"$t"; printf '%-24s %-16s %-28s %s\n' "$n" "$g" "$m" "$ver"; done
      exit 0 ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option: $arg (try --help)" ;;
    *)
      found=0
      for t in "${TOOLS[@]}"; do [[ "${t%%|*}" == "$arg" ]] && found=1; done
      [[ $found == 1 ]] || die "unknown tool: $arg (known: $(for t in "${TOOLS[@]}"; do printf '%s ' "${t%%|*}"; done))"
      WANT+=("$arg") ;;
  esac
done
wanted() {
  [[ ${#WANT[@]} -eq 0 ]] && return 0
  local w; for w in "${WANT[@]}"; do [[ "$w" == "$1" ]] && return 0; done
  return 1
}

# ------------------------------------------------------------ Go toolchain
# Never let the go command try to download another toolchain (there is no
# way to fetch one here, and the error it gives is obscure): use the local one.
export GOTOOLCHAIN=local
export GOWORK=off
export CGO_ENABLED=0
# -buildvcs=false: the wrapper modules sit inside this project's git tree;
# without it the binaries would be stamped with (and depend on) its git state.
export GOFLAGS="-trimpath -buildvcs=false"

if ! command -v go >/dev/null 2>&1; then
  die "Go is not installed or not on PATH. Install Go >= ${GO_MIN_VERSION} (e.g. from go.dev/dl or your package manager) and re-run \`npm run tools\`."
fi
GOVERSION="$(go env GOVERSION 2>/dev/null || true)"
[[ "$GOVERSION" =~ ^go([0-9]+(\.[0-9]+)*) ]] || die "cannot tell the Go version (go env GOVERSION said '${GOVERSION}'); need Go >= ${GO_MIN_VERSION}"
GO_NUM="${BASH_REMATCH[1]}"
# version_ge A B: true when A >= B (dotted numbers)
version_ge() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]; }
version_ge "$GO_NUM" "$GO_MIN_VERSION" \
  || die "Go ${GO_NUM} is too old: the pinned tools need Go >= ${GO_MIN_VERSION} (tools/versions.env GO_MIN_VERSION). Install a newer Go and re-run."
command -v node >/dev/null 2>&1 || die "node is needed to read go.mod JSON (it runs npm, so it should be on PATH)"

mkdir -p "$BIN_DIR" "$SRC_DIR" "$STAMP_DIR"

# One build at a time per checkout (two test processes might both call this).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$TOOLS_HOME/.lock"
  flock 9
fi

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

log "Go ${GO_NUM} ($(go env GOOS)/$(go env GOARCH)); GOMODCACHE=$(go env GOMODCACHE) GOCACHE=$(go env GOCACHE)"

# ------------------------------------------------------- wrapper modules
# ensure_wrapper GROUP MODULE VERSION PKG...
# Creates .tools/src/GROUP/go.mod: a throw-away main module that requires
# MODULE@VERSION and re-creates, from published modules, whatever the
# upstream go.mod pointed at local folders (see README). The upstream main
# packages are then built in that module's context with `go build PKG`.
ensure_wrapper() {
  local group="$1" module="$2" version="$3"; shift 3
  local dir="$SRC_DIR/$group"
  local want; want="$(printf 'module=%s@%s\ngo=%s\nrecipe=%s\npkgs=%s\n' "$module" "$version" "$GO_NUM" "$RECIPE_REV" "$*")"
  if [[ -f "$dir/go.sum" && -f "$dir/.wrapper" && "$(cat "$dir/.wrapper")" == "$want" ]]; then
    return 0
  fi
  rm -rf "$dir"; mkdir -p "$dir"

  local gomod
  gomod="$(go mod download -json "$module@$version" | node -e '
    let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
      const j = JSON.parse(s);
      if (j.Error) { console.error(j.Error); process.exit(1); }
      console.log(j.GoMod);
    });')" || die "cannot download $module@$version from the module proxy"

  # Read the upstream go.mod (as JSON) and turn it into `go mod edit` flags.
  local -a edits
  mapfile -t edits < <(go mod edit -json "$gomod" | node -e '
    const [module, version, localGo] = process.argv.slice(1);
    let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
      const m = JSON.parse(s);
      const out = [];
      const cmp = (a, b) => { const x = a.split(".").map(Number), y = b.split(".").map(Number);
        for (let i = 0; i < Math.max(x.length, y.length); i++) { const d = (x[i] || 0) - (y[i] || 0); if (d) return d; } return 0; };
      if (m.Go && cmp(m.Go, localGo) > 0) {
        console.error(`${module}@${version} needs Go >= ${m.Go}, this is Go ${localGo}`); process.exit(3);
      }
      // Same language version and GODEBUG defaults as an upstream build.
      out.push(`-go=${m.Go || localGo}`);
      for (const g of m.GoDebug || []) out.push(`-godebug=${g.Key}=${g.Value}`);
      out.push(`-require=${module}@${version}`);
      const req = new Map((m.Require || []).map(r => [r.Path, r.Version]));
      for (const r of m.Replace || []) {
        const old = r.Old.Path + (r.Old.Version ? "@" + r.Old.Version : "");
        if (r.New.Version) { out.push(`-replace=${old}=${r.New.Path}@${r.New.Version}`); continue; }
        // A replace with a local folder (./staging/..., ../api, ./FORBIDDEN_DEPENDENCY).
        const v = req.get(r.Old.Path);
        if (v === undefined) continue;          // not required: irrelevant
        if (v !== "v0.0.0") continue;           // required at a published version: MVS uses it
        // Required as v0.0.0 and served from a folder of the same repo:
        // the Kubernetes staging pattern. Published as v0.<minor>.<patch>.
        const k = /^v1\.(\d+\.\d+.*)$/.exec(version);
        if (module !== "k8s.io/kubernetes" || !k) {
          console.error(`${module}@${version}: no published version known for ${r.Old.Path} (replaced by ${r.New.Path})`); process.exit(4);
        }
        out.push(`-replace=${r.Old.Path}=${r.Old.Path}@v0.${k[1]}`);
      }
      console.log(out.join("\n"));
    });' "$module" "$version" "$GO_NUM")
  [[ ${#edits[@]} -gt 0 ]] || die "could not derive the wrapper go.mod for $module@$version"

  local p
  for p in "$@"; do edits+=("-tool=$p"); done
  (
    cd "$dir"
    go mod init "etcd-ts.local/tools/$group" 2>/dev/null
    go mod edit "${edits[@]}"
    go mod tidy
  ) || die "preparing the wrapper module for $module@$version failed (see above)"
  printf '%s' "$want" >"$dir/.wrapper"
}

# ---------------------------------------------------------------- ldflags
tool_ldflags() {
  local name="$1" dir="$2" version="$3"
  local f="-s -w"
  case "$name" in
    kube-apiserver|kube-controller-manager|kubectl)
      # What hack/lib/version.sh sets for a release build (no git here, so
      # gitTreeState=archive as for a source tarball; buildDate = release time).
      local date major minor pkg
      date="$(cd "$dir" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)"
      major="${version#v}"; major="${major%%.*}"
      minor="${version#v*.}"; minor="${minor%%.*}"
      for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
        f+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        f+=" -X $pkg.gitTreeState=archive -X $pkg.buildDate=$date"
      done ;;
    helm)
      # As helm's Makefile: version, and the Kubernetes version its chart
      # tooling assumes, taken from the client-go it is built with.
      local kv kmaj kmin
      kv="$(cd "$dir" && go list -m -f '{{.Version}}' k8s.io/client-go)"   # v0.37.0
      kv="${kv#v}"; kmaj=$(( ${kv%%.*} + 1 )); kmin="${kv#*.}"; kmin="${kmin%%.*}"
      f+=" -X helm.sh/helm/v3/internal/version.version=$version"
      f+=" -X helm.sh/helm/v3/internal/version.gitTreeState=archive"
      f+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$kmaj -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$kmin"
      f+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$kmaj -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kmin" ;;
  esac
  printf '%s' "$f"
}

version_cmd() {
  case "$1" in
    etcd|kube-apiserver|kube-controller-manager) echo "--version" ;;
    etcdctl) echo "version" ;;
    benchmark) echo "--help" ;;
    kubectl) echo "version --client" ;;
    helm) echo "version --short" ;;
  esac
}

# ------------------------------------------------------------------ build
# Wrappers whose packages are wanted, so each is prepared with every tool it
# serves (one go.mod/go.sum per wrapper).
group_pkgs() {
  local g="$1" t n gg m v p out=()
  for t in "${TOOLS[@]}"; do IFS='|' read -r n gg m v p <<<"$t"; [[ "$gg" == "$g" ]] && out+=("$p"); done
  printf '%s\n' "${out[@]}"
}

BUILT=() SKIPPED=() FAILED=()
T_ALL="$(now)"
for t in "${TOOLS[@]}"; do
  IFS='|' read -r name group module version pkg <<<"$t"
  wanted "$name" || continue
  out="$BIN_DIR/$name"
  stamp="$STAMP_DIR/$name.stamp"
  want_stamp="$(printf 'tool=%s\nmodule=%s\nversion=%s\npackage=%s\ngo=%s\nrecipe=%s\n' "$name" "$module" "$version" "$pkg" "$GO_NUM" "$RECIPE_REV")"
  if [[ $FORCE == 0 && -x "$out" && -f "$stamp" && "$(cat "$stamp")" == "$want_stamp" ]]; then
    log "$name $version: up to date"
    SKIPPED+=("$name")
    continue
  fi
  log "$name $version: building $pkg"
  t0="$(now)"
  mapfile -t pkgs < <(group_pkgs "$group")
  ensure_wrapper "$group" "$module" "$version" "${pkgs[@]}"
  t_prep="$(since "$t0")"
  t1="$(now)"
  ldflags="$(tool_ldflags "$name" "$SRC_DIR/$group" "$version")"
  if ! (cd "$SRC_DIR/$group" && go build -ldflags="$ldflags" -o "$out.tmp" "$pkg"); then
    rm -f "$out.tmp"
    log "$name $version: BUILD FAILED"
    FAILED+=("$name")
    continue
  fi
  mv -f "$out.tmp" "$out"
  # Smoke test: the binary runs and reports its version.
  # shellcheck disable=SC2046
  if ! vout="$("$out" $(version_cmd "$name") 2>&1)"; then
    log "$name: built, but \`$name $(version_cmd "$name")\` failed: ${vout:0:300}"
    FAILED+=("$name"); continue
  fi
  vline="${vout%%$'\n'*}"
  printf '%s' "$want_stamp" >"$stamp"
  log "$name $version: built in $(since "$t0")s (modules+wrapper ${t_prep}s, compile+link $(since "$t1")s), $(du -h "$out" | cut -f1); $vline"
  BUILT+=("$name")
done

# --------------------------------------------------------------- manifest
{
  printf '{\n  "bin": "%s",\n  "go": "%s",\n  "tools": {' "$BIN_DIR" "$GOVERSION"
  sep=""
  for t in "${TOOLS[@]}"; do
    IFS='|' read -r name group module version pkg <<<"$t"
    [[ -x "$BIN_DIR/$name" && -f "$STAMP_DIR/$name.stamp" ]] || continue
    sv="$(sed -n 's/^version=//p' "$STAMP_DIR/$name.stamp")"
    printf '%s\n    "%s": { "path": "%s", "module": "%s", "version": "%s", "package": "%s" }' \
      "$sep" "$name" "$BIN_DIR/$name" "$module" "$sv" "$pkg"
    sep=","
  done
  printf '\n  }\n}\n'
} >"$MANIFEST.tmp" && mv -f "$MANIFEST.tmp" "$MANIFEST"

log "done in $(since "$T_ALL")s: built ${#BUILT[@]} [${BUILT[*]:-}], up to date ${#SKIPPED[@]}, failed ${#FAILED[@]} [${FAILED[*]:-}]"
log "binaries in $BIN_DIR; manifest $MANIFEST; \`. tools/env.sh\` exports their paths"
[[ ${#FAILED[@]} -eq 0 ]] || exit 1
