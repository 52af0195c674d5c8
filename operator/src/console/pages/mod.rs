//! The console's pages, rendered on the server: plain HTML forms and links, one small
//! stylesheet inlined, no script and nothing fetched from elsewhere, so it works behind
//! `kubectl port-forward` on an air-gapped cluster.
//!
//! Every page is a GET and changes nothing; the only POSTs are the login and logout,
//! which set and clear the cookie holding the viewer's token.

mod layout;
mod views;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use vigil_store::{Cursor, Filter};

use super::Shared;
use super::auth::{COOKIE, Refusal, Role, request_token};

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/events") }))
        .route("/login", get(login_form).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/events", get(events))
        .route("/detections", get(detections))
        .route("/events/{id}", get(event))
        .route("/containers", get(containers))
        .route("/monitors", get(monitors))
}

/// The filters of the timeline, as the form sends them. Empty fields mean "any".
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct FilterForm {
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub node: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub rule: String,
    #[serde(default)]
    pub level: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub before: String,
}

impl FilterForm {
    /// The store's filter, and the problems with fields that could not be understood
    /// (shown on the page; such a field filters nothing).
    pub(crate) fn to_filter(&self, only_detections: bool) -> (Filter, Vec<String>) {
        let mut problems = Vec::new();
        let some = |s: &str| {
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_owned())
        };
        let mut time = |field: &str, s: &str| -> Option<OffsetDateTime> {
            let s = s.trim();
            if s.is_empty() {
                return None;
            }
            match parse_time(s) {
                Some(t) => Some(t),
                None => {
                    problems.push(format!(
                        "{field}: {s:?} is not a time (use 2026-11-23T10:00 or RFC 3339; times are UTC)"
                    ));
                    None
                }
            }
        };
        let from = time("from", &self.from);
        let to = time("to", &self.to);
        let min_level = match self.level.trim() {
            "" => None,
            l => match l.parse::<u8>() {
                Ok(v) if v <= 15 => Some(v),
                _ => {
                    problems.push(format!("level: {l:?} is not a level from 0 to 15"));
                    None
                }
            },
        };
        let filter = Filter {
            namespace: some(&self.namespace),
            node: some(&self.node),
            source: some(&self.source),
            kind: some(&self.kind),
            action: some(&self.action),
            rule: some(&self.rule),
            min_level,
            only_detections,
            from,
            to,
            text: some(&self.q),
        };
        (filter, problems)
    }

    /// The query string of these filters with another `before`.
    pub(crate) fn query_with_before(&self, before: &str) -> String {
        let pairs = [
            ("namespace", &self.namespace),
            ("node", &self.node),
            ("source", &self.source),
            ("kind", &self.kind),
            ("action", &self.action),
            ("rule", &self.rule),
            ("level", &self.level),
            ("from", &self.from),
            ("to", &self.to),
            ("q", &self.q),
        ];
        let mut out = String::new();
        for (k, v) in pairs.iter().filter(|(_, v)| !v.trim().is_empty()) {
            push_pair(&mut out, k, v);
        }
        if !before.is_empty() {
            push_pair(&mut out, "before", before);
        }
        out
    }

    /// The same filters narrowed to one kind and action (the counts' links).
    pub(crate) fn query_with_kind_action(&self, kind: &str, action: &str) -> String {
        let mut f = self.clone();
        f.kind = kind.to_owned();
        f.action = action.to_owned();
        f.query_with_before("")
    }
}

fn push_pair(out: &mut String, k: &str, v: &str) {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    if !out.is_empty() {
        out.push('&');
    }
    out.push_str(k);
    out.push('=');
    out.push_str(&utf8_percent_encode(v.trim(), NON_ALPHANUMERIC).to_string());
}

/// A time as the form's `datetime-local` field sends it (`2026-11-23T10:00`, taken as
/// UTC), with seconds, or RFC 3339.
pub(crate) fn parse_time(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let formats = [
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]"),
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]"),
        time::macros::format_description!("[year]-[month]-[day]"),
    ];
    for f in formats {
        if let Ok(t) = time::PrimitiveDateTime::parse(s, &f) {
            return Some(t.assume_utc());
        }
        if let Ok(d) = time::Date::parse(s, &f) {
            return Some(d.midnight().assume_utc());
        }
    }
    None
}

/// Admits a page view, or answers: to the login page without a token, 403 with one that
/// may not view.
async fn viewer(s: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let token = request_token(headers);
    match s.auth.admit(token.as_deref(), Role::Viewer).await {
        Ok(()) => {
            s.metrics.page_viewed();
            Ok(())
        }
        Err(Refusal::NoToken) => Err(Redirect::to("/login").into_response()),
        Err(r @ Refusal::NotAllowed) => Err(page_error(StatusCode::FORBIDDEN, &r.to_string())),
        Err(r @ Refusal::ReviewFailed(_)) => {
            Err(page_error(StatusCode::SERVICE_UNAVAILABLE, &r.to_string()))
        }
    }
}

fn page_error(code: StatusCode, message: &str) -> Response {
    (code, Html(layout::error_page(code, message).into_string())).into_response()
}

fn html(markup: maud::Markup) -> Response {
    let mut res = Html(markup.into_string()).into_response();
    let h = res.headers_mut();
    // The pages show security events: never cached, never framed, no script at all.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// Runs a store query off the async threads.
async fn blocking<T: Send + 'static>(
    s: &Arc<Shared>,
    f: impl FnOnce(&vigil_store::Store) -> Result<T, vigil_store::StoreError> + Send + 'static,
) -> Result<T, Response> {
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(page_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the store failed: {e}"),
        )),
        Err(_) => Err(page_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store task failed",
        )),
    }
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
}

async fn login_form() -> Response {
    html(layout::login_page(None))
}

async fn login(State(s): State<Arc<Shared>>, Form(form): Form<LoginForm>) -> Response {
    let token = form.token.trim().to_owned();
    match s.auth.admit(Some(&token), Role::Viewer).await {
        Ok(()) => {
            let secure = if s.config.tls.is_some() {
                "; Secure"
            } else {
                ""
            };
            let value =
                percent_encoding::utf8_percent_encode(&token, percent_encoding::NON_ALPHANUMERIC);
            let cookie = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{secure}");
            let mut res = Redirect::to("/events").into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            res
        }
        Err(r) => {
            let code = match r {
                Refusal::ReviewFailed(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::UNAUTHORIZED,
            };
            let mut res = html(layout::login_page(Some(&r.to_string())));
            *res.status_mut() = code;
            res
        }
    }
}

async fn logout() -> Response {
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("vigil_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    res
}

async fn events(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(form): Query<FilterForm>,
) -> Response {
    timeline(s, headers, form, false).await
}

async fn detections(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(form): Query<FilterForm>,
) -> Response {
    timeline(s, headers, form, true).await
}

async fn timeline(
    s: Arc<Shared>,
    headers: HeaderMap,
    form: FilterForm,
    only_detections: bool,
) -> Response {
    if let Err(r) = viewer(&s, &headers).await {
        return r;
    }
    let (filter, mut problems) = form.to_filter(only_detections);
    let before = match form.before.trim() {
        "" => None,
        b => match Cursor::from_param(b) {
            Some(c) => Some(c),
            None => {
                problems.push("before: not a page cursor; showing the newest events".into());
                None
            }
        },
    };
    let rows = s.config.page_rows;
    let started = std::time::Instant::now();
    let result = blocking(&s, move |store| {
        let page = store.query(&filter, rows, before.as_ref())?;
        let counts = store.counts(&filter)?;
        let facets = store.facets()?;
        Ok((page, counts, facets))
    })
    .await;
    let (page, counts, facets) = match result {
        Ok(v) => v,
        Err(r) => return r,
    };
    let view = views::Timeline {
        form: &form,
        only_detections,
        problems: &problems,
        page: &page,
        counts: &counts,
        facets: &facets,
        elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
    };
    html(view.render())
}

async fn event(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = viewer(&s, &headers).await {
        return r;
    }
    let found = match blocking(&s, move |store| store.event(&id)).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match found {
        Some(stored) => html(views::event_page(&stored)),
        None => page_error(
            StatusCode::NOT_FOUND,
            "no such event (retention may have removed it)",
        ),
    }
}

async fn containers(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(r) = viewer(&s, &headers).await {
        return r;
    }
    match blocking(&s, |store| store.containers()).await {
        Ok(list) => html(views::containers_page(&list)),
        Err(r) => r,
    }
}

async fn monitors(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(r) = viewer(&s, &headers).await {
        return r;
    }
    let list = s.monitors.list().await;
    html(views::monitors_page(&list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_in_the_forms_a_user_types() {
        let t = parse_time("2026-11-23T10:05").unwrap();
        assert_eq!((t.hour(), t.minute(), t.offset().is_utc()), (10, 5, true));
        assert_eq!(parse_time("2026-11-23").unwrap().hour(), 0);
        assert_eq!(parse_time("2026-11-23T10:05:00+02:00").unwrap().hour(), 10);
        assert!(parse_time("yesterday").is_none());
        assert!(parse_time("2026-13-45T99:00").is_none());
    }

    #[test]
    fn bad_fields_are_reported_and_filter_nothing() {
        let form = FilterForm {
            namespace: " team-a ".into(),
            level: "99".into(),
            from: "soon".into(),
            q: "<script>".into(),
            ..Default::default()
        };
        let (f, problems) = form.to_filter(true);
        assert_eq!(f.namespace.as_deref(), Some("team-a"));
        assert_eq!(f.min_level, None);
        assert_eq!(f.from, None);
        assert!(f.only_detections);
        assert_eq!(f.text.as_deref(), Some("<script>"));
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn links_keep_the_filters_and_encode_them() {
        let form = FilterForm {
            namespace: "a&b".into(),
            q: "cat /etc/shadow".into(),
            before: "old".into(),
            ..Default::default()
        };
        assert_eq!(
            form.query_with_before("c1"),
            "namespace=a%26b&q=cat%20%2Fetc%2Fshadow&before=c1"
        );
        assert_eq!(
            form.query_with_kind_action("runtime", "start"),
            "namespace=a%26b&kind=runtime&action=start&q=cat%20%2Fetc%2Fshadow"
        );
    }
}
