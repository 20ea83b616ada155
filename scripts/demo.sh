#!/usr/bin/env bash
# The uvs demo: builds uvs, brings up the test network (scripts/testbed.sh), runs uvsd
# with configs/demo.yaml in the balancer namespace, sends real HTTP and UDP requests from
# the client namespace through the VIPs over IPv4 and IPv6, shows how they were spread
# over the three real servers and the balancer's own counters, and tears everything down
# (also on failure or Ctrl-C). Needs root. Bounded: every request has a timeout and uvsd
# is told to stop by itself after 120 s at the latest.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "demo: needs root (network namespaces, XDP, AF_XDP)" >&2; exit 1; }
tag=demo
state=/run/uvs-testbed/$tag
requests=${REQUESTS:-30}

echo "== building uvs (release)"
cargo build --release --quiet -p uvs-control
bin=$(scripts/target-dir.sh)/release

uvsd_pid=
cleanup() {
  if [ -n "$uvsd_pid" ] && kill -0 "$uvsd_pid" 2>/dev/null; then
    kill -TERM "$uvsd_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$uvsd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$uvsd_pid" 2>/dev/null || true
  fi
  scripts/testbed.sh down "$tag" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== test network"
scripts/testbed.sh up "$tag"
sock=$state/uvsadm.sock

echo "== uvsd --config configs/demo.yaml"
ip netns exec "uvs-$tag-lb" "$bin/uvsd" --config configs/demo.yaml --admin-socket "$sock" \
  --run-for 120 >"$state/uvsd.log" 2>&1 &
uvsd_pid=$!
for _ in $(seq 100); do
  [ -S "$sock" ] && break
  kill -0 "$uvsd_pid" 2>/dev/null || { cat "$state/uvsd.log"; echo "demo: uvsd exited" >&2; exit 1; }
  sleep 0.1
done
[ -S "$sock" ] || { cat "$state/uvsd.log"; echo "demo: uvsd did not come up" >&2; exit 1; }
sed 's/^/   uvsd: /' "$state/uvsd.log"
uvsadm() { ip netns exec "uvs-$tag-lb" "$bin/uvsadm" --socket "$sock" "$@"; }
client() { ip netns exec "uvs-$tag-client" "$@"; }

spread() { # label, then one answer per line on stdin
  local label=$1
  sort | uniq -c | awk -v l="$label" '{ printf "   %-28s %-6s %s requests\n", l, $2, $1 }'
}

echo "== $requests HTTP requests to http://198.18.100.1/ (IPv4)"
for _ in $(seq "$requests"); do
  client curl -s --max-time 3 http://198.18.100.1/ | awk '{print $1}' || echo failed
done | spread "tcp/198.18.100.1:80"

echo "== $requests HTTP requests to http://[2001:2:0:100::1]/ (IPv6)"
for _ in $(seq "$requests"); do
  client curl -s -g --max-time 3 'http://[2001:2:0:100::1]/' | awk '{print $1}' || echo failed
done | spread "tcp/[2001:2:0:100::1]:80"

echo "== UDP queries to port 53 (IPv4 and IPv6)"
for vip in 198.18.100.1 2001:2:0:100::1; do
  client python3 - "$vip" <<'EOF' | spread "udp/$vip:53"
import socket, sys
vip = sys.argv[1]
fam = socket.AF_INET6 if ":" in vip else socket.AF_INET
for i in range(9):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        s.sendto(b"query%d" % i, (vip, 53))
        print(s.recvfrom(2048)[0].split()[0].decode())
    except OSError:
        print("failed")
    s.close()
EOF
done

echo "== the VIP answers ping (uvs slow path); the host stays reachable (kernel)"
client ping -c 2 -W 1 -q 198.18.100.1 | tail -2 | head -1 | sed 's/^/   VIP 198.18.100.1: /'
client ping -c 2 -W 1 -q 2001:2:0:100::1 | tail -2 | head -1 | sed 's/^/   VIP 2001:2:0:100::1: /'
client ping -c 2 -W 1 -q 198.18.0.1 | tail -2 | head -1 | sed 's/^/   host 198.18.0.1: /'

echo "== uvsadm -L -n"
uvsadm -L -n
echo "== uvsadm -L -n --stats"
uvsadm -L -n --stats
echo "== balancer counters (metrics endpoint, non-zero)"
ip netns exec "uvs-$tag-lb" curl -s --max-time 2 http://127.0.0.1:9100/metrics \
  | grep -E '^uvs_(worker|drops|conn)' | grep -v ' 0$' | sed 's/^/   /' || true

echo "== stopping uvsd"
kill -TERM "$uvsd_pid"
wait "$uvsd_pid" || true
uvsd_pid=
tail -n 2 "$state/uvsd.log" | sed 's/^/   uvsd: /'
echo "== done (test network removed on exit)"
