//! Making an event fit a message size limit without breaking it: what is cut stays valid
//! JSON and a valid `vigil.event/v1` event, and says that it was cut.

use serde_json::Value;

use super::remote::EncodeError;

/// Appended to a string value that was cut to make the message fit.
pub const TRIM_MARKER: &str = "...[vigil.trimmed]";
/// The key of the object that replaces `raw` when it was dropped to make the message fit.
pub const RAW_TRIMMED_KEY: &str = "vigil.trimmed";
/// Strings are never cut below this many bytes (a cut that small saves nothing worth it).
const MIN_KEPT_STRING: usize = 32;
/// Rounds of string cutting before falling back to the minimal event.
const MAX_TRIM_ROUNDS: usize = 512;

/// Makes the event value `v` fit `budget` bytes once wrapped by `wrap` (which turns the
/// value into the message body), keeping it valid JSON and a valid `vigil.event/v1` event:
///
/// 1. `raw` is replaced by `{"vigil.trimmed": true, "original_bytes": N}`;
/// 2. the longest strings outside the event's identity are cut, ending in [`TRIM_MARKER`]
///    (`log.partial` is set when the log message is cut);
/// 3. as a last resort only the identity and the detections are kept.
///
/// `full` is the untrimmed size, for the markers and the error.
pub fn fit(
    mut v: Value,
    full: usize,
    budget: usize,
    wrap: impl Fn(&Value) -> Result<Vec<u8>, EncodeError>,
) -> Result<Vec<u8>, EncodeError> {
    if let Some(raw) = v.get_mut("raw") {
        let raw_bytes = serde_json::to_vec(raw)?.len();
        *raw = serde_json::json!({ RAW_TRIMMED_KEY: true, "original_bytes": raw_bytes });
    }
    let mut json = wrap(&v)?;
    for _ in 0..MAX_TRIM_ROUNDS {
        if json.len() <= budget {
            return Ok(json);
        }
        let excess = json.len() - budget;
        if !cut_longest_string(&mut v, excess) {
            break;
        }
        json = wrap(&v)?;
    }
    if json.len() <= budget {
        return Ok(json);
    }
    // What identifies the event and says why it matters, so the receiver still alerts.
    let mut minimal = serde_json::Map::new();
    if let Value::Object(map) = &v {
        for key in [
            "schema",
            "id",
            "time",
            "ingest_time",
            "cluster",
            "node",
            "source",
            "kind",
            "action",
            "outcome",
            "detections",
            "alert",
        ] {
            if let Some(value) = map.get(key) {
                minimal.insert(key.into(), value.clone());
            }
        }
    }
    minimal.insert(
        "raw".into(),
        serde_json::json!({ RAW_TRIMMED_KEY: true, "original_event_bytes": full }),
    );
    let json = wrap(&Value::Object(minimal))?;
    if json.len() <= budget {
        return Ok(json);
    }
    Err(EncodeError::TooLarge(format!(
        "{full} bytes, and still {} with only its identity and detections; the limit leaves {budget}",
        json.len()
    )))
}

/// Top-level keys whose values are never cut: the event's identity and classification.
const PROTECTED: &[&str] = &[
    "schema",
    "id",
    "time",
    "ingest_time",
    "source",
    "kind",
    "action",
    "outcome",
];

/// Cuts the longest string of `v` (outside [`PROTECTED`]) by about `excess` bytes, ending it
/// with [`TRIM_MARKER`]. Returns false when no string is long enough to be worth cutting.
fn cut_longest_string(v: &mut Value, excess: usize) -> bool {
    fn longest<'a>(v: &'a mut Value, top: bool, best: &mut Option<&'a mut String>) {
        match v {
            Value::String(s) if best.as_ref().is_none_or(|b| s.len() > b.len()) => {
                *best = Some(s);
            }
            Value::Array(items) => {
                for item in items {
                    longest(item, false, best);
                }
            }
            Value::Object(map) => {
                for (k, item) in map.iter_mut() {
                    if !(top && PROTECTED.contains(&k.as_str())) {
                        longest(item, false, best);
                    }
                }
            }
            _ => {}
        }
    }
    let mut best = None;
    longest(v, true, &mut best);
    let Some(s) = best else {
        return false;
    };
    let body = s.strip_suffix(TRIM_MARKER).unwrap_or(s).len();
    if body <= MIN_KEPT_STRING {
        return false;
    }
    let mut keep = body
        .saturating_sub(excess + TRIM_MARKER.len())
        .max(MIN_KEPT_STRING);
    while !s.is_char_boundary(keep) {
        keep -= 1;
    }
    s.truncate(keep);
    s.push_str(TRIM_MARKER);
    let cut_log_message = v
        .pointer("/log/message")
        .and_then(Value::as_str)
        .is_some_and(|m| m.ends_with(TRIM_MARKER));
    if cut_log_message && let Some(Value::Object(log)) = v.get_mut("log") {
        log.insert("partial".into(), Value::Bool(true));
    }
    true
}
