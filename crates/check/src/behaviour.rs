//! Shared machinery of the behavioural checks: a temporary namespace that is always deleted,
//! a schedulability precheck, and bounded waits for pods and Jobs that tell "the cluster cannot run
//! pods" (ABORT) from "the feature under test does not work" (FAIL).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::Ctx;
use crate::checks::Verdict;

/// Label on everything the checks create.
pub(crate) const MANAGED_BY_KEY: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub(crate) const MANAGED_BY: &str = "kaas-check";

/// A namespace that is deleted when [`TempNamespace::delete`] is awaited or, as a fallback, when
/// it is dropped (on a panic or a cancelled future) by a task on the current runtime.
pub(crate) struct TempNamespace {
    name: String,
    client: Client,
    armed: bool,
}

impl TempNamespace {
    pub async fn create(
        client: &Client,
        purpose: &str,
        labels: &[(&str, &str)],
    ) -> Result<Self, kube::Error> {
        let mut l: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.insert(MANAGED_BY_KEY.into(), MANAGED_BY.into());
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": { "generateName": format!("kaas-check-{purpose}-"), "labels": l }
        }))
        .expect("namespace");
        let created = Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        Ok(Self {
            name: created.metadata.name.unwrap_or_default(),
            client: client.clone(),
            armed: true,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Deletes the namespace and waits (bounded) until it is gone; the text says what happened.
    pub async fn delete(mut self, timeout: Duration) -> Result<String, String> {
        self.armed = false;
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api.delete(&self.name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {
                return Ok(format!("temporary namespace {} deleted", self.name));
            }
            Err(e) => return Err(format!("deleting namespace {}: {e}", self.name)),
        }
        let start = Instant::now();
        loop {
            match api.get_opt(&self.name).await {
                Ok(None) => {
                    return Ok(format!("temporary namespace {} deleted", self.name));
                }
                Ok(Some(_)) if start.elapsed() >= timeout => {
                    return Ok(format!(
                        "temporary namespace {} is being deleted (still terminating after {} s)",
                        self.name,
                        timeout.as_secs()
                    ));
                }
                Ok(Some(_)) => {}
                Err(e) => {
                    return Ok(format!(
                        "temporary namespace {} deletion requested ({e})",
                        self.name
                    ));
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for TempNamespace {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (client, name) = (self.client.clone(), self.name.clone());
            handle.spawn(async move {
                let _ = Api::<Namespace>::all(client)
                    .delete(&name, &DeleteParams::background())
                    .await;
            });
        }
    }
}

/// Runs `body` in a fresh namespace and deletes it afterwards, whatever `body` returned.
pub(crate) async fn in_temp_namespace<F, Fut>(
    ctx: &Ctx<'_>,
    purpose: &str,
    labels: &[(&str, &str)],
    body: F,
) -> Verdict
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Verdict>,
{
    let ns = match TempNamespace::create(&ctx.client, purpose, labels).await {
        Ok(ns) => ns,
        Err(e) => {
            return Verdict::abort(crate::access::describe_error(
                &e,
                "create a temporary namespace",
            ));
        }
    };
    ctx.say(&format!("created temporary namespace {}", ns.name()));
    let mut verdict = body(ns.name().to_string()).await;
    let name = ns.name().to_string();
    match ns.delete(ctx.opts.timeouts.cleanup).await {
        Ok(text) => verdict.details.push(text),
        Err(e) => verdict
            .details
            .push(format!("WARNING: cleanup of {name} failed: {e}")),
    }
    verdict
}

/// How many nodes could run a test pod: Ready, not cordoned, no NoSchedule/NoExecute taint.
pub(crate) struct Schedulable {
    pub total: usize,
    pub schedulable: usize,
}

pub(crate) async fn schedulable_nodes(client: &Client) -> Result<Schedulable, kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let mut lp = ListParams::default().limit(500);
    let (mut total, mut schedulable) = (0, 0);
    loop {
        let page = api.list(&lp).await?;
        for n in &page.items {
            total += 1;
            let spec = n.spec.as_ref();
            let cordoned = spec.and_then(|s| s.unschedulable).unwrap_or(false);
            let tainted = spec.and_then(|s| s.taints.as_ref()).is_some_and(|t| {
                t.iter()
                    .any(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
            });
            let ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if ready && !cordoned && !tainted {
                schedulable += 1;
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    Ok(Schedulable { total, schedulable })
}

/// ABORT verdict if no node can run a pod, else `None`.
pub(crate) async fn require_schedulable(ctx: &Ctx<'_>) -> Option<Verdict> {
    match schedulable_nodes(&ctx.client).await {
        Ok(s) if s.schedulable == 0 => Some(Verdict::abort(format!(
            "no schedulable node: {} node(s), none Ready without NoSchedule/NoExecute taint; the cluster cannot run test pods",
            s.total
        ))),
        Ok(_) => None,
        Err(e) => Some(Verdict::abort(crate::access::describe_error(
            &e,
            "list nodes",
        ))),
    }
}

/// How waiting for a pod ended.
pub(crate) enum PodWait {
    Running(Box<Pod>),
    /// Never got a node.
    NotScheduled(String),
    /// Got a node but did not start (image pull, sandbox, ...).
    NotStarted(String),
    /// Ended before running.
    Ended(String),
}

impl PodWait {
    /// Why the pod is not (yet) running.
    pub fn message(self) -> String {
        match self {
            PodWait::NotScheduled(m) | PodWait::NotStarted(m) | PodWait::Ended(m) => m,
            PodWait::Running(_) => "running".into(),
        }
    }
}

fn pod_condition_message(p: &Pod, type_: &str) -> Option<String> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find_map(|c| {
            (c.type_ == type_ && c.status != "True").then(|| {
                format!(
                    "{}{}",
                    c.reason.clone().unwrap_or_default(),
                    c.message
                        .as_ref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                )
            })
        })
}

fn container_waiting(p: &Pod) -> Option<String> {
    let st = p.status.as_ref()?.container_statuses.as_ref()?;
    st.iter().find_map(|c| {
        let w = c.state.as_ref()?.waiting.as_ref()?;
        Some(format!(
            "container {}: {}{}",
            c.name,
            w.reason.clone().unwrap_or_default(),
            w.message
                .as_ref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ))
    })
}

/// Describes why a pod is not running yet.
pub(crate) fn pod_state(p: &Pod, waited: Duration) -> PodWait {
    let secs = waited.as_secs();
    let scheduled = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
    if !scheduled {
        let why = pod_condition_message(p, "PodScheduled")
            .unwrap_or_else(|| "no scheduler assigned a node".into());
        return PodWait::NotScheduled(format!("not scheduled within {secs} s ({why})"));
    }
    let why = container_waiting(p)
        .or_else(|| pod_condition_message(p, "Ready"))
        .unwrap_or_else(|| "no container status".into());
    PodWait::NotStarted(format!("scheduled but not running within {secs} s ({why})"))
}

/// Waits for a pod to run (and be ready if it has a readiness probe).
pub(crate) async fn wait_pod_running(
    ctx: &Ctx<'_>,
    api: &Api<Pod>,
    name: &str,
) -> Result<PodWait, kube::Error> {
    let t = &ctx.opts.timeouts;
    let start = Instant::now();
    let mut scheduled_at: Option<Instant> = None;
    let mut last_note = Instant::now();
    loop {
        let p = api.get(name).await?;
        let phase = p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if phase == "Running" && ready {
            return Ok(PodWait::Running(Box::new(p)));
        }
        if phase == "Failed" || phase == "Succeeded" {
            return Ok(PodWait::Ended(format!(
                "pod {name} ended with phase {phase} before running{}",
                container_waiting(&p)
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default()
            )));
        }
        let is_scheduled = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
        if is_scheduled && scheduled_at.is_none() {
            scheduled_at = Some(Instant::now());
        }
        match scheduled_at {
            None if start.elapsed() >= t.schedule => {
                return Ok(pod_state(&p, start.elapsed()));
            }
            Some(at) if at.elapsed() >= t.start => {
                return Ok(pod_state(&p, start.elapsed()));
            }
            _ => {}
        }
        if last_note.elapsed() >= Duration::from_secs(10) {
            last_note = Instant::now();
            ctx.say(&format!(
                "waiting for pod {name} ({} s, phase {phase})",
                start.elapsed().as_secs()
            ));
        }
        tokio::time::sleep(ctx.opts.timeouts.poll).await;
    }
}

/// How a Job ended.
pub(crate) enum JobWait {
    Succeeded,
    Failed(String),
    /// The cluster could not run it (no pod, not scheduled, not started, no verdict in time).
    CouldNotRun(String),
}

/// Creates a Job and waits for its verdict, reading only the Job's and its pods' status.
pub(crate) async fn run_job(ctx: &Ctx<'_>, ns: &str, job: Value) -> Result<JobWait, kube::Error> {
    let t = &ctx.opts.timeouts;
    let job: Job = serde_json::from_value(job).expect("job");
    let name = job.metadata.name.clone().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    jobs.create(&PostParams::default(), &job).await?;
    let start = Instant::now();
    let mut scheduled_at: Option<Instant> = None;
    let mut last_note = Instant::now();
    loop {
        let j = jobs.get(&name).await?;
        if let Some(s) = &j.status {
            if s.succeeded.unwrap_or(0) > 0 {
                return Ok(JobWait::Succeeded);
            }
            let failed_cond = s.conditions.as_ref().and_then(|c| {
                c.iter()
                    .find(|c| c.type_ == "Failed" && c.status == "True")
                    .map(|c| {
                        format!(
                            "{} {}",
                            c.reason.clone().unwrap_or_default(),
                            c.message.clone().unwrap_or_default()
                        )
                    })
            });
            if s.failed.unwrap_or(0) > 0 || failed_cond.is_some() {
                let why = failed_cond.unwrap_or_else(|| "a pod failed".into());
                // A deadline hit means the pod never delivered a verdict: not a test result.
                if why.contains("DeadlineExceeded") {
                    return Ok(JobWait::CouldNotRun(format!(
                        "job {name} hit its deadline: {}",
                        why.trim()
                    )));
                }
                return Ok(JobWait::Failed(why.trim().to_string()));
            }
        }
        let list = pods
            .list(&ListParams::default().labels(&format!("job-name={name}")))
            .await?;
        let pod = list.items.first();
        if pod
            .and_then(|p| p.spec.as_ref())
            .and_then(|s| s.node_name.as_ref())
            .is_some()
            && scheduled_at.is_none()
        {
            scheduled_at = Some(Instant::now());
        }
        match (pod, scheduled_at) {
            (None, _) if start.elapsed() >= t.schedule => {
                return Ok(JobWait::CouldNotRun(format!(
                    "job {name} created no pod within {} s (is the job controller running?)",
                    start.elapsed().as_secs()
                )));
            }
            (Some(p), None) if start.elapsed() >= t.schedule => {
                let m = pod_state(p, start.elapsed()).message();
                return Ok(JobWait::CouldNotRun(format!("job {name}: pod {m}")));
            }
            (Some(p), Some(at)) if at.elapsed() >= t.start + t.job => {
                let m = pod_state(p, start.elapsed()).message();
                return Ok(JobWait::CouldNotRun(format!(
                    "job {name} gave no verdict within {} s: {m}",
                    start.elapsed().as_secs()
                )));
            }
            _ => {}
        }
        if last_note.elapsed() >= Duration::from_secs(10) {
            last_note = Instant::now();
            ctx.say(&format!(
                "waiting for job {name} ({} s)",
                start.elapsed().as_secs()
            ));
        }
        tokio::time::sleep(t.poll).await;
    }
}

/// A container spec that satisfies the `restricted` Pod Security level.
pub(crate) fn restricted_container(name: &str, image: &str, script: &str) -> Value {
    json!({
        "name": name,
        "image": image,
        "command": ["sh", "-c", script],
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "runAsNonRoot": true,
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "capabilities": { "drop": ["ALL"] },
            "seccompProfile": { "type": "RuntimeDefault" }
        },
        "resources": {
            "requests": { "cpu": "10m", "memory": "16Mi" },
            "limits": { "memory": "64Mi" }
        }
    })
}

/// Labels for objects the checks create.
pub(crate) fn labels(extra: &[(&str, &str)]) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(MANAGED_BY_KEY.into(), MANAGED_BY.into());
    for (k, v) in extra {
        m.insert((*k).into(), (*v).into());
    }
    Value::Object(m)
}
