//! The scs-0210 version policy, table-tested over versions and reference dates: end-of-life
//! boundary, the 31- and 14-day windows, vendor suffixes and pre-releases, unknown branches, and
//! data too old to decide. Nothing here depends on today's date.

use jiff::civil::Date;
use kaas_check::version::{KubeVersion, evaluate};
use kaas_check::{Outcome, ReleaseData};

/// Crafted data: complete up to 2026-06-30.
const DATA: &str = r#"
releases_as_of: 2026-06-30
cves_as_of: 2026-06-30
branches:
  - branch: "1.42"
    end_of_life: 2027-08-28
    patches: [[1.42.0, 2026-06-01], [1.42.1, 2026-06-10]]
  - branch: "1.41"
    patches: [[1.41.0, 2026-06-20]]
  - branch: "1.40"
    end_of_life: 2027-06-28
    patches: [[1.40.0, 2026-04-01], [1.40.1, 2026-05-01], [1.40.2, 2026-06-01]]
  - branch: "1.39"
    end_of_life: 2026-06-28
    patches: [[1.39.0, 2025-06-01], [1.39.5, 2026-05-01]]
  - branch: "1.38"
    end_of_life: 2026-02-28
    patches: [[1.38.9, 2026-01-10]]
cves:
  - id: CVE-TEST-CRITICAL
    summary: critical, fixed in 1.42.1
    components: [kube-apiserver]
    cvss_vector: CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H
    affected: [{ introduced: 1.42.0, fixed: 1.42.1 }]
  - id: CVE-TEST-MEDIUM
    summary: medium, fixed in 1.40.2
    components: [kubelet]
    cvss_vector: CVSS:3.1/AV:N/AC:H/PR:H/UI:N/S:U/C:H/I:H/A:N
    affected: [{ fixed: 1.40.2 }]
"#;

fn date(s: &str) -> Date {
    s.parse().unwrap()
}

fn check(data: &ReleaseData, rows: &[(&str, &str, Outcome, &str)]) {
    let mut failures = Vec::new();
    for (version, reference, want, needle) in rows {
        let v = KubeVersion::parse(version).unwrap();
        let got = evaluate(&v, date(reference), data);
        if got.outcome != *want || !got.summary.contains(needle) {
            failures.push(format!(
                "{version} on {reference}: want {want} containing {needle:?}, got {} {:?}\n    {}",
                got.outcome,
                got.summary,
                got.details.join("\n    ")
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn end_of_life_boundary() {
    let data = ReleaseData::from_yaml(DATA).unwrap();
    use Outcome::*;
    check(
        &data,
        &[
            // The EOL day itself is still supported; the day after is not.
            ("v1.39.5", "2026-06-28", Pass, "supported"),
            (
                "v1.39.5",
                "2026-06-29",
                Fail,
                "end of life on 2026-06-28, 1 days before",
            ),
            ("v1.38.9", "2026-07-01", Fail, "end of life"),
            // Branches older than the data: past the oldest listed EOL, so past their own.
            ("v1.20.15", "2026-07-01", Fail, "older than 1.38"),
            (
                "v1.20.15",
                "2026-01-01",
                Abort,
                "older than the release data covers",
            ),
        ],
    );
}

#[test]
fn thirty_one_day_window() {
    let data = ReleaseData::from_yaml(DATA).unwrap();
    use Outcome::*;
    check(
        &data,
        &[
            // 1.40.2 was released on 2026-06-01.
            ("v1.40.1", "2026-06-01", Pass, "0 days old (limit 31)"),
            ("v1.40.1", "2026-07-02", Pass, "31 days old (limit 31)"),
            (
                "v1.40.1",
                "2026-07-03",
                Fail,
                "released on 2026-06-01, 32 days before 2026-07-03; the limit is 31 days",
            ),
            // The oldest overdue patch is named.
            (
                "v1.40.0",
                "2026-07-03",
                Fail,
                "v1.40.1 was released on 2026-05-01",
            ),
            // A medium CVE (5.9) does not shorten the window.
            ("v1.40.1", "2026-06-20", Pass, "limit 31"),
            ("v1.40.2", "2026-07-10", Pass, "no newer patch known"),
        ],
    );
}

#[test]
fn fourteen_day_window_with_critical_cve() {
    let data = ReleaseData::from_yaml(DATA).unwrap();
    use Outcome::*;
    check(
        &data,
        &[
            // 1.42.0 has CVE-TEST-CRITICAL (8.8); 1.42.1 (2026-06-10) fixes it.
            ("v1.42.0", "2026-06-24", Pass, "14 days old (limit 14)"),
            (
                "v1.42.0",
                "2026-06-25",
                Fail,
                "15 days before 2026-06-25; the limit is 14 days because of CVE-TEST-CRITICAL",
            ),
            ("v1.42.1", "2026-06-25", Pass, "no newer patch known"),
            // A known FAIL stands even where the data is old.
            ("v1.42.0", "2026-09-01", Fail, "the limit is 14 days"),
        ],
    );
    let v = KubeVersion::parse("1.42.0").unwrap();
    let p = evaluate(&v, date("2026-06-20"), &data);
    assert_eq!(p.window_days, 14);
    assert_eq!(p.critical_cves, vec!["CVE-TEST-CRITICAL".to_string()]);
}

#[test]
fn vendor_suffixes_and_prereleases() {
    let data = ReleaseData::from_yaml(DATA).unwrap();
    use Outcome::*;
    check(
        &data,
        &[
            ("v1.40.1-gke.1", "2026-07-02", Pass, "limit 31"),
            ("v1.40.1-gke.1", "2026-07-03", Fail, "32 days"),
            ("v1.40.1+k3s1", "2026-07-03", Fail, "32 days"),
            ("v1.40.2+rke2r1", "2026-07-03", Pass, "no newer patch"),
            (
                "v1.42.0-eks-a1b2c3",
                "2026-06-25",
                Fail,
                "because of CVE-TEST-CRITICAL",
            ),
            // A release candidate is older than the release.
            (
                "v1.40.2-rc.1",
                "2026-07-03",
                Fail,
                "v1.40.2 was released on 2026-06-01",
            ),
            ("v1.40.2-rc.1", "2026-06-15", Pass, "limit 31"),
        ],
    );
}

#[test]
fn unknown_branches_and_unknown_end_of_life() {
    let data = ReleaseData::from_yaml(DATA).unwrap();
    use Outcome::*;
    check(
        &data,
        &[
            // 1.41 has no EOL in the data: supported for 365 days after its x.0 (2026-06-20).
            ("v1.41.0", "2026-07-01", Pass, "no newer patch"),
            ("v1.41.0", "2027-06-20", Abort, "release data is"),
            ("v1.41.0", "2027-06-21", Abort, "end of life unknown"),
            // 1.43 is newer than the data: released after 2026-06-30.
            ("v1.43.0", "2026-07-01", Pass, "no newer patch"),
            ("v1.43.0", "2027-08-01", Abort, "end of life unknown"),
        ],
    );
}

#[test]
fn data_too_old_to_decide() {
    let data = ReleaseData::from_yaml(DATA).unwrap();
    use Outcome::*;
    check(
        &data,
        &[
            // Releases known to 2026-06-30: a patch out since before 2026-08-02 would be overdue.
            // Releases and CVEs known to 2026-06-30: decided up to 14 days later (an unknown
            // critical fix out longer than that would already be overdue) ...
            ("v1.40.2", "2026-07-14", Pass, "no newer patch"),
            (
                "v1.40.2",
                "2026-07-15",
                Abort,
                "a fix of a CVE with CVSS >= 8 released since",
            ),
            // ... and an ordinary patch out since before 2026-07-02 would be overdue, too.
            (
                "v1.40.2",
                "2026-08-01",
                Abort,
                "release data is 32 days old (releases as of 2026-06-30",
            ),
            (
                "v1.40.2",
                "2026-08-02",
                Abort,
                "release data is 33 days old (releases as of 2026-06-30",
            ),
            ("v1.40.2", "2026-12-01", Abort, "release data is"),
            // With a critical CVE the data must cover up to 14 days before.
            ("v1.42.0", "2026-06-20", Pass, "limit 14"),
        ],
    );
    // CVE data older than the release data: a newer patch 15..31 days old may fix an unknown
    // critical CVE; without such a patch the answer is known.
    let stale_cves =
        ReleaseData::from_yaml(&DATA.replace("cves_as_of: 2026-06-30", "cves_as_of: 2026-05-01"))
            .unwrap();
    check(
        &stale_cves,
        &[
            (
                "v1.40.1",
                "2026-06-25",
                Abort,
                "fixes a CVE with CVSS >= 8 (14-day limit)",
            ),
            ("v1.40.1", "2026-06-10", Pass, "9 days old"),
            ("v1.40.2", "2026-06-25", Pass, "no newer patch"),
            // Both data sets older than 14 days before the reference date.
            (
                "v1.40.2",
                "2026-07-20",
                Abort,
                "a fix of a CVE with CVSS >= 8 released since",
            ),
        ],
    );
}

#[test]
fn bundled_data_at_fixed_dates() {
    let data = ReleaseData::bundled();
    use Outcome::*;
    check(
        &data,
        &[
            ("v1.33.12", "2026-05-20", Pass, "no newer patch"),
            ("v1.33.11-gke.1200", "2026-05-20", Pass, "8 days old"),
            (
                "v1.33.10",
                "2026-05-20",
                Fail,
                "v1.33.11 was released on 2026-04-14",
            ),
            ("v1.31.14", "2026-05-20", Fail, "end of life on 2025-10-28"),
            ("v1.34.8+k3s1", "2026-05-25", Pass, "supported"),
            // CVE-2023-3676 (CVSS 8.8, published 2023-08-23) affects 1.27.4; 1.27.5 came out the
            // same day.
            ("v1.27.4", "2023-09-06", Pass, "14 days old (limit 14)"),
            ("v1.27.4", "2023-09-07", Fail, "because of CVE-2023-3676"),
            // CVE-2024-10220 was published on 2024-11-20, long after its fix (1.30.3, 2024-07-16):
            // judged on 2024-08-10 with the knowledge of that day, 1.30.2 was within 31 days.
            ("v1.30.2", "2024-08-10", Pass, "25 days old (limit 31)"),
            ("v1.29.7", "2024-09-13", Pass, "3 days old (limit 31)"),
            // The test plane's version today: the bundled data is too old to decide, and says so.
            (
                "v1.36.3",
                "2026-11-23",
                Abort,
                "release data is 194 days old (releases as of 2026-05-13",
            ),
        ],
    );
    // CVEs count from their publication: before 2023-08-23 the 31-day window applied to 1.27.4.
    let v = KubeVersion::parse("v1.27.4").unwrap();
    assert_eq!(evaluate(&v, date("2023-08-22"), &data).window_days, 31);
    let p = evaluate(&v, date("2023-08-23"), &data);
    assert_eq!(p.window_days, 14);
    assert_eq!(p.critical_cves, ["CVE-2023-3676", "CVE-2023-3955"]);
    assert!(!p.stale_data);
    // Stale data is a verdict of its own kind: ABORT with `stale_data`, the age and "refresh".
    let p = evaluate(
        &KubeVersion::parse("v1.36.3").unwrap(),
        date("2026-11-30"),
        &data,
    );
    assert_eq!(p.outcome, Abort);
    assert!(p.stale_data);
    assert!(
        p.summary.starts_with("release data is 201 days old")
            && p.summary.ends_with("refresh the release data"),
        "{}",
        p.summary
    );
}

#[test]
fn draft_v3_windows() {
    use kaas_check::version::{SCS_0210_V3_DRAFT, evaluate_policy};
    let data = ReleaseData::from_yaml(DATA).unwrap();
    let v3 = |v: &str, d: &str| {
        evaluate_policy(
            &KubeVersion::parse(v).unwrap(),
            date(d),
            &data,
            &SCS_0210_V3_DRAFT,
        )
    };
    // 1.40.1 -> 1.40.2 (2026-06-01): within 31 days for v2, beyond 14 for the draft.
    assert_eq!(
        evaluate(
            &KubeVersion::parse("v1.40.1").unwrap(),
            date("2026-06-20"),
            &data
        )
        .outcome,
        Outcome::Pass
    );
    let p = v3("v1.40.1", "2026-06-20");
    assert_eq!(p.outcome, Outcome::Fail, "{}", p.summary);
    assert!(p.summary.contains("the limit is 14 days"), "{}", p.summary);
    assert_eq!(v3("v1.40.1", "2026-06-15").outcome, Outcome::Pass);
    // 1.40.0 has a CVE of CVSS 6.x only (medium): still 14 days. 1.42.0 has a critical one: 3 days.
    let p = v3("v1.42.0", "2026-06-14");
    assert_eq!(
        (p.outcome, p.window_days),
        (Outcome::Fail, 3),
        "{}",
        p.summary
    );
    assert_eq!(v3("v1.42.0", "2026-06-13").outcome, Outcome::Pass);
}
