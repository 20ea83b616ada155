#!/usr/bin/env bash
# The test suite: formatting, lints, unit/property tests of every crate, and (as root)
# the end-to-end tests on network namespaces. This is the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --quiet
if [ "$(id -u)" != 0 ]; then
  echo "note: not root — the end-to-end tests above skipped themselves (they need network namespaces, AF_XDP and BPF)." >&2
fi
