//! Maintenance windows and the rollout decision for version changes (the operator and `kaas plan`
//! share it). Pure: the clock is a parameter.

use k8s_openapi::jiff::{Timestamp, tz::TimeZone};
use kaas_api::KubeVersion;
use kaas_api::cluster::{Maintenance, MaintenanceWindow};

/// Parses `2h`, `90m`, `2h30m` into minutes.
pub fn duration_minutes(s: &str) -> Option<i64> {
    let (h, rest) = match s.split_once('h') {
        Some((h, rest)) => (h.parse::<i64>().ok()?, rest),
        None => (0, s),
    };
    let m = match rest.strip_suffix('m') {
        Some(m) => m.parse::<i64>().ok()?,
        None if rest.is_empty() => 0,
        None => return None,
    };
    Some(h * 60 + m)
}

/// Whether `now` is inside the daily window (UTC). No window: always.
pub fn in_window(window: Option<&MaintenanceWindow>, now: Timestamp) -> bool {
    let Some(w) = window else { return true };
    let Some((h, m)) = w.start.split_once(':') else {
        return false;
    };
    let (Ok(h), Ok(m)) = (h.parse::<i64>(), m.parse::<i64>()) else {
        return false;
    };
    let Some(len) = duration_minutes(&w.duration) else {
        return false;
    };
    let t = now.to_zoned(TimeZone::UTC);
    let minute_of_day = i64::from(t.hour()) * 60 + i64::from(t.minute());
    let start = h * 60 + m;
    let since_start = (minute_of_day - start).rem_euclid(24 * 60);
    since_start < len
}

/// What to do about a version the spec resolves to, given the version rolled out so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollout {
    /// Roll out the new target now.
    Now,
    /// Keep the current version; the new one waits for the maintenance window.
    WaitForWindow,
    /// Keep the current version: the spec asks for patch updates to be manual.
    Hold,
}

/// Decides when a change of the resolved version may roll out. User-requested changes (another
/// minor, or the exact version written in the spec) go now; automatic patch moves (`x`, expired
/// versions) wait for the maintenance window; with `autoUpdatePatch: false` only forced moves
/// (expired versions) happen.
pub fn decide(
    current: Option<&KubeVersion>,
    target: &KubeVersion,
    spec_version: Option<&str>,
    forced: bool,
    maintenance: Option<&Maintenance>,
    now: Timestamp,
) -> Rollout {
    let Some(current) = current else {
        return Rollout::Now;
    };
    if current == target {
        return Rollout::Now;
    }
    let spec_exact = spec_version
        .and_then(|s| s.parse::<KubeVersion>().ok())
        .is_some_and(|s| s.patch_number().is_some() && s.matches(target));
    if current.branch() != target.branch() || spec_exact {
        return Rollout::Now;
    }
    let auto = maintenance
        .and_then(|m| m.auto_update_patch)
        .unwrap_or(true);
    if !auto && !forced {
        return Rollout::Hold;
    }
    if in_window(maintenance.and_then(|m| m.window.as_ref()), now) {
        Rollout::Now
    } else {
        Rollout::WaitForWindow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hhmm: &str) -> Timestamp {
        format!("2026-11-23T{hhmm}:00Z").parse().unwrap()
    }
    fn window(start: &str, duration: &str) -> MaintenanceWindow {
        MaintenanceWindow {
            start: start.into(),
            duration: duration.into(),
        }
    }
    fn v(s: &str) -> KubeVersion {
        s.parse().unwrap()
    }

    #[test]
    fn durations() {
        assert_eq!(duration_minutes("2h"), Some(120));
        assert_eq!(duration_minutes("90m"), Some(90));
        assert_eq!(duration_minutes("2h30m"), Some(150));
        assert_eq!(duration_minutes("x"), None);
    }

    #[test]
    fn windows_including_ones_over_midnight() {
        let w = window("22:00", "3h");
        assert!(in_window(Some(&w), at("22:00")));
        assert!(in_window(Some(&w), at("23:59")));
        assert!(in_window(Some(&w), at("00:59")));
        assert!(!in_window(Some(&w), at("01:00")));
        assert!(!in_window(Some(&w), at("21:59")));
        assert!(in_window(None, at("12:00")));
        assert!(in_window(Some(&window("00:00", "24h")), at("13:37")));
    }

    #[test]
    fn rollout_decisions() {
        let m = Maintenance {
            window: Some(window("02:00", "2h")),
            auto_update_patch: None,
        };
        let noon = at("12:00");
        let night = at("02:30");
        // Creation and no change roll now.
        assert_eq!(
            decide(None, &v("1.35.4"), Some("1.35.x"), false, Some(&m), noon),
            Rollout::Now
        );
        assert_eq!(
            decide(
                Some(&v("1.35.4")),
                &v("1.35.4"),
                None,
                false,
                Some(&m),
                noon
            ),
            Rollout::Now
        );
        // A new patch for `x` waits for the window.
        assert_eq!(
            decide(
                Some(&v("1.35.4")),
                &v("1.35.5"),
                Some("1.35.x"),
                false,
                Some(&m),
                noon
            ),
            Rollout::WaitForWindow
        );
        assert_eq!(
            decide(
                Some(&v("1.35.4")),
                &v("1.35.5"),
                Some("1.35.x"),
                false,
                Some(&m),
                night
            ),
            Rollout::Now
        );
        // The user asked for that exact patch, or for another minor: now.
        assert_eq!(
            decide(
                Some(&v("1.35.4")),
                &v("1.35.5"),
                Some("v1.35.5"),
                false,
                Some(&m),
                noon
            ),
            Rollout::Now
        );
        assert_eq!(
            decide(
                Some(&v("1.35.4")),
                &v("1.36.3"),
                Some("1.36.x"),
                false,
                Some(&m),
                noon
            ),
            Rollout::Now
        );
        // Manual patch updates hold, unless the running version expired.
        let manual = Maintenance {
            auto_update_patch: Some(false),
            ..m.clone()
        };
        assert_eq!(
            decide(
                Some(&v("1.35.4")),
                &v("1.35.5"),
                Some("1.35.x"),
                false,
                Some(&manual),
                night
            ),
            Rollout::Hold
        );
        assert_eq!(
            decide(
                Some(&v("1.35.4")),
                &v("1.35.5"),
                Some("1.35.4"),
                true,
                Some(&manual),
                noon
            ),
            Rollout::WaitForWindow
        );
        assert_eq!(
            decide(
                Some(&v("1.35.4")),
                &v("1.35.5"),
                Some("1.35.4"),
                true,
                Some(&manual),
                night
            ),
            Rollout::Now
        );
    }
}
