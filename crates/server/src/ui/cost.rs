//! What a cluster costs in nodes: the control plane and each pool (its bounds when it
//! autoscales), and — from the Provider's flavor data — vCPU and memory per node and in total,
//! where the flavor is known. Computed from the spec alone (defaults from the provider), so the
//! create form shows it for any choice, valid or not, and a preview shows it before and after.

use kaas_api::provider::BackendType;
use kaas_api::{ClusterSpec, Provider};
use maud::{Markup, html};

/// Nodes of one part of the cluster.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Part {
    /// `control plane` or `pool NAME`.
    pub label: String,
    pub flavor: String,
    /// Fixed size: `min == max`.
    pub min: i32,
    pub max: i32,
    /// Per node, from the offering (`None`: the flavor is not offered).
    pub cpu: Option<i32>,
    pub memory_mib: Option<u64>,
}

/// The nodes a spec asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Cost {
    pub parts: Vec<Part>,
    /// Why the control plane has no nodes of the cluster's own (hosted, imported).
    pub control_plane_note: Option<String>,
}

/// A quantity (`8Gi`, `512Mi`, `4G`, `1073741824`) in MiB.
pub(crate) fn memory_mib(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (n, unit) = q.split_at(split);
    let n: f64 = n.parse().ok()?;
    let bytes = match unit {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        _ => return None,
    };
    Some((n * bytes / (1024.0 * 1024.0)).round() as u64)
}

/// MiB for people: `16 GiB`, `1.5 GiB`, `512 MiB`.
pub(crate) fn show_mib(mib: u64) -> String {
    if mib >= 1024 {
        let g = mib as f64 / 1024.0;
        if mib.is_multiple_of(1024) {
            format!("{} GiB", mib / 1024)
        } else {
            format!("{g:.1} GiB")
        }
    } else {
        format!("{mib} MiB")
    }
}

fn range(min: u64, max: u64) -> String {
    if min == max {
        min.to_string()
    } else {
        format!("{min}–{max}")
    }
}

impl Cost {
    /// The nodes of `spec` at `p`: the provider's default flavors and control-plane size fill
    /// what the spec leaves out; a pool without a size has one node.
    pub fn of(spec: &ClusterSpec, p: &Provider) -> Cost {
        let d = p.spec.defaults.clone().unwrap_or_default();
        let flavor = |name: &str| p.spec.flavors.iter().find(|f| f.name == name);
        let part = |label: String, flavor_name: String, min: i32, max: i32| {
            let f = flavor(&flavor_name);
            Part {
                label,
                min,
                max,
                cpu: f.map(|f| f.cpu),
                memory_mib: f.and_then(|f| memory_mib(&f.memory)),
                flavor: flavor_name,
            }
        };
        let mut cost = Cost::default();
        match p.spec.backend.kind {
            BackendType::ClusterAPI => {
                let cp = spec.control_plane.clone().unwrap_or_default();
                let n = cp.replicas.or(d.control_plane_replicas).unwrap_or(1);
                let fl = cp
                    .flavor
                    .filter(|f| !f.is_empty())
                    .or(d.control_plane_flavor.clone())
                    .unwrap_or_default();
                cost.parts.push(part("control plane".into(), fl, n, n));
            }
            BackendType::Hosted => {
                cost.control_plane_note =
                    Some("hosted by the provider: no nodes of the cluster".into());
            }
            BackendType::Static => {
                cost.control_plane_note =
                    Some("an imported cluster: kaas provisions no nodes".into());
                return cost;
            }
        }
        for w in spec.workers.iter().flatten() {
            let fl = w
                .flavor
                .clone()
                .filter(|f| !f.is_empty())
                .or(d.worker_flavor.clone())
                .unwrap_or_default();
            let (min, max) = match (w.count, w.min_count, w.max_count) {
                (Some(n), _, _) => (n, n),
                (None, None, None) => (1, 1),
                (None, min, max) => {
                    let min = min.unwrap_or(0);
                    (min, max.unwrap_or(min).max(min))
                }
            };
            cost.parts
                .push(part(format!("pool {}", w.name), fl, min, max));
        }
        cost
    }

    /// Nodes in total (min, max).
    pub fn nodes(&self) -> (u64, u64) {
        self.parts.iter().fold((0, 0), |(a, b), p| {
            (a + p.min.max(0) as u64, b + p.max.max(0) as u64)
        })
    }

    /// vCPU in total (min, max), when every flavor is known.
    pub fn cpu(&self) -> Option<(u64, u64)> {
        self.parts.iter().try_fold((0, 0), |(a, b), p| {
            let c = p.cpu? as u64;
            Some((a + c * p.min.max(0) as u64, b + c * p.max.max(0) as u64))
        })
    }

    /// Memory in total in MiB (min, max), when every flavor is known.
    pub fn memory_mib(&self) -> Option<(u64, u64)> {
        self.parts.iter().try_fold((0, 0), |(a, b), p| {
            let m = p.memory_mib?;
            Some((a + m * p.min.max(0) as u64, b + m * p.max.max(0) as u64))
        })
    }

    /// Flavors the offering does not describe.
    fn unknown(&self) -> Vec<&str> {
        let mut u: Vec<&str> = self
            .parts
            .iter()
            .filter(|p| p.cpu.is_none())
            .map(|p| p.flavor.as_str())
            .collect();
        u.dedup();
        u
    }

    /// The totals in one line: `4 nodes · 8 vCPU · 16 GiB`.
    pub fn total_text(&self) -> String {
        let (a, b) = self.nodes();
        let mut s = format!("{} node{}", range(a, b), if b == 1 { "" } else { "s" });
        if let Some((a, b)) = self.cpu() {
            s.push_str(&format!(" · {} vCPU", range(a, b)));
        }
        if let Some((a, b)) = self.memory_mib() {
            if a == b {
                s.push_str(&format!(" · {}", show_mib(a)));
            } else {
                s.push_str(&format!(" · {}–{}", show_mib(a), show_mib(b)));
            }
        }
        s
    }
}

fn part_row(p: &Part) -> Markup {
    let per = match (p.cpu, p.memory_mib) {
        (Some(c), Some(m)) => format!("{c} vCPU, {} each", show_mib(m)),
        (Some(c), None) => format!("{c} vCPU each"),
        _ => "not in the offering".to_string(),
    };
    let nodes = range(p.min.max(0) as u64, p.max.max(0) as u64);
    html! {
        tr data-part=(p.label) {
            th scope="row" { (p.label) }
            td.num { (nodes) @if p.min != p.max { " " small.hint { "(autoscaled)" } } }
            td { @if p.flavor.is_empty() { "–" } @else { code { (p.flavor) } } " " small.hint { (per) } }
            td.num { @if let Some(c) = p.cpu { (range(c as u64 * p.min.max(0) as u64, c as u64 * p.max.max(0) as u64)) } @else { "?" } }
            td.num { @if let Some(m) = p.memory_mib {
                @if p.min == p.max { (show_mib(m * p.min.max(0) as u64)) }
                @else { (show_mib(m * p.min.max(0) as u64)) "–" (show_mib(m * p.max.max(0) as u64)) }
            } @else { "?" } }
        }
    }
}

/// The cost as a table (`#cost`); with `before`, the totals say what changes.
pub(crate) fn html(cost: &Cost, before: Option<&Cost>) -> Markup {
    let unknown = cost.unknown();
    html! {
        section.cost id="cost" {
            h2 { "What it costs" }
            table.cost {
                thead { tr { th { "Part" } th.num { "Nodes" } th { "Flavor" } th.num { "vCPU" } th.num { "Memory" } } }
                tbody {
                    @if let Some(n) = &cost.control_plane_note {
                        tr data-part="control plane" { th scope="row" { "control plane" } td colspan="4" { small.hint { (n) } } }
                    }
                    @for p in &cost.parts { (part_row(p)) }
                }
                tfoot {
                    tr id="cost-total" {
                        th scope="row" { "Total" }
                        @let (a, b) = cost.nodes();
                        td.num id="cost-nodes" { (range(a, b)) }
                        td {}
                        td.num id="cost-cpu" { @match cost.cpu() { Some((a, b)) => { (range(a, b)) }, None => { "?" } } }
                        td.num id="cost-memory" { @match cost.memory_mib() {
                            Some((a, b)) if a == b => { (show_mib(a)) },
                            Some((a, b)) => { (show_mib(a)) "–" (show_mib(b)) },
                            None => { "?" },
                        } }
                    }
                }
            }
            p.cost-summary id="cost-summary" {
                @if let Some(b) = before {
                    @if b.total_text() == cost.total_text() { "Unchanged: " strong { (cost.total_text()) } }
                    @else { "Now " strong { (b.total_text()) } " → after the change " strong { (cost.total_text()) } }
                } @else { "In total " strong { (cost.total_text()) } }
                @if !unknown.is_empty() { " " small.hint { "(vCPU and memory unknown: the offering does not describe " (unknown.join(", ")) ")" } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> Provider {
        serde_yaml::from_str(include_str!("../../../../examples/provider-inmemory.yaml")).unwrap()
    }

    #[test]
    fn quantities() {
        assert_eq!(memory_mib("8Gi"), Some(8192));
        assert_eq!(memory_mib("512Mi"), Some(512));
        assert_eq!(memory_mib("1.5Gi"), Some(1536));
        assert_eq!(memory_mib("4G"), Some(3815));
        assert_eq!(memory_mib("lots"), None);
        assert_eq!(show_mib(16384), "16 GiB");
        assert_eq!(show_mib(1536), "1.5 GiB");
        assert_eq!(show_mib(512), "512 MiB");
    }

    #[test]
    fn nodes_vcpu_and_memory_of_a_spec() {
        let p = provider();
        let small = p.spec.flavors.iter().find(|f| f.name == "small").unwrap();
        let (cpu, mem) = (small.cpu as u64, memory_mib(&small.memory).unwrap());
        let spec: ClusterSpec = serde_json::from_value(serde_json::json!({
            "provider": {"name": "dev"},
            "controlPlane": {"replicas": 3, "flavor": "small"},
            "workers": [
                {"name": "a", "flavor": "small", "count": 2},
                {"name": "b", "flavor": "small", "minCount": 1, "maxCount": 4},
            ]
        }))
        .unwrap();
        let c = Cost::of(&spec, &p);
        assert_eq!(c.parts.len(), 3);
        assert_eq!(c.nodes(), (6, 9));
        assert_eq!(c.cpu(), Some((6 * cpu, 9 * cpu)));
        assert_eq!(c.memory_mib(), Some((6 * mem, 9 * mem)));
        let h = html(&c, None).into_string();
        assert!(
            h.contains(r#"<td class="num" id="cost-nodes">6–9</td>"#),
            "{h}"
        );
        assert!(h.contains("(autoscaled)"), "{h}");
        // An unknown flavor: nodes still counted, vCPU and memory unknown.
        let spec: ClusterSpec = serde_json::from_value(serde_json::json!({
            "provider": {"name": "dev"},
            "workers": [{"name": "a", "flavor": "m9.huge", "count": 2}]
        }))
        .unwrap();
        let c = Cost::of(&spec, &p);
        assert_eq!(c.cpu(), None);
        let h = html(&c, None).into_string();
        assert!(h.contains("does not describe m9.huge"), "{h}");
    }
}
