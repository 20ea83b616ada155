#!/usr/bin/env bash
# Builds the Debian package (cargo-deb): uvsd, uvsadm and uvs-agent, the systemd unit, a
# default /etc/uvs/uvs.yaml, the manual pages and the shell completions.
#
# Usage: scripts/package.sh [--profile PROFILE] [--no-build] [--fast] [--out DIR]
#   --profile   the cargo profile whose binaries are packaged (default release; the tests
#               package their dev build: cargo-deb warns that dev is meant for tests only)
#   --no-build  package the binaries already built for that profile
#   --fast      lighter compression (a bigger .deb, made in seconds instead of a minute)
#   --out DIR   where the .deb goes (default the target directory's debian/)
# Prints the path of the .deb. Needs cargo-deb (`cargo install cargo-deb --locked`).
set -Eeuo pipefail
cd "$(dirname "$0")/.."

profile=release
build=1
fast=()
out=
while [ $# -gt 0 ]; do
  case $1 in
    --profile) profile=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --fast) fast=(--fast); shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "package: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

cargo deb --version >/dev/null 2>&1 || {
  echo "package: cargo-deb is missing: cargo install cargo-deb --locked" >&2; exit 1; }

target=${CARGO_TARGET_DIR:-target}
case $profile in dev|debug) dir=$target/debug ;; *) dir=$target/$profile ;; esac
out=${out:-$target/debian}

if [ "$build" = 1 ]; then
  cargo build --profile "$profile" -p uvs-control -p uvs-agent --bins
fi
for b in uvsd uvsadm uvs-agent; do
  [ -x "$dir/$b" ] || { echo "package: $dir/$b is not built" >&2; exit 1; }
done

# Generated from the programs themselves, so they match the binaries packaged.
rm -rf "$dir/package"
"$dir/uvsd" --man "$dir/package/man" >/dev/null
gzip -9n "$dir"/package/man/man*/*    # Debian policy 12.1: manual pages compressed
"$dir/uvsd" --completions "$dir/package/completions" >/dev/null
"$dir/uvs-agent" completions "$dir/package/completions" >/dev/null

mkdir -p "$out"
# cargo-deb prints the .deb's path; its warning about the dev profile is expected here.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! cargo deb -p uvs-control --no-build --profile "$profile" "${fast[@]}" --output "$out" >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
grep '\.deb$' "$log" | tail -1
