//! OpenID Connect for a hosted control plane: the object's `spec.oidc` becomes the API server's
//! structured authentication configuration (`--authentication-config`, one JWT authenticator).
//!
//! Pure. The file is named after a digest of its contents, so a change of the settings changes
//! the API server's arguments and [`crate::plan::process_steps`] restarts it — deterministic, and
//! kept across a restart of the runtime (the process record holds the arguments), rather than
//! relying on the API server noticing that a file it watches has changed.

use std::path::{Path, PathBuf};

use kaas_api::cluster::OidcSpec;
use serde_json::{Value, json};

use crate::state::Layout;

/// The structured authentication configuration for `oidc` (defaults as filled in by
/// `OidcSpec::effective`; filled in again here, so an object written by hand means the same).
/// `apiserver.config.k8s.io/v1` from Kubernetes 1.34 (GA), `v1beta1` before (1.30–1.33).
pub fn authentication_config(oidc: &OidcSpec, minor: u64) -> Value {
    let o = oidc.effective();
    let api_version = if minor >= 34 {
        "apiserver.config.k8s.io/v1"
    } else {
        "apiserver.config.k8s.io/v1beta1"
    };
    let mut issuer = json!({"url": o.issuer_url, "audiences": [o.client_id]});
    if let Some(ca) = &o.certificate_authority {
        issuer["certificateAuthority"] = json!(ca);
    }
    json!({
        "apiVersion": api_version,
        "kind": "AuthenticationConfiguration",
        "jwt": [{
            "issuer": issuer,
            "claimMappings": {
                "username": {"claim": o.username_claim, "prefix": o.username_prefix},
                "groups": {"claim": o.groups_claim, "prefix": o.groups_prefix},
            },
        }],
    })
}

/// The file `config` is written to: `<dir>/authentication-<digest>.json`.
pub fn config_path(layout: &Layout, config: &[u8]) -> PathBuf {
    layout
        .dir
        .join(format!("authentication-{:016x}.json", fnv1a64(config)))
}

/// Removes the configuration files of earlier settings (all of them when `keep` is `None`).
pub fn remove_others(layout: &Layout, keep: Option<&Path>) {
    let Ok(entries) = std::fs::read_dir(&layout.dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let ours = name.starts_with("authentication-") && name.ends_with(".json");
        if ours && Some(e.path().as_path()) != keep {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// FNV-1a, 64 bit: stable across Rust versions and runs (unlike `DefaultHasher`).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc() -> OidcSpec {
        OidcSpec {
            issuer_url: "https://id.example.org".into(),
            client_id: "kaas".into(),
            ..OidcSpec::default()
        }
    }

    #[test]
    fn defaults_are_the_scs_stacks_and_a_dash_means_no_prefix() {
        let c = authentication_config(&oidc(), 35);
        assert_eq!(c["apiVersion"], "apiserver.config.k8s.io/v1");
        let jwt = &c["jwt"][0];
        assert_eq!(jwt["issuer"]["url"], "https://id.example.org");
        assert_eq!(jwt["issuer"]["audiences"], json!(["kaas"]));
        assert!(jwt["issuer"].get("certificateAuthority").is_none());
        assert_eq!(
            jwt["claimMappings"],
            json!({"username": {"claim": "preferred_username", "prefix": "oidc:"},
                   "groups": {"claim": "groups", "prefix": "oidc:"}})
        );

        let mut o = oidc();
        o.username_claim = Some("email".into());
        o.username_prefix = Some("-".into());
        o.groups_prefix = Some("corp:".into());
        o.certificate_authority = Some("-----BEGIN CERTIFICATE-----\n…".into());
        let c = authentication_config(&o, 33);
        assert_eq!(c["apiVersion"], "apiserver.config.k8s.io/v1beta1");
        let jwt = &c["jwt"][0];
        assert_eq!(
            jwt["claimMappings"]["username"],
            json!({"claim": "email", "prefix": ""})
        );
        assert_eq!(jwt["claimMappings"]["groups"]["prefix"], "corp:");
        assert!(
            jwt["issuer"]["certificateAuthority"]
                .as_str()
                .unwrap()
                .starts_with("-----BEGIN")
        );
    }

    #[test]
    fn the_file_name_follows_the_contents() {
        let l = Layout {
            dir: "/s/ns/c".into(),
        };
        let a = config_path(&l, b"one");
        assert_eq!(a, config_path(&l, b"one"));
        assert_ne!(a, config_path(&l, b"two"));
        assert!(a.starts_with("/s/ns/c"));
        // Pinned: a runtime of another build must name the same file for the same contents, or
        // it would restart every API server it adopts.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
