//! Short-lived kubeconfigs (`KubeconfigRequest`, issue #19). A tenant creates a request in its
//! namespace (itself, or through `kaas kubeconfig` and the REST server with its own credentials);
//! this controller, which can read the workload cluster's CA on the provider side, issues:
//!
//! 1. the named `Cluster` must be in the request's namespace (`ClusterNotFound` otherwise: a
//!    tenant cannot name another tenant's cluster);
//! 2. the lifetime must parse and be at most the Provider's `spec.access.maxKubeconfigLifetime`
//!    (default 24h); a longer one is **refused** (`LifetimeExceedsPolicy`), not capped;
//! 3. the CA is the Secret `<cluster>-ca` (`tls.crt`, `tls.key`) in the provider-side namespace —
//!    Cluster API writes it for its clusters, the hosted runtime for hosted ones — and the server
//!    and CA bundle come from the `<cluster>-kubeconfig` Secret there;
//! 4. the workload cluster binds the group (`kaas:admins` → `cluster-admin`, `kaas:viewers` →
//!    `view`, ClusterRoleBindings of the same names, applied with the admin kubeconfig);
//! 5. a client certificate for `spec.user` in that group, valid from now for exactly the lifetime,
//!    goes into the Secret `<request>-kubeconfig` next to the request, owned by it;
//! 6. an Event on the Cluster records who, which role, when and until when; the status carries
//!    `Issued=True`, `expiresAt` and `secretName`. Nothing of the key is logged or recorded.
//!
//! After `expiresAt` the condition turns `Issued=False`, reason `Expired`; the API server refuses
//! the certificate by itself.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kaas_api::conditions::{self as c, Status};
use kaas_api::kubeconfig::{
    CONDITION_ISSUED, KUBECONFIG_KEY, KubeconfigRequest, KubeconfigRequestStatus, KubeconfigRole,
    parse_duration,
};
use kaas_api::provider::{BackendType, ProviderAccess};
use kaas_api::{Cluster, Provider};
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::{Context, Error, FIELD_MANAGER};

/// Label on issued Secrets: the request's name.
pub const LABEL_REQUEST: &str = "scs.community/kubeconfig-request";
/// Type of issued Secrets.
pub const SECRET_TYPE: &str = "scs.community/kubeconfig";

/// The Secret of an issued request.
pub fn secret_name(request: &str) -> String {
    format!("{request}-kubeconfig")
}

/// Runs the controller until `shutdown`.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    Controller::new(
        Api::<KubeconfigRequest>::all(ctx.client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .graceful_shutdown_on(shutdown)
    .run(
        reconcile,
        |r, e, _| {
            warn!(request = %r.name_any(), error = %e, "kubeconfig request failed; retrying");
            Action::requeue(Duration::from_secs(5))
        },
        ctx,
    )
    .for_each(|_| async {})
    .await;
}

/// What one reconcile decides.
enum Outcome {
    /// Issued (or already issued).
    Issued,
    /// Refused for good (a new request is needed): reason and message.
    Refused(&'static str, String),
    /// Waiting for the cluster: reason and message.
    Waiting(&'static str, String),
}

/// Checks a request against the cluster's provider policy (pure): the lifetime or why not.
pub fn check_lifetime(
    expiration: &str,
    provider: &Provider,
) -> Result<Duration, (&'static str, String)> {
    let Some(lifetime) = parse_duration(expiration).filter(|d| d.as_secs() > 0) else {
        return Err((
            "InvalidExpiration",
            format!("spec.expiration {expiration:?} is not a positive duration such as 30m or 1h"),
        ));
    };
    let access = provider.spec.access.as_ref();
    let max = ProviderAccess::max_lifetime(access);
    if lifetime > max {
        return Err((
            "LifetimeExceedsPolicy",
            format!(
                "spec.expiration {expiration} is longer than the {}s provider {} allows (spec.access.maxKubeconfigLifetime {}); request at most that",
                max.as_secs(),
                provider.name_any(),
                access
                    .and_then(|a| a.max_kubeconfig_lifetime.clone())
                    .unwrap_or_else(|| kaas_api::kubeconfig::DEFAULT_MAX_LIFETIME.into()),
            ),
        ));
    }
    Ok(lifetime)
}

async fn reconcile(req: Arc<KubeconfigRequest>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = req.namespace().unwrap_or_default();
    let name = req.name_any();
    let status = req.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    if let Some(issued) = c::get(&status.conditions, CONDITION_ISSUED) {
        match issued.reason.as_str() {
            "Issued" => {
                let expires = status
                    .expires_at
                    .as_deref()
                    .and_then(|e| e.parse::<Timestamp>().ok());
                return match expires {
                    Some(e) if e > now => {
                        let left = e.duration_since(now).unsigned_abs();
                        Ok(Action::requeue(left + Duration::from_secs(1)))
                    }
                    _ => {
                        write_status(
                            &ctx,
                            &req,
                            &status,
                            Status::False,
                            "Expired",
                            format!(
                                "the credential expired at {}; create a new request",
                                status.expires_at.clone().unwrap_or_default()
                            ),
                        )
                        .await?;
                        Ok(Action::await_change())
                    }
                };
            }
            "Expired"
            | "ClusterNotFound"
            | "LifetimeExceedsPolicy"
            | "InvalidExpiration"
            | "NotSupported" => return Ok(Action::await_change()),
            _ => {}
        }
    }
    let outcome = issue(&ctx, &req, &ns, &name).await?;
    match outcome {
        Outcome::Issued => Ok(Action::await_change()),
        Outcome::Refused(reason, msg) => {
            info!(namespace = %ns, request = %name, reason, "kubeconfig request refused");
            write_status(&ctx, &req, &status, Status::False, reason, msg).await?;
            Ok(Action::await_change())
        }
        Outcome::Waiting(reason, msg) => {
            write_status(&ctx, &req, &status, Status::Unknown, reason, msg).await?;
            Ok(Action::requeue(Duration::from_secs(3)))
        }
    }
}

async fn write_status(
    ctx: &Context,
    req: &KubeconfigRequest,
    old: &KubeconfigRequestStatus,
    status: Status,
    reason: &str,
    message: String,
) -> Result<(), Error> {
    let mut st = old.clone();
    c::set(
        &mut st.conditions,
        CONDITION_ISSUED,
        status,
        reason,
        message,
        req.metadata.generation,
        &Time(Timestamp::now()),
    );
    if &st == old {
        return Ok(());
    }
    patch_status(ctx, req, &st).await
}

async fn patch_status(
    ctx: &Context,
    req: &KubeconfigRequest,
    st: &KubeconfigRequestStatus,
) -> Result<(), Error> {
    let api: Api<KubeconfigRequest> =
        Api::namespaced(ctx.client.clone(), &req.namespace().unwrap_or_default());
    api.patch_status(
        &req.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&json!({
            "apiVersion": "scs.community/v1alpha1",
            "kind": "KubeconfigRequest",
            "status": st,
        })),
    )
    .await?;
    Ok(())
}

async fn issue(
    ctx: &Context,
    req: &KubeconfigRequest,
    ns: &str,
    name: &str,
) -> Result<Outcome, Error> {
    let spec = &req.spec;
    let Some(cluster) = Api::<Cluster>::namespaced(ctx.client.clone(), ns)
        .get_opt(&spec.cluster)
        .await?
    else {
        return Ok(Outcome::Refused(
            "ClusterNotFound",
            format!(
                "there is no Cluster {} in namespace {ns}; a KubeconfigRequest can only name a Cluster of its own namespace",
                spec.cluster
            ),
        ));
    };
    let provider = match crate::dereference::provider(&ctx.provider_store, &cluster) {
        Ok(p) => p,
        Err(e) => return Ok(Outcome::Waiting("ProviderNotFound", format!("{e:?}"))),
    };
    if !ctx.handles(&provider.name_any()) {
        return Ok(Outcome::Waiting(
            "Pending",
            "waiting for the operator instance of this cluster's provider".into(),
        ));
    }
    let lifetime = match check_lifetime(&spec.expiration, &provider) {
        Ok(l) => l,
        Err((reason, msg)) => return Ok(Outcome::Refused(reason, msg)),
    };
    let (side_ns, side_name) = match provider.spec.backend.kind {
        BackendType::Static => {
            return Ok(Outcome::Refused(
                "NotSupported",
                format!(
                    "cluster {} is an imported (Static) cluster: kaas holds no CA to sign credentials for it",
                    spec.cluster
                ),
            ));
        }
        BackendType::Hosted => (
            kaas_render::capi_namespace(&provider.name_any(), ns),
            cluster.name_any(),
        ),
        BackendType::ClusterAPI => {
            let loc = crate::adopt::locate(&ctx.client, &cluster, &provider.name_any()).await?;
            (loc.namespace, loc.name)
        }
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &side_ns);
    let data = |s: Option<Secret>, key: &str| {
        s.and_then(|s| s.data)
            .and_then(|mut d| d.remove(key))
            .map(|b| b.0)
    };
    let ca = secrets.get_opt(&format!("{side_name}-ca")).await?;
    let (Some(ca_crt), Some(ca_key)) = (data(ca.clone(), "tls.crt"), data(ca, "tls.key")) else {
        return Ok(Outcome::Waiting(
            "ClusterNotReady",
            format!("waiting for the cluster's CA (Secret {side_name}-ca on the provider side)"),
        ));
    };
    let Some(admin_kc) = data(
        secrets.get_opt(&format!("{side_name}-kubeconfig")).await?,
        KUBECONFIG_KEY,
    ) else {
        return Ok(Outcome::Waiting(
            "ClusterNotReady",
            "waiting for the cluster's API server (no kubeconfig yet)".into(),
        ));
    };
    let (server, ca_data) = match server_of(&admin_kc) {
        Some(v) => v,
        None => {
            return Ok(Outcome::Waiting(
                "ClusterNotReady",
                "the cluster's kubeconfig names no server yet".into(),
            ));
        }
    };
    // The group's binding in the workload cluster.
    let workload = crate::backend::client_from_kubeconfig(&admin_kc, ctx.fence.as_ref()).await?;
    if let Err(e) = bind_role(&workload, spec.role).await {
        return Ok(Outcome::Waiting(
            "WorkloadUnreachable",
            format!(
                "cannot bind {} in the workload cluster: {e}",
                spec.role.group()
            ),
        ));
    }
    let (not_after, cert) = match sign(&ca_crt, &ca_key, &spec.user, spec.role, lifetime) {
        Ok(v) => v,
        Err(e) => {
            return Ok(Outcome::Refused(
                "SigningFailed",
                format!("cannot sign with the cluster's CA: {e}"),
            ));
        }
    };
    let cluster_name = cluster.name_any();
    let yaml = kubeconfig_yaml(&cluster_name, &server, &ca_data, &spec.user, &cert)?;
    let sname = secret_name(name);
    let expires_at = not_after.to_string();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(sname.clone()),
            namespace: Some(ns.to_string()),
            labels: Some(
                [
                    (kaas_render::LABEL_CLUSTER.to_string(), cluster_name.clone()),
                    (LABEL_REQUEST.to_string(), name.to_string()),
                ]
                .into(),
            ),
            annotations: Some(
                [("scs.community/expires-at".to_string(), expires_at.clone())].into(),
            ),
            owner_references: req.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.into()),
        data: Some([(KUBECONFIG_KEY.to_string(), ByteString(yaml.into_bytes()))].into()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(ctx.client.clone(), ns)
        .patch(
            &sname,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await?;
    let note = format!(
        "{} kubeconfig issued to {} at {} (expires {}; KubeconfigRequest {name}, Secret {sname})",
        spec.role.as_str(),
        spec.user,
        Timestamp::now(),
        expires_at
    );
    info!(namespace = %ns, request = %name, cluster = %cluster_name, user = %spec.user, role = spec.role.as_str(), expires = %expires_at, "kubeconfig issued");
    let ev = Event {
        type_: EventType::Normal,
        reason: "KubeconfigIssued".into(),
        note: Some(note.clone()),
        action: "IssueKubeconfig".into(),
        secondary: Some(req.object_ref(&())),
    };
    if let Err(e) = ctx.recorder.publish(&ev, &cluster.object_ref(&())).await {
        warn!(error = %e, "cannot publish the KubeconfigIssued event");
    }
    let mut st = req.status.clone().unwrap_or_default();
    st.expires_at = Some(expires_at);
    st.secret_name = Some(sname);
    c::set(
        &mut st.conditions,
        CONDITION_ISSUED,
        Status::True,
        "Issued",
        note,
        req.metadata.generation,
        &Time(Timestamp::now()),
    );
    patch_status(ctx, req, &st).await?;
    Ok(Outcome::Issued)
}

/// Server and CA data (base64) of the first cluster of a kubeconfig.
fn server_of(kubeconfig: &[u8]) -> Option<(String, String)> {
    let kc = kube::config::Kubeconfig::from_yaml(std::str::from_utf8(kubeconfig).ok()?).ok()?;
    let cl = kc.clusters.first()?.cluster.clone()?;
    Some((cl.server?, cl.certificate_authority_data?))
}

async fn bind_role(workload: &kube::Client, role: KubeconfigRole) -> Result<(), kube::Error> {
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(role.group().into()),
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_string(),
                    "kaas".to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: role.cluster_role().into(),
        },
        subjects: Some(vec![Subject {
            kind: "Group".into(),
            name: role.group().into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Default::default()
        }]),
    };
    Api::<ClusterRoleBinding>::all(workload.clone())
        .patch(
            role.group(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&binding),
        )
        .await?;
    Ok(())
}

/// A signed client certificate and its key (PEM).
pub struct Issued {
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Key, PEM.
    pub key_pem: String,
}

/// Signs a client certificate for `user` in the role's group, valid from now for `lifetime`.
pub fn sign(
    ca_crt: &[u8],
    ca_key: &[u8],
    user: &str,
    role: KubeconfigRole,
    lifetime: Duration,
) -> anyhow::Result<(Timestamp, Issued)> {
    use rcgen::{
        CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::from_pem(std::str::from_utf8(ca_key)?)?;
    let issuer = Issuer::from_ca_cert_pem(std::str::from_utf8(ca_crt)?, ca_key)?;
    let now = Timestamp::now();
    let start = Timestamp::from_second(now.as_second())?;
    let end = start.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(
        lifetime.as_secs() as i64,
    ))?;
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, user);
    p.distinguished_name
        .push(DnType::OrganizationName, role.group());
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.not_before = ::time::OffsetDateTime::from_unix_timestamp(start.as_second())?;
    p.not_after = ::time::OffsetDateTime::from_unix_timestamp(end.as_second())?;
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &issuer)?;
    Ok((
        end,
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        },
    ))
}

fn kubeconfig_yaml(
    cluster: &str,
    server: &str,
    ca_data: &str,
    user: &str,
    cert: &Issued,
) -> Result<String, Error> {
    use base64::Engine as _;
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let ctx = format!("{user}@{cluster}");
    serde_yaml::to_string(&json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {
            "server": server,
            "certificate-authority-data": ca_data,
        }}],
        "users": [{"name": user, "user": {
            "client-certificate-data": b(&cert.cert_pem),
            "client-key-data": b(&cert.key_pem),
        }}],
        "contexts": [{"name": ctx, "context": {"cluster": cluster, "user": user}}],
        "current-context": ctx,
    }))
    .map_err(|e| Error::Other(format!("kubeconfig: {e}")))
}

/// The requester's side (`kaas kubeconfig`): with the requester's own client, learns its user
/// name (`SelfSubjectReview`), creates a `KubeconfigRequest` for `cluster` in `ns`, waits for the
/// operator (reporting every change of the `Issued` condition to `progress`) and returns the
/// kubeconfig. A refusal is an error with the condition's reason and message.
pub async fn request(
    client: &kube::Client,
    ns: &str,
    cluster: &str,
    expiration: &str,
    role: KubeconfigRole,
    timeout: Duration,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<String> {
    use anyhow::{Context as _, anyhow, bail};
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&Default::default(), &SelfSubjectReview::default())
        .await
        .context("asking the API server who you are (SelfSubjectReview)")?;
    let user = review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .ok_or_else(|| anyhow!("the API server did not say who you are"))?;
    let mut req = KubeconfigRequest::new(
        "",
        kaas_api::KubeconfigRequestSpec {
            cluster: cluster.into(),
            expiration: expiration.into(),
            role,
            user: user.clone(),
        },
    );
    req.metadata.name = None;
    req.metadata.generate_name = Some(format!("{cluster}-{}-", role.as_str()));
    let api: Api<KubeconfigRequest> = Api::namespaced(client.clone(), ns);
    let created = api
        .create(&Default::default(), &req)
        .await
        .with_context(|| format!("creating a KubeconfigRequest in namespace {ns}"))?;
    let name = created.name_any();
    progress(&format!(
        "KubeconfigRequest {ns}/{name}: {} for {user}, {expiration}; waiting for the operator",
        role.as_str()
    ));
    let start = std::time::Instant::now();
    let mut last = String::new();
    loop {
        let r = api.get(&name).await?;
        let st = r.status.clone().unwrap_or_default();
        if let Some(cond) = c::get(&st.conditions, CONDITION_ISSUED) {
            let seen = format!("{}: {}", cond.reason, cond.message);
            if seen != last {
                progress(&seen);
                last = seen;
            }
            match cond.status.as_str() {
                "True" => {
                    let sname = st.secret_name.clone().unwrap_or_else(|| secret_name(&name));
                    let s = Api::<Secret>::namespaced(client.clone(), ns)
                        .get(&sname)
                        .await
                        .with_context(|| format!("reading Secret {ns}/{sname}"))?;
                    let value = s
                        .data
                        .and_then(|mut d| d.remove(KUBECONFIG_KEY))
                        .ok_or_else(|| {
                            anyhow!("Secret {ns}/{sname} has no key {KUBECONFIG_KEY}")
                        })?;
                    return Ok(String::from_utf8(value.0)?);
                }
                "False" => bail!(
                    "KubeconfigRequest {ns}/{name} refused: {}: {}",
                    cond.reason,
                    cond.message
                ),
                _ => {}
            }
        }
        if start.elapsed() > timeout {
            bail!("KubeconfigRequest {ns}/{name} not issued within {timeout:?}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(max: Option<&str>) -> Provider {
        let mut p = Provider::new("local", Default::default());
        p.spec.access = max.map(|m| ProviderAccess {
            max_kubeconfig_lifetime: Some(m.into()),
            ..Default::default()
        });
        p
    }

    #[test]
    fn lifetimes_over_the_cap_are_refused() {
        assert_eq!(
            check_lifetime("1h", &provider(None)).unwrap().as_secs(),
            3600
        );
        assert_eq!(
            check_lifetime("25h", &provider(None)).unwrap_err().0,
            "LifetimeExceedsPolicy"
        );
        assert_eq!(
            check_lifetime("2h", &provider(Some("1h"))).unwrap_err().0,
            "LifetimeExceedsPolicy"
        );
        assert_eq!(
            check_lifetime("0s", &provider(None)).unwrap_err().0,
            "InvalidExpiration"
        );
        assert_eq!(
            check_lifetime("1d", &provider(None)).unwrap_err().0,
            "InvalidExpiration"
        );
    }

    #[test]
    fn signs_with_exactly_the_lifetime() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test-ca");
        let ca = params.self_signed(&ca_key).unwrap();
        let (end, issued) = sign(
            ca.pem().as_bytes(),
            ca_key.serialize_pem().as_bytes(),
            "alice",
            KubeconfigRole::Viewer,
            Duration::from_secs(30),
        )
        .unwrap();
        let left = end.duration_since(Timestamp::now()).as_secs();
        assert!((28..=30).contains(&left), "{left}");
        assert!(issued.cert_pem.contains("BEGIN CERTIFICATE"));
    }
}
