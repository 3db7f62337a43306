//! The events timeline of the cluster page: the events the diagnosis read with the user's own
//! identity (about the SCS `Cluster` and, where visible, its Cluster API objects), newest first,
//! each marked by its type (`Normal`, `Warning`).

use maud::{Markup, html};

/// The CSS class of an event type: `warning`, `normal`, or `other`.
pub(crate) fn type_class(t: &str) -> &'static str {
    match t {
        "Warning" => "warning",
        "Normal" => "normal",
        _ => "other",
    }
}

/// The timeline (`ol#events.timeline`), or a line saying there are none.
pub(crate) fn timeline(events: &[kaas_diagnose::EventInfo]) -> Markup {
    html! {
        @if events.is_empty() {
            p.hint id="events" { "No recent events." }
        } @else {
            ol.timeline id="events" {
                @for e in events {
                    li class={ "event " (type_class(&e.type_)) } {
                        span.when title=(e.time.clone().unwrap_or_default()) {
                            @if let Some(a) = &e.age { (a) " ago" } @else { "–" }
                        }
                        " " span class={ "etype " (type_class(&e.type_)) } { (e.type_) }
                        " " strong { (e.reason) }
                        " " small.object { (e.object) }
                        @if e.count > 1 { " " small.count { "×" (e.count) } }
                        div.message { (e.message) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(t: &str, reason: &str, age: &str, message: &str) -> kaas_diagnose::EventInfo {
        kaas_diagnose::EventInfo {
            type_: t.into(),
            reason: reason.into(),
            message: message.into(),
            object: "Cluster/c".into(),
            namespace: "t".into(),
            time: Some("2026-11-29T10:00:00Z".into()),
            age: Some(age.into()),
            count: 2,
        }
    }

    #[test]
    fn events_keep_their_order_and_carry_a_type_class() {
        let html = timeline(&[
            event("Warning", "ApplyFailed", "12s", "addon <ingress> & co"),
            event("Normal", "Created", "3m", "created"),
        ])
        .into_string();
        let warning = html.find("ApplyFailed").unwrap();
        let normal = html.find("Created").unwrap();
        assert!(warning < normal, "newest first as given: {html}");
        assert!(html.contains(r#"<li class="event warning">"#), "{html}");
        assert!(html.contains(r#"<li class="event normal">"#), "{html}");
        assert!(html.contains("addon &lt;ingress&gt; &amp; co"), "{html}");
        assert!(html.contains("12s ago") && html.contains("×2"), "{html}");
        assert!(timeline(&[]).into_string().contains("No recent events."));
    }
}
