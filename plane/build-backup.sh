#!/usr/bin/env bash
# Builds the tools of etcd backups (docs/backup.md) from pinned Go modules into their own cache
# directory, apart from plane/build.sh so that adding or bumping them never rebuilds the plane:
#
#   bin/etcdutl    go.etcd.io/etcd/etcdutl/v3 at ETCD_VERSION (plane/versions.env): the hosted
#                  runtime restores snapshots with `etcdutl snapshot restore`
#   bin/versitygw  github.com/versity/versitygw at VERSITYGW_VERSION (below; Apache-2.0): the
#                  S3-compatible object store the tests start (kaas_harness::s3, posix backend)
#
#   plane/build-backup.sh              build what is missing
#   plane/build-backup.sh --print-dir  the same, then print the cache directory on stdout
#   plane/build-backup.sh --print-dir --no-build
#                                      only print it if the build is complete, else fail (exit 3)
#
# Environment: KAAS_CACHE (cache root, default ~/.cache/kaas), the usual Go variables.
set -euo pipefail
{
here=$(cd "$(dirname "$0")" && pwd)
VERSITYGW_VERSION=v1.8.0
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
: "${ETCD_VERSION:?}"
key=$( (grep '^ETCD_VERSION=' "$here/versions.env"; cat "$here/build-backup.sh") | sha256sum | cut -c1-12)
root=${KAAS_CACHE:-$HOME/.cache/kaas}/backup
out=$root/etcd-${ETCD_VERSION}-versitygw-${VERSITYGW_VERSION}-${key}

log() { printf '[plane/build-backup %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
done_() {
  $print_dir && echo "$out"
  exit 0
}
[ -f "$out/.complete" ] && { log "up to date: $out"; done_; }
$no_build && { log "not built yet: $out (run plane/build-backup.sh)"; exit 3; }

mkdir -p "$root"
if command -v flock >/dev/null; then
  exec 9>"$root/.lock-$key"
  if ! flock -n 9; then
    log "another build of $out is running; waiting for it"
    flock 9
  fi
  [ -f "$out/.complete" ] && { log "up to date: $out"; done_; }
fi
command -v go >/dev/null || { log "error: the go command is needed"; exit 1; }
export GOFLAGS="-mod=mod -trimpath -buildvcs=false"
export CGO_ENABLED=0
mkdir -p "$out/bin" "$out/src"
t_all=$SECONDS

mod_field() { go mod download -json "$1" | sed -n "s/^[[:space:]]*\"$2\": \"\(.*\)\",\{0,1\}$/\1/p"; }
go_directive() { awk '/^go /{print $2; exit}' "$1"; }
build() { # build NAME MODULE VERSION PACKAGE
  local name=$1 module=$2 version=$3 pkg=$4 t=$SECONDS
  [ -x "$out/bin/$name" ] && { log "$name: already built"; return; }
  mkdir -p "$out/src/$name"
  (
    cd "$out/src/$name"
    gomod=$(mod_field "$module@$version" GoMod)
    [ -f "$gomod" ] || { log "error: cannot download $module@$version"; exit 1; }
    printf 'module kaas.local/backup/%s\n\ngo %s\n\nrequire %s %s\n' \
      "$name" "$(go_directive "$gomod")" "$module" "$version" >go.mod
    log "$name: building $pkg"
    go build -ldflags "-s -w" -o "$out/bin/$name.tmp" "$pkg"
  )
  mv "$out/bin/$name.tmp" "$out/bin/$name"
  log "$name: built in $((SECONDS - t)) s"
}
build etcdutl go.etcd.io/etcd/etcdutl/v3 "$ETCD_VERSION" go.etcd.io/etcd/etcdutl/v3
build versitygw github.com/versity/versitygw "$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw
log "all built in $((SECONDS - t_all)) s: $out"
touch "$out/.complete"
done_
exit 0
}
