#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time, from a copy of the committed seed
# corpus (the corpus in the repository never grows here), and fails on the first crash,
# naming the input that crashed and the command that reproduces it.
#
#   tests/fuzz.sh [SECONDS] [TARGET...]     default: 60 seconds each, every target
#
# Targets run side by side, as many at once as there are cores (FUZZ_JOBS overrides).
#
# libFuzzer's instrumentation needs rustc flags that only nightly accepts; RUSTC_BOOTSTRAP=1
# lets the stable toolchain take them, for this build only.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH="${1:-60}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(audit container_logs wazuh_frame config)
CARGO_FUZZ_VERSION=0.13.2
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
# Its own target directory, whatever CARGO_TARGET_DIR says: the instrumented build shares
# nothing with the workspace's.
TARGET_DIR="$PWD/fuzz/target"
BIN_DIR="$TARGET_DIR/$TRIPLE/release"
ARTIFACTS="$TARGET_DIR/artifacts"
# More codegen units than cargo-fuzz's default of 1 in release: a shorter build, for a little
# less speed when fuzzing.
BUILD_FLAGS=(--release --debug-assertions --codegen-units 16 --target-dir "$TARGET_DIR")

started=$(date +%s)

if ! cargo fuzz --version 2>/dev/null | grep -q "cargo-fuzz"; then
  echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

# The config target links vigil-agent, whose containerd bindings run protoc when built.
command -v protoc >/dev/null || { echo "protoc is missing: apt-get install protobuf-compiler (tests/run.sh does)" >&2; exit 1; }

echo "== cargo fmt --check (fuzz/)"
cargo fmt --manifest-path fuzz/Cargo.toml -- --check

# cargo-fuzz has no --locked; checking the lock file first has the same effect, since the
# build then finds nothing to change in it.
if ! cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null; then
  echo "fuzz/Cargo.lock is out of date with the workspace's dependencies; update it with" >&2
  echo "  cargo update --workspace --manifest-path fuzz/Cargo.toml" >&2
  exit 1
fi

echo "== building the fuzz targets"
build_started=$(date +%s)
# cargo fuzz builds one target or all of them.
only=()
[ ${#TARGETS[@]} -eq 1 ] && only=("${TARGETS[0]}")
RUSTC_BOOTSTRAP=1 cargo fuzz build "${BUILD_FLAGS[@]}" "${only[@]}"
build_secs=$(($(date +%s) - build_started))
echo "   built in ${build_secs} s"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# One target: its log and artifacts under $work, its summary line in $work/$t.summary; a
# crash is reported and makes the function fail.
fuzz_one() {
  local t="$1" log="$work/$1.log"
  cp -r "fuzz/corpus/$t" "$work/$t"
  mkdir -p "$ARTIFACTS/$t"
  # -timeout: an input that takes 10 s is a hang, reported like a crash. -rss_limit_mb also
  # caps single allocations (malloc_limit_mb defaults to it).
  if ! "$BIN_DIR/$t" "$work/$t" \
      -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$t/" >"$log" 2>&1; then
    cp "$log" "$ARTIFACTS/$t/failed-run.log"
    {
      # The panic message (or the sanitizer's report), then how libFuzzer ended.
      grep -m 1 -A 12 -E "panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer" "$log" || true
      echo "..."
      tail -n 12 "$log"
      local crash
      crash="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)"
      echo
      echo "FUZZ FAILURE in target $t"
      if [ -n "$crash" ]; then
        echo "  input:     $crash"
        echo "  reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --release --debug-assertions --codegen-units 16 $t $crash"
        echo "         or: $BIN_DIR/$t $crash"
      else
        echo "  no crash input was written; the log: $ARTIFACTS/$t/failed-run.log"
      fi
    } >&2
    return 1
  fi
  local runs rate seeds grown cov
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  seeds=$(find "fuzz/corpus/$t" -type f | wc -l)
  grown=$(find "$work/$t" -type f | wc -l)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2 || true)
  printf '%-16s %12s %10s %8s %8s\n' "$t" "$runs" "$rate" "${cov:-?}" "$seeds→$grown" >"$work/$t.summary"
}

for t in "${TARGETS[@]}"; do
  [ -d "fuzz/corpus/$t" ] || { echo "no seed corpus fuzz/corpus/$t" >&2; exit 1; }
done
# As many targets at once as there are cores (each fuzzer is one process on one core), so
# every target still gets its full time and the whole run takes less.
JOBS="${FUZZ_JOBS:-$(nproc)}"
failed=0
for ((i = 0; i < ${#TARGETS[@]}; i += JOBS)); do
  batch=("${TARGETS[@]:i:JOBS}")
  echo "== fuzzing ${batch[*]} for ${SECONDS_EACH} s"
  pids=()
  for t in "${batch[@]}"; do
    fuzz_one "$t" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do
    wait "$p" || failed=1
  done
  [ "$failed" -eq 0 ] || exit 1
done

echo "== fuzzing: no crash"
printf '%-16s %12s %10s %8s %8s\n' target runs "execs/s" edges corpus
for t in "${TARGETS[@]}"; do cat "$work/$t.summary"; done
echo "   ${SECONDS_EACH} s per target; build ${build_secs} s; total $(($(date +%s) - started)) s"
