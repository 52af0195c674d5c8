//! The TLS client settings against a real rustls server on loopback.

use crate::support;

use std::sync::Arc;

use support::certs::TestPki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigil_core::outputs::tls::{DefaultTrust, TlsSettings, connect};

/// Starts a TLS echo-once server; returns its port.
async fn server(pki: &TestPki) -> u16 {
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 5];
                    if tls.read_exact(&mut buf).await.is_ok() {
                        let _ = tls.write_all(&buf).await;
                        let _ = tls.shutdown().await;
                    }
                }
            });
        }
    });
    port
}

async fn hello(settings: &TlsSettings, trust: DefaultTrust, port: u16) -> std::io::Result<()> {
    let config = settings.client_config(trust).unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut tls = connect(Arc::clone(&config), settings, "localhost", tcp).await?;
    tls.write_all(b"hello").await?;
    let mut back = [0u8; 5];
    tls.read_exact(&mut back).await?;
    assert_eq!(&back, b"hello");
    Ok(())
}

#[tokio::test]
async fn verifies_the_peer_against_the_configured_ca_and_refuses_another() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::create(dir.path());
    let port = server(&pki).await;

    let good = TlsSettings {
        ca_file: Some(pki.ca_cert.clone()),
        ..TlsSettings::default()
    };
    hello(&good, DefaultTrust::SystemRoots, port).await.unwrap();

    let wrong_ca = TlsSettings {
        ca_file: Some(pki.other_ca_cert.clone()),
        ..TlsSettings::default()
    };
    let err = hello(&wrong_ca, DefaultTrust::SystemRoots, port)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");

    let wrong_name = TlsSettings {
        ca_file: Some(pki.ca_cert.clone()),
        server_name: Some("manager.example".into()),
        ..TlsSettings::default()
    };
    assert!(
        hello(&wrong_name, DefaultTrust::SystemRoots, port)
            .await
            .is_err()
    );

    // The system roots do not know the test CA.
    assert!(
        hello(&TlsSettings::default(), DefaultTrust::SystemRoots, port)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn without_a_ca_wazuh_style_trust_accepts_the_peer() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::create(dir.path());
    let port = server(&pki).await;
    let none = TlsSettings::default();
    assert!(!none.verifies(DefaultTrust::None));
    hello(&none, DefaultTrust::None, port).await.unwrap();
    let insecure = TlsSettings {
        insecure_skip_verify: true,
        ..TlsSettings::default()
    };
    assert!(!insecure.verifies(DefaultTrust::SystemRoots));
    hello(&insecure, DefaultTrust::SystemRoots, port)
        .await
        .unwrap();
}

#[test]
fn bad_material_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::create(dir.path());
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let e = TlsSettings {
        ca_file: Some(junk.clone()),
        ..TlsSettings::default()
    }
    .client_config(DefaultTrust::SystemRoots)
    .unwrap_err();
    assert!(e.to_string().contains("junk.pem"), "{e}");
    let e = TlsSettings {
        cert_file: Some(pki.client_cert.clone()),
        ..TlsSettings::default()
    }
    .client_config(DefaultTrust::SystemRoots)
    .unwrap_err();
    assert!(e.to_string().contains("cert_file and key_file"), "{e}");
    let missing = TlsSettings {
        ca_file: Some(dir.path().join("missing.pem")),
        ..TlsSettings::default()
    }
    .client_config(DefaultTrust::SystemRoots)
    .unwrap_err();
    assert!(missing.to_string().contains("missing.pem"), "{missing}");
}
