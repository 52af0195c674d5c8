#!/usr/bin/env bash
# The one test command: formatting, lints, every test of the workspace, and the built-in
# rules through the CLI as a user would run them. Needs only the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo is missing: install Rust 1.95 (https://rustup.rs)" >&2; exit 1; }

# The Docker source's tests run against a private dockerd (installed from Debian if missing).
echo "== container engines"; if [ "$(id -u)" -eq 0 ]; then tests/engines.sh start; else sudo tests/engines.sh start; fi

# The containerd source's gRPC bindings (containerd-client) run protoc in their build script.
if ! command -v protoc >/dev/null; then
  echo "== installing protobuf-compiler (protoc, for containerd-client's build)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends protobuf-compiler
fi

# The syslog output's tests run a private rsyslogd (never the system service); install it
# once. rsyslogd lives in /usr/sbin, which a non-root PATH may lack.
if ! PATH="$PATH:/usr/sbin:/sbin" command -v rsyslogd >/dev/null \
    || [ -z "$(find /usr/lib -name lmnsd_gtls.so 2>/dev/null | head -n 1)" ]; then
  echo "== installing rsyslog and rsyslog-gnutls (syslog output tests)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rsyslog rsyslog-gnutls
fi

# The operator's controller tests talk to kmock (PyPI), an in-memory Kubernetes API, through
# testkit/kmock/shim.py; install it once for this python3.
command -v python3 >/dev/null || { echo "python3 is missing: the operator's controller tests need it (apt-get install python3 python3-pip)" >&2; exit 1; }
if ! python3 -c "import kmock" 2>/dev/null; then
  echo "== installing kmock from PyPI (operator controller tests)"
  python3 -m pip install --quiet kmock || python3 -m pip install --quiet --user kmock \
    || python3 -m pip install --quiet --break-system-packages kmock
fi
echo "== kmock $(python3 -c 'import kmock; print(kmock.__version__)') for the operator controller tests"

# The console is tested in a real headless browser (Debian's chromium, driven over the
# DevTools protocol by testkit/browser/driver.py with websocket-client), and the
# notifications against a real SMTP server (aiosmtpd).
if ! command -v chromium >/dev/null; then
  echo "== installing chromium (console browser tests)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
fi
for module in websocket:websocket-client aiosmtpd:aiosmtpd; do
  if ! python3 -c "import ${module%%:*}" 2>/dev/null; then
    echo "== installing ${module#*:} from PyPI (console and notification tests)"
    python3 -m pip install --quiet "${module#*:}" || python3 -m pip install --quiet --user "${module#*:}" \
      || python3 -m pip install --quiet --break-system-packages "${module#*:}"
  fi
done

# A fresh build gains nothing from incremental state, which would double the disk it needs.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
# The end-to-end story with faults restarts the shared dockerd, so it runs alone, after the rest.
echo "== end-to-end attack story with faults (about 3 minutes)"
cargo test --locked -p vigil-agent --test it story -- --ignored --nocapture
echo "== built-in rules against their test events"
cargo run --quiet --locked -p vigil-agent -- rules test rules
# Every fuzz target of fuzz/ for a bounded time (FUZZ_SECONDS each, 0 skips them); any
# crash fails the run. The instrumented build has its own target directory (fuzz/target).
if [ "${FUZZ_SECONDS:-60}" -gt 0 ]; then
  echo "== fuzz targets, ${FUZZ_SECONDS:-60} s each"
  tests/fuzz.sh "${FUZZ_SECONDS:-60}"
fi
# The Helm chart, deploy/ and the images, with the binaries cargo test just built and the
# private dockerd started above.
echo "== Helm chart, deploy/ and container images"
tests/chart.sh
