#!/usr/bin/env bash
# The uvs test network: a client, the balancer, a switch and three real servers, each in its
# own network namespace, joined by veth pairs. Addresses only from the benchmarking ranges
# 198.18.0.0/15 and 2001:2::/48; nothing touches a host interface.
#
#   client ns            balancer ns                      switch ns        real servers
#   uvs-c0 ─────────── uvs-lb0 [uvsd] uvs-lb1 ─────────── uvs-sw0 ┐
#   198.18.0.2/24      198.18.0.1/24  198.18.1.1/24               ├ bridge uvs-br0 ─ uvs-r0 198.18.1.11 (rs1)
#   2001:2::2/64       2001:2::1/64   2001:2:0:1::1/64            │                ─ uvs-r0 198.18.1.12 (rs2)
#                      VIPs 198.18.100.1, 2001:2:0:100::1         │                ─ uvs-r0 198.18.1.13 (rs3)
#
# Interface names are the same in every testbed (they live in different namespaces), so
# configs/demo.yaml fits any of them; namespace names carry a tag so several testbeds can
# exist at once: uvs-<tag>-client, uvs-<tag>-lb, uvs-<tag>-sw, uvs-<tag>-rs1..3.
#
# Usage: scripts/testbed.sh up|down|status [TAG] [--mode nat|dr|tun|fullnat] [--queues N]
#                          [--tx-csum-offload on|off]
#   up      (idempotent: tears down a leftover testbed of the same tag first)
#   down    kills every process in the namespaces (by PID) and deletes them
# Real servers run nginx answering "rsN <address>" on TCP 80 and a UDP responder on 53.
# --mode dr|tun puts the VIPs on the real servers' loopback (arp_ignore/announce as LVS-DR
# wants); tun also loads the tc BPF decapsulator (scripts/decap.bpf.c: IPIP, GUE to UDP
# port 6080, GRE) on their ingress.
# fullnat gives the real servers no route to the client network (they only know 198.18.1.0/24).
# The veths keep their default offloads, as containers and VMs have them: sockets send TCP/UDP
# with partial checksums (pseudo-header sum only), which uvs completes. --tx-csum-offload off
# turns transmit checksum offload off on every veth (full checksums from every socket; the
# bench's packet-rate measurement uses it, since its generator sends full checksums anyway).
set -Eeuo pipefail

cmd=${1:-}
tag=${2:-demo}
mode=nat
queues=1
tx_csum=on
shift $(( $# >= 2 ? 2 : $# )) || true
while [ $# -gt 0 ]; do
  case $1 in
    --mode) mode=$2; shift 2 ;;
    --queues) queues=$2; shift 2 ;;
    --tx-csum-offload) tx_csum=$2; shift 2 ;;
    *) echo "testbed: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "$0")" && pwd)
state=/run/uvs-testbed/$tag
ns_client=uvs-$tag-client
ns_lb=uvs-$tag-lb
ns_sw=uvs-$tag-sw
reals=(1 2 3)

[ "$(id -u)" = 0 ] || { echo "testbed: needs root (network namespaces, veth)" >&2; exit 1; }
[ ${#tag} -le 8 ] || { echo "testbed: tag '$tag' longer than 8 characters" >&2; exit 2; }
case $tx_csum in on|off) ;; *) echo "testbed: --tx-csum-offload takes on or off, not '$tx_csum'" >&2; exit 2 ;; esac

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

all_ns() {
  echo "$ns_client $ns_lb $ns_sw"
  for i in "${reals[@]}"; do echo "uvs-$tag-rs$i"; done
}

down() {
  for ns in $(all_ns); do
    if ip netns list | grep -qw "$ns"; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    fi
  done
  sleep 0.2
  for ns in $(all_ns); do
    if ip netns list | grep -qw "$ns"; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
  rm -rf "$state"
}

new_ns() {
  ip netns add "$1"
  nsx "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  nsx "$1" ip link set lo up
}

# veth pair with both ends created inside namespaces (offloads: see the header).
veth() { # ns_a dev_a ns_b dev_b [queues]
  local q=${5:-1}
  ip -n "$1" link add "$2" numtxqueues "$q" numrxqueues "$q" type veth \
    peer name "$4" netns "$3" numtxqueues "$q" numrxqueues "$q"
  if [ "$tx_csum" = off ]; then
    nsx "$1" ethtool -K "$2" tx off >/dev/null
    nsx "$3" ethtool -K "$4" tx off >/dev/null
  fi
  ip -n "$1" link set "$2" up
  ip -n "$3" link set "$4" up
}

start_real() { # i
  local i=$1 ns=uvs-$tag-rs$1 dir=$state/rs$1
  mkdir -p "$dir"
  cat > "$dir/nginx.conf" <<EOF
daemon on;
pid $dir/nginx.pid;
error_log $dir/error.log;
worker_processes 1;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir;
  proxy_temp_path $dir;
  fastcgi_temp_path $dir;
  uwsgi_temp_path $dir;
  scgi_temp_path $dir;
  server {
    listen 80 default_server;
    listen [::]:80 default_server;
    location = /big { alias $dir/big; }
    location / { return 200 "rs$i \$server_addr \$remote_addr\n"; }
  }
}
EOF
  head -c 20971520 /dev/urandom > "$dir/big"
  nsx "$ns" nginx -c "$dir/nginx.conf" -e "$dir/error.log"
  nsx "$ns" python3 "$here/udp_responder.py" "rs$i" 53 >/dev/null 2>&1 &
}

up() {
  down
  mkdir -p "$state"
  if [ "$mode" = tun ]; then
    clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c "$here/decap.bpf.c" -o "$state/decap.o"
  fi
  for ns in $(all_ns); do new_ns "$ns"; done

  # client
  # The balancer's links get --queues queues each (one per uvsd worker); a veth delivers a
  # frame to the receive queue matching the sender's transmit queue, picked by flow hash.
  veth "$ns_client" uvs-c0 "$ns_lb" uvs-lb0 "$queues"
  ip -n "$ns_client" addr add 198.18.0.2/24 dev uvs-c0
  ip -n "$ns_client" addr add 2001:2::2/64 dev uvs-c0 nodad
  ip -n "$ns_client" route add default via 198.18.0.1
  ip -n "$ns_client" -6 route add default via 2001:2::1

  # balancer: the kernel keeps its own addresses (the host stays reachable); uvsd owns the
  # VIPs and its local addresses (198.18.0.3, 198.18.1.3, ...) through the XDP program.
  ip -n "$ns_lb" addr add 198.18.0.1/24 dev uvs-lb0
  ip -n "$ns_lb" addr add 2001:2::1/64 dev uvs-lb0 nodad
  veth "$ns_lb" uvs-lb1 "$ns_sw" uvs-sw0 "$queues"
  ip -n "$ns_lb" addr add 198.18.1.1/24 dev uvs-lb1
  ip -n "$ns_lb" addr add 2001:2:0:1::1/64 dev uvs-lb1 nodad
  nsx "$ns_lb" sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0

  # switch
  ip -n "$ns_sw" link add uvs-br0 type bridge
  ip -n "$ns_sw" link set uvs-br0 up
  ip -n "$ns_sw" link set uvs-sw0 master uvs-br0

  for i in "${reals[@]}"; do
    local ns=uvs-$tag-rs$i
    veth "$ns_sw" "uvs-sw$i" "$ns" uvs-r0
    ip -n "$ns_sw" link set "uvs-sw$i" master uvs-br0
    ip -n "$ns" addr add "198.18.1.1$i/24" dev uvs-r0
    ip -n "$ns" addr add "2001:2:0:1::1$i/64" dev uvs-r0 nodad
    case $mode in
      nat)
        ip -n "$ns" route add default via 198.18.1.1
        ip -n "$ns" -6 route add default via 2001:2:0:1::1 ;;
      dr|tun)
        # LVS-DR/TUN real server: the VIP on loopback, never answered for by ARP/NDP;
        # replies go straight to the client through the test network's router (the
        # balancer namespace's kernel, forwarding on for this purpose).
        ip -n "$ns" addr add 198.18.100.1/32 dev lo
        ip -n "$ns" addr add 2001:2:0:100::1/128 dev lo
        nsx "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
          net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.uvs-r0.rp_filter=0
        ip -n "$ns" route add default via 198.18.1.1
        ip -n "$ns" -6 route add default via 2001:2:0:1::1
        nsx "$ns_lb" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
        if [ "$mode" = tun ]; then
          ip -n "$ns" link set uvs-r0 mtu 1600
          nsx "$ns" tc qdisc add dev uvs-r0 clsact
          nsx "$ns" tc filter add dev uvs-r0 ingress bpf da obj "$state/decap.o" sec tc
        fi ;;
      fullnat) ;; # no route beyond the server network: replies must come back to uvsd's pool
      *) echo "testbed: unknown mode '$mode'" >&2; exit 2 ;;
    esac
    start_real "$i"
  done
  if [ "$mode" = tun ]; then
    ip -n "$ns_lb" link set uvs-lb1 mtu 1600
    ip -n "$ns_sw" link set uvs-sw0 mtu 1600
    for i in "${reals[@]}"; do ip -n "$ns_sw" link set "uvs-sw$i" mtu 1600; done
  fi
  echo "$mode" > "$state/mode"
  # Let nginx and the responders bind before anyone sends.
  for i in "${reals[@]}"; do
    for _ in $(seq 50); do
      nsx "uvs-$tag-rs$i" bash -c "exec 3<>/dev/tcp/198.18.1.1$i/80" 2>/dev/null && break
      sleep 0.1
    done
  done
  echo "testbed $tag up ($mode): $(all_ns | tr '\n' ' ')"
}

status() {
  for ns in $(all_ns); do
    if ip netns list | grep -qw "$ns"; then echo "$ns: up ($(ip netns pids "$ns" | wc -l) processes)"; else echo "$ns: absent"; fi
  done
}

case $cmd in
  up)
    trap 'echo "testbed: setup failed, tearing down" >&2; down' ERR
    up ;;
  down) down; echo "testbed $tag down" ;;
  status) status ;;
  *) echo "usage: $0 up|down|status [TAG] [--mode nat|dr|tun|fullnat] [--queues N] [--tx-csum-offload on|off]" >&2; exit 2 ;;
esac
