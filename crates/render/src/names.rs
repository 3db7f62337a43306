//! Names of rendered objects. Kubernetes names have length limits; long inputs are shortened
//! with a stable hash so two different inputs never collide on the same name.

/// FNV-1a, 32 bit: small, stable across Rust versions (unlike `DefaultHasher`).
fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Lower-cases and replaces everything but `[a-z0-9-]` with `-`, trimming `-` at the ends.
pub fn sanitize(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.trim_matches('-').to_string()
}

/// Joins parts with `-` into a DNS label of at most `max` characters; when it is longer (or had to
/// be sanitised), the tail is replaced by an 8-hex-digit hash of the original parts.
pub fn label(parts: &[&str], max: usize) -> String {
    let raw = parts.join("-");
    let clean = sanitize(&raw);
    if clean.len() <= max && clean == raw {
        return clean;
    }
    let hash = format!("{:08x}", fnv1a(&raw));
    let keep = max.saturating_sub(hash.len() + 1);
    let head = clean[..clean.len().min(keep)].trim_end_matches('-');
    if head.is_empty() {
        hash
    } else {
        format!("{head}-{hash}")
    }
}

/// FNV-1a, 64 bit.
fn fnv1a64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The provider-side namespace holding the Cluster API objects of `tenant`'s clusters at
/// `provider`: `kaas-<provider>-<tenant>-<hash>`. The hash is taken over `provider/tenant` (a `/`
/// cannot occur in either name), so two pairs never share a namespace even when their dashed
/// forms coincide (`fra` + `1-x` and `fra-1` + `x`); the readable part is shortened to fit 63.
pub fn capi_namespace(provider: &str, tenant: &str) -> String {
    let hash = format!(
        "{:010x}",
        fnv1a64(&format!("{provider}/{tenant}")) & 0xff_ffff_ffff
    );
    let head = sanitize(&format!("kaas-{provider}-{tenant}"));
    let head = head[..head.len().min(63 - hash.len() - 1)].trim_end_matches('-');
    format!("{head}-{hash}")
}

/// MachineDeployment topology name of a pool (and zone, when the pool spans several).
pub fn machine_deployment(pool: &str, zone: Option<&str>) -> String {
    match zone {
        None => pool.to_string(),
        Some(z) => label(&[pool, z], 63),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_side_namespaces_never_collide() {
        assert!(capi_namespace("fra1", "tenant-a").starts_with("kaas-fra1-tenant-a-"));
        assert_ne!(capi_namespace("fra", "1-x"), capi_namespace("fra-1", "x"));
        assert_ne!(capi_namespace("provider", "dev"), "kaas-provider-dev");
        let long = capi_namespace(&"p".repeat(63), &"t".repeat(63));
        assert!(long.len() <= 63 && long.starts_with("kaas-ppp"), "{long}");
        assert_eq!(
            capi_namespace("fra1", "tenant-a"),
            capi_namespace("fra1", "tenant-a")
        );
    }

    #[test]
    fn short_clean_names_stay_readable() {
        assert_eq!(
            machine_deployment("general", Some("fra1-a")),
            "general-fra1-a"
        );
        assert_eq!(machine_deployment("general", None), "general");
    }

    #[test]
    fn long_or_unclean_names_get_a_stable_hash_and_fit() {
        let long = "t".repeat(70);
        let ns = capi_namespace("fra1", &long);
        assert!(ns.len() <= 63);
        assert_ne!(ns, capi_namespace("fra1", &"t".repeat(71)));
        let z = machine_deployment("gpu", Some("eu-de/AZ_1"));
        assert!(z.starts_with("gpu-eu-de-az-1-") && z.len() <= 63, "{z}");
        assert_ne!(
            machine_deployment("gpu", Some("a_b")),
            machine_deployment("gpu", Some("a-b"))
        );
    }
}
