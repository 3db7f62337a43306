//! Kubernetes version strings as users and clusters write them: `1.35.4`, `v1.35.x` (newest
//! patch), `v1.30.4-gke.1`, `v1.31.2+k3s1`.

use std::{cmp::Ordering, fmt, str::FromStr};

/// The patch part of a requested version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Patch {
    /// A fixed patch number.
    Exact(u64),
    /// `x`: the newest patch offered.
    Latest,
}

/// A parsed version. Pre-release and build suffixes are kept but do not take part in ordering of
/// releases except that a pre-release sorts before its release (semver).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KubeVersion {
    /// Major (1).
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch or `x`.
    pub patch: Patch,
    /// Pre-release suffix after `-` (e.g. `rc.1`, `gke.1`).
    pub pre: Option<String>,
    /// Build suffix after `+` (e.g. `k3s1`).
    pub build: Option<String>,
}

/// Why a version string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a Kubernetes version (expected MAJOR.MINOR.PATCH with optional leading 'v', PATCH may be 'x')"
)]
pub struct VersionError(pub String);

fn number(s: &str, all: &str) -> Result<u64, VersionError> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(VersionError(all.into()));
    }
    s.parse().map_err(|_| VersionError(all.into()))
}

impl FromStr for KubeVersion {
    type Err = VersionError;
    fn from_str(all: &str) -> Result<Self, Self::Err> {
        let s = all.strip_prefix('v').unwrap_or(all);
        let (s, build) = match s.split_once('+') {
            Some((a, b)) if !b.is_empty() => (a, Some(b.to_string())),
            Some(_) => return Err(VersionError(all.into())),
            None => (s, None),
        };
        let (s, pre) = match s.split_once('-') {
            Some((a, b)) if !b.is_empty() => (a, Some(b.to_string())),
            Some(_) => return Err(VersionError(all.into())),
            None => (s, None),
        };
        let mut parts = s.split('.');
        let (Some(ma), Some(mi), Some(pa), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VersionError(all.into()));
        };
        let patch = if pa == "x" {
            Patch::Latest
        } else {
            Patch::Exact(number(pa, all)?)
        };
        Ok(KubeVersion {
            major: number(ma, all)?,
            minor: number(mi, all)?,
            patch,
            pre,
            build,
        })
    }
}

impl KubeVersion {
    /// An exact release `major.minor.patch`.
    pub fn new(major: u64, minor: u64, patch: u64) -> Self {
        KubeVersion {
            major,
            minor,
            patch: Patch::Exact(patch),
            pre: None,
            build: None,
        }
    }

    /// The minor branch, `(1, 35)`.
    pub fn branch(&self) -> (u64, u64) {
        (self.major, self.minor)
    }

    /// The patch number, if exact.
    pub fn patch_number(&self) -> Option<u64> {
        match self.patch {
            Patch::Exact(p) => Some(p),
            Patch::Latest => None,
        }
    }

    /// The release without suffixes, `v1.35.4`; `x` stays `x`.
    pub fn release(&self) -> String {
        match self.patch {
            Patch::Exact(p) => format!("v{}.{}.{}", self.major, self.minor, p),
            Patch::Latest => format!("v{}.{}.x", self.major, self.minor),
        }
    }

    /// Whether `self` (possibly `x`) is satisfied by the exact version `other` of the same branch.
    pub fn matches(&self, other: &KubeVersion) -> bool {
        self.branch() == other.branch()
            && match self.patch {
                Patch::Latest => true,
                Patch::Exact(p) => other.patch == Patch::Exact(p) && self.pre == other.pre,
            }
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.release())?;
        if let Some(p) = &self.pre {
            write!(f, "-{p}")?;
        }
        if let Some(b) = &self.build {
            write!(f, "+{b}")?;
        }
        Ok(())
    }
}

impl PartialOrd for KubeVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KubeVersion {
    /// Releases by number; `x` sorts above every exact patch; a pre-release sorts before its
    /// release; build metadata is ignored except as a last tie-break.
    fn cmp(&self, other: &Self) -> Ordering {
        let patch = |p: Patch| match p {
            Patch::Exact(n) => n,
            Patch::Latest => u64::MAX,
        };
        (self.major, self.minor, patch(self.patch))
            .cmp(&(other.major, other.minor, patch(other.patch)))
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b),
            })
            .then_with(|| self.build.cmp(&other.build))
    }
}

impl serde::Serialize for KubeVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for KubeVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_users_and_clusters_write() {
        let v: KubeVersion = "1.35.4".parse().unwrap();
        assert_eq!(v, KubeVersion::new(1, 35, 4));
        assert_eq!("v1.35.4".parse::<KubeVersion>().unwrap(), v);
        assert_eq!(
            "v1.35.x".parse::<KubeVersion>().unwrap().patch,
            Patch::Latest
        );
        let gke: KubeVersion = "v1.30.4-gke.1".parse().unwrap();
        assert_eq!(
            (gke.branch(), gke.patch_number(), gke.pre.as_deref()),
            ((1, 30), Some(4), Some("gke.1"))
        );
        let k3s: KubeVersion = "v1.31.2+k3s1".parse().unwrap();
        assert_eq!(
            (k3s.patch_number(), k3s.build.as_deref()),
            (Some(2), Some("k3s1"))
        );
        assert_eq!(k3s.to_string(), "v1.31.2+k3s1");
    }

    #[test]
    fn rejects_malformed_versions() {
        for bad in [
            "", "1.35", "1.35.4.1", "v", "1.x.1", "01.35.1", "1.35.4-", "1.35.4+", "latest",
            "1.35.X",
        ] {
            assert!(
                bad.parse::<KubeVersion>().is_err(),
                "{bad} should not parse"
            );
        }
    }

    #[test]
    fn orders_releases_and_prereleases() {
        let v = |s: &str| s.parse::<KubeVersion>().unwrap();
        assert!(v("1.35.10") > v("1.35.9"));
        assert!(v("1.36.0") > v("1.35.99"));
        assert!(v("1.36.0-rc.1") < v("1.36.0"));
        assert!(v("1.35.x") > v("1.35.99"));
        assert!(v("1.35.x").matches(&v("1.35.7")));
        assert!(!v("1.35.x").matches(&v("1.36.0")));
        assert!(v("1.35.7").matches(&v("v1.35.7")));
    }
}
