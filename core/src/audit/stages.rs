//! One detection per request, whatever stages the audit policy logs.
//!
//! kube-apiserver logs a long-running request (exec, attach, port-forward, watch,
//! `logs -f`) at `ResponseStarted` and again at `ResponseComplete`, which for an interactive
//! shell can come hours later; and every request at `RequestReceived` when the policy keeps
//! that stage, before it is authorized. Detections therefore run on the first stage that
//! knows the answer: `ResponseStarted` when it is logged (the alert comes when the shell
//! opens, not when it closes), else `ResponseComplete` or `Panic`; never on `RequestReceived`.
//! Every stage is still shipped.

use std::collections::{HashSet, VecDeque};

use super::AuditRecord;

/// How many requests seen at `ResponseStarted` are remembered until their
/// `ResponseComplete` arrives. Long-running requests are a small share of traffic (watches,
/// execs, followed logs); when more are open at once, the oldest is forgotten and its
/// `ResponseComplete` is evaluated again: a repeated detection, never a missed one.
pub const MAX_OPEN_REQUESTS: usize = 4096;

/// Remembers which requests already had their detections.
#[derive(Debug, Default)]
pub struct StageFilter {
    open: HashSet<String>,
    order: VecDeque<String>,
}

impl StageFilter {
    /// An empty filter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether rules should run on `record`.
    pub fn should_detect(&mut self, record: &AuditRecord) -> bool {
        let stage = record.stage();
        let id = record.audit_id();
        match (stage, id) {
            (Some("RequestReceived"), _) => false,
            (Some("ResponseStarted"), Some(id)) => {
                if self.open.len() >= MAX_OPEN_REQUESTS
                    && let Some(oldest) = self.order.pop_front()
                {
                    self.open.remove(&oldest);
                }
                if self.open.insert(id.to_owned()) {
                    self.order.push_back(id.to_owned());
                }
                true
            }
            (Some("ResponseComplete" | "Panic"), Some(id)) => {
                if self.open.remove(id) {
                    // Its detections ran at ResponseStarted. The order queue keeps a stale
                    // entry until it reaches the front; removing it is a no-op then.
                    return false;
                }
                true
            }
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditParser, Position};

    fn record(stage: &str, id: &str) -> AuditRecord {
        let line = format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"{id}","stage":"{stage}","verb":"create","requestURI":"/api/v1/namespaces/a/pods/p/exec?command=sh","objectRef":{{"resource":"pods","subresource":"exec","namespace":"a","name":"p"}},"responseStatus":{{"code":101}}}}"#
        );
        let mut out = Vec::new();
        AuditParser::default()
            .parse_line(
                line.as_bytes(),
                Position {
                    origin: "t",
                    offset: 0,
                },
                "t",
                &mut out,
            )
            .unwrap();
        out.pop().unwrap()
    }

    #[test]
    fn a_request_is_evaluated_once_at_its_first_answered_stage() {
        let mut f = StageFilter::new();
        assert!(!f.should_detect(&record("RequestReceived", "a")));
        assert!(f.should_detect(&record("ResponseStarted", "a")));
        assert!(!f.should_detect(&record("ResponseComplete", "a")));
        // Without ResponseStarted in the policy, ResponseComplete is the stage that counts.
        assert!(f.should_detect(&record("ResponseComplete", "b")));
        assert!(f.should_detect(&record("Panic", "c")));
    }

    #[test]
    fn memory_is_bounded_and_forgetting_repeats_rather_than_misses() {
        let mut f = StageFilter::new();
        for i in 0..MAX_OPEN_REQUESTS + 10 {
            assert!(f.should_detect(&record("ResponseStarted", &i.to_string())));
        }
        assert!(f.open.len() <= MAX_OPEN_REQUESTS);
        assert!(
            f.should_detect(&record("ResponseComplete", "0")),
            "forgotten: evaluated again"
        );
        assert!(!f.should_detect(&record(
            "ResponseComplete",
            &(MAX_OPEN_REQUESTS + 9).to_string()
        )));
    }
}
