//! Helpers shared by the benchmarks.

use std::time::{Duration, Instant};

use vigil_core::audit::{AuditParser, AuditRecord, Position};

/// Runs `f` `rounds` times and keeps the fastest round: on a shared machine the slowest
/// rounds measure the neighbours. Returns the time and what the last round returned.
pub fn best(rounds: usize, mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut n = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        n = f();
        best = best.min(t.elapsed());
    }
    (best, n)
}

/// Parses one line, appending its records to `out`. The generator writes no malformed line,
/// so a parse error is not expected and not counted.
pub fn parse_into(parser: &AuditParser, line: &[u8], out: &mut Vec<AuditRecord>) {
    let _ = parser.parse_line(
        line,
        Position {
            origin: "bench",
            offset: 0,
        },
        "t",
        out,
    );
}
