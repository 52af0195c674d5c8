//! The `vigil-agent` command.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vigil_agent::config::AgentConfig;
use vigil_agent::scan::{self, Format, ScanOptions};
use vigil_core::audit::{AuditConfig, AuditParser};
use vigil_core::detect::{DetectConfig, RuleSet, RuleSources, testing};

// A sixth of the pipeline's time went to the system allocator on the small strings of each
// event; mimalloc halves that (see the benchmark in the README).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Vigil's node agent: Kubernetes audit log → normalized events → Sigma detections → your
/// SIEM.
#[derive(Debug, Parser)]
#[command(name = "vigil-agent", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log format of the agent's own diagnostics (on stderr).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "VIGIL_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// Log filter, e.g. `info` or `vigil_agent=debug` (RUST_LOG syntax).
    #[arg(long, global = true, default_value = "info", env = "VIGIL_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read audit logs (any supported envelope: plain, EventList, EKS CloudWatch, AKS
    /// diagnostics, GKE Cloud Logging) and `docker events --format '{{json .}}'` dumps, and
    /// print normalized events or a detection report.
    ///
    /// Docker events are read without `docker inspect` (only `run` can call it), so the
    /// rules that need privileged mode, mounts, host namespaces or capabilities stay quiet.
    ///
    /// Malformed records are reported on stderr as FILE:LINE and counted in the summary.
    /// Exits 0 unless no input could be read, 2 on usage or rule errors.
    #[command(
        after_help = "Examples:\n  vigil-agent scan --format text examples/audit/attack-story.log\n  \
        vigil-agent scan --only-detections /var/log/kubernetes/audit/audit.log | jq .detections\n  \
        kubectl logs ... | vigil-agent scan -"
    )]
    Scan {
        /// Audit logs or Docker event dumps; `-` reads standard input.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Add the Sigma rules of this file or directory (repeatable).
        #[arg(long = "rules", value_name = "DIR")]
        rules: Vec<PathBuf>,
        /// Leave out the built-in rules.
        #[arg(long)]
        no_builtin_rules: bool,
        /// `json`: one `vigil.event/v1` object per line; `text`: detections and a summary.
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
        /// Print only events that fired a rule.
        #[arg(long)]
        only_detections: bool,
        /// Longest record read, in bytes; longer ones are skipped and counted.
        #[arg(long, default_value_t = 16 * 1024 * 1024)]
        max_line_bytes: usize,
        /// Cluster name to stamp on events.
        #[arg(long)]
        cluster: Option<String>,
    },
    /// Run the agent: tail the audit log, detect, ship, until SIGTERM or Ctrl-C.
    Run {
        /// The YAML configuration (see `vigil-agent config-schema` and the README).
        #[arg(long, short, value_name = "FILE", env = "VIGIL_CONFIG")]
        config: PathBuf,
    },
    /// List or test detection rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Print the JSON Schema of `vigil.event/v1` events.
    Schema,
    /// Print the JSON Schema of the configuration file.
    ConfigSchema,
    /// Check a configuration file and print it with every default filled in.
    CheckConfig {
        /// The YAML configuration.
        #[arg(value_name = "FILE")]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// List the rules that would be loaded: name, level, MITRE techniques, sources.
    List {
        /// Add the Sigma rules of this file or directory (repeatable).
        #[arg(long = "rules", value_name = "DIR")]
        rules: Vec<PathBuf>,
        /// Leave out the built-in rules.
        #[arg(long)]
        no_builtin_rules: bool,
    },
    /// Print the Wazuh manager rules file (vigil_rules.xml) for the rules that would be
    /// loaded: one Wazuh rule per Vigil rule with its level and MITRE ids, plus fallbacks
    /// by level for rules it does not name. See docs/wazuh.md.
    WazuhXml {
        /// Add the Sigma rules of this file or directory (repeatable).
        #[arg(long = "rules", value_name = "DIR")]
        rules: Vec<PathBuf>,
        /// Leave out the built-in rules.
        #[arg(long)]
        no_builtin_rules: bool,
        /// The file installed on the manager now: the rules it names keep their ids.
        #[arg(long, value_name = "FILE")]
        previous: Option<PathBuf>,
    },
    /// Run the rules of a directory against its test events (`DIR/tests/*.yml`) and list
    /// the rules without tests; exits 1 if any case fails. Only DIR's rules are loaded.
    Test {
        /// A directory of rules with a `tests/` subdirectory.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil-agent: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load_rules(
    paths: Vec<PathBuf>,
    no_builtin: bool,
    detect: DetectConfig,
) -> anyhow::Result<RuleSet> {
    let rules = RuleSet::load(&RuleSources { no_builtin, paths }).context("loading rules")?;
    Ok(rules.with_config(detect))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Scan {
            files,
            rules,
            no_builtin_rules,
            format,
            only_detections,
            max_line_bytes,
            cluster,
        } => {
            let rules = load_rules(rules, no_builtin_rules, DetectConfig::default())?;
            let parser = AuditParser::new(AuditConfig {
                cluster,
                ..AuditConfig::default()
            });
            let opts = ScanOptions {
                inputs: files,
                format,
                only_detections,
                max_line_bytes,
                max_reported_errors: 100,
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            let summary = match scan::scan(&opts, &rules, &parser, &mut out, &mut std::io::stderr())
            {
                Ok(s) => s,
                // The reader of our output went away (`| head`): not an error of ours.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Ok(ExitCode::SUCCESS);
                }
                Err(e) => return Err(e).context("scan"),
            };
            if format == Format::Json && summary.malformed_total() > 0 {
                eprintln!("{} malformed record(s) skipped", summary.malformed_total());
            }
            Ok(if summary.inputs_read == 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Run { config } => {
            let config = AgentConfig::load(&config)?;
            vigil_agent::run::run(config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules {
            command:
                RulesCommand::List {
                    rules,
                    no_builtin_rules,
                },
        } => {
            let rules = load_rules(rules, no_builtin_rules, DetectConfig::default())?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<34} {:>5}  {:<13} {:<22} title",
                "rule", "level", "severity", "mitre"
            )?;
            for r in rules.rules() {
                let sources: Vec<&str> = r.sources.iter().map(|s| s.as_str()).collect();
                writeln!(
                    out,
                    "{:<34} {:>5}  {:<13} {:<22} {} [{}]",
                    r.name,
                    r.level,
                    r.severity.as_str(),
                    r.mitre.join(","),
                    r.title,
                    if sources.len() > 4 {
                        "all sources".to_owned()
                    } else {
                        sources.join(",")
                    }
                )?;
            }
            writeln!(out, "\n{} rule(s)", rules.rules().len())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules {
            command:
                RulesCommand::WazuhXml {
                    rules,
                    no_builtin_rules,
                    previous,
                },
        } => {
            let rules = load_rules(rules, no_builtin_rules, DetectConfig::default())?;
            let previous = previous
                .map(|p| {
                    std::fs::read_to_string(&p)
                        .with_context(|| format!("cannot read {}", p.display()))
                })
                .transpose()?;
            let metas: Vec<&vigil_core::detect::RuleMeta> =
                rules.rules().iter().map(|r| r.as_ref()).collect();
            let xml =
                vigil_core::outputs::wazuh::manager_rules::render(&metas, previous.as_deref())?;
            std::io::stdout().lock().write_all(xml.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules {
            command: RulesCommand::Test { dir },
        } => {
            let rules = load_rules(vec![dir.clone()], true, DetectConfig::default())?;
            let report = testing::run_dir(&rules, &dir.join("tests"));
            let mut out = std::io::stdout().lock();
            for c in &report.cases {
                let verdict = if c.failure.is_some() { "FAIL" } else { "ok  " };
                let expect = if c.expect_fire { "fires" } else { "quiet" };
                writeln!(out, "{verdict} {:<34} {expect}  {}", c.rule, c.case)?;
                if let Some(f) = &c.failure {
                    writeln!(out, "       {f}  ({})", c.file.display())?;
                }
            }
            for (f, why) in &report.broken_files {
                writeln!(out, "FAIL {}: {why}", f.display())?;
            }
            let failed = report.failures().count();
            writeln!(
                out,
                "\n{} passed, {} failed",
                report.cases.len() - failed,
                failed + report.broken_files.len()
            )?;
            let untested = &report.untested_rules;
            if !untested.is_empty() {
                writeln!(
                    out,
                    "rules of {} without tests: {untested:?}",
                    dir.display()
                )?;
            }
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&vigil_core::event::json_schema())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::ConfigSchema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&vigil_agent::config::json_schema())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { config } => {
            let config = AgentConfig::load(&config)?;
            print!("{}", yaml_serde::to_string(&config)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
