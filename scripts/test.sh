#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy (warnings are errors) and all tests, including the end-to-end
# tests against real VictoriaMetrics and Prometheus (installed from Debian's packages if missing) and the
# OpenTelemetry Python SDK (installed from PyPI if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for pair in victoria-metrics:victoria-metrics prometheus:prometheus prometheus-alertmanager:prometheus-alertmanager; do
  bin=${pair%%:*} pkg=${pair##*:}
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/bin/$bin" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing ${missing[*]} from Debian's packages..."
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The OpenTelemetry Python SDK is the real OTLP client of the end-to-end tests.
if ! python3 -c "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http, opentelemetry.exporter.otlp.proto.grpc" >/dev/null 2>&1; then
  echo "Installing the OpenTelemetry Python SDK from PyPI..."
  python3 -m pip install --quiet --disable-pip-version-check opentelemetry-sdk opentelemetry-exporter-otlp-proto-http opentelemetry-exporter-otlp-proto-grpc
fi

# One target directory outside the clone, so CI runs and sessions on this machine reuse the build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked --lib --bins --tests 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# Doc tests only where there are some (vigil-detect's examples): elsewhere they are empty "0 passed" runs.
cargo test --locked -p vigil-detect --doc 2>&1 | tee -a "$log"
doc_status=${PIPESTATUS[0]}
if [[ "$status" == 0 ]]; then status=$doc_status; fi
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
