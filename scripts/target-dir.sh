#!/usr/bin/env bash
# Prints the directory cargo builds into, as cargo itself resolves it: CARGO_TARGET_DIR,
# a build.target-dir setting, or the workspace's target/. Scripts that run the binaries
# they built use it instead of assuming target/.
set -euo pipefail
cd "$(dirname "$0")/.."
"${CARGO:-cargo}" metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
