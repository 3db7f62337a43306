//! How the 2022 proposal's `addons` block maps onto `extensions`.
//!
//! | legacy                         | extension            |
//! |--------------------------------|----------------------|
//! | `addons.nginxIngress.enabled`  | `ingress` (nginx)    |
//! | `addons.certManager.enabled`   | `certManager`        |
//! | `addons.flux.enabled`          | `flux`               |
//! | `addons.harbor.enabled`        | `harbor`             |
//! | `addons.metricsServer.enabled` | `metrics` (always on)|
//!
//! Where both name the same extension, `extensions` wins and a warning says so when they differ.
//! `addons.metricsServer.enabled: false` was valid in 2022: it is accepted, metrics stays on, and
//! a warning says so.

use std::collections::BTreeMap;

use crate::cluster::{ClusterSpec, ExtensionToggle, LegacyToggle};

/// Extension names used in `Provider.spec.extensions` and in status.
pub mod names {
    /// Resource metrics (metrics-server).
    pub const METRICS: &str = "metrics";
    /// Ingress controller.
    pub const INGRESS: &str = "ingress";
    /// Gateway API.
    pub const GATEWAY_API: &str = "gatewayAPI";
    /// cert-manager.
    pub const CERT_MANAGER: &str = "certManager";
    /// Flux.
    pub const FLUX: &str = "flux";
    /// Harbor.
    pub const HARBOR: &str = "harbor";
}

/// What the spec asks of one extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `Some(true/false)` when the spec says; `None` leaves it to the provider's default.
    pub enabled: Option<bool>,
    /// Implementation asked for.
    pub implementation: Option<String>,
    /// Field path the request came from (for error messages).
    pub path: String,
}

/// The extensions the spec asks for, legacy `addons` folded in, plus warnings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requests {
    /// By extension name.
    pub by_name: BTreeMap<String, Request>,
    /// Things the user should know (legacy switches overridden or ignored).
    pub warnings: Vec<String>,
}

/// Folds `spec.addons` into `spec.extensions`.
pub fn extension_requests(spec: &ClusterSpec) -> Requests {
    let mut out = Requests::default();
    let ext = spec.extensions.clone().unwrap_or_default();
    let modern: [(&str, &str, &Option<ExtensionToggle>); 6] = [
        (names::METRICS, "metrics", &ext.metrics),
        (names::INGRESS, "ingress", &ext.ingress),
        (names::GATEWAY_API, "gatewayAPI", &ext.gateway_api),
        (names::CERT_MANAGER, "certManager", &ext.cert_manager),
        (names::FLUX, "flux", &ext.flux),
        (names::HARBOR, "harbor", &ext.harbor),
    ];
    for (name, field, toggle) in modern {
        if let Some(t) = toggle {
            out.by_name.insert(
                name.into(),
                Request {
                    enabled: t.enabled,
                    implementation: t.implementation.clone(),
                    path: format!("spec.extensions.{field}"),
                },
            );
        }
    }
    for (i, named) in ext.additional.iter().flatten().enumerate() {
        out.by_name.insert(
            named.name.clone(),
            Request {
                enabled: Some(named.enabled.unwrap_or(true)),
                implementation: None,
                path: format!("spec.extensions.additional[{i}]"),
            },
        );
    }

    let addons = spec.addons.clone().unwrap_or_default();
    let legacy: [(&str, &str, &Option<LegacyToggle>, Option<&str>); 5] = [
        (
            names::INGRESS,
            "nginxIngress",
            &addons.nginx_ingress,
            Some("nginx"),
        ),
        (
            names::CERT_MANAGER,
            "certManager",
            &addons.cert_manager,
            None,
        ),
        (names::FLUX, "flux", &addons.flux, None),
        (names::HARBOR, "harbor", &addons.harbor, None),
        (
            names::METRICS,
            "metricsServer",
            &addons.metrics_server,
            None,
        ),
    ];
    for (name, field, toggle, implementation) in legacy {
        let Some(enabled) = toggle.as_ref().and_then(|t| t.enabled) else {
            continue;
        };
        let path = format!("spec.addons.{field}.enabled");
        if name == names::METRICS && !enabled {
            out.warnings.push(format!(
                "{path}: false is ignored: metrics is a mandatory extension and stays enabled"
            ));
            continue;
        }
        match out.by_name.get(name) {
            Some(modern) if modern.enabled.is_some() && modern.enabled != Some(enabled) => {
                out.warnings.push(format!(
                    "{path}: {enabled} is overridden by {}.enabled",
                    modern.path
                ));
            }
            Some(modern) if modern.enabled.is_some() => {}
            _ => {
                out.by_name.insert(
                    name.into(),
                    Request {
                        enabled: Some(enabled),
                        implementation: if enabled {
                            implementation.map(String::from)
                        } else {
                            None
                        },
                        path,
                    },
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ClusterSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn legacy_addons_map_onto_extensions() {
        let r = extension_requests(&spec(
            "addons: {nginxIngress: {enabled: true}, certManager: {enabled: true}, flux: {enabled: false}, harbor: {enabled: false}}",
        ));
        assert_eq!(r.by_name["ingress"].enabled, Some(true));
        assert_eq!(
            r.by_name["ingress"].implementation.as_deref(),
            Some("nginx")
        );
        assert_eq!(
            r.by_name["ingress"].path,
            "spec.addons.nginxIngress.enabled"
        );
        assert_eq!(r.by_name["certManager"].enabled, Some(true));
        assert_eq!(r.by_name["flux"].enabled, Some(false));
        assert!(r.warnings.is_empty());
    }

    #[test]
    fn metrics_server_false_is_a_warning_not_a_switch() {
        let r = extension_requests(&spec("addons: {metricsServer: {enabled: false}}"));
        assert!(!r.by_name.contains_key("metrics"));
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].starts_with("spec.addons.metricsServer.enabled: false is ignored"));
    }

    #[test]
    fn extensions_win_over_addons_with_a_warning() {
        let r = extension_requests(&spec(
            "addons: {certManager: {enabled: true}}\nextensions: {certManager: {enabled: false}}",
        ));
        assert_eq!(r.by_name["certManager"].enabled, Some(false));
        assert_eq!(r.by_name["certManager"].path, "spec.extensions.certManager");
        assert_eq!(
            r.warnings,
            vec![
                "spec.addons.certManager.enabled: true is overridden by spec.extensions.certManager.enabled"
            ]
        );
    }

    #[test]
    fn additional_extensions_default_to_enabled() {
        let r = extension_requests(&spec("extensions: {additional: [{name: velero}]}"));
        assert_eq!(r.by_name["velero"].enabled, Some(true));
        assert_eq!(r.by_name["velero"].path, "spec.extensions.additional[0]");
    }
}
