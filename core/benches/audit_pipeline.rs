//! Audit pipeline throughput on one core (budget and figures: README, Performance):
//! parse → normalize → every built-in rule → null output, beside a bare serde_json DOM parse
//! of the same bytes in the same run.
//!
//! `cargo bench -p vigil-core --bench audit_pipeline` (env `VIGIL_BENCH_MB` sets the input
//! size, default 64 MB; `VIGIL_BENCH_ROUNDS` the rounds, default 5; the best round counts).
//!
//! Timings on a shared machine wander; instruction counts do not. `VIGIL_BENCH_ONLY=none`,
//! `dom`, `parse` or `pipeline` runs only input generation plus that stage once, for
//! `perf stat -e instructions:u` (subtract `none`, divide by the events).

use std::hint::black_box;

// The agent binary uses mimalloc too: the pipeline allocates a few dozen small strings per
// event, and the system allocator costs a sixth of the time on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use vigil_core::audit::synth::{SynthConfig, generate};
use vigil_core::audit::{AuditParser, Position, StageFilter};

mod support;
use support::{best, parse_into};
use vigil_core::detect::RuleSet;
use vigil_core::outputs::{NullOutput, Output};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let mb = env_usize("VIGIL_BENCH_MB", 64);
    let rounds = env_usize("VIGIL_BENCH_ROUNDS", 5);
    let input = generate(
        SynthConfig {
            seed: 42,
            attack_ratio: 0.01,
        },
        mb * 1_000_000,
    );
    let lines: Vec<&[u8]> = input
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let bytes = input.len() as f64;
    let rules = RuleSet::builtin().expect("built-in rules load");
    let parser = AuditParser::default();
    println!(
        "input: {} events, {:.1} MB, {:.0} bytes/event on average; {} rules",
        lines.len(),
        bytes / 1e6,
        bytes / lines.len() as f64,
        rules.rules().len()
    );

    if let Ok(only) = std::env::var("VIGIL_BENCH_ONLY") {
        let mut stages = StageFilter::new();
        let mut n = 0usize;
        for l in &lines {
            match only.as_str() {
                "dom" => n += usize::from(serde_json::from_slice::<serde_json::Value>(l).is_ok()),
                "parse" => {
                    let mut records = Vec::with_capacity(1);
                    parse_into(&parser, l, &mut records);
                    for r in records {
                        black_box(r.into_event());
                        n += 1;
                    }
                }
                "pipeline" => {
                    let mut records = Vec::with_capacity(1);
                    parse_into(&parser, l, &mut records);
                    for r in records {
                        let detections = rules.detect_audit(&r, &mut stages);
                        n += detections.len();
                        let mut e = r.into_event();
                        e.detections = detections;
                        black_box(e);
                    }
                }
                _ => {}
            }
        }
        println!("{only}: {n}");
        return;
    }
    let rate = |n: usize, t: Duration| n as f64 / t.as_secs_f64();
    let (t_dom, _) = best(rounds, || {
        let mut n = 0;
        for l in &lines {
            let v: serde_json::Value = serde_json::from_slice(l).expect("generated lines are JSON");
            black_box(&v);
            n += 1;
        }
        n
    });

    let (t_parse, _) = best(rounds, || {
        let mut records = Vec::with_capacity(1);
        let mut n = 0;
        for l in &lines {
            records.clear();
            parse_into(&parser, l, &mut records);
            n += records.len();
            black_box(&records);
        }
        n
    });

    // Records are parsed afresh (untimed) for each round: a rule that reads a raw field
    // builds the record's DOM once, and a reused record would hide that cost.
    let parse_all = || {
        let mut out = Vec::with_capacity(lines.len());
        for l in &lines {
            parse_into(&parser, l, &mut out);
        }
        out
    };
    let parsed = parse_all();
    let mut t_rules = Duration::MAX;
    for _ in 0..rounds {
        let fresh = parse_all();
        let t = Instant::now();
        let mut stages = StageFilter::new();
        let n: usize = fresh
            .iter()
            .map(|r| rules.detect_audit(r, &mut stages).len())
            .sum();
        t_rules = t_rules.min(t.elapsed());
        black_box(n);
    }
    if std::env::var_os("VIGIL_BENCH_COUNTS").is_some() {
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for r in &parsed {
            for d in rules.detect_audit(r, &mut StageFilter::new()) {
                *counts.entry(d.rule).or_default() += 1;
            }
        }
        println!("detections per rule: {counts:?}");
    }
    if std::env::var_os("VIGIL_BENCH_PER_RULE").is_some() {
        for (file, text) in vigil_core::detect::BUILTIN_RULES {
            let only =
                RuleSet::from_documents(&[((*file).to_owned(), (*text).to_owned())]).expect("rule");
            let (t, _) = best(rounds, || {
                let mut n = 0;
                for r in &parsed {
                    n += only.detect_audit(r, &mut StageFilter::new()).len();
                }
                black_box(n)
            });
            println!(
                "  {:<40} {:>8.0} ns/event",
                file,
                t.as_nanos() as f64 / parsed.len() as f64
            );
        }
    }
    drop(parsed);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut detections = 0usize;
    let (t_full, events) = best(rounds, || {
        let mut out = NullOutput::default();
        let mut stages = StageFilter::new();
        let mut records = Vec::with_capacity(1);
        let mut batch = Vec::with_capacity(512);
        let ingest = vigil_core::timestamp::now();
        let mut offset = 0u64;
        detections = 0;
        for l in &lines {
            records.clear();
            let pos = Position {
                origin: "bench",
                offset,
            };
            offset += l.len() as u64 + 1;
            if parser.parse_line(l, pos, &ingest, &mut records).is_err() {
                continue;
            }
            for r in records.drain(..) {
                let d = rules.detect_audit(&r, &mut stages);
                detections += d.len();
                let mut e = r.into_event();
                e.detections = d;
                batch.push(e);
            }
            if batch.len() == 512 {
                runtime.block_on(out.send(&batch)).expect("null output");
                batch.clear();
            }
        }
        runtime.block_on(out.send(&batch)).expect("null output");
        out.events as usize
    });

    let dom = rate(lines.len(), t_dom);
    let full = rate(events, t_full);
    println!(
        "{:<48} {:>12} {:>10}",
        "stage (one core, best of rounds)", "events/s", "MB/s"
    );
    println!(
        "{:<48} {:>12.0} {:>10.1}",
        "bare serde_json DOM parse",
        dom,
        bytes / t_dom.as_secs_f64() / 1e6
    );
    println!(
        "{:<48} {:>12.0} {:>10.1}",
        "parse+normalize+redact, no rules",
        rate(lines.len(), t_parse),
        bytes / t_parse.as_secs_f64() / 1e6
    );
    println!(
        "{:<48} {:>12.0} {:>10.1}",
        "all rules alone, on parsed events",
        rate(lines.len(), t_rules),
        bytes / t_rules.as_secs_f64() / 1e6
    );
    println!(
        "{:<48} {:>12.0} {:>10.1}",
        "parse+normalize+all rules+null output",
        full,
        bytes / t_full.as_secs_f64() / 1e6
    );
    println!(
        "pipeline / bare parse = {:.2}; detections: {detections} ({:.2}% of events)",
        full / dom,
        100.0 * detections as f64 / events.max(1) as f64
    );
}
