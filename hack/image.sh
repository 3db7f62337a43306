#!/usr/bin/env bash
# Builds the kaas container image with podman from a built `kaas` binary (Containerfile): no base
# image, nothing RUN in a container. The root filesystem holds the binary, the shared libraries
# it links and the dynamic loader (found with ldd), /etc/passwd and /etc/group with the non-root
# user kaas (65532), /etc/nsswitch.conf and the CA bundle.
#
#   hack/image.sh [--binary PATH] [--tag IMAGE] [--save FILE]
#
#   --binary PATH  the kaas binary (default target/release/kaas: cargo build --release -p kaas)
#   --tag IMAGE    the image name (default localhost/kaas:<version of the binary>)
#   --save FILE    also write the image as an OCI archive (podman save --format oci-archive)
#
# Prints the image ID on stdout, progress on stderr. Publish it with
#   podman push localhost/kaas:0.1.0 registry.example.org/kaas/kaas:0.1.0
# (docs/install.md). Needs: podman, ldd, and the CA bundle /etc/ssl/certs/ca-certificates.crt
# (Debian: apt-get install podman ca-certificates).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
binary=$repo/target/release/kaas
tag=
save=
usage() { echo "usage: $0 [--binary PATH] [--tag IMAGE] [--save FILE]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) [ $# -ge 2 ] || usage; binary=$2; shift 2 ;;
    --tag) [ $# -ge 2 ] || usage; tag=$2; shift 2 ;;
    --save) [ $# -ge 2 ] || usage; save=$2; shift 2 ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage ;;
  esac
done

log() { printf '[image] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ -f "$binary" ] && [ -x "$binary" ] ||
  die "no kaas binary at $binary (cargo build --release -p kaas, or pass --binary)"
command -v podman >/dev/null || die "podman is needed (Debian: apt-get install podman)"
command -v ldd >/dev/null || die "ldd is needed (Debian: libc-bin)"
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca_bundle" ] || die "no CA bundle at $ca_bundle (Debian: apt-get install ca-certificates)"

# `kaas --version` prints "kaas <version>".
version=$("$binary" --version | awk '$1 == "kaas" {print $2; exit}')
[ -n "$version" ] || die "$binary --version does not print 'kaas <version>'"
[ -n "$tag" ] || tag=localhost/kaas:$version
# From the workspace manifest: the labels say where the source is and under which licence.
workspace_field() {
  sed -n '/^\[workspace.package\]/,/^\[/ s/^'"$1"' = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -1
}
source_url=$(workspace_field repository)
licenses=$(workspace_field license)
revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$revision" != unknown ] && [ -n "$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  revision=$revision-dirty
fi

context=$(mktemp -d "${TMPDIR:-/tmp}/kaas-image.XXXXXX")
trap 'rm -rf "$context"' EXIT
root=$context/rootfs
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp"
chmod 1777 "$root/tmp"
install -m 0755 "$binary" "$root/usr/local/bin/kaas"

# Shared libraries and the loader, each at the path the binary's dependencies resolve to here
# (`name => /path (addr)`; the loader line is `/path (addr)`). Copied dereferenced: the image
# holds files, not links into a tree it does not have.
libs=$(ldd "$binary" 2>&1) || true
if grep -qE 'not a dynamic executable|statically linked' <<<"$libs"; then
  log "$binary is statically linked: no libraries to copy"
else
  ! grep -q 'not found' <<<"$libs" || die "ldd cannot resolve every library of $binary: $libs"
  n=0
  while read -r path; do
    [ -n "$path" ] || continue
    mkdir -p "$root$(dirname "$path")"
    cp -L "$path" "$root$path"
    n=$((n + 1))
  done < <(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$libs" | sort -u)
  [ "$n" -gt 0 ] || die "ldd names no library of $binary: $libs"
  log "copied $n shared objects (the libraries and the loader):"
  awk '$2 == "=>" && $3 ~ /^\// {print "  " $3} $1 ~ /^\// {print "  " $1}' <<<"$libs" | sort -u >&2
fi

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
kaas:x:65532:65532:kaas:/nonexistent:/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
kaas:x:65532:
EOF
cat >"$root/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF
cp -L "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"
chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/nsswitch.conf" \
  "$root/etc/ssl/certs/ca-certificates.crt"

log "building $tag (kaas $version, $(du -sh "$root" | cut -f1) root filesystem)"
podman build --quiet --layers=false \
  --file "$repo/Containerfile" \
  --tag "$tag" \
  --build-arg "VERSION=$version" \
  --build-arg "REVISION=$revision" \
  --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --build-arg "SOURCE=$source_url" \
  --build-arg "LICENSES=$licenses" \
  "$context" >/dev/null
id=$(podman image inspect --format '{{.Id}}' "$tag")
log "built $tag ($id)"

if [ -n "$save" ]; then
  rm -f "$save"
  podman save --quiet --format oci-archive --output "$save" "$tag"
  log "saved $tag to $save"
fi
echo "$id"
