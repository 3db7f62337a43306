//! Autoscaled pools against the offering. A pool's bounds are spread over its zones (one
//! MachineDeployment per zone); a MachineDeployment whose lower bound is 0 can be scaled from
//! zero only when the autoscaler knows the size of a node it has never seen, which kaas takes from
//! the flavor. A flavor that cannot say it is refused here, with the field path, not at render.

use kaas_api::provider::Flavor;
use kaas_api::{KubeVersion, Provider};

use crate::error::{ErrorKind, FieldError, FieldErrors};
use crate::offering::{Pool, Size};

/// The cluster-autoscaler image for a cluster on `version` with `pools` (Cluster API backend):
/// `None` when no pool autoscales. A provider without `spec.autoscaler` runs none (a warning
/// says so); one without an image for the version's minor refuses the first autoscaled pool.
pub fn image(
    provider: &Provider,
    version: Option<&KubeVersion>,
    pools: &[Pool],
    errs: &mut FieldErrors,
    warnings: &mut Vec<String>,
) -> Option<String> {
    let first = pools
        .iter()
        .position(|p| matches!(p.size, Size::Autoscale { .. }))?;
    let name = provider.metadata.name.clone().unwrap_or_default();
    let Some(settings) = &provider.spec.autoscaler else {
        warnings.push(format!(
            "provider {name:?} runs no cluster-autoscaler (its spec.autoscaler is empty): pools with minCount/maxCount stay at the size Cluster API gives them"
        ));
        return None;
    };
    let version = version?.release();
    let release = version.trim_start_matches('v');
    match settings.image(release) {
        Some(image) => Some(image.to_string()),
        None => {
            errs.push(
                FieldError::new(
                    ErrorKind::NotSupported,
                    format!("spec.workers[{first}].minCount"),
                    format!(
                        "provider {name:?} runs no cluster-autoscaler for Kubernetes {release}: its spec.autoscaler.images has no image for this minor; use a fixed count or a version with an autoscaler"
                    ),
                )
                .allowed(settings.images.keys().cloned()),
            );
            None
        }
    }
}

/// Whether a pool of `size` over `zones` zones has a MachineDeployment with lower bound 0 (its
/// lower bound is spread over the zones, the first ones get the remainder).
pub fn scales_from_zero(size: Size, zones: usize) -> bool {
    match size {
        Size::Fixed(_) => false,
        Size::Autoscale { min, .. } => (min as i64) < zones.max(1) as i64,
    }
}

/// Whether `s` is a Kubernetes quantity (`8Gi`, `512Mi`, `1.5G`, `16`).
pub fn is_quantity(s: &str) -> bool {
    const SUFFIXES: [&str; 13] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E", "m",
    ];
    let number = SUFFIXES.iter().find_map(|x| s.strip_suffix(x)).unwrap_or(s);
    let mut parts = number.splitn(2, '.');
    let whole = parts.next().unwrap_or_default();
    let fraction = parts.next();
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && fraction.is_none_or(digits)
}

/// What `flavor` lacks for the autoscaler to build a node from it; empty when nothing.
pub fn missing_node_size(flavor: &Flavor) -> Vec<String> {
    let mut out = Vec::new();
    if flavor.cpu < 1 {
        out.push(format!("{} CPUs", flavor.cpu));
    }
    if !is_quantity(&flavor.memory) {
        out.push(format!(
            "memory {:?} is not a quantity such as 8Gi",
            flavor.memory
        ));
    }
    if let Some(g) = &flavor.gpu
        && g.count < 1
    {
        out.push(format!("{} GPUs", g.count));
    }
    out
}

/// Refuses a pool at `path` (`spec.workers[i]`) that scales from zero on a flavor without a
/// usable node size.
pub fn check_scale_from_zero(
    path: &str,
    size: Size,
    zones: usize,
    flavor: &Flavor,
    provider: &str,
    errs: &mut FieldErrors,
) {
    if !scales_from_zero(size, zones) {
        return;
    }
    let missing = missing_node_size(flavor);
    if missing.is_empty() {
        return;
    }
    errs.push(FieldError::new(
        ErrorKind::Invalid,
        format!("{path}.minCount"),
        format!(
            "a MachineDeployment of this pool starts at 0 nodes, and the autoscaler can only create the first node when it knows the node's size; flavor {:?} of provider {provider:?} has {}: set minCount to at least the number of zones, or ask the provider to fix the flavor",
            flavor.name,
            missing.join(", ")
        ),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_told_from_other_strings() {
        for ok in ["8Gi", "512Mi", "1.5G", "16", "100m", "0.5Ti"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "eight", "8 Gi", "8GB", "Gi", "1.", ".5Gi", "-1Gi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn a_pool_scales_from_zero_when_a_zone_gets_a_lower_bound_of_zero() {
        let auto = |min| Size::Autoscale { min, max: 9 };
        assert!(scales_from_zero(auto(0), 0));
        assert!(!scales_from_zero(auto(1), 0));
        assert!(scales_from_zero(auto(2), 3), "the third zone gets 0");
        assert!(!scales_from_zero(auto(3), 3));
        assert!(!scales_from_zero(Size::Fixed(0), 1));
    }

    #[test]
    fn a_flavor_without_a_usable_size_is_refused_with_the_field_path() {
        let flavor = Flavor {
            name: "odd".into(),
            cpu: 2,
            memory: "lots".into(),
            ..Default::default()
        };
        let mut errs = FieldErrors::default();
        let auto = Size::Autoscale { min: 0, max: 3 };
        check_scale_from_zero("spec.workers[1]", auto, 1, &flavor, "p", &mut errs);
        let text = errs.to_string();
        assert!(
            text.contains("spec.workers[1].minCount") && text.contains("memory \"lots\""),
            "{text}"
        );
        let mut none = FieldErrors::default();
        let at_one = Size::Autoscale { min: 1, max: 3 };
        check_scale_from_zero("spec.workers[1]", at_one, 1, &flavor, "p", &mut none);
        assert!(none.is_empty(), "a pool that never reaches 0 needs no size");
    }

    #[test]
    fn validation_refuses_scale_from_zero_on_a_flavor_without_a_size() {
        let provider: kaas_api::Provider = serde_yaml::from_str(
            r#"
apiVersion: scs.community/v1alpha1
kind: Provider
metadata: {name: p}
spec:
  providerType: openstack
  backend: {type: ClusterAPI, namespace: ns, clusterAPI: {stack: in-memory}}
  regions: [{name: r, zones: [a, b]}]
  flavors: [{name: f, cpu: 2, memory: 4Gi}, {name: vague, cpu: 2, memory: big}]
  kubernetesVersions: [{version: 1.35.4, classification: supported, stack: {clusterClass: c}}]
  extensions: [{name: metrics}, {name: ingress}]
"#,
        )
        .unwrap();
        let cluster = |workers: &str| -> kaas_api::Cluster {
            serde_yaml::from_str(&format!(
                "apiVersion: scs.community/v1alpha1\nkind: Cluster\nmetadata: {{name: c, namespace: t}}\nspec:\n  provider: {{name: p}}\n  controlPlane: {{flavor: f}}\n  workers: {workers}"
            ))
            .unwrap()
        };
        let errs = crate::validate(
            &cluster("[{name: a, flavor: f, count: 1}, {name: b, flavor: vague, minCount: 1, maxCount: 3, zones: [a, b]}]"),
            &provider,
        )
        .unwrap_err();
        assert_eq!(errs.paths(), ["spec.workers[1].minCount"]);
        crate::validate(
            &cluster("[{name: b, flavor: vague, minCount: 2, maxCount: 3, zones: [a, b]}]"),
            &provider,
        )
        .expect("no zone at 0: no size needed");
        crate::validate(
            &cluster("[{name: b, flavor: f, minCount: 0, maxCount: 3}]"),
            &provider,
        )
        .expect("a flavor with a size scales from zero");
    }

    #[test]
    fn the_autoscaler_image_is_the_one_of_the_minor_or_a_refusal_or_a_warning() {
        let mut provider: kaas_api::Provider =
            serde_yaml::from_str(include_str!("../../../examples/provider-inmemory.yaml")).unwrap();
        let cluster = |version: &str, workers: &str| -> kaas_api::Cluster {
            serde_yaml::from_str(&format!(
                "apiVersion: scs.community/v1alpha1\nkind: Cluster\nmetadata: {{name: c, namespace: t}}\nspec:\n  kubernetes: {{version: {version}}}\n  workers: {workers}"
            ))
            .unwrap()
        };
        let autoscaled = "[{name: a, count: 1}, {name: b, minCount: 0, maxCount: 3}]";
        let r = crate::validate(&cluster("1.35.x", autoscaled), &provider).unwrap();
        assert_eq!(
            r.autoscaler_image.as_deref(),
            Some("registry.k8s.io/autoscaling/cluster-autoscaler:v1.35.0")
        );
        let r = crate::validate(&cluster("1.36.x", autoscaled), &provider).unwrap();
        assert_eq!(
            r.autoscaler_image.as_deref(),
            Some("registry.k8s.io/autoscaling/cluster-autoscaler:v1.36.0")
        );
        let fixed = crate::validate(&cluster("1.35.x", "[{name: a, count: 1}]"), &provider);
        assert_eq!(fixed.unwrap().autoscaler_image, None, "no pool autoscales");

        provider
            .spec
            .autoscaler
            .as_mut()
            .unwrap()
            .images
            .remove("1.36");
        let errs = crate::validate(&cluster("1.36.x", autoscaled), &provider).unwrap_err();
        assert_eq!(errs.paths(), ["spec.workers[1].minCount"]);
        assert!(
            errs.to_string().contains("no image for this minor"),
            "{errs}"
        );

        provider.spec.autoscaler = None;
        let r = crate::validate(&cluster("1.35.x", autoscaled), &provider).unwrap();
        assert_eq!(r.autoscaler_image, None);
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("runs no cluster-autoscaler")),
            "{:?}",
            r.warnings
        );
    }
}
