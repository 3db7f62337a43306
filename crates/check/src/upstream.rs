//! Refreshing the release data from upstream (optional; used with `--refresh-data`):
//!
//! * patch releases and their dates: the GitHub releases API of kubernetes/kubernetes;
//! * end-of-life dates: kubernetes/website `data/releases/schedule.yaml` (the source of the
//!   patch-releases page); branches missing there keep the given data's dates;
//! * CVEs: the official Kubernetes CVE feed (JSON Feed); CVSS vector and affected versions are read
//!   from each advisory's text, best effort, core components only.
//!
//! The parsers are separate functions so they can be tested without network.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::civil::Date;
use serde::Deserialize;

use crate::data::{AffectedRange, BranchData, CveData, PatchRelease, ReleaseData, parse_date};
use crate::version::{Branch, KubeVersion};

const GITHUB: &str = "https://api.github.com";
const RELEASES_PATH: &str = "/repos/kubernetes/kubernetes/releases";
const RAW: &str = "https://raw.githubusercontent.com";
const SCHEDULE_PATH: &str = "/kubernetes/website/main/data/releases/schedule.yaml";
const K8S_IO: &str = "https://kubernetes.io";
const CVE_FEED_PATH: &str = "/docs/reference/issues-security/official-cve-feed/index.json";

/// Where the upstream sources are and how much of each answer is read.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// The GitHub API (releases of kubernetes/kubernetes).
    pub github: String,
    /// raw.githubusercontent.com (kubernetes/website `schedule.yaml`).
    pub raw: String,
    /// kubernetes.io (the official CVE feed).
    pub k8s_io: String,
    /// Largest answer read from any source; a larger one is an error, not truncated data.
    pub max_bytes: u64,
}

impl Default for Upstream {
    fn default() -> Self {
        Self {
            github: GITHUB.into(),
            raw: RAW.into(),
            k8s_io: K8S_IO.into(),
            max_bytes: 16 * 1024 * 1024,
        }
    }
}

/// GET with a connect, read and overall timeout and a size limit.
async fn get(base: &str, path: &str, timeout: Duration, max_bytes: u64) -> Result<String, String> {
    use futures::AsyncReadExt as _;
    let mut cfg = kube::Config::new(base.parse().map_err(|e| format!("{base}: {e}"))?);
    cfg.connect_timeout = Some(timeout);
    cfg.read_timeout = Some(timeout);
    let client = kube::Client::try_from(cfg).map_err(|e| format!("{base}: {e}"))?;
    let req = http::Request::get(path)
        .header(
            "Accept",
            "application/json, application/vnd.github+json, */*",
        )
        .header("User-Agent", "kaas-check")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let read = async {
        let stream = client.request_stream(req).await.map_err(|e| match e {
            kube::Error::Api(s) => format!("GET {base}{path}: HTTP {} {}", s.code, s.message),
            e => format!(
                "cannot reach {base} (offline, or blocked by a firewall or proxy?): GET {path}: {e}"
            ),
        })?;
        let mut buf = Vec::new();
        stream
            .take(max_bytes + 1)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| format!("GET {base}{path}: reading the answer: {e}"))?;
        if buf.len() as u64 > max_bytes {
            return Err(format!(
                "GET {base}{path}: the answer is larger than {max_bytes} bytes (the limit); not used"
            ));
        }
        String::from_utf8(buf).map_err(|e| format!("GET {base}{path}: not UTF-8: {e}"))
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| {
        format!(
            "GET {base}{path}: no complete answer within {} s (offline?)",
            timeout.as_secs()
        )
    })?
}

#[derive(Deserialize)]
struct GithubRelease {
    tag_name: String,
    #[serde(default)]
    published_at: Option<String>,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    prerelease: bool,
}

/// Releases (no drafts, no pre-releases) from one page of the GitHub releases API.
pub fn parse_github_releases(json: &str) -> Result<Vec<(KubeVersion, Date)>, String> {
    let list: Vec<GithubRelease> =
        serde_json::from_str(json).map_err(|e| format!("GitHub releases: {e}"))?;
    Ok(list
        .into_iter()
        .filter(|r| !r.draft && !r.prerelease)
        .filter_map(|r| {
            let v = KubeVersion::parse(&r.tag_name).ok()?;
            if v.pre.is_some() || v.vendor.is_some() {
                return None;
            }
            let date = parse_date(r.published_at.as_deref()?.get(..10)?).ok()?;
            Some((v, date))
        })
        .collect())
}

#[derive(Deserialize)]
struct Schedule {
    #[serde(default)]
    schedules: Vec<ScheduleEntry>,
}

#[derive(Deserialize)]
struct ScheduleEntry {
    release: serde_yaml::Value,
    #[serde(rename = "endOfLifeDate", default)]
    end_of_life: Option<serde_yaml::Value>,
}

fn yaml_str(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// End-of-life dates per branch from kubernetes/website `data/releases/schedule.yaml`.
pub fn parse_schedule_eol(yaml: &str) -> Result<BTreeMap<Branch, Date>, String> {
    let s: Schedule = serde_yaml::from_str(yaml).map_err(|e| format!("schedule.yaml: {e}"))?;
    Ok(s.schedules
        .iter()
        .filter_map(|e| {
            let b = Branch::parse(&yaml_str(&e.release)?).ok()?;
            let d = parse_date(&yaml_str(e.end_of_life.as_ref()?)?).ok()?;
            Some((b, d))
        })
        .collect())
}

#[derive(Deserialize)]
struct Feed {
    #[serde(default)]
    items: Vec<FeedItem>,
}

#[derive(Deserialize)]
struct FeedItem {
    id: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    content_text: String,
    #[serde(default)]
    date_published: Option<String>,
}

const CORE: &[&str] = &[
    "kube-apiserver",
    "kubelet",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
    "apiserver",
];
const NOT_CORE: &[&str] = &[
    "ingress-nginx",
    "csi",
    "image builder",
    "secrets-store",
    "client",
    "kubectl",
    "dashboard",
    "kops",
    "minikube",
];

fn versions_in(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit()
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == 'v')
        {
            let s: String = bytes[i..]
                .iter()
                .take_while(|c| c.is_ascii_digit() || **c == '.')
                .collect();
            let s = s.trim_end_matches('.').to_string();
            if s.matches('.').count() == 2 && KubeVersion::parse(&s).is_ok() {
                i += s.len();
                out.push(s);
                continue;
            }
        }
        i += 1;
    }
    out
}

/// Affected ranges from an advisory's "Affected Versions" section.
pub fn parse_affected(text: &str) -> Vec<AffectedRange> {
    let mut out = Vec::new();
    let mut in_section = false;
    for line in text.lines() {
        let l = line.trim();
        let lower = l.to_ascii_lowercase();
        if lower.contains("affected versions") {
            in_section = true;
            continue;
        }
        if !in_section {
            continue;
        }
        if l.starts_with('#') || lower.contains("fixed versions") || lower.starts_with("how do i") {
            break;
        }
        if lower.contains("all versions") {
            out.push(AffectedRange::default());
            continue;
        }
        let vs = versions_in(l);
        match vs.as_slice() {
            [] => {}
            [v] if l.contains("<=") || l.contains('≤') => out.push(AffectedRange {
                last_affected: Some(v.clone()),
                ..Default::default()
            }),
            [v] if l.contains('<') => out.push(AffectedRange {
                fixed: Some(v.clone()),
                ..Default::default()
            }),
            [v] if l.contains(">=") => out.push(AffectedRange {
                introduced: Some(v.clone()),
                ..Default::default()
            }),
            [v] => out.push(AffectedRange {
                introduced: Some(v.clone()),
                last_affected: Some(v.clone()),
                ..Default::default()
            }),
            [a, b, ..] => out.push(AffectedRange {
                introduced: Some(a.clone()),
                last_affected: Some(b.clone()),
                ..Default::default()
            }),
        }
    }
    out
}

/// CVEs of core components with a CVSS vector and parseable affected versions, from the official
/// feed (JSON Feed 1.1).
pub fn parse_cve_feed(json: &str) -> Result<Vec<CveData>, String> {
    let feed: Feed = serde_json::from_str(json).map_err(|e| format!("CVE feed: {e}"))?;
    Ok(feed
        .items
        .into_iter()
        .filter_map(|it| {
            let lower = format!("{} {}", it.summary, it.content_text).to_ascii_lowercase();
            let title = it.summary.to_ascii_lowercase();
            if NOT_CORE.iter().any(|n| title.contains(n)) {
                return None;
            }
            let components: Vec<String> = CORE
                .iter()
                .filter(|c| lower.contains(*c))
                .map(|c| c.to_string())
                .collect();
            let vector = crate::cvss::find_vector(&it.content_text)?;
            let affected = parse_affected(&it.content_text);
            if affected.is_empty() {
                return None;
            }
            Some(CveData {
                id: it.id,
                summary: it.summary,
                published: it
                    .date_published
                    .as_deref()
                    .and_then(|d| d.get(..10))
                    .and_then(|d| parse_date(d).ok()),
                components,
                cvss_vector: Some(vector),
                cvss_score: None,
                affected,
            })
        })
        .collect())
}

/// Builds release data from upstream sources; `base` supplies end-of-life dates and curated CVEs
/// where upstream lacks them.
pub fn assemble(
    base: &ReleaseData,
    releases: Vec<(KubeVersion, Date)>,
    eol: &BTreeMap<Branch, Date>,
    cves: Vec<CveData>,
    today: Date,
    source: String,
) -> ReleaseData {
    let mut by_branch: BTreeMap<Branch, Vec<(KubeVersion, Date)>> = BTreeMap::new();
    for (v, d) in releases {
        by_branch.entry(v.branch()).or_default().push((v, d));
    }
    let mut branches: Vec<BranchData> = Vec::new();
    for (b, mut patches) in by_branch {
        patches.sort_by(|a, b| a.0.cmp(&b.0));
        patches.dedup_by(|a, b| a.0 == b.0);
        let end_of_life = eol
            .get(&b)
            .copied()
            .or_else(|| base.branch(b).and_then(|x| x.end_of_life));
        branches.push(BranchData {
            branch: b.to_string(),
            end_of_life,
            patches: patches
                .into_iter()
                .map(|(v, date)| PatchRelease {
                    version: v.upstream(),
                    date,
                })
                .collect(),
        });
    }
    // Branches older than the fetched pages keep the base data.
    for b in &base.branches {
        if !branches.iter().any(|x| x.branch == b.branch) {
            branches.push(b.clone());
        }
    }
    branches.sort_by_key(|b| std::cmp::Reverse(Branch::parse(&b.branch).ok()));
    let mut all_cves = base.cves.clone();
    for c in cves {
        if !all_cves.iter().any(|x| x.id == c.id) {
            all_cves.push(c);
        }
    }
    ReleaseData {
        source,
        releases_as_of: today,
        cves_as_of: today,
        branches,
        cves: all_cves,
    }
}

/// Fetches the three upstream sources (bounded by `timeout` each) and assembles fresh data.
pub async fn fetch(base: &ReleaseData, timeout: Duration) -> Result<ReleaseData, String> {
    fetch_from(&Upstream::default(), base, timeout).await
}

/// [`fetch`] from given locations.
pub async fn fetch_from(
    up: &Upstream,
    base: &ReleaseData,
    timeout: Duration,
) -> Result<ReleaseData, String> {
    let today = crate::today_utc();
    let mut releases = Vec::new();
    for page in 1..=6 {
        let text = get(
            &up.github,
            &format!("{RELEASES_PATH}?per_page=100&page={page}"),
            timeout,
            up.max_bytes,
        )
        .await?;
        let list = parse_github_releases(&text)?;
        let empty = text.trim() == "[]";
        releases.extend(list);
        if empty {
            break;
        }
    }
    if releases.is_empty() {
        return Err("the GitHub releases API returned no release".into());
    }
    let eol = match get(&up.raw, SCHEDULE_PATH, timeout, up.max_bytes).await {
        Ok(y) => parse_schedule_eol(&y)?,
        Err(e) => {
            tracing::warn!("end-of-life dates not refreshed: {e}");
            BTreeMap::new()
        }
    };
    let cves = parse_cve_feed(&get(&up.k8s_io, CVE_FEED_PATH, timeout, up.max_bytes).await?)?;
    let source = format!(
        "upstream (api.github.com kubernetes/kubernetes releases, kubernetes.io official CVE feed, kubernetes/website schedule.yaml{}) fetched {today}",
        if eol.is_empty() { " unavailable" } else { "" }
    );
    let data = assemble(base, releases, &eol, cves, today, source);
    // The result must be usable: same validation as files.
    ReleaseData::from_yaml(&data.to_yaml())?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_releases() {
        let json = r#"[
          {"tag_name":"v1.36.4","published_at":"2026-08-11T17:03:00Z","draft":false,"prerelease":false},
          {"tag_name":"v1.37.0-rc.1","published_at":"2026-08-05T10:00:00Z","draft":false,"prerelease":true},
          {"tag_name":"v1.35.8","published_at":"2026-08-11T17:00:00Z","draft":false,"prerelease":false},
          {"tag_name":"v1.36.5","published_at":null,"draft":true,"prerelease":false}
        ]"#;
        let r = parse_github_releases(json).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].0.upstream(), "1.36.4");
        assert_eq!(r[0].1.to_string(), "2026-08-11");
    }

    #[test]
    fn schedule_eol() {
        let y = "schedules:\n- endOfLifeDate: \"2027-06-28\"\n  release: \"1.36\"\n- endOfLifeDate: 2027-02-28\n  release: 1.35\n";
        let m = parse_schedule_eol(y).unwrap();
        assert_eq!(m[&Branch::parse("1.36").unwrap()].to_string(), "2027-06-28");
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn cve_feed_text() {
        let json = serde_json::json!({
            "version": "https://jsonfeed.org/version/1.1",
            "items": [
                {
                    "id": "CVE-2030-0001",
                    "summary": "Made-up kubelet issue",
                    "date_published": "2030-01-02T03:04:05Z",
                    "content_text": "This issue has been rated High ([CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:N](x)) (score: 8.1).\n\n#### Affected Versions\n\n- kubelet v1.40.0 to v1.40.2\n- kubelet v1.39.0 - v1.39.6\n- kubelet <= v1.38.11\n\n#### Fixed Versions\n- kubelet v1.40.3\n"
                },
                {
                    "id": "CVE-2030-0002",
                    "summary": "ingress-nginx annotation injection",
                    "content_text": "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H\n### Affected Versions\n- ingress-nginx < v1.11.5\n"
                }
            ]
        })
        .to_string();
        let cves = parse_cve_feed(&json).unwrap();
        assert_eq!(cves.len(), 1);
        let c = &cves[0];
        assert_eq!(c.score(), Some(8.1));
        assert_eq!(c.components, vec!["kubelet".to_string()]);
        assert_eq!(c.published.unwrap().to_string(), "2030-01-02");
        let v = |s: &str| KubeVersion::parse(s).unwrap();
        assert!(c.affects(&v("1.40.2")));
        assert!(!c.affects(&v("1.40.3")));
        assert!(c.affects(&v("1.39.0")));
        assert!(c.affects(&v("1.38.11")));
        assert!(c.affects(&v("1.30.0")));
        assert!(!c.affects(&v("1.38.12")));
    }

    /// A local HTTP server answering every request with `body` (status 200), once per connection.
    async fn serve(body: Vec<u8>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut req = [0u8; 4096];
                    let _ = c.read(&mut req).await;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = c.write_all(head.as_bytes()).await;
                    let _ = c.write_all(&body).await;
                });
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn answers_are_size_limited_and_offline_is_said_clearly() {
        let base = ReleaseData::bundled();
        let t = Duration::from_secs(5);
        // Larger than the limit: an error, never truncated data.
        let big = serve(vec![b' '; 5000]).await;
        let up = Upstream {
            github: big.clone(),
            raw: big.clone(),
            k8s_io: big,
            max_bytes: 4096,
        };
        let e = fetch_from(&up, &base, t).await.unwrap_err();
        assert!(e.contains("larger than 4096 bytes"), "{e}");
        // Nothing listening (offline): says which source could not be reached.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let up = Upstream {
            github: closed.clone(),
            raw: closed.clone(),
            k8s_io: closed.clone(),
            max_bytes: 4096,
        };
        let e = fetch_from(&up, &base, t).await.unwrap_err();
        assert!(
            e.starts_with(&format!("cannot reach {closed} (offline")),
            "{e}"
        );
        // A small valid answer is read: one page of releases, then an empty page.
        let ok =
            serve(br#"[{"tag_name":"v1.99.0","published_at":"2026-01-01T00:00:00Z"}]"#.to_vec())
                .await;
        let text = get(&ok, "/x", t, 4096).await.unwrap();
        assert!(text.contains("v1.99.0"));
    }

    #[test]
    fn assembles_valid_data() {
        let base = ReleaseData::bundled();
        let v = |s: &str| KubeVersion::parse(s).unwrap();
        let d = |s: &str| parse_date(s).unwrap();
        let releases = vec![
            (v("1.37.0"), d("2026-08-26")),
            (v("1.36.3"), d("2026-07-22")),
            (v("1.36.1"), d("2026-05-13")),
        ];
        let data = assemble(
            &base,
            releases,
            &BTreeMap::new(),
            vec![],
            d("2026-09-01"),
            "test".into(),
        );
        assert_eq!(data.releases_as_of, d("2026-09-01"));
        let b137 = data.branch(Branch::parse("1.37").unwrap()).unwrap();
        assert_eq!(b137.end_of_life, None);
        let b136 = data.branch(Branch::parse("1.36").unwrap()).unwrap();
        assert_eq!(b136.end_of_life, Some(d("2027-06-28")));
        assert!(data.branch(Branch::parse("1.25").unwrap()).is_some());
        ReleaseData::from_yaml(&data.to_yaml()).unwrap();
    }
}
