//! Child processes of the plane: spawning (own process group, dies with the test process),
//! killing, logs, free ports, tiny HTTP probes and the machine-wide lock of the in-memory backend.
//! Public so the hosted control-plane runtime (crates/hosted) supervises its processes the same way.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What to start.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
    /// A file descriptor the child inherits (the in-memory backend's lock).
    pub inherit_fd: Option<RawFd>,
}

/// How children relate to the current process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Own process group, SIGKILLed when the process that started them exits (tests).
    Attached,
    /// Own session, survives us (`kaas dev up`); stopped through pid files.
    Detached,
}

/// A running component.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    pub pid: i32,
    pub log: PathBuf,
    child: Child,
    reaped: Option<ExitStatus>,
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child ends, so attached children are
/// forked by one thread that lives as long as the process.
fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("kaas-harness-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawning the process-spawner thread");
        Mutex::new(tx)
    })
}

impl Proc {
    pub fn spawn(spec: &Spec, mode: Mode) -> Result<Proc> {
        if let Some(dir) = spec.log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .with_context(|| format!("opening {}", spec.log.display()))?;
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let inherit = spec.inherit_fd;
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure only calls async-signal-safe libc functions.
        unsafe {
            cmd.pre_exec(move || {
                match mode {
                    Mode::Attached => {
                        if libc::setpgid(0, 0) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        // The parent may have died between fork and prctl.
                        if libc::getppid() != parent {
                            libc::_exit(1);
                        }
                    }
                    Mode::Detached => {
                        if libc::setsid() < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                }
                if let Some(fd) = inherit {
                    libc::fcntl(fd, libc::F_SETFD, 0);
                }
                Ok(())
            });
        }
        let child = match mode {
            Mode::Attached => {
                let (tx, rx) = mpsc::channel();
                spawner()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .send((cmd, tx))?;
                rx.recv()?
            }
            Mode::Detached => cmd.spawn(),
        }
        .with_context(|| format!("starting {} ({})", spec.name, spec.program.display()))?;
        Ok(Proc {
            name: spec.name.clone(),
            pid: child.id() as i32,
            log: spec.log.clone(),
            child,
            reaped: None,
        })
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.reaped.is_none() {
            self.reaped = self.child.try_wait().ok().flatten();
        }
        self.reaped
    }

    /// Fails with the log tail if the process has ended.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.exited() {
            bail!(
                "{} exited ({status}) during start-up; last lines of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 40)
            );
        }
        Ok(())
    }

    /// SIGTERM to the process group, SIGKILL after `grace`, then reap.
    pub fn stop(&mut self, grace: Duration) {
        if self.exited().is_some() {
            return;
        }
        // Every child leads its own process group (setpgid or setsid in pre_exec).
        let group = -self.pid;
        if !grace.is_zero() {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(group, libc::SIGTERM) };
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if self.exited().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // SAFETY: plain kill(2).
        unsafe {
            libc::kill(group, libc::SIGKILL);
            libc::kill(self.pid, libc::SIGKILL);
        }
        self.reaped = self.child.wait().ok();
    }
}

/// Stops a process (group) known only by pid, e.g. from a pid file: SIGTERM, then SIGKILL.
pub fn stop_pid(pid: i32, grace: Duration) -> bool {
    if !pid_alive(pid) {
        return false;
    }
    // SAFETY: plain kill(2); detached children lead their own process group.
    unsafe {
        libc::kill(-pid, libc::SIGTERM);
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !pid_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Whether a process exists (and is not a zombie).
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks existence.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
        Err(_) => true,
    }
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(256 * 1024);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A free TCP port on 127.0.0.1, never handed out twice by this process.
pub fn free_port() -> Result<u16> {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(Default::default);
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        // The in-memory backend claims 19000 and 20000-24000 on every interface.
        if (19000..=24100).contains(&port) {
            continue;
        }
        if given.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return Ok(port);
        }
    }
    bail!("no free port found")
}

/// Whether a port on 127.0.0.1 can be bound right now.
pub fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// `GET http://127.0.0.1:<port><path>`: the status code, or None if nothing answered.
pub async fn http_status(port: u16, path: &str) -> Option<u16> {
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let req =
            format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        text.lines().next()?.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(3), probe)
        .await
        .ok()
        .flatten()
}

/// Whether something accepts TCP connections on 127.0.0.1:<port>.
pub async fn tcp_open(port: u16) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(("127.0.0.1", port))
        )
        .await,
        Ok(Ok(_))
    )
}

/// The machine-wide lock of the Docker provider's in-memory backend, which listens on the fixed
/// ports 19000 and 20000+ of every interface: only one such manager can run per machine. The lock
/// is an `flock` on a file in the temp dir; the manager process inherits the descriptor, so the
/// lock is held exactly as long as the manager lives, and the kernel drops it when it dies.
pub(crate) struct InMemoryLock {
    fd: OwnedFd,
}

impl InMemoryLock {
    pub(crate) fn path() -> PathBuf {
        std::env::temp_dir().join("kaas-capi-in-memory.lock")
    }

    /// Waits (up to `timeout`) for the lock.
    pub(crate) async fn acquire(timeout: Duration) -> Result<InMemoryLock> {
        let path = Self::path();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let fd: OwnedFd = file.into();
        let deadline = Instant::now() + timeout;
        let mut told = false;
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(InMemoryLock { fd });
            }
            if Instant::now() >= deadline {
                bail!(
                    "another Cluster API in-memory backend (a kaas plane with Cluster API managers, e.g. `kaas dev up` \
                     or another test binary) holds {} after waiting {timeout:?}; it owns the ports 19000 and 20000+. \
                     Stop it (`kaas dev down`) or run such tests one at a time.",
                    path.display()
                );
            }
            if !told {
                eprintln!(
                    "[kaas-harness] waiting for {} (another plane runs the Cluster API in-memory backend)",
                    path.display()
                );
                told = true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
