//! The plane's PKI: one CA that signs the serving certificates (kube-apiserver, webhooks) and the
//! client certificates (admin, test users). Made with rcgen; nothing leaves the plane directory.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// A PEM certificate and its PEM (PKCS#8) private key.
#[derive(Clone, Debug)]
pub struct CertPair {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
}

/// The plane's certificate authority.
pub struct Pki {
    ca_cert_pem: String,
    ca_key: KeyPair,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

/// The CA's parameters are fixed, so an issuer can be rebuilt from the saved key alone.
fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kaas-harness-ca");
    dn.push(DnType::OrganizationName, "kaas");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

impl Pki {
    /// A new CA (ECDSA P-256).
    pub fn generate() -> Result<Self> {
        let ca_key = KeyPair::generate()?;
        let ca_cert_pem = ca_params().self_signed(&ca_key)?.pem();
        Ok(Self {
            ca_cert_pem,
            ca_key,
        })
    }

    /// A CA saved earlier (persistent planes).
    pub fn load(ca_cert_pem: String, ca_key_pem: &str) -> Result<Self> {
        let ca_key = KeyPair::from_pem(ca_key_pem).context("parsing the CA key")?;
        Ok(Self {
            ca_cert_pem,
            ca_key,
        })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// The CA key, PEM.
    pub fn ca_key_pem(&self) -> String {
        self.ca_key.serialize_pem()
    }

    fn sign(&self, params: CertificateParams) -> Result<CertPair> {
        let key = KeyPair::generate()?;
        let issuer = Issuer::new(ca_params(), &self.ca_key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(CertPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A serving certificate for `127.0.0.1`, `localhost` and the given extra DNS names.
    pub fn serving_cert(&self, common_name: &str, extra_dns: &[&str]) -> Result<CertPair> {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, common_name);
        p.subject_alt_names = vec![
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::DnsName("localhost".try_into()?),
        ];
        for d in extra_dns {
            p.subject_alt_names.push(SanType::DnsName((*d).try_into()?));
        }
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(p)
    }

    /// A client certificate: Kubernetes reads the user from the CN and the groups from O.
    pub fn client_cert(&self, user: &str, groups: &[&str]) -> Result<CertPair> {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, user);
        for g in groups {
            p.distinguished_name.push(DnType::OrganizationName, *g);
        }
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(p)
    }
}

/// A key pair for signing ServiceAccount tokens: (private key PEM, public key PEM).
pub fn service_account_keys() -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_and_reloads() {
        let pki = Pki::generate().unwrap();
        assert!(pki.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let s = pki
            .serving_cert("apiserver", &["kubernetes.default.svc"])
            .unwrap();
        assert!(s.key_pem.contains("PRIVATE KEY"));
        let reloaded = Pki::load(pki.ca_pem().to_string(), &pki.ca_key_pem()).unwrap();
        let c = reloaded.client_cert("alice", &["dev", "ops"]).unwrap();
        assert!(c.cert_pem.contains("BEGIN CERTIFICATE"));
    }
}
