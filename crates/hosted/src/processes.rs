//! Supervision of a control plane's local processes so that they **outlive the runtime**: each
//! start writes a record (`run/<component>.json`: pid, program, arguments, version); a later
//! runtime adopts a process when its pid is alive and `/proc/<pid>/cmdline` names the recorded
//! program, and restarts it otherwise. [`stop_all`] stops everything recorded under a state
//! directory (`kaas dev down`). This is the only part a pods runtime would replace.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kaas_harness::process::{Mode, Proc, Spec, pid_alive};
use serde::{Deserialize, Serialize};

use crate::state::{Layout, control_plane_dirs, write_atomic};

/// The processes of one control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Component {
    /// etcd.
    Etcd,
    /// kube-apiserver.
    ApiServer,
    /// kube-controller-manager.
    ControllerManager,
    /// kube-scheduler.
    Scheduler,
    /// kwok (simulated kubelets).
    Kwok,
}

impl Component {
    /// Every component, in start order.
    pub const ALL: [Component; 5] = [
        Component::Etcd,
        Component::ApiServer,
        Component::ControllerManager,
        Component::Scheduler,
        Component::Kwok,
    ];

    /// The binary's name (also the record and log file name).
    pub fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::ApiServer => "kube-apiserver",
            Component::ControllerManager => "kube-controller-manager",
            Component::Scheduler => "kube-scheduler",
            Component::Kwok => "kwok",
        }
    }

    fn from_name(name: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// How to run one component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    /// Which.
    pub component: Component,
    /// Absolute path of the binary.
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
    /// Kubernetes version of the binary (control-plane components).
    pub version: Option<String>,
}

/// What was started: persisted as `run/<component>.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Process id (leader of its own process group).
    pub pid: i32,
    /// The binary.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Kubernetes version of the binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Record {
    /// Whether this record describes the launch (same binary, same arguments).
    pub fn matches(&self, launch: &Launch) -> bool {
        self.program == launch.program && self.args == launch.args
    }
}

/// Children this process started and has not reaped yet, by pid (so ended ones are reaped, not
/// left as zombies, whichever runtime instance in this process looks at them).
fn children() -> &'static Mutex<HashMap<i32, Proc>> {
    static CHILDREN: OnceLock<Mutex<HashMap<i32, Proc>>> = OnceLock::new();
    CHILDREN.get_or_init(Default::default)
}

fn reap(pid: i32) {
    let mut map = children().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = map.get_mut(&pid)
        && p.exited().is_some()
    {
        map.remove(&pid);
    }
}

/// Whether `pid` runs `program` (first word of `/proc/<pid>/cmdline`).
pub fn runs_program(pid: i32, program: &Path) -> bool {
    reap(pid);
    if !pid_alive(pid) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    argv0 == program.as_os_str().as_encoded_bytes()
}

fn record_path(layout: &Layout, c: Component) -> PathBuf {
    layout.run().join(format!("{}.json", c.name()))
}

/// The record of a component, if any (alive or not).
pub fn read_record(layout: &Layout, c: Component) -> Option<Record> {
    let bytes = std::fs::read(record_path(layout, c)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The components of a control plane that are running (their recorded process is alive and runs
/// the recorded program).
pub fn observe(layout: &Layout) -> BTreeMap<Component, Record> {
    Component::ALL
        .into_iter()
        .filter_map(|c| {
            let r = read_record(layout, c)?;
            runs_program(r.pid, &r.program).then_some((c, r))
        })
        .collect()
}

/// Starts a component and records it. Logs go to `logs/<component>.log` (rotated once past
/// 50 MiB).
pub fn start(layout: &Layout, launch: &Launch, mode: Mode) -> Result<Record> {
    let log = layout
        .logs()
        .join(format!("{}.log", launch.component.name()));
    if std::fs::metadata(&log).is_ok_and(|m| m.len() > 50 << 20) {
        let _ = std::fs::rename(&log, log.with_extension("log.1"));
    }
    let spec = Spec {
        name: launch.component.name().to_string(),
        program: launch.program.clone(),
        args: launch.args.iter().map(OsString::from).collect(),
        env: Vec::new(),
        log,
        inherit_fd: None,
    };
    let proc_ = Proc::spawn(&spec, mode)?;
    let record = Record {
        pid: proc_.pid,
        program: launch.program.clone(),
        args: launch.args.clone(),
        version: launch.version.clone(),
    };
    children()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(proc_.pid, proc_);
    write_atomic(
        &record_path(layout, launch.component),
        &serde_json::to_vec_pretty(&record)?,
    )
    .context("writing the process record")?;
    Ok(record)
}

/// The last lines of a component's log.
pub fn log_tail(layout: &Layout, c: Component, lines: usize) -> String {
    kaas_harness::process::tail(&layout.logs().join(format!("{}.log", c.name())), lines)
}

/// Processes running one of the components' binaries (by file name) whose arguments mention a path
/// under `dir`, other than `except`: left by a runtime that died between starting a process and
/// recording it. Every launch names a file of its control plane's directory, so none is missed.
pub fn strays(dir: &Path, except: &[i32]) -> Vec<(Component, i32)> {
    let prefix = format!("{}/", dir.display());
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if except.contains(&pid) || pid == std::process::id() as i32 {
            continue;
        }
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let Some(c) = args
            .first()
            .and_then(|a0| Path::new(a0).file_name())
            .and_then(|n| n.to_str())
            .and_then(Component::from_name)
        else {
            continue;
        };
        if args[1..].iter().any(|a| a.contains(&prefix)) && pid_alive(pid) {
            out.push((c, pid));
        }
    }
    out
}

/// Stops [`strays`] of a control plane (keeping the recorded, running ones). Returns them.
pub async fn stop_strays(
    layout: &Layout,
    running: &BTreeMap<Component, Record>,
) -> Vec<(Component, i32)> {
    let keep: Vec<i32> = running.values().map(|r| r.pid).collect();
    let found = strays(&layout.dir, &keep);
    if !found.is_empty() {
        tracing::warn!(dir = %layout.dir.display(), ?found, "stopping unrecorded processes of this control plane");
        let pids: Vec<i32> = found.iter().map(|(_, p)| *p).collect();
        terminate(&pids, GRACE).await;
    }
    found
}

/// SIGTERM to each process group, SIGKILL to what is still alive after `grace`. Returns the pids
/// that needed SIGKILL.
async fn terminate(pids: &[i32], grace: Duration) -> Vec<i32> {
    for &pid in pids {
        // SAFETY: plain kill(2); every component leads its own process group.
        unsafe {
            libc::kill(-pid, libc::SIGTERM);
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let alive = |pid: i32| {
        reap(pid);
        pid_alive(pid)
    };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && pids.iter().any(|p| alive(*p)) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    for &pid in &killed {
        // SAFETY: as above.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && killed.iter().any(|p| alive(*p)) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    killed
}

/// Grace period between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(10);

/// Stops one component if its recorded process runs, and removes its record. Returns its pid.
pub async fn stop(layout: &Layout, c: Component) -> Option<i32> {
    let r = read_record(layout, c)?;
    let running = runs_program(r.pid, &r.program);
    if running {
        terminate(&[r.pid], GRACE).await;
    }
    let _ = std::fs::remove_file(record_path(layout, c));
    running.then_some(r.pid)
}

/// A process [`stop_all`] stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stopped {
    /// Namespace of its `HostedControlPlane`.
    pub namespace: String,
    /// Name of its `HostedControlPlane`.
    pub name: String,
    /// Which component.
    pub component: Component,
    /// Its pid.
    pub pid: i32,
    /// Whether it ignored SIGTERM for the grace period and was SIGKILLed.
    pub killed: bool,
}

/// Stops every process of one control plane (kwok, scheduler, controller-manager, apiserver,
/// then etcd) and removes their records.
pub async fn stop_control_plane(layout: &Layout) -> Vec<(Component, i32, bool)> {
    let mut out = Vec::new();
    // Clients before servers: nothing logs connection errors for the grace period.
    for group in [
        &[
            Component::Kwok,
            Component::Scheduler,
            Component::ControllerManager,
        ][..],
        &[Component::ApiServer],
        &[Component::Etcd],
    ] {
        let running: Vec<(Component, i32)> = group
            .iter()
            .filter_map(|c| {
                let r = read_record(layout, *c)?;
                runs_program(r.pid, &r.program).then_some((*c, r.pid))
            })
            .collect();
        let pids: Vec<i32> = running.iter().map(|(_, p)| *p).collect();
        let killed = terminate(&pids, GRACE).await;
        for (c, pid) in running {
            out.push((c, pid, killed.contains(&pid)));
        }
        for c in group {
            let _ = std::fs::remove_file(record_path(layout, *c));
        }
    }
    for (c, pid) in stop_strays(layout, &BTreeMap::new()).await {
        out.push((c, pid, false));
    }
    out
}

/// Stops every workload control-plane process recorded under its state directory when dropped,
/// also from inside an async runtime (on a thread of its own): tests and fault injection never
/// leave detached workload processes behind, even when they fail.
pub struct StopAllOnDrop(pub PathBuf);

impl Drop for StopAllOnDrop {
    fn drop(&mut self) {
        let dir = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(stop_all(&dir)).ok()
        })
        .join();
    }
}

/// Stops every workload control-plane process recorded under `state_dir` (SIGTERM, SIGKILL after
/// a grace period) and returns what it stopped. The data stays: a runtime started later brings
/// the control planes back with it (`kaas dev down` / `kaas dev up`).
pub async fn stop_all(state_dir: &Path) -> Result<Vec<Stopped>> {
    let planes = control_plane_dirs(state_dir);
    let stops = planes.iter().map(|(ns, name)| async move {
        let layout = Layout::new(state_dir, ns, name);
        stop_control_plane(&layout)
            .await
            .into_iter()
            .map(|(component, pid, killed)| Stopped {
                namespace: ns.clone(),
                name: name.clone(),
                component,
                pid,
                killed,
            })
            .collect::<Vec<_>>()
    });
    let stopped: Vec<Stopped> = futures::future::join_all(stops)
        .await
        .into_iter()
        .flatten()
        .collect();
    // Records of anything else (a name we do not know) would be left: say so.
    for (ns, name) in &planes {
        let run = Layout::new(state_dir, ns, name).run();
        if let Ok(entries) = std::fs::read_dir(&run) {
            for e in entries.flatten() {
                let file = e.file_name().to_string_lossy().into_owned();
                if file
                    .strip_suffix(".json")
                    .and_then(Component::from_name)
                    .is_none()
                {
                    tracing::warn!(path = %e.path().display(), "unknown process record left in place");
                }
            }
        }
    }
    Ok(stopped)
}

/// Resident memory of each running component of a control plane: (component, pid, bytes).
pub fn rss(layout: &Layout) -> Vec<(Component, i32, u64)> {
    observe(layout)
        .into_iter()
        .filter_map(|(c, r)| {
            let status = std::fs::read_to_string(format!("/proc/{}/status", r.pid)).ok()?;
            let kib: u64 = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((c, r.pid, kib * 1024))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn start_adopt_stop() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path(), "ns", "cp");
        let sleep = PathBuf::from("/bin/sleep");
        let launch = Launch {
            component: Component::Kwok,
            program: sleep.clone(),
            args: vec!["300".into()],
            version: None,
        };
        let r = start(&layout, &launch, Mode::Attached).unwrap();
        assert!(r.matches(&launch));
        let seen = observe(&layout);
        assert_eq!(seen.get(&Component::Kwok).map(|r| r.pid), Some(r.pid));
        // A record whose pid runs something else is not adopted.
        assert!(!runs_program(r.pid, Path::new("/bin/true")));
        assert!(
            rss(&layout)
                .iter()
                .any(|(_, pid, b)| *pid == r.pid && *b > 0)
        );
        let stopped = stop_all(tmp.path()).await.unwrap();
        assert_eq!(stopped.len(), 1);
        assert_eq!(stopped[0].pid, r.pid);
        assert!(!stopped[0].killed);
        assert!(!pid_alive(r.pid));
        assert!(observe(&layout).is_empty());
        assert!(read_record(&layout, Component::Kwok).is_none());
    }

    #[tokio::test]
    async fn unrecorded_processes_are_found_by_their_arguments() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path(), "ns", "cp");
        let other = Layout::new(tmp.path(), "ns", "cp2");
        // A process named like a component (argv[0] `.../kwok`), started without a record.
        let spawn = |l: &Layout| {
            let file = l.kubeconfig("kwok");
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, "").unwrap();
            std::process::Command::new("/bin/bash")
                .arg("-c")
                .arg(format!(
                    "exec -a /opt/bin/kwok tail -f /dev/null {}",
                    file.display()
                ))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        };
        let mine = spawn(&layout);
        let theirs = spawn(&other);
        let mine_pid = mine.id() as i32;
        let theirs_pid = theirs.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(5);
        while strays(&layout.dir, &[]).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(strays(&layout.dir, &[]), [(Component::Kwok, mine_pid)]);
        assert!(strays(&layout.dir, &[mine_pid]).is_empty());
        let stopped = stop_control_plane(&layout).await;
        assert_eq!(stopped, [(Component::Kwok, mine_pid, false)]);
        let mut mine = mine;
        let _ = mine.wait();
        assert!(!pid_alive(mine_pid));
        assert!(pid_alive(theirs_pid));
        let mut theirs = theirs;
        let _ = theirs.kill();
        let _ = theirs.wait();
    }

    #[tokio::test]
    async fn sigkill_after_grace() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path(), "ns", "cp");
        let sh = PathBuf::from("/bin/sh");
        let launch = Launch {
            component: Component::Etcd,
            program: sh,
            args: vec![
                "-c".into(),
                "trap '' TERM; sleep 300 & wait; sleep 300".into(),
            ],
            version: None,
        };
        let r = start(&layout, &launch, Mode::Attached).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let killed = terminate(&[r.pid], Duration::from_millis(300)).await;
        assert_eq!(killed, [r.pid]);
        assert!(!pid_alive(r.pid));
    }
}
