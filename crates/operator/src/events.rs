//! The operator's events (`events.k8s.io/v1`), with the series kube's `Recorder` writes: an event
//! repeated within [`SERIES_TTL`] (same type, reason, action, note, object and related object) raises the first one's
//! `series.count` instead of creating another.
//!
//! Unlike kube's `Recorder`, it remembers only the name and count of each recent event (not a
//! copy of the whole event), and drops the expired ones once a minute instead of scanning them all
//! on every event under one lock: at 10,000 new clusters kube's cache held
//! about 30,000 events (24 MB at 2000 clusters in a heap profile), and each publish went through
//! all of them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};

/// How long a published event can be continued as a series (kube's `Recorder`: 6 minutes).
pub const SERIES_TTL: Duration = Duration::from_secs(360);

/// How often expired series are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// What identifies a series: type, reason, action, and the kind, namespace, name and uid of the
/// object and of the related object (as in kube's `Recorder`), and a hash of the note (unlike it:
/// one event of a status write names several transitions, and another set of them under the same
/// reason is another event, not a repeat).
type Key = (
    bool,
    String,
    String,
    [Option<String>; 4],
    Option<[Option<String>; 4]>,
    u64,
);

/// The most bytes of a note the API server accepts.
pub const NOTE_MAX: usize = 1024;

/// `s` cut to at most `max` bytes, at a character boundary (with `…` when cut).
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn identity(r: &ObjectReference) -> [Option<String>; 4] {
    [
        r.kind.clone(),
        r.namespace.clone(),
        r.name.clone(),
        r.uid.clone(),
    ]
}

/// A recent event that a repeat continues.
struct Recent {
    name: String,
    count: i32,
    at: Instant,
}

/// Publishes events with the operator's identity (`reportingController`/`reportingInstance`).
#[derive(Clone)]
pub struct Publisher {
    client: kube::Client,
    reporter: Reporter,
    recent: std::sync::Arc<Mutex<(HashMap<Key, Recent>, Instant)>>,
}

impl Publisher {
    /// A publisher writing with `client` as `reporter`.
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Publisher {
            client,
            reporter,
            recent: std::sync::Arc::new(Mutex::new((HashMap::new(), Instant::now()))),
        }
    }

    /// The reporter events are published as.
    pub fn reporter(&self) -> &Reporter {
        &self.reporter
    }

    /// How many series are remembered (for tests and the memory figures).
    pub fn remembered(&self) -> usize {
        self.lock().0.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<Key, Recent>, Instant)> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes `ev` about `regarding`: a new event, or the next of its series when the same
    /// one was published less than [`SERIES_TTL`] ago. A note longer than [`NOTE_MAX`] bytes is cut.
    pub async fn publish(
        &self,
        ev: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let note = ev.note.as_deref().map(|n| clip(n, NOTE_MAX));
        let key: Key = (
            matches!(ev.type_, EventType::Warning),
            ev.reason.clone(),
            ev.action.clone(),
            identity(regarding),
            ev.secondary.as_ref().map(identity),
            crate::Written::hash_of(&note),
        );
        let ns = regarding.namespace.as_deref().unwrap_or("default");
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), ns);
        let now = Timestamp::now();
        let repeat = {
            let mut recent = self.lock();
            let (map, pruned) = &mut *recent;
            if pruned.elapsed() >= PRUNE_EVERY {
                map.retain(|_, r| r.at.elapsed() < SERIES_TTL);
                *pruned = Instant::now();
            }
            map.get(&key)
                .filter(|r| r.at.elapsed() < SERIES_TTL)
                .map(|r| (r.name.clone(), r.count + 1))
        };
        let name = match repeat {
            Some((name, count)) => {
                let series = serde_json::json!({
                    "series": EventSeries {
                        count,
                        last_observed_time: MicroTime(now),
                    }
                });
                match events
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&series))
                    .await
                {
                    Ok(_) => {
                        self.remember(key, name, count);
                        return Ok(());
                    }
                    // The first event is gone (expired, deleted): a new one starts the series.
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    // Any other failure: the occurrence is published as a new event rather than
                    // lost (at worst it is told twice).
                    Err(e) => {
                        tracing::warn!(event = %name, error = %e, "event series update failed; publishing a new event")
                    }
                }
                self.new_name(regarding, now)
            }
            None => self.new_name(regarding, now),
        };
        let event = K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: ev.secondary.clone(),
            note,
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(name.clone()),
                ..Default::default()
            },
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(
                match ev.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            ..Default::default()
        };
        events.create(&PostParams::default(), &event).await?;
        self.remember(key, name, 1);
        Ok(())
    }

    fn new_name(&self, regarding: &ObjectReference, now: Timestamp) -> String {
        format!(
            "{}.{:x}",
            regarding
                .name
                .as_deref()
                .unwrap_or(&self.reporter.controller),
            now.as_nanosecond()
        )
    }

    fn remember(&self, key: Key, name: String, count: i32) {
        self.lock().0.insert(
            key,
            Recent {
                name,
                count,
                at: Instant::now(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_cut_to_the_bytes_the_api_server_takes_at_a_character_boundary() {
        assert_eq!(clip("short", NOTE_MAX), "short");
        let long = "ä".repeat(700); // 1400 bytes
        let cut = clip(&long, NOTE_MAX);
        assert!(cut.len() <= NOTE_MAX, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert!(cut.len() > NOTE_MAX - 8);
        assert_eq!(clip("abcdef", 5), "ab…");
    }

    /// A client whose API server creates events and fails every series update with 500; `sent`
    /// gets `METHOD path` of each request.
    fn failing_series(sent: std::sync::Arc<Mutex<Vec<String>>>) -> kube::Client {
        crate::fake_api::client(move |req| {
            sent.lock()
                .unwrap()
                .push(format!("{} {}", req.method(), req.uri().path()));
            if req.method() == http::Method::POST {
                let ev = serde_json::json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                    "metadata": {"name": "c.1", "namespace": "t"},
                    "eventTime": "2026-11-30T00:00:00.000000Z"});
                (201, ev.to_string())
            } else {
                let st = serde_json::json!({"kind": "Status", "apiVersion": "v1",
                    "status": "Failure", "reason": "InternalError", "code": 500});
                (500, st.to_string())
            }
        })
    }

    #[tokio::test]
    async fn a_failed_series_update_is_published_as_a_new_event_not_lost() {
        let sent = std::sync::Arc::new(Mutex::new(Vec::new()));
        let client = failing_series(sent.clone());
        let publisher = Publisher::new(
            client,
            Reporter {
                controller: "kaas-test".into(),
                instance: None,
            },
        );
        let ev = Event {
            type_: EventType::Warning,
            reason: "Refused".into(),
            note: Some("the same refusal".into()),
            action: "Reconcile".into(),
            secondary: None,
        };
        let regarding = ObjectReference {
            namespace: Some("t".into()),
            name: Some("c".into()),
            ..Default::default()
        };
        publisher.publish(&ev, &regarding).await.unwrap();
        publisher
            .publish(&ev, &regarding)
            .await
            .expect("the repeat is published although its series update failed");
        let sent = sent.lock().unwrap().clone();
        let path = "/apis/events.k8s.io/v1/namespaces/t/events";
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert_eq!(sent[0], format!("POST {path}"));
        assert!(sent[1].starts_with(&format!("PATCH {path}/c.")), "{sent:?}");
        assert_eq!(sent[2], format!("POST {path}"));
    }
}
