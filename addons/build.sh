#!/usr/bin/env bash
# Builds the addon bundles of the development provider (examples/provider-inmemory.yaml) from the
# Go modules pinned in addons/versions.env: renders each addon's manifests from its module's files
# and packs them, per bundle, into ready-to-apply ConfigMaps (format: docs/addons.md).
#
# Output goes to a cache directory keyed by the pins, this script, the bundle tool and kubectl's
# kustomize version; nothing is rebuilt while the key is unchanged. Nothing is written into the
# repository.
#
#   addons/build.sh              build what is missing, print progress on stderr
#   addons/build.sh --print-dir  the same, then print the cache directory on stdout
#   addons/build.sh --print-dir --no-build
#                                only print it if the build is complete, else fail (exit 3)
#
# Publish a bundle (server-side apply: the manifests are larger than the 256 KiB a client-side
# apply's last-applied annotation may hold):
#   kubectl apply --server-side -f "$(addons/build.sh --print-dir)/bundles/dev-addons-1-35/"
#
# Environment: KAAS_CACHE (cache root, default ~/.cache/kaas), the usual Go variables (GOCACHE,
# GOMODCACHE, GOPROXY, GOTOOLCHAIN). Needs: go, kubectl (for kustomize), sha256sum, flock
# (optional).
#
# Layout of the cache directory:
#   bundles/<bundle>/NN-<configMap>.yaml   the bundle's ConfigMaps; 99-<bundle>.yaml is the index
#   manifests/<addon>-<version>.yaml       rendered manifests, as packed into the bundles
#   sources                                 module@version and path of every rendered manifest
#   sizes                                   bundle, ConfigMap, size, file bytes, documents
#   bin/{bundle,helm}, src/, versions.env, timings, .complete
set -euo pipefail
shopt -s inherit_errexit # also inside $(...): the renderers run there

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
: "${BUNDLES:?} ${BUNDLE_NAMESPACE:?} ${METRICS_SERVER_VERSION:?} ${INGRESS_NGINX_VERSION:?}"
: "${GATEWAY_API_VERSION:?} ${YAML_VERSION:?} ${ENVOY_GATEWAY_VERSION?}"
command -v kubectl >/dev/null || { echo "addons/build: kubectl is needed (kubectl kustomize)" >&2; exit 1; }
kustomize_version=$(kubectl version --client 2>/dev/null | grep -i kustomize || true)
key=$( (cat "$here/versions.env" "$here/build.sh" "$here/bundle/main.go"; echo "$kustomize_version") |
  sha256sum | cut -c1-12)
root=${KAAS_CACHE:-$HOME/.cache/kaas}/addons
out=$root/$key

log() { printf '[addons/build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
done_() {
  $print_dir && echo "$out"
  exit 0
}

if [ -f "$out/.complete" ]; then
  log "up to date: $out"
  done_
fi

if $no_build; then
  log "not built yet: $out (run addons/build.sh)"
  exit 3
fi

mkdir -p "$root"
# Two callers must not build into the same directory at once.
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

command -v go >/dev/null || { log "error: the go command is needed"; exit 1; }
log "building into $out ($(go version))"
export GOFLAGS="-mod=mod -trimpath -buildvcs=false"
export CGO_ENABLED=0
# Bundles and manifests are always re-rendered (cheap); the tools survive an interrupted build.
rm -rf "$out/bundles" "$out/manifests"
mkdir -p "$out/bin" "$out/src" "$out/bundles" "$out/manifests"
: >"$out/timings"
: >"$out/sources"
t_all=$SECONDS

# `go mod download -json` prints one JSON object; pick a string field without needing jq.
field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}$/\1/p"; }
mod_field() { # mod_field MODULE@VERSION FIELD
  local json
  json=$(go mod download -json "$1") ||
    { log "error: cannot download $1: $(field Error <<<"$json")"; return 1; }
  field "$2" <<<"$json"
}
mod_dir() { # mod_dir MODULE@VERSION: the module's extracted (read-only) directory
  local d
  d=$(mod_field "$1" Dir)
  [ -d "$d" ] || { log "error: no directory for $1"; exit 1; }
  echo "$d"
}
go_directive() { awk '/^go /{print $2; exit}' "$1"; }
pin() { # pin NAME MINOR: NAME_<major>_<minor> if set, else NAME
  local over="${1}_${2//./_}"
  echo "${!over:-${!1:-}}"
}
source_line() { # source_line MANIFEST MODULE@VERSION PATH
  echo "$(basename "$1") $2 $3 sha256:$(sha256sum "$1" | cut -c1-16)" >>"$out/sources"
}

# --- tools ---
go_tool() { # go_tool NAME MODULE VERSION PACKAGE [SOURCE_DIR]
  local name=$1 mod=$2 ver=$3 pkg=$4 src=${5:-}
  if [ -x "$out/bin/$name" ]; then
    log "$name: already built"
    return
  fi
  local t=$SECONDS dir=$out/src/$name
  log "$name: building $pkg ($mod $ver)"
  rm -rf "$dir"
  mkdir -p "$dir"
  [ -z "$src" ] || cp "$src"/*.go "$dir/"
  (
    cd "$dir"
    gomod=$(mod_field "$mod@$ver" GoMod)
    [ -f "$gomod" ] || { log "error: cannot download $mod@$ver"; exit 1; }
    # Our own source needs go 1.22 at least; a module's command, what the module says.
    goversion=$(go_directive "$gomod")
    [ -z "$src" ] || goversion=$(printf '%s\n' "$goversion" 1.22 | sort -V | tail -1)
    printf 'module kaas.local/addons/%s\n\ngo %s\n\nrequire %s %s\n' \
      "$name" "$goversion" "$mod" "$ver" >go.mod
    go build -ldflags "-s -w" -o "$out/bin/$name.tmp" "$pkg"
  )
  mv "$out/bin/$name.tmp" "$out/bin/$name"
  log "$name: built in $((SECONDS - t)) s"
  echo "$name $((SECONDS - t))" >>"$out/timings"
}
go_tool bundle go.yaml.in/yaml/v3 "$YAML_VERSION" . "$here/bundle"

# --- renderers: each writes manifests/<addon>-<version>.yaml once and prints its path ---
render_metrics() { # render_metrics VERSION
  local v=$1 f=$out/manifests/metrics-server-$1.yaml d
  if [ ! -f "$f" ]; then
    d=$(mod_dir "sigs.k8s.io/metrics-server@$v")
    # The release overlay sets the release image; the base alone names the staging image.
    kubectl kustomize "$d/manifests/overlays/release" >"$f.tmp" 2> >(grep -v "'commonLabels' is deprecated" >&2)
    grep -q "image: registry.k8s.io/metrics-server/metrics-server:$v\$" "$f.tmp" ||
      { log "error: metrics-server $v: release image not found in the rendered manifest"; exit 1; }
    mv "$f.tmp" "$f"
    source_line "$f" "sigs.k8s.io/metrics-server@$v" "manifests/overlays/release (kubectl kustomize)"
  fi
  echo "$f"
}

render_ingress_nginx() { # render_ingress_nginx VERSION
  local v=$1 f=$out/manifests/ingress-nginx-$1.yaml d
  if [ ! -f "$f" ]; then
    d=$(mod_dir "k8s.io/ingress-nginx@$v")
    [ -f "$d/deploy/static/provider/cloud/deploy.yaml" ] ||
      { log "error: k8s.io/ingress-nginx@$v has no deploy/static/provider/cloud/deploy.yaml"; exit 1; }
    # The IngressClass is marked the cluster's default (scs-0219: a default IngressClass), so that
    # Ingresses without ingressClassName are served.
    awk '/^---/ { ic = 0 } /^kind: IngressClass$/ { ic = 1 } { print }
      ic && /^metadata:$/ { print "  annotations:"; print "    ingressclass.kubernetes.io/is-default-class: \"true\""; ic = 0 }' \
      "$d/deploy/static/provider/cloud/deploy.yaml" >"$f.tmp"
    [ "$(grep -c 'ingressclass.kubernetes.io/is-default-class: "true"' "$f.tmp")" = 1 ] ||
      { log "error: ingress-nginx $v: cannot mark exactly one IngressClass default"; exit 1; }
    mv "$f.tmp" "$f"
    source_line "$f" "k8s.io/ingress-nginx@$v" \
      "deploy/static/provider/cloud/deploy.yaml (IngressClass nginx annotated default)"
  fi
  echo "$f"
}
ingress_nginx_app_version() { # the controller version the manifest installs (without "v")
  local app
  app=$(awk '$1 == "app.kubernetes.io/version:" {gsub(/"/, "", $2); print $2; exit}' "$1")
  grep -q "image: registry.k8s.io/ingress-nginx/controller:v$app@" "$1" ||
    { log "error: $1: controller image does not match version $app"; exit 1; }
  echo "$app"
}

render_gateway_api() { # render_gateway_api VERSION
  local v=$1 f=$out/manifests/gateway-api-standard-$1.yaml d y
  if [ ! -f "$f" ]; then
    d=$(mod_dir "sigs.k8s.io/gateway-api@$v")
    : >"$f.tmp"
    # As upstream's standard-install.yaml: every file of the standard channel, in name order.
    for y in "$d"/config/crd/standard/*.yaml; do
      { echo "---"; cat "$y"; echo; } >>"$f.tmp"
    done
    mv "$f.tmp" "$f"
    source_line "$f" "sigs.k8s.io/gateway-api@$v" "config/crd/standard/*.yaml"
  fi
  echo "$f"
}

helm_tool() { # helm is built once, for the first chart that needs it (progress on stderr)
  : "${HELM_VERSION:?}"
  go_tool helm helm.sh/helm/v4 "$HELM_VERSION" helm.sh/helm/v4/cmd/helm >&2
}

render_cert_manager() { # render_cert_manager VERSION
  local v=$1 f=$out/manifests/cert-manager-$1.yaml d chart
  if [ ! -f "$f" ]; then
    helm_tool
    d=$(mod_dir "github.com/cert-manager/cert-manager@$v")
    chart=$out/src/cert-manager-chart-$v
    rm -rf "$chart"
    cp -r "$d/deploy/charts/cert-manager" "$chart"
    chmod -R u+w "$chart"
    # As cert-manager's release (make/manifests.mk): the chart's version and appVersion are the
    # release; the static manifest is the namespace and `helm template` with these flags.
    sed -i -E "s/^version: .*/version: $v/; s/^appVersion: .*/appVersion: $v/" "$chart/Chart.yaml"
    {
      cat "$d/deploy/manifests/namespace.yaml"
      "$out/bin/helm" template --kube-version=1.29.0 --api-versions="" --namespace=cert-manager \
        --set=crds.enabled=true --set=creator=static --set=startupapicheck.enabled=false \
        cert-manager "$chart"
    } >"$f.tmp"
    grep -q "image: \"quay.io/jetstack/cert-manager-controller:$v\"" "$f.tmp" ||
      { log "error: cert-manager $v: controller image not found in the rendered manifest"; exit 1; }
    mv "$f.tmp" "$f"
    source_line "$f" "github.com/cert-manager/cert-manager@$v" \
      "deploy/manifests/namespace.yaml + deploy/charts/cert-manager (helm $HELM_VERSION template)"
  fi
  echo "$f"
}

render_envoy_gateway() { # render_envoy_gateway VERSION MINOR: Envoy Gateway and its GatewayClass
  local v=$1 minor=$2 f=$out/manifests/envoy-gateway-$1-k$2.yaml d chart crds
  if [ ! -f "$f" ]; then
    helm_tool
    d=$(mod_dir "github.com/envoyproxy/gateway@$v")
    chart=$out/src/envoy-gateway-chart-$v
    rm -rf "$chart"
    cp -r "$d/charts/gateway-helm" "$chart"
    chmod -R u+w "$chart"
    # As Envoy Gateway's release (tools/make/helm.mk): values.yaml is values.tmpl.yaml with the
    # release image, the chart's version and appVersion are the release.
    [ -f "$chart/values.tmpl.yaml" ] ||
      { log "error: github.com/envoyproxy/gateway@$v has no charts/gateway-helm/values.tmpl.yaml"; exit 1; }
    sed -e "s|\${GatewayImage}|docker.io/envoyproxy/gateway:$v|; s|\${GatewayImagePullPolicy}|IfNotPresent|" \
      "$chart/values.tmpl.yaml" >"$chart/values.yaml"
    sed -i -E "s/^version: .*/version: $v/; s/^appVersion: .*/appVersion: \"$v\"/" "$chart/Chart.yaml"
    # Envoy Gateway's own CRDs, as the chart's crds subchart holds them; not its copy of the
    # Gateway API CRDs (experimental channel): the gatewayAPI addon ships the pinned standard
    # channel. The EnvoyProxy CRD (1.4 MB) would not fit a ConfigMap: over 800 KiB, a CRD loses
    # its schema's descriptions (nothing else; see addons/bundle).
    crds=$chart/charts/crds/crds/generated
    [ -d "$crds" ] || { log "error: github.com/envoyproxy/gateway@$v: no $crds"; exit 1; }
    {
      for y in "$crds"/*.yaml; do
        echo "---"
        cat "$y"
        echo
      done | "$out/bin/bundle" -strip-descriptions-over $((800 * 1024)) 2> >(sed 's/^/[addons\/build] envoy-gateway: /' >&2)
      echo "---"
      # Rendered for the bundle's Kubernetes minor; the namespace as upstream's install.yaml.
      # Without Helm, the certgen Job (a pre-install hook) runs once and stays: with its
      # ttlSecondsAfterFinished it would be deleted and re-applied on every reconcile.
      "$out/bin/helm" template --kube-version="$minor.0" --namespace=envoy-gateway-system \
        --set=createNamespace=true --set=crds.enabled=false \
        --set=certgen.job.ttlSecondsAfterFinished=null eg "$chart"
      # The default GatewayClass (kaas' own): Gateways name it as gatewayClassName.
      cat <<EOF
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: eg
  labels:
    app.kubernetes.io/managed-by: kaas
spec:
  controllerName: gateway.envoyproxy.io/gatewayclass-controller
  description: Envoy Gateway $v, the cluster's default GatewayClass
EOF
    } >"$f.tmp"
    grep -q "image: docker.io/envoyproxy/gateway:$v\$" "$f.tmp" ||
      { log "error: envoy-gateway $v: controller image not found in the rendered manifest"; exit 1; }
    grep -q "controllerName: gateway.envoyproxy.io/gatewayclass-controller" "$f.tmp" ||
      { log "error: envoy-gateway $v: the chart's controllerName changed"; exit 1; }
    mv "$f.tmp" "$f"
    source_line "$f" "github.com/envoyproxy/gateway@$v" \
      "charts/gateway-helm/charts/crds/crds/generated/*.yaml + charts/gateway-helm (helm $HELM_VERSION template --kube-version=$minor.0) + GatewayClass eg"
  fi
  echo "$f"
}

render_kaas_base() { # render_kaas_base BUNDLE MINOR RELEASE SUMMARY: kaas' own, not upstream
  local f=$out/manifests/kaas-base-$1.yaml
  cat >"$f" <<EOF
# The stack's own base addon (written by addons/build.sh, not upstream): the kaas-system namespace
# and a ConfigMap saying which bundle and stack release the cluster runs. No pod runs in
# kaas-system, so it enforces the restricted Pod Security Standard.
apiVersion: v1
kind: Namespace
metadata:
  name: kaas-system
  labels:
    app.kubernetes.io/managed-by: kaas
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/audit: restricted
    pod-security.kubernetes.io/warn: restricted
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: kaas-stack
  namespace: kaas-system
  labels:
    app.kubernetes.io/managed-by: kaas
data:
  bundle: $1
  kubernetesMinor: "$2"
  stackRelease: $3
  addons: |
$(sed 's/^/    /' <<<"$4")
EOF
  echo "$f"
}

# --- bundles ---
build_bundle() { # build_bundle BUNDLE MINOR RELEASE
  local b=$1 minor=$2 release=$3 mv gv ev iv cv m g gimpl i iav c summary base
  mv=$(pin METRICS_SERVER_VERSION "$minor")
  gv=$(pin GATEWAY_API_VERSION "$minor")
  ev=$(pin ENVOY_GATEWAY_VERSION "$minor")
  iv=$(pin INGRESS_NGINX_VERSION "$minor")
  cv=$(pin CERT_MANAGER_VERSION "$minor")
  m=$(render_metrics "$mv")
  i=$(render_ingress_nginx "$iv")
  iav=$(ingress_nginx_app_version "$i")
  g=$(render_gateway_api "$gv")
  # gatewayAPI: the standard-channel CRDs, then Envoy Gateway and its GatewayClass (one addon, so
  # that the CRDs are applied before the GatewayClass). Without an Envoy Gateway pin: the
  # implementation-neutral CRDs only, which serve whichever implementation a Cluster chose.
  gimpl=-
  if [ -n "$ev" ]; then
    g="$g,$(render_envoy_gateway "$ev" "$minor")"
    gimpl=envoy-gateway
  fi
  c=
  [ -z "$cv" ] || c=$(render_cert_manager "$cv")
  # NAME STAGE VERSION IMPLEMENTATION FILE[,FILE…] (see addons/bundle).
  local ext
  ext="metrics extension ${mv#v} - $m
ingress extension $iav nginx $i
gatewayAPI extension ${gv#v} $gimpl $g"
  [ -z "$c" ] || ext="$ext
certManager extension ${cv#v} - $c"
  summary=$(awk '{print "- {name: " $1 ", stage: " $2 ", version: \"" $3 "\"" ($4 == "-" ? "" : ", implementation: " $4) "}"}' <<<"$ext")
  base=$(render_kaas_base "$b" "$minor" "$release" "$summary")
  log "$b: packing ($(wc -l <<<"$ext") extensions, 1 base addon)"
  # kaas-base is versioned by its content.
  printf 'kaas-base base %s - %s\n%s\n' "$(sha256sum "$base" | cut -c1-12)" "$base" "$ext" |
    "$out/bin/bundle" -bundle "$b" -namespace "$BUNDLE_NAMESPACE" -out "$out/bundles/$b" |
    sed "s/^/$b /" >>"$out/sizes"
}

: >"$out/sizes"
t=$SECONDS
for entry in $BUNDLES; do
  IFS=: read -r b minor release <<<"$entry"
  [ -n "$b" ] && [ -n "$minor" ] && [ -n "$release" ] ||
    { log "error: BUNDLES entry $entry: want <bundle>:<minor>:<stack release>"; exit 1; }
  build_bundle "$b" "$minor" "$release"
done
echo "bundles $((SECONDS - t))" >>"$out/timings"

cp "$here/versions.env" "$out/versions.env"
echo "total $((SECONDS - t_all))" >>"$out/timings"
log "all built in $((SECONDS - t_all)) s: $out"
while read -r b cm size bytes docs; do
  log "  $b  $cm  $((size / 1024)) KiB ($((bytes / 1024)) KiB file)  $docs documents"
done <"$out/sizes"
touch "$out/.complete"
done_
