//! What became of each v1 key. Values of secrets and unknown keys are never stored here, so a
//! report can be printed, logged or committed as it is.

use serde::Serialize;
use serde_json::Value;

/// What became of one v1 key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// Translated into a field of the SCS `Cluster`.
    Mapped,
    /// Nothing to carry over: the provider (its stack, its management plane) decides it now.
    Derived,
    /// The SCS-API has nothing like it; dropped, with the reason.
    NoEquivalent,
    /// A credential: never copied, its value is in neither the output nor the report.
    Secret,
    /// Not a key of the v1 template; its value is not shown.
    Unknown,
}

impl Kind {
    /// Heading of the kind's section in the text summary.
    pub fn heading(self) -> &'static str {
        match self {
            Kind::Mapped => "mapped (v1 key=value -> SCS field = value)",
            Kind::Derived => "derived by the provider now (not carried over)",
            Kind::NoEquivalent => "no equivalent in the SCS-API (dropped)",
            Kind::Secret => "secrets (NOT copied; values withheld)",
            Kind::Unknown => "unknown keys (not migrated; values withheld)",
        }
    }

    const ALL: [Kind; 5] = [
        Kind::Mapped,
        Kind::Derived,
        Kind::NoEquivalent,
        Kind::Secret,
        Kind::Unknown,
    ];
}

/// One key of the v1 settings.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The v1 key.
    pub key: String,
    /// What became of it.
    pub kind: Kind,
    /// The SCS field it became (mapped keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The value of that field in the produced Cluster; `null` when the field is left to the
    /// provider's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The v1 value as written. Never set for secrets, unknown keys and base64 blobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
    /// Why, and what to look at.
    pub note: String,
}

/// What `migrate` did with every key, plus what needs a person's attention.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// One entry per key, in the order of the settings file.
    pub entries: Vec<Entry>,
    /// Behaviour that differs from the v1 cluster: review before applying.
    pub warnings: Vec<String>,
    /// Fields left to the provider's defaults and other hints.
    pub notes: Vec<String>,
}

impl Report {
    /// Entries of one kind.
    pub fn of(&self, kind: Kind) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(move |e| e.kind == kind)
    }

    /// Number of entries of one kind.
    pub fn count(&self, kind: Kind) -> usize {
        self.of(kind).count()
    }

    /// One line: how many keys went where.
    pub fn summary(&self) -> String {
        format!(
            "{} mapped, {} derived by the provider, {} without equivalent, {} secret (not copied), {} unknown; {} warning(s)",
            self.count(Kind::Mapped),
            self.count(Kind::Derived),
            self.count(Kind::NoEquivalent),
            self.count(Kind::Secret),
            self.count(Kind::Unknown),
            self.warnings.len()
        )
    }

    /// The report as text lines (without comment markers): warnings, notes, then each kind.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!("Summary: {}.", self.summary())];
        if !self.warnings.is_empty() {
            out.push(String::new());
            out.push("WARNINGS (behaviour differs from the v1 cluster):".into());
            out.extend(self.warnings.iter().map(|w| format!("  - {}", one_line(w))));
        }
        if !self.notes.is_empty() {
            out.push(String::new());
            out.push("Notes:".into());
            out.extend(self.notes.iter().map(|n| format!("  - {}", one_line(n))));
        }
        for kind in Kind::ALL {
            if self.count(kind) == 0 {
                continue;
            }
            out.push(String::new());
            out.push(format!("{}:", kind.heading()));
            for e in self.of(kind) {
                out.push(format!("  {}", one_line(&entry_line(e))));
            }
        }
        out
    }
}

fn entry_line(e: &Entry) -> String {
    let original = match &e.original {
        Some(o) if o.is_empty() => "=\"\"".to_string(),
        Some(o) => format!("={o}"),
        None if matches!(e.kind, Kind::Secret | Kind::Unknown) => " (value withheld)".into(),
        None => String::new(),
    };
    match (&e.field, e.kind) {
        (Some(field), Kind::Mapped) => {
            let value = match &e.value {
                Some(Value::Null) | None => "(not set)".to_string(),
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            };
            format!("{}{original} -> {field} = {value}: {}", e.key, e.note)
        }
        _ => format!("{}{original}: {}", e.key, e.note),
    }
}

/// Text safe for one comment line: control characters (newlines of block scalars) become spaces.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
