//! The `vigil-operator` command.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vigil_operator::console::{self, ConsoleConfig, ConsoleMetrics, ConsoleServer};
use vigil_operator::controller::{self, Metrics, http, leader};
use vigil_operator::crd;
use vigil_operator::manifests;
use vigil_operator::render::{self, Catalog, ProblemKind, Rendered};
use vigil_operator::webhook::{self, WebhookConfig, WebhookMetrics};

/// Vigil's operator: ContainerMonitor resources → the cluster audit policy and the agents'
/// per-namespace configuration.
#[derive(Debug, Parser)]
#[command(name = "vigil-operator", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log format of the operator's own diagnostics (on stderr).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "VIGIL_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// Log filter, e.g. `info` or `vigil_operator=debug` (RUST_LOG syntax).
    #[arg(long, global = true, default_value = "warn", env = "VIGIL_LOG")]
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
    /// Print the ContainerMonitor CustomResourceDefinition (YAML), for `kubectl apply -f -`.
    #[command(after_help = "Example:\n  vigil-operator crd | kubectl apply -f -")]
    Crd,
    /// Render the cluster audit policy and the agents' per-namespace configuration offline
    /// from ContainerMonitor manifests, exactly as the operator does in the cluster.
    ///
    /// Files may hold several YAML documents; documents of other kinds are skipped, so a
    /// whole GitOps directory's manifests can be passed. Without --out, the policy is
    /// printed, then one document per namespace with its agent configuration.
    ///
    /// What was refused, clamped by the cluster baseline or overridden by another monitor of
    /// the namespace is reported on stderr, per ContainerMonitor. Exit status: 0 when every
    /// monitor rendered (warnings allowed), 1 when a part of some monitor was refused (the
    /// output is still written, without that part), 2 when an input could not be read.
    #[command(
        after_help = "Examples:\n  vigil-operator render -f deploy/monitors/ -f team-a.yaml\n  \
        vigil-operator render -f monitors.yaml --out rendered/\n    \
        writes rendered/audit-policy.yaml, rendered/audit-policy.sha256 and\n    \
        rendered/agent/NAMESPACE.yaml"
    )]
    Render {
        /// ContainerMonitor manifests: YAML files, or directories searched for *.yaml and
        /// *.yml (repeatable); `-` reads standard input.
        #[arg(short = 'f', long = "filename", required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Write the output files to this directory instead of printing them.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Namespace of monitors whose manifest names none.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
    /// Run in the cluster: watch every ContainerMonitor, publish the audit policy and the
    /// agents' configuration as ConfigMaps, and keep each monitor's status true.
    ///
    /// With leader election (the default), any number of replicas may run: one writes, the
    /// others stand by. Every replica serves /metrics, /healthz and /readyz, the audit
    /// webhook collector when --webhook-config is given, and the console when
    /// --console-config is given. Stops on SIGTERM or Ctrl-C,
    /// releasing the Lease so the standby takes over at once.
    #[command(after_help = "Example (in the cluster, see deploy/):\n  \
        vigil-operator run --namespace vigil-system --log info\n\
        Out of the cluster, the client reads KUBECONFIG or ~/.kube/config.")]
    Run(RunArgs),
    /// Run only the console, outside Kubernetes: the store, the pages, the ingest endpoint
    /// and the notifications, for agents on Docker hosts or a trial on one machine.
    ///
    /// The configuration is the one `run --console-config` reads (docs/console.md), except
    /// `auth.token_review`, which needs an API server. With no leader election, this
    /// process always notifies; the monitors page says that no Kubernetes API is
    /// reachable. Stops on SIGTERM or Ctrl-C.
    #[command(
        after_help = "Example:\n  vigil-operator console --config examples/console/console.yaml\n  \
        then open http://127.0.0.1:8443 and log in with a token of its viewer_token_files"
    )]
    Console {
        /// The console's configuration (YAML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Print a Secret (YAML) with a new CA and the console's certificate signed by it, for
    /// `operator.console.tls.secretName`: `tls.crt`, `tls.key` and `ca.crt`.
    ///
    /// The certificate names the console Service and the replicas' headless Service (short
    /// and full forms) and localhost, for `kubectl port-forward`. The CA's key is not kept:
    /// to renew, run it again and restart the operator and the agents.
    #[command(after_help = "Example (release `vigil` in namespace vigil-system):
          vigil-operator console-cert --namespace vigil-system | kubectl apply -f -")]
    ConsoleCert {
        /// Namespace of the release.
        #[arg(long, default_value = "vigil-system")]
        namespace: String,
        /// The console Service's name (`<release>-operator-console`).
        #[arg(long, default_value = "vigil-operator-console")]
        service: String,
        /// The Secret's name.
        #[arg(long, default_value = "vigil-console-tls")]
        secret_name: String,
        /// Days the certificates are valid.
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Namespace of the operator's ConfigMaps and Lease. Default: the service account's
    /// namespace in a pod, else `vigil-system`.
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: Option<String>,
    /// ConfigMap of the audit policy (keys `policy.yaml`, `hash`).
    #[arg(long, default_value = "vigil-audit-policy")]
    policy_configmap: String,
    /// ConfigMap of the agents' configuration (a key `NAMESPACE.yaml` per namespace).
    #[arg(long, default_value = "vigil-agent-config")]
    agent_configmap: String,
    /// ConfigMap where agents report the policy they applied (key: node, value: hash).
    #[arg(long, default_value = "vigil-policy-status")]
    status_configmap: String,
    /// Label key of control-plane nodes, the nodes whose agents install the policy.
    #[arg(long, default_value = "node-role.kubernetes.io/control-plane")]
    control_plane_label: String,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: std::net::SocketAddr,
    /// Elect a leader through a Lease; `false` only when exactly one replica runs.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Name of the leader Lease.
    #[arg(long, default_value = "vigil-operator")]
    lease_name: String,
    /// This replica's identity in the Lease and in Events. Default: the host name (the
    /// pod name in a pod).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds without renewal after which the standby takes the Lease.
    #[arg(long, default_value_t = 15)]
    lease_duration: u64,
    /// How often, in seconds, the ConfigMaps are checked (hand edits undone) and the
    /// statuses re-derived without any change.
    #[arg(long, default_value_t = 300)]
    resync_secs: u64,
    /// The audit webhook collector's configuration (YAML); without it no collector runs.
    #[arg(long, value_name = "FILE")]
    webhook_config: Option<PathBuf>,
    /// The console's configuration (YAML: store, listen address, TLS, tokens,
    /// notifications; see docs/console.md); without it no console runs.
    #[arg(long, value_name = "FILE")]
    console_config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log);
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil-operator: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Crd => {
            let yaml = crd::crd_yaml().context("cannot serialize the CRD")?;
            std::io::stdout().write_all(yaml.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Render {
            files,
            out,
            namespace,
        } => render_files(&files, out.as_deref(), &namespace),
        Command::Console { config } => {
            let text = std::fs::read_to_string(&config)
                .with_context(|| format!("cannot read {}", config.display()))?;
            let cfg: ConsoleConfig = yaml_serde::from_str(&text)
                .with_context(|| format!("invalid console configuration {}", config.display()))?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(async {
                let server = ConsoleServer::bind(
                    cfg,
                    Arc::new(|| true),
                    None,
                    Arc::new(ConsoleMetrics::default()),
                )
                .await
                .with_context(|| format!("console ({})", config.display()))?;
                eprintln!(
                    "vigil-operator: console listening on {}",
                    server.local_addr().context("the console's address")?
                );
                server.run(shutdown_signal()).await;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ConsoleCert {
            namespace,
            service,
            secret_name,
            days,
        } => {
            let req = console::cert::CertRequest {
                peers_service: format!("{service}-peers"),
                namespace,
                service,
                secret_name,
                days,
            };
            let yaml = console::cert::console_secret(&req)?;
            std::io::stdout().write_all(yaml.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(operate(args))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Where a pod's service account token lives; its namespace file names the pod's namespace.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

async fn operate(args: RunArgs) -> anyhow::Result<()> {
    let namespace = match args.namespace {
        Some(ns) => ns,
        None => std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "vigil-system".to_owned()),
    };
    let identity = match args.identity {
        Some(id) => id,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_owned())
            .context("no --identity and the host name is unreadable")?,
    };
    let mut config = controller::Config::new(namespace);
    config.policy_configmap = args.policy_configmap;
    config.agent_configmap = args.agent_configmap;
    config.status_configmap = args.status_configmap;
    config.control_plane_label = args.control_plane_label;
    config.resync = std::time::Duration::from_secs(args.resync_secs.max(1));
    config.instance = Some(identity.clone());

    let client = kube::Client::try_default().await.context(
        "cannot configure the Kubernetes client (in-cluster service account or KUBECONFIG)",
    )?;
    let metrics = Arc::new(Metrics::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    // THE WEBHOOK COLLECTOR: every replica serves it, leader or not.
    let webhook_metrics = Arc::new(WebhookMetrics::default());
    let webhook_config: Option<WebhookConfig> = match &args.webhook_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(
                yaml_serde::from_str(&text)
                    .with_context(|| format!("invalid webhook configuration {}", path.display()))?,
            )
        }
        None => None,
    };
    // THE CONSOLE: every replica serves it; only the leader notifies.
    let console = match &args.console_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let cfg: ConsoleConfig = yaml_serde::from_str(&text)
                .with_context(|| format!("invalid console configuration {}", path.display()))?;
            let m = Arc::clone(&metrics);
            let leader: console::IsLeader =
                Arc::new(move || m.leader.load(std::sync::atomic::Ordering::Relaxed));
            Some(
                ConsoleServer::bind(
                    cfg,
                    leader,
                    Some(client.clone()),
                    Arc::new(ConsoleMetrics::default()),
                )
                .await
                .with_context(|| format!("console ({})", path.display()))?,
            )
        }
        None => None,
    };
    let console_metrics = console.as_ref().map(|c| c.metrics_renderer());
    let extra: Option<http::ExtraMetrics> = if webhook_config.is_some() || console_metrics.is_some()
    {
        let m = Arc::clone(&webhook_metrics);
        let with_webhook = webhook_config.is_some();
        Some(Arc::new(move |out: &mut String| {
            if with_webhook {
                webhook::render_prometheus(&m, out);
            }
            if let Some(render) = &console_metrics {
                render(out);
            }
        }) as http::ExtraMetrics)
    } else {
        None
    };
    let listener = http::bind(args.listen).await?;
    let http_task = tokio::spawn(http::serve(
        listener,
        Arc::clone(&metrics),
        extra,
        stopped(),
    ));
    let webhook_task =
        webhook_config.map(|cfg| tokio::spawn(webhook::serve(cfg, webhook_metrics, stopped())));
    let console_task = console.map(|server| tokio::spawn(server.run(stopped())));

    let result = if args.leader_election {
        let election = leader::Election {
            lease_name: args.lease_name,
            identity,
            duration_secs: args.lease_duration.max(2),
            grace_secs: (args.lease_duration / 3).max(1),
        };
        leader::run(
            client,
            config,
            Arc::clone(&metrics),
            election,
            shutdown_signal(),
        )
        .await
    } else {
        metrics
            .leader
            .store(true, std::sync::atomic::Ordering::Relaxed);
        tokio::select! {
            r = controller::run(client, config, Arc::clone(&metrics)) => r,
            () = shutdown_signal() => Ok(()),
        }
    };
    let _ = stop_tx.send(true);
    if let Some(task) = webhook_task {
        task.await.context("webhook collector task")??;
    }
    if let Some(task) = console_task {
        task.await.context("console task")?;
    }
    http_task.await.context("HTTP server task")??;
    result.map_err(Into::into)
}

/// Completes on SIGTERM (what the kubelet sends) or Ctrl-C.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            // Without a SIGTERM handler, Ctrl-C still stops it.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}

fn render_files(
    files: &[PathBuf],
    out: Option<&Path>,
    namespace: &str,
) -> anyhow::Result<ExitCode> {
    let mut monitors = Vec::new();
    for path in expand(files)? {
        let (origin, text) = if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("cannot read standard input")?;
            ("<stdin>".to_owned(), text)
        } else {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            (path.display().to_string(), text)
        };
        let found = manifests::parse(&text, &origin, namespace)?;
        tracing::debug!(file = %origin, monitors = found.len(), "read manifests");
        monitors.extend(found);
    }
    let catalog = Catalog::builtin().context("cannot load the built-in rules")?;
    let started = std::time::Instant::now();
    let rendered = render::render(&monitors, &catalog)?;
    tracing::info!(
        monitors = monitors.len(),
        namespaces = rendered.namespaces.len(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "rendered"
    );
    match out {
        Some(dir) => write_dir(dir, &rendered)?,
        None => print_all(&rendered)?,
    }
    report(&rendered, monitors.len());
    Ok(if rendered.any_refused() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Files as given, and the YAML files below directories, sorted so the input order (which
/// does not change the output) does not change the report order either.
fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut stack = vec![path.clone()];
            let mut found = Vec::new();
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir)
                    .with_context(|| format!("cannot list {}", dir.display()))?
                {
                    let p = entry?.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                        found.push(p);
                    }
                }
            }
            found.sort();
            out.extend(found);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn print_all(rendered: &Rendered) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "# audit policy sha256:{}", rendered.policy_hash)?;
    stdout.write_all(rendered.policy_yaml.as_bytes())?;
    for ns in rendered.namespaces.keys() {
        if let Some(yaml) = rendered.namespace_yaml(ns)? {
            writeln!(stdout, "---\n# agent configuration of namespace {ns}")?;
            stdout.write_all(yaml.as_bytes())?;
        }
    }
    Ok(())
}

fn write_dir(dir: &Path, rendered: &Rendered) -> anyhow::Result<()> {
    let agent_dir = dir.join("agent");
    std::fs::create_dir_all(&agent_dir)
        .with_context(|| format!("cannot create {}", agent_dir.display()))?;
    let write = |path: PathBuf, bytes: &[u8]| {
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
    };
    write(
        dir.join("audit-policy.yaml"),
        rendered.policy_yaml.as_bytes(),
    )?;
    write(
        dir.join("audit-policy.sha256"),
        format!("{}\n", rendered.policy_hash).as_bytes(),
    )?;
    for ns in rendered.namespaces.keys() {
        if let Some(yaml) = rendered.namespace_yaml(ns)? {
            write(agent_dir.join(format!("{ns}.yaml")), yaml.as_bytes())?;
        }
    }
    Ok(())
}

/// The per-monitor report, on stderr so that stdout stays valid YAML.
fn report(rendered: &Rendered, read: usize) {
    let mut counts = [0usize; 4];
    for (monitor, problems) in &rendered.monitors {
        for p in problems {
            let slot = match p.kind {
                ProblemKind::Refused => 0,
                ProblemKind::Clamped => 1,
                ProblemKind::Overridden => 2,
                ProblemKind::Warning => 3,
            };
            counts[slot] += 1;
            eprintln!("ContainerMonitor {monitor}: {p}");
        }
    }
    for p in &rendered.cluster_problems {
        eprintln!("cluster: {p}");
    }
    let [refused, clamped, overridden, warnings] = counts;
    eprintln!(
        "{read} ContainerMonitors in {} namespaces; policy sha256:{} ({} rules); {refused} refused, {clamped} clamped, {overridden} overridden, {warnings} warnings",
        rendered.namespaces.len(),
        rendered.policy_hash,
        rendered.policy.rules.len(),
    );
}
