#!/usr/bin/env bash
# The test suite: formatting, lints, the API docs, unit/property tests of every crate, and
# (as root) the end-to-end tests on network namespaces and the bounded fuzzing run
# (scripts/fuzz.sh). This is the README's test command.
#
# Tests that need root (network namespaces, AF_XDP, BPF) are `#[ignore]`d, so cargo lists
# them as ignored rather than passed; as root they run with `--include-ignored`.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The API docs build without warnings (a link to a private or renamed item fails here).
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
if [ "$(id -u)" = 0 ]; then
  cargo test --workspace --quiet -- --include-ignored
  scripts/fuzz.sh
else
  cargo test --workspace --quiet
  echo "note: not root — the tests that need root (network namespaces, AF_XDP, BPF) were" \
    "ignored, as the 'ignored' counts above show, and fuzzing was not run" \
    "(scripts/fuzz.sh runs it without root)." >&2
fi
