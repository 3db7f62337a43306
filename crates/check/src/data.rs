//! Release and CVE data for the version policy (scs-0210): end of life per branch, the release date
//! of every patch, and CVEs of core components with their CVSS score and affected versions.
//!
//! The data is bundled ([`ReleaseData::bundled`], from `crates/check/data/kubernetes-releases.yaml`)
//! so `kaas check` works offline; [`crate::upstream::fetch`] builds the same structure from the
//! upstream sources when they are reachable. Every report names the data it used and its dates.

use std::path::Path;
use std::sync::OnceLock;

use jiff::civil::Date;
use serde::{Deserialize, Deserializer, Serialize};

use crate::version::{Branch, KubeVersion};

/// The bundled data file.
pub const BUNDLED_YAML: &str = include_str!("../data/kubernetes-releases.yaml");

/// How the bundled data names itself in reports.
pub const BUNDLED_SOURCE: &str = "bundled (kaas-check data/kubernetes-releases.yaml)";

fn default_source() -> String {
    "file".into()
}

/// Parses a `YYYY-MM-DD` date as release data, `--reference-date` and the upstream sources write
/// it (`%Y-%m-%d`; a month or day without its leading zero is accepted too).
pub fn parse_date(s: &str) -> Result<Date, String> {
    Date::strptime("%Y-%m-%d", s).map_err(|e| format!("invalid date {s:?} (YYYY-MM-DD): {e}"))
}

fn de_date<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
    parse_date(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn de_opt_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| parse_date(&s).map_err(serde::de::Error::custom))
        .transpose()
}

/// A date in release data: read with [`parse_date`], written `YYYY-MM-DD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
struct DataDate(#[serde(deserialize_with = "de_date")] Date);

/// Release and CVE facts, each part complete up to its `*_as_of` date.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReleaseData {
    /// Where the data came from (bundled, a file, or upstream with the fetch date).
    #[serde(default = "default_source")]
    pub source: String,
    /// Every patch release up to and including this date is listed.
    #[serde(deserialize_with = "de_date")]
    pub releases_as_of: Date,
    /// Every relevant CVE published up to and including this date is listed.
    #[serde(deserialize_with = "de_date")]
    pub cves_as_of: Date,
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
    #[serde(default, deserialize_with = "de_opt_date")]
    pub end_of_life: Option<Date>,
    /// Patch releases (`x.y.0` included) with their release dates.
    #[serde(default)]
    pub patches: Vec<PatchRelease>,
}

/// A released version and its date; written `[1.33.1, 2025-05-15]` in YAML.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(String, DataDate)", into = "(String, DataDate)")]
pub struct PatchRelease {
    /// `1.33.1`.
    pub version: String,
    /// Release date.
    pub date: Date,
}

impl From<(String, DataDate)> for PatchRelease {
    fn from((version, DataDate(date)): (String, DataDate)) -> Self {
        Self { version, date }
    }
}

impl From<PatchRelease> for (String, DataDate) {
    fn from(p: PatchRelease) -> Self {
        (p.version, DataDate(p.date))
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
    #[serde(default, deserialize_with = "de_opt_date")]
    pub published: Option<Date>,
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
    fn dates_are_read_as_year_month_day() {
        let d = jiff::civil::date(2026, 5, 7);
        assert_eq!(parse_date("2026-05-07"), Ok(d));
        assert_eq!(parse_date("2026-5-7"), Ok(d));
        assert!(parse_date("2026-05-07T10:00").is_err());
        assert!(parse_date("07.05.2026").is_err());
        let yaml = "releases_as_of: 2026-5-7\ncves_as_of: 2026-05-07\nbranches:\n  - branch: \"1.36\"\n    end_of_life: 2027-6-28\n    patches: [[1.36.0, 2026-4-22]]\n";
        let data: ReleaseData = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(data.releases_as_of, d);
        assert_eq!(
            data.branches[0].end_of_life,
            Some(jiff::civil::date(2027, 6, 28))
        );
        assert_eq!(
            data.branches[0].patches[0].date,
            jiff::civil::date(2026, 4, 22)
        );
        let written = serde_yaml::to_string(&data).unwrap();
        assert!(written.contains("releases_as_of: 2026-05-07"), "{written}");
        assert!(written.contains("- 2026-04-22"), "{written}");
    }

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
