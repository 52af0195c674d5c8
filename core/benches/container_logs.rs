//! Container log throughput on one core (budget and figures: README, Performance): CRI lines
//! → parse → reassemble → enrich (a full `vigil.event/v1` event) → dropped (null output), in
//! MB/s and lines/s; beside it the parse alone, the same plus the JSON encoding a file or
//! remote output does, and the same plus the built-in log rules.
//!
//! `cargo bench -p vigil-core --bench container_logs` (env `VIGIL_BENCH_LINES` sets the
//! input size, default 200,000 messages; `VIGIL_BENCH_ROUNDS` the rounds, default 5; the
//! best round counts).
//!
//! The lines are split before the clock starts, as the tail engine hands them over already
//! split. Timings on a shared machine wander; instruction counts do not.
//! `VIGIL_BENCH_ONLY=none`, `parse`, `pipeline`, `json` or `rules` runs only input
//! generation plus that stage once, for `valgrind --tool=callgrind` or
//! `perf stat -e instructions:u` (subtract `none`, divide by the lines).

use std::hint::black_box;
use std::time::Duration;

// The agent binary uses mimalloc too; every event is a dozen small strings, so the
// allocator is a visible share of the cost and must be the one the agent runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use vigil_core::detect::RuleSet;
use vigil_core::event::{Container, PodRef};
use vigil_core::logs::{LogContext, LogFormat, Reassembler, message_event};
use vigil_core::outputs::encode_json_line;

#[allow(dead_code)]
mod support;

/// A realistic mix: nginx access lines, JSON application logs, stack-trace lines, and one
/// long message in four `P` parts every 50 lines.
fn corpus(lines: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..lines {
        let frac = format!("{:09}", (i * 7919) % 1_000_000_000);
        let ts = format!("2024-05-02T10:15:{:02}.{frac}Z", i % 60);
        match i % 50 {
            0 => {
                for part in 0..3 {
                    out.extend_from_slice(format!("{ts} stdout P chunk{part}-{}", "y".repeat(300)).as_bytes());
                    out.push(b'\n');
                }
                out.extend_from_slice(format!("{ts} stdout F end\n").as_bytes());
            }
            n if n % 3 == 0 => out.extend_from_slice(format!(
                "{ts} stdout F 10.244.{}.{} - - [02/May/2024:10:15:30 +0000] \"GET /api/v1/items/{i}?page=2 HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"\n",
                i % 255, (i * 3) % 255, 512 + i % 4096).as_bytes()),
            n if n % 3 == 1 => out.extend_from_slice(format!(
                "{ts} stderr F {{\"level\":\"info\",\"ts\":\"2024-05-02T10:15:30Z\",\"msg\":\"request handled\",\"request_id\":\"{i:016x}\",\"duration_ms\":{}}}\n",
                i % 97).as_bytes()),
            _ => out.extend_from_slice(format!("{ts} stderr F     at com.example.shop.Handler.process(Handler.java:{})\n", i % 400).as_bytes()),
        }
    }
    out
}

/// Each line (without its newline) with its offset, as the tail engine yields them.
fn split(data: &[u8]) -> Vec<(u64, &[u8])> {
    let mut lines = Vec::new();
    let mut offset = 0u64;
    for line in data.split(|&b| b == b'\n') {
        if !line.is_empty() {
            lines.push((offset, line));
        }
        offset += line.len() as u64 + 1;
    }
    lines
}

fn context() -> LogContext {
    LogContext {
        cluster: Some("prod".into()),
        node: Some("node-1".into()),
        container: Some(Container {
            name: Some("web".into()),
            pod: Some(PodRef {
                namespace: Some("shop".into()),
                name: Some("web-7c9f8d6b5-x2kqz".into()),
                uid: Some("0f1e2d3c-aaaa-bbbb-cccc-1234567890ab".into()),
            }),
            ..Container::default()
        }),
        file: "/var/log/pods/shop_web-7c9f8d6b5-x2kqz_0f1e2d3c/web/0.log".into(),
        origin: "9f86d081884c7d65".into(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Stage {
    Pipeline,
    Json,
    Rules,
}

fn run(lines: &[(u64, &[u8])], stage: Stage, rules: Option<&RuleSet>) -> usize {
    let ctx = context();
    let mut r = Reassembler::new(60 * 1024);
    let mut json = Vec::with_capacity(64 * 1024);
    let mut n = 0;
    for &(at, line) in lines {
        let format = LogFormat::detect(line).unwrap_or(LogFormat::Cri);
        let Ok(parsed) = format.parse(line) else {
            continue;
        };
        if let Some(msg) = r.push(&parsed, at)
            && let Ok(mut e) = message_event(&msg, &ctx, "2024-05-02T10:15:31.000000000Z")
        {
            match stage {
                Stage::Pipeline => {}
                Stage::Json => {
                    // A batch buffer as the outputs keep one, emptied when it fills.
                    if json.len() > 60 * 1024 {
                        black_box(&json);
                        json.clear();
                    }
                    let _ = encode_json_line(&e, &mut json);
                }
                Stage::Rules => {
                    if let Some(rules) = rules {
                        e.detections = rules.detect(&e, None);
                    }
                }
            }
            black_box(e);
            n += 1;
        }
    }
    n
}

fn parse_only(lines: &[(u64, &[u8])]) -> usize {
    let mut n = 0;
    for &(_, line) in lines {
        if let Ok(l) = vigil_core::logs::parse_cri(line) {
            black_box(&l);
            n += 1;
        }
    }
    n
}

fn report(name: &str, bytes: usize, lines: usize, events: usize, t: Duration) {
    let s = t.as_secs_f64();
    println!(
        "{name}: {:.0} MB/s, {:.0} lines/s, {:.0} events/s ({bytes} bytes, {lines} lines in {:.1} ms)",
        bytes as f64 / s / 1e6,
        lines as f64 / s,
        events as f64 / s,
        s * 1e3
    );
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let data = corpus(env_usize("VIGIL_BENCH_LINES", 200_000));
    let rounds = env_usize("VIGIL_BENCH_ROUNDS", 5);
    let lines = split(&data);
    let rules = RuleSet::builtin().unwrap_or_else(|e| panic!("built-in rules: {e}"));
    if let Ok(only) = std::env::var("VIGIL_BENCH_ONLY") {
        let n = match only.as_str() {
            "parse" => parse_only(&lines),
            "pipeline" => run(&lines, Stage::Pipeline, None),
            "json" => run(&lines, Stage::Json, None),
            "rules" => run(&lines, Stage::Rules, Some(&rules)),
            _ => 0,
        };
        println!("{only}: {n} of {} lines", lines.len());
        return;
    }
    let (bytes, count) = (data.len(), lines.len());
    let (t, n) = support::best(rounds, || parse_only(&lines));
    report("CRI parse only", bytes, count, n, t);
    let (t, n) = support::best(rounds, || run(&lines, Stage::Pipeline, None));
    report(
        "CRI parse + reassemble + enrich -> null",
        bytes,
        count,
        n,
        t,
    );
    let (t, n) = support::best(rounds, || run(&lines, Stage::Json, None));
    report("... + JSON encoding (file output)", bytes, count, n, t);
    let (t, n) = support::best(rounds.min(3), || run(&lines, Stage::Rules, Some(&rules)));
    report("... + built-in rules", bytes, count, n, t);
}
