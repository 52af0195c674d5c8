#!/usr/bin/env python3
"""What a user installing Vigil relies on, checked offline.

- charts/vigil lints with `helm lint --strict` and renders with several sets of values
  (tests/chart/values/*.yaml); values that must be refused are refused, with the reason;
- every rendered set and deploy/ pass `kubernetes-validate --strict`, for the newest
  Kubernetes and the oldest the chart supports;
- the agent accepts the agent.yaml the chart renders (`vigil-agent check-config`), and every
  file a configuration names is in a volume the pod mounts;
- the pods keep their security promises (read-only host mounts, no capabilities, the
  operator non-root and restricted) and the RBAC grants exactly what the programs call;
- deploy/vigil.yaml is the chart rendered with its defaults; the CRD in the chart and in
  deploy/ is `vigil-operator crd`; the example ContainerMonitors pass the CRD's schema and
  render without a refusal or a clamp;
- the Grafana dashboard names only metrics the programs export;
- both images build FROM scratch, run (`--version`, `--help`), resolve names, take the
  chart's configuration, and the operator starts its webhook collector from the chart's
  volumes as a non-root user on a read-only root.

Run by tests/chart.sh after `cargo test` (which builds target/debug/vigil-agent and
vigil-operator); `tests/chart.sh` installs the Python packages it needs.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

# No __pycache__ beside the sources of a test run.
sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import chartlib  # noqa: E402

ROOT = chartlib.ROOT
CHART = chartlib.CHART
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
if not TARGET.is_absolute():
    TARGET = ROOT / TARGET
AGENT_BIN = TARGET / "debug" / "vigil-agent"
OPERATOR_BIN = TARGET / "debug" / "vigil-operator"
DOCKER_HOST = os.environ.get("VIGIL_TEST_DOCKER_HOST", "unix:///tmp/vigil-engines/docker/docker.sock")
IMAGE_REPO = "vigil-test"
IMAGE_TAG = "chart-check"
CRD_FILE = "containermonitors.vigil.dev.yaml"
# The oldest Kubernetes the chart's kubeVersion admits, and the newest kubernetes-validate knows.
KUBE_VERSIONS = ["1.25.0", None]


def need(module, pip_name):
    try:
        return __import__(module)
    except ImportError:
        sys.exit(f"{pip_name} is missing: python3 -m pip install {pip_name} (tests/chart.sh installs it)")


yaml = need("yaml", "pyyaml")
jsonschema = need("jsonschema", "jsonschema")
kubernetes_validate = need("kubernetes_validate", "kubernetes-validate")
helm = chartlib.helm()


class Failure(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Failure(message)


CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


# ---------------------------------------------------------------------------------------
# Values sets and their renders

VALUES_DIR = Path(__file__).resolve().parent / "values"


def value_sets():
    """name -> (values, release, namespace). The defaults, then every tests/chart/values file;
    a file may name its release and namespace in a leading `# release: NAME NAMESPACE`."""
    sets = {"defaults": ({}, chartlib.RELEASE, chartlib.NAMESPACE)}
    for path in sorted(VALUES_DIR.glob("*.yaml")):
        text = path.read_text()
        release, namespace = chartlib.RELEASE, chartlib.NAMESPACE
        m = re.search(r"^# release: (\S+) (\S+)$", text, re.M)
        if m:
            release, namespace = m.group(1), m.group(2)
        sets[path.stem] = (yaml.safe_load(text) or {}, release, namespace)
    return sets


SETS = value_sets()
_renders = {}


class Render:
    """One values set, rendered: the documents by kind and name, and the values merged
    with the chart's defaults."""

    def __init__(self, name):
        values, self.release, self.namespace = SETS[name]
        self.name = name
        self.values = values
        self.files = chartlib.render(values, name=self.release, namespace=self.namespace)
        self.docs = [yaml.safe_load(text) for _, text in chartlib.documents(self.files)]
        with helm.Chart.load(str(CHART)) as chart:
            self.merged = chart.merge_values(values)

    def all(self, kind):
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind, name=None):
        found = [d for d in self.all(kind) if name is None or d["metadata"]["name"] == name]
        expect(len(found) == 1, f"[{self.name}] expected one {kind} {name or ''}, found {len(found)}")
        return found[0]

    def maybe(self, kind):
        found = self.all(kind)
        return found[0] if found else None

    def configmap_file(self, cm_name, key):
        return self.one("ConfigMap", cm_name)["data"][key]


def rendered(name):
    if name not in _renders:
        _renders[name] = Render(name)
    return _renders[name]


def fullname(r):
    if r.merged.get("fullnameOverride"):
        return r.merged["fullnameOverride"]
    return r.release if "vigil" in r.release else f"{r.release}-vigil"


# ---------------------------------------------------------------------------------------
# Helm


@check
def helm_lint_strict_passes_for_every_values_set():
    for name, (values, _, namespace) in SETS.items():
        report = helm.lint(str(CHART), values, strict=True, namespace=namespace)
        problems = [m for m in report["messages"] if m["severity"] >= 2] + [
            {"error": e} for e in report.get("errors") or []
        ]
        expect(report["total_charts_linted"] == 1, f"[{name}] nothing linted: {report}")
        expect(not problems, f"[{name}] helm lint --strict: {problems}")


@check
def every_values_set_renders():
    for name in SETS:
        r = rendered(name)
        expect(len(r.docs) >= 3, f"[{name}] rendered only {len(r.docs)} documents")
        expect(r.files.get("vigil/templates/NOTES.txt", "").strip(), f"[{name}] no NOTES.txt")


INVALID = [
    # (why, values, words the refusal must contain)
    ("a password in values", {"outputs": {"wazuh": {"enabled": True, "manager": "m", "password": "hunter2"}}}, ["password"]),
    ("a misspelt key", {"agent": {"hostPid": False}}, ["hostPid"]),
    ("a relative host path", {"agent": {"stateDir": "var/lib/vigil"}}, ["stateDir"]),
    ("an unknown spool policy", {"outputs": {"wazuh": {"spool": {"whenFull": "discard"}}}}, ["whenFull"]),
    ("Wazuh without a manager", {"outputs": {"wazuh": {"enabled": True}}}, ["outputs.wazuh.manager"]),
    ("the webhook without its certificate", {"operator": {"webhook": {"enabled": True}}}, ["tls.secretName"]),
    ("the webhook with no way to authenticate callers",
     {"operator": {"webhook": {"enabled": True, "tls": {"secretName": "t"}, "clientCA": {"enabled": False}}}},
     ["authenticate"]),
    ("two replicas without leader election", {"operator": {"leaderElection": {"enabled": False}}}, ["leaderElection"]),
    ("resource usage without the host's PIDs", {"agent": {"hostPID": False}}, ["agent.hostPID"]),
    ("hardening checks without the Docker engine", {"agent": {"sources": {"hardening": {"enabled": True}}}},
     ["agent.sources.docker.enabled"]),
    ("a daily time that is not one", {"agent": {"sources": {"hardening": {"time": "25:00"}}}}, ["time"]),
]


@check
def values_that_cannot_work_are_refused_with_the_reason():
    for why, values, words in INVALID:
        try:
            chartlib.render(values)
        except helm.HelmError as e:
            for word in words:
                expect(word in str(e), f"{why}: refused, but the message does not say {word!r}: {e}")
            continue
        raise Failure(f"{why}: rendered instead of being refused")


@check
def every_value_is_documented_in_helm_docs_style():
    """Each key carries a `# --` comment, or sits in a documented parent, or is a mapping
    whose keys are all documented: what helm-docs turns into the values table."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    stack = []  # (indent, documented)
    comment = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped)
            continue
        if not stripped:
            comment = []
            continue
        m = re.match(r"^( *)([A-Za-z0-9_.-]+):", line)
        if not m or stripped.startswith("-"):
            comment = []
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent_documented = any(doc for _, doc in stack)
        documented = any(c.startswith("# --") for c in comment)
        rest = line[m.end():].strip()
        is_mapping = rest == "" and i + 1 < len(lines) and _next_key_indent(lines, i) > indent
        if not (documented or parent_documented or is_mapping):
            undocumented.append(f"values.yaml:{i + 1}: {m.group(2)}")
        stack.append((indent, documented or parent_documented))
        comment = []
    expect(not undocumented, "keys without a `# --` comment: " + ", ".join(undocumented))


def _next_key_indent(lines, i):
    for line in lines[i + 1:]:
        if line.strip() and not line.strip().startswith("#"):
            return len(line) - len(line.lstrip())
    return -1


# ---------------------------------------------------------------------------------------
# Kubernetes schemas

# Kinds kubernetes-validate has no schema for, and what vouches for them instead.
NO_SCHEMA = {"ServiceMonitor": "monitoring.coreos.com/v1"}


def validate_docs(label, docs):
    for version in KUBE_VERSIONS:
        v = version or kubernetes_validate.latest_version()
        for doc in docs:
            kn = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(doc, v, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                expect(NO_SCHEMA.get(doc["kind"]) == doc.get("apiVersion"),
                       f"[{label}] kubernetes-validate has no schema for {kn} ({doc.get('apiVersion')}) in {v}")
            except kubernetes_validate.ValidationError as e:
                raise Failure(f"[{label}] {kn} is invalid for Kubernetes {v}: {e.message} at {list(e.path)}")


@check
def kubernetes_validate_strict_passes_on_every_render_and_on_deploy():
    for name in SETS:
        validate_docs(name, rendered(name).docs)
    deploy = [d for d in yaml.safe_load_all(chartlib.DEPLOY.read_text()) if d]
    expect(len(deploy) >= 10, f"deploy/vigil.yaml holds only {len(deploy)} objects")
    validate_docs("deploy/vigil.yaml", deploy)
    crd = yaml.safe_load((ROOT / "deploy" / "crds" / CRD_FILE).read_text())
    validate_docs("deploy/crds", [crd])


@check
def rendered_servicemonitors_select_a_service_port():
    r = rendered("full")
    monitors = r.all("ServiceMonitor")
    expect(len(monitors) == 2, f"[full] expected 2 ServiceMonitors, found {len(monitors)}")
    for sm in monitors:
        sel = sm["spec"]["selector"]["matchLabels"]
        services = [s for s in r.all("Service") if sel.items() <= s["metadata"]["labels"].items()]
        ports = {p["name"] for s in services for p in s["spec"]["ports"]}
        for ep in sm["spec"]["endpoints"]:
            expect(ep["port"] in ports, f"ServiceMonitor {sm['metadata']['name']}: no Service port {ep['port']!r} ({ports})")


# ---------------------------------------------------------------------------------------
# The agent


def agent_config(r):
    return yaml.safe_load(r.configmap_file(f"{fullname(r)}-agent", "agent.yaml"))


def require_binary(path):
    expect(path.is_file(), f"{path} is missing: run `cargo build -p vigil-agent -p vigil-operator` "
                           f"(tests/run.sh runs this script after cargo test, which builds it)")


@check
def the_agent_accepts_every_rendered_agent_yaml():
    require_binary(AGENT_BIN)
    with tempfile.TemporaryDirectory() as tmp:
        for name in SETS:
            r = rendered(name)
            if not r.merged["agent"]["enabled"]:
                continue
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(r.configmap_file(f"{fullname(r)}-agent", "agent.yaml"))
            p = subprocess.run([str(AGENT_BIN), "check-config", str(path)], capture_output=True, text=True)
            expect(p.returncode == 0, f"[{name}] vigil-agent check-config refuses the chart's agent.yaml: "
                                      f"{p.stderr.strip() or p.stdout.strip()}")


@check
def the_agent_follows_the_operator_as_agreed():
    r = rendered("defaults")
    cfg = agent_config(r)
    expect(cfg.get("operator") == {
        "config_dir": "/etc/vigil/operator/config",
        "policy_dir": "/etc/vigil/operator/policy",
        "audit_policy": {
            "path": "/etc/kubernetes/vigil/audit-policy.yaml",
            "manifest": "/etc/kubernetes/manifests/kube-apiserver.yaml",
            "restart_apiserver": False,
        },
        "status_configmap": "vigil-policy-status",
    }, f"operator block: {cfg.get('operator')}")
    expect("node" not in cfg, "the node name must come from $NODE_NAME, not the shared ConfigMap")
    env = {e["name"]: e for e in agent_container(r)["env"]}
    expect(env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName", "NODE_NAME")
    expect(env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace", "POD_NAMESPACE")
    mounts = {m["mountPath"]: m for m in agent_container(r)["volumeMounts"]}
    volumes = {v["name"]: v for v in r.one("DaemonSet")["spec"]["template"]["spec"]["volumes"]}
    for path, cm in [("/etc/vigil/operator/config", "vigil-agent-config"), ("/etc/vigil/operator/policy", "vigil-audit-policy")]:
        vol = volumes[mounts[path]["name"]]
        expect(vol["configMap"]["name"] == cm and vol["configMap"]["optional"] is True,
               f"{path} must be ConfigMap {cm}, optional (the operator creates it later): {vol}")
    policy_dir = volumes[mounts["/etc/kubernetes/vigil"]["name"]]["hostPath"]
    expect(policy_dir["type"] == "DirectoryOrCreate" and not mounts["/etc/kubernetes/vigil"].get("readOnly"),
           "/etc/kubernetes/vigil: a read-write hostPath, created where missing")
    expect(mounts["/etc/kubernetes/manifests"].get("readOnly") is True, "manifests read-only by default")
    r2 = rendered("docker-nodes")
    expect(agent_config(r2)["operator"]["audit_policy"]["restart_apiserver"] is True, "restartApiserver value")
    m2 = {m["mountPath"]: m for m in agent_container(r2)["volumeMounts"]}
    expect(not m2["/etc/kubernetes/manifests"].get("readOnly"), "restartApiserver mounts the manifests read-write")


def agent_container(r):
    return r.one("DaemonSet")["spec"]["template"]["spec"]["containers"][0]


def operator_container(r):
    return r.one("Deployment")["spec"]["template"]["spec"]["containers"][0]


def files_named(config):
    """Every file or directory path a configuration names (keys ending in _file, _files,
    _dir, path, paths, address, endpoint), with its key."""
    out = []

    def walk(node, key=""):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif isinstance(node, str):
            if re.search(r"(_file|_files|_dir|_root|^path|^paths|^address|^endpoint|^manifest)$", key):
                p = node[len("unix://"):] if node.startswith("unix://") else node
                if p.startswith("/"):
                    out.append((key, p))
    walk(config)
    return out


def mount_for(path, mounts):
    best = None
    for m in mounts:
        mp = m["mountPath"].rstrip("/")
        if path == mp or path.startswith(mp + "/"):
            if best is None or len(mp) > len(best["mountPath"]):
                best = m
    return best


# Paths the agent writes. Everything else it reads from the host is mounted read-only.
AGENT_WRITABLE = {"state", "audit-policy-dir", "static-pod-manifests"}


@check
def every_file_the_agent_is_told_about_is_mounted_and_host_mounts_are_read_only():
    for name in SETS:
        r = rendered(name)
        if not r.merged["agent"]["enabled"]:
            continue
        cfg = agent_config(r)
        c = agent_container(r)
        spec = r.one("DaemonSet")["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        for m in c["volumeMounts"]:
            expect(m["name"] in volumes, f"[{name}] mount of undeclared volume {m['name']}")
            vol = volumes[m["name"]]
            if "hostPath" in vol and not m.get("readOnly"):
                expect(m["name"] in AGENT_WRITABLE, f"[{name}] host path {vol['hostPath']['path']} mounted read-write")
                if m["name"] == "static-pod-manifests":
                    expect(r.merged["agent"]["auditPolicy"]["restartApiserver"], f"[{name}] manifests writable")
        mounted = {m["name"] for m in c["volumeMounts"]}
        expect(mounted == set(volumes), f"[{name}] volumes not mounted: {set(volumes) - mounted}")
        for key, path in files_named(cfg):
            if key == "path" and path == cfg.get("sources", {}).get("audit_log", {}).get("path") \
                    and not cfg["sources"]["audit_log"].get("enabled", True):
                continue
            if key == "host_root":
                # Only the runtimes' data directories are mounted under it, checked below.
                continue
            expect(mount_for(path, c["volumeMounts"]) or path == cfg.get("state_dir"),
                   f"[{name}] agent.yaml names {path} ({key}), which no volume provides")
        expect(mount_for(cfg["state_dir"], c["volumeMounts"])["name"] == "state", f"[{name}] state_dir not the state volume")
        drift = r.merged["agent"]["sources"]["drift"]
        if drift["enabled"]:
            root = cfg["sources"]["drift"]["host_root"]
            for runtime, key in [("containerd", "containerdRoot"), ("docker", "dockerRoot")]:
                if r.merged["agent"]["sources"][runtime]["enabled"]:
                    m = mount_for(root + drift[key] + "/x", c["volumeMounts"])
                    expect(m and volumes[m["name"]]["hostPath"]["path"] == drift[key] and m.get("readOnly"),
                           f"[{name}] drift needs {drift[key]} read-only under {root}: {m}")
        state = volumes["state"]["hostPath"]
        expect(state["path"] == r.merged["agent"]["stateDir"] and state["type"] == "DirectoryOrCreate",
               f"[{name}] the state directory must be a hostPath that survives the pod: {state}")


def tolerates(tolerations, taint):
    for t in tolerations or []:
        if t.get("effect") and t["effect"] != taint["effect"]:
            continue
        if t.get("operator") == "Exists" and t.get("key") in (None, "", taint["key"]):
            return True
        if t.get("operator", "Equal") == "Equal" and t.get("key") == taint["key"] and t.get("value", "") == taint.get("value", ""):
            return True
    return False


@check
def the_agent_runs_on_every_node_with_only_the_capabilities_its_sources_need_and_probes_its_metrics_port():
    for name in SETS:
        r = rendered(name)
        if not r.merged["agent"]["enabled"]:
            continue
        spec = r.one("DaemonSet")["spec"]["template"]["spec"]
        for taint in [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                      {"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"},
                      {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]:
            expect(tolerates(spec.get("tolerations"), taint), f"[{name}] agents do not tolerate {taint}")
        c = spec["containers"][0]
        sc = c["securityContext"]
        expect(sc.get("privileged") is not True and sc["allowPrivilegeEscalation"] is False, f"[{name}] {sc}")
        sources = r.merged["agent"]["sources"]
        added = [cap for cap, on in [("NET_ADMIN", sources["processes"]["enabled"]),
                                     ("DAC_READ_SEARCH", sources["drift"]["enabled"])] if on]
        want = {"drop": ["ALL"], "add": added} if added else {"drop": ["ALL"]}
        expect(sc["capabilities"] == want, f"[{name}] capabilities {sc['capabilities']}, want {want}")
        expect(sc["readOnlyRootFilesystem"] is True, f"[{name}] writable root file system")
        expect(spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", f"[{name}] seccomp")
        expect(bool(spec.get("hostNetwork")) == sources["processes"]["enabled"],
               f"[{name}] the agent needs the host network for process events only")
        if spec.get("hostNetwork"):
            expect(spec.get("dnsPolicy") == "ClusterFirstWithHostNet", f"[{name}] dnsPolicy with the host network")
        port = r.merged["agent"]["metricsPort"]
        expect(agent_config(r)["metrics_listen"] == f"0.0.0.0:{port}", f"[{name}] metrics_listen")
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
            get = c[probe]["httpGet"]
            expect(get["path"] == path and ports.get(get["port"]) == port, f"[{name}] {probe}: {get}")
        res = c["resources"]
        expect(res["requests"]["memory"] and res["limits"]["memory"], f"[{name}] memory requests and limits")
        env = {e["name"]: e.get("value") for e in c["env"]}
        expect(env.get("MIMALLOC_PURGE_DELAY") == "0", f"[{name}] MIMALLOC_PURGE_DELAY=0 keeps the idle agent small")


# ---------------------------------------------------------------------------------------
# The operator


def arg_value(args, flag):
    for a in args:
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


@check
def the_operator_is_restricted_highly_available_and_probed_on_its_listen_port():
    for name in SETS:
        r = rendered(name)
        op = r.merged["operator"]
        if not op["enabled"]:
            continue
        d = r.one("Deployment")
        spec = d["spec"]["template"]["spec"]
        c = spec["containers"][0]
        expect(d["spec"]["replicas"] == op["replicas"], f"[{name}] replicas")
        args = c["args"]
        expect(args[0] == "run", f"[{name}] args {args}")
        expect(arg_value(args, "--leader-election") == str(op["leaderElection"]["enabled"]).lower(), f"[{name}] leader election")
        listen = arg_value(args, "--listen")
        port = int(listen.rsplit(":", 1)[1])
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
            get = c[probe]["httpGet"]
            expect(get["path"] == path and ports.get(get["port"]) == port, f"[{name}] {probe} {get} vs --listen {listen}")
        psc, sc = spec["securityContext"], c["securityContext"]
        expect(psc["runAsNonRoot"] is True and psc["runAsUser"] == 65532, f"[{name}] pod security context {psc}")
        expect(sc == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                      "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
               f"[{name}] container security context {sc}")
        expect(not any(k in spec for k in ("hostPID", "hostNetwork", "hostIPC")), f"[{name}] host namespaces")
        expect(all("hostPath" not in v for v in spec.get("volumes", [])), f"[{name}] operator mounts a host path")
        env = {e["name"]: e for e in c["env"]}
        expect(env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", f"[{name}] POD_NAME")
        pdb = r.maybe("PodDisruptionBudget")
        if op["replicas"] > 1:
            expect(arg_value(args, "--leader-election") == "true", f"[{name}] several replicas need a leader")
            expect(pdb and pdb["spec"]["minAvailable"] == 1, f"[{name}] PodDisruptionBudget {pdb}")
            expect(pdb["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items(),
                   f"[{name}] the PodDisruptionBudget selects no operator pod")
        else:
            expect(pdb is None, f"[{name}] a PodDisruptionBudget of 1 of 1 replica blocks node drains")


@check
def the_webhook_collector_gets_its_certificate_token_and_credentials_from_mounted_secrets():
    r = rendered("full")
    c = operator_container(r)
    spec = r.one("Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    wh_path = arg_value(c["args"], "--webhook-config")
    expect(wh_path, "--webhook-config missing with operator.webhook.enabled")
    m = mount_for(wh_path, c["volumeMounts"])
    expect(m and volumes[m["name"]]["configMap"]["name"] == f"{fullname(r)}-operator-webhook", "webhook config volume")
    cfg = yaml.safe_load(r.configmap_file(f"{fullname(r)}-operator-webhook", Path(wh_path).name))
    expect(cfg["cluster"] == r.merged["clusterName"], "cluster name")
    for key, path in files_named(cfg):
        mount = mount_for(path, c["volumeMounts"])
        expect(mount, f"webhook.yaml names {path} ({key}), which no volume provides")
        vol = volumes[mount["name"]]
        if key in ("cert_file", "key_file", "client_ca_file"):
            expect(vol.get("secret", {}).get("secretName") == r.merged["operator"]["webhook"]["tls"]["secretName"],
                   f"{key} from the TLS Secret: {vol}")
        if key.endswith(("_file", "_files")) and key not in ("cert_file", "key_file", "client_ca_file"):
            expect("secret" in vol or "configMap" in vol, f"{key} {path} must come from a Secret: {vol}")
    expect(cfg["state_dir"] == "/var/lib/vigil" and "emptyDir" in volumes[mount_for("/var/lib/vigil", c["volumeMounts"])["name"]],
           "spools on the emptyDir")
    svc = r.one("Service", f"{fullname(r)}-operator-webhook")
    expect(svc["spec"]["clusterIP"] == r.merged["operator"]["webhook"]["service"]["clusterIP"], "fixed ClusterIP")
    notes = r.files["vigil/templates/NOTES.txt"]
    expect(f"https://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}/audit" in notes,
           "NOTES.txt gives the webhook kubeconfig's server URL")
    # The password lives in a Secret; the rendered objects hold its file's path only.
    everything = "\n".join(r.files.values())
    expect("kind: Secret\n" not in everything, "the chart must not create Secrets")


@check
def the_console_gets_its_store_certificate_and_tokens_from_mounted_volumes_and_agents_send_to_it():
    r = rendered("full")
    fn = fullname(r)
    console = r.merged["operator"]["console"]
    c = operator_container(r)
    spec = r.one("Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    path = arg_value(c["args"], "--console-config")
    expect(path, "--console-config missing with operator.console.enabled")
    cfg = yaml.safe_load(r.configmap_file(f"{fn}-operator-console", Path(path).name))
    for key, file in files_named(cfg):
        mount = mount_for(file, c["volumeMounts"])
        expect(mount, f"console.yaml names {file} ({key}), which no volume provides")
        vol = volumes[mount["name"]]
        if key == "path":
            expect("emptyDir" in vol, f"the store lives on the pod's emptyDir: {vol}")
        else:
            expect("secret" in vol, f"{key} {file} must come from a Secret: {vol}")
    expect(cfg["listen"].endswith(f":{console['port']}"), "listen port")
    expect(cfg["store"]["max_bytes"] == console["store"]["maxBytes"], "store cap")
    expect(cfg["store"]["event_retention_secs"] == console["store"]["eventRetentionDays"] * 86400, "retention")
    agent_sa = f"system:serviceaccount:{r.namespace}:{fn}-agent"
    expect(agent_sa in cfg["auth"]["token_review"]["ingest_users"], "agents may send")
    expect(f"system:serviceaccount:{r.namespace}:{fn}-console-viewer" in cfg["auth"]["token_review"]["viewer_users"],
           "the chart's viewer service account may view")
    expect(r.one("ServiceAccount", f"{fn}-console-viewer"), "viewer service account")
    expect(cfg["notifications"] == console["notifications"], "notifications copied as given")
    peers = r.one("Service", f"{fn}-operator-console-peers")
    expect(peers["spec"]["clusterIP"] == "None" and cfg["peers"]["dns"].startswith(peers["metadata"]["name"] + "."),
           "replicas find each other through the headless Service")
    svc = r.one("Service", f"{fn}-operator-console")
    # The agents send to the console Service with its CA, mounted without the private key.
    out = [o for o in agent_config(r)["outputs"] if o["type"] == "vigil"]
    expect(len(out) == 1, "one vigil output in the agents' configuration")
    expect(out[0]["url"] == f"https://{svc['metadata']['name']}.{r.namespace}.svc:{svc['spec']['ports'][0]['port']}",
           f"the vigil output's URL is the console Service: {out[0]}")
    a = agent_container(r)
    aspec = r.one("DaemonSet")["spec"]["template"]["spec"]
    avols = {v["name"]: v for v in aspec["volumes"]}
    m = mount_for(out[0]["tls"]["ca_file"], a["volumeMounts"])
    expect(m, "the console CA is mounted in the agents")
    expect([i["key"] for i in avols[m["name"]]["secret"]["items"]] == ["ca.crt"], "agents get the CA only, not the key")
    notes = r.files["vigil/templates/NOTES.txt"]
    expect(f"port-forward service/{svc['metadata']['name']}" in notes and f"create token {fn}-console-viewer" in notes,
           "NOTES.txt says how to look at the console")
    ing = r.one("Ingress", f"{fn}-operator-console")
    expect(ing["spec"]["rules"][0]["host"] == console["ingress"]["host"], "Ingress host")


# ---------------------------------------------------------------------------------------
# RBAC

OPERATOR_CLUSTER_RULES = [
    {"apiGroups": ["vigil.dev"], "resources": ["containermonitors"], "verbs": ["list", "watch"]},
    {"apiGroups": ["vigil.dev"], "resources": ["containermonitors/status"], "verbs": ["patch"]},
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
]

# The console's TokenReviews of agents' and viewers' tokens.
CONSOLE_CLUSTER_RULES = [
    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
]



def operator_ns_rules(policy, agent, status, lease):
    rules = [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [policy, agent, status], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [policy, agent], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [status], "verbs": ["list", "watch"]},
    ]
    if lease:
        rules += [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [lease], "verbs": ["get", "patch"]},
        ]
    return rules


@check
def rbac_grants_exactly_what_each_program_calls():
    for name in SETS:
        r = rendered(name)
        op, agent = r.merged["operator"], r.merged["agent"]
        fn = fullname(r)
        for kind in ("ClusterRole", "Role"):
            for role in r.all(kind):
                for rule in role["rules"]:
                    for field in ("apiGroups", "resources", "verbs"):
                        expect("*" not in rule.get(field, []), f"[{name}] wildcard in {role['metadata']['name']}: {rule}")
                    expect("secrets" not in rule["resources"], f"[{name}] {role['metadata']['name']} reaches Secrets")
        if op["enabled"]:
            want_cluster = OPERATOR_CLUSTER_RULES + (CONSOLE_CLUSTER_RULES if op["console"]["enabled"] else [])
            expect(r.one("ClusterRole", f"{fn}-operator")["rules"] == want_cluster, f"[{name}] operator ClusterRole")
            cm = op["configMaps"]
            lease = op["leaderElection"]["leaseName"] if op["leaderElection"]["enabled"] else None
            want = operator_ns_rules(cm["policy"], cm["agent"], cm["status"], lease)
            role = r.one("Role", f"{fn}-operator")
            expect(role["rules"] == want, f"[{name}] operator Role: {role['rules']}")
            expect(role["metadata"]["namespace"] == r.namespace, f"[{name}] the operator's Role is in its namespace")
        if agent["enabled"] and op["enabled"]:
            expect(r.one("ClusterRole", f"{fn}-agent")["rules"] ==
                   [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}], f"[{name}] agent ClusterRole")
            expect(r.one("Role", f"{fn}-agent")["rules"] ==
                   [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [op["configMaps"]["status"]],
                     "verbs": ["get", "patch"]}], f"[{name}] agent Role")
        if agent["enabled"] and not op["enabled"]:
            expect(not [x for x in r.all("ClusterRole") + r.all("Role") if x["metadata"]["name"] == f"{fn}-agent"],
                   f"[{name}] an agent without the operator needs no role")
            spec = r.one("DaemonSet")["spec"]["template"]["spec"]
            expect(spec["automountServiceAccountToken"] is False, f"[{name}] no token for an agent without a role")
        for binding in r.all("ClusterRoleBinding") + r.all("RoleBinding"):
            roles = {x["metadata"]["name"] for x in r.all(binding["roleRef"]["kind"])}
            expect(binding["roleRef"]["name"] in roles, f"[{name}] binding to a missing role: {binding['roleRef']}")
            for s in binding["subjects"]:
                expect(s["namespace"] == r.namespace and s["name"] in {x["metadata"]["name"] for x in r.all("ServiceAccount")},
                       f"[{name}] binding to a missing service account: {s}")


@check
def services_select_pods_and_name_their_ports():
    for name in SETS:
        r = rendered(name)
        pods = [w["spec"]["template"] for w in r.all("DaemonSet") + r.all("Deployment")]
        for svc in r.all("Service"):
            sel = svc["spec"]["selector"]
            matched = [p for p in pods if sel.items() <= p["metadata"]["labels"].items()]
            expect(len(matched) == 1, f"[{name}] Service {svc['metadata']['name']} selects {len(matched)} workloads")
            ports = {p["name"] for c in matched[0]["spec"]["containers"] for p in c.get("ports", [])}
            for p in svc["spec"]["ports"]:
                expect(p["targetPort"] in ports, f"[{name}] Service {svc['metadata']['name']}: no container port {p['targetPort']}")


# ---------------------------------------------------------------------------------------
# deploy/, the CRD and the examples


@check
def deploy_is_the_chart_rendered_with_its_defaults():
    have = chartlib.DEPLOY.read_text() if chartlib.DEPLOY.exists() else ""
    expect(have == chartlib.deploy_text(), "deploy/vigil.yaml differs from the chart: run tests/chart/render-deploy")
    ns = [d for d in yaml.safe_load_all(have) if d and d["kind"] == "Namespace"]
    expect(ns and ns[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged",
           "deploy/ creates the namespace with the Pod Security level the agent needs")


@check
def the_crd_in_the_chart_and_in_deploy_is_what_the_operator_generates():
    require_binary(OPERATOR_BIN)
    p = subprocess.run([str(OPERATOR_BIN), "crd"], capture_output=True, text=True)
    expect(p.returncode == 0 and p.stdout, f"vigil-operator crd failed: {p.stderr}")
    for path in (CHART / "crds" / CRD_FILE, ROOT / "deploy" / "crds" / CRD_FILE):
        expect(path.is_file() and path.read_text() == p.stdout,
               f"{path.relative_to(ROOT)} differs from `vigil-operator crd`: "
               f"VIGIL_UPDATE_GOLDEN=1 cargo test -p vigil-operator --test it crd:: rewrites both")
    expect(sorted(x.name for x in (CHART / "crds").iterdir()) == [CRD_FILE], "charts/vigil/crds holds only the CRD")


def structural(schema):
    """The CRD's OpenAPI schema as JSON Schema, as strict as `kubectl apply` (unknown fields
    refused): `nullable` becomes a null type, objects with properties accept no others."""
    s = copy.deepcopy(schema)

    def walk(node):
        if not isinstance(node, dict):
            return
        if node.pop("nullable", False) and "type" in node:
            node["type"] = [node["type"], "null"]
        if "properties" in node and "additionalProperties" not in node \
                and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
        for v in node.values():
            if isinstance(v, dict):
                walk(v)
            elif isinstance(v, list):
                for x in v:
                    walk(x)
    walk(s)
    return s


def crd_spec_schema():
    crd = yaml.safe_load((ROOT / "deploy" / "crds" / CRD_FILE).read_text())
    version = crd["spec"]["versions"][0]
    return crd, version, structural(version["schema"]["openAPIV3Schema"]["properties"]["spec"])


def monitor_problems(doc, crd, version, schema):
    problems = []
    if doc.get("apiVersion") != f"{crd['spec']['group']}/{version['name']}":
        problems.append(f"apiVersion {doc.get('apiVersion')}")
    meta = doc.get("metadata", {})
    if not meta.get("name") or not meta.get("namespace"):
        problems.append("metadata.name and metadata.namespace are required")
    validator = jsonschema.Draft7Validator(schema)
    problems += [f"spec.{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc.get("spec", {}))]
    return problems


@check
def the_example_containermonitors_pass_the_crds_schema_and_render_cleanly():
    require_binary(OPERATOR_BIN)
    crd, version, schema = crd_spec_schema()
    examples = sorted((ROOT / "deploy" / "examples").glob("*.yaml"))
    expect(examples, "no example in deploy/examples")
    count = 0
    for path in examples:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != crd["spec"]["names"]["kind"]:
                continue
            count += 1
            problems = monitor_problems(doc, crd, version, schema)
            expect(not problems, f"{path.relative_to(ROOT)}: {problems}")
            broken = copy.deepcopy(doc)
            broken["spec"]["audit"] = {"level": "Everything", "bogus": True}
            expect(len(monitor_problems(broken, crd, version, schema)) >= 2,
                   "the schema check does not catch a wrong level and an unknown field")
    expect(count, "deploy/examples holds no ContainerMonitor")
    p = subprocess.run([str(OPERATOR_BIN), "render", "-f", str(ROOT / "deploy" / "examples")],
                       capture_output=True, text=True)
    expect(p.returncode == 0, f"vigil-operator render refuses part of the examples: {p.stderr}")
    expect(" 0 refused, 0 clamped" in p.stderr, f"the examples ask for what the baseline overrides: {p.stderr}")


# ---------------------------------------------------------------------------------------
# The dashboard


def exported_metrics():
    names = set()
    for base in ("agent/src", "core/src", "operator/src"):
        for path in (ROOT / base).rglob("*.rs"):
            names.update(re.findall(r"\b(vigil_[a-z0-9_]+)", path.read_text()))
    return names


@check
def the_dashboard_names_only_exported_metrics():
    text = (CHART / "dashboards" / "vigil.json").read_text()
    dash = json.loads(text)
    exported = exported_metrics()
    used = set()
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            for m in re.findall(r"\b(vigil_[a-z0-9_]+)", t["expr"]):
                used.add(re.sub(r"_(bucket|sum|count)$", "", m) if m.endswith(("_bucket", "_sum", "_count")) and
                         re.sub(r"_(bucket|sum|count)$", "", m) in exported else m)
        if panel["type"] != "row":
            expect(panel["datasource"]["uid"] == "${datasource}", f"panel {panel['title']}: fixed data source")
    cells, ids = set(), set()
    for panel in dash["panels"]:
        g = panel["gridPos"]
        expect(g["x"] + g["w"] <= 24 and panel["id"] not in ids, f"panel {panel['title']}: off the grid or a reused id")
        ids.add(panel["id"])
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        expect(not area & cells, f"panel {panel['title']} overlaps another")
        cells |= area
    missing = sorted(used - exported)
    expect(not missing, f"the dashboard queries metrics no program exports: {missing}")
    expect(len(used) >= 30, f"the dashboard covers only {len(used)} metrics")
    for prefix in ("vigil_operator_", "vigil_webhook_", "vigil_output_", "vigil_audit_"):
        expect(any(m.startswith(prefix) for m in used), f"nothing about {prefix}*")
    cm = rendered("full").one("ConfigMap", "security-vigil-dashboard")
    expect(json.loads(cm["data"]["vigil.json"]) == dash, "the dashboard ConfigMap does not hold the dashboard")
    expect(cm["metadata"]["labels"].get("grafana_dashboard") == "1", "the Grafana sidecar label")


# ---------------------------------------------------------------------------------------
# Images


def docker(*args, check_rc=True, timeout=300):
    cmd = ["docker", "-H", DOCKER_HOST, *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check_rc and p.returncode != 0:
        raise Failure(f"{' '.join(cmd[3:])} failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
    return p


def image(name):
    return f"{IMAGE_REPO}/vigil-{name}:{IMAGE_TAG}"


_built = []


def build_images():
    if _built:
        return
    expect(shutil.which("docker"), "the docker CLI is missing: apt-get install docker.io (tests/engines.sh installs it)")
    p = docker("version", "--format", "{{.Server.Version}}", check_rc=False, timeout=30)
    expect(p.returncode == 0, f"no Docker engine at {DOCKER_HOST}: start it with `sudo tests/engines.sh start` ({p.stderr.strip()})")
    require_binary(AGENT_BIN)
    require_binary(OPERATOR_BIN)
    env = dict(os.environ, DOCKER_HOST=DOCKER_HOST)
    p = subprocess.run([str(ROOT / "images" / "build.sh"), "--binaries", str(TARGET / "debug"),
                        "--repo", IMAGE_REPO, "--tag", IMAGE_TAG], capture_output=True, text=True, env=env, timeout=600)
    expect(p.returncode == 0, f"images/build.sh failed: {p.stderr.strip()[-3000:]}")
    expect(p.stdout.split() == [image("agent"), image("operator")], f"images/build.sh printed {p.stdout!r}")
    _built.append(True)


def run_image(name, *args, user=None, extra=(), timeout=120):
    """Runs an image as the chart's pod would: no network, read-only root, no capability."""
    cmd = ["run", "--rm", "--network", "none", "--read-only", "--cap-drop", "ALL",
           "--security-opt", "no-new-privileges"]
    if user:
        cmd += ["--user", user]
    return docker(*cmd, *extra, image(name), *args, check_rc=False, timeout=timeout)


@check
def both_images_build_from_scratch_and_run():
    build_images()
    version = re.search(r'^version = "(.*)"', (ROOT / "Cargo.toml").read_text(), re.M).group(1)
    for name, user in (("agent", "0:0"), ("operator", "65532:65532")):
        info = json.loads(docker("image", "inspect", image(name)).stdout)[0]
        expect(info["Config"]["User"] == user, f"{name} image user {info['Config']['User']!r}, want {user}")
        expect(len(info["RootFS"]["Layers"]) == 1, f"{name}: more than the one staged layer (not FROM scratch?)")
        p = run_image(name, "--version", user=user)
        expect(p.returncode == 0 and p.stdout.strip() == f"vigil-{name} {version}",
               f"vigil-{name} --version in its image: {p.returncode} {p.stdout!r} {p.stderr!r}")
        p = run_image(name, "--help", user=user)
        expect(p.returncode == 0 and "Usage: vigil-" in p.stdout, f"vigil-{name} --help: {p.stderr[-500:]}")
        p = docker("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", image(name), "-c", "true", check_rc=False)
        expect(p.returncode != 0, f"{name} image has a shell")


@check
def the_images_resolve_names_from_etc_hosts_and_dns():
    """The binaries use glibc's resolver; in a scratch image it must still read /etc/hosts
    (which the kubelet writes) before DNS, or a manager named in /etc/hosts is not found."""
    build_images()
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        for host in ("manager.vigil.test", "missing.vigil.test"):
            kc = Path(tmp) / f"{host}.yaml"
            kc.write_text(KUBECONFIG.replace("127.0.0.1", host))
            kc.chmod(0o644)
            p = run_image("operator", "run", "--listen=127.0.0.1:0", "--identity=x", "--namespace=x",
                          user="65532:65532",
                          extra=["--add-host", "manager.vigil.test:127.0.0.1", "-e", "KUBECONFIG=/kubeconfig.yaml",
                                 "-v", f"{kc}:/kubeconfig.yaml:ro"])
            if host.startswith("manager"):
                expect("Connection refused" in p.stderr, f"{host} from /etc/hosts not resolved: {p.stderr[-800:]}")
            else:
                expect("name resolution" in p.stderr or "lookup" in p.stderr, f"{host}: {p.stderr[-800:]}")


# The operator needs a Kubernetes client configuration to start; nothing listens here, so
# leader election fails at once, after the webhook collector started (or refused to).
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


def make_pki(directory):
    expect(shutil.which("openssl"), "openssl is missing: apt-get install openssl")
    d = str(directory)
    run = lambda *a: subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
        "-keyout", "ca.key", "-out", "ca.crt")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=vigil-operator-webhook",
        "-keyout", "tls.key", "-out", "tls.csr")
    Path(d, "san.ext").write_text("subjectAltName=IP:10.96.0.50,DNS:vigil-operator-webhook\n")
    run("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.ext", "-out", "tls.crt")


def pod_volumes(r, container, spec, tmp, pki):
    """Docker mounts that reproduce the pod's volumes: ConfigMaps from the render, Secrets
    with the keys the configuration reads (certificates from `pki`, other files a
    placeholder), emptyDirs as tmpfs."""
    configs = {}
    for cm in r.all("ConfigMap"):
        configs[cm["metadata"]["name"]] = cm["data"]
    wanted = []  # files the configurations read
    for cm in configs.values():
        for text in cm.values():
            try:
                wanted += [p for _, p in files_named(yaml.safe_load(text))]
            except yaml.YAMLError:
                pass
    volumes = {v["name"]: v for v in spec["volumes"]}
    args = []
    for m in container["volumeMounts"]:
        vol = volumes[m["name"]]
        host = Path(tmp) / m["name"]
        if "emptyDir" in vol:
            args += ["--tmpfs", f"{m['mountPath']}:rw,mode=1777"]
            continue
        host.mkdir(mode=0o755)
        if "configMap" in vol:
            name = vol["configMap"]["name"]
            if name not in configs and not vol["configMap"].get("optional"):
                raise Failure(f"volume {m['name']}: ConfigMap {name} is neither rendered nor optional")
            # An optional ConfigMap the operator creates later mounts as an empty directory.
            for key, text in configs.get(name, {}).items():
                (host / key).write_text(text)
        elif "secret" in vol:
            names = [i["path"] for i in vol["secret"].get("items", [])]
            names += [p[len(m["mountPath"]) + 1:] for p in wanted if p.startswith(m["mountPath"] + "/")]
            for key in set(names):
                src = pki / key if (pki / key).exists() else None
                if key.endswith((".pem", ".crt")) and not src:
                    src = pki / "ca.crt"
                (host / key).write_bytes(src.read_bytes() if src else b"placeholder-credential\n")
        else:
            raise Failure(f"volume {m['name']}: no stand-in for {vol}")
        for f in host.iterdir():
            f.chmod(0o644)
        args += ["-v", f"{host}:{m['mountPath']}:ro"]
    return args


@check
def the_agent_image_takes_the_charts_configuration_where_the_daemonset_mounts_it():
    build_images()
    r = rendered("full")
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        a = agent_container(r)
        cfg = mount_for("/etc/vigil/config/agent.yaml", a["volumeMounts"])
        expect(cfg, "agent.yaml is not mounted where the image's command reads it")
        conf_dir = Path(tmp) / "agent-config"
        conf_dir.mkdir(mode=0o755)
        (conf_dir / "agent.yaml").write_text(r.configmap_file(f"{fullname(r)}-agent", "agent.yaml"))
        (conf_dir / "agent.yaml").chmod(0o644)
        p = run_image("agent", "check-config", a["args"][-1], user="0:0",
                      extra=["-v", f"{conf_dir}:{cfg['mountPath']}:ro"])
        expect(p.returncode == 0, f"the agent image refuses the chart's agent.yaml: {p.stderr.strip()[-1500:]}")


@check
def the_operator_image_starts_the_webhook_collector_and_the_console_from_the_charts_volumes():
    build_images()
    r = rendered("full")
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        pki = Path(tmp) / "pki"
        pki.mkdir()
        make_pki(pki)
        d = r.one("Deployment")
        spec = d["spec"]["template"]["spec"]
        c = spec["containers"][0]
        (Path(tmp) / "operator").mkdir(mode=0o755)
        mounts = pod_volumes(r, c, spec, Path(tmp) / "operator", pki)
        kc = Path(tmp) / "kubeconfig.yaml"
        kc.write_text(KUBECONFIG)
        kc.chmod(0o644)
        # What the kubelet mounts with automountServiceAccountToken: the outputs to the
        # console present this token.
        expect(spec.get("automountServiceAccountToken") is True, "the operator gets its service-account token")
        sa = Path(tmp) / "serviceaccount"
        sa.mkdir(mode=0o755)
        for name, text in (("token", "service-account-token\n"), ("namespace", r.namespace)):
            (sa / name).write_text(text)
            (sa / name).chmod(0o644)
        user = f"{spec['securityContext']['runAsUser']}:{spec['securityContext']['runAsGroup']}"
        p = run_image("operator", *c["args"], "--log=info", "--log-format=text", user=user,
                      extra=[*mounts, "-v", f"{sa}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
                             "-v", f"{kc}:/etc/vigil-test/kubeconfig.yaml:ro",
                             "-e", "KUBECONFIG=/etc/vigil-test/kubeconfig.yaml",
                             "-e", "POD_NAME=vigil-operator-0", "-e", "POD_NAMESPACE=" + r.namespace])
        expect("audit webhook collector ready" in p.stderr,
               f"the operator image did not start the webhook collector from the chart's volumes: {p.stderr.strip()[-2000:]}")
        expect("console ready" in p.stderr,
               f"the operator image did not start the console from the chart's volumes: {p.stderr.strip()[-2000:]}")
        expect("leader election" in p.stderr, f"the operator stopped for another reason than the missing API server: {p.stderr[-1000:]}")


# ---------------------------------------------------------------------------------------


def main():
    only = sys.argv[1:]
    passed = failed = 0
    started = time.monotonic()
    for fn in CHECKS:
        if only and not any(o in fn.__name__ for o in only):
            continue
        t0 = time.monotonic()
        try:
            fn()
        except Failure as e:
            failed += 1
            print(f"FAIL {fn.__name__}: {e}", flush=True)
            continue
        except Exception:  # a broken check is a failed check, with its traceback
            failed += 1
            print(f"FAIL {fn.__name__}:\n{traceback.format_exc()}", flush=True)
            continue
        passed += 1
        print(f"ok   {fn.__name__} ({time.monotonic() - t0:.1f} s)", flush=True)
    if _built:
        # Each run builds from new binaries: leave no image behind in the test daemon.
        docker("rmi", image("agent"), image("operator"), check_rc=False)
    print(f"chart checks took {time.monotonic() - started:.0f} s")
    print(f"chart: {passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
