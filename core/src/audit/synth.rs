//! Deterministic generator of realistic Kubernetes audit events.
//!
//! Benchmarks and load tests need audit input that is large, reproducible,
//! and close enough to a real busy cluster that parser and detector costs are
//! representative. Recorded logs are too small, hard to share, and full of
//! real identities. This module builds `audit.k8s.io/v1` `Event` lines from a
//! seeded PRNG instead. The same [`SynthConfig`] always produces the same
//! bytes.
//!
//! The traffic mix follows what a production apiserver logs most: kubelet and
//! leader-election lease renewals, node status heartbeats, event creation,
//! controller reads and watches, endpoint slice updates, plus a thinner layer
//! of human `kubectl` use, CI rollouts and controller-created Pods that carry
//! request bodies (2–4 KiB lines). On average a line is about 1.1 KiB.
//!
//! A [`SynthConfig::attack_ratio`] share of the lines is attack-like:
//! privileged or host-namespace Pods, sensitive `hostPath` mounts,
//! `cluster-admin` bindings, cluster-wide secret listings, shells through
//! `pods/exec`, and 403 probes. Normal traffic never has any of those
//! features. A test can therefore tell attack lines from content alone.
//!
//! Timestamps: `stageTimestamp` never decreases from one line to the next.
//! `requestReceivedTimestamp` never decreases either, except on long-running
//! requests (`watch`, `pods/exec`, followed `pods/log`). Those lines are written
//! when they finish, as a real log backend does, so they were received earlier.
//!
//! The generator writes JSON by hand, because the input must be built fast
//! enough that it does not dominate the benchmarks it feeds.

/// 2024-07-16T09:00:00Z in microseconds since the Unix epoch.
const START_US: u64 = 1_721_120_400 * 1_000_000;

/// Parameters of a synthetic audit stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthConfig {
    /// PRNG seed. Equal seeds (and ratios) give byte-identical output.
    pub seed: u64,
    /// Fraction of lines that are attack-like, e.g. `0.01`. Values outside
    /// `0.0..=1.0` are clamped; NaN counts as `0.0`.
    pub attack_ratio: f64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            seed: 0x5EED_A0D1,
            attack_ratio: 0.01,
        }
    }
}

/// Generates all of its lines up front, up to at least `target_bytes`.
///
/// The result ends on a whole line and is at most one line (a few KiB)
/// longer than `target_bytes`.
#[must_use]
pub fn generate(cfg: SynthConfig, target_bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(target_bytes.saturating_add(8 * 1024));
    let mut synth = AuditSynth::new(cfg);
    while out.len() < target_bytes {
        synth.next_line(&mut out);
    }
    out
}

/// SplitMix64. It is tiny, has no bad seeds, and passes BigCrush. That is more
/// than enough for traffic shaping, and it needs no dependency.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`. Lemire's multiply-shift avoids modulo bias well
    /// enough for these small ranges. `n == 0` returns 0.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn idx(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.idx(xs.len())]
    }

    fn uuid(&mut self) -> String {
        let hi = self.next_u64();
        let lo = self.next_u64();
        // RFC 4122 version 4, variant 10xx: what the apiserver generates.
        let hi = (hi & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000;
        let lo = (lo & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xFFFF,
            hi & 0xFFFF,
            lo >> 48,
            lo & 0xFFFF_FFFF_FFFF
        )
    }

    /// Characters the apiserver uses for generated name suffixes
    /// (`rand.SafeEncodeString`: no vowels, no look-alike digits).
    fn k8s_suffix(&mut self, n: usize) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..n).map(|_| char::from(*self.pick(ALPHABET))).collect()
    }

    fn hex(&mut self, n: usize) -> String {
        const HEX: &[u8] = b"0123456789abcdef";
        (0..n).map(|_| char::from(*self.pick(HEX))).collect()
    }
}

// ---------------------------------------------------------------------------
// JSON writing helpers. `lit` is for fragments known to be valid JSON;
// everything that can vary goes through `jstr`.

fn lit(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
}

fn jstr(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1F => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match esc {
            Some(e) => out.extend_from_slice(e),
            None => {
                const HEX: &[u8] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xF)]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn num(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn pad(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut v = n;
    for slot in buf[20 - width..].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&buf[20 - width..]);
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's
/// `civil_from_days`. Only dates after the epoch occur here.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// RFC 3339 with microseconds (`metav1.MicroTime`), quoted.
fn ts_micro(out: &mut Vec<u8>, us: u64) {
    ts(out, us, true);
}

/// RFC 3339 with whole seconds (`metav1.Time`), quoted.
fn ts_sec(out: &mut Vec<u8>, us: u64) {
    ts(out, us, false);
}

fn ts(out: &mut Vec<u8>, us: u64, micro: bool) {
    let secs = us / 1_000_000;
    let (y, mo, d) = civil_from_days(secs / 86_400);
    let sod = secs % 86_400;
    out.push(b'"');
    pad(out, y, 4);
    out.push(b'-');
    pad(out, mo, 2);
    out.push(b'-');
    pad(out, d, 2);
    out.push(b'T');
    pad(out, sod / 3600, 2);
    out.push(b':');
    pad(out, sod / 60 % 60, 2);
    out.push(b':');
    pad(out, sod % 60, 2);
    if micro {
        out.push(b'.');
        pad(out, us % 1_000_000, 6);
    }
    out.extend_from_slice(b"Z\"");
}

// ---------------------------------------------------------------------------
// Static vocabulary of the simulated cluster.

const K8S_UA_TAIL: &str = "v1.30.2 (linux/amd64) kubernetes/3968350";
const KUBELET_UA: &str = "kubelet/v1.30.2 (linux/amd64) kubernetes/3968350";
const KUBECTL_UAS: &[&str] = &[
    "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350",
    "kubectl/v1.30.2 (darwin/arm64) kubernetes/3968350",
    "kubectl/v1.29.6 (darwin/arm64) kubernetes/062798d",
    "kubectl/v1.30.1 (windows/amd64) kubernetes/6911225",
];
const NODE_GROUPS: &str = r#"["system:nodes","system:authenticated"]"#;
const AUTHENTICATED: &str = r#"["system:authenticated"]"#;

const NAMESPACES: &[&str] = &[
    "shop",
    "payments",
    "search",
    "checkout",
    "catalog",
    "identity",
    "data",
    "ml-serving",
    "staging",
    "default",
];
const APP_NAMES: &[&str] = &[
    "web",
    "api",
    "cart",
    "orders",
    "inventory",
    "pricing",
    "notifications",
    "recommendations",
    "gateway",
    "worker",
    "auth",
    "billing",
    "search-indexer",
    "frontend",
    "reports",
    "image-resizer",
];

/// Humans using kubectl: (username, groups JSON, RoleBinding granting access).
const HUMANS: &[(&str, &str, &str)] = &[
    (
        "dev-alice@example.com",
        r#"["developers","system:authenticated"]"#,
        "developers-edit",
    ),
    (
        "sre-bob@example.com",
        r#"["oncall","system:authenticated"]"#,
        "oncall-admin",
    ),
    (
        "dev-carol@example.com",
        r#"["developers","system:authenticated"]"#,
        "developers-edit",
    ),
    (
        "dan.ops@example.com",
        r#"["platform","system:authenticated"]"#,
        "platform-admin",
    ),
    (
        "erin@example.com",
        r#"["data-team","system:authenticated"]"#,
        "data-team-view",
    ),
    (
        "frank.qa@example.com",
        r#"["qa","system:authenticated"]"#,
        "qa-view",
    ),
];

/// Harmless one-shot exec commands. Shells and token reads are attack
/// markers, so they never show up in normal traffic.
const BENIGN_EXEC: &[&str] = &[
    "command=date",
    "command=redis-cli&command=ping",
    "command=nginx&command=-t",
    "command=pg_isready",
    "command=curl&command=-s&command=localhost%3A8080%2Fhealthz",
    "command=ls&command=%2Ftmp",
];

const CONTROL_PLANE_IP: &str = "10.0.0.10";

// Indices into `AuditSynth::sys`, in the order `new` builds it.
const SYS_REPLICASET: usize = 0;
const SYS_DEPLOYMENT: usize = 1;
const SYS_ENDPOINTSLICE: usize = 2;
const SYS_DAEMONSET: usize = 3;
const SYS_COREDNS: usize = 5;
const SYS_METRICS_SERVER: usize = 6;
const SYS_PROMETHEUS: usize = 7;
const SYS_AUTOSCALER: usize = 8;
const SYS_INGRESS: usize = 9;
const SYS_CERT_MANAGER: usize = 10;
const SYS_KUBE_PROXY: usize = 11;

/// One cluster node.
#[derive(Debug, Clone)]
struct Node {
    name: String,
    ip: String,
    uid: String,
    lease_uid: String,
    /// Third octet of the node's pod CIDR (10.244.N.0/24).
    cidr: u64,
}

/// One Deployment and its current ReplicaSet.
#[derive(Debug, Clone)]
struct App {
    ns: &'static str,
    name: &'static str,
    hash: String,
    rs_uid: String,
    sa_uid: String,
    version: String,
}

/// A kube-system or add-on service account that talks to the apiserver.
#[derive(Debug, Clone)]
struct SysSa {
    ns: &'static str,
    name: &'static str,
    uid: String,
    ip: String,
    ua: String,
    reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Metadata,
    Request,
    RequestResponse,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }
}

/// Who made the request. `groups` and `extra` are JSON fragments.
#[derive(Debug, Clone, Copy)]
enum Who<'a> {
    Plain {
        name: &'a str,
        groups: &'a str,
    },
    Sa {
        ns: &'a str,
        name: &'a str,
        uid: &'a str,
        extra: Option<&'a str>,
    },
}

#[derive(Debug, Clone, Copy, Default)]
struct ObjRef<'a> {
    resource: &'a str,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
    uid: Option<&'a str>,
    group: Option<&'a str>,
    version: &'a str,
    rv: Option<u64>,
    sub: Option<&'a str>,
}

#[derive(Debug, Clone, Copy)]
struct Failure<'a> {
    reason: &'a str,
    message: &'a str,
    kind: &'a str,
    name: Option<&'a str>,
    group: Option<&'a str>,
}

/// Everything one audit line needs. Optional bodies are pre-rendered JSON.
#[derive(Debug, Clone, Copy)]
struct Ev<'a> {
    level: Level,
    uri: &'a str,
    verb: &'a str,
    who: Who<'a>,
    ip: &'a str,
    ua: &'a str,
    obj: Option<ObjRef<'a>>,
    code: u64,
    failure: Option<Failure<'a>>,
    req: Option<&'a [u8]>,
    resp: Option<&'a [u8]>,
    recv_us: u64,
    stage_us: u64,
    /// `None` means the authorizer said no.
    reason: Option<&'a str>,
    extra_ann: &'a [(&'a str, &'a str)],
}

impl Ev<'_> {
    /// An allowed, bodiless `200` at the given times; callers override the rest.
    fn at(recv_us: u64, stage_us: u64) -> Self {
        Ev {
            level: Level::Metadata,
            uri: "",
            verb: "",
            who: Who::Plain {
                name: "",
                groups: AUTHENTICATED,
            },
            ip: "",
            ua: "",
            obj: None,
            code: 200,
            failure: None,
            req: None,
            resp: None,
            recv_us,
            stage_us,
            reason: Some(""),
            extra_ann: &[],
        }
    }
}

fn write_event(out: &mut Vec<u8>, aid: &str, ev: &Ev<'_>) {
    lit(
        out,
        r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":""#,
    );
    lit(out, ev.level.as_str());
    lit(out, r#"","auditID":""#);
    lit(out, aid);
    lit(out, r#"","stage":"ResponseComplete","requestURI":"#);
    jstr(out, ev.uri);
    lit(out, r#","verb":""#);
    lit(out, ev.verb);
    lit(out, r#"","user":{"username":"#);
    match ev.who {
        Who::Plain { name, groups } => {
            jstr(out, name);
            lit(out, r#","groups":"#);
            lit(out, groups);
        }
        Who::Sa {
            ns,
            name,
            uid,
            extra,
        } => {
            out.push(b'"');
            lit(out, "system:serviceaccount:");
            lit(out, ns);
            out.push(b':');
            lit(out, name);
            lit(out, r#"","uid":"#);
            jstr(out, uid);
            lit(
                out,
                r#","groups":["system:serviceaccounts","system:serviceaccounts:"#,
            );
            lit(out, ns);
            lit(out, r#"","system:authenticated"]"#);
            if let Some(x) = extra {
                lit(out, r#","extra":"#);
                lit(out, x);
            }
        }
    }
    lit(out, r#"},"sourceIPs":["#);
    jstr(out, ev.ip);
    lit(out, r#"],"userAgent":"#);
    jstr(out, ev.ua);
    if let Some(o) = &ev.obj {
        lit(out, r#","objectRef":{"resource":"#);
        jstr(out, o.resource);
        if let Some(ns) = o.namespace {
            lit(out, r#","namespace":"#);
            jstr(out, ns);
        }
        if let Some(n) = o.name {
            lit(out, r#","name":"#);
            jstr(out, n);
        }
        if let Some(u) = o.uid {
            lit(out, r#","uid":"#);
            jstr(out, u);
        }
        if let Some(g) = o.group {
            lit(out, r#","apiGroup":"#);
            jstr(out, g);
        }
        lit(out, r#","apiVersion":"#);
        jstr(out, o.version);
        if let Some(rv) = o.rv {
            lit(out, r#","resourceVersion":""#);
            num(out, rv);
            out.push(b'"');
        }
        if let Some(s) = o.sub {
            lit(out, r#","subresource":"#);
            jstr(out, s);
        }
        out.push(b'}');
    }
    lit(out, r#","responseStatus":{"metadata":{}"#);
    if let Some(f) = &ev.failure {
        lit(out, r#","status":"Failure","message":"#);
        jstr(out, f.message);
        lit(out, r#","reason":"#);
        jstr(out, f.reason);
        lit(out, r#","details":{"#);
        if let Some(n) = f.name {
            lit(out, r#""name":"#);
            jstr(out, n);
            out.push(b',');
        }
        if let Some(g) = f.group {
            lit(out, r#""group":"#);
            jstr(out, g);
            out.push(b',');
        }
        lit(out, r#""kind":"#);
        jstr(out, f.kind);
        out.push(b'}');
    }
    lit(out, r#","code":"#);
    num(out, ev.code);
    out.push(b'}');
    if let Some(r) = ev.req {
        lit(out, r#","requestObject":"#);
        out.extend_from_slice(r);
    }
    if let Some(r) = ev.resp {
        lit(out, r#","responseObject":"#);
        out.extend_from_slice(r);
    }
    lit(out, r#","requestReceivedTimestamp":"#);
    ts_micro(out, ev.recv_us);
    lit(out, r#","stageTimestamp":"#);
    ts_micro(out, ev.stage_us);
    lit(out, r#","annotations":{"authorization.k8s.io/decision":"#);
    match ev.reason {
        Some(r) => {
            lit(out, r#""allow","authorization.k8s.io/reason":"#);
            jstr(out, r);
        }
        None => lit(out, r#""forbid","authorization.k8s.io/reason":"""#),
    }
    for (k, v) in ev.extra_ann {
        out.push(b',');
        jstr(out, k);
        out.push(b':');
        jstr(out, v);
    }
    lit(out, "}}\n");
}

/// The ClusterRole a human's binding grants, from its naming convention.
fn human_role(binding: &str) -> &'static str {
    if binding.ends_with("-view") {
        "view"
    } else if binding.ends_with("-admin") {
        "admin"
    } else {
        "edit"
    }
}

fn crb_reason(binding: &str, role: &str, subject: &str) -> String {
    format!(
        r#"RBAC: allowed by ClusterRoleBinding "{binding}" of ClusterRole "{role}" to {subject}"#
    )
}

fn rb_reason(binding: &str, ns: &str, role: &str, subject: &str) -> String {
    format!(r#"RBAC: allowed by RoleBinding "{binding}/{ns}" of ClusterRole "{role}" to {subject}"#)
}

/// RBAC prints service-account subjects as `name/namespace`.
fn sa_subject(ns: &str, name: &str) -> String {
    format!(r#"ServiceAccount "{name}/{ns}""#)
}

/// The apiserver's RBAC denial text, e.g. `nodes "n1" is forbidden: User
/// "u" cannot get resource "nodes/proxy" in API group "" at the cluster scope`.
fn forbidden_message(
    user: &str,
    verb: &str,
    resource: &str,
    sub: Option<&str>,
    group: &str,
    ns: Option<&str>,
    name: Option<&str>,
) -> String {
    let qualified = if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    };
    let subject = match name {
        Some(n) => format!(r#"{qualified} "{n}""#),
        None => qualified,
    };
    let full = match sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource.to_owned(),
    };
    let scope = match ns {
        Some(ns) => format!(r#"in the namespace "{ns}""#),
        None => "at the cluster scope".to_owned(),
    };
    format!(
        r#"{subject} is forbidden: User "{user}" cannot {verb} resource "{full}" in API group "{group}" {scope}"#
    )
}

/// The kinds of lines in the normal mix, with weights in tenths of a
/// percent. The weights match the shape of a production audit log. Renewals
/// and heartbeats dominate, and the body-carrying writes are rare but large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Normal {
    KubeletLease,
    LeaderLease,
    NodeGet,
    NodeStatusPatch,
    EventCreate,
    AppConfigGet,
    AppSecretGet,
    PromList,
    WatchEnded,
    EndpointSliceUpdate,
    UserRead,
    UserLogs,
    RsPodCreate,
    DaemonPodCreate,
    CiApply,
    UserExec,
    RoleBindingCreate,
    TokenReview,
    SubjectAccessReview,
    StatusConfigMapUpdate,
    PodStatusPatch,
    PodBinding,
    PodDelete,
}

const NORMAL_MIX: &[(u32, Normal)] = &[
    (250, Normal::KubeletLease),
    (75, Normal::LeaderLease),
    (40, Normal::NodeGet),
    (40, Normal::NodeStatusPatch),
    (130, Normal::EventCreate),
    (45, Normal::AppConfigGet),
    (35, Normal::AppSecretGet),
    (30, Normal::PromList),
    (45, Normal::WatchEnded),
    (24, Normal::EndpointSliceUpdate),
    (55, Normal::UserRead),
    (10, Normal::UserLogs),
    (20, Normal::RsPodCreate),
    (6, Normal::DaemonPodCreate),
    (12, Normal::CiApply),
    (8, Normal::UserExec),
    (4, Normal::RoleBindingCreate),
    (40, Normal::TokenReview),
    (25, Normal::SubjectAccessReview),
    (20, Normal::StatusConfigMapUpdate),
    (40, Normal::PodStatusPatch),
    (30, Normal::PodBinding),
    (15, Normal::PodDelete),
];

/// Attack-like line kinds, equally likely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attack {
    PrivilegedPod,
    HostPathWorkload,
    ClusterAdminBinding,
    SecretsListAll,
    Forbidden,
    ShellExec,
}

const ATTACKS: &[Attack] = &[
    Attack::PrivilegedPod,
    Attack::HostPathWorkload,
    Attack::ClusterAdminBinding,
    Attack::SecretsListAll,
    Attack::Forbidden,
    Attack::ShellExec,
];

/// A stateful stream of synthetic audit lines. See the module docs.
#[derive(Debug, Clone)]
pub struct AuditSynth {
    rng: Rng,
    attack_ratio: f64,
    mix_total: u64,
    /// Receive time of the next request.
    now_us: u64,
    /// Latest `stageTimestamp` written; keeps the stage clock monotonic.
    last_stage_us: u64,
    /// Cluster-wide resourceVersion, bumped on every write.
    rv: u64,
    nodes: Vec<Node>,
    apps: Vec<App>,
    sys: Vec<SysSa>,
    /// Leader-election lease UIDs, stable for the life of the stream.
    leases: Vec<(&'static str, String)>,
    ci_uid: String,
    lines: u64,
    attacks: u64,
    body: Vec<u8>,
    body2: Vec<u8>,
}

impl AuditSynth {
    /// Builds the simulated cluster (nodes, apps, system service accounts)
    /// from the seed.
    #[must_use]
    pub fn new(cfg: SynthConfig) -> Self {
        let mut rng = Rng(cfg.seed ^ 0x6A09_E667_F3BC_C909);
        let attack_ratio = if cfg.attack_ratio.is_nan() {
            0.0
        } else {
            cfg.attack_ratio.clamp(0.0, 1.0)
        };

        let node_count = 24 + rng.below(24);
        let nodes = (0..node_count)
            .map(|i| {
                let subnet = 1 + i % 3;
                let host = 10 + i / 3 * 7 + rng.below(6);
                Node {
                    name: format!("ip-10-0-{subnet}-{host}.eu-west-1.compute.internal"),
                    ip: format!("10.0.{subnet}.{host}"),
                    uid: rng.uuid(),
                    lease_uid: rng.uuid(),
                    cidr: i + 1,
                }
            })
            .collect();

        let mut apps = Vec::new();
        for &ns in NAMESPACES {
            let n = 3 + rng.below(5);
            for _ in 0..n {
                let name = *rng.pick(APP_NAMES);
                if apps.iter().any(|a: &App| a.ns == ns && a.name == name) {
                    continue;
                }
                let hash_len = if rng.chance(0.5) { 9 } else { 10 };
                apps.push(App {
                    ns,
                    name,
                    hash: rng.k8s_suffix(hash_len),
                    rs_uid: rng.uuid(),
                    sa_uid: rng.uuid(),
                    version: format!("{}.{}.{}", 1 + rng.below(4), rng.below(30), rng.below(12)),
                });
            }
        }

        let kcm_sa = |rng: &mut Rng, name: &'static str| SysSa {
            ns: "kube-system",
            name,
            uid: rng.uuid(),
            ip: CONTROL_PLANE_IP.to_owned(),
            ua: format!(
                "kube-controller-manager/{K8S_UA_TAIL}/system:serviceaccount:kube-system:{name}"
            ),
            reason: crb_reason(
                &format!("system:controller:{name}"),
                &format!("system:controller:{name}"),
                &sa_subject("kube-system", name),
            ),
        };
        let addon = |rng: &mut Rng,
                     ns: &'static str,
                     name: &'static str,
                     ip: &str,
                     ua: &str,
                     binding: &str,
                     role: &str| SysSa {
            ns,
            name,
            uid: rng.uuid(),
            ip: ip.to_owned(),
            ua: ua.to_owned(),
            reason: crb_reason(binding, role, &sa_subject(ns, name)),
        };
        let sys = vec![
            kcm_sa(&mut rng, "replicaset-controller"),
            kcm_sa(&mut rng, "deployment-controller"),
            kcm_sa(&mut rng, "endpointslice-controller"),
            kcm_sa(&mut rng, "daemon-set-controller"),
            kcm_sa(&mut rng, "generic-garbage-collector"),
            addon(
                &mut rng,
                "kube-system",
                "coredns",
                "10.244.1.3",
                "coredns/v0.0.0 (linux/amd64) kubernetes/$Format",
                "system:coredns",
                "system:coredns",
            ),
            addon(
                &mut rng,
                "kube-system",
                "metrics-server",
                "10.244.2.7",
                "metrics-server/v0.7.1 (linux/amd64) kubernetes/$Format",
                "metrics-server:system:auth-delegator",
                "system:auth-delegator",
            ),
            addon(
                &mut rng,
                "monitoring",
                "prometheus-k8s",
                "10.244.3.18",
                "Prometheus/2.52.0",
                "prometheus-k8s",
                "prometheus-k8s",
            ),
            addon(
                &mut rng,
                "kube-system",
                "cluster-autoscaler",
                "10.244.1.12",
                "cluster-autoscaler/v0.0.0 (linux/amd64) kubernetes/$Format",
                "cluster-autoscaler",
                "cluster-autoscaler",
            ),
            addon(
                &mut rng,
                "ingress-nginx",
                "ingress-nginx",
                "10.244.4.21",
                "nginx-ingress-controller/v1.10.1 (linux/amd64) ingress-nginx/4fb5aac1dd3669daa3a14d9de3e3cdb371b4c518",
                "ingress-nginx",
                "ingress-nginx",
            ),
            addon(
                &mut rng,
                "cert-manager",
                "cert-manager",
                "10.244.5.9",
                "cert-manager-controller/v1.14.5 (linux/amd64) cert-manager/0e4de4ce2d16d7a8ad8c3d3af4b4d1c9f6c1d4a8",
                "cert-manager-controller-certificates",
                "cert-manager-controller-certificates",
            ),
            addon(
                &mut rng,
                "kube-system",
                "kube-proxy",
                "10.0.1.10",
                &format!("kube-proxy/{K8S_UA_TAIL}"),
                "kubeadm:node-proxier",
                "system:node-proxier",
            ),
        ];

        let mix_total = NORMAL_MIX.iter().map(|&(w, _)| u64::from(w)).sum();
        let start = START_US + rng.below(3_600) * 1_000_000;
        let rv = 48_000_000 + rng.below(4_000_000);
        let ci_uid = rng.uuid();
        Self {
            rng,
            attack_ratio,
            mix_total,
            now_us: start,
            last_stage_us: start,
            rv,
            nodes,
            apps,
            sys,
            leases: Vec::new(),
            ci_uid,
            lines: 0,
            attacks: 0,
            body: Vec::with_capacity(4096),
            body2: Vec::with_capacity(4096),
        }
    }

    /// Lines written so far.
    #[must_use]
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Attack-like lines written so far.
    #[must_use]
    pub fn attack_lines(&self) -> u64 {
        self.attacks
    }

    /// Appends one audit event as a JSON line, with its trailing `'\n'`.
    pub fn next_line(&mut self, out: &mut Vec<u8>) {
        self.lines += 1;
        if self.rng.chance(self.attack_ratio) {
            self.attacks += 1;
            let kind = *self.rng.pick(ATTACKS);
            self.attack(out, kind);
        } else {
            let mut r = self.rng.below(self.mix_total);
            let mut kind = Normal::KubeletLease;
            for &(w, k) in NORMAL_MIX {
                if r < u64::from(w) {
                    kind = k;
                    break;
                }
                r -= u64::from(w);
            }
            self.normal(out, kind);
        }
        // A busy apiserver logs a few hundred requests per second.
        self.now_us += self.rng.range(100, 4_000);
    }

    /// Times for a short request: received now, done `lo_us..=hi_us` later.
    fn short(&mut self, lo_us: u64, hi_us: u64) -> (u64, u64) {
        let recv = self.now_us;
        let stage = (recv + self.rng.range(lo_us, hi_us)).max(self.last_stage_us + 1);
        self.last_stage_us = stage;
        (recv, stage)
    }

    /// Times for a long-running request that finishes now. Its receive time
    /// lies in the past, which is why it is exempt from receive-order.
    fn long(&mut self, dur_us: u64) -> (u64, u64) {
        let stage = self.now_us.max(self.last_stage_us + 1);
        self.last_stage_us = stage;
        (stage.saturating_sub(dur_us), stage)
    }

    fn lease_uid(&mut self, lease: &'static str) -> String {
        if let Some((_, uid)) = self.leases.iter().find(|(l, _)| *l == lease) {
            return uid.clone();
        }
        let uid = self.rng.uuid();
        self.leases.push((lease, uid.clone()));
        uid
    }

    fn bump_rv(&mut self) -> u64 {
        self.rv += self.rng.range(1, 12);
        self.rv
    }

    fn emit(&mut self, out: &mut Vec<u8>, ev: &Ev<'_>) {
        let aid = self.rng.uuid();
        write_event(out, &aid, ev);
    }

    fn pod_name(&mut self, app: &App) -> String {
        format!("{}-{}-{}", app.name, app.hash, self.rng.k8s_suffix(5))
    }

    fn human(&mut self) -> (usize, String) {
        let i = self.rng.idx(HUMANS.len());
        // Office VPN egress range.
        (i, format!("198.51.100.{}", 10 + i * 7))
    }

    fn event_name(&mut self, obj: &str, us: u64) -> String {
        // <involvedObject>.<hex UnixNano of first occurrence>
        let ns = us * 1000 + self.rng.below(1000);
        format!("{obj}.{ns:x}")
    }

    #[allow(clippy::too_many_lines)] // one arm per traffic kind reads best flat
    fn normal(&mut self, out: &mut Vec<u8>, kind: Normal) {
        let node_i = self.rng.idx(self.nodes.len());
        let app_i = self.rng.idx(self.apps.len());
        let node = self.nodes[node_i].clone();
        let app = self.apps[app_i].clone();
        let node_user = format!("system:node:{}", node.name);
        let node_who = Who::Plain {
            name: &node_user,
            groups: NODE_GROUPS,
        };
        match kind {
            Normal::KubeletLease => {
                let (recv, stage) = self.short(1_500, 9_000);
                let rv = self.rv - self.rng.range(50, 400);
                let uri = format!(
                    "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{}?timeout=10s",
                    node.name
                );
                self.emit(
                    out,
                    &Ev {
                        uri: &uri,
                        verb: "update",
                        who: node_who,
                        ip: &node.ip,
                        ua: KUBELET_UA,
                        obj: Some(ObjRef {
                            resource: "leases",
                            namespace: Some("kube-node-lease"),
                            name: Some(&node.name),
                            uid: Some(&node.lease_uid),
                            group: Some("coordination.k8s.io"),
                            version: "v1",
                            rv: Some(rv),
                            sub: None,
                        }),
                        ..Ev::at(recv, stage)
                    },
                );
                self.bump_rv();
            }
            Normal::LeaderLease => {
                // (namespace, lease, holder's index in `sys` unless it is a
                // control-plane binary with its own user)
                let (ns, lease, sa) = *self.rng.pick(&[
                    ("kube-system", "kube-controller-manager", None),
                    ("kube-system", "kube-scheduler", None),
                    ("ingress-nginx", "ingress-nginx-leader", Some(SYS_INGRESS)),
                    (
                        "kube-system",
                        "cert-manager-controller",
                        Some(SYS_CERT_MANAGER),
                    ),
                ]);
                let (name, ua, reason, ip, uid) = match sa {
                    Some(i) => {
                        let s = &self.sys[i];
                        (
                            s.name,
                            s.ua.clone(),
                            s.reason.clone(),
                            s.ip.clone(),
                            s.uid.clone(),
                        )
                    }
                    None => (
                        lease,
                        format!("{lease}/{K8S_UA_TAIL}/leader-election"),
                        crb_reason(
                            &format!("system:{lease}"),
                            &format!("system:{lease}"),
                            &format!(r#"User "system:{lease}""#),
                        ),
                        CONTROL_PLANE_IP.to_owned(),
                        String::new(),
                    ),
                };
                let user = format!("system:{lease}");
                let who = match sa {
                    Some(i) => Who::Sa {
                        ns: self.sys[i].ns,
                        name,
                        uid: &uid,
                        extra: None,
                    },
                    None => Who::Plain {
                        name: &user,
                        groups: AUTHENTICATED,
                    },
                };
                let (recv, stage) = self.short(1_200, 6_000);
                let rv = self.rv - self.rng.range(10, 60);
                let uri = format!(
                    "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{lease}?timeout=5s"
                );
                let lease_uid = self.lease_uid(lease);
                self.emit(
                    out,
                    &Ev {
                        uri: &uri,
                        verb: "update",
                        who,
                        ip: &ip,
                        ua: &ua,
                        obj: Some(ObjRef {
                            resource: "leases",
                            namespace: Some(ns),
                            name: Some(lease),
                            uid: Some(&lease_uid),
                            group: Some("coordination.k8s.io"),
                            version: "v1",
                            rv: Some(rv),
                            sub: None,
                        }),
                        reason: Some(&reason),
                        ..Ev::at(recv, stage)
                    },
                );
                self.bump_rv();
            }
            Normal::NodeGet => {
                let (recv, stage) = self.short(600, 2_500);
                let uri = format!("/api/v1/nodes/{}?resourceVersion=0&timeout=10s", node.name);
                self.emit(
                    out,
                    &Ev {
                        uri: &uri,
                        verb: "get",
                        who: node_who,
                        ip: &node.ip,
                        ua: KUBELET_UA,
                        obj: Some(ObjRef {
                            resource: "nodes",
                            name: Some(&node.name),
                            version: "v1",
                            ..ObjRef::default()
                        }),
                        ..Ev::at(recv, stage)
                    },
                );
            }
            Normal::NodeStatusPatch => {
                let (recv, stage) = self.short(4_000, 14_000);
                let mut b = std::mem::take(&mut self.body);
                b.clear();
                lit(
                    &mut b,
                    r#"{"status":{"$setElementOrder/conditions":[{"type":"MemoryPressure"},{"type":"DiskPressure"},{"type":"PIDPressure"},{"type":"Ready"}],"conditions":["#,
                );
                for (i, c) in ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
                    .iter()
                    .enumerate()
                {
                    if i > 0 {
                        b.push(b',');
                    }
                    lit(&mut b, r#"{"lastHeartbeatTime":"#);
                    ts_sec(&mut b, recv.saturating_sub(8_000));
                    lit(&mut b, r#","type":""#);
                    lit(&mut b, c);
                    lit(&mut b, r#""}"#);
                }
                lit(&mut b, "]}}");
                let uri = format!("/api/v1/nodes/{}/status?timeout=10s", node.name);
                self.emit(
                    out,
                    &Ev {
                        level: Level::Request,
                        uri: &uri,
                        verb: "patch",
                        who: node_who,
                        ip: &node.ip,
                        ua: KUBELET_UA,
                        obj: Some(ObjRef {
                            resource: "nodes",
                            name: Some(&node.name),
                            version: "v1",
                            sub: Some("status"),
                            ..ObjRef::default()
                        }),
                        req: Some(&b),
                        ..Ev::at(recv, stage)
                    },
                );
                self.body = b;
                self.bump_rv();
            }
            Normal::EventCreate => {
                let (recv, stage) = self.short(1_500, 6_000);
                let pod = self.pod_name(&app);
                let name = self.event_name(&pod, recv);
                let uri = format!("/api/v1/namespaces/{}/events", app.ns);
                let obj = ObjRef {
                    resource: "events",
                    namespace: Some(app.ns),
                    name: Some(&name),
                    version: "v1",
                    ..ObjRef::default()
                };
                // Kubelets report most events; controllers report the rest.
                if self.rng.chance(0.75) {
                    self.emit(
                        out,
                        &Ev {
                            uri: &uri,
                            verb: "create",
                            who: node_who,
                            ip: &node.ip,
                            ua: KUBELET_UA,
                            obj: Some(obj),
                            code: 201,
                            ..Ev::at(recv, stage)
                        },
                    );
                } else {
                    let s = self.sys[self.rng.pick(&[SYS_REPLICASET, SYS_DEPLOYMENT]).to_owned()]
                        .clone();
                    self.emit(
                        out,
                        &Ev {
                            uri: &uri,
                            verb: "create",
                            who: Who::Sa {
                                ns: s.ns,
                                name: s.name,
                                uid: &s.uid,
                                extra: None,
                            },
                            ip: &s.ip,
                            ua: &s.ua,
                            obj: Some(obj),
                            code: 201,
                            reason: Some(&s.reason),
                            ..Ev::at(recv, stage)
                        },
                    );
                }
                self.bump_rv();
            }
            Normal::AppConfigGet | Normal::AppSecretGet => {
                let (recv, stage) = self.short(700, 3_000);
                let (resource, name) = if kind == Normal::AppConfigGet {
                    ("configmaps", format!("{}-config", app.name))
                } else {
                    ("secrets", format!("{}-credentials", app.name))
                };
                let uri = format!("/api/v1/namespaces/{}/{resource}/{name}", app.ns);
                let ip = format!("10.244.{}.{}", node.cidr, self.rng.range(2, 250));
                let ua = format!(
                    "{}/v{} (linux/amd64) kubernetes/$Format",
                    app.name, app.version
                );
                let reason = format!(
                    r#"RBAC: allowed by RoleBinding "{n}-reader/{ns}" of Role "{n}-reader" to {s}"#,
                    n = app.name,
                    ns = app.ns,
                    s = sa_subject(app.ns, app.name)
                );
                self.emit(
                    out,
                    &Ev {
                        uri: &uri,
                        verb: "get",
                        who: Who::Sa {
                            ns: app.ns,
                            name: app.name,
                            uid: &app.sa_uid,
                            extra: None,
                        },
                        ip: &ip,
                        ua: &ua,
                        obj: Some(ObjRef {
                            resource,
                            namespace: Some(app.ns),
                            name: Some(&name),
                            version: "v1",
                            ..ObjRef::default()
                        }),
                        reason: Some(&reason),
                        ..Ev::at(recv, stage)
                    },
                );
            }
            Normal::PromList => {
                let (recv, stage) = self.short(2_000, 25_000);
                let s = self.sys[SYS_PROMETHEUS].clone();
                let resource = *self.rng.pick(&["pods", "endpoints", "services"]);
                let uri = format!(
                    "/api/v1/namespaces/{}/{resource}?limit=500&resourceVersion=0",
                    app.ns
                );
                self.emit(
                    out,
                    &Ev {
                        uri: &uri,
                        verb: "list",
                        who: Who::Sa {
                            ns: s.ns,
                            name: s.name,
                            uid: &s.uid,
                            extra: None,
                        },
                        ip: &s.ip,
                        ua: &s.ua,
                        obj: Some(ObjRef {
                            resource,
                            namespace: Some(app.ns),
                            version: "v1",
                            ..ObjRef::default()
                        }),
                        reason: Some(&s.reason),
                        ..Ev::at(recv, stage)
                    },
                );
            }
            Normal::WatchEnded => {
                // client-go reflectors pick timeoutSeconds in [300, 600).
                let secs = self.rng.range(300, 599);
                let dur = secs * 1_000_000 + self.rng.range(200, 900);
                let (recv, stage) = self.long(dur);
                let (who_sa, path, resource, group) = *self.rng.pick(&[
                    (
                        SYS_COREDNS,
                        "/apis/discovery.k8s.io/v1/endpointslices",
                        "endpointslices",
                        Some("discovery.k8s.io"),
                    ),
                    (SYS_COREDNS, "/api/v1/services", "services", None),
                    (
                        SYS_KUBE_PROXY,
                        "/apis/discovery.k8s.io/v1/endpointslices",
                        "endpointslices",
                        Some("discovery.k8s.io"),
                    ),
                    (
                        SYS_INGRESS,
                        "/apis/networking.k8s.io/v1/ingresses",
                        "ingresses",
                        Some("networking.k8s.io"),
                    ),
                    (SYS_PROMETHEUS, "/api/v1/pods", "pods", None),
                ]);
                let s = self.sys[who_sa].clone();
                let uri = format!(
                    "{path}?allowWatchBookmarks=true&resourceVersion={}&timeout={}m{}s&timeoutSeconds={secs}&watch=true",
                    self.rv.saturating_sub(secs * 300),
                    secs / 60,
                    secs % 60
                );
                self.emit(
                    out,
                    &Ev {
                        uri: &uri,
                        verb: "watch",
                        who: Who::Sa {
                            ns: s.ns,
                            name: s.name,
                            uid: &s.uid,
                            extra: None,
                        },
                        ip: &s.ip,
                        ua: &s.ua,
                        obj: Some(ObjRef {
                            resource,
                            group,
                            version: "v1",
                            ..ObjRef::default()
                        }),
                        reason: Some(&s.reason),
                        ..Ev::at(recv, stage)
                    },
                );
            }
            Normal::EndpointSliceUpdate => {
                let (recv, stage) = self.short(3_000, 11_000);
                let s = self.sys[SYS_ENDPOINTSLICE].clone();
                let slice = format!("{}-{}", app.name, self.rng.k8s_suffix(5));
                let uid = self.rng.uuid();
                let old_rv = self.rv - self.rng.range(100, 5_000);
                let mut b = std::mem::take(&mut self.body);
                b.clear();
                lit(
                    &mut b,
                    r#"{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"#,
                );
                jstr(&mut b, &slice);
                lit(&mut b, r#","generateName":"#);
                jstr(&mut b, &format!("{}-", app.name));
                lit(&mut b, r#","namespace":"#);
                jstr(&mut b, app.ns);
                lit(&mut b, r#","uid":"#);
                jstr(&mut b, &uid);
                lit(&mut b, r#","resourceVersion":""#);
                num(&mut b, old_rv);
                lit(&mut b, r#"","generation":"#);
                num(&mut b, self.rng.range(2, 90));
                lit(&mut b, r#","creationTimestamp":"#);
                ts_sec(
                    &mut b,
                    recv - self.rng.range(3_600, 40 * 86_400) * 1_000_000,
                );
                lit(
                    &mut b,
                    r#","labels":{"endpointslice.kubernetes.io/managed-by":"endpointslice-controller.k8s.io","kubernetes.io/service-name":"#,
                );
                jstr(&mut b, app.name);
                lit(&mut b, r#"}},"addressType":"IPv4","endpoints":["#);
                let n = self.rng.range(1, 4);
                for i in 0..n {
                    if i > 0 {
                        b.push(b',');
                    }
                    let host = self.rng.idx(self.nodes.len());
                    let pod = self.pod_name(&app);
                    let puid = self.rng.uuid();
                    lit(&mut b, r#"{"addresses":["10.244."#);
                    num(&mut b, self.nodes[host].cidr);
                    b.push(b'.');
                    num(&mut b, self.rng.range(2, 250));
                    lit(&mut b, r#""],"conditions":{"ready":"#);
                    lit(
                        &mut b,
                        if self.rng.chance(0.9) {
                            "true"
                        } else {
                            "false"
                        },
                    );
                    lit(
                        &mut b,
                        r#","serving":true,"terminating":false},"targetRef":{"kind":"Pod","namespace":"#,
                    );
                    jstr(&mut b, app.ns);
                    lit(&mut b, r#","name":"#);
                    jstr(&mut b, &pod);
                    lit(&mut b, r#","uid":"#);
                    jstr(&mut b, &puid);
                    lit(&mut b, r#"},"nodeName":"#);
                    jstr(&mut b, &self.nodes[host].name);
                    b.push(b'}');
                }
                lit(
                    &mut b,
                    r#"],"ports":[{"name":"http","protocol":"TCP","port":8080}]}"#,
                );
                let uri = format!(
                    "/apis/discovery.k8s.io/v1/namespaces/{}/endpointslices/{slice}",
                    app.ns
                );
                self.emit(
                    out,
                    &Ev {
                        level: Level::Request,
                        uri: &uri,
                        verb: "update",
                        who: Who::Sa {
                            ns: s.ns,
                            name: s.name,
                            uid: &s.uid,
                            extra: None,
                        },
                        ip: &s.ip,
                        ua: &s.ua,
                        obj: Some(ObjRef {
                            resource: "endpointslices",
                            namespace: Some(app.ns),
                            name: Some(&slice),
                            uid: Some(&uid),
                            group: Some("discovery.k8s.io"),
                            version: "v1",
                            rv: Some(old_rv),
                            sub: None,
                        }),
                        req: Some(&b),
                        reason: Some(&s.reason),
                        ..Ev::at(recv, stage)
                    },
                );
                self.body = b;
                self.bump_rv();
            }
            Normal::UserRead => {
                let (recv, stage) = self.short(1_000, 40_000);
                let (hi, ip) = self.human();
                let (user, groups, binding) = HUMANS[hi];
                let ua = *self.rng.pick(KUBECTL_UAS);
                let (uri, verb, resource, group, name) = match self.rng.below(4) {
                    0 => (
                        format!("/api/v1/namespaces/{}/pods?limit=500", app.ns),
                        "list",
                        "pods",
                        None,
                        None,
                    ),
                    1 => {
                        let p = self.pod_name(&app);
                        (
                            format!("/api/v1/namespaces/{}/pods/{p}", app.ns),
                            "get",
                            "pods",
                            None,
                            Some(p),
                        )
                    }
                    2 => (
                        format!("/apis/apps/v1/namespaces/{}/deployments?limit=500", app.ns),
                        "list",
                        "deployments",
                        Some("apps"),
                        None,
                    ),
                    _ => (
                        format!("/api/v1/namespaces/{}/services/{}", app.ns, app.name),
                        "get",
                        "services",
                        None,
                        Some(app.name.to_owned()),
                    ),
                };
                let reason = rb_reason(
                    binding,
                    app.ns,
                    human_role(binding),
                    &format!(r#"User "{user}""#),
                );
                self.emit(
                    out,
                    &Ev {
                        uri: &uri,
                        verb,
                        who: Who::Plain { name: user, groups },
                        ip: &ip,
                        ua,
                        obj: Some(ObjRef {
                            resource,
                            namespace: Some(app.ns),
                            name: name.as_deref(),
                            group,
                            version: "v1",
                            ..ObjRef::default()
                        }),
                        reason: Some(&reason),
                        ..Ev::at(recv, stage)
                    },
                );
            }
            Normal::UserLogs => {
                let (hi, ip) = self.human();
                let (user, groups, binding) = HUMANS[hi];
                let ua = *self.rng.pick(KUBECTL_UAS);
                let pod = self.pod_name(&app);
                let follow = self.rng.chance(0.3);
                let (recv, stage) = if follow {
                    let d = self.rng.range(5, 900) * 1_000_000;
                    self.long(d)
                } else {
                    self.short(20_000, 400_000)
                };
                let uri = format!(
                    "/api/v1/namespaces/{}/pods/{pod}/log?container={}{}&tailLines={}",
                    app.ns,
                    app.name,
                    if follow { "&follow=true" } else { "" },
                    *self.rng.pick(&[10u64, 100, 200, 500])
                );
                let reason = rb_reason(
                    binding,
                    app.ns,
                    human_role(binding),
                    &format!(r#"User "{user}""#),
                );
                self.emit(
                    out,
                    &Ev {
                        uri: &uri,
                        verb: "get",
                        who: Who::Plain { name: user, groups },
                        ip: &ip,
                        ua,
                        obj: Some(ObjRef {
                            resource: "pods",
                            namespace: Some(app.ns),
                            name: Some(&pod),
                            version: "v1",
                            sub: Some("log"),
                            ..ObjRef::default()
                        }),
                        reason: Some(&reason),
                        ..Ev::at(recv, stage)
                    },
                );
            }
            Normal::RsPodCreate => {
                let (recv, stage) = self.short(6_000, 25_000);
                let s = self.sys[SYS_REPLICASET].clone();
                let mut b = std::mem::take(&mut self.body);
                b.clear();
                self.app_pod_body(&mut b, &app);
                let uri = format!("/api/v1/namespaces/{}/pods", app.ns);
                self.emit(
                    out,
                    &Ev {
                        level: Level::Request,
                        uri: &uri,
                        verb: "create",
                        who: Who::Sa {
                            ns: s.ns,
                            name: s.name,
                            uid: &s.uid,
                            extra: None,
                        },
                        ip: &s.ip,
                        ua: &s.ua,
                        // generateName: the apiserver has no name yet when it
                        // fills objectRef, so real logs have none either.
                        obj: Some(ObjRef {
                            resource: "pods",
                            namespace: Some(app.ns),
                            version: "v1",
                            ..ObjRef::default()
                        }),
                        code: 201,
                        req: Some(&b),
                        reason: Some(&s.reason),
                        extra_ann: &[(
                            "pod-security.kubernetes.io/enforce-policy",
                            "baseline:latest",
                        )],
                        ..Ev::at(recv, stage)
                    },
                );
                self.body = b;
                self.bump_rv();
            }
            Normal::DaemonPodCreate => {
                let (recv, stage) = self.short(6_000, 25_000);
                let s = self.sys[SYS_DAEMONSET].clone();
                let mut b = std::mem::take(&mut self.body);
                b.clear();
                self.log_agent_pod_body(&mut b, &node);
                let uri = "/api/v1/namespaces/logging/pods";
                self.emit(
                    out,
                    &Ev {
                        level: Level::Request,
                        uri,
                        verb: "create",
                        who: Who::Sa {
                            ns: s.ns,
                            name: s.name,
                            uid: &s.uid,
                            extra: None,
                        },
                        ip: &s.ip,
                        ua: &s.ua,
                        obj: Some(ObjRef {
                            resource: "pods",
                            namespace: Some("logging"),
                            version: "v1",
                            ..ObjRef::default()
                        }),
                        code: 201,
                        req: Some(&b),
                        reason: Some(&s.reason),
                        extra_ann: &[(
                            "pod-security.kubernetes.io/enforce-policy",
                            "privileged:latest",
                        )],
                        ..Ev::at(recv, stage)
                    },
                );
                self.body = b;
                self.bump_rv();
            }
            Normal::CiApply => {
                let (recv, stage) = self.short(9_000, 40_000);
                let ci_uid = self.ci_uid.clone();
                let jti = self.rng.uuid();
                let extra =
                    format!(r#"{{"authentication.kubernetes.io/credential-id":["JTI={jti}"]}}"#);
                let new_version = format!(
                    "{}.{}.{}",
                    1 + self.rng.below(4),
                    self.rng.below(30),
                    self.rng.below(12)
                );
                let image = format!("registry.example.com/{}/{}:{new_version}", app.ns, app.name);
                let mut b = std::mem::take(&mut self.body);
                b.clear();
                // Client-side apply sends the changed fields plus the new
                // last-applied-configuration annotation.
                let mut la = Vec::with_capacity(1024);
                lit(
                    &mut la,
                    r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{},"labels":{"app.kubernetes.io/name":"#,
                );
                jstr(&mut la, app.name);
                lit(&mut la, r#"},"name":"#);
                jstr(&mut la, app.name);
                lit(&mut la, r#","namespace":"#);
                jstr(&mut la, app.ns);
                lit(
                    &mut la,
                    r#"},"spec":{"replicas":3,"selector":{"matchLabels":{"app.kubernetes.io/name":"#,
                );
                jstr(&mut la, app.name);
                lit(
                    &mut la,
                    r#"}},"template":{"metadata":{"labels":{"app.kubernetes.io/name":"#,
                );
                jstr(&mut la, app.name);
                lit(&mut la, r#"}},"spec":{"containers":[{"image":"#);
                jstr(&mut la, &image);
                lit(&mut la, r#","name":"#);
                jstr(&mut la, app.name);
                lit(
                    &mut la,
                    r#","ports":[{"containerPort":8080,"name":"http"}],"resources":{"limits":{"memory":"512Mi"},"requests":{"cpu":"250m","memory":"256Mi"}},"securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"runAsNonRoot":true}}],"serviceAccountName":"#,
                );
                jstr(&mut la, app.name);
                lit(&mut la, "}}}}\n");
                let la = String::from_utf8_lossy(&la).into_owned();
                lit(
                    &mut b,
                    r#"{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"#,
                );
                jstr(&mut b, &la);
                lit(
                    &mut b,
                    r#"}},"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"#,
                );
                jstr(&mut b, app.name);
                lit(&mut b, r#"}],"containers":[{"image":"#);
                jstr(&mut b, &image);
                lit(&mut b, r#","name":"#);
                jstr(&mut b, app.name);
                lit(&mut b, "}]}}}}");
                let uri = format!(
                    "/apis/apps/v1/namespaces/{}/deployments/{}?fieldManager=kubectl-client-side-apply&fieldValidation=Strict",
                    app.ns, app.name
                );
                let reason =
                    rb_reason("ci-deployer", app.ns, "edit", &sa_subject("ci", "deployer"));
                let ip = format!("10.0.3.{}", 40 + self.rng.below(8));
                let ua = KUBECTL_UAS[0];
                self.emit(
                    out,
                    &Ev {
                        level: Level::Request,
                        uri: &uri,
                        verb: "patch",
                        who: Who::Sa {
                            ns: "ci",
                            name: "deployer",
                            uid: &ci_uid,
                            extra: Some(&extra),
                        },
                        ip: &ip,
                        ua,
                        obj: Some(ObjRef {
                            resource: "deployments",
                            namespace: Some(app.ns),
                            name: Some(app.name),
                            group: Some("apps"),
                            version: "v1",
                            ..ObjRef::default()
                        }),
                        req: Some(&b),
                        reason: Some(&reason),
                        ..Ev::at(recv, stage)
                    },
                );
                self.body = b;
                self.bump_rv();
            }
            Normal::UserExec => {
                let (hi, ip) = self.human();
                let (user, groups, binding) = HUMANS[hi];
                let ua = *self.rng.pick(KUBECTL_UAS);
                let pod = self.pod_name(&app);
                let cmd = *self.rng.pick(BENIGN_EXEC);
                let d = self.rng.range(150_000, 3_000_000);
                let (recv, stage) = self.long(d);
                let uri = format!(
                    "/api/v1/namespaces/{}/pods/{pod}/exec?{cmd}&container={}&stderr=true&stdout=true",
                    app.ns, app.name
                );
                let reason = rb_reason(
                    binding,
                    app.ns,
                    human_role(binding),
                    &format!(r#"User "{user}""#),
                );
                self.emit(
                    out,
                    &Ev {
                        uri: &uri,
                        verb: "create",
                        who: Who::Plain { name: user, groups },
                        ip: &ip,
                        ua,
                        obj: Some(ObjRef {
                            resource: "pods",
                            namespace: Some(app.ns),
                            name: Some(&pod),
                            version: "v1",
                            sub: Some("exec"),
                            ..ObjRef::default()
                        }),
                        code: 101,
                        reason: Some(&reason),
                        ..Ev::at(recv, stage)
                    },
                );
            }
            Normal::RoleBindingCreate => {
                let (recv, stage) = self.short(4_000, 15_000);
                // Only admins may grant roles, so redraw until we get one.
                let (mut hi, mut ip) = self.human();
                while human_role(HUMANS[hi].2) != "admin" {
                    (hi, ip) = self.human();
                }
                let (user, groups, binding) = HUMANS[hi];
                let ua = *self.rng.pick(KUBECTL_UAS);
                let role = *self.rng.pick(&["view", "edit"]);
                let team = *self
                    .rng
                    .pick(&["frontend-team", "backend-team", "data-team", "qa"]);
                let name = format!("{team}-{role}");
                let uid = self.rng.uuid();
                let rv = self.bump_rv();
                let mut req = std::mem::take(&mut self.body);
                let mut resp = std::mem::take(&mut self.body2);
                req.clear();
                resp.clear();
                for (b, persisted) in [(&mut req, false), (&mut resp, true)] {
                    lit(
                        b,
                        r#"{"kind":"RoleBinding","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"#,
                    );
                    jstr(b, &name);
                    lit(b, r#","namespace":"#);
                    jstr(b, app.ns);
                    if persisted {
                        lit(b, r#","uid":"#);
                        jstr(b, &uid);
                        lit(b, r#","resourceVersion":""#);
                        num(b, rv);
                        lit(b, r#"","creationTimestamp":"#);
                        ts_sec(b, recv);
                        lit(
                            b,
                            r#","managedFields":[{"manager":"kubectl-create","operation":"Update","apiVersion":"rbac.authorization.k8s.io/v1","time":"#,
                        );
                        ts_sec(b, recv);
                        lit(
                            b,
                            r#","fieldsType":"FieldsV1","fieldsV1":{"f:roleRef":{},"f:subjects":{}}}]}"#,
                        );
                    } else {
                        lit(b, r#","creationTimestamp":null}"#);
                    }
                    lit(
                        b,
                        r#","subjects":[{"kind":"Group","apiGroup":"rbac.authorization.k8s.io","name":"#,
                    );
                    jstr(b, team);
                    lit(
                        b,
                        r#"}],"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"#,
                    );
                    jstr(b, role);
                    lit(b, "}}");
                }
                let uri = format!(
                    "/apis/rbac.authorization.k8s.io/v1/namespaces/{}/rolebindings?fieldManager=kubectl-create&fieldValidation=Strict",
                    app.ns
                );
                let reason = rb_reason(binding, app.ns, "admin", &format!(r#"User "{user}""#));
                self.emit(
                    out,
                    &Ev {
                        level: Level::RequestResponse,
                        uri: &uri,
                        verb: "create",
                        who: Who::Plain { name: user, groups },
                        ip: &ip,
                        ua,
                        obj: Some(ObjRef {
                            resource: "rolebindings",
                            namespace: Some(app.ns),
                            name: Some(&name),
                            group: Some("rbac.authorization.k8s.io"),
                            version: "v1",
                            ..ObjRef::default()
                        }),
                        code: 201,
                        req: Some(&req),
                        resp: Some(&resp),
                        reason: Some(&reason),
                        ..Ev::at(recv, stage)
                    },
                );
                self.body = req;
                self.body2 = resp;
            }
            Normal::TokenReview | Normal::SubjectAccessReview => {
                let (recv, stage) = self.short(900, 4_000);
                let s = self.sys[SYS_METRICS_SERVER].clone();
                let prom = self.sys[SYS_PROMETHEUS].clone();
                let (uri, resource, group, level) = if kind == Normal::TokenReview {
                    (
                        "/apis/authentication.k8s.io/v1/tokenreviews",
                        "tokenreviews",
                        "authentication.k8s.io",
                        Level::Metadata,
                    )
                } else {
                    (
                        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                        "subjectaccessreviews",
                        "authorization.k8s.io",
                        Level::Request,
                    )
                };
                let mut b = std::mem::take(&mut self.body);
                b.clear();
                if level == Level::Request {
                    lit(
                        &mut b,
                        r#"{"kind":"SubjectAccessReview","apiVersion":"authorization.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"nonResourceAttributes":{"path":"/metrics","verb":"get"},"user":"system:serviceaccount:monitoring:prometheus-k8s","groups":["system:serviceaccounts","system:serviceaccounts:monitoring","system:authenticated"],"uid":"#,
                    );
                    jstr(&mut b, &prom.uid);
                    lit(&mut b, r#"},"status":{"allowed":false}}"#);
                }
                self.emit(
                    out,
                    &Ev {
                        level,
                        uri,
                        verb: "create",
                        who: Who::Sa {
                            ns: s.ns,
                            name: s.name,
                            uid: &s.uid,
                            extra: None,
                        },
                        ip: &s.ip,
                        ua: &s.ua,
                        obj: Some(ObjRef {
                            resource,
                            group: Some(group),
                            version: "v1",
                            ..ObjRef::default()
                        }),
                        code: 201,
                        req: (level == Level::Request).then_some(b.as_slice()),
                        reason: Some(&s.reason),
                        ..Ev::at(recv, stage)
                    },
                );
                self.body = b;
            }
            Normal::StatusConfigMapUpdate => {
                let (recv, stage) = self.short(2_000, 7_000);
                let s = self.sys[SYS_AUTOSCALER].clone();
                let rv = self.rv - self.rng.range(100, 900);
                let uid = self.rng.uuid();
                self.emit(
                    out,
                    &Ev {
                        uri: "/api/v1/namespaces/kube-system/configmaps/cluster-autoscaler-status",
                        verb: "update",
                        who: Who::Sa {
                            ns: s.ns,
                            name: s.name,
                            uid: &s.uid,
                            extra: None,
                        },
                        ip: &s.ip,
                        ua: &s.ua,
                        obj: Some(ObjRef {
                            resource: "configmaps",
                            namespace: Some("kube-system"),
                            name: Some("cluster-autoscaler-status"),
                            uid: Some(&uid),
                            version: "v1",
                            rv: Some(rv),
                            ..ObjRef::default()
                        }),
                        reason: Some(&s.reason),
                        ..Ev::at(recv, stage)
                    },
                );
                self.bump_rv();
            }
            Normal::PodStatusPatch => {
                let (recv, stage) = self.short(3_000, 12_000);
                let pod = self.pod_name(&app);
                let puid = self.rng.uuid();
                let cid = self.rng.hex(64);
                let digest = self.rng.hex(64);
                let pod_ip = format!("10.244.{}.{}", node.cidr, self.rng.range(2, 250));
                let mut b = std::mem::take(&mut self.body);
                b.clear();
                lit(&mut b, r#"{"metadata":{"uid":"#);
                jstr(&mut b, &puid);
                lit(
                    &mut b,
                    r#"},"status":{"$setElementOrder/conditions":[{"type":"PodReadyToStartContainers"},{"type":"Initialized"},{"type":"Ready"},{"type":"ContainersReady"},{"type":"PodScheduled"}],"conditions":[{"lastTransitionTime":"#,
                );
                ts_sec(&mut b, recv);
                lit(
                    &mut b,
                    r#","status":"True","type":"Ready"},{"lastTransitionTime":"#,
                );
                ts_sec(&mut b, recv);
                lit(
                    &mut b,
                    r#","status":"True","type":"ContainersReady"}],"containerStatuses":[{"containerID":"containerd://"#,
                );
                lit(&mut b, &cid);
                lit(&mut b, r#"","image":"registry.example.com/"#);
                lit(&mut b, app.ns);
                b.push(b'/');
                lit(&mut b, app.name);
                b.push(b':');
                lit(&mut b, &app.version);
                lit(&mut b, r#"","imageID":"registry.example.com/"#);
                lit(&mut b, app.ns);
                b.push(b'/');
                lit(&mut b, app.name);
                lit(&mut b, "@sha256:");
                lit(&mut b, &digest);
                lit(&mut b, r#"","lastState":{},"name":"#);
                jstr(&mut b, app.name);
                lit(
                    &mut b,
                    r#","ready":true,"restartCount":0,"started":true,"state":{"running":{"startedAt":"#,
                );
                ts_sec(&mut b, recv.saturating_sub(4_000_000));
                lit(&mut b, r#"}}}],"hostIP":"#);
                jstr(&mut b, &node.ip);
                lit(&mut b, r#","hostIPs":[{"ip":"#);
                jstr(&mut b, &node.ip);
                lit(&mut b, r#"}],"phase":"Running","podIP":"#);
                jstr(&mut b, &pod_ip);
                lit(&mut b, r#","podIPs":[{"ip":"#);
                jstr(&mut b, &pod_ip);
                lit(&mut b, r#"}]}}"#);
                let uri = format!("/api/v1/namespaces/{}/pods/{pod}/status", app.ns);
                self.emit(
                    out,
                    &Ev {
                        level: Level::Request,
                        uri: &uri,
                        verb: "patch",
                        who: node_who,
                        ip: &node.ip,
                        ua: KUBELET_UA,
                        obj: Some(ObjRef {
                            resource: "pods",
                            namespace: Some(app.ns),
                            name: Some(&pod),
                            version: "v1",
                            sub: Some("status"),
                            ..ObjRef::default()
                        }),
                        req: Some(&b),
                        ..Ev::at(recv, stage)
                    },
                );
                self.body = b;
                self.bump_rv();
            }
            Normal::PodBinding => {
                let (recv, stage) = self.short(3_000, 9_000);
                let pod = self.pod_name(&app);
                let puid = self.rng.uuid();
                let mut b = std::mem::take(&mut self.body);
                b.clear();
                lit(
                    &mut b,
                    r#"{"kind":"Binding","apiVersion":"v1","metadata":{"name":"#,
                );
                jstr(&mut b, &pod);
                lit(&mut b, r#","namespace":"#);
                jstr(&mut b, app.ns);
                lit(&mut b, r#","uid":"#);
                jstr(&mut b, &puid);
                lit(
                    &mut b,
                    r#","creationTimestamp":null},"target":{"kind":"Node","name":"#,
                );
                jstr(&mut b, &node.name);
                lit(&mut b, "}}");
                let uri = format!("/api/v1/namespaces/{}/pods/{pod}/binding", app.ns);
                let ua = format!("kube-scheduler/{K8S_UA_TAIL}/scheduler");
                let reason = crb_reason(
                    "system:kube-scheduler",
                    "system:kube-scheduler",
                    r#"User "system:kube-scheduler""#,
                );
                self.emit(
                    out,
                    &Ev {
                        level: Level::Request,
                        uri: &uri,
                        verb: "create",
                        who: Who::Plain {
                            name: "system:kube-scheduler",
                            groups: AUTHENTICATED,
                        },
                        ip: CONTROL_PLANE_IP,
                        ua: &ua,
                        obj: Some(ObjRef {
                            resource: "pods",
                            namespace: Some(app.ns),
                            name: Some(&pod),
                            version: "v1",
                            sub: Some("binding"),
                            ..ObjRef::default()
                        }),
                        code: 201,
                        req: Some(&b),
                        reason: Some(&reason),
                        ..Ev::at(recv, stage)
                    },
                );
                self.body = b;
                self.bump_rv();
            }
            Normal::PodDelete => {
                let (recv, stage) = self.short(5_000, 20_000);
                let s = self.sys[SYS_REPLICASET].clone();
                let pod = self.pod_name(&app);
                let uri = format!("/api/v1/namespaces/{}/pods/{pod}", app.ns);
                self.emit(
                    out,
                    &Ev {
                        uri: &uri,
                        verb: "delete",
                        who: Who::Sa {
                            ns: s.ns,
                            name: s.name,
                            uid: &s.uid,
                            extra: None,
                        },
                        ip: &s.ip,
                        ua: &s.ua,
                        obj: Some(ObjRef {
                            resource: "pods",
                            namespace: Some(app.ns),
                            name: Some(&pod),
                            version: "v1",
                            ..ObjRef::default()
                        }),
                        reason: Some(&s.reason),
                        ..Ev::at(recv, stage)
                    },
                );
                self.bump_rv();
            }
        }
    }

    /// The Pod a ReplicaSet controller creates for an ordinary app: hardened,
    /// probes and resources set, with decode-time defaults as the audit log
    /// shows them.
    fn app_pod_body(&mut self, b: &mut Vec<u8>, app: &App) {
        lit(
            b,
            r#"{"kind":"Pod","apiVersion":"v1","metadata":{"generateName":"#,
        );
        jstr(b, &format!("{}-{}-", app.name, app.hash));
        lit(b, r#","namespace":"#);
        jstr(b, app.ns);
        lit(
            b,
            r#","creationTimestamp":null,"labels":{"app.kubernetes.io/name":"#,
        );
        jstr(b, app.name);
        lit(b, r#","app.kubernetes.io/part-of":"#);
        jstr(b, app.ns);
        lit(b, r#","pod-template-hash":"#);
        jstr(b, &app.hash);
        lit(
            b,
            r#"},"annotations":{"kubectl.kubernetes.io/restartedAt":"#,
        );
        ts_sec(b, self.now_us - self.rng.range(60, 86_400) * 1_000_000);
        lit(
            b,
            r#"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"#,
        );
        jstr(b, &format!("{}-{}", app.name, app.hash));
        lit(b, r#","uid":"#);
        jstr(b, &app.rs_uid);
        lit(
            b,
            r#","controller":true,"blockOwnerDeletion":true}]},"spec":{"volumes":[{"name":"tmp","emptyDir":{}}],"containers":[{"name":"#,
        );
        jstr(b, app.name);
        lit(b, r#","image":"registry.example.com/"#);
        lit(b, app.ns);
        b.push(b'/');
        lit(b, app.name);
        b.push(b':');
        lit(b, &app.version);
        lit(
            b,
            r#"","ports":[{"name":"http","containerPort":8080,"protocol":"TCP"},{"name":"metrics","containerPort":9090,"protocol":"TCP"}],"env":[{"name":"APP_ENV","value":"production"},{"name":"OTEL_EXPORTER_OTLP_ENDPOINT","value":"http://otel-collector.monitoring.svc:4317"},{"name":"POD_NAME","valueFrom":{"fieldRef":{"apiVersion":"v1","fieldPath":"metadata.name"}}},{"name":"DB_PASSWORD","valueFrom":{"secretKeyRef":{"name":"#,
        );
        jstr(b, &format!("{}-credentials", app.name));
        lit(
            b,
            r#","key":"password"}}}],"resources":{"limits":{"memory":"512Mi"},"requests":{"cpu":"250m","memory":"256Mi"}},"volumeMounts":[{"name":"tmp","mountPath":"/tmp"}],"livenessProbe":{"httpGet":{"path":"/livez","port":"http","scheme":"HTTP"},"initialDelaySeconds":10,"timeoutSeconds":1,"periodSeconds":10,"successThreshold":1,"failureThreshold":3},"readinessProbe":{"httpGet":{"path":"/readyz","port":"http","scheme":"HTTP"},"timeoutSeconds":1,"periodSeconds":5,"successThreshold":1,"failureThreshold":3},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent","securityContext":{"capabilities":{"drop":["ALL"]},"runAsNonRoot":true,"readOnlyRootFilesystem":true,"allowPrivilegeEscalation":false}}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":"#,
        );
        jstr(b, app.name);
        lit(b, r#","serviceAccount":"#);
        jstr(b, app.name);
        lit(
            b,
            r#","securityContext":{"runAsUser":10001,"fsGroup":10001,"seccompProfile":{"type":"RuntimeDefault"}},"affinity":{"podAntiAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":100,"podAffinityTerm":{"labelSelector":{"matchLabels":{"app.kubernetes.io/name":"#,
        );
        jstr(b, app.name);
        lit(
            b,
            r#"}},"topologyKey":"kubernetes.io/hostname"}}]}},"schedulerName":"default-scheduler","enableServiceLinks":true},"status":{}}"#,
        );
    }

    /// A log shipper Pod from a DaemonSet: legitimately mounts `/var/log`,
    /// so detectors must not treat every hostPath as hostile.
    fn log_agent_pod_body(&mut self, b: &mut Vec<u8>, node: &Node) {
        let hash = self.rng.k8s_suffix(10);
        lit(
            b,
            r#"{"kind":"Pod","apiVersion":"v1","metadata":{"generateName":"fluent-bit-","namespace":"logging","creationTimestamp":null,"labels":{"app.kubernetes.io/name":"fluent-bit","controller-revision-hash":"#,
        );
        jstr(b, &hash);
        lit(
            b,
            r#","pod-template-generation":"4"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"DaemonSet","name":"fluent-bit","uid":"#,
        );
        let uid = self.rng.uuid();
        jstr(b, &uid);
        lit(
            b,
            r#","controller":true,"blockOwnerDeletion":true}]},"spec":{"volumes":[{"name":"varlog","hostPath":{"path":"/var/log","type":""}},{"name":"containers","hostPath":{"path":"/var/lib/docker/containers","type":""}}],"containers":[{"name":"fluent-bit","image":"cr.fluentbit.io/fluent/fluent-bit:3.0.4","resources":{"limits":{"memory":"200Mi"},"requests":{"cpu":"50m","memory":"100Mi"}},"volumeMounts":[{"name":"varlog","readOnly":true,"mountPath":"/var/log"},{"name":"containers","readOnly":true,"mountPath":"/var/lib/docker/containers"}],"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":"fluent-bit","serviceAccount":"fluent-bit","securityContext":{},"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchFields":[{"key":"metadata.name","operator":"In","values":["#,
        );
        jstr(b, &node.name);
        lit(
            b,
            r#"]}]}]}}},"schedulerName":"default-scheduler","tolerations":[{"operator":"Exists"}],"enableServiceLinks":true},"status":{}}"#,
        );
    }

    #[allow(clippy::too_many_lines)] // one arm per attack kind reads best flat
    fn attack(&mut self, out: &mut Vec<u8>, kind: Attack) {
        let app_i = self.rng.idx(self.apps.len());
        let app = self.apps[app_i].clone();
        let node_i = self.rng.idx(self.nodes.len());
        let node = self.nodes[node_i].clone();
        // Attacks come from outside, in the documentation range.
        let ip = format!("203.0.113.{}", self.rng.range(2, 254));
        // The compromised account must be able to write, so skip viewers.
        let (mut hi, _) = self.human();
        while human_role(HUMANS[hi].2) == "view" {
            (hi, _) = self.human();
        }
        let (user, groups, binding) = HUMANS[hi];
        let ua = *self.rng.pick(KUBECTL_UAS);
        // A service-account token lifted from a pod and replayed from outside:
        // the bound-token claims still name the pod and node.
        let stolen_pod = self.pod_name(&app);
        let extra = format!(
            r#"{{"authentication.kubernetes.io/credential-id":["JTI={}"],"authentication.kubernetes.io/node-name":["{}"],"authentication.kubernetes.io/node-uid":["{}"],"authentication.kubernetes.io/pod-name":["{}"],"authentication.kubernetes.io/pod-uid":["{}"]}}"#,
            self.rng.uuid(),
            node.name,
            node.uid,
            stolen_pod,
            self.rng.uuid()
        );
        let stolen = Who::Sa {
            ns: app.ns,
            name: "default",
            uid: &app.sa_uid,
            extra: Some(&extra),
        };
        match kind {
            Attack::PrivilegedPod => {
                let (recv, stage) = self.short(8_000, 30_000);
                let name = format!(
                    "{}-{}",
                    *self
                        .rng
                        .pick(&["debug", "node-shell", "tmp", "kworker", "sys-diag"]),
                    self.rng.k8s_suffix(5)
                );
                let mut b = std::mem::take(&mut self.body);
                b.clear();
                lit(
                    &mut b,
                    r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"#,
                );
                jstr(&mut b, &name);
                lit(&mut b, r#","namespace":"#);
                jstr(&mut b, app.ns);
                lit(
                    &mut b,
                    r#","creationTimestamp":null},"spec":{"volumes":[{"name":"host","hostPath":{"path":"/","type":""}}],"containers":[{"name":"shell","image":"#,
                );
                let image = *self.rng.pick(&[
                    "alpine:3.19",
                    "ubuntu:22.04",
                    "busybox:1.36",
                    "docker.io/library/alpine:latest",
                ]);
                jstr(&mut b, image);
                lit(
                    &mut b,
                    r#","command":["nsenter","--target","1","--mount","--uts","--ipc","--net","--pid","--","sh"],"resources":{},"volumeMounts":[{"name":"host","mountPath":"/host"}],"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent","securityContext":{"capabilities":{"add":["SYS_ADMIN"]},"privileged":true},"stdin":true,"tty":true}],"restartPolicy":"Never","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","nodeName":"#,
                );
                jstr(&mut b, &node.name);
                lit(
                    &mut b,
                    r#","hostNetwork":true,"hostPID":true,"hostIPC":true,"securityContext":{},"schedulerName":"default-scheduler","tolerations":[{"operator":"Exists"}],"enableServiceLinks":true},"status":{}}"#,
                );
                let uri = format!(
                    "/api/v1/namespaces/{}/pods?fieldManager=kubectl-run",
                    app.ns
                );
                let reason = rb_reason(
                    binding,
                    app.ns,
                    human_role(binding),
                    &format!(r#"User "{user}""#),
                );
                let viol = r#"would violate PodSecurity "baseline:latest": host namespaces (hostNetwork=true, hostPID=true, hostIPC=true), privileged (container "shell" must not set securityContext.privileged=true), non-default capabilities (container "shell" must not include "SYS_ADMIN" in securityContext.capabilities.add), hostPath volumes (volume "host")"#;
                self.emit(
                    out,
                    &Ev {
                        level: Level::Request,
                        uri: &uri,
                        verb: "create",
                        who: Who::Plain { name: user, groups },
                        ip: &ip,
                        ua,
                        obj: Some(ObjRef {
                            resource: "pods",
                            namespace: Some(app.ns),
                            name: Some(&name),
                            version: "v1",
                            ..ObjRef::default()
                        }),
                        code: 201,
                        req: Some(&b),
                        reason: Some(&reason),
                        extra_ann: &[
                            (
                                "pod-security.kubernetes.io/enforce-policy",
                                "privileged:latest",
                            ),
                            ("pod-security.kubernetes.io/audit-violations", viol),
                        ],
                        ..Ev::at(recv, stage)
                    },
                );
                self.body = b;
                self.bump_rv();
            }
            Attack::HostPathWorkload => {
                let (recv, stage) = self.short(8_000, 30_000);
                let path = *self.rng.pick(&[
                    "/var/run/docker.sock",
                    "/run/containerd/containerd.sock",
                    "/etc/kubernetes",
                    "/var/lib/kubelet",
                    "/etc",
                    "/root",
                    "/proc",
                ]);
                let name = format!(
                    "{}-{}",
                    *self
                        .rng
                        .pick(&["node-exporter", "metrics-agent", "log-agent", "sysdiag"]),
                    self.rng.k8s_suffix(4)
                );
                let mut b = std::mem::take(&mut self.body);
                b.clear();
                lit(
                    &mut b,
                    r#"{"kind":"DaemonSet","apiVersion":"apps/v1","metadata":{"name":"#,
                );
                jstr(&mut b, &name);
                lit(&mut b, r#","namespace":"#);
                jstr(&mut b, app.ns);
                lit(&mut b, r#","creationTimestamp":null,"labels":{"app":"#);
                jstr(&mut b, &name);
                lit(&mut b, r#"}},"spec":{"selector":{"matchLabels":{"app":"#);
                jstr(&mut b, &name);
                lit(
                    &mut b,
                    r#"}},"template":{"metadata":{"creationTimestamp":null,"labels":{"app":"#,
                );
                jstr(&mut b, &name);
                lit(
                    &mut b,
                    r#"}},"spec":{"volumes":[{"name":"hostfs","hostPath":{"path":"#,
                );
                jstr(&mut b, path);
                lit(
                    &mut b,
                    r#","type":""}}],"containers":[{"name":"agent","image":"#,
                );
                let image = *self.rng.pick(&[
                    "ghcr.io/sysdiag/agent:0.3.1",
                    "docker.io/xmrig/xmrig:6.21.0",
                    "alpine:3.19",
                ]);
                jstr(&mut b, image);
                lit(
                    &mut b,
                    r#","resources":{},"volumeMounts":[{"name":"hostfs","mountPath":"/hostfs"}],"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","securityContext":{},"schedulerName":"default-scheduler","tolerations":[{"operator":"Exists"}],"enableServiceLinks":true}},"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":1,"maxSurge":0}},"revisionHistoryLimit":10},"status":{"currentNumberScheduled":0,"numberMisscheduled":0,"desiredNumberScheduled":0,"numberReady":0}}"#,
                );
                let uri = format!(
                    "/apis/apps/v1/namespaces/{}/daemonsets?fieldManager=kubectl-create&fieldValidation=Strict",
                    app.ns
                );
                let reason = rb_reason(
                    binding,
                    app.ns,
                    human_role(binding),
                    &format!(r#"User "{user}""#),
                );
                let viol = r#"would violate PodSecurity "baseline:latest": hostPath volumes (volume "hostfs")"#;
                self.emit(
                    out,
                    &Ev {
                        level: Level::Request,
                        uri: &uri,
                        verb: "create",
                        who: Who::Plain { name: user, groups },
                        ip: &ip,
                        ua,
                        obj: Some(ObjRef {
                            resource: "daemonsets",
                            namespace: Some(app.ns),
                            name: Some(&name),
                            group: Some("apps"),
                            version: "v1",
                            ..ObjRef::default()
                        }),
                        code: 201,
                        req: Some(&b),
                        reason: Some(&reason),
                        extra_ann: &[("pod-security.kubernetes.io/audit-violations", viol)],
                        ..Ev::at(recv, stage)
                    },
                );
                self.body = b;
                self.bump_rv();
            }
            Attack::ClusterAdminBinding => {
                let (recv, stage) = self.short(4_000, 15_000);
                let name = format!(
                    "{}-{}",
                    *self
                        .rng
                        .pick(&["debug-admin", "tmp-admin", "ops-override", "system-monitor"]),
                    self.rng.k8s_suffix(4)
                );
                let uid = self.rng.uuid();
                let rv = self.bump_rv();
                let to_sa = self.rng.chance(0.5);
                let mut req = std::mem::take(&mut self.body);
                let mut resp = std::mem::take(&mut self.body2);
                req.clear();
                resp.clear();
                for (b, persisted) in [(&mut req, false), (&mut resp, true)] {
                    lit(
                        b,
                        r#"{"kind":"ClusterRoleBinding","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"#,
                    );
                    jstr(b, &name);
                    if persisted {
                        lit(b, r#","uid":"#);
                        jstr(b, &uid);
                        lit(b, r#","resourceVersion":""#);
                        num(b, rv);
                        lit(b, r#"","creationTimestamp":"#);
                        ts_sec(b, recv);
                        lit(
                            b,
                            r#","managedFields":[{"manager":"kubectl-create","operation":"Update","apiVersion":"rbac.authorization.k8s.io/v1","time":"#,
                        );
                        ts_sec(b, recv);
                        lit(
                            b,
                            r#","fieldsType":"FieldsV1","fieldsV1":{"f:roleRef":{},"f:subjects":{}}}]}"#,
                        );
                    } else {
                        lit(b, r#","creationTimestamp":null}"#);
                    }
                    if to_sa {
                        lit(
                            b,
                            r#","subjects":[{"kind":"ServiceAccount","name":"default","namespace":"#,
                        );
                        jstr(b, app.ns);
                    } else {
                        lit(
                            b,
                            r#","subjects":[{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"#,
                        );
                        jstr(b, user);
                    }
                    lit(
                        b,
                        r#"}],"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"cluster-admin"}}"#,
                    );
                }
                let reason = crb_reason(
                    "rbac-managers",
                    "rbac-manager",
                    &format!(r#"User "{user}""#),
                );
                self.emit(out, &Ev {
                    level: Level::RequestResponse,
                    uri: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?fieldManager=kubectl-create&fieldValidation=Strict",
                    verb: "create",
                    who: Who::Plain { name: user, groups },
                    ip: &ip,
                    ua,
                    obj: Some(ObjRef {
                        resource: "clusterrolebindings",
                        name: Some(&name),
                        group: Some("rbac.authorization.k8s.io"),
                        version: "v1",
                        ..ObjRef::default()
                    }),
                    code: 201,
                    req: Some(&req),
                    resp: Some(&resp),
                    reason: Some(&reason),
                    ..Ev::at(recv, stage)
                });
                self.body = req;
                self.body2 = resp;
            }
            Attack::SecretsListAll => {
                let (recv, stage) = self.short(30_000, 180_000);
                let reason = crb_reason(
                    "debug-admin",
                    "cluster-admin",
                    &sa_subject(app.ns, "default"),
                );
                self.emit(
                    out,
                    &Ev {
                        uri: "/api/v1/secrets?limit=500",
                        verb: "list",
                        who: stolen,
                        ip: &ip,
                        ua,
                        obj: Some(ObjRef {
                            resource: "secrets",
                            version: "v1",
                            ..ObjRef::default()
                        }),
                        reason: Some(&reason),
                        ..Ev::at(recv, stage)
                    },
                );
            }
            Attack::Forbidden => {
                let (recv, stage) = self.short(500, 2_500);
                let sa_name = format!("system:serviceaccount:{}:default", app.ns);
                let anon = self.rng.chance(0.25);
                const CRB_URI: &str = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?fieldManager=kubectl-create&fieldValidation=Strict";
                let (uri, verb, obj) = match self.rng.below(4) {
                    0 => (
                        "/api/v1/secrets?limit=500".to_owned(),
                        "list",
                        ObjRef {
                            resource: "secrets",
                            version: "v1",
                            ..ObjRef::default()
                        },
                    ),
                    1 => (
                        CRB_URI.to_owned(),
                        "create",
                        ObjRef {
                            resource: "clusterrolebindings",
                            group: Some("rbac.authorization.k8s.io"),
                            version: "v1",
                            ..ObjRef::default()
                        },
                    ),
                    2 => (
                        "/api/v1/namespaces/kube-system/secrets?limit=500".to_owned(),
                        "list",
                        ObjRef {
                            resource: "secrets",
                            namespace: Some("kube-system"),
                            version: "v1",
                            ..ObjRef::default()
                        },
                    ),
                    _ => (
                        format!("/api/v1/nodes/{}/proxy/pods", node.name),
                        "get",
                        ObjRef {
                            resource: "nodes",
                            name: Some(&node.name),
                            version: "v1",
                            sub: Some("proxy"),
                            ..ObjRef::default()
                        },
                    ),
                };
                let who_name = if anon {
                    "system:anonymous"
                } else {
                    sa_name.as_str()
                };
                let msg = forbidden_message(
                    who_name,
                    verb,
                    obj.resource,
                    obj.sub,
                    obj.group.unwrap_or(""),
                    obj.namespace,
                    obj.name,
                );
                let anon_who = Who::Plain {
                    name: "system:anonymous",
                    groups: r#"["system:unauthenticated"]"#,
                };
                self.emit(
                    out,
                    &Ev {
                        uri: &uri,
                        verb,
                        who: if anon { anon_who } else { stolen },
                        ip: &ip,
                        ua: if anon { "python-requests/2.31.0" } else { ua },
                        obj: Some(obj),
                        code: 403,
                        failure: Some(Failure {
                            reason: "Forbidden",
                            message: &msg,
                            kind: obj.resource,
                            name: obj.name,
                            group: obj.group,
                        }),
                        reason: None,
                        ..Ev::at(recv, stage)
                    },
                );
            }
            Attack::ShellExec => {
                let pod = self.pod_name(&app);
                let websocket = self.rng.chance(0.5);
                let (cmd, verb, d) = if websocket {
                    (
                        "command=cat&command=%2Fvar%2Frun%2Fsecrets%2Fkubernetes.io%2Fserviceaccount%2Ftoken&container=",
                        "get",
                        self.rng.range(200_000, 900_000),
                    )
                } else {
                    (
                        "command=%2Fbin%2Fsh&container=",
                        "create",
                        self.rng.range(5_000_000, 600_000_000),
                    )
                };
                let (recv, stage) = self.long(d);
                let tail = if websocket {
                    "&stderr=true&stdout=true"
                } else {
                    "&stdin=true&stdout=true&tty=true"
                };
                let uri = format!(
                    "/api/v1/namespaces/{}/pods/{pod}/exec?{cmd}{}{tail}",
                    app.ns, app.name
                );
                let reason = rb_reason(
                    binding,
                    app.ns,
                    human_role(binding),
                    &format!(r#"User "{user}""#),
                );
                self.emit(
                    out,
                    &Ev {
                        uri: &uri,
                        verb,
                        who: Who::Plain { name: user, groups },
                        ip: &ip,
                        ua,
                        obj: Some(ObjRef {
                            resource: "pods",
                            namespace: Some(app.ns),
                            name: Some(&pod),
                            version: "v1",
                            sub: Some("exec"),
                            ..ObjRef::default()
                        }),
                        code: 101,
                        reason: Some(&reason),
                        ..Ev::at(recv, stage)
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const SENSITIVE_HOST_PATHS: &[&str] = &[
        "/",
        "/etc",
        "/etc/kubernetes",
        "/root",
        "/proc",
        "/var/lib/kubelet",
        "/var/run/docker.sock",
        "/run/containerd/containerd.sock",
    ];

    fn lines(cfg: SynthConfig, n: usize) -> Vec<u8> {
        let mut s = AuditSynth::new(cfg);
        let mut out = Vec::new();
        for _ in 0..n {
            s.next_line(&mut out);
        }
        out
    }

    fn parse_all(buf: &[u8]) -> Vec<Value> {
        buf.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| match serde_json::from_slice::<Value>(l) {
                Ok(v) => v,
                Err(e) => panic!("line does not parse ({e}): {}", String::from_utf8_lossy(l)),
            })
            .collect()
    }

    fn any_node(v: &Value, f: &dyn Fn(&serde_json::Map<String, Value>) -> bool) -> bool {
        match v {
            Value::Object(m) => f(m) || m.values().any(|x| any_node(x, f)),
            Value::Array(a) => a.iter().any(|x| any_node(x, f)),
            _ => false,
        }
    }

    /// Content-only classifier: what a detector would flag.
    fn is_attack(e: &Value) -> bool {
        let code = e["responseStatus"]["code"].as_u64().unwrap_or(0);
        let o = &e["objectRef"];
        let res = o["resource"].as_str().unwrap_or("");
        let uri = e["requestURI"].as_str().unwrap_or("");
        let req = &e["requestObject"];
        code == 403
            || (res == "secrets" && e["verb"] == "list" && o.get("namespace").is_none())
            || (res == "clusterrolebindings" && req["roleRef"]["name"] == "cluster-admin")
            || (o["subresource"] == "exec"
                && (uri.contains("%2Fbin%2Fsh") || uri.contains("serviceaccount%2Ftoken")))
            || any_node(req, &|m| {
                m.get("privileged") == Some(&Value::Bool(true))
                    || m.get("hostPID") == Some(&Value::Bool(true))
                    || m.get("hostNetwork") == Some(&Value::Bool(true))
                    || m.get("hostPath")
                        .and_then(|h| h["path"].as_str())
                        .is_some_and(|p| SENSITIVE_HOST_PATHS.contains(&p))
            })
    }

    #[test]
    fn every_line_is_a_valid_audit_event() {
        let buf = lines(
            SynthConfig {
                seed: 7,
                attack_ratio: 0.05,
            },
            5_000,
        );
        assert_eq!(buf.last(), Some(&b'\n'));
        let events = parse_all(&buf);
        assert_eq!(events.len(), 5_000);
        for e in &events {
            assert_eq!(e["kind"], "Event");
            assert_eq!(e["apiVersion"], "audit.k8s.io/v1");
            assert_eq!(e["stage"], "ResponseComplete");
            assert!(e["auditID"].as_str().is_some_and(|s| s.len() == 36));
            assert!(e["verb"].is_string());
            assert!(e["user"]["username"].is_string());
            assert!(e["responseStatus"]["code"].is_u64());
            let level = e["level"].as_str().unwrap_or("");
            assert_eq!(
                e.get("requestObject").is_some(),
                level == "Request" || level == "RequestResponse",
                "{e}"
            );
            if e.get("responseObject").is_some() {
                assert_eq!(level, "RequestResponse");
            }
        }
    }

    #[test]
    fn timestamps_are_monotonic() {
        let buf = lines(
            SynthConfig {
                seed: 11,
                attack_ratio: 0.05,
            },
            5_000,
        );
        let mut last_stage = String::new();
        let mut last_recv = String::new();
        for e in parse_all(&buf) {
            let recv = e["requestReceivedTimestamp"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let stage = e["stageTimestamp"].as_str().unwrap_or("").to_owned();
            assert_eq!(recv.len(), 27, "{recv}");
            assert!(recv <= stage, "{recv} > {stage}");
            assert!(
                stage >= last_stage,
                "stage went back: {last_stage} -> {stage}"
            );
            let uri = e["requestURI"].as_str().unwrap_or("");
            let long_running = e["verb"] == "watch"
                || e["objectRef"]["subresource"] == "exec"
                || uri.contains("follow=true");
            if !long_running {
                assert!(recv >= last_recv, "recv went back: {last_recv} -> {recv}");
                last_recv = recv;
            }
            last_stage = stage;
        }
    }

    #[test]
    fn average_line_size_is_about_one_kib() {
        let buf = lines(
            SynthConfig {
                seed: 3,
                attack_ratio: 0.01,
            },
            10_000,
        );
        let avg = buf.len() / 10_000;
        assert!((700..1600).contains(&avg), "average line {avg} bytes");
        let longest = buf
            .split(|&b| b == b'\n')
            .map(<[u8]>::len)
            .max()
            .unwrap_or(0);
        assert!(longest < 8 * 1024, "longest line {longest} bytes");
    }

    #[test]
    fn same_seed_same_bytes() {
        let cfg = SynthConfig {
            seed: 42,
            attack_ratio: 0.02,
        };
        assert_eq!(generate(cfg, 256 * 1024), generate(cfg, 256 * 1024));
        let other = SynthConfig { seed: 43, ..cfg };
        assert_ne!(generate(cfg, 64 * 1024), generate(other, 64 * 1024));
    }

    #[test]
    fn generate_stops_just_past_target() {
        let buf = generate(SynthConfig::default(), 100_000);
        assert!(buf.len() >= 100_000 && buf.len() < 100_000 + 8 * 1024);
        assert_eq!(buf.last(), Some(&b'\n'));
    }

    #[test]
    fn attack_share_matches_ratio() {
        for (seed, ratio) in [(1, 0.0), (2, 0.01), (5, 0.05), (9, 0.25)] {
            let mut s = AuditSynth::new(SynthConfig {
                seed,
                attack_ratio: ratio,
            });
            let mut out = Vec::new();
            for _ in 0..10_000 {
                s.next_line(&mut out);
            }
            let flagged = parse_all(&out).iter().filter(|e| is_attack(e)).count() as u64;
            // The content classifier and the generator's own count agree
            // exactly, so normal traffic never looks like an attack.
            assert_eq!(flagged, s.attack_lines(), "seed {seed}");
            assert_eq!(s.lines(), 10_000);
            let expected = ratio * 10_000.0;
            // Five binomial standard deviations, plus one line of slack.
            let tol = 5.0 * (10_000.0 * ratio * (1.0 - ratio)).sqrt() + 1.0;
            assert!(
                (flagged as f64 - expected).abs() <= tol,
                "ratio {ratio}: {flagged} attack lines, expected {expected}±{tol}"
            );
        }
    }

    #[test]
    fn attack_kinds_all_appear() {
        let buf = lines(
            SynthConfig {
                seed: 21,
                attack_ratio: 1.0,
            },
            600,
        );
        let events = parse_all(&buf);
        assert!(events.iter().all(is_attack));
        assert!(events.iter().any(|e| e["responseStatus"]["code"] == 403));
        assert!(
            events
                .iter()
                .any(|e| e["objectRef"]["resource"] == "clusterrolebindings")
        );
        assert!(
            events
                .iter()
                .any(|e| e["requestURI"] == "/api/v1/secrets?limit=500"
                    && e["responseStatus"]["code"] == 200)
        );
        assert!(
            events
                .iter()
                .any(|e| e["objectRef"]["subresource"] == "exec" && e["verb"] == "get")
        );
        assert!(
            events
                .iter()
                .any(|e| e["objectRef"]["subresource"] == "exec" && e["verb"] == "create")
        );
        assert!(
            events
                .iter()
                .any(|e| e["objectRef"]["resource"] == "daemonsets")
        );
    }

    #[test]
    fn out_of_range_ratios_are_clamped() {
        let none = lines(
            SynthConfig {
                seed: 4,
                attack_ratio: f64::NAN,
            },
            2_000,
        );
        assert!(!parse_all(&none).iter().any(is_attack));
        let all = lines(
            SynthConfig {
                seed: 4,
                attack_ratio: 7.5,
            },
            200,
        );
        assert!(parse_all(&all).iter().all(is_attack));
    }

    #[test]
    fn escaping_and_time_helpers() {
        let mut out = Vec::new();
        jstr(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(String::from_utf8_lossy(&out), r#""a\"b\\c\nd\u0001é""#);
        out.clear();
        ts_micro(&mut out, START_US + 1);
        assert_eq!(out, br#""2024-07-16T09:00:00.000001Z""#.to_vec());
        out.clear();
        // Leap day and end of year.
        ts_sec(&mut out, 1_709_164_800 * 1_000_000);
        assert_eq!(out, br#""2024-02-29T00:00:00Z""#.to_vec());
        out.clear();
        ts_sec(&mut out, 1_735_689_599 * 1_000_000);
        assert_eq!(out, br#""2024-12-31T23:59:59Z""#.to_vec());
    }
}
