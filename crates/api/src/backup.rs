//! etcd backups of workload clusters (issue #19, `docs/backup.md`): the tenant's schedule on the
//! `Cluster` (`spec.backup`), the one-off requests `ClusterBackup` and `ClusterRestore`
//! (scs.community/v1alpha1, namespaced, tenant-writable), the Provider's object store
//! (`spec.backup.store`) and the operator ↔ runtime contract on the `HostedControlPlane`
//! (`spec.etcdOperation`, `status.etcdOperation`).
//!
//! A request can only name a `Cluster` and a `ClusterBackup` of its own namespace (there is no
//! namespace field). The store's credentials and the encryption key are Secrets in the provider's
//! namespace; nothing of them reaches a status, an event or a log.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Scheduled backups of a cluster (`Cluster.spec.backup`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.schedule.matches('^(\\\\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?(,(\\\\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?)*( (\\\\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?(,(\\\\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?)*){4}$')",
    "message": "must be a 5-field cron expression (minute hour day-of-month month day-of-week, UTC) such as '0 3 * * *'",
    "fieldPath": ".schedule",
    "reason": "FieldValueInvalid"
}]))]
pub struct BackupSchedule {
    /// When to take a backup: a 5-field cron expression in UTC (minute hour day-of-month month
    /// day-of-week; `*`, numbers, ranges `a-b`, steps `/n` and lists `a,b`), e.g. `0 3 * * *`
    /// for 03:00 UTC every day. The operator creates a `ClusterBackup` named
    /// `<cluster>-<yyyymmddhhmm>` when due.
    #[schemars(extend("maxLength" = 100))]
    pub schedule: String,
    /// How many scheduled backups to keep (the newest ones that succeeded); older ones are
    /// deleted together with their objects in the store. One-off backups are kept until deleted.
    #[schemars(extend("minimum" = 1, "maximum" = 1000))]
    pub retention: i32,
}

/// A tenant's request for an etcd snapshot of one of its workload clusters.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "scs.community",
    version = "v1alpha1",
    kind = "ClusterBackup",
    doc = "An etcd snapshot of a workload cluster, encrypted with the provider's key and stored in the provider's object store (docs/backup.md). Taken once; deleting it deletes the stored object.",
    plural = "clusterbackups",
    singular = "clusterbackup",
    namespaced,
    status = "BackupStatus",
    shortname = "cbk",
    category = "scs",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.cluster"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Size","type":"integer","jsonPath":".status.size"}"#,
    printcolumn = r#"{"name":"Revision","type":"integer","jsonPath":".status.revision"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterBackupSpec {
    /// Name of a `Cluster` in this namespace.
    #[schemars(extend("pattern" = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength" = 63))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "is immutable"}]))]
    pub cluster: String,
}

/// A tenant's request to restore a workload cluster's etcd from a `ClusterBackup`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "scs.community",
    version = "v1alpha1",
    kind = "ClusterRestore",
    doc = "Restores a workload cluster's etcd from a ClusterBackup of the same namespace (the same or another cluster of the tenant): the control plane stops, etcd is replaced by the snapshot, the control plane restarts (docs/backup.md).",
    plural = "clusterrestores",
    singular = "clusterrestore",
    namespaced,
    status = "BackupStatus",
    shortname = "crs",
    category = "scs",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.cluster"}"#,
    printcolumn = r#"{"name":"Backup","type":"string","jsonPath":".spec.backup"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "a ClusterRestore is immutable; create a new one"}]))]
pub struct ClusterRestoreSpec {
    /// Name of the `Cluster` in this namespace whose etcd is replaced.
    #[schemars(extend("pattern" = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength" = 63))]
    pub cluster: String,
    /// Name of a `ClusterBackup` in this namespace that succeeded (of this or another cluster).
    #[schemars(extend("pattern" = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength" = 253))]
    pub backup: String,
}

/// Observed state of a `ClusterBackup` or `ClusterRestore`, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// `Ready` first: True once done; Unknown while running or waiting (reason says for what);
    /// False when refused or failed (`ClusterNotFound`, `BackupNotFound`, `NotSupported`,
    /// `NoBackupStore`, `Failed`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// `Pending`, `Running`, `Succeeded`, `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Key of the encrypted snapshot in the provider's bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_key: Option<String>,
    /// Bytes stored (the encrypted snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// etcd revision of the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// How long it took, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// When it started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// The Provider's backup settings (`Provider.spec.backup`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderBackup {
    /// The S3-compatible object store backups go to.
    pub store: BackupStore,
}

/// An S3-compatible object store (path-style requests, AWS Signature Version 4).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStore {
    /// Base URL of the store (`https://s3.example.com`).
    #[schemars(extend("pattern" = r"^https?://[^/?#]+/?$", "maxLength" = 253))]
    pub endpoint: String,
    /// Bucket (must exist).
    #[schemars(extend("pattern" = r"^[a-z0-9][-a-z0-9.]{1,61}[a-z0-9]$"))]
    pub bucket: String,
    /// Signing region (default `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = 63))]
    pub region: Option<String>,
    /// Secret in the provider's namespace (`backend.namespace`) with the keys `accessKeyID` and
    /// `secretAccessKey`.
    pub credentials_secret_ref: SecretRef,
    /// Secret in the provider's namespace with the key `key`: 32 random bytes (raw or base64),
    /// the master key every backup's AES-256-GCM key is derived from.
    pub encryption_key_secret_ref: SecretRef,
}

/// A Secret in the provider's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct SecretRef {
    /// Secret name.
    #[schemars(extend("maxLength" = 253))]
    pub name: String,
}

/// What the operator asks a hosted control-plane runtime to do with etcd
/// (`HostedControlPlane.spec.etcdOperation`). The transfer details (a presigned URL of exactly one
/// object, valid for minutes, and that object's own AES-256-GCM key) are in the Secret
/// `secretName` next to the object, which tenants cannot read; the runtime never holds the
/// store's credentials or the provider's master key.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EtcdOperation {
    /// Unique per request (the UID of the `ClusterBackup` or `ClusterRestore`).
    #[schemars(extend("maxLength" = 63))]
    pub id: String,
    /// `Snapshot` or `Restore`.
    pub kind: EtcdOperationKind,
    /// Secret next to the object with `url` (presigned PUT for a snapshot, GET for a restore) and
    /// `key` (base64 of the object's AES-256-GCM key).
    #[schemars(extend("maxLength" = 253))]
    pub secret_name: String,
}

/// The two etcd operations.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum EtcdOperationKind {
    /// Take a snapshot (etcd's Maintenance.Snapshot), encrypt it, upload it.
    #[default]
    Snapshot,
    /// Download, decrypt, stop the control plane, `etcdutl snapshot restore`, swap, restart.
    Restore,
}

/// The runtime's report on the last etcd operation (`HostedControlPlane.status.etcdOperation`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EtcdOperationStatus {
    /// The `spec.etcdOperation.id` this reports on.
    pub id: String,
    /// `Succeeded` or `Failed`.
    pub phase: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// etcd revision of the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Bytes uploaded or downloaded (encrypted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// When the runtime started it (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the runtime finished it (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// Condition type of backups and restores.
pub const CONDITION_READY: &str = "Ready";
/// Phases.
pub const PHASE_PENDING: &str = "Pending";
/// Running.
pub const PHASE_RUNNING: &str = "Running";
/// Done.
pub const PHASE_SUCCEEDED: &str = "Succeeded";
/// Refused or failed.
pub const PHASE_FAILED: &str = "Failed";
/// Label on scheduled `ClusterBackup`s: the cluster whose schedule created them.
pub const LABEL_SCHEDULED_FOR: &str = "scs.community/scheduled-backup-of";
/// Finalizer on a `ClusterBackup` while its object may exist in the store.
pub const BACKUP_FINALIZER: &str = "scs.community/backup-object";

/// A parsed 5-field cron expression (UTC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    fields: [Vec<bool>; 5],
    /// Whether day-of-month and day-of-week were both restricted (then either matches, as cron).
    dom_and_dow: (bool, bool),
}

const CRON_NAMES: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];
const CRON_RANGES: [(u32, u32); 5] = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];

impl Cron {
    /// Parses `minute hour day-of-month month day-of-week`; the error names the field.
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let parts: Vec<&str> = expr.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!(
                "{expr:?} has {} fields; a cron expression has 5 (minute hour day-of-month month day-of-week)",
                parts.len()
            ));
        }
        let re = regex_lite_field();
        let mut fields: [Vec<bool>; 5] = Default::default();
        for (i, part) in parts.iter().enumerate() {
            let (lo, hi) = CRON_RANGES[i];
            if !re(part) {
                return Err(format!("{} {part:?} is not a cron field", CRON_NAMES[i]));
            }
            let mut set = vec![false; hi as usize + 1];
            for item in part.split(',') {
                let (range, step) = match item.split_once('/') {
                    Some((r, s)) => (r, s.parse::<u32>().map_err(|e| e.to_string())?),
                    None => (item, 1),
                };
                if step == 0 {
                    return Err(format!(
                        "{} {part:?}: a step must be at least 1",
                        CRON_NAMES[i]
                    ));
                }
                let (a, b) = if range == "*" {
                    (lo, hi)
                } else if let Some((a, b)) = range.split_once('-') {
                    (num(a)?, num(b)?)
                } else {
                    let a = num(range)?;
                    (a, if item.contains('/') { hi } else { a })
                };
                if a < lo || b > hi || a > b {
                    return Err(format!("{} {part:?} is outside {lo}-{hi}", CRON_NAMES[i]));
                }
                let mut v = a;
                while v <= b {
                    set[v as usize] = true;
                    // A step beyond the field's range (`1/4294967295`) ends the loop, never
                    // overflows.
                    match v.checked_add(step) {
                        Some(n) => v = n,
                        None => break,
                    }
                }
            }
            fields[i] = set;
        }
        // Sunday is 0 and 7.
        if fields[4][7] {
            fields[4][0] = true;
        }
        Ok(Cron {
            fields,
            dom_and_dow: (parts[2] != "*", parts[4] != "*"),
        })
    }

    /// Whether the minute starting at `unix_minute` (minutes since the epoch, UTC) matches.
    pub fn matches(&self, unix_minute: i64) -> bool {
        let secs = unix_minute * 60;
        let days = secs.div_euclid(86400);
        let rem = secs.rem_euclid(86400);
        let (minute, hour) = ((rem % 3600) / 60, rem / 3600);
        let (_, month, day) = civil_from_days(days);
        let weekday = (days + 4).rem_euclid(7); // 1970-01-01 was a Thursday.
        self.matches_civil(minute as u32, hour as u32, day, month, weekday as u32)
    }

    /// Whether a wall-clock minute matches (`weekday`: 0 is Sunday): for expressions read in a
    /// time zone other than UTC (`kaas_api::hibernation`).
    pub fn matches_civil(
        &self,
        minute: u32,
        hour: u32,
        day: u32,
        month: u32,
        weekday: u32,
    ) -> bool {
        let at = |v: &Vec<bool>, i: u32| v.get(i as usize).copied().unwrap_or(false);
        at(&self.fields[0], minute)
            && at(&self.fields[1], hour)
            && self.day_matches(day, month, weekday)
    }

    /// Whether a date matches the day-of-month, month and day-of-week fields (`weekday`: 0 is
    /// Sunday).
    pub fn day_matches(&self, day: u32, month: u32, weekday: u32) -> bool {
        let f = &self.fields;
        let at = |v: &Vec<bool>, i: u32| v.get(i as usize).copied().unwrap_or(false);
        let dom = at(&f[2], day);
        let dow = at(&f[4], weekday);
        let day_ok = match self.dom_and_dow {
            (true, true) => dom || dow,
            _ => dom && dow,
        };
        day_ok && at(&f[3], month)
    }

    /// The hours (0–23) the hour field matches, ascending.
    pub fn hours(&self) -> impl DoubleEndedIterator<Item = u32> + '_ {
        (0..24u32).filter(|h| self.fields[1][*h as usize])
    }

    /// The minutes (0–59) the minute field matches, ascending.
    pub fn minutes(&self) -> impl DoubleEndedIterator<Item = u32> + Clone + '_ {
        (0..60u32).filter(|m| self.fields[0][*m as usize])
    }

    /// The first matching minute strictly after `unix_minute`, searching at most a year ahead.
    pub fn next_after(&self, unix_minute: i64) -> Option<i64> {
        (unix_minute + 1..=unix_minute + 366 * 24 * 60).find(|m| self.matches(*m))
    }
}

fn num(s: &str) -> Result<u32, String> {
    s.parse().map_err(|_| format!("{s:?} is not a number"))
}

fn regex_lite_field() -> impl Fn(&str) -> bool {
    |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| c.is_ascii_digit() || "*,-/".contains(c))
            && !s.starts_with(',')
            && !s.ends_with(',')
    }
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute_of(y: i64, mo: u32, d: u32, h: i64, mi: i64) -> i64 {
        // Days from civil (inverse of civil_from_days), for the tests only.
        let y2 = if mo <= 2 { y - 1 } else { y };
        let era = y2.div_euclid(400);
        let yoe = y2 - era * 400;
        let mp = (i64::from(mo) + 9) % 12;
        let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 1440 + h * 60 + mi
    }

    #[test]
    fn daily_at_three_runs_once_a_day_at_three_utc() {
        let c = Cron::parse("0 3 * * *").unwrap();
        let start = minute_of(2026, 11, 30, 4, 0);
        let next = c.next_after(start).unwrap();
        assert_eq!(next, minute_of(2026, 12, 1, 3, 0));
        assert_eq!(c.next_after(next).unwrap(), minute_of(2026, 12, 2, 3, 0));
    }

    #[test]
    fn steps_lists_ranges_and_weekdays_match_like_cron() {
        let c = Cron::parse("*/15 9-17 * * 1-5").unwrap();
        // 2026-11-30 is a Monday.
        assert!(c.matches(minute_of(2026, 11, 30, 9, 45)));
        assert!(!c.matches(minute_of(2026, 11, 30, 9, 46)));
        assert!(!c.matches(minute_of(2026, 11, 29, 9, 45)), "a Sunday");
        let sunday = Cron::parse("0 0 * * 7").unwrap();
        assert!(sunday.matches(minute_of(2026, 11, 29, 0, 0)));
        let every = Cron::parse("* * * * *").unwrap();
        assert_eq!(every.next_after(10), Some(11));
        let both = Cron::parse("0 0 1 * 1").unwrap();
        assert!(both.matches(minute_of(2026, 12, 1, 0, 0)), "the 1st");
        assert!(both.matches(minute_of(2026, 11, 30, 0, 0)), "a Monday");
    }

    #[test]
    fn a_step_beyond_the_range_matches_the_start_only() {
        let c = Cron::parse("1/4294967295 * * * *").unwrap();
        assert!(c.matches(minute_of(2026, 11, 30, 9, 1)));
        assert!(!c.matches(minute_of(2026, 11, 30, 9, 2)));
    }

    #[test]
    fn bad_expressions_name_the_field() {
        for (bad, needle) in [
            ("0 3 * *", "has 4 fields"),
            ("61 * * * *", "minute"),
            ("* 24 * * *", "hour"),
            ("* * 0 * *", "day-of-month"),
            ("* * * 13 *", "month"),
            ("* * * * 8", "day-of-week"),
            ("*/0 * * * *", "step"),
            ("a * * * *", "minute"),
        ] {
            let e = Cron::parse(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
