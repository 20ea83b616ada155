#!/usr/bin/env bash
# The uvs active/backup test network: a client, two balancer nodes (a and b) and three real
# servers, each in its own network namespace; the client and both nodes share one L2 (a
# bridge in its own namespace), the nodes and the real servers another, so a VIP (and a
# FullNAT pool address) can move from one node to the other by gratuitous ARP / unsolicited
# neighbour advertisement. Addresses only from 198.18.0.0/15 and 2001:2::/48; nothing
# touches a host interface. uvsd and keepalived are started by the caller (the end-to-end
# test), which needs their PIDs.
#
#   client            client L2 (bridge)        nodes                 server L2 (bridge)   real servers
#   uvs-c0 ───────── uvs-<tag>-csw ─────── a: uvs-lb0 [uvsd] uvs-lb1 ── uvs-<tag>-ssw ─── rs1 198.18.1.11
#   198.18.0.2/24                   └───── b: uvs-lb0 [uvsd] uvs-lb1 ──┘              ├── rs2 198.18.1.12
#   2001:2::2/64                                                                      └── rs3 198.18.1.13
#
#   node a: kernel 198.18.0.11, 2001:2::11 (uvs-lb0); 198.18.1.5, 2001:2:0:1::5 (uvs-lb1)
#   node b: kernel 198.18.0.12, 2001:2::12 (uvs-lb0); 198.18.1.6, 2001:2:0:1::6 (uvs-lb1)
#   uvs's own addresses (in its YAML): a .21, b .22 on both links; VIPs 198.18.0.100 and
#   2001:2::100, FullNAT pool 198.18.1.100 and 2001:2:0:1::100 (the cluster group's).
#
# Namespaces: uvs-<tag>-{client,csw,a,b,ssw,rs1,rs2,rs3}; state in /run/uvs-cluster/<tag>.
# Real servers run nginx: "rsN <address> <client>" on /, and /big (50 MB of random bytes,
# one file for all three; its sha256 in big.sha256).
#
# Usage: scripts/cluster_testbed.sh up|down|status [TAG]
#   up    (idempotent: tears down a leftover testbed of the same tag first)
#   down  kills every process in the namespaces (by PID) and deletes them
set -Eeuo pipefail

cmd=${1:-}
tag=${2:-cluster}
state=/run/uvs-cluster/$tag
ns_client=uvs-$tag-client
ns_csw=uvs-$tag-csw
ns_ssw=uvs-$tag-ssw
nodes=(a b)
reals=(1 2 3)

[ "$(id -u)" = 0 ] || { echo "cluster_testbed: needs root (network namespaces, veth)" >&2; exit 1; }
[ ${#tag} -le 8 ] || { echo "cluster_testbed: tag '$tag' longer than 8 characters" >&2; exit 2; }

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

all_ns() {
  echo "$ns_client $ns_csw $ns_ssw"
  for n in "${nodes[@]}"; do echo "uvs-$tag-$n"; done
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

veth() { # ns_a dev_a ns_b dev_b
  ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
  ip -n "$1" link set "$2" up
  ip -n "$3" link set "$4" up
}

bridge() { # ns
  ip -n "$1" link add uvs-br0 type bridge
  ip -n "$1" link set uvs-br0 up
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
    location = /big { alias $state/big; }
    location / { return 200 "rs$i \$server_addr \$remote_addr\n"; }
  }
}
EOF
  nsx "$ns" nginx -c "$dir/nginx.conf" -e "$dir/error.log"
}

up() {
  down
  mkdir -p "$state"
  head -c 52428800 /dev/urandom > "$state/big"
  sha256sum "$state/big" | cut -d' ' -f1 > "$state/big.sha256"
  for ns in $(all_ns); do new_ns "$ns"; done
  bridge "$ns_csw"
  bridge "$ns_ssw"

  veth "$ns_client" uvs-c0 "$ns_csw" uvs-cc
  ip -n "$ns_csw" link set uvs-cc master uvs-br0
  ip -n "$ns_client" addr add 198.18.0.2/24 dev uvs-c0
  ip -n "$ns_client" addr add 2001:2::2/64 dev uvs-c0 nodad

  local k=0
  for n in "${nodes[@]}"; do
    local ns=uvs-$tag-$n
    k=$((k + 1))
    veth "$ns" uvs-lb0 "$ns_csw" "uvs-c$n"
    ip -n "$ns_csw" link set "uvs-c$n" master uvs-br0
    veth "$ns" uvs-lb1 "$ns_ssw" "uvs-s$n"
    ip -n "$ns_ssw" link set "uvs-s$n" master uvs-br0
    # The kernel's own addresses (VRRP, sync, ssh); uvsd owns the VIPs and its locals.
    ip -n "$ns" addr add "198.18.0.1$k/24" dev uvs-lb0
    ip -n "$ns" addr add "2001:2::1$k/64" dev uvs-lb0 nodad
    ip -n "$ns" addr add "198.18.1.$((4 + k))/24" dev uvs-lb1
    ip -n "$ns" addr add "2001:2:0:1::$((4 + k))/64" dev uvs-lb1 nodad
    nsx "$ns" sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0
  done

  for i in "${reals[@]}"; do
    local ns=uvs-$tag-rs$i
    veth "$ns_ssw" "uvs-s$i" "$ns" uvs-r0
    ip -n "$ns_ssw" link set "uvs-s$i" master uvs-br0
    ip -n "$ns" addr add "198.18.1.1$i/24" dev uvs-r0
    ip -n "$ns" addr add "2001:2:0:1::1$i/64" dev uvs-r0 nodad
    # FullNAT: the real servers answer the pool address on their own network, no route.
    start_real "$i"
  done
  for i in "${reals[@]}"; do
    for _ in $(seq 50); do
      nsx "uvs-$tag-rs$i" bash -c "exec 3<>/dev/tcp/198.18.1.1$i/80" 2>/dev/null && break
      sleep 0.1
    done
  done
  echo "cluster testbed $tag up: $(all_ns | tr '\n' ' ')"
}

status() {
  for ns in $(all_ns); do
    if ip netns list | grep -qw "$ns"; then echo "$ns: up ($(ip netns pids "$ns" | wc -l) processes)"; else echo "$ns: absent"; fi
  done
}

case $cmd in
  up)
    trap 'echo "cluster_testbed: setup failed, tearing down" >&2; down' ERR
    up ;;
  down) down; echo "cluster testbed $tag down" ;;
  status) status ;;
  *) echo "usage: $0 up|down|status [TAG]" >&2; exit 2 ;;
esac
