#!/usr/bin/env bash
# The Helm chart, the plain manifests in deploy/ and the container images, checked as a
# user would (tests/chart/check.py says what). Run by tests/run.sh after cargo test, whose
# target/debug/vigil-agent and vigil-operator it uses; the images are built with the
# private dockerd of tests/engines.sh. Arguments select checks by name.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v python3 >/dev/null || { echo "python3 is missing: the chart checks need it (apt-get install python3 python3-pip)" >&2; exit 1; }

# Helm as a library (no helm binary to download), the Kubernetes schemas, JSON Schema and
# YAML, from PyPI, for this python3; pinned to the series the checks were written against.
missing=()
python3 -c "import helm_python" 2>/dev/null || missing+=("helm-python-sdk>=0.2.2,<0.3")
python3 -c "import kubernetes_validate" 2>/dev/null || missing+=("kubernetes-validate>=1.31,<2")
python3 -c "import jsonschema" 2>/dev/null || missing+=("jsonschema>=4")
python3 -c "import yaml" 2>/dev/null || missing+=("pyyaml")
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing from PyPI for the chart checks: ${missing[*]}"
  python3 -m pip install --quiet "${missing[@]}" || python3 -m pip install --quiet --user "${missing[@]}" \
    || python3 -m pip install --quiet --break-system-packages "${missing[@]}"
fi

# The webhook collector's test certificates.
if ! command -v openssl >/dev/null; then
  echo "== installing openssl (test certificates for the webhook collector)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssl
fi

exec python3 tests/chart/check.py "$@"
