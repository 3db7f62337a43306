//! The OpenAPI 3.0 document of the REST API, built from the same operation table the router
//! registers its routes from, with schemas generated from the Rust types (schemars).

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

/// Where a parameter goes.
#[derive(Clone, Copy, Debug)]
pub enum In {
    /// A `{name}` segment of the path.
    Path,
    /// A query parameter.
    Query,
}

/// One parameter.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    /// Name.
    pub name: &'static str,
    /// Where.
    pub location: In,
    /// What it means.
    pub description: &'static str,
}

/// One operation of the API.
#[derive(Clone, Copy, Debug)]
pub struct Operation {
    /// HTTP method, lower case.
    pub method: &'static str,
    /// Path, with `{name}` parameters (axum and OpenAPI agree on that syntax).
    pub path: &'static str,
    /// `operationId`.
    pub id: &'static str,
    /// One line.
    pub summary: &'static str,
    /// Tag.
    pub tag: &'static str,
    /// Parameters.
    pub params: &'static [Param],
    /// Schema name of the JSON request body.
    pub request: Option<&'static str>,
    /// Successful status and the schema name of its body (`None`: no JSON body).
    pub ok: &'static [(u16, Option<&'static str>)],
    /// Whether a bearer token is needed.
    pub auth: bool,
}

const NS: Param = Param {
    name: "namespace",
    location: In::Path,
    description: "The tenant namespace.",
};
const NAME: Param = Param {
    name: "name",
    location: In::Path,
    description: "Name of the cluster.",
};
const WAIT: Param = Param {
    name: "wait",
    location: In::Query,
    description: "Answer only when the cluster reaches this: `Ready`, `Deleted` (delete only), or any condition type (e.g. `ControlPlaneReady`, `Hibernated`) being True for the current generation. Ends early with 422/409 `WaitFailed` when the cluster cannot get there (its spec is refused, its deletion is refused, `Ready` while `spec.hibernation.enabled` asks it to hibernate, `Hibernated` while it is not asked to), with 504 `WaitTimeout` after `timeout`.",
};
const TIMEOUT: Param = Param {
    name: "timeout",
    location: In::Query,
    description: "How long to wait: seconds (`600`) or `600s`, `10m`, `1h`. Default 300 s, at most 3600 s.",
};

const DRY_RUN: Param = Param {
    name: "dryRun",
    location: In::Query,
    description: "`All`: a server-side dry run — validated and admitted by the API server, nothing stored; the answer is what would have been written. Cannot be combined with `wait`. Any other value: 400.",
};

/// Every operation; the router registers exactly these.
pub const OPERATIONS: &[Operation] = &[
    Operation {
        method: "get",
        path: "/api/v1/openapi.json",
        id: "getOpenApi",
        summary: "This document.",
        tag: "meta",
        params: &[],
        request: None,
        ok: &[(200, None)],
        auth: false,
    },
    Operation {
        method: "get",
        path: "/api/v1/whoami",
        id: "whoAmI",
        summary: "Who the token belongs to, and the tenant namespace when it follows from it.",
        tag: "meta",
        params: &[],
        request: None,
        ok: &[(200, Some("WhoAmI"))],
        auth: true,
    },
    Operation {
        method: "get",
        path: "/api/v1/providers",
        id: "listProviders",
        summary: "The offerings of all providers: versions with lifecycle, flavors, regions and zones, extensions.",
        tag: "offerings",
        params: &[],
        request: None,
        ok: &[(200, Some("ProviderList"))],
        auth: true,
    },
    Operation {
        method: "get",
        path: "/api/v1/providers/{provider}",
        id: "getProvider",
        summary: "The offering of one provider.",
        tag: "offerings",
        params: &[Param {
            name: "provider",
            location: In::Path,
            description: "Provider name.",
        }],
        request: None,
        ok: &[(200, Some("Offering"))],
        auth: true,
    },
    Operation {
        method: "get",
        path: "/api/v1/namespaces/{namespace}/clusters",
        id: "listClusters",
        summary: "The clusters of a tenant namespace.",
        tag: "clusters",
        params: &[NS],
        request: None,
        ok: &[(200, Some("ClusterList"))],
        auth: true,
    },
    Operation {
        method: "post",
        path: "/api/v1/namespaces/{namespace}/clusters",
        id: "createCluster",
        summary: "Create a cluster (validated against the schema and the provider's offering first).",
        tag: "clusters",
        params: &[NS, WAIT, TIMEOUT, DRY_RUN],
        request: Some("Cluster"),
        ok: &[(201, Some("Cluster"))],
        auth: true,
    },
    Operation {
        method: "get",
        path: "/api/v1/namespaces/{namespace}/clusters/{name}",
        id: "getCluster",
        summary: "A cluster with its status; with `wait`, once it reaches that state.",
        tag: "clusters",
        params: &[NS, NAME, WAIT, TIMEOUT],
        request: None,
        ok: &[(200, Some("Cluster"))],
        auth: true,
    },
    Operation {
        method: "put",
        path: "/api/v1/namespaces/{namespace}/clusters/{name}",
        id: "replaceCluster",
        summary: "Replace a cluster's spec (validated first; `metadata.resourceVersion` for optimistic concurrency).",
        tag: "clusters",
        params: &[NS, NAME, WAIT, TIMEOUT, DRY_RUN],
        request: Some("Cluster"),
        ok: &[(200, Some("Cluster"))],
        auth: true,
    },
    Operation {
        method: "delete",
        path: "/api/v1/namespaces/{namespace}/clusters/{name}",
        id: "deleteCluster",
        summary: "Delete a cluster (refused while deletion protection is set); `wait=Deleted` answers when it is gone.",
        tag: "clusters",
        params: &[NS, NAME, WAIT, TIMEOUT, DRY_RUN],
        request: None,
        ok: &[(202, Some("Cluster")), (204, None)],
        auth: true,
    },
    Operation {
        method: "post",
        path: "/api/v1/namespaces/{namespace}/clusters/{name}/scale",
        id: "scaleCluster",
        summary: "Set a worker pool's node count or autoscaling bounds.",
        tag: "clusters",
        params: &[NS, NAME, WAIT, TIMEOUT, DRY_RUN],
        request: Some("ScaleRequest"),
        ok: &[(200, Some("Cluster"))],
        auth: true,
    },
    Operation {
        method: "post",
        path: "/api/v1/namespaces/{namespace}/clusters/{name}/upgrade",
        id: "upgradeCluster",
        summary: "Move to another Kubernetes version: one minor at a time, never down.",
        tag: "clusters",
        params: &[NS, NAME, WAIT, TIMEOUT, DRY_RUN],
        request: Some("UpgradeRequest"),
        ok: &[(200, Some("Cluster"))],
        auth: true,
    },
    Operation {
        method: "post",
        path: "/api/v1/namespaces/{namespace}/clusters/{name}/hibernate",
        id: "hibernateCluster",
        summary: "Hibernate: set `spec.hibernation.enabled` to true (schedules untouched). Every worker pool goes to zero nodes; a hosted control plane is stopped with its data kept. No body. `wait=Hibernated` answers once hibernation is reached; `wait=Ready` is refused (a hibernating cluster is never Ready). Imported clusters cannot hibernate (422, `spec.hibernation`).",
        tag: "clusters",
        params: &[NS, NAME, WAIT, TIMEOUT, DRY_RUN],
        request: None,
        ok: &[(200, Some("Cluster"))],
        auth: true,
    },
    Operation {
        method: "post",
        path: "/api/v1/namespaces/{namespace}/clusters/{name}/wake",
        id: "wakeCluster",
        summary: "Wake up: set `spec.hibernation.enabled` to false (schedules untouched; a schedule's next start hibernates again). Every pool returns to its size, autoscaled pools to their `minCount`. No body. `wait=Ready` answers once the cluster is Ready again; `wait=Hibernated` is refused.",
        tag: "clusters",
        params: &[NS, NAME, WAIT, TIMEOUT, DRY_RUN],
        request: None,
        ok: &[(200, Some("Cluster"))],
        auth: true,
    },
    Operation {
        method: "post",
        path: "/api/v1/namespaces/{namespace}/clusters/{name}/plan",
        id: "planCluster",
        summary: "What a proposed change will do, nothing written: the spec diff, what rolls in which order and how many machines, upgrade steps, whether it waits for the maintenance window, the objects that change, or why it is refused (`refused`, field errors).",
        tag: "clusters",
        params: &[NS, NAME],
        request: Some("Cluster"),
        ok: &[(200, Some("Plan"))],
        auth: true,
    },
    Operation {
        method: "get",
        path: "/api/v1/namespaces/{namespace}/clusters/{name}/kubeconfig",
        id: "getKubeconfig",
        summary: "The cluster's kubeconfig (YAML).",
        tag: "clusters",
        params: &[NS, NAME],
        request: None,
        ok: &[(200, None)],
        auth: true,
    },
    Operation {
        method: "post",
        path: "/api/v1/namespaces/{namespace}/clusters/{name}/kubeconfig",
        id: "requestKubeconfig",
        summary: "A short-lived kubeconfig in the caller's name (a KubeconfigRequest the operator issues): `expiration` (at most the provider's maxKubeconfigLifetime) and `role` admin or viewer; answers the kubeconfig (YAML, header X-Kaas-Expires-At).",
        tag: "clusters",
        params: &[NS, NAME],
        request: Some("KubeconfigRequestBody"),
        ok: &[(201, None)],
        auth: true,
    },
    Operation {
        method: "get",
        path: "/api/v1/namespaces/{namespace}/clusters/{name}/diagnostics",
        id: "getDiagnostics",
        summary: "Condition tree down to the machines, recent events, what the cluster waits for and what to do.",
        tag: "clusters",
        params: &[NS, NAME],
        request: None,
        ok: &[(200, Some("Diagnosis"))],
        auth: true,
    },
    Operation {
        method: "get",
        path: "/api/v1/namespaces/{namespace}/clusters/{name}/compliance",
        id: "getCompliance",
        summary: "The latest SCS compliance report of the cluster.",
        tag: "clusters",
        params: &[NS, NAME],
        request: None,
        ok: &[(200, Some("ComplianceReport"))],
        auth: true,
    },
];

/// Schemas of the named bodies, in OpenAPI 3.0 form, all in `components.schemas`.
fn schemas() -> Map<String, Value> {
    let mut generator = SchemaSettings::openapi3()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
        })
        .into_generator();
    let mut named = Map::new();
    macro_rules! add {
        ($name:literal, $t:ty) => {
            named.insert(
                $name.to_string(),
                generator.subschema_for::<$t>().to_value(),
            );
        };
    }
    add!("Cluster", kaas_api::Cluster);
    add!("ClusterList", crate::api::ClusterList);
    add!("Offering", crate::api::Offering);
    add!("ProviderList", crate::api::ProviderList);
    add!("WhoAmI", crate::api::WhoAmI);
    add!("ScaleRequest", crate::api::ScaleRequest);
    add!("UpgradeRequest", crate::api::UpgradeRequest);
    add!("KubeconfigRequestBody", crate::api::KubeconfigRequestBody);
    add!("ComplianceReport", crate::api::ComplianceReport);
    add!("Diagnosis", kaas_diagnose::Diagnosis);
    add!("Plan", kaas_render::plan::Plan);
    add!("Error", crate::error::ErrorBody);
    let mut all = Map::new();
    for (k, v) in generator.take_definitions(true) {
        all.insert(k, v);
    }
    // A name given above that is a reference to a definition is already in `all`; inline
    // schemas (e.g. of small types) are added under their given name.
    for (k, v) in named {
        if !all.contains_key(&k) {
            all.insert(k, v);
        }
    }
    all
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema_ref("Error")}}})
}

/// The OpenAPI document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in OPERATIONS {
        let params: Vec<Value> = op
            .params
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "in": match p.location { In::Path => "path", In::Query => "query" },
                    "required": matches!(p.location, In::Path),
                    "description": p.description,
                    "schema": {"type": "string"},
                })
            })
            .collect();
        let mut responses = Map::new();
        for (code, body) in op.ok {
            let description = match code {
                200 => "OK",
                201 => "Created",
                202 => "Accepted: deletion started",
                204 => "No content (deleted)",
                _ => "Success",
            };
            let content = match (op.id, body) {
                ("getKubeconfig", _) => {
                    json!({"application/yaml": {"schema": {"type": "string"}}})
                }
                ("getOpenApi", _) => json!({"application/json": {"schema": {"type": "object"}}}),
                (_, Some(name)) => json!({"application/json": {"schema": schema_ref(name)}}),
                (_, None) => Value::Null,
            };
            let mut r = json!({"description": description});
            if !content.is_null() {
                r["content"] = content;
            }
            responses.insert(code.to_string(), r);
        }
        if !op.params.is_empty() || op.request.is_some() {
            responses.insert(
                "400".into(),
                error_response("The request is malformed (body, wait or timeout)"),
            );
        }
        if op.auth {
            responses.insert(
                "401".into(),
                error_response("No token, or the API server does not accept it"),
            );
            responses.insert(
                "403".into(),
                error_response("Kubernetes RBAC does not allow this to the caller"),
            );
            responses.insert(
                "404".into(),
                error_response("No such object (or not visible)"),
            );
        }
        if op.params.iter().any(|p| p.name == "wait") {
            responses.insert(
                "429".into(),
                error_response(
                    "TooManyRequests: the caller already has as many waiting requests as allowed",
                ),
            );
        }
        if op.request.is_some() {
            responses.insert(
                "413".into(),
                error_response("PayloadTooLarge: the body is over 1 MiB"),
            );
            responses.insert(
                "415".into(),
                error_response("UnsupportedMediaType: the body must be `application/json`"),
            );
        }
        if op.request.is_some() || op.params.iter().any(|p| p.name == "wait") {
            responses.insert(
                "409".into(),
                error_response("Conflict: changed meanwhile, or the wait cannot succeed"),
            );
            responses.insert(
                "422".into(),
                error_response("Invalid: every problem with its field path"),
            );
            responses.insert(
                "504".into(),
                error_response("WaitTimeout: the state was not reached in time"),
            );
        }
        let mut operation = json!({
            "operationId": op.id,
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": params,
            "responses": responses,
        });
        if let Some(req) = op.request {
            operation["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": schema_ref(req)}},
            });
        }
        if !op.auth {
            operation["security"] = json!([]);
        }
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[op.method] = operation;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "kaas API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Kubernetes as a Service for Sovereign Cloud Stack providers: discover offerings, manage SCS clusters. Every call acts with the caller's own Kubernetes identity (a bearer token of the management cluster), so Kubernetes RBAC decides.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [
            {"name": "meta"},
            {"name": "offerings", "description": "What providers offer."},
            {"name": "clusters", "description": "SCS clusters of a tenant namespace."},
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "A token of the management cluster (e.g. a service account token of the tenant)."}},
            "schemas": schemas(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `v`.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn the_document_is_valid_openapi_3() {
        let doc = document();
        let parsed: openapiv3::OpenAPI =
            serde_json::from_value(doc.clone()).expect("an OpenAPI 3.0 document");
        let distinct: std::collections::BTreeSet<_> = OPERATIONS.iter().map(|o| o.path).collect();
        assert_eq!(parsed.paths.paths.len(), distinct.len());
        let operations: usize = parsed
            .paths
            .paths
            .values()
            .map(|p| p.as_item().map_or(0, |i| i.iter().count()))
            .sum();
        assert_eq!(operations, OPERATIONS.len());
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{r} points outside components"));
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{r} does not resolve"
            );
        }
        // Path parameters are declared for every `{x}` of every path.
        for op in OPERATIONS {
            for seg in op.path.split('/').filter(|s| s.starts_with('{')) {
                let name = seg.trim_matches(|c| c == '{' || c == '}');
                assert!(
                    op.params
                        .iter()
                        .any(|p| p.name == name && matches!(p.location, In::Path)),
                    "{} lacks path parameter {name}",
                    op.id
                );
            }
        }
    }

    #[test]
    fn operation_ids_are_unique() {
        let mut ids: Vec<_> = OPERATIONS.iter().map(|o| o.id).collect();
        ids.sort();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }
}
