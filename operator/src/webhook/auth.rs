//! Who may post audit events: TLS (with optional client certificates) and bearer tokens.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use vigil_core::outputs::tls::TlsError;

use super::WebhookError;

/// Builds the TLS server configuration. With a client CA, a client certificate is optional
/// at the handshake but verified when presented: a certificate another CA signed fails the
/// handshake, and a caller without one must authenticate with a token, which is decided per
/// request (so that it can be answered 401 with a reason rather than a bare TLS alert).
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    client_ca_file: Option<&Path>,
) -> Result<Arc<ServerConfig>, WebhookError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(WebhookError::Tls)?;
    let builder = match client_ca_file {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots.add(cert).map_err(WebhookError::Tls)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| WebhookError::File {
                    path: ca.to_path_buf(),
                    reason: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| WebhookError::File {
        path: key_file.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut config = builder
        .with_single_cert(read_certs(cert_file)?, key)
        .map_err(WebhookError::Tls)?;
    // HTTP/1.1 only: kube-apiserver's client falls back to it, and one protocol is less to
    // harden.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, WebhookError> {
    vigil_core::outputs::tls::read_certs(path).map_err(|e| WebhookError::File {
        path: path.to_path_buf(),
        reason: match e {
            TlsError::File { reason, .. } => reason,
            other => other.to_string(),
        },
    })
}

/// What the TLS handshake established about the caller of one connection.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// The caller presented a certificate that the client CA verified.
    pub verified_cert: bool,
    /// The certificate also carries one of the configured `client_names` (or none are
    /// configured).
    pub name_allowed: bool,
    /// The remote address, for logs.
    pub addr: Option<std::net::SocketAddr>,
}

impl Peer {
    /// The facts of a finished handshake. rustls only completes a handshake whose client
    /// certificate the verifier accepted, so any certificate present here is verified.
    pub fn from_handshake(
        certs: Option<&[CertificateDer<'static>]>,
        client_names: &[String],
        addr: std::net::SocketAddr,
    ) -> Peer {
        let leaf = certs.and_then(<[_]>::first);
        let verified_cert = leaf.is_some();
        let name_allowed = match leaf {
            Some(leaf) => client_names.is_empty() || cert_has_name(leaf, client_names),
            None => false,
        };
        Peer {
            verified_cert,
            name_allowed,
            addr: Some(addr),
        }
    }
}

fn cert_has_name(leaf: &CertificateDer<'_>, names: &[String]) -> bool {
    let Ok(cert) = webpki::EndEntityCert::try_from(leaf) else {
        return false;
    };
    names.iter().any(|n| {
        ServerName::try_from(n.as_str())
            .is_ok_and(|name| cert.verify_is_valid_for_subject_name(&name).is_ok())
    })
}

/// How a request authenticated, or why it did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// By a client certificate.
    Certificate,
    /// By a bearer token.
    Token,
    /// No credential, or a wrong token (401).
    Unauthenticated(&'static str),
    /// A verified certificate without an allowed name, and no valid token (403).
    Forbidden,
}

/// The accepted bearer tokens, re-read from their files when they change.
///
/// Only SHA-256 digests of the tokens are kept, and a presented token is compared with every
/// one of them in constant time, so neither the comparison's timing nor a memory dump
/// reveals a token.
#[derive(Debug)]
pub struct TokenStore {
    files: Vec<PathBuf>,
    state: RwLock<TokenState>,
}

#[derive(Debug, Default)]
struct TokenState {
    digests: Vec<[u8; 32]>,
    /// Per file: its modification time and length when last read, and its digests.
    seen: Vec<Option<FileStamp>>,
    per_file: Vec<Vec<[u8; 32]>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl TokenStore {
    /// Reads every file; a missing or unreadable file at start is an error.
    pub fn load(files: &[PathBuf]) -> Result<TokenStore, WebhookError> {
        let store = TokenStore {
            files: files.to_vec(),
            state: RwLock::new(TokenState {
                digests: Vec::new(),
                seen: vec![None; files.len()],
                per_file: vec![Vec::new(); files.len()],
            }),
        };
        for (i, path) in files.iter().enumerate() {
            let (stamp, digests) = read_token_file(path)?;
            if digests.is_empty() {
                tracing::warn!(path = %path.display(), "token file holds no token");
            }
            store.with_state(|s| {
                s.seen[i] = Some(stamp);
                s.per_file[i] = digests;
                s.digests = s.per_file.concat();
            });
        }
        Ok(store)
    }

    /// Whether any token is configured at all.
    pub fn is_configured(&self) -> bool {
        !self.files.is_empty()
    }

    /// Whether `token` is one of the accepted tokens.
    pub fn accepts(&self, token: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(token).into();
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        // Every digest is compared, so the time taken does not say which one matched.
        let mut found = subtle::Choice::from(0);
        for d in &state.digests {
            found |= d.ct_eq(&presented);
        }
        found.into()
    }

    /// Re-reads the files whose modification time, length or inode changed. A file that
    /// cannot be read keeps its previous tokens. Returns how many files were reloaded.
    pub fn refresh(&self) -> usize {
        let mut reloaded = 0;
        for (i, path) in self.files.iter().enumerate() {
            let current = stamp(path).ok();
            let known = self.with_state(|s| s.seen.get(i).copied().flatten());
            if current.is_some() && current == known {
                continue;
            }
            match read_token_file(path) {
                Ok((stamp, digests)) => {
                    tracing::info!(path = %path.display(), tokens = digests.len(), "token file reloaded");
                    self.with_state(|s| {
                        s.seen[i] = Some(stamp);
                        s.per_file[i] = digests;
                        s.digests = s.per_file.concat();
                    });
                    reloaded += 1;
                }
                Err(e) => {
                    // Logged on every check while it lasts: a token that cannot be rotated
                    // is worth the noise.
                    tracing::error!(error = %e, "cannot read a token file; keeping its previous tokens");
                }
            }
        }
        reloaded
    }

    /// Re-reads the files every `every` until `stop` completes.
    pub async fn watch(self: Arc<Self>, every: Duration, stop: tokio::sync::watch::Receiver<bool>) {
        let mut stop = stop;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let store = self.clone();
                    // File reads are blocking; they are small and rare.
                    let _ = tokio::task::spawn_blocking(move || store.refresh()).await;
                }
                _ = stop.changed() => return,
            }
        }
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut TokenState) -> R) -> R {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        f(&mut state)
    }
}

fn stamp(path: &Path) -> std::io::Result<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    // Follows symlinks: a mounted Secret is updated by swapping a symlinked directory.
    let m = std::fs::metadata(path)?;
    Ok(FileStamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode: m.ino(),
    })
}

fn read_token_file(path: &Path) -> Result<(FileStamp, Vec<[u8; 32]>), WebhookError> {
    let io_err = |e: std::io::Error| WebhookError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let before = stamp(path).map_err(io_err)?;
    let text = std::fs::read_to_string(path).map_err(io_err)?;
    let digests = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| Sha256::digest(l.as_bytes()).into())
        .collect();
    Ok((before, digests))
}

/// Decides a request from its connection's certificate and its `Authorization` header.
pub fn decide(peer: &Peer, authorization: Option<&[u8]>, tokens: &TokenStore) -> Decision {
    if peer.verified_cert && peer.name_allowed {
        return Decision::Certificate;
    }
    let bearer = authorization.and_then(|h| {
        let (scheme, rest) = h.split_at_checked(7)?;
        scheme
            .eq_ignore_ascii_case(b"bearer ")
            .then(|| rest.trim_ascii())
    });
    match bearer {
        Some(token) if !token.is_empty() && tokens.accepts(token) => Decision::Token,
        Some(_) if peer.verified_cert => Decision::Forbidden,
        Some(_) => Decision::Unauthenticated("invalid bearer token"),
        None if peer.verified_cert => Decision::Forbidden,
        None if tokens.is_configured() => {
            Decision::Unauthenticated("a client certificate or a bearer token is required")
        }
        None => Decision::Unauthenticated("a client certificate is required"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(verified: bool, allowed: bool) -> Peer {
        Peer {
            verified_cert: verified,
            name_allowed: allowed,
            addr: None,
        }
    }

    #[test]
    fn tokens_are_matched_exactly_and_follow_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "old-token\n\n  second \n").unwrap();
        let store = TokenStore::load(std::slice::from_ref(&path)).unwrap();
        assert!(store.accepts(b"old-token"));
        assert!(store.accepts(b"second"));
        assert!(!store.accepts(b"old-toke"));
        assert!(!store.accepts(b""));

        // A rename over the file, as a Secret update does.
        let next = dir.path().join("token.new");
        std::fs::write(&next, "new-token\n").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_eq!(store.refresh(), 1);
        assert!(store.accepts(b"new-token"));
        assert!(!store.accepts(b"old-token"));
        assert_eq!(store.refresh(), 0, "unchanged files are not read again");

        std::fs::remove_file(&path).unwrap();
        store.refresh();
        assert!(
            store.accepts(b"new-token"),
            "a vanished file keeps its tokens"
        );
    }

    #[test]
    fn decisions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret").unwrap();
        let tokens = TokenStore::load(&[path]).unwrap();
        let none = TokenStore::load(&[]).unwrap();
        assert_eq!(
            decide(&peer(true, true), None, &none),
            Decision::Certificate
        );
        assert_eq!(decide(&peer(true, false), None, &none), Decision::Forbidden);
        assert_eq!(
            decide(&peer(true, false), Some(b"Bearer s3cret"), &tokens),
            Decision::Token
        );
        assert_eq!(
            decide(&peer(false, false), Some(b"bearer  s3cret "), &tokens),
            Decision::Token
        );
        assert!(matches!(
            decide(&peer(false, false), Some(b"Bearer nope"), &tokens),
            Decision::Unauthenticated(_)
        ));
        assert!(matches!(
            decide(&peer(false, false), Some(b"Basic czNjcmV0"), &tokens),
            Decision::Unauthenticated(_)
        ));
        assert!(matches!(
            decide(&peer(false, false), None, &tokens),
            Decision::Unauthenticated(_)
        ));
    }
}
