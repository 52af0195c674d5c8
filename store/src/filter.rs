//! What the console asks for: the filter, turned into a SQL condition with bound values.

use rusqlite::types::Value;
use time::OffsetDateTime;

use crate::columns::nanos;

/// Which events to show. Every field set narrows the result; [`Filter::default`] is every
/// event. Values are compared exactly (the console offers them from [`crate::Facets`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The event's Kubernetes namespace (the API object's, else its pod's).
    pub namespace: Option<String>,
    /// The node it was seen on.
    pub node: Option<String>,
    /// Its source: `k8s_audit`, `docker`, `containerd`, `container_log`, `process`, `file`,
    /// `stats`, `hardening`.
    pub source: Option<String>,
    /// Its kind: `audit`, `runtime`, `log`, `process`, `file`, `metrics`, `posture`.
    pub kind: Option<String>,
    /// Its action (`exec`, `start`, `create` ...).
    pub action: Option<String>,
    /// A rule it fired.
    pub rule: Option<String>,
    /// Its highest detection level is at least this (events without detections are out).
    pub min_level: Option<u8>,
    /// Only events that fired a detection.
    pub only_detections: bool,
    /// Event time at or after this.
    pub from: Option<OffsetDateTime>,
    /// Event time before this.
    pub to: Option<OffsetDateTime>,
    /// Words that must all appear (whole words, any case, accents ignored) in the summary,
    /// rule names or titles, actor, object, container, image, command line or log message.
    /// Taken as plain words: quotes, operators and other punctuation have no meaning; past
    /// the 32nd word the rest is ignored.
    pub text: Option<String>,
}

/// How the free-text condition is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextPlan {
    /// The search index's matches drive the query: each is looked up, then sorted. Best
    /// when every match is needed (counts) or matches are few.
    Drive,
    /// The query walks the timeline (or another filter's index) in order and keeps the
    /// events among the matches, collected once: a page of a common word stops after
    /// `limit` hits instead of sorting thousands. The unary `+` keeps the planner from
    /// turning the condition back into look-ups.
    Probe,
}

/// A condition on the `events` table (aliased `e`) and the values bound to it.
pub(crate) struct Condition {
    pub sql: String,
    pub values: Vec<Value>,
}

impl Filter {
    /// The WHERE condition, built only from fixed fragments: every user value is bound.
    pub(crate) fn condition(&self, plan: TextPlan) -> Condition {
        let mut sql: Vec<&'static str> = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        let mut text = |fragment: &'static str, v: &Option<String>| {
            if let Some(v) = v {
                sql.push(fragment);
                values.push(Value::Text(v.clone()));
            }
        };
        text("e.namespace = ?", &self.namespace);
        text("e.node = ?", &self.node);
        text("e.source = ?", &self.source);
        text("e.kind = ?", &self.kind);
        text("e.action = ?", &self.action);
        text(
            "e.seq IN (SELECT d.seq FROM detections d WHERE d.rule = ?)",
            &self.rule,
        );
        if self.only_detections || self.min_level.is_some() {
            // Spelled out so the planner may use the partial index of detected events.
            sql.push("e.level IS NOT NULL");
        }
        if let Some(level) = self.min_level {
            sql.push("e.level >= ?");
            values.push(Value::Integer(i64::from(level)));
        }
        if let Some(from) = self.from {
            sql.push("e.time_ns >= ?");
            values.push(Value::Integer(nanos(from)));
        }
        if let Some(to) = self.to {
            sql.push("e.time_ns < ?");
            values.push(Value::Integer(nanos(to)));
        }
        if let Some(text) = &self.text {
            match fts_query(text) {
                Some(q) => {
                    sql.push(match plan {
                        TextPlan::Drive => {
                            "e.seq IN (SELECT rowid FROM search WHERE search MATCH ?)"
                        }
                        TextPlan::Probe => {
                            "+e.seq IN (SELECT rowid FROM search WHERE search MATCH ?)"
                        }
                    });
                    values.push(Value::Text(q));
                }
                // Nothing searchable (only punctuation): nothing can match it.
                None => sql.push("0"),
            }
        }
        Condition {
            sql: if sql.is_empty() {
                "1".to_owned()
            } else {
                sql.join(" AND ")
            },
            values,
        }
    }
}

/// An FTS5 query that matches every word of `input` as a plain string: each word becomes a
/// quoted phrase (inner quotes doubled), so FTS syntax in the input (`AND`, `NEAR`, `*`,
/// `^`, column filters, parentheses, quotes) is just text. A word the tokenizer would
/// split (`web-1`, `pods/exec`) matches its parts side by side. `None` when no word has a
/// letter or digit: such a word has no token and an empty phrase would match nothing
/// predictable.
pub(crate) fn fts_query(input: &str) -> Option<String> {
    let words: Vec<String> = input
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .take(32)
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_phrases() {
        assert_eq!(
            fts_query("nginx exec").as_deref(),
            Some(r#""nginx" "exec""#)
        );
        assert_eq!(
            fts_query(r#"a"b OR c*"#).as_deref(),
            Some(r#""a""b" "OR" "c*""#)
        );
        assert_eq!(fts_query("  \" * - ( ) "), None);
        assert_eq!(fts_query(""), None);
    }

    #[test]
    fn the_default_filter_is_everything_and_values_are_bound_not_spliced() {
        assert_eq!(Filter::default().condition(TextPlan::Drive).sql, "1");
        let f = Filter {
            namespace: Some("x' OR 1=1 --".into()),
            min_level: Some(3),
            ..Filter::default()
        };
        let c = f.condition(TextPlan::Probe);
        assert!(!c.sql.contains("OR 1=1"), "{}", c.sql);
        assert_eq!(c.values.len(), 2);
    }
}
