//! The persistent local plane of `kaas dev up/down/env`: the same components as the test plane,
//! started detached (own sessions, pid files) in a fixed directory; etcd keeps its data (with
//! fsync) and the plane keeps its CA, ServiceAccount key and, when free, its ports across restarts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::capi::MANAGERS;
use crate::plane::{Layout, Plane, PlaneOptions};
use crate::process::{Mode, pid_alive, stop_pid};

/// Options of [`dev_up`].
#[derive(Clone, Debug)]
pub struct DevOptions {
    /// Directory; `None` is [`default_dev_dir`].
    pub dir: Option<PathBuf>,
    /// What to start. The default starts everything including the Cluster API managers and
    /// builds the plane if it is missing.
    pub plane: PlaneOptions,
}

impl Default for DevOptions {
    fn default() -> Self {
        Self {
            dir: None,
            plane: PlaneOptions {
                build_if_missing: true,
                ..PlaneOptions::with_capi()
            },
        }
    }
}

/// A persistent plane's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevStatus {
    /// Its directory.
    pub dir: PathBuf,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    /// Components and their pids, in start order.
    pub processes: Vec<(String, i32)>,
    /// Whether `dev_up` found it already running (and started nothing).
    pub already_running: bool,
    /// Start-up time in milliseconds (0 if it was already running).
    pub startup_ms: u64,
}

/// `$KAAS_DEV_DIR`, else `$XDG_STATE_HOME/kaas/dev`, else `~/.local/state/kaas/dev`.
pub fn default_dev_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KAAS_DEV_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
                .join(".local/state")
        });
    state.join("kaas/dev")
}

/// Binary of each component, to check that a pid from a pid file is still ours.
fn binary_of(name: &str) -> Option<&'static str> {
    match name {
        "etcd" => Some("etcd"),
        "kube-apiserver" => Some("kube-apiserver"),
        "kube-controller-manager" => Some("kube-controller-manager"),
        _ => MANAGERS.iter().find(|m| m.name == name).map(|m| m.binary),
    }
}

/// Stop order: managers (last started first), then the controller manager, API server, etcd.
fn stop_order() -> Vec<&'static str> {
    let mut v: Vec<&str> = MANAGERS.iter().rev().map(|m| m.name).collect();
    v.extend(["kube-controller-manager", "kube-apiserver", "etcd"]);
    v
}

fn is_ours(name: &str, pid: i32) -> bool {
    let Some(bin) = binary_of(name) else {
        return false;
    };
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .and_then(|c| {
            c.split(|b| *b == 0)
                .next()
                .map(|a| String::from_utf8_lossy(a).into_owned())
        })
        .is_some_and(|argv0| argv0.ends_with(&format!("/{bin}")))
}

/// Recorded pids (`pids/<component>.pid`), start order, only those alive and still ours.
fn recorded(dir: &Path) -> Vec<(String, i32)> {
    let mut out: Vec<(String, i32)> = stop_order()
        .into_iter()
        .rev()
        .filter_map(|name| {
            let pid: i32 = std::fs::read_to_string(dir.join("pids").join(format!("{name}.pid")))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            (pid_alive(pid) && is_ours(name, pid)).then(|| (name.to_string(), pid))
        })
        .collect();
    out.dedup();
    out
}

/// The state of the plane in `dir`: `None` unless etcd and kube-apiserver run.
pub fn dev_status(dir: &Path) -> Result<Option<DevStatus>> {
    let processes = recorded(dir);
    let running = |n: &str| processes.iter().any(|(p, _)| p == n);
    if !(running("etcd") && running("kube-apiserver")) {
        return Ok(None);
    }
    let ports: crate::PlanePorts = serde_json::from_slice(&std::fs::read(dir.join("ports.json"))?)?;
    Ok(Some(DevStatus {
        dir: dir.to_path_buf(),
        kubeconfig: dir.join("kubeconfig"),
        server: format!("https://127.0.0.1:{}", ports.apiserver),
        processes,
        already_running: true,
        startup_ms: 0,
    }))
}

/// Starts the persistent plane (detached; it outlives this process) unless it already runs
/// completely; leftovers of a half-running one are stopped first. Returns where it is.
pub async fn dev_up(opts: DevOptions) -> Result<DevStatus> {
    let dir = opts.dir.clone().unwrap_or_else(default_dev_dir);
    if let Some(status) = dev_status(&dir)? {
        let want_capi = opts.plane.capi_managers;
        let has_capi = MANAGERS
            .iter()
            .all(|m| status.processes.iter().any(|(n, _)| n == m.name));
        if status
            .processes
            .iter()
            .any(|(n, _)| n == "kube-controller-manager")
            && (has_capi || !want_capi)
        {
            return Ok(status);
        }
    }
    dev_down(&dir)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let layout = Layout {
        dir: dir.clone(),
        tmp: None,
        mode: Mode::Detached,
        persistent: true,
    };
    let plane = Plane::launch(opts.plane, layout).await?;
    let status = DevStatus {
        dir: dir.clone(),
        kubeconfig: plane.kubeconfig_path(),
        server: plane.server_url(),
        processes: plane.pids(),
        already_running: false,
        startup_ms: plane.startup_time().as_millis() as u64,
    };
    // Detached: dropping the handle leaves the processes running.
    drop(plane);
    Ok(status)
}

/// Stops the persistent plane in `dir` (SIGTERM, SIGKILL after 10 s each); returns the stopped
/// components. Data stays for the next `dev_up`.
pub fn dev_down(dir: &Path) -> Result<Vec<String>> {
    let mut stopped = Vec::new();
    for name in stop_order() {
        let pid_file = dir.join("pids").join(format!("{name}.pid"));
        let Ok(text) = std::fs::read_to_string(&pid_file) else {
            continue;
        };
        if let Ok(pid) = text.trim().parse::<i32>()
            && pid_alive(pid)
            && is_ours(name, pid)
            && stop_pid(pid, Duration::from_secs(10))
        {
            stopped.push(name.to_string());
        }
        std::fs::remove_file(&pid_file)?;
    }
    Ok(stopped)
}

/// Shell lines that point `kubectl` at the persistent plane in `dir`.
pub fn dev_env(dir: &Path) -> Result<String> {
    let kubeconfig = dir.join("kubeconfig");
    if !kubeconfig.is_file() {
        bail!("no plane in {} (run `kaas dev up`)", dir.display());
    }
    Ok(format!(
        "export KUBECONFIG={}\n",
        shell_quote(&kubeconfig.display().to_string())
    ))
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_order() {
        assert_eq!(shell_quote("/a/b"), "/a/b");
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
        let order = stop_order();
        assert_eq!(order.first(), Some(&"capd-in-memory"));
        assert_eq!(order.last(), Some(&"etcd"));
    }
}
