#!/usr/bin/env python3
"""Writes the seed corpus, fuzz/corpus/<target>/, from the repository's own fixtures.

Run it again when the fixtures change; the corpus is committed, so a fuzz run starts from
real inputs of every shape each parser reads. Kept small: one file per fixture document or
line, a few KB each.
"""

import json
import pathlib
import shutil
import zlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
AUDIT = ROOT / "core" / "tests" / "fixtures" / "audit"
DOCKER = ROOT / "core" / "tests" / "fixtures" / "docker"
WAZUH = ROOT / "core" / "tests" / "fixtures" / "wazuh" / "wazuh-secure-message-vectors.json"


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def audit():
    for f in sorted(AUDIT.iterdir()):
        if f.suffix == ".md":
            continue
        text = f.read_bytes()
        lines = [l for l in text.split(b"\n") if l.strip()]
        if f.suffix == ".jsonl" and len(lines) > 1:
            # One line per seed: libFuzzer mutates small inputs best.
            for i, line in enumerate(lines[:6]):
                write("audit", f"{f.stem}-{i}", line + b"\n")
        else:
            write("audit", f.stem, text)
    # Several events in one input, so the stage filter sees a request's stages together.
    story = (ROOT / "examples" / "audit" / "attack-story.log").read_bytes().split(b"\n")
    write("audit", "attack-story-head", b"\n".join(story[:4]) + b"\n")
    # Docker engine events, which `scan` tells apart from audit events record by record.
    for i, line in enumerate(DOCKER.joinpath("engine-events.jsonl").read_bytes().split(b"\n")[:8]):
        if line.strip():
            write("audit", f"docker-engine-{i}", line + b"\n")


def container_logs():
    # The first byte of an input sets the reassembler's cap: 0x10 is 17 bytes.
    cap = b"\x10"
    cri = (
        b"/var/log/pods/shop_web-7d4b9_0f6e2a1c-3b5d-4e7f-8a9b-1c2d3e4f5a6b/nginx/0.log\n"
        b"2024-05-02T10:15:30.123456789Z stdout F GET /index.html HTTP/1.1 200\n"
        b"2024-05-02T10:15:30.200000000Z stderr P a long line the runtime split into \n"
        b"2024-05-02T10:15:30.200000001+02:00 stdout F interleaved\n"
        b"2024-05-02T10:15:30.200000002Z stderr P three parts \n"
        b"2024-05-02T10:15:30.2Z stderr F and the end\n"
        b"2024-05-02T10:15:31Z stdout F:x \n"
        b"2024-05-02T10:15:31Z stdout F\n"
        b"2024-05-02T10:15:32Z stdout P left open at the end of the file"
    )
    write("container_logs", "cri", cap + cri)
    docker = (
        b'{"log":"GET /?id=1%27%20OR%201=1 HTTP/1.1\\n","stream":"stdout","time":"2024-05-02T10:15:30.123456789Z"}\n'
        b'{"log":"a 16 KiB line the driver split ","stream":"stderr","time":"2024-05-02T10:15:30.2Z"}\n'
        b'{"log":"in two\\n","stream":"stderr","time":"2024-05-02T10:15:30.3Z","attrs":{"tag":"x"}}\n'
        b'{"log":"caf\\u00e9 \\ud83d\\ude00\\n","stream":"stdout","time":"2024-05-02T12:15:30+02:00"}\n'
        b"~~truncate~~\n"
        b'{"log":"sh: no job control in this shell\\n","stream":"stderr","time":"2024-05-02T10:15:31Z"}\n'
    )
    write("container_logs", "docker-json", b"\x05" + docker)
    write(
        "container_logs",
        "docker-path",
        b"\x3f/var/lib/docker/containers/4f2a/4f2a-json.log\n" + docker,
    )
    write(
        "container_logs",
        "link-path",
        b"\x00/var/log/containers/web-7d4b9_shop_nginx-0123456789abcdef0123.log\n" + cri,
    )


def wazuh():
    v = json.loads(WAZUH.read_text())
    # Layer selectors of the target: 0 frame, 1 stream, 2 plaintext, 3 inflated, 4 block,
    # 5 enrollment answer and client.keys.
    stream = b""
    for i, vec in enumerate(v["vectors"]):
        frame = bytes.fromhex(vec["tcp_frame_hex"])
        plain = bytes.fromhex(vec["secure_block_hex"])
        write("wazuh_frame", f"frame-{i}", b"\x00" + frame)
        write("wazuh_frame", f"plain-{i}", b"\x02" + plain)
        bangs = len(plain) - len(plain.lstrip(b"!"))
        inflated = zlib.decompress(plain[bangs:])
        write("wazuh_frame", f"inflated-{i}", b"\x03" + inflated)
        write("wazuh_frame", f"block-{i}", b"\x04" + inflated[32:])
        if vec["direction"] == "manager_to_agent":
            stream += frame
    write("wazuh_frame", "stream", b"\x01" + stream + stream)
    key = v["client_keys_line"]
    write("wazuh_frame", "authd-answer", b"\x05" + f"OSSEC K:'{key}'\n".encode())
    write(
        "wazuh_frame",
        "client-keys",
        b"\x05"
        + (
            "# removed entries are skipped\n"
            "002 !removed 10.0.0.2 " + "0" * 64 + "\n"
            + key + "\n"
            "003 node-b 10.0.0.0/24 " + "ab" * 32 + "\n"
            "004 node-c 2001:db8::1/128 " + "Cd" * 32 + "\r\n"
        ).encode(),
    )


FULL_AGENT = """\
cluster: prod
node: cp-1
state_dir: /var/lib/vigil
sources:
  audit_log:
    enabled: true
    path: /var/log/kubernetes/audit/audit.log
    start_at: beginning
    max_line_bytes: 4194304
    max_object_bytes: 32768
    poll_interval_ms: 1000
  docker:
    endpoint: unix:///var/run/docker.sock
    interval: 30s
    attempts: 5
  containerd:
    address: /run/containerd/containerd.sock
    namespaces: [k8s.io]
    interval: 5
    inspect: true
    cache_entries: 4096
  container_logs:
    start_at: end
    max_message_bytes: 61440
    namespaces: {include: [], exclude: [kube-system]}
    containers: {include: [], exclude: [istio-proxy]}
  resources: {}
rules:
  builtin: true
  paths: [/etc/vigil/rules]
  allowed_registries: [registry.k8s.io, quay.io, "*.azurecr.io"]
outputs:
  - type: file
    path: /var/log/vigil/events.json
    fsync: batch
  - type: http
    url: https://logs.example.com/ingest
    compression: gzip
    auth:
      bearer_token_file: /var/run/secrets/vigil/token
    headers: { X-Tenant: prod }
    tls: { ca_file: /etc/vigil/ca.pem }
only_detections: true
pipeline:
  batch_events: 512
  queue_batches: 8
  checkpoint_interval_ms: 1000
metrics_listen: "[::]:9101"
operator:
  config_dir: /etc/vigil/operator/config
  policy_dir: /etc/vigil/operator/policy
  poll_interval_ms: 2000
"""


def config():
    for f in sorted((ROOT / "examples").glob("*.yaml")):
        write("config", f"example-{f.stem}", f.read_bytes())
    write("config", "agent-full", FULL_AGENT)
    for d in sorted((ROOT / "operator" / "tests" / "golden").iterdir()):
        text = (d / "agent.yaml").read_bytes()
        if text.strip():
            write("config", f"namespaces-{d.name}", text)
    for rule in ["container.privileged", "log.shell-announced", "secret.access"]:
        write("config", f"rule-{rule}", (ROOT / "rules" / f"{rule}.yml").read_bytes())


if __name__ == "__main__":
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    audit()
    container_logs()
    wazuh()
    config()
    total = sum(f.stat().st_size for f in CORPUS.rglob("*") if f.is_file())
    count = sum(1 for f in CORPUS.rglob("*") if f.is_file())
    print(f"{count} seeds, {total} bytes")
