#!/usr/bin/env bash
# Builds the local management plane from the Go modules pinned in plane/versions.env:
# kube-apiserver, kube-controller-manager, kube-scheduler, etcd, and the Cluster API managers (core,
# kubeadm bootstrap, kubeadm control plane, Docker provider with its in-memory backend). Also
# collects the Cluster API CRDs (with their kustomization: contract labels and conversion-webhook
# patches), webhook manifests and in-memory templates from the very same modules.
#
# For the hosted control planes of the local runtime (crates/hosted) it builds the workload
# control-plane binaries of every Kubernetes version in WORKLOAD_KUBERNETES_VERSIONS (the one equal
# to KUBERNETES_VERSION is hard-linked from the management plane's) and kwok (simulated nodes),
# with kwok's node and pod stages copied from the same module.
#
# Output goes to a cache directory keyed by the pins and this script; nothing is rebuilt while the
# key is unchanged. No binary is ever written into the repository.
#
#   plane/build.sh              build what is missing, print progress on stderr
#   plane/build.sh --print-dir  the same, then print the cache directory on stdout
#   plane/build.sh --print-dir --no-build
#                               only print it if the build is complete, else fail (exit 3)
#
# Environment: KAAS_CACHE (cache root, default ~/.cache/kaas), the usual Go variables (GOCACHE,
# GOMODCACHE, GOPROXY, GOTOOLCHAIN). Needs: go, sha256sum, flock (optional).
#
# Layout of the cache directory:
#   bin/{etcd,kube-apiserver,kube-controller-manager,kube-scheduler,capi-manager,
#        capi-kubeadm-bootstrap-manager,capi-kubeadm-control-plane-manager,capd-manager,kwok}
#   bin/workload/<version>/{kube-apiserver,kube-controller-manager,kube-scheduler}
#   kwok/stages.yaml   (kwok's node-initialize, node-heartbeat-with-lease and pod "fast" stages)
#   crds/{core,bootstrap-kubeadm,controlplane-kubeadm,docker}/{bases/*.yaml,kustomization.yaml,patches/*.yaml}
#   webhooks/{core,bootstrap-kubeadm,controlplane-kubeadm,docker}.yaml
#   templates/{clusterclass-in-memory.yaml,cluster-template-in-memory.yaml}
#   versions.env, timings, .complete
set -euo pipefail
# The whole script is one compound command, so bash parses it completely before running it: editing
# build.sh while a build runs cannot change what that build executes.
{

here=$(cd "$(dirname "$0")" && pwd)
print_dir=false
no_build=false
for arg in "$@"; do
  case "$arg" in
    --print-dir) print_dir=true ;;
    --no-build) no_build=true ;;
    *) echo "usage: $0 [--print-dir] [--no-build]" >&2; exit 2 ;;
  esac
done

# shellcheck source=versions.env
source "$here/versions.env"
: "${KUBERNETES_VERSION:?} ${ETCD_VERSION:?} ${CLUSTER_API_VERSION:?}"
: "${WORKLOAD_KUBERNETES_VERSIONS:?} ${KWOK_VERSION:?}"
key=$(cat "$here/versions.env" "$here/build.sh" | sha256sum | cut -c1-12)
root=${KAAS_CACHE:-$HOME/.cache/kaas}/plane
out=$root/${KUBERNETES_VERSION}-etcd-${ETCD_VERSION}-capi-${CLUSTER_API_VERSION}-${key}

log() { printf '[plane/build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
done_() {
  $print_dir && echo "$out"
  exit 0
}

if [ -f "$out/.complete" ]; then
  log "up to date: $out"
  done_
fi

if $no_build; then
  log "not built yet: $out (run plane/build.sh)"
  exit 3
fi

mkdir -p "$root"
# Two callers (e.g. two test binaries) must not build into the same directory at once.
if command -v flock >/dev/null; then
  exec 9>"$root/.lock-$key"
  if ! flock -n 9; then
    log "another build of $out is running; waiting for it"
    flock 9
  fi
  if [ -f "$out/.complete" ]; then
    log "up to date: $out"
    done_
  fi
fi

command -v go >/dev/null || { log "error: the go command is needed (Go >= 1.26)"; exit 1; }
log "building into $out ($(go version))"
export GOFLAGS="-mod=mod -trimpath -buildvcs=false"
export CGO_ENABLED=0
mkdir -p "$out/bin" "$out/crds" "$out/webhooks" "$out/templates" "$out/src"
: >"$out/timings"
t_all=$SECONDS

# `go mod download -json` prints one JSON object; pick a string field without needing jq.
mod_field() { # mod_field MODULE@VERSION FIELD
  go mod download -json "$1" | sed -n "s/^[[:space:]]*\"$2\": \"\(.*\)\",\{0,1\}$/\1/p"
}
go_directive() { awk '/^go /{print $2; exit}' "$1"; }

build() { # build NAME PACKAGE [LDFLAGS]   (NAME relative to bin/, may contain a directory)
  local name=$1 pkg=$2 ldflags=${3:-}
  if [ -x "$out/bin/$name" ]; then
    log "$name: already built"
    return
  fi
  local t=$SECONDS
  log "$name: building $pkg"
  mkdir -p "$(dirname "$out/bin/$name")"
  go build -ldflags "-s -w $ldflags" -o "$out/bin/$name.tmp" "$pkg"
  mv "$out/bin/$name.tmp" "$out/bin/$name"
  log "$name: built in $((SECONDS - t)) s"
  echo "$name $((SECONDS - t))" >>"$out/timings"
}

# --- Kubernetes: a consumer module per version pinning every staging module (derived from k8s' own
# go.mod) ---
k8s_build() { # k8s_build VERSION MODULE_DIR BIN_PREFIX BINARY...
  local version=$1 dir=$2 prefix=$3
  shift 3
  local minor patch
  minor=$(echo "$version" | cut -d. -f2)
  patch=$(echo "$version" | cut -d. -f3)
  mkdir -p "$dir"
  (
    cd "$dir"
    kmod=$(mod_field "k8s.io/kubernetes@${version}" GoMod)
    [ -f "$kmod" ] || { log "error: cannot download k8s.io/kubernetes@${version}"; exit 1; }
    {
      echo "module kaas.local/plane/k8s-${minor}-${patch}"
      echo
      echo "go $(go_directive "$kmod")"
      echo
      echo "require k8s.io/kubernetes ${version}"
      echo
      # Every `k8s.io/<x> => ./staging/src/k8s.io/<x>` replace of k8s.io/kubernetes becomes a
      # replace to the published staging module of the same release (v0.<minor>.<patch>).
      grep -E '^[[:space:]]*(replace[[:space:]]+)?k8s\.io/[a-z0-9-]+ => \./staging/src/' "$kmod" |
        sed -E 's/^[[:space:]]*(replace[[:space:]]+)?//' |
        awk -v v="v0.${minor}.${patch}" '{print "replace " $1 " => " $1 " " v}'
    } >go.mod
    grep -q '^replace k8s.io/api ' go.mod || { log "error: no staging replaces found in $kmod"; exit 1; }
    v="k8s.io/component-base/version"
    ld="-X $v.gitVersion=${version} -X $v.gitMajor=1 -X $v.gitMinor=${minor}"
    ld="$ld -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
    for b in "$@"; do
      build "$prefix$b" "k8s.io/kubernetes/cmd/$b" "$ld"
    done
  )
}
k8s_build "$KUBERNETES_VERSION" "$out/src/k8s" "" kube-apiserver kube-controller-manager kube-scheduler

# Workload control planes of the hosted runtime, one directory per version. The management
# plane's version is the very same build: hard links, no second compile.
for wv in $WORKLOAD_KUBERNETES_VERSIONS; do
  if [ "$wv" = "$KUBERNETES_VERSION" ]; then
    mkdir -p "$out/bin/workload/$wv"
    for b in kube-apiserver kube-controller-manager kube-scheduler; do
      ln -f "$out/bin/$b" "$out/bin/workload/$wv/$b" 2>/dev/null || cp -f "$out/bin/$b" "$out/bin/workload/$wv/$b"
    done
    log "workload/$wv: linked to the management plane's binaries"
  else
    k8s_build "$wv" "$out/src/k8s-$wv" "workload/$wv/" kube-apiserver kube-controller-manager kube-scheduler
  fi
done

# --- kwok: simulated kubelets for the hosted runtime's worker nodes, and its stages ---
mkdir -p "$out/src/kwok"
(
  cd "$out/src/kwok"
  kdir=$(mod_field "sigs.k8s.io/kwok@${KWOK_VERSION}" Dir)
  [ -d "$kdir" ] || { log "error: cannot download sigs.k8s.io/kwok@${KWOK_VERSION}"; exit 1; }
  printf 'module kaas.local/plane/kwok\n\ngo %s\n\nrequire sigs.k8s.io/kwok %s\n' \
    "$(go_directive "$kdir/go.mod")" "$KWOK_VERSION" >go.mod
  build kwok sigs.k8s.io/kwok/cmd/kwok
  # kwok without stages manages nothing: the node lifecycle (initialize, heartbeat with leases)
  # and the pod lifecycle (ready, complete, delete) of its "fast" profile, as kwokctl uses them.
  mkdir -p "$out/kwok"
  st="$kdir/kustomize/stage"
  {
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
      pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      [ -f "$st/$f" ] || { log "error: kwok stage $f missing in $kdir"; exit 1; }
      echo "---"
      cat "$st/$f"
    done
  } >"$out/kwok/stages.yaml.tmp"
  mv "$out/kwok/stages.yaml.tmp" "$out/kwok/stages.yaml"
  chmod -R u+w "$out/kwok"
)

# --- etcd: the server module's root package is the etcd main ---
mkdir -p "$out/src/etcd"
(
  cd "$out/src/etcd"
  emod=$(mod_field "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" GoMod)
  printf 'module kaas.local/plane/etcd\n\ngo %s\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
    "$(go_directive "$emod")" "$ETCD_VERSION" >go.mod
  build etcd go.etcd.io/etcd/server/v3
)

# --- Cluster API managers: modules sigs.k8s.io/cluster-api and sigs.k8s.io/cluster-api/test ---
mkdir -p "$out/src/capi"
(
  cd "$out/src/capi"
  capi_dir=$(mod_field "sigs.k8s.io/cluster-api@${CLUSTER_API_VERSION}" Dir)
  test_dir=$(mod_field "sigs.k8s.io/cluster-api/test@${CLUSTER_API_VERSION}" Dir)
  [ -d "$capi_dir" ] && [ -d "$test_dir" ] || { log "error: cannot download Cluster API modules"; exit 1; }
  {
    echo "module kaas.local/plane/capi"
    echo
    echo "go $(go_directive "$test_dir/go.mod")"
    echo
    echo "require ("
    echo "	sigs.k8s.io/cluster-api ${CLUSTER_API_VERSION}"
    echo "	sigs.k8s.io/cluster-api/api ${CLUSTER_API_VERSION}"
    echo "	sigs.k8s.io/cluster-api/test ${CLUSTER_API_VERSION}"
    echo ")"
    echo
    # The modules replace each other with relative paths, which a consumer ignores: pin the
    # published ones.
    echo "replace sigs.k8s.io/cluster-api => sigs.k8s.io/cluster-api ${CLUSTER_API_VERSION}"
    echo "replace sigs.k8s.io/cluster-api/api => sigs.k8s.io/cluster-api/api ${CLUSTER_API_VERSION}"
  } >go.mod
  capi_minor=$(echo "$CLUSTER_API_VERSION" | cut -d. -f2)
  v="sigs.k8s.io/cluster-api/version"
  ld="-X $v.gitVersion=${CLUSTER_API_VERSION} -X $v.gitMajor=1 -X $v.gitMinor=${capi_minor}"
  ld="$ld -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
  build capi-manager sigs.k8s.io/cluster-api/core "$ld"
  build capi-kubeadm-bootstrap-manager sigs.k8s.io/cluster-api/bootstrap/kubeadm "$ld"
  build capi-kubeadm-control-plane-manager sigs.k8s.io/cluster-api/controlplane/kubeadm "$ld"
  build capd-manager sigs.k8s.io/cluster-api/test/infrastructure/docker "$ld"

  # CRDs with the kustomization that labels them and patches in the conversion webhook (the
  # harness applies both), webhook manifests and the in-memory templates.
  copy_component() { # copy_component SRC_DIR TAG
    local src=$1 tag=$2
    rm -rf "$out/crds/$tag"
    mkdir -p "$out/crds/$tag/bases" "$out/crds/$tag/patches"
    cp "$src"/config/crd/bases/*.yaml "$out/crds/$tag/bases/"
    cp "$src"/config/crd/kustomization.yaml "$out/crds/$tag/"
    cp "$src"/config/crd/patches/*.yaml "$out/crds/$tag/patches/"
    cp "$src"/config/webhook/manifests.yaml "$out/webhooks/$tag.yaml"
  }
  copy_component "$capi_dir/core" core
  copy_component "$capi_dir/bootstrap/kubeadm" bootstrap-kubeadm
  copy_component "$capi_dir/controlplane/kubeadm" controlplane-kubeadm
  copy_component "$test_dir/infrastructure/docker" docker
  cp "$test_dir"/infrastructure/docker/templates/clusterclass-in-memory.yaml \
    "$test_dir"/infrastructure/docker/templates/cluster-template-in-memory.yaml "$out/templates/"
  chmod -R u+w "$out/crds" "$out/webhooks" "$out/templates"
)

cp "$here/versions.env" "$out/versions.env"
echo "total $((SECONDS - t_all))" >>"$out/timings"
log "all built in $((SECONDS - t_all)) s: $out"
touch "$out/.complete"
done_
exit 0
}
