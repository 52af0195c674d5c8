//! `POST /api/v1/ingest`: NDJSON batches of events from agents' vigil output (gzip or not),
//! stored, then offered to the notifications.
//!
//! | answer | when | the vigil output |
//! |---|---|---|
//! | 200 | every well-formed line is stored (malformed ones are counted and skipped) | done |
//! | 400 | the body is not gzip it says it is, or no line is an event | drops the batch |
//! | 401/403 | no token, or one without the ingest role | retries (credentials rotate) |
//! | 413 | over `ingest.max_body_bytes` | sends halves |
//! | 503 | busy beyond `ingest.timeout_ms`, or the store failed | retries |
//!
//! A line that is not an event is skipped rather than failing the batch: the output would
//! drop the whole batch on a 400, losing the good events with the bad one.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use http_body_util::{BodyExt, Limited};
use vigil_core::event::Event;
use vigil_store::Origin;

use super::{Shared, plain};

/// What a batch gave.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The events, in body order.
    pub events: Vec<Event>,
    /// Lines that were not events.
    pub malformed: usize,
}

/// Splits an NDJSON body into events; blank lines are ignored.
pub fn parse_lines(body: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    for line in body.split(|b| *b == b'\n') {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Event>(line) {
            Ok(e) if !e.id.is_empty() => parsed.events.push(e),
            _ => parsed.malformed += 1,
        }
    }
    parsed
}

/// Inflates a gzip body, refusing to grow past `max` bytes (a small bomb must not take the
/// operator's memory).
pub fn gunzip(body: &[u8], max: usize) -> Result<Vec<u8>, GunzipError> {
    let mut out = Vec::new();
    let mut reader = flate2::read::MultiGzDecoder::new(body).take(max as u64 + 1);
    reader
        .read_to_end(&mut out)
        .map_err(|e| GunzipError::Corrupt(e.to_string()))?;
    if out.len() > max {
        return Err(GunzipError::TooLarge);
    }
    Ok(out)
}

/// Why a gzip body was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GunzipError {
    /// Not gzip, or cut short.
    #[error("the body is not valid gzip: {0}")]
    Corrupt(String),
    /// Inflates past the limit.
    #[error("the body inflates past ingest.max_body_bytes")]
    TooLarge,
}

pub(super) async fn receive(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(refused) = s.admit_api(&headers).await {
        s.metrics.ingest_refused();
        return refused;
    }
    let timeout = Duration::from_millis(s.config.ingest.timeout_ms);
    let Ok(Ok(_permit)) = tokio::time::timeout(timeout, s.permits.acquire()).await else {
        s.metrics.ingest_answered(503);
        return plain(StatusCode::SERVICE_UNAVAILABLE, "busy; retry later");
    };
    let max = s.config.ingest.max_body_bytes;
    let bytes: Bytes = match Limited::new(body, max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            s.metrics.ingest_answered(413);
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body over ingest.max_body_bytes",
            );
        }
        Err(_) => {
            s.metrics.ingest_answered(400);
            return plain(StatusCode::BAD_REQUEST, "the body could not be read");
        }
    };
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    let s2 = s.clone();
    let work = tokio::task::spawn_blocking(move || {
        let body = if gzip {
            match gunzip(&bytes, max) {
                Ok(b) => b,
                Err(GunzipError::TooLarge) => return Err((413, GunzipError::TooLarge.to_string())),
                Err(e) => return Err((400, e.to_string())),
            }
        } else {
            bytes.to_vec()
        };
        let parsed = parse_lines(&body);
        if parsed.events.is_empty() && parsed.malformed > 0 {
            s2.metrics.ingested(0, 0, parsed.malformed);
            return Err((
                400,
                format!("none of the {} lines is an event", parsed.malformed),
            ));
        }
        let report = s2
            .store
            .insert(&parsed.events, Origin::Local)
            .map_err(|e| (503, format!("the store failed: {e}")))?;
        Ok((parsed, report))
    });
    let outcome = match tokio::time::timeout(timeout, work).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => Err((503, "the store task failed".to_owned())),
        Err(_) => Err((503, "the store took too long".to_owned())),
    };
    match outcome {
        Ok((parsed, report)) => {
            s.metrics
                .ingested(report.inserted.len(), report.duplicates, parsed.malformed);
            if parsed.malformed > 0 {
                tracing::warn!(
                    malformed = parsed.malformed,
                    "ingest: lines that are not events were skipped"
                );
            }
            s.offer_new(&parsed.events, &report.inserted);
            s.metrics.ingest_answered(200);
            plain(StatusCode::OK, "stored")
        }
        Err((code, message)) => {
            s.metrics.ingest_answered(code);
            if code == 503 {
                tracing::error!(error = %message, "ingest failed; the agent will retry");
            }
            plain(
                StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                &message,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn event_line(id: &str) -> String {
        format!(
            r#"{{"schema":"vigil.event/v1","id":"{id}","time":"2026-11-23T10:00:00Z","ingest_time":"2026-11-23T10:00:00Z","source":"docker","kind":"runtime","action":"start","outcome":"success"}}"#
        )
    }

    #[test]
    fn good_lines_are_kept_and_bad_ones_counted() {
        let body = format!(
            "{}\n\nnot json\n{{\"id\":\"x\"}}\n{}\n{}",
            event_line("a"),
            event_line("b"),
            event_line("")
        );
        let parsed = parse_lines(body.as_bytes());
        let ids: Vec<_> = parsed.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(parsed.malformed, 3);
    }

    #[test]
    fn truncated_and_hostile_bodies_do_not_panic() {
        let line = event_line("a");
        for cut in 0..line.len() {
            let parsed = parse_lines(&line.as_bytes()[..cut]);
            assert!(parsed.events.is_empty());
        }
        let deep = "[".repeat(100_000);
        assert_eq!(parse_lines(deep.as_bytes()).malformed, 1);
        assert_eq!(parse_lines(&[0xff, 0xfe, b'\n', 0]).malformed, 2);
    }

    #[test]
    fn gzip_is_inflated_within_the_limit() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&vec![b'a'; 10_000]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(gunzip(&gz, 10_000).unwrap().len(), 10_000);
        assert_eq!(gunzip(&gz, 9_999), Err(GunzipError::TooLarge));
        assert!(matches!(
            gunzip(&gz[..gz.len() / 2], 10_000),
            Err(GunzipError::Corrupt(_))
        ));
        assert!(matches!(gunzip(b"plain", 10), Err(GunzipError::Corrupt(_))));
    }
}
