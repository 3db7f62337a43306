//! Text renderings of a [`Diagnosis`](crate::Diagnosis): the tree (`kaas describe cluster`) and
//! the short form (`kaas diagnose`).

use std::fmt::Write;

use crate::{ConditionInfo, Diagnosis, Node, NodeStatus, Verdict};

/// Conditions where `True` is the unusual state.
const NEGATIVE: &[&str] = &[
    "Paused",
    "Deleting",
    "RollingOut",
    "ScalingUp",
    "ScalingDown",
    "Remediating",
    "Updating",
];

/// Widest first column before the summary moves on regardless.
const MAX_TITLE: usize = 72;

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn unusual(c: &ConditionInfo) -> bool {
    if NEGATIVE.contains(&c.type_.as_str()) {
        c.status == "True"
    } else {
        c.status != "True"
    }
}

fn title(n: &Node, root: bool) -> String {
    let t = n.title();
    match (n.kind.as_str(), root) {
        ("Cluster", true) => format!("{t} (SCS)"),
        ("Cluster", false) => format!("{t} (Cluster API)"),
        _ => t,
    }
}

struct Row {
    title: String,
    status: NodeStatus,
    summary: String,
    notes: Vec<(String, String)>,
}

fn rows(n: &Node, prefix: &str, last: bool, root: bool, out: &mut Vec<Row>) {
    let (branch, cont) = if root {
        ("", "")
    } else if last {
        ("└─ ", "   ")
    } else {
        ("├─ ", "│  ")
    };
    let child_prefix = format!("{prefix}{cont}");
    let note_prefix = if n.children.is_empty() {
        format!("{child_prefix}   ")
    } else {
        format!("{child_prefix}│  ")
    };
    let notes = if n.status == NodeStatus::Ok {
        Vec::new()
    } else {
        n.conditions
            .iter()
            .filter(|c| unusual(c) || c.type_ == "Deleting")
            .map(|c| {
                let mut s = format!("{}={}", c.type_, c.status);
                if !c.reason.is_empty() {
                    s.push_str(&format!(" ({})", c.reason));
                }
                if !c.message.is_empty() {
                    s.push_str(&format!(": {}", one_line(&c.message)));
                }
                (note_prefix.clone(), s)
            })
            .collect()
    };
    out.push(Row {
        title: format!("{prefix}{branch}{}", title(n, root)),
        status: n.status,
        summary: one_line(&n.summary),
        notes,
    });
    for (k, c) in n.children.iter().enumerate() {
        rows(c, &child_prefix, k + 1 == n.children.len(), false, out);
    }
}

fn header(d: &Diagnosis, out: &mut String) {
    let c = &d.cluster;
    let _ = write!(out, "Cluster {}/{}", c.namespace, c.name);
    if let Some(p) = &c.provider {
        let _ = write!(out, "  provider {p}");
    }
    if let Some(p) = &c.phase {
        let _ = write!(out, "  phase {p}");
    }
    match (&c.version, &c.target_version) {
        (Some(v), Some(t)) if v != t => {
            let _ = write!(out, "  version {v} (target {t})");
        }
        (Some(v), _) => {
            let _ = write!(out, "  version {v}");
        }
        (None, Some(t)) => {
            let _ = write!(out, "  target version {t}");
        }
        (None, None) => {}
    }
    let _ = writeln!(
        out,
        "  {}  {}",
        if c.ready { "Ready" } else { "not Ready" },
        d.verdict
    );
}

fn degraded(d: &Diagnosis, out: &mut String) {
    if d.verdict != Verdict::Degraded || d.degraded.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nDegraded (Ready and usable, but these fail; they do not block the cluster):"
    );
    for a in &d.degraded {
        let cond = match (&a.condition, &a.reason) {
            (Some(c), Some(r)) => format!(" ({c}=False, {r})"),
            (Some(c), None) => format!(" ({c}=False)"),
            _ => String::new(),
        };
        let _ = writeln!(out, "  - {}{cond}: {}", a.aspect, one_line(&a.message));
        for h in d.hints.iter().filter(|h| a.hints.contains(&h.code)) {
            let _ = writeln!(out, "    hint: {}", one_line(&h.message));
        }
    }
}

fn waiting_and_hints(d: &Diagnosis, out: &mut String) {
    if let Some(w) = &d.waiting_for {
        let _ = writeln!(out, "\nWaiting for: {}", one_line(w));
    }
    if !d.hints.is_empty() {
        let _ = writeln!(out, "\nHints:");
        for h in &d.hints {
            let _ = writeln!(out, "  - {}", one_line(&h.message));
        }
    }
}

/// The tree, what it waits for, hints and events.
pub fn describe(d: &Diagnosis) -> String {
    let mut out = String::new();
    header(d, &mut out);
    let mut rs = Vec::new();
    degraded(d, &mut out);
    rows(&d.tree, "", true, true, &mut rs);
    let width = rs
        .iter()
        .map(|r| r.title.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(6, MAX_TITLE);
    let _ = writeln!(out, "\n{:<width$}  {:<11}  SUMMARY", "OBJECT", "STATUS");
    for r in &rs {
        let _ = writeln!(
            out,
            "{:<width$}  {:<11}  {}",
            r.title,
            r.status.as_str(),
            r.summary
        );
        for (prefix, note) in &r.notes {
            let _ = writeln!(out, "{prefix}! {note}");
        }
    }
    waiting_and_hints(d, &mut out);
    let _ = writeln!(out, "\nEvents (newest first):");
    if d.events.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let ow = d
            .events
            .iter()
            .map(|e| e.object.chars().count())
            .max()
            .unwrap_or(0)
            .min(50);
        let rw = d
            .events
            .iter()
            .map(|e| e.reason.chars().count())
            .max()
            .unwrap_or(0)
            .min(40);
        let _ = writeln!(
            out,
            "  {:<5}  {:<7}  {:<rw$}  {:<ow$}  MESSAGE",
            "AGE", "TYPE", "REASON", "OBJECT"
        );
        for e in &d.events {
            let count = if e.count > 1 {
                format!(" (x{})", e.count)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {:<5}  {:<7}  {:<rw$}  {:<ow$}  {}{count}",
                e.age.as_deref().unwrap_or("-"),
                e.type_,
                e.reason,
                e.object,
                one_line(&e.message)
            );
        }
    }
    out
}

/// What needs attention only: waiting for, failing objects, hints.
pub fn short(d: &Diagnosis) -> String {
    let mut out = String::new();
    header(d, &mut out);
    let failing = d.failing();
    if d.waiting_for.is_none() && failing.is_empty() && d.hints.is_empty() {
        let _ = writeln!(out, "\nNothing to do.");
        return out;
    }
    degraded(d, &mut out);
    if !failing.is_empty() && d.verdict != Verdict::Degraded {
        let _ = writeln!(out, "\nFailing:");
        for n in failing {
            let _ = writeln!(
                out,
                "  - {}: {}",
                title(n, n.api_group == "scs.community"),
                one_line(&n.summary)
            );
        }
    }
    waiting_and_hints(d, &mut out);
    out
}
