//! Release and CVE data for the version policy (scs-0210): end of life per branch, the release date
//! of every patch, and CVEs of core components with their CVSS score and affected versions.
//!
//! The data is bundled ([`ReleaseData::bundled`], from `crates/check/data/kubernetes-releases.yaml`)
//! so `kaas check` works offline; [`crate::upstream::fetch`] builds the same structure from the
//! upstream sources when they are reachable. Every report names the data it used and its dates.

use std::path::Path;
use std::sync::OnceLock;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::version::{Branch, KubeVersion};

/// The bundled data file.
pub const BUNDLED_YAML: &str = include_str!("../data/kubernetes-releases.yaml");

/// How the bundled data names itself in reports.
pub const BUNDLED_SOURCE: &str = "bundled (kaas-check data/kubernetes-releases.yaml)";

fn default_source() -> String {
    "file".into()
}

/// Release and CVE facts, each part complete up to its `*_as_of` date.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReleaseData {
    /// Where the data came from (bundled, a file, or upstream with the fetch date).
    #[serde(default = "default_source")]
    pub source: String,
    /// Every patch release up to and including this date is listed.
    pub releases_as_of: NaiveDate,
    /// Every relevant CVE published up to and including this date is listed.
    pub cves_as_of: NaiveDate,
    /// Release branches (newest first in the bundled file; order does not matter).
    pub branches: Vec<BranchData>,
    /// CVEs of core components.
    #[serde(default)]
    pub cves: Vec<CveData>,
}

/// One minor release branch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BranchData {
    /// `"1.33"`.
    pub branch: String,
    /// Upstream end of life (the last day the branch is supported); `None` if not known yet.
    #[serde(default)]
    pub end_of_life: Option<NaiveDate>,
    /// Patch releases (`x.y.0` included) with their release dates.
    #[serde(default)]
    pub patches: Vec<PatchRelease>,
}

/// A released version and its date; written `[1.33.1, 2025-05-15]` in YAML.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(String, NaiveDate)", into = "(String, NaiveDate)")]
pub struct PatchRelease {
    /// `1.33.1`.
    pub version: String,
    /// Release date.
    pub date: NaiveDate,
}

impl From<(String, NaiveDate)> for PatchRelease {
    fn from((version, date): (String, NaiveDate)) -> Self {
        Self { version, date }
    }
}

impl From<PatchRelease> for (String, NaiveDate) {
    fn from(p: PatchRelease) -> Self {
        (p.version, p.date)
    }
}

/// A CVE of a core Kubernetes component.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CveData {
    /// `CVE-2024-10220`.
    pub id: String,
    /// Title.
    #[serde(default)]
    pub summary: String,
    /// Publication date.
    #[serde(default)]
    pub published: Option<NaiveDate>,
    /// Affected components (`kubelet`, `kube-apiserver`, ...).
    #[serde(default)]
    pub components: Vec<String>,
    /// CVSS v3 vector; the score is computed from it.
    #[serde(default)]
    pub cvss_vector: Option<String>,
    /// Explicit score, used when there is no vector.
    #[serde(default)]
    pub cvss_score: Option<f64>,
    /// Affected version ranges (OSV style).
    #[serde(default)]
    pub affected: Vec<AffectedRange>,
}

/// `introduced <= v < fixed` or `introduced <= v <= last_affected` (open-ended if neither).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffectedRange {
    /// First affected version; absent or `0` means "all earlier versions".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced: Option<String>,
    /// First fixed version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    /// Last affected version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_affected: Option<String>,
}

impl AffectedRange {
    /// Whether `v` (compared without vendor suffix) is in the range.
    pub fn contains(&self, v: &KubeVersion) -> bool {
        let parse = |s: &Option<String>| s.as_deref().and_then(|s| KubeVersion::parse(s).ok());
        if let Some(lo) = parse(&self.introduced)
            && v < &lo
        {
            return false;
        }
        match (parse(&self.fixed), parse(&self.last_affected)) {
            (Some(fixed), _) => v < &fixed,
            (None, Some(last)) => v <= &last,
            (None, None) => true,
        }
    }
}

impl CveData {
    /// The CVSS base score (computed from the vector, else the explicit score).
    pub fn score(&self) -> Option<f64> {
        self.cvss_vector
            .as_deref()
            .and_then(|v| crate::cvss::base_score(v).ok())
            .or(self.cvss_score)
    }

    /// Whether the version is in one of the affected ranges.
    pub fn affects(&self, v: &KubeVersion) -> bool {
        self.affected.iter().any(|r| r.contains(v))
    }
}

static BUNDLED: OnceLock<ReleaseData> = OnceLock::new();

impl Default for ReleaseData {
    fn default() -> Self {
        Self::bundled()
    }
}

impl ReleaseData {
    /// The data bundled with this crate.
    pub fn bundled() -> Self {
        BUNDLED
            .get_or_init(|| {
                let mut d = Self::from_yaml(BUNDLED_YAML).expect("bundled release data is valid");
                d.source = BUNDLED_SOURCE.into();
                d
            })
            .clone()
    }

    /// Parses and validates data in the bundled file's format.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        let data: Self = serde_yaml::from_str(text).map_err(|e| format!("release data: {e}"))?;
        data.validate()?;
        Ok(data)
    }

    /// Reads a data file (e.g. one written by `kaas check --refresh-data --save-data`).
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let mut d = Self::from_yaml(&text)?;
        if d.source == default_source() {
            d.source = format!("file {}", path.display());
        }
        Ok(d)
    }

    /// The data as YAML (the bundled file's format).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("release data serialises")
    }

    fn validate(&self) -> Result<(), String> {
        for b in &self.branches {
            let branch = Branch::parse(&b.branch)?;
            for p in &b.patches {
                let v = KubeVersion::parse(&p.version)?;
                if v.branch() != branch {
                    return Err(format!("{} listed under branch {}", p.version, b.branch));
                }
            }
        }
        for c in &self.cves {
            if let Some(v) = &c.cvss_vector {
                crate::cvss::base_score(v).map_err(|e| format!("{}: {e}", c.id))?;
            } else if c.cvss_score.is_none() {
                return Err(format!("{}: neither cvss_vector nor cvss_score", c.id));
            }
        }
        Ok(())
    }

    /// The entry of a branch.
    pub fn branch(&self, branch: Branch) -> Option<&BranchData> {
        self.branches
            .iter()
            .find(|b| Branch::parse(&b.branch).is_ok_and(|x| x == branch))
    }

    /// The oldest and newest branch listed.
    pub fn branch_range(&self) -> Option<(Branch, Branch)> {
        let mut all = self
            .branches
            .iter()
            .filter_map(|b| Branch::parse(&b.branch).ok());
        let first = all.next()?;
        Some(all.fold((first, first), |(lo, hi), b| (lo.min(b), hi.max(b))))
    }

    /// One line for reports: source and dates.
    pub fn describe(&self) -> String {
        format!(
            "{}; releases as of {}, CVEs as of {}",
            self.source, self.releases_as_of, self.cves_as_of
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_data_is_valid_and_complete_for_known_branches() {
        let d = ReleaseData::bundled();
        assert_eq!(d.source, BUNDLED_SOURCE);
        let (lo, hi) = d.branch_range().unwrap();
        assert_eq!(
            (lo.to_string(), hi.to_string()),
            ("1.19".into(), "1.36".into())
        );
        // EOL dates as in the upstream patch-release page.
        for (b, eol) in [
            ("1.36", "2027-06-28"),
            ("1.35", "2027-02-28"),
            ("1.34", "2026-10-27"),
            ("1.33", "2026-06-28"),
            ("1.32", "2026-02-28"),
            ("1.31", "2025-10-28"),
            ("1.30", "2025-06-28"),
            ("1.29", "2025-02-28"),
            ("1.28", "2024-10-28"),
            ("1.27", "2024-06-28"),
            ("1.26", "2024-02-28"),
            ("1.25", "2023-10-28"),
        ] {
            let e = d.branch(Branch::parse(b).unwrap()).unwrap();
            assert_eq!(e.end_of_life.unwrap().to_string(), eol, "{b}");
        }
        // Patches are contiguous from x.y.0 on each branch with patch data, dates ascending.
        for b in d.branches.iter().filter(|b| !b.patches.is_empty()) {
            let mut prev: Option<&PatchRelease> = None;
            for (i, p) in b.patches.iter().enumerate() {
                let v = KubeVersion::parse(&p.version).unwrap();
                assert_eq!(v.patch, i as u64, "{} in {}", p.version, b.branch);
                if let Some(q) = prev {
                    assert!(q.date <= p.date, "{} before {}", p.version, q.version);
                }
                assert!(p.date <= d.releases_as_of);
                prev = Some(p);
            }
        }
        // Scores come from the vectors.
        let score = |id: &str| d.cves.iter().find(|c| c.id == id).unwrap().score().unwrap();
        assert_eq!(score("CVE-2024-10220"), 8.1);
        assert_eq!(score("CVE-2023-3676"), 8.8);
        assert_eq!(score("CVE-2023-5528"), 7.2);
        assert_eq!(score("CVE-2025-13281"), 5.8);
    }

    #[test]
    fn affected_ranges() {
        let v = |s: &str| KubeVersion::parse(s).unwrap();
        let r = |i: Option<&str>, f: Option<&str>, l: Option<&str>| AffectedRange {
            introduced: i.map(Into::into),
            fixed: f.map(Into::into),
            last_affected: l.map(Into::into),
        };
        let below = r(None, Some("1.28.12"), None);
        assert!(below.contains(&v("1.28.11")));
        assert!(below.contains(&v("1.20.0")));
        assert!(!below.contains(&v("1.28.12")));
        let zero = r(Some("0"), Some("1.28.12"), None);
        assert!(zero.contains(&v("1.28.11")));
        let band = r(Some("1.29.0"), Some("1.29.7"), None);
        assert!(band.contains(&v("v1.29.6-gke.100")));
        assert!(!band.contains(&v("1.29.7")));
        assert!(!band.contains(&v("1.28.11")));
        let last = r(Some("1.33.0"), None, Some("1.33.3"));
        assert!(last.contains(&v("1.33.3+k3s1")));
        assert!(!last.contains(&v("1.33.4")));
        let open = r(Some("1.30.0"), None, None);
        assert!(open.contains(&v("1.99.0")));
    }

    #[test]
    fn yaml_round_trip_and_validation() {
        let d = ReleaseData::bundled();
        let again = ReleaseData::from_yaml(&d.to_yaml()).unwrap();
        assert_eq!(again, d);
        let bad = "releases_as_of: 2026-01-01\ncves_as_of: 2026-01-01\nbranches:\n  - branch: \"1.30\"\n    patches: [[1.31.0, 2024-01-01]]\n";
        assert!(
            ReleaseData::from_yaml(bad)
                .unwrap_err()
                .contains("under branch")
        );
    }
}
