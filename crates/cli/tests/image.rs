//! The container image (`Containerfile`, `hack/image.sh`): built with podman from this test's
//! `kaas` binary, then checked from the outside — podman's view of the configuration
//! (entrypoint, non-root user, labels) and the OCI archive `--save` writes (the same
//! configuration; its layers extracted) — and the extracted root filesystem runs `kaas` on its
//! own: in a chroot as the image's user with an empty environment, so that only the image's own
//! loader and libraries can be used. No container is run (none can be on every CI machine).
//!
//! Needs podman (hack/test.sh installs Debian's) and, for the chroot, root; without root the
//! binary runs through the image's loader with the image's library directories only.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const ENTRYPOINT: &str = "/usr/local/bin/kaas";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The image is removed again however the test ends.
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rmi", "--force", &self.0])
            .output();
    }
}

/// `uid:gid` of an image's `User`; both must be numbers (Kubernetes' runAsNonRoot cannot check
/// a name).
fn numeric_user(user: &str) -> (u32, u32) {
    let (u, g) = user.split_once(':').unwrap_or((user, ""));
    let uid = u
        .parse()
        .unwrap_or_else(|_| panic!("image user {user:?} is not numeric"));
    let gid = g
        .parse()
        .unwrap_or_else(|_| panic!("image group of {user:?} is not numeric"));
    (uid, gid)
}

/// The checks of an image configuration, the same for podman's view and the archive's.
fn check_config(config: &Value, what: &str) {
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!([ENTRYPOINT]),
        "{what}: entrypoint"
    );
    let (uid, gid) = numeric_user(config["User"].as_str().unwrap_or_default());
    assert!(uid != 0 && gid != 0, "{what}: runs as root ({uid}:{gid})");
    let labels = &config["Labels"];
    let label = |k: &str| {
        labels[format!("org.opencontainers.image.{k}")]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: label org.opencontainers.image.{k} missing"))
            .to_string()
    };
    assert_eq!(label("title"), "kaas", "{what}");
    assert_eq!(label("version"), env!("CARGO_PKG_VERSION"), "{what}");
    assert_eq!(label("licenses"), env!("CARGO_PKG_LICENSE"), "{what}");
    assert_eq!(label("source"), env!("CARGO_PKG_REPOSITORY"), "{what}");
    assert!(!label("revision").is_empty(), "{what}: revision label");
    assert!(
        label("created").starts_with("20") && label("created").ends_with('Z'),
        "{what}: created label is an RFC 3339 UTC time"
    );
}

/// Extracts the OCI archive `archive` (index → manifest → config, layers) into `dir`; returns
/// the image configuration and the root filesystem.
fn extract_oci_archive(archive: &Path, dir: &Path) -> (Value, PathBuf) {
    let layout = dir.join("oci");
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&layout).expect("oci dir");
    std::fs::create_dir_all(&rootfs).expect("rootfs dir");
    run(Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(&layout));
    let blob = |digest: &str| {
        let hex = digest
            .strip_prefix("sha256:")
            .unwrap_or_else(|| panic!("digest {digest}"));
        layout.join("blobs/sha256").join(hex)
    };
    let index = read_json(&layout.join("index.json"));
    let manifests = index["manifests"].as_array().expect("index.manifests");
    assert_eq!(manifests.len(), 1, "one image in the archive: {index}");
    let manifest = read_json(&blob(manifests[0]["digest"].as_str().expect("digest")));
    let config = read_json(&blob(
        manifest["config"]["digest"].as_str().expect("config"),
    ));
    let layers = manifest["layers"].as_array().expect("manifest.layers");
    // FROM scratch and one COPY of the prepared root filesystem.
    assert_eq!(layers.len(), 1, "one layer: {manifest}");
    for layer in layers {
        // GNU tar recognises the compression (gzip, zstd or none) itself.
        let file = blob(layer["digest"].as_str().expect("layer digest"));
        run(Command::new("tar")
            .arg("-xf")
            .arg(&file)
            .arg("-C")
            .arg(&rootfs));
    }
    (config, rootfs)
}

/// Every path below `root` (not following links).
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.expect("entry").path();
            if p.symlink_metadata().expect("metadata").is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// A program's path from `PATH` (the commands below run with an empty environment).
fn which(name: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not on PATH"))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs the image's `kaas` with `args` from the root filesystem alone, as the image's user, with
/// an empty environment.
fn run_from_image(rootfs: &Path, uid: u32, gid: u32, args: &[&str]) -> Output {
    if is_root() {
        run(Command::new(which("chroot"))
            .arg(format!("--userspec={uid}:{gid}"))
            .arg(rootfs)
            .arg(ENTRYPOINT)
            .args(args)
            .env_clear())
    } else {
        // Without a chroot the loader would fall back to the host's default directories for a
        // library the image lacks: first check that each one resolves inside the image.
        let loader = rootfs.join("lib64/ld-linux-x86-64.so.2");
        let lib_dirs: BTreeSet<PathBuf> = walk(rootfs)
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(".so"))
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect();
        let path = std::env::join_paths(&lib_dirs).expect("library path");
        let binary = rootfs.join(ENTRYPOINT.trim_start_matches('/'));
        let list = run(Command::new(&loader)
            .arg("--inhibit-cache")
            .arg("--library-path")
            .arg(&path)
            .arg("--list")
            .arg(&binary)
            .env_clear());
        for line in stdout(&list).lines() {
            if let Some((_, to)) = line.split_once("=> ") {
                assert!(
                    to.starts_with(&*rootfs.to_string_lossy()),
                    "a library resolves outside the image: {line}"
                );
            }
        }
        run(Command::new(&loader)
            .arg("--inhibit-cache")
            .arg("--library-path")
            .arg(&path)
            .arg(&binary)
            .args(args)
            .env_clear())
    }
}

#[test]
fn image_runs_kaas_as_non_root_from_its_own_contents() {
    let binary = env!("CARGO_BIN_EXE_kaas");
    let tmp = tempfile::Builder::new()
        .prefix("kaas-image-test-")
        .tempdir()
        .expect("temporary directory");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    let tag = format!("localhost/kaas-test:{}-{nanos}", std::process::id());
    let archive = tmp.path().join("kaas.oci.tar");

    let t0 = std::time::Instant::now();
    let built = Command::new("bash")
        .arg(repo().join("hack/image.sh"))
        .args(["--binary", binary, "--tag", &tag, "--save"])
        .arg(&archive)
        .output()
        .expect("running hack/image.sh (needs podman: hack/test.sh installs it)");
    let _image = Image(tag.clone());
    assert!(
        built.status.success(),
        "hack/image.sh failed ({}):\n{}",
        built.status,
        String::from_utf8_lossy(&built.stderr)
    );
    let id = stdout(&built);
    eprintln!("image {tag} ({id}) built in {:?}", t0.elapsed());

    // podman's view.
    let inspect: Value = serde_json::from_slice(
        &run(Command::new("podman").args(["image", "inspect", &tag])).stdout,
    )
    .expect("podman image inspect prints JSON");
    let image = &inspect[0];
    assert_eq!(
        image["Id"].as_str(),
        Some(id.as_str()),
        "hack/image.sh prints the image ID"
    );
    check_config(&image["Config"], "podman image inspect");
    assert_eq!(image["Os"].as_str(), Some("linux"));
    assert_eq!(
        image["RootFS"]["Layers"].as_array().map(Vec::len),
        Some(1),
        "FROM scratch and one COPY: one layer"
    );
    let (uid, gid) = numeric_user(image["Config"]["User"].as_str().expect("user"));
    // The chart runs the image as this user (runAsNonRoot needs the numeric user).
    let values: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("deploy/helm/kaas/values.yaml")).expect("values"),
    )
    .expect("values.yaml");
    let pod = &values["podSecurityContext"];
    assert_eq!(
        (pod["runAsUser"].as_u64(), pod["runAsGroup"].as_u64()),
        (Some(uid.into()), Some(gid.into())),
        "the chart's podSecurityContext and the image's user differ"
    );

    // The archive: the same configuration, and its root filesystem.
    let (config, rootfs) = extract_oci_archive(&archive, tmp.path());
    check_config(&config["config"], "the OCI archive");
    assert_eq!(config["os"].as_str(), Some("linux"));

    let in_image = rootfs.join(ENTRYPOINT.trim_start_matches('/'));
    assert!(
        std::fs::read(&in_image).expect("the binary is in the image")
            == std::fs::read(binary).expect("the test's binary"),
        "{ENTRYPOINT} is not the binary the image was built from"
    );
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).expect("/etc/passwd");
    assert!(
        passwd
            .lines()
            .any(|l| l.split(':').nth(2) == Some(&uid.to_string())),
        "no /etc/passwd entry for uid {uid}:\n{passwd}"
    );
    let group = std::fs::read_to_string(rootfs.join("etc/group")).expect("/etc/group");
    assert!(
        group
            .lines()
            .any(|l| l.split(':').nth(2) == Some(&gid.to_string())),
        "no /etc/group entry for gid {gid}:\n{group}"
    );
    let ca = std::fs::read_to_string(rootfs.join("etc/ssl/certs/ca-certificates.crt"))
        .expect("the CA bundle (GitSources fetch over HTTPS)");
    assert!(
        ca.contains("-----BEGIN CERTIFICATE-----"),
        "an empty CA bundle"
    );
    // Nothing the image's user could change: only /tmp is writable by others (and sticky).
    for p in walk(&rootfs) {
        let meta = p.symlink_metadata().expect("metadata");
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        let rel = p.strip_prefix(&rootfs).expect("below rootfs");
        if rel == Path::new("tmp") {
            assert_eq!(mode & 0o7777, 0o1777, "/tmp");
        } else {
            assert_eq!(mode & 0o022, 0, "/{} is writable by others", rel.display());
        }
    }

    // The root filesystem alone runs kaas, as the image's user.
    let want = stdout(&run(Command::new(binary).arg("--version")));
    assert_eq!(want, format!("kaas {}", env!("CARGO_PKG_VERSION")));
    let version = run_from_image(&rootfs, uid, gid, &["--version"]);
    assert_eq!(stdout(&version), want);
    let crds = run_from_image(&rootfs, uid, gid, &["crds"]);
    assert!(
        stdout(&crds).contains("name: clusters.scs.community"),
        "kaas crds from the image printed no CRDs"
    );
    eprintln!("image test done in {:?}", t0.elapsed());
}
