//! `vigil-agent scan`: the detections of the live pipeline, offline, on files.
//!
//! Input is read as JSON lines; a file whose first record spans several lines (a
//! pretty-printed `EventList` or envelope) is read as a sequence of JSON documents instead.
//! Each record is a Kubernetes audit event (any envelope) or a Docker engine event (a
//! `docker events --format '{{json .}}'` dump, or the Engine API's `/events` stream), told
//! apart record by record, so one input may mix both. Docker events are read without
//! `docker inspect`, which only the live source can call: the facts it adds (privileged,
//! bind mounts, host namespaces, capabilities, health checks) are missing, and the rules that
//! need them stay quiet. Malformed records are reported with file:line on stderr and counted,
//! never fatal.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use vigil_core::audit::{AuditParser, AuditRecord, LineOutcome, Position, StageFilter};
use vigil_core::detect::RuleSet;
use vigil_core::event::{Detection, Event};
use vigil_core::logs::{LogContext, LogFormat, LogPath, Reassembler, Stream, message_event};
use vigil_core::outputs::encode_json_line;
use vigil_core::runtime::{DockerError, DockerParser, docker::looks_like_docker_event};

use crate::lines::read_line_capped;

/// How to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One normalized event per line (`vigil.event/v1`).
    Json,
    /// A readable report: each detection, then a summary per rule.
    Text,
}

/// Settings of a scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Files to read; `-` is standard input.
    pub inputs: Vec<PathBuf>,
    /// Output format.
    pub format: Format,
    /// Print only events that fired a rule.
    pub only_detections: bool,
    /// Longest record read; longer ones are reported as malformed.
    pub max_line_bytes: usize,
    /// At most this many malformed records are reported one by one on stderr; the rest are
    /// only counted.
    pub max_reported_errors: usize,
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct ScanSummary {
    /// Inputs that could be opened.
    pub inputs_read: usize,
    /// Inputs that could not.
    pub inputs_failed: usize,
    /// Records read.
    pub records: u64,
    /// Events produced.
    pub events: u64,
    /// Malformed records and batch items, by kind.
    pub malformed: BTreeMap<&'static str, u64>,
    /// Detections per rule: (count, the detection).
    pub by_rule: BTreeMap<String, (u64, Detection)>,
    /// Docker engine events among the events (read without inspect).
    pub docker_events: u64,
    /// Lines of container log files (CRI or Docker json-file).
    pub log_lines: u64,
}

impl ScanSummary {
    /// Malformed records in all.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.values().sum()
    }
}

/// Document mode reads a whole input into memory; beyond this it is refused.
const MAX_DOCUMENT_BYTES: u64 = 256 * 1024 * 1024;

/// Runs a scan, writing events or the report to `out` and problems to `err`.
pub fn scan(
    opts: &ScanOptions,
    rules: &RuleSet,
    parser: &AuditParser,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<ScanSummary> {
    let mut s = Scanner {
        opts,
        rules,
        parser,
        out,
        err,
        summary: ScanSummary::default(),
        reported: 0,
        buf: Vec::new(),
        stages: StageFilter::new(),
        docker: DockerParser {
            max_event_bytes: opts.max_line_bytes,
            cluster: parser.config().cluster.clone(),
            ..DockerParser::default()
        },
    };
    let ingest_time = vigil_core::timestamp::now();
    for input in &opts.inputs {
        let name = input.display().to_string();
        let reader: Box<dyn Read> = if name == "-" {
            Box::new(io::stdin().lock())
        } else {
            match File::open(input) {
                Ok(f) => Box::new(f),
                Err(e) => {
                    writeln!(s.err, "{name}: cannot open: {e}")?;
                    s.summary.inputs_failed += 1;
                    continue;
                }
            }
        };
        s.summary.inputs_read += 1;
        s.scan_input(
            &name,
            BufReader::with_capacity(256 * 1024, reader),
            &ingest_time,
        )?;
    }
    if opts.format == Format::Text {
        s.write_summary()?;
    } else if s.summary.docker_events > 0 {
        writeln!(s.err, "{}", docker_note(s.summary.docker_events))?;
    }
    s.out.flush()?;
    Ok(s.summary)
}

struct Scanner<'a> {
    opts: &'a ScanOptions,
    rules: &'a RuleSet,
    parser: &'a AuditParser,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    summary: ScanSummary,
    reported: usize,
    buf: Vec<u8>,
    stages: StageFilter,
    docker: DockerParser,
}

/// The container log format of a file whose first record is `line`, if it is one.
fn log_format(line: &[u8]) -> Option<LogFormat> {
    let format = LogFormat::detect(line)?;
    format.parse(line).ok().map(|_| format)
}

/// What a scan of Docker events cannot see.
fn docker_note(n: u64) -> String {
    format!(
        "note: {n} Docker event(s) read without `docker inspect` (only `vigil-agent run` can \
         call it): privileged mode, bind mounts, host namespaces, added capabilities and \
         health-check execs are unknown, so the rules that need them do not fire"
    )
}

impl Scanner<'_> {
    /// A Docker engine event, if the record is one: `Some(Ok)` emitted, `Some(Err)` a
    /// malformed engine event, `None` not an engine event (read it as audit).
    fn try_docker(
        &mut self,
        record: &[u8],
        ingest_time: &str,
    ) -> io::Result<Option<Result<(), DockerError>>> {
        if !looks_like_docker_event(record) {
            return Ok(None);
        }
        match self.docker.parse(record, ingest_time) {
            Ok(d) => {
                self.summary.docker_events += 1;
                let detections = self.rules.detect(&d.event, None);
                let mut event = d.event;
                event.detections = detections;
                self.emit_event(event)?;
                Ok(Some(Ok(())))
            }
            Err(DockerError::NotDocker(_)) => Ok(None),
            Err(e) => Ok(Some(Err(e))),
        }
    }

    fn scan_input(
        &mut self,
        name: &str,
        mut reader: impl BufRead,
        ingest_time: &str,
    ) -> io::Result<()> {
        let mut line = Vec::new();
        let mut offset = 0u64;
        let mut line_no = 0u64;
        let mut records = Vec::new();
        let mut first_record = true;
        loop {
            let (consumed, truncated) =
                read_line_capped(&mut reader, &mut line, self.opts.max_line_bytes)?;
            if consumed == 0 {
                return Ok(());
            }
            line_no += 1;
            let start = offset;
            offset += consumed as u64;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.summary.records += 1;
            if truncated {
                self.malformed(
                    name,
                    line_no,
                    "oversize",
                    &format!("record longer than {} bytes", self.opts.max_line_bytes),
                )?;
                continue;
            }
            if first_record {
                first_record = false;
                // A container's log file (CRI or Docker json-file) is told by its first
                // record: an audit or engine event is neither a CRI line nor a
                // `{"log","stream","time"}` object.
                if let Some(format) = log_format(&line) {
                    self.summary.records -= 1;
                    let first = std::mem::take(&mut line);
                    return self.scan_log(
                        name,
                        format,
                        (first, start, consumed as u64, line_no),
                        reader,
                        ingest_time,
                    );
                }
            }
            match self.try_docker(&line, ingest_time)? {
                Some(Ok(())) => continue,
                Some(Err(e)) => {
                    self.malformed(name, line_no, e.kind(), &e.to_string())?;
                    continue;
                }
                None => {}
            }
            records.clear();
            match self.parser.parse_line(
                &line,
                Position {
                    origin: name,
                    offset: start,
                },
                ingest_time,
                &mut records,
            ) {
                Ok(outcome) => self.accept(name, line_no, &outcome, &mut records)?,
                // The first record of the input does not end on its line: a pretty-printed
                // document. Read the rest as a stream of JSON documents.
                Err(vigil_core::audit::AuditError::Json(e)) if e.is_eof() && line_no == 1 => {
                    self.summary.records -= 1;
                    let mut whole = line.clone();
                    whole.push(b'\n');
                    reader.take(MAX_DOCUMENT_BYTES).read_to_end(&mut whole)?;
                    return self.scan_documents(name, &whole, ingest_time);
                }
                Err(e) => self.malformed(name, line_no, e.kind(), &e.to_string())?,
            }
        }
    }

    /// Reads a container log file: every line parsed in its format, partial lines joined
    /// into messages, each message an event with the container facts of the file's path
    /// (namespace, pod, container from `/var/log/pods/...`, the id from Docker's layout) and
    /// the log rules applied. A message still open at the end of the file is emitted cut.
    fn scan_log(
        &mut self,
        name: &str,
        format: LogFormat,
        first: (Vec<u8>, u64, u64, u64),
        mut reader: impl BufRead,
        ingest_time: &str,
    ) -> io::Result<()> {
        let container = LogPath::parse(std::path::Path::new(name)).map(|p| p.container());
        let ctx = LogContext {
            cluster: self.parser.config().cluster.clone(),
            node: None,
            container,
            file: name.to_owned(),
            origin: name.to_owned(),
        };
        let mut reassembler = Reassembler::new(self.opts.max_line_bytes);
        let (mut line, mut offset, consumed, mut line_no) = first;
        let mut consumed = consumed;
        loop {
            self.summary.records += 1;
            self.summary.log_lines += 1;
            let start = offset;
            offset += consumed;
            let this = LogFormat::detect(&line).unwrap_or(format);
            match this.parse(&line) {
                Ok(parsed) => {
                    if let Some(msg) = reassembler.push(&parsed, start) {
                        let event = message_event(&msg, &ctx, ingest_time);
                        self.emit_log_event(name, line_no, event)?;
                    }
                }
                Err(e) => self.malformed(name, line_no, e.kind(), &e.to_string())?,
            }
            loop {
                let (n, truncated) =
                    read_line_capped(&mut reader, &mut line, self.opts.max_line_bytes)?;
                if n == 0 {
                    for stream in [Stream::Stdout, Stream::Stderr] {
                        if let Some(msg) = reassembler.finish(stream) {
                            let event = message_event(&msg, &ctx, ingest_time);
                            self.emit_log_event(name, line_no, event)?;
                        }
                    }
                    return Ok(());
                }
                line_no += 1;
                consumed = n as u64;
                if line.iter().all(u8::is_ascii_whitespace) {
                    offset += consumed;
                    continue;
                }
                if truncated {
                    self.summary.records += 1;
                    offset += consumed;
                    self.malformed(
                        name,
                        line_no,
                        "oversize",
                        &format!("line longer than {} bytes", self.opts.max_line_bytes),
                    )?;
                    continue;
                }
                break;
            }
        }
    }

    fn emit_log_event(
        &mut self,
        name: &str,
        line_no: u64,
        event: Result<Event, vigil_core::logs::LogParseError>,
    ) -> io::Result<()> {
        match event {
            Ok(mut event) => {
                event.detections = self.rules.detect(&event, None);
                self.emit_event(event)
            }
            Err(e) => self.malformed(name, line_no, e.kind(), &e.to_string()),
        }
    }

    fn scan_documents(&mut self, name: &str, bytes: &[u8], ingest_time: &str) -> io::Result<()> {
        let stream =
            serde_json::Deserializer::from_slice(bytes).into_iter::<&serde_json::value::RawValue>();
        let mut records = Vec::new();
        for item in stream {
            self.summary.records += 1;
            match item {
                Ok(raw) => {
                    let start = raw.get().as_ptr() as usize - bytes.as_ptr() as usize;
                    let line_no = 1 + bytes[..start].iter().filter(|b| **b == b'\n').count() as u64;
                    match self.try_docker(raw.get().as_bytes(), ingest_time)? {
                        Some(Ok(())) => continue,
                        Some(Err(e)) => {
                            self.malformed(name, line_no, e.kind(), &e.to_string())?;
                            continue;
                        }
                        None => {}
                    }
                    records.clear();
                    let pos = Position {
                        origin: name,
                        offset: start as u64,
                    };
                    match self.parser.parse_line(
                        raw.get().as_bytes(),
                        pos,
                        ingest_time,
                        &mut records,
                    ) {
                        Ok(outcome) => self.accept(name, line_no, &outcome, &mut records)?,
                        Err(e) => self.malformed(name, line_no, e.kind(), &e.to_string())?,
                    }
                }
                Err(e) => {
                    // A stream cannot resynchronize after a syntax error.
                    self.malformed(
                        name,
                        e.line() as u64,
                        "invalid_json",
                        &format!("invalid JSON: {e}; rest of input skipped"),
                    )?;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Reports the skipped items of a parsed record and emits its events.
    fn accept(
        &mut self,
        name: &str,
        line_no: u64,
        outcome: &LineOutcome,
        records: &mut Vec<AuditRecord>,
    ) -> io::Result<()> {
        for e in &outcome.skipped {
            self.malformed(name, line_no, e.kind(), &e.to_string())?;
        }
        self.emit(records)
    }

    fn emit(&mut self, records: &mut Vec<AuditRecord>) -> io::Result<()> {
        for record in records.drain(..) {
            let detections = self.rules.detect_audit(&record, &mut self.stages);
            let mut event = record.into_event();
            event.detections = detections;
            self.emit_event(event)?;
        }
        Ok(())
    }

    fn emit_event(&mut self, event: Event) -> io::Result<()> {
        self.summary.events += 1;
        for d in &event.detections {
            self.summary
                .by_rule
                .entry(d.rule.clone())
                .or_insert_with(|| (0, d.clone()))
                .0 += 1;
        }
        if self.opts.only_detections && event.detections.is_empty() {
            return Ok(());
        }
        match self.opts.format {
            Format::Json => {
                self.buf.clear();
                encode_json_line(&event, &mut self.buf).map_err(io::Error::other)?;
                self.out.write_all(&self.buf)?;
            }
            Format::Text if !event.detections.is_empty() => write_detection_line(self.out, &event)?,
            Format::Text => {}
        }
        Ok(())
    }

    fn malformed(
        &mut self,
        name: &str,
        line: u64,
        kind: &'static str,
        message: &str,
    ) -> io::Result<()> {
        *self.summary.malformed.entry(kind).or_default() += 1;
        self.reported += 1;
        if self.reported <= self.opts.max_reported_errors {
            writeln!(self.err, "{name}:{line}: skipped: {message}")?;
        } else if self.reported == self.opts.max_reported_errors + 1 {
            writeln!(
                self.err,
                "(further malformed records are only counted in the summary)"
            )?;
        }
        Ok(())
    }

    fn write_summary(&mut self) -> io::Result<()> {
        let s = &self.summary;
        writeln!(self.out)?;
        writeln!(
            self.out,
            "Summary: {} input(s), {} record(s), {} event(s), {} detection(s), {} malformed",
            s.inputs_read,
            s.records,
            s.events,
            s.by_rule.values().map(|(n, _)| n).sum::<u64>(),
            s.malformed_total()
        )?;
        if !s.by_rule.is_empty() {
            writeln!(
                self.out,
                "\n  {:>5}  {:>5}  {:<34} title",
                "count", "level", "rule"
            )?;
            let mut rows: Vec<_> = s.by_rule.iter().collect();
            rows.sort_by(|a, b| b.1.1.level.cmp(&a.1.1.level).then(a.0.cmp(b.0)));
            for (rule, (n, d)) in rows {
                writeln!(self.out, "  {n:>5}  {:>5}  {rule:<34} {}", d.level, d.title)?;
            }
        }
        if s.docker_events > 0 {
            writeln!(self.out, "\n  {}", docker_note(s.docker_events))?;
        }
        if !s.malformed.is_empty() {
            let kinds: Vec<String> = s
                .malformed
                .iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect();
            writeln!(
                self.out,
                "\n  malformed records skipped: {}",
                kinds.join(", ")
            )?;
        }
        Ok(())
    }
}

/// `time  [level severity] rule  who → what`.
fn write_detection_line(out: &mut dyn Write, e: &Event) -> io::Result<()> {
    let who = e.actor.user.as_deref().unwrap_or(match e.source {
        vigil_core::event::Source::Docker => "docker",
        _ => "?",
    });
    let mut what = e.action.clone();
    let o = &e.object;
    if let Some(r) = &o.resource {
        what.push(' ');
        what.push_str(r);
        if let Some(sub) = &o.subresource {
            what.push('/');
            what.push_str(sub);
        }
    }
    match (&o.namespace, &o.name) {
        (Some(ns), Some(n)) => what.push_str(&format!(" {ns}/{n}")),
        (None, Some(n)) => what.push_str(&format!(" {n}")),
        (Some(ns), None) => what.push_str(&format!(" in {ns}")),
        (None, None) if o.resource.is_some() => what.push_str(" (cluster-wide)"),
        (None, None) => {}
    }
    if let Some(cmd) = e.process.as_ref().and_then(|p| p.command_line.as_deref()) {
        what.push_str(&format!(": {cmd}"));
    }
    if e.outcome == vigil_core::event::Outcome::Failure {
        what.push_str(" [denied]");
    }
    for d in &e.detections {
        writeln!(
            out,
            "{}  [{:>2} {:<8}] {:<32} {who} → {what}",
            e.time,
            d.level,
            d.severity.as_str(),
            d.rule
        )?;
    }
    Ok(())
}
