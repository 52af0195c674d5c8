//! `vigil-operator console-cert`: a CA and the console's certificate, as the Secret the
//! chart mounts (`tls.crt`, `tls.key`, `ca.crt`). The CA's key is not kept: renewing means
//! running it again, and agents follow the new CA when their pods restart.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// Why no certificate was made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused the parameters (a name that is not a DNS name or an address).
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// The Secret could not be written as YAML.
    #[error("yaml: {0}")]
    Yaml(String),
}

/// What goes into the certificate.
#[derive(Debug, Clone)]
pub struct CertRequest {
    /// Namespace of the release.
    pub namespace: String,
    /// The console Service (`<release>-operator-console` with the chart's naming).
    pub service: String,
    /// The headless Service the replicas find each other by.
    pub peers_service: String,
    /// Name of the Secret.
    pub secret_name: String,
    /// Days the certificates are valid.
    pub days: u32,
}

impl CertRequest {
    /// The names the certificate carries: each Service in its short and full forms, and
    /// `localhost` for `kubectl port-forward`.
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for svc in [&self.service, &self.peers_service] {
            names.push(svc.clone());
            names.push(format!("{svc}.{}", self.namespace));
            names.push(format!("{svc}.{}.svc", self.namespace));
            names.push(format!("{svc}.{}.svc.cluster.local", self.namespace));
        }
        names.push("localhost".into());
        names.push("127.0.0.1".into());
        names
    }
}

/// The Secret manifest (YAML) holding a fresh CA certificate and a server certificate
/// and key it signed.
pub fn console_secret(req: &CertRequest) -> Result<String, CertError> {
    let now = OffsetDateTime::now_utc();
    let until = now + Duration::days(i64::from(req.days.max(1)));

    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(
        DnType::CommonName,
        format!("vigil console CA ({})", req.namespace),
    );
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - Duration::minutes(5);
    ca.not_after = until;
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf = CertificateParams::new(req.names())?;
    leaf.distinguished_name
        .push(DnType::CommonName, req.service.clone());
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    leaf.not_before = now - Duration::minutes(5);
    leaf.not_after = until;
    let key = KeyPair::generate()?;
    let cert = leaf.signed_by(&key, &issuer)?;

    let secret = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": req.secret_name, "namespace": req.namespace},
        "type": "kubernetes.io/tls",
        "stringData": {
            "tls.crt": cert.pem(),
            "tls.key": key.serialize_pem(),
            "ca.crt": ca_cert.pem(),
        },
    });
    yaml_serde::to_string(&secret).map_err(|e| CertError::Yaml(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_holds_a_chain_rustls_accepts_for_every_name() {
        let req = CertRequest {
            namespace: "vigil-system".into(),
            service: "vigil-operator-console".into(),
            peers_service: "vigil-operator-console-peers".into(),
            secret_name: "vigil-console-tls".into(),
            days: 30,
        };
        let yaml = console_secret(&req).unwrap();
        let v: serde_json::Value = yaml_serde::from_str(&yaml).unwrap();
        assert_eq!(v["metadata"]["name"], "vigil-console-tls");
        let data = &v["stringData"];
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let ca =
            CertificateDer::from_pem_slice(data["ca.crt"].as_str().unwrap().as_bytes()).unwrap();
        let leaf =
            CertificateDer::from_pem_slice(data["tls.crt"].as_str().unwrap().as_bytes()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
        for name in [
            "vigil-operator-console.vigil-system.svc",
            "vigil-operator-console-peers.vigil-system.svc",
            "localhost",
            "127.0.0.1",
        ] {
            let server = ServerName::try_from(name).unwrap();
            verifier
                .verify_server_cert(&leaf, &[], &server, &[], UnixTime::now())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let other = ServerName::try_from("example.com").unwrap();
        assert!(
            verifier
                .verify_server_cert(&leaf, &[], &other, &[], UnixTime::now())
                .is_err()
        );
    }
}
