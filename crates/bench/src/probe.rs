//! Measuring processes and servers from the outside: memory and CPU time from `/proc`, the
//! operator's Prometheus endpoint, and the API server's request counters.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Memory and CPU of one process at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcSample {
    /// Peak resident set (`VmHWM`), bytes.
    pub hwm: u64,
    /// Resident set now (`VmRSS`), bytes.
    pub rss: u64,
    /// User + system CPU time, seconds.
    pub cpu: f64,
}

fn kib_field(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// Reads `/proc/<pid>/status` and `/proc/<pid>/stat`; `None` once the process is gone.
pub fn sample(pid: i32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3 (state);
    // utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu = (ticks(11)? + ticks(12)?) as f64 / hz;
    Some(ProcSample {
        hwm: kib_field(&status, "VmHWM:")?,
        rss: kib_field(&status, "VmRSS:")?,
        cpu,
    })
}

/// Samples a process periodically in the background; keeps the last sample and the highest RSS
/// seen (the kernel's `VmHWM` is the authoritative peak; sampling only keeps it readable after
/// the process exits).
pub struct Sampler {
    pid: i32,
    last: Arc<Mutex<ProcSample>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    /// Starts sampling `pid` every `every`.
    pub fn start(pid: i32, every: Duration) -> Self {
        let last = Arc::new(Mutex::new(sample(pid).unwrap_or_default()));
        let l = last.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match sample(pid) {
                    Some(s) => {
                        let mut last = l.lock().unwrap_or_else(|e| e.into_inner());
                        let hwm = last.hwm.max(s.hwm).max(s.rss);
                        *last = ProcSample { hwm, ..s };
                    }
                    None => return,
                }
            }
        });
        Sampler { pid, last, task }
    }

    /// The latest sample (taking a fresh one if the process still runs).
    pub fn now(&self) -> ProcSample {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = sample(self.pid) {
            let hwm = last.hwm.max(s.hwm).max(s.rss);
            *last = ProcSample { hwm, ..s };
        }
        *last
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A plain HTTP/1.0 GET of `path` on `127.0.0.1:port`; the body.
pub async fn http_get(port: u16, path: &str) -> Result<String> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        anyhow::Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .context("HTTP GET timed out")??;
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP header")?;
    let ok = head
        .lines()
        .next()
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("200"));
    anyhow::ensure!(ok, "GET {path}: {}", head.lines().next().unwrap_or(""));
    Ok(body.to_string())
}

/// Sum of a Prometheus counter over the series whose labels contain every `(key, value)`.
pub fn counter(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((m, r)) => (m, r.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let ls = parse_labels(rest);
            labels
                .iter()
                .all(|(k, v)| ls.get(*k).is_some_and(|x| x == v))
                .then(|| value.parse::<f64>().ok())?
        })
        .sum::<f64>()
        + 0.0 // an empty sum is -0.0
}

pub(crate) fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some((k, r)) = rest.split_once("=\"") {
        let Some(end) = r.find('"') else { break };
        out.insert(
            k.trim_start_matches(',').trim().to_string(),
            r[..end].to_string(),
        );
        rest = &r[end + 1..];
    }
    out
}

/// `apiserver_request_total`, summed by `VERB resource[/subresource]`.
pub type Requests = BTreeMap<String, f64>;

/// Reads the API server's request counters.
pub async fn apiserver_requests(client: &kube::Client) -> Result<Requests> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(req).await?;
    let mut out = Requests::new();
    for l in text.lines() {
        let Some(rest) = l.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let ls = parse_labels(labels);
        let resource = ls.get("resource").cloned().unwrap_or_default();
        let sub = ls.get("subresource").cloned().unwrap_or_default();
        let verb = ls.get("verb").cloned().unwrap_or_default();
        let key = if sub.is_empty() {
            format!("{verb} {resource}")
        } else {
            format!("{verb} {resource}/{sub}")
        };
        *out.entry(key).or_default() += value.trim().parse::<f64>().unwrap_or(0.0);
    }
    Ok(out)
}

/// `after - before`, without zero entries and without long-running requests (WATCH).
pub fn delta(before: &Requests, after: &Requests) -> Requests {
    after
        .iter()
        .filter(|(k, _)| !k.starts_with("WATCH"))
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v >= 0.5)
        .collect()
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_percentiles() {
        let text = "# HELP x\nkaas_operator_reconciles_total{result=\"ok\"} 7\n\
                    kaas_operator_reconciles_total{result=\"error\"} 2\nother 5\n";
        assert_eq!(
            counter(text, "kaas_operator_reconciles_total", &[("result", "ok")]),
            7.0
        );
        assert_eq!(counter(text, "kaas_operator_reconciles_total", &[]), 9.0);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert!(sample(std::process::id() as i32).is_some_and(|s| s.rss > 0 && s.hwm >= s.rss));
    }
}
