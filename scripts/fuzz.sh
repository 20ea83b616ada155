#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (UVS_FUZZ_SECONDS each, default 60), starting
# from its committed seeds (fuzz/seeds/<target>/ beside it, or another target's: `bursts`
# starts from `pipeline`'s) plus whatever an earlier run
# found, kept under the cargo target dir (the seeds themselves are never written to).
# Prints the executions per target; exits non-zero if any target crashed, with the
# crashing input (base64) and the backtrace.
#
#   scripts/fuzz.sh                         every target, 60 s each (CI)
#   UVS_FUZZ_SECONDS=600 scripts/fuzz.sh    longer local runs
#   UVS_FUZZ_JOBS=1 scripts/fuzz.sh         one target at a time (default: one per CPU)
#   scripts/fuzz.sh pipeline bursts         only these targets
#
# Needs cargo-fuzz (`.ci/run --deps-only` installs it). Only stable Rust is assumed:
# cargo-fuzz's nightly flags are allowed with RUSTC_BOOTSTRAP=1. No sanitizer: the code
# under test denies `unsafe` (crates/xsk, the one crate with unsafe code, is not fuzzed),
# so AddressSanitizer would find nothing that bounds checks miss and would cost ~5× the
# executions; libFuzzer's coverage feedback is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

seconds=${UVS_FUZZ_SECONDS:-60}
case $seconds in '' | *[!0-9]*) echo "fuzz: UVS_FUZZ_SECONDS must be a whole number of seconds" >&2; exit 2 ;; esac
target_dir=${CARGO_TARGET_DIR:-$root/target}/fuzz
export RUSTC_BOOTSTRAP=1

# crate directory, target, longest input (bytes)[, the target whose seeds it starts from[,
# libFuzzer flags of its own]]. `bursts` tries long inputs from the start
# (-len_control=0): only a poll of more than 32 frames on one port has a burst received
# ahead, and libFuzzer would otherwise lengthen its inputs slowly.
all=(
  "crates/wire/fuzz classify 2048"
  "dataplane/fuzz pipeline 4096"
  "dataplane/fuzz bursts 4096 pipeline -len_control=0"
  "crates/config/fuzz load 8192"
  "control/fuzz admin 4096"
)
selected=()
for t in "${all[@]}"; do
  read -r _ name _ <<<"$t"
  want=$([ $# -eq 0 ] && echo yes || true)
  for arg in "$@"; do [ "$arg" = "$name" ] && want=yes; done
  [ -n "$want" ] && selected+=("$t")
done
[ ${#selected[@]} -gt 0 ] || { echo "fuzz: no such target: $* (classify, pipeline, bursts, load, admin)" >&2; exit 2; }

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz is not installed: cargo install cargo-fuzz --version 0.13.2 --locked (.ci/run --deps-only does)" >&2
  exit 1
fi

for t in "${selected[@]}"; do
  read -r dir name _ <<<"$t"
  echo "== fuzz: building $name ($dir)"
  (cd "$dir" && cargo fuzz build --sanitizer none --target-dir "$target_dir" "$name")
done

# One target's bounded run; its summary line goes to $target_dir/logs/<name>.summary and
# its failure report to stderr. libFuzzer runs one thread, so the runs go UVS_FUZZ_JOBS at a
# time (default: one per CPU), each still fuzzing for its full time on a core of its own.
run_one() {
  local dir=$1 name=$2 max_len=$3 seeds_of=$4 flags=$5
  local seeds=seeds/${seeds_of:-$name}
  local corpus=$target_dir/corpus/$name
  local artifacts=$target_dir/artifacts/$name
  local log=$target_dir/logs/$name.log
  local out=$target_dir/logs/$name.summary
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  rm -f "$out"
  echo "== fuzz: $name for ${seconds}s (seeds: $dir/$seeds, corpus: $corpus)"
  local status=0
  (cd "$dir" && cargo fuzz run --sanitizer none --target-dir "$target_dir" "$name" \
    "$corpus" "$seeds" -- \
    -max_total_time="$seconds" -max_len="$max_len" -timeout=10 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 ${flags:-}) >"$log" 2>&1 || status=$?
  local runs cov corpus_size
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2 || true)
  corpus_size=$(find "$corpus" -type f | wc -l)
  if [ "$status" = 0 ]; then
    echo "$name: ${runs:-?} executions in ${seconds}s, coverage ${cov:-?} edges, corpus $corpus_size inputs, no crash" >"$out"
  else
    {
      echo "---- $name: last lines of $log"
      grep -v -E '^#[0-9]+ +(NEW|REDUCE|pulse)' "$log" | tail -60 || true
      for crash in $(grep -Eo "Test unit written to [^ ]+" "$log" | awk '{print $5}' || true); do
        [ -f "$crash" ] || continue
        echo "---- crashing input $crash ($(wc -c <"$crash") bytes), base64:"
        base64 -w 76 "$crash"
        echo "---- reproduce: (cd $dir && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none $name $crash)"
      done
    } >&2
    echo "$name: FAILED after ${runs:-?} executions (exit $status)" >"$out"
  fi
}

jobs_max=${UVS_FUZZ_JOBS:-$(nproc)}
case $jobs_max in '' | *[!0-9]* | 0) echo "fuzz: UVS_FUZZ_JOBS must be a positive whole number" >&2; exit 2 ;; esac
for t in "${selected[@]}"; do
  read -r dir name max_len seeds_of flags <<<"$t"
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do
    wait -n || true
  done
  run_one "$dir" "$name" "$max_len" "${seeds_of:-}" "${flags:-}" &
done
wait

failed=()
summary=()
for t in "${selected[@]}"; do
  read -r _ name _ <<<"$t"
  line=$(cat "$target_dir/logs/$name.summary" 2>/dev/null || echo "$name: FAILED (no result)")
  case $line in *FAILED*) failed+=("$name") ;; esac
  summary+=("$line")
done

echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  exit 1
fi
