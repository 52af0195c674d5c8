//! Who may view the console and who may send events: bearer tokens from files, or checked
//! with the API server's TokenReview.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};

use super::config::{AuthConfig, TokenReviewConfig};
use crate::webhook::TokenStore;

/// The cookie the login page sets: the token itself, `HttpOnly` and `SameSite=Strict`,
/// as the Kubernetes dashboard keeps its bearer token.
pub const COOKIE: &str = "vigil_token";

/// Most TokenReview answers remembered; beyond it the oldest half is forgotten, so a flood
/// of made-up tokens costs API calls but no memory.
const REVIEW_CACHE_ENTRIES: usize = 4096;

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Read the console.
    Viewer,
    /// Send events.
    Ingest,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No token came with it.
    #[error("a bearer token is required")]
    NoToken,
    /// The token is unknown, or belongs to someone without the role.
    #[error("this token may not do that")]
    NotAllowed,
    /// The API server could not be asked.
    #[error("the token cannot be checked now: {0}")]
    ReviewFailed(String),
}

/// The authenticator every request goes through.
pub struct Authenticator {
    viewers: Arc<TokenStore>,
    ingesters: Arc<TokenStore>,
    review: Option<Reviewer>,
}

struct Reviewer {
    client: kube::Client,
    config: TokenReviewConfig,
    cache: Mutex<HashMap<[u8; 32], Reviewed>>,
}

/// A TokenReview's answer for a token (by its digest): when it was asked, and who the token
/// belongs to (`None`: nobody, the token is not valid).
type Reviewed = (Instant, Option<Identity>);

#[derive(Debug, Clone)]
struct Identity {
    user: String,
    groups: Vec<String>,
}

impl Authenticator {
    /// Loads the token files; `client` is needed when TokenReview is configured.
    pub fn new(config: &AuthConfig, client: Option<kube::Client>) -> Result<Self, String> {
        let viewers = TokenStore::load(&config.viewer_token_files).map_err(|e| e.to_string())?;
        let ingesters = TokenStore::load(&config.ingest_token_files).map_err(|e| e.to_string())?;
        let review = if config.token_review.is_used() {
            let client = client.ok_or(
                "console.auth.token_review needs the Kubernetes API (run in a cluster or with KUBECONFIG)",
            )?;
            Some(Reviewer {
                client,
                config: config.token_review.clone(),
                cache: Mutex::new(HashMap::new()),
            })
        } else {
            None
        };
        Ok(Authenticator {
            viewers: Arc::new(viewers),
            ingesters: Arc::new(ingesters),
            review,
        })
    }

    /// The token stores, for their reload task.
    pub fn token_stores(&self) -> [Arc<TokenStore>; 2] {
        [self.viewers.clone(), self.ingesters.clone()]
    }

    /// Admits a request presenting `token` for `role`.
    pub async fn admit(&self, token: Option<&str>, role: Role) -> Result<(), Refusal> {
        let token = token.filter(|t| !t.is_empty()).ok_or(Refusal::NoToken)?;
        let store = match role {
            Role::Viewer => &self.viewers,
            Role::Ingest => &self.ingesters,
        };
        if store.accepts(token.as_bytes()) {
            return Ok(());
        }
        let Some(review) = &self.review else {
            return Err(Refusal::NotAllowed);
        };
        let identity = review.identity(token).await?;
        match identity {
            Some(id) if review.allows(&id, role) => Ok(()),
            _ => Err(Refusal::NotAllowed),
        }
    }
}

impl Reviewer {
    fn allows(&self, id: &Identity, role: Role) -> bool {
        let c = &self.config;
        match role {
            Role::Viewer => {
                c.viewer_users.contains(&id.user)
                    || id.groups.iter().any(|g| c.viewer_groups.contains(g))
            }
            Role::Ingest => c.ingest_users.contains(&id.user),
        }
    }

    async fn identity(&self, token: &str) -> Result<Option<Identity>, Refusal> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let ttl = Duration::from_secs(self.config.cache_secs);
        {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((at, id)) = cache.get(&key)
                && at.elapsed() < ttl
            {
                return Ok(id.clone());
            }
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: None,
            },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| Refusal::ReviewFailed(e.to_string()))?;
        let identity = answer.status.and_then(|s| {
            if s.authenticated != Some(true) {
                return None;
            }
            let user = s.user?;
            Some(Identity {
                user: user.username.unwrap_or_default(),
                groups: user.groups.unwrap_or_default(),
            })
        });
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= REVIEW_CACHE_ENTRIES {
            let mut ages: Vec<_> = cache.iter().map(|(k, (at, _))| (*at, *k)).collect();
            ages.sort_unstable();
            for (_, k) in ages.iter().take(ages.len() / 2) {
                cache.remove(k);
            }
        }
        cache.insert(key, (Instant::now(), identity.clone()));
        Ok(identity)
    }
}

/// The token of a request: its `Authorization: Bearer` header, else the login cookie.
pub fn request_token(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION)
        && let Ok(value) = value.to_str()
        && let Some((scheme, token)) = value.split_once(' ')
        && scheme.eq_ignore_ascii_case("bearer")
    {
        return Some(token.trim().to_owned());
    }
    cookie(headers, COOKIE)
}

/// The value of cookie `name`.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(v))
}

/// Cookie values are set percent-encoded, so a token with any byte survives the trip.
pub fn percent_decode(v: &str) -> String {
    percent_encoding::percent_decode_str(v)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_header_wins_over_the_cookie_and_cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; vigil_token=abc%3Ddef; b=2"),
        );
        assert_eq!(request_token(&h).as_deref(), Some("abc=def"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  tok "),
        );
        assert_eq!(request_token(&h).as_deref(), Some("tok"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic x"));
        assert_eq!(request_token(&h).as_deref(), Some("abc=def"));
    }

    #[tokio::test]
    async fn file_tokens_grant_only_their_role() {
        let dir = tempfile::tempdir().unwrap();
        let viewers = dir.path().join("viewers");
        let ingest = dir.path().join("ingest");
        std::fs::write(&viewers, "look\n").unwrap();
        std::fs::write(&ingest, "send\n").unwrap();
        let auth = Authenticator::new(
            &AuthConfig {
                viewer_token_files: vec![viewers],
                ingest_token_files: vec![ingest],
                token_review: Default::default(),
            },
            None,
        )
        .unwrap();
        assert_eq!(auth.admit(Some("look"), Role::Viewer).await, Ok(()));
        assert_eq!(auth.admit(Some("send"), Role::Ingest).await, Ok(()));
        assert_eq!(
            auth.admit(Some("look"), Role::Ingest).await,
            Err(Refusal::NotAllowed)
        );
        assert_eq!(
            auth.admit(Some("send"), Role::Viewer).await,
            Err(Refusal::NotAllowed)
        );
        assert_eq!(auth.admit(None, Role::Viewer).await, Err(Refusal::NoToken));
        assert_eq!(
            auth.admit(Some(""), Role::Viewer).await,
            Err(Refusal::NoToken)
        );
    }
}
