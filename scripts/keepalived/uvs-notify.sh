#!/bin/sh
# keepalived notify script for uvs: keepalived's VRRP decides which node is master of a VIP
# group, this tells the local uvsd (`uvsadm cluster role GROUP master|backup`). uvs, not
# keepalived's IPVS part, holds the VIPs: the vrrp_instance has no virtual_ipaddress, and uvsd
# claims the group's VIPs and FullNAT pool addresses and announces them (gratuitous ARP,
# unsolicited neighbour advertisements) when it becomes master.
#
# In keepalived.conf (configs/keepalived.conf), one vrrp_instance per uvs cluster group:
#   notify "/usr/lib/uvs/uvs-notify.sh web"
# (where the Debian package installs this script; /usr/local/lib/uvs/ when installed by hand).
# keepalived appends: INSTANCE|GROUP  NAME  MASTER|BACKUP|FAULT|STOP  [PRIORITY].
#
# Usage: uvs-notify.sh [--socket PATH] [--uvsadm PATH] [--state-dir DIR] [--tries N]
#                      GROUP[,GROUP...] TYPE NAME STATE [PRIORITY]
#        uvs-notify.sh [--socket PATH] [--uvsadm PATH] [--state-dir DIR] --track
#   MASTER -> master; BACKUP, FAULT, STOP -> backup (anything but MASTER is silent for the VIPs).
#   --track      keepalived's vrrp_script (configs/keepalived.conf): fails while uvsd does not
#                answer, and puts back the role keepalived notified last for any group whose
#                role in uvsd differs. A uvsd restarted faster than the script's `fall` comes
#                back in its YAML role (backup) while keepalived stays MASTER and notifies
#                nothing: without this, nobody would serve the group's VIPs.
#   --socket     uvsd's admin socket (default: uvsadm's, $UVSADM_SOCKET or /run/uvs/uvsadm.sock)
#   --uvsadm     the uvsadm binary (default: uvsadm on PATH)
#   --state-dir  where the latest wanted role of each group is kept (default /run/uvs/notify)
#   --tries      attempts, 0.25 s apart, while uvsd is not answering (default 40: 10 s)
#
# keepalived runs notify scripts concurrently, so a quick MASTER -> BACKUP could otherwise be
# applied in the wrong order: each call first records the role it wants in
# STATE_DIR/GROUP.want, then, holding STATE_DIR/GROUP.lock, applies whatever is recorded
# last. The role applied is always that of the latest transition.
set -u

socket=
uvsadm=uvsadm
state_dir=/run/uvs/notify
tries=40
track=

say() {
  echo "uvs-notify: $*" >&2
  command -v logger >/dev/null 2>&1 && logger -t uvs-notify -- "$*"
  return 0
}
usage() {
  say "usage: uvs-notify.sh [--socket PATH] [--uvsadm PATH] [--state-dir DIR] [--tries N] GROUP[,GROUP...] INSTANCE|GROUP NAME STATE [PRIORITY], or [--socket PATH] [--uvsadm PATH] [--state-dir DIR] --track"
  exit 2
}

while [ $# -gt 0 ]; do
  case $1 in
    --socket) [ $# -ge 2 ] || usage; socket=$2; shift 2 ;;
    --uvsadm) [ $# -ge 2 ] || usage; uvsadm=$2; shift 2 ;;
    --state-dir) [ $# -ge 2 ] || usage; state_dir=$2; shift 2 ;;
    --tries) [ $# -ge 2 ] || usage; tries=$2; shift 2 ;;
    --track) track=1; shift ;;
    --) shift; break ;;
    -*) say "unknown option '$1'"; usage ;;
    *) break ;;
  esac
done
case $tries in ''|*[!0-9]*) say "--tries takes a number, not '$tries'"; exit 2 ;; esac

# The track form: uvsd answers (or the script fails), and each group keepalived notified
# has the role it was told last. Never waits: a notification applying right now (holding
# the group's lock) is left to finish, and keepalived kills a track script that overruns.
if [ -n "$track" ]; then
  [ $# -eq 0 ] || usage
  set -- ${socket:+--socket "$socket"}
  listing=$("$uvsadm" "$@" cluster 2>/dev/null) || exit 1
  for f in "$state_dir"/*.want; do
    [ -e "$f" ] || continue
    group=${f##*/}
    group=${group%.want}
    have=$(echo "$listing" | awk -v g="$group" '$1 == g { print tolower($2) }')
    want=$(cat "$f" 2>/dev/null)
    [ -n "$have" ] && [ -n "$want" ] && [ "$have" != "$want" ] || continue
    (
      flock -n 9 || exit 0
      want=$(cat "$f")
      if out=$("$uvsadm" "$@" cluster role "$group" "$want" 2>&1); then
        say "track: uvs group $group was $have, put back to $want (keepalived's last state)"
      else
        say "track: could not put uvs group $group back to $want: $out"
      fi
    ) 9>"$state_dir/$group.lock"
  done
  exit 0
fi

[ $# -ge 4 ] || usage
groups=$1 kind=$2 name=$3 state=$4

case $state in
  MASTER) role=master ;;
  BACKUP|FAULT|STOP) role=backup ;;
  *) say "$kind $name: unknown state '$state' (MASTER, BACKUP, FAULT or STOP)"; exit 2 ;;
esac

mkdir -p "$state_dir" || exit 1
set -- ${socket:+--socket "$socket"}
status=0
for group in $(echo "$groups" | tr ',' ' '); do
  case $group in
    *[!A-Za-z0-9._-]*|'') say "'$group' is not a uvs cluster group name"; exit 2 ;;
  esac
  # Record first (atomically), then apply the latest record under the group's lock.
  tmp=$state_dir/$group.want.$$
  echo "$role" > "$tmp" && mv -f "$tmp" "$state_dir/$group.want" || exit 1
  (
    flock 9
    n=0
    while :; do
      want=$(cat "$state_dir/$group.want")
      if out=$("$uvsadm" "$@" cluster role "$group" "$want" 2>&1); then
        say "$kind $name is $state: uvs group $group is now $want"
        exit 0
      fi
      n=$((n + 1))
      if [ "$n" -ge "$tries" ]; then
        say "$kind $name is $state: could not make uvs group $group $want: $out"
        exit 1
      fi
      sleep 0.25
    done
  ) 9>"$state_dir/$group.lock" || status=1
done
exit $status
