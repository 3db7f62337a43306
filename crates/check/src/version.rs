//! Kubernetes version strings (with vendor suffixes) and the scs-0210 version policy as far as a
//! single cluster can show it: the branch is not past its end of life, and no newer patch on the
//! branch has been out for more than 31 days — 14 days if the running version is affected by a CVE
//! with CVSS ≥ 8. Pure functions of (version, reference date, data): table-testable.

use std::cmp::Ordering;
use std::fmt;

use jiff::Span;
use jiff::civil::Date;
use serde::Serialize;

use crate::data::ReleaseData;
use crate::report::Outcome;

/// A newer patch may be out at most this many days (scs-0210-v2: one month).
pub const PATCH_WINDOW_DAYS: u64 = 31;
/// ... or this many if the running version has a CVE with CVSS >= [`CRITICAL_CVSS`] (two weeks).
pub const CRITICAL_WINDOW_DAYS: u64 = 14;
/// The CVSS base score from which a CVE counts as critical for the policy.
pub const CRITICAL_CVSS: f64 = 8.0;
/// Upstream supports a branch for about 14 months, the first 12 as the standard period: a branch
/// whose end of life is not in the data is certainly supported this long after its `x.y.0`.
pub const MIN_SUPPORT_DAYS: u64 = 365;

/// The windows of a version policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// The standard, for texts.
    pub standard: &'static str,
    /// A newer patch may be out at most this many days.
    pub patch_window_days: u64,
    /// ... or this many if the running version has a CVE with CVSS >= `critical_cvss`.
    pub critical_window_days: u64,
    /// The CVSS base score from which the shorter window applies.
    pub critical_cvss: f64,
}

/// scs-0210-v2 (the scope's `version-policy-check`): 31 days, 14 with a CVE of CVSS >= 8.
pub const SCS_0210_V2: Policy = Policy {
    standard: "scs-0210-v2",
    patch_window_days: PATCH_WINDOW_DAYS,
    critical_window_days: CRITICAL_WINDOW_DAYS,
    critical_cvss: CRITICAL_CVSS,
};

/// The draft scs-0210-v3 (open pull request, 2026-08): patches within 2 weeks; high (CVSS >= 7)
/// and critical (>= 9) fixes faster, 3 days recommended — the draft's 3 days are used for every
/// fix of CVSS >= 7 (draft: reported, never part of the certificate).
pub const SCS_0210_V3_DRAFT: Policy = Policy {
    standard: "scs-0210-v3 (draft)",
    patch_window_days: 14,
    critical_window_days: 3,
    critical_cvss: 7.0,
};

/// A minor release branch, `1.33`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Branch {
    /// Major version.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
}

impl Branch {
    /// Parses `1.33` (a leading `v` is allowed).
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim().trim_start_matches(['v', 'V']);
        let (ma, mi) = t
            .split_once('.')
            .ok_or_else(|| format!("not a branch: {s:?}"))?;
        Ok(Self {
            major: ma.parse().map_err(|_| format!("not a branch: {s:?}"))?,
            minor: mi.parse().map_err(|_| format!("not a branch: {s:?}"))?,
        })
    }
}

impl fmt::Display for Branch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A Kubernetes version as reported by `/version` (`gitVersion`), e.g. `v1.30.4-gke.1`,
/// `v1.31.2+k3s1`, `v1.29.3-eks-adc7111`, `v1.36.0-rc.1`.
///
/// Upstream pre-releases (`-alpha.N`, `-beta.N`, `-rc.N`) order before the release; any other
/// suffix is a vendor build of the same upstream version and is ignored when comparing.
#[derive(Clone, Debug, Eq, Serialize)]
pub struct KubeVersion {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch.
    pub patch: u64,
    /// Upstream pre-release (`rc.1`), if any.
    pub pre: Option<String>,
    /// Vendor suffix as written (`-gke.1`, `+k3s1`), if any.
    pub vendor: Option<String>,
}

fn is_prerelease(s: &str) -> bool {
    ["alpha", "beta", "rc"].iter().any(|p| {
        s.strip_prefix(p).is_some_and(|rest| {
            rest.is_empty() || rest.starts_with(|c: char| c == '.' || c.is_ascii_digit())
        })
    })
}

impl KubeVersion {
    /// Parses a version string; see the type's documentation for the accepted forms.
    pub fn parse(s: &str) -> Result<Self, String> {
        let err = || format!("not a Kubernetes version: {s:?}");
        let t = s.trim().trim_start_matches(['v', 'V']);
        let mut nums = [0u64; 3];
        let mut rest = t;
        for (i, n) in nums.iter_mut().enumerate() {
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if end == 0 {
                return Err(err());
            }
            *n = rest[..end].parse().map_err(|_| err())?;
            rest = &rest[end..];
            if i < 2 {
                rest = rest.strip_prefix('.').ok_or_else(err)?;
            }
        }
        let (mut pre, mut vendor) = (None, None);
        if !rest.is_empty() {
            if !rest.starts_with(['-', '+', '.', '_']) {
                return Err(err());
            }
            if let Some(after) = rest.strip_prefix('-')
                && is_prerelease(after)
            {
                // `-rc.1+foo`, `-rc.1-foo`: the pre-release ends at the next separator.
                let end = after.find(['+', '-']).unwrap_or(after.len());
                pre = Some(after[..end].to_string());
                if end < after.len() {
                    vendor = Some(after[end..].to_string());
                }
            } else {
                vendor = Some(rest.to_string());
            }
        }
        Ok(Self {
            major: nums[0],
            minor: nums[1],
            patch: nums[2],
            pre,
            vendor,
        })
    }

    /// The branch `major.minor`.
    pub fn branch(&self) -> Branch {
        Branch {
            major: self.major,
            minor: self.minor,
        }
    }

    /// `1.30.4` (`1.30.4-rc.1` for pre-releases), without vendor suffix.
    pub fn upstream(&self) -> String {
        match &self.pre {
            Some(p) => format!("{}.{}.{}-{p}", self.major, self.minor, self.patch),
            None => format!("{}.{}.{}", self.major, self.minor, self.patch),
        }
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "v{}{}",
            self.upstream(),
            self.vendor.as_deref().unwrap_or("")
        )
    }
}

fn pre_key(p: &str) -> (u8, u64, &str) {
    let (rank, rest) = if let Some(r) = p.strip_prefix("alpha") {
        (0, r)
    } else if let Some(r) = p.strip_prefix("beta") {
        (1, r)
    } else if let Some(r) = p.strip_prefix("rc") {
        (2, r)
    } else {
        (3, p)
    };
    let rest = rest.trim_start_matches('.');
    (rank, rest.parse().unwrap_or(0), rest)
}

impl Ord for KubeVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => pre_key(a).cmp(&pre_key(b)),
            })
    }
}

impl PartialOrd for KubeVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for KubeVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

/// The result of the version policy for one version at one reference date.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicyVerdict {
    /// PASS, FAIL or ABORT (data does not cover the reference date, unknown branch).
    pub outcome: Outcome,
    /// One sentence.
    pub summary: String,
    /// Supporting facts.
    pub details: Vec<String>,
    /// The window that applied (31 or 14 days).
    pub window_days: u64,
    /// Critical CVEs (CVSS >= 8) the running version is affected by.
    pub critical_cves: Vec<String>,
    /// The branch's end of life, if known.
    pub end_of_life: Option<Date>,
    /// ABORT because the release or CVE data is too old for the reference date (refresh it).
    pub stale_data: bool,
}

/// Whole days from `earlier` to `later` (negative if `later` is earlier).
pub fn days_between(earlier: Date, later: Date) -> i64 {
    i64::from((later - earlier).get_days())
}

fn minus(d: Date, days: u64) -> Date {
    i64::try_from(days)
        .ok()
        .and_then(|n| Span::new().try_days(n).ok())
        .and_then(|span| d.checked_sub(span).ok())
        .unwrap_or(Date::MIN)
}

/// Evaluates the version policy. `reference_date` is the day the cluster is judged on (usually
/// today); nothing here reads the clock.
///
/// * FAIL: the branch's end of life is before the reference date; or a newer patch on the branch
///   was released more than 31 days (14 with a critical CVE) before the reference date.
/// * ABORT: the data cannot show either way — the branch is unknown and not provably supported, or
///   a patch or CVE the data does not know yet could decide it (data older than the window).
/// * PASS otherwise.
pub fn evaluate(version: &KubeVersion, reference_date: Date, data: &ReleaseData) -> PolicyVerdict {
    evaluate_policy(version, reference_date, data, &SCS_0210_V2)
}

/// [`evaluate`] with the windows of another policy (the draft scs-0210-v3).
pub fn evaluate_policy(
    version: &KubeVersion,
    reference_date: Date,
    data: &ReleaseData,
    policy: &Policy,
) -> PolicyVerdict {
    let branch = version.branch();
    let mut details = vec![format!(
        "running {version} (upstream {}, branch {branch}); reference date {reference_date}",
        version.upstream()
    )];
    if let Some(v) = &version.vendor {
        details.push(format!("vendor suffix {v:?} ignored for the comparison"));
    }
    if let Some(p) = &version.pre {
        details.push(format!(
            "{p} is an upstream pre-release; it counts as older than {}.{}.{}",
            version.major, version.minor, version.patch
        ));
    }
    let verdict =
        |outcome, summary: String, details, window, cves: Vec<String>, eol| PolicyVerdict {
            outcome,
            summary,
            details,
            window_days: window,
            critical_cves: cves,
            end_of_life: eol,
            stale_data: false,
        };
    let stale = |v: PolicyVerdict| PolicyVerdict {
        stale_data: true,
        ..v
    };

    // Critical CVEs (known ones) decide the window.
    let mut critical = Vec::new();
    // Only CVEs published by the reference date count: the policy judges with the knowledge of
    // that day.
    for c in data
        .cves
        .iter()
        .filter(|c| c.published.is_none_or(|p| p <= reference_date))
    {
        let score = c.score().unwrap_or(0.0);
        if c.affects(version) {
            details.push(format!(
                "affected by {} (CVSS {score:.1}, {}): {}",
                c.id,
                c.components.join(", "),
                c.summary
            ));
            if score >= policy.critical_cvss {
                critical.push(c.id.clone());
            }
        }
    }
    let window = if critical.is_empty() {
        policy.patch_window_days
    } else {
        policy.critical_window_days
    };
    let critical_window = policy.critical_window_days;
    let age = days_between(data.releases_as_of, reference_date);

    // End of life.
    let entry = data.branch(branch);
    let eol = entry.and_then(|b| b.end_of_life);
    let first_release = entry.and_then(|b| {
        b.patches
            .iter()
            .filter_map(|p| KubeVersion::parse(&p.version).ok().map(|v| (v, p.date)))
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, d)| d)
    });
    match (eol, data.branch_range()) {
        (Some(eol), _) if reference_date > eol => {
            let s = format!(
                "branch {branch} reached its end of life on {eol}, {} days before {reference_date}",
                days_between(eol, reference_date)
            );
            return verdict(Outcome::Fail, s, details, window, critical, Some(eol));
        }
        (Some(eol), _) => details.push(format!(
            "branch {branch} is supported until {eol} ({} days left)",
            days_between(reference_date, eol)
        )),
        (None, Some((oldest, _))) if entry.is_none() && branch < oldest => {
            let oldest_eol = data.branch(oldest).and_then(|b| b.end_of_life);
            match oldest_eol {
                Some(e) if reference_date > e => {
                    let s = format!(
                        "branch {branch} is older than {oldest}, whose end of life was {e}: past end of life"
                    );
                    return verdict(Outcome::Fail, s, details, window, critical, None);
                }
                _ => {
                    let s = format!("branch {branch} is older than the release data covers");
                    return verdict(Outcome::Abort, s, details, window, critical, None);
                }
            }
        }
        (None, _) => {
            // A branch without known end of life: supported for at least MIN_SUPPORT_DAYS after its
            // first release. A branch the data does not list at all was released after the data's
            // date (the data lists every release up to then).
            let released_by = first_release.or_else(|| {
                (entry.is_none()
                    && data
                        .branch_range()
                        .is_none_or(|(_, newest)| branch > newest))
                .then_some(data.releases_as_of)
            });
            match released_by {
                Some(d) if days_between(d, reference_date) <= MIN_SUPPORT_DAYS as i64 => {
                    details.push(format!(
                        "branch {branch}: end of life not in the data; released {} {d}, so supported for at least {MIN_SUPPORT_DAYS} days after",
                        if first_release.is_some() { "on" } else { "after" }
                    ));
                }
                _ => {
                    let s = format!(
                        "branch {branch}: end of life unknown to the release data ({})",
                        data.describe()
                    );
                    return verdict(Outcome::Abort, s, details, window, critical, None);
                }
            }
        }
    }

    // Newer patches on the branch.
    let mut newer: Vec<(KubeVersion, Date)> = entry
        .map(|b| {
            b.patches
                .iter()
                .filter_map(|p| KubeVersion::parse(&p.version).ok().map(|v| (v, p.date)))
                .filter(|(v, d)| v > version && *d <= reference_date)
                .collect()
        })
        .unwrap_or_default();
    newer.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some((v, d)) = newer.last() {
        details.push(format!(
            "{} newer patch(es) on {branch}; newest v{} released {d}",
            newer.len(),
            v.upstream()
        ));
    } else {
        details.push(format!(
            "no newer patch on {branch} in the data (releases as of {})",
            data.releases_as_of
        ));
    }
    let overdue = newer
        .iter()
        .filter(|(_, d)| days_between(*d, reference_date) > window as i64)
        .min_by_key(|(_, d)| *d);
    if let Some((v, d)) = overdue {
        let why = if critical.is_empty() {
            String::new()
        } else {
            format!(" because of {}", critical.join(", "))
        };
        let s = format!(
            "v{} was released on {d}, {} days before {reference_date}; the limit is {window} days{why}",
            v.upstream(),
            days_between(*d, reference_date)
        );
        return verdict(Outcome::Fail, s, details, window, critical, eol);
    }

    // Could a release or CVE the data does not know yet decide it?
    let unknown_releases_from = data.releases_as_of;
    if unknown_releases_from < minus(reference_date, window) {
        let s = format!(
            "release data is {age} days old (releases as of {}, {}): a newer patch released since could already be more than {window} days old; refresh the release data",
            data.releases_as_of, data.source,
        );
        return stale(verdict(Outcome::Abort, s, details, window, critical, eol));
    }
    if critical.is_empty() && data.cves_as_of < minus(reference_date, critical_window) {
        // An unknown critical CVE would shrink the window.
        let at_risk = newer
            .iter()
            .find(|(_, d)| days_between(*d, reference_date) > critical_window as i64);
        let releases_unknown = data.releases_as_of < minus(reference_date, critical_window);
        let cve_age = days_between(data.cves_as_of, reference_date);
        if let Some((v, d)) = at_risk {
            let s = format!(
                "CVE data is {cve_age} days old (as of {}): whether v{} ({} days old) fixes a CVE with CVSS >= {} ({critical_window}-day limit) is beyond it; refresh the release data",
                data.cves_as_of,
                v.upstream(),
                days_between(*d, reference_date),
                policy.critical_cvss,
            );
            return stale(verdict(Outcome::Abort, s, details, window, critical, eol));
        }
        if releases_unknown {
            let s = format!(
                "release data is {age} days old (releases as of {}, CVEs as of {}): a fix of a CVE with CVSS >= {} released since could already be overdue ({critical_window}-day limit); refresh the release data",
                data.releases_as_of, data.cves_as_of, policy.critical_cvss,
            );
            return stale(verdict(Outcome::Abort, s, details, window, critical, eol));
        }
    }
    let s = match newer.last() {
        Some((v, d)) => format!(
            "branch {branch} supported; newer v{} is {} days old (limit {window})",
            v.upstream(),
            days_between(*d, reference_date)
        ),
        None => format!("branch {branch} supported; no newer patch known"),
    };
    verdict(Outcome::Pass, s, details, window, critical, eol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vendor_and_prerelease_forms() {
        for (s, up, pre, vendor) in [
            ("v1.30.4", "1.30.4", None, None),
            ("1.30.4", "1.30.4", None, None),
            ("v1.30.4-gke.1", "1.30.4", None, Some("-gke.1")),
            ("v1.31.2+k3s1", "1.31.2", None, Some("+k3s1")),
            ("v1.29.3-eks-adc7111", "1.29.3", None, Some("-eks-adc7111")),
            ("v1.28.5+rke2r1", "1.28.5", None, Some("+rke2r1")),
            ("v1.27.3-aliyun.1", "1.27.3", None, Some("-aliyun.1")),
            ("v1.36.0-rc.1", "1.36.0-rc.1", Some("rc.1"), None),
            ("v1.37.0-alpha.2", "1.37.0-alpha.2", Some("alpha.2"), None),
            (
                "v1.36.0-beta.0+vendor",
                "1.36.0-beta.0",
                Some("beta.0"),
                Some("+vendor"),
            ),
            ("v1.30.1-rancher1", "1.30.1", None, Some("-rancher1")),
            (" V1.30.10 ", "1.30.10", None, None),
        ] {
            let v = KubeVersion::parse(s).unwrap();
            assert_eq!(v.upstream(), up, "{s}");
            assert_eq!(v.pre.as_deref(), pre, "{s}");
            assert_eq!(v.vendor.as_deref(), vendor, "{s}");
        }
        for bad in ["", "v1", "v1.30", "1.x.3", "v1.30.4gke", "latest"] {
            assert!(KubeVersion::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ordering_ignores_vendor_and_ranks_prereleases() {
        let v = |s: &str| KubeVersion::parse(s).unwrap();
        assert_eq!(v("v1.30.4-gke.1"), v("1.30.4"));
        assert!(v("1.30.10") > v("1.30.9"));
        assert!(v("1.30.0-rc.1") < v("1.30.0"));
        assert!(v("1.30.0-alpha.3") < v("1.30.0-beta.0"));
        assert!(v("1.30.0-rc.2") > v("1.30.0-rc.1"));
        assert!(v("1.30.0-rc.10") > v("1.30.0-rc.9"));
        assert!(v("1.31.0-alpha.1") > v("1.30.99"));
    }
}
