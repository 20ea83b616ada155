#!/usr/bin/env bash
# The active/active test network: a client behind a router that learns the VIPs over BGP
# (BIRD, ECMP with L4 hashing) from up to three uvs nodes, and three nginx real servers on
# one L2 with the nodes and the router. Each part in its own network namespace, joined by
# veth pairs and two bridges; addresses only from 198.18.0.0/15; nothing touches a host
# interface. This script builds the network only: the test writes the configurations and
# starts BIRD and uvsd (control/tests/e2e_bgp.rs).
#
#   client ns          router ns                 switch ns              nodes n1, n2, n3
#   uvs-c0 ────────── uvs-rt0   uvs-rt1 ──── uvs-sfr ┐                  uvs-f0 198.18.61.11/.12/.13
#   198.18.60.2/24    198.18.60.1 198.18.61.1        ├ bridge uvs-brf ── uvs-sf1..3
#                     ip_forward, multipath hash 1   │                  uvs-b0 198.18.62.11/.12/.13
#                               uvs-rt2 ──── uvs-srr ┤
#                               198.18.62.1          └ bridge uvs-brb ── uvs-sb1..3,
#                                          uvs-sr1..3 ── rs1..3 uvs-r0 198.18.62.21/.22/.23
#
# IPv6 alongside, one /64 per link: client 2001:2:0:60::2 (router ::1), front 2001:2:0:61::/64
# (router ::1, nodes ::11 ::12 ::13), back 2001:2:0:62::/64 (router ::1, nodes ::1N, real
# servers ::21 ::22 ::23); the router forwards and hashes IPv6 by L4 too.
# Namespaces: uvs-<tag>-{client,rt,sw,n1,n2,n3,rs1,rs2,rs3}; state in /run/uvs-testbed/<tag>.
# Usage: scripts/bgp_testbed.sh up|down [TAG]   (up tears a leftover of the same tag down
# first; down kills every process in the namespaces by PID and deletes them)
# Real servers run nginx answering "rsN <address> <client>" on TCP 80. FullNAT replies go
# to the pool address of the node that sent the request (on-link); DR replies (the real
# servers hold the DR VIP 198.18.100.2 on lo, arp_ignore=1, arp_announce=2) go straight to
# the client through the router's leg on the real servers' L2 (their default route).
set -Eeuo pipefail

cmd=${1:-}
tag=${2:-bgp}
state=/run/uvs-testbed/$tag
[ "$(id -u)" = 0 ] || { echo "bgp_testbed: needs root (network namespaces, veth)" >&2; exit 1; }
[ ${#tag} -le 8 ] || { echo "bgp_testbed: tag '$tag' longer than 8 characters" >&2; exit 2; }

ns() { echo "uvs-$tag-$1"; }
nsx() { local n; n=$(ns "$1"); shift; ip netns exec "$n" "$@"; }
roles="client rt sw n1 n2 n3 rs1 rs2 rs3"
# The VIP the real servers hold for direct routing.
dr_vip=198.18.100.2

down() {
  for r in $roles; do
    local n; n=$(ns "$r")
    if ip netns list | grep -qw "$n"; then
      for pid in $(ip netns pids "$n" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    fi
  done
  sleep 0.2
  for r in $roles; do
    local n; n=$(ns "$r")
    if ip netns list | grep -qw "$n"; then
      for pid in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
      ip netns del "$n" 2>/dev/null || true
    fi
  done
  rm -rf "$state"
}

veth() { # role_a dev_a role_b dev_b
  ip -n "$(ns "$1")" link add "$2" type veth peer name "$4" netns "$(ns "$3")"
  ip -n "$(ns "$1")" link set "$2" up
  ip -n "$(ns "$3")" link set "$4" up
}

start_real() { # i
  local i=$1 dir=$state/rs$1
  mkdir -p "$dir"
  cat > "$dir/nginx.conf" <<NGINX
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
    location / { return 200 "rs$i \$server_addr \$remote_addr\n"; }
  }
}
NGINX
  nsx "rs$i" nginx -c "$dir/nginx.conf" -e "$dir/error.log"
}

up() {
  down
  mkdir -p "$state"
  for r in $roles; do
    ip netns add "$(ns "$r")"
    nsx "$r" ip link set lo up
  done
  ip -n "$(ns sw)" link add uvs-brf type bridge
  ip -n "$(ns sw)" link add uvs-brb type bridge
  ip -n "$(ns sw)" link set uvs-brf up
  ip -n "$(ns sw)" link set uvs-brb up

  veth client uvs-c0 rt uvs-rt0
  ip -n "$(ns client)" addr add 198.18.60.2/24 dev uvs-c0
  ip -n "$(ns client)" addr add 2001:2:0:60::2/64 dev uvs-c0 nodad
  ip -n "$(ns client)" route add default via 198.18.60.1
  ip -n "$(ns client)" -6 route add default via 2001:2:0:60::1
  ip -n "$(ns rt)" addr add 198.18.60.1/24 dev uvs-rt0
  ip -n "$(ns rt)" addr add 2001:2:0:60::1/64 dev uvs-rt0 nodad
  veth rt uvs-rt1 sw uvs-sfr
  ip -n "$(ns sw)" link set uvs-sfr master uvs-brf
  ip -n "$(ns rt)" addr add 198.18.61.1/24 dev uvs-rt1
  ip -n "$(ns rt)" addr add 2001:2:0:61::1/64 dev uvs-rt1 nodad
  # The router's leg on the real servers' L2: DR replies go from the real servers to the
  # client through it, never through a node.
  veth rt uvs-rt2 sw uvs-srr
  ip -n "$(ns sw)" link set uvs-srr master uvs-brb
  ip -n "$(ns rt)" addr add 198.18.62.1/24 dev uvs-rt2
  ip -n "$(ns rt)" addr add 2001:2:0:62::1/64 dev uvs-rt2 nodad
  # ECMP over the nodes by the flow's ports too (L4 hash), as the issue asks. DR replies
  # come from the VIP on another leg than the VIP's route: no reverse-path filter.
  nsx rt sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
    net.ipv6.conf.all.forwarding=1 net.ipv6.fib_multipath_hash_policy=1
  for d in uvs-rt0 uvs-rt1 uvs-rt2; do nsx rt sysctl -qw "net.ipv4.conf.$d.rp_filter=0"; done

  for n in 1 2 3; do
    veth "n$n" uvs-f0 sw "uvs-sf$n"
    veth "n$n" uvs-b0 sw "uvs-sb$n"
    ip -n "$(ns sw)" link set "uvs-sf$n" master uvs-brf
    ip -n "$(ns sw)" link set "uvs-sb$n" master uvs-brb
    # The kernel's own addresses (BGP runs on the front one); uvsd owns the VIP and the
    # FullNAT pool address 198.18.62.10N.
    ip -n "$(ns "n$n")" addr add "198.18.61.1$n/24" dev uvs-f0
    ip -n "$(ns "n$n")" addr add "198.18.62.1$n/24" dev uvs-b0
    ip -n "$(ns "n$n")" addr add "2001:2:0:61::1$n/64" dev uvs-f0 nodad
    ip -n "$(ns "n$n")" addr add "2001:2:0:62::1$n/64" dev uvs-b0 nodad
    nsx "n$n" sysctl -qw net.ipv4.ip_forward=0
  done
  for i in 1 2 3; do
    veth "rs$i" uvs-r0 sw "uvs-sr$i"
    ip -n "$(ns sw)" link set "uvs-sr$i" master uvs-brb
    ip -n "$(ns "rs$i")" addr add "198.18.62.2$i/24" dev uvs-r0
    ip -n "$(ns "rs$i")" addr add "2001:2:0:62::2$i/64" dev uvs-r0 nodad
    # Direct routing: the VIP on lo, never answered for on the link (IPVS's DR recipe).
    nsx "rs$i" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
    ip -n "$(ns "rs$i")" addr add "$dr_vip/32" dev lo
    ip -n "$(ns "rs$i")" route add default via 198.18.62.1
    start_real "$i"
  done
  for i in 1 2 3; do
    for _ in $(seq 50); do
      nsx "rs$i" bash -c "exec 3<>/dev/tcp/198.18.62.2$i/80" 2>/dev/null && break
      sleep 0.1
    done
  done
  echo "bgp testbed $tag up: $(for r in $roles; do printf '%s ' "$(ns "$r")"; done)"
}

case $cmd in
  up)
    trap 'echo "bgp_testbed: setup failed, tearing down" >&2; down' ERR
    up ;;
  down) down; echo "bgp testbed $tag down" ;;
  *) echo "usage: $0 up|down [TAG]" >&2; exit 2 ;;
esac
