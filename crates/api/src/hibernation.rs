//! Hibernation of a workload cluster (`Cluster.spec.hibernation`, `docs/hibernation.md`): every
//! worker pool at zero nodes (autoscaler bounds kept and restored on waking), the control plane
//! kept (Cluster API providers) or stopped with its data (hosted providers).
//!
//! `enabled` is the switch. Schedules flip it, like Gardener's: at a schedule's `start` the
//! operator sets `enabled: true`, at its `end` `enabled: false`, and records the time of the event
//! it applied in the annotation [`ANNOTATION_SCHEDULE_APPLIED`] in the same write. Between events
//! the switch is the user's: waking a cluster by hand in the middle of a scheduled night keeps it
//! awake until the next `start`. Each event is applied once; an operator that was down applies
//! the latest event it missed (within [`LOOKBACK_MINUTES`]), never older ones.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::backup::Cron;

/// Annotation on the `Cluster`: the time (RFC 3339) of the last scheduled hibernation event the
/// operator applied to `spec.hibernation.enabled`.
pub const ANNOTATION_SCHEDULE_APPLIED: &str = "scs.community/hibernation-schedule-applied";

/// How far back a missed scheduled event is still applied: a week, so a weekly schedule is never
/// missed and older events never matter.
pub const LOOKBACK_MINUTES: i64 = 7 * 24 * 60;

/// `spec.hibernation`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HibernationSpec {
    /// Hibernate (`true`) or stay awake (`false`, the default). Hibernating scales every worker
    /// pool to zero nodes and, on a hosted provider, stops the control plane with its data kept;
    /// `false` again restores every pool (autoscaled pools to their `minCount`) and the control
    /// plane. Schedules set this field at their start and end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,

    /// When to hibernate and wake automatically. At a schedule's `start` the operator sets
    /// `enabled: true`, at its `end` `enabled: false`; in between, a change by hand holds until
    /// the next event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxItems" = 16))]
    pub schedules: Option<Vec<HibernationSchedule>>,
}

/// One hibernation schedule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.start) || has(self.end)", "message": "a schedule needs a start, an end or both"},
    {"rule": "!has(self.start) || self.start.matches('^(\\\\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?(,(\\\\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?)*( (\\\\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?(,(\\\\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?)*){4}$')", "message": "must be a 5-field cron expression (minute hour day-of-month month day-of-week) such as '0 20 * * 1-5'", "fieldPath": ".start", "reason": "FieldValueInvalid"},
    {"rule": "!has(self.end) || self.end.matches('^(\\\\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?(,(\\\\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?)*( (\\\\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?(,(\\\\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?)*){4}$')", "message": "must be a 5-field cron expression (minute hour day-of-month month day-of-week) such as '0 7 * * 1-5'", "fieldPath": ".end", "reason": "FieldValueInvalid"}
]))]
pub struct HibernationSchedule {
    /// When to hibernate: a 5-field cron expression (minute hour day-of-month month day-of-week)
    /// in `location`'s local time, e.g. `0 20 * * 1-5` for 20:00 on weekdays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = 100))]
    pub start: Option<String>,

    /// When to wake: a 5-field cron expression in `location`'s local time, e.g. `0 7 * * 1-5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = 100))]
    pub end: Option<String>,

    /// IANA time zone the expressions are read in (`Europe/Berlin`); UTC when absent. Daylight
    /// saving time is followed: `0 20 * * *` is 20:00 local time all year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = 64))]
    pub location: Option<String>,
}

impl HibernationSpec {
    /// Whether hibernation is asked for now.
    pub fn asked(&self) -> bool {
        self.enabled == Some(true)
    }

    fn schedules(&self) -> &[HibernationSchedule] {
        self.schedules.as_deref().unwrap_or_default()
    }
}

/// A schedule read for evaluation.
#[derive(Clone, Debug)]
pub struct Schedule {
    start: Option<Cron>,
    end: Option<Cron>,
    zone: TimeZone,
}

/// A scheduled hibernation event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// `true`: hibernate (a `start`), `false`: wake (an `end`).
    pub hibernate: bool,
    /// The minute it happens, in minutes since the epoch.
    pub unix_minute: i64,
}

impl Event {
    /// The event's time.
    pub fn time(&self) -> Timestamp {
        Timestamp::from_second(self.unix_minute * 60).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

/// A problem with one field of `spec.hibernation` (path relative to `spec.hibernation`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// `schedules[0].location`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Reads every schedule: cron expressions parsed, time zones looked up. Every problem is
/// returned, each with its path.
pub fn parse(spec: &HibernationSpec) -> Result<Vec<Schedule>, Vec<Invalid>> {
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for (i, s) in spec.schedules().iter().enumerate() {
        let cron = |field: &str, e: &Option<String>, errs: &mut Vec<Invalid>| {
            let e = e.as_deref()?;
            Cron::parse(e)
                .map_err(|m| {
                    errs.push(Invalid {
                        path: format!("schedules[{i}].{field}"),
                        message: m,
                    })
                })
                .ok()
        };
        let start = cron("start", &s.start, &mut errs);
        let end = cron("end", &s.end, &mut errs);
        if s.start.is_none() && s.end.is_none() {
            errs.push(Invalid {
                path: format!("schedules[{i}]"),
                message: "a schedule needs a start, an end or both".into(),
            });
        }
        let zone = match s.location.as_deref() {
            None | Some("") | Some("UTC") => TimeZone::UTC,
            Some(name) => match TimeZone::get(name) {
                Ok(z) => z,
                Err(_) => {
                    errs.push(Invalid {
                        path: format!("schedules[{i}].location"),
                        message: format!(
                            "{name:?} is not an IANA time zone (such as Europe/Berlin or UTC)"
                        ),
                    });
                    continue;
                }
            },
        };
        out.push(Schedule { start, end, zone });
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}

/// The newest (`backward`) or oldest minute in `(from, to]` (minutes since the epoch) at which
/// `cron`, read in `zone`'s local time, fires. Walks the local dates of the window and only the
/// hours and minutes the expression names, so the cost does not grow with sparse schedules. A
/// local time skipped by a daylight-saving change fires at the same time after the change (02:30
/// → 03:30), a repeated one once (the first).
fn fire(cron: &Cron, zone: &TimeZone, from: i64, to: i64, backward: bool) -> Option<i64> {
    let date_of = |m: i64| {
        Timestamp::from_second(m * 60)
            .ok()
            .map(|t| t.to_zoned(zone.clone()).date())
    };
    let (first, last) = (date_of(from)?, date_of(to)?);
    let mut dates = Vec::new();
    let mut d = first;
    while d <= last && dates.len() <= 400 {
        dates.push(d);
        d = d.tomorrow().ok()?;
    }
    if backward {
        dates.reverse();
    }
    for date in dates {
        let weekday = date.weekday().to_sunday_zero_offset() as u32;
        if !cron.day_matches(date.day() as u32, date.month() as u32, weekday) {
            continue;
        }
        let mut hours: Vec<u32> = cron.hours().collect();
        let mut minutes: Vec<u32> = cron.minutes().collect();
        if backward {
            hours.reverse();
            minutes.reverse();
        }
        for h in &hours {
            for m in &minutes {
                let local = date.at(*h as i8, *m as i8, 0, 0);
                let Ok(t) = zone.to_ambiguous_timestamp(local).compatible() else {
                    continue;
                };
                let minute = t.as_second().div_euclid(60);
                if minute > from && minute <= to {
                    return Some(minute);
                }
            }
        }
    }
    None
}

/// The newest or oldest event of `schedules` in `(from, to]`; of a start and an end in the same
/// minute the end (waking loses nothing).
fn find(schedules: &[Schedule], from: i64, to: i64, backward: bool) -> Option<Event> {
    let mut best: Option<Event> = None;
    for s in schedules {
        for (cron, hibernate) in [(&s.end, false), (&s.start, true)] {
            let Some(at) = cron
                .as_ref()
                .and_then(|c| fire(c, &s.zone, from, to, backward))
            else {
                continue;
            };
            let better = match best {
                None => true,
                Some(b) if at == b.unix_minute => b.hibernate && !hibernate,
                Some(b) => (at > b.unix_minute) == backward,
            };
            if better {
                best = Some(Event {
                    hibernate,
                    unix_minute: at,
                });
            }
        }
    }
    best
}

/// The event of `schedules` in the minute `unix_minute`, if any.
pub fn event_at(schedules: &[Schedule], unix_minute: i64) -> Option<Event> {
    find(schedules, unix_minute - 1, unix_minute, true)
}

/// The latest event in `(after, now]` (minutes since the epoch), looking back at most
/// [`LOOKBACK_MINUTES`]: the one to apply if it was not applied yet.
pub fn latest(schedules: &[Schedule], after: i64, now: i64) -> Option<Event> {
    find(schedules, after.max(now - LOOKBACK_MINUTES), now, true)
}

/// The next event in `(now, now + within]`: when to look again.
pub fn next(schedules: &[Schedule], now: i64, within: i64) -> Option<Event> {
    find(schedules, now, now + within, false)
}

/// A digest of the schedules (FNV-1a over their JSON): the annotation
/// [`ANNOTATION_SCHEDULE_APPLIED`] names the schedules it was written for, so a changed schedule
/// starts from the time of the change and never acts on events before it.
pub fn digest(spec: &HibernationSpec) -> String {
    let json = serde_json::to_vec(&spec.schedules).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in json {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The annotation's value: the minute up to which events were applied, and the digest of the
/// schedules.
pub fn applied_value(unix_minute: i64, digest: &str) -> String {
    let t = Timestamp::from_second(unix_minute * 60).unwrap_or(Timestamp::UNIX_EPOCH);
    format!("{t} {digest}")
}

/// Reads the annotation: `(minute, digest)`, `None` when it is not of [`applied_value`]'s form.
pub fn read_applied(value: &str) -> Option<(i64, String)> {
    let (t, d) = value.split_once(' ')?;
    let t: Timestamp = t.parse().ok()?;
    Some((t.as_second().div_euclid(60), d.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_second() / 60
    }

    fn spec(start: Option<&str>, end: Option<&str>, location: Option<&str>) -> HibernationSpec {
        HibernationSpec {
            enabled: None,
            schedules: Some(vec![HibernationSchedule {
                start: start.map(String::from),
                end: end.map(String::from),
                location: location.map(String::from),
            }]),
        }
    }

    #[test]
    fn start_and_end_are_read_in_the_schedules_time_zone() {
        let s = parse(&spec(
            Some("0 20 * * 1-5"),
            Some("0 7 * * 1-5"),
            Some("Europe/Berlin"),
        ))
        .unwrap();
        // 2026-11-30 is a Monday; Berlin is UTC+1 in winter: 20:00 local is 19:00 UTC.
        let ev = event_at(&s, minute("2026-11-30T19:00:00Z")).unwrap();
        assert!(ev.hibernate);
        assert_eq!(event_at(&s, minute("2026-11-30T20:00:00Z")), None);
        let wake = event_at(&s, minute("2026-12-01T06:00:00Z")).unwrap();
        assert!(!wake.hibernate);
        // Summer time (UTC+2): 20:00 local is 18:00 UTC.
        assert!(
            event_at(&s, minute("2026-07-06T18:00:00Z"))
                .unwrap()
                .hibernate
        );
        // Saturday: nothing.
        assert_eq!(event_at(&s, minute("2026-12-05T19:00:00Z")), None);
    }

    #[test]
    fn the_latest_missed_event_counts_and_applied_ones_do_not() {
        let s = parse(&spec(Some("0 20 * * *"), Some("0 7 * * *"), None)).unwrap();
        let now = minute("2026-11-30T23:30:00Z");
        let ev = latest(&s, 0, now).unwrap();
        assert_eq!(ev.unix_minute, minute("2026-11-30T20:00:00Z"));
        assert!(ev.hibernate);
        // Already applied: nothing newer.
        assert_eq!(latest(&s, ev.unix_minute, now), None);
        // The next morning the wake-up is the latest.
        let morning = minute("2026-12-01T09:00:00Z");
        let ev = latest(&s, ev.unix_minute, morning).unwrap();
        assert!(!ev.hibernate);
        assert_eq!(ev.unix_minute, minute("2026-12-01T07:00:00Z"));
        // Never further back than a week.
        let sparse = parse(&spec(Some("0 0 1 1 *"), None, None)).unwrap();
        assert_eq!(latest(&sparse, 0, minute("2026-03-01T00:00:00Z")), None);
    }

    #[test]
    fn next_finds_the_coming_event_within_the_window_only() {
        let s = parse(&spec(Some("30 12 * * *"), None, None)).unwrap();
        let now = minute("2026-11-30T12:27:10Z");
        assert_eq!(
            next(&s, now, 5).map(|e| e.unix_minute),
            Some(minute("2026-11-30T12:30:00Z"))
        );
        assert_eq!(next(&s, now, 2), None);
    }

    #[test]
    fn a_start_and_an_end_in_the_same_minute_wake() {
        let s = parse(&spec(Some("0 8 * * *"), Some("0 8 * * *"), None)).unwrap();
        assert!(
            !event_at(&s, minute("2026-11-30T08:00:00Z"))
                .unwrap()
                .hibernate
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let mut h = spec(Some("61 * * * *"), Some("0 7 * *"), Some("Mars/Olympus"));
        h.schedules
            .as_mut()
            .unwrap()
            .push(HibernationSchedule::default());
        let errs = parse(&h).unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "schedules[0].start",
                "schedules[0].end",
                "schedules[0].location",
                "schedules[1]"
            ]
        );
        assert!(errs[2].message.contains("IANA"), "{}", errs[2].message);
    }

    #[test]
    fn daylight_saving_fires_a_skipped_time_after_the_change_and_a_repeated_one_once() {
        let s = parse(&spec(None, Some("30 2 * * *"), Some("Europe/Berlin"))).unwrap();
        // 2026-03-29 02:00 CET jumps to 03:00 CEST: 02:30 does not exist; it fires at 03:30
        // CEST (01:30 UTC), once.
        let ev = latest(
            &s,
            minute("2026-03-28T12:00:00Z"),
            minute("2026-03-29T12:00:00Z"),
        )
        .unwrap();
        assert_eq!(ev.unix_minute, minute("2026-03-29T01:30:00Z"));
        // 2026-10-25 03:00 CEST falls back to 02:00 CET: 02:30 happens twice (00:30 and 01:30
        // UTC); only the first fires.
        let ev = latest(
            &s,
            minute("2026-10-24T12:00:00Z"),
            minute("2026-10-25T12:00:00Z"),
        )
        .unwrap();
        assert_eq!(ev.unix_minute, minute("2026-10-25T00:30:00Z"));
        assert_eq!(
            latest(&s, ev.unix_minute, minute("2026-10-25T12:00:00Z")),
            None,
            "the repeated hour fires no second time"
        );
    }

    #[test]
    fn sparse_and_many_schedules_are_evaluated_field_by_field() {
        // Sixteen schedules that never fire within the lookback: nothing is found, and the walk
        // visits only the dates of the window (the expressions name one day a year).
        let sparse = HibernationSpec {
            enabled: None,
            schedules: Some(
                (0..16)
                    .map(|i| HibernationSchedule {
                        start: Some(format!("{i} 0 1 1 *")),
                        end: Some(format!("{i} 0 2 1 *")),
                        location: Some("Europe/Berlin".into()),
                    })
                    .collect(),
            ),
        };
        let s = parse(&sparse).unwrap();
        assert_eq!(latest(&s, 0, minute("2026-11-30T12:00:00Z")), None);
        // The same on 1 January finds the newest of them, an end winning a tie.
        let ev = latest(&s, 0, minute("2027-01-02T12:00:00Z")).unwrap();
        assert_eq!(ev.unix_minute, minute("2027-01-01T23:15:00Z"));
        assert!(!ev.hibernate);
    }

    #[test]
    fn the_annotation_names_the_minute_and_the_schedules() {
        let a = spec(Some("0 20 * * *"), None, None);
        let b = spec(Some("0 21 * * *"), None, None);
        assert_ne!(digest(&a), digest(&b));
        let v = applied_value(minute("2026-11-30T20:00:00Z"), &digest(&a));
        assert_eq!(
            read_applied(&v),
            Some((minute("2026-11-30T20:00:00Z"), digest(&a)))
        );
        assert_eq!(read_applied("2026-11-30T20:00:00Z"), None, "the old form");
        assert_eq!(read_applied("garbage value"), None);
    }
}
