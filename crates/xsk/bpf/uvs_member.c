// SPDX-License-Identifier: Apache-2.0
//
// uvs member filter: the director-less mode (as iptables CLUSTERIP and
// Microsoft NLB's multicast mode). Every member of a cluster receives every
// frame sent to the shared VIP (the frames carry a multicast cluster MAC, so
// switches and bridges flood them); each member keeps only the flows whose
// Maglev owner it is and drops the rest here, before the kernel sees them.
//
// For an IPv4 packet to the VIP:
//   - the service protocol, not fragmented, destination port listed (or any
//     port when none is listed): the flow hash decides (mode 5-tuple: source
//     address, destination address, ports and protocol; mode source: source
//     address only, so all of a client's flows meet on one member);
//   - a fragment (MF set or offset > 0) of the service protocol: the address
//     hash (ports set to 0). The later fragments carry no ports, so the first
//     fragment must be hashed the same way or the datagram would be split
//     between two members; whole datagrams of the same flow may thus land on
//     another member than its fragmented ones (harmless for UDP request /
//     answer protocols; TCP sets DF and is not fragmented in practice);
//   - an ICMP error (destination unreachable / frag needed, time exceeded,
//     parameter problem) quoting a packet the VIP sent: hashed as the quoted
//     flow, turned around, so path-MTU discovery reaches the member that owns
//     the connection (RFC 1191);
//   - an ICMP echo or other ICMP: the address hash, so one member answers a
//     ping, not all of them;
//   - anything else (other protocols, unlisted ports) passes to every
//     member's kernel (firewall them there).
// A kept packet's destination MAC is rewritten to the member's own: the
// kernel's TCP drops frames that arrived as link-layer multicast
// (pkt_type != PACKET_HOST), which is why CLUSTERIP rewrites pkt_type.
//
// ARP requests for the VIP never reach a member's kernel (it would answer
// with its own MAC and pull the whole VIP to one member): the member the
// control plane names `arp_owner` (the first healthy one) answers from here
// with XDP_TX, giving the cluster MAC as the VIP's hardware address; the
// others drop the request.
//
// The Maglev lookup table is computed by uvsd (crates/sched) and written to
// the idle half of `table`; `cfg.half` then flips, so a packet sees either the
// whole old or the whole new table.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP_BE bpf_htons(0x0800)
#define ETH_P_ARP_BE bpf_htons(0x0806)

// Largest table: the project's default Maglev size, the smallest prime above 2^16.
#define TABLE_MAX 65537
#define MAX_PORTS 16
#define NO_OWNER 0xffff

#define HASH_FIVE_TUPLE 0
#define HASH_SOURCE 1

// Counter slots of `mstats`; the loader reads them by these indices.
#define M_KEPT 0          // this member's share, passed to the local stack
#define M_OTHER 1         // another member's share: dropped
#define M_NO_MEMBER 2     // no healthy member at all: dropped
#define M_MALFORMED 3     // to the VIP but truncated: dropped
#define M_ARP_REPLIED 4   // ARP request for the VIP answered (XDP_TX)
#define M_ARP_DROPPED 5   // ARP request for the VIP left to the ARP owner
#define M_PASSED 6        // not the cluster's traffic: the kernel's
#define M_NOT_READY 7     // no table published yet: dropped
#define M_COUNT 8

struct member_cfg {
	__u32 vip;        // network order
	__u32 me;         // this member's index
	__u32 table_size; // entries in use per half (a prime <= TABLE_MAX); 0 = not ready
	__u32 half;       // 0 or 1: the half of `table` in use
	__u32 arp_owner;  // index of the member answering ARP; NO_OWNER: nobody
	__u8 proto;       // IPPROTO_TCP or IPPROTO_UDP
	__u8 hash_mode;   // HASH_*
	__u8 cluster_mac[6];
	__u8 own_mac[6];
	__u16 nports;     // 0: every port
	__u16 ports[MAX_PORTS]; // network order
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct member_cfg);
} mcfg SEC(".maps");

// Two halves of TABLE_MAX entries: entry -> member index (NO_OWNER: none).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * TABLE_MAX);
	__type(key, __u32);
	__type(value, __u32);
} table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, M_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} mstats SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *c = bpf_map_lookup_elem(&mstats, &slot);
	if (c)
		*c += 1;
}

static __always_inline int pass(void)
{
	count(M_PASSED);
	return XDP_PASS;
}

static __always_inline int drop(__u32 why)
{
	count(why);
	return XDP_DROP;
}

static __always_inline __u32 rotl(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

// MurmurHash3 (x86_32) over four 32-bit words; crates/xsk/src/member.rs has
// the same function (`flow_hash`) so tests can predict the owner.
static __always_inline __u32 mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = rotl(k, 15);
	k *= 0x1b873593;
	h ^= k;
	h = rotl(h, 13);
	return h * 5 + 0xe6546b64;
}

static __always_inline __u32 flow_hash(__u32 src, __u32 dst, __u32 ports, __u32 proto)
{
	__u32 h = 0x75767321; // "uvs!"
	h = mix(h, src);
	h = mix(h, dst);
	h = mix(h, ports);
	h = mix(h, proto);
	h ^= 16;
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

// Keep (rewriting the destination MAC to ours) or drop, by the table's owner of `h`.
static __always_inline int decide(struct xdp_md *ctx, const struct member_cfg *c, __u32 h)
{
	__u32 m = c->table_size;
	if (m == 0 || m > TABLE_MAX)
		return drop(M_NOT_READY);
	// Lemire's multiply-shift range reduction, as crates/sched's Maglev lookup.
	__u32 slot = (__u32)(((__u64)h * m) >> 32);
	__u32 key = slot + (c->half ? TABLE_MAX : 0);
	__u32 *owner = bpf_map_lookup_elem(&table, &key);
	if (!owner || *owner == NO_OWNER)
		return drop(M_NO_MEMBER);
	if (*owner != c->me)
		return drop(M_OTHER);
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return drop(M_MALFORMED);
	__builtin_memcpy(eth->h_dest, c->own_mac, 6);
	count(M_KEPT);
	return XDP_PASS;
}

static __always_inline int port_listed(const struct member_cfg *c, __u16 port)
{
	if (c->nports == 0)
		return 1;
	// A bounded loop (kernel >= 5.3 verifies it without unrolling).
	for (int i = 0; i < MAX_PORTS; i++) {
		if (i >= c->nports)
			break;
		if (c->ports[i] == port)
			return 1;
	}
	return 0;
}

static __always_inline __u32 word(const __u8 *p)
{
	__u32 w;
	__builtin_memcpy(&w, p, 4);
	return w;
}

// An ICMP error to the VIP: hash the quoted packet's flow as the client sent it.
static __always_inline int icmp_error(struct xdp_md *ctx, const struct member_cfg *c, __u8 *icmp,
				      void *end)
{
	__u8 *in = icmp + 8;
	if ((void *)(in + 20) > end)
		return drop(M_MALFORMED);
	__u32 ihl = (in[0] & 0xf) * 4;
	if (ihl < 20 || ihl > 60)
		return drop(M_MALFORMED);
	__u32 qsrc = word(in + 12), qdst = word(in + 16);
	__u8 qproto = in[9];
	if (qsrc != c->vip || qproto != c->proto)
		return pass();
	__u16 qfrag;
	__builtin_memcpy(&qfrag, in + 6, 2);
	__u32 ports = 0;
	if (!(bpf_ntohs(qfrag) & 0x3fff) && c->hash_mode == HASH_FIVE_TUPLE) {
		__u8 *l4 = in + ihl;
		if ((void *)(l4 + 4) > end)
			return drop(M_MALFORMED);
		// The quoted packet went VIP:vport -> client:cport; the client's own
		// packets carry cport, vport in this order.
		ports = ((__u32)l4[2]) | ((__u32)l4[3] << 8) | ((__u32)l4[0] << 16) |
			((__u32)l4[1] << 24);
		if (!port_listed(c, (__u16)(l4[0] | (l4[1] << 8))))
			return pass();
	}
	__u32 proto = c->hash_mode == HASH_SOURCE ? 0 : qproto;
	__u32 dst = c->hash_mode == HASH_SOURCE ? 0 : qsrc;
	return decide(ctx, c, flow_hash(qdst, dst, ports, proto));
}

static __always_inline int ipv4(struct xdp_md *ctx, const struct member_cfg *c, __u8 *ip,
				void *end)
{
	if ((void *)(ip + 20) > end)
		return pass();
	if ((ip[0] >> 4) != 4)
		return pass();
	__u32 dst = word(ip + 16);
	if (dst != c->vip)
		return pass();
	__u32 src = word(ip + 12);
	__u32 ihl = (ip[0] & 0xf) * 4;
	if (ihl < 20)
		return drop(M_MALFORMED);
	__u8 proto = ip[9];
	__u16 frag;
	__builtin_memcpy(&frag, ip + 6, 2);
	int fragment = (bpf_ntohs(frag) & 0x3fff) != 0; // MF or an offset
	__u8 *l4 = ip + ihl;
	int source = c->hash_mode == HASH_SOURCE;
	if (proto == c->proto) {
		__u32 ports = 0;
		if (!fragment) {
			if ((void *)(l4 + 4) > end)
				return drop(M_MALFORMED);
			__u16 dport;
			__builtin_memcpy(&dport, l4 + 2, 2);
			if (!port_listed(c, dport))
				return pass();
			ports = word(l4);
		}
		if (source)
			return decide(ctx, c, flow_hash(src, 0, 0, 0));
		return decide(ctx, c, flow_hash(src, dst, ports, proto));
	}
	if (proto == IPPROTO_ICMP) {
		if (!fragment) {
			if ((void *)(l4 + 1) > end)
				return drop(M_MALFORMED);
			__u8 type = l4[0];
			if (type == 3 || type == 11 || type == 12)
				return icmp_error(ctx, c, l4, end);
		}
		if (source)
			return decide(ctx, c, flow_hash(src, 0, 0, 0));
		return decide(ctx, c, flow_hash(src, dst, 0, proto));
	}
	return pass();
}

// ARP over Ethernet/IPv4 (RFC 826) asking for the VIP: the ARP owner turns the
// request into its reply in place and sends it back out (XDP_TX).
static __always_inline int arp(struct xdp_md *ctx, const struct member_cfg *c, __u8 *a,
			       void *end)
{
	if ((void *)(a + 28) > end)
		return pass();
	// htype 1, ptype 0x0800, hlen 6, plen 4
	if (a[0] != 0 || a[1] != 1 || a[2] != 0x08 || a[3] != 0 || a[4] != 6 || a[5] != 4)
		return pass();
	if (word(a + 24) != c->vip)
		return pass();
	// Only requests (op 1); a reply or announcement about the VIP from
	// elsewhere is none of the members' kernels' business either.
	if (a[6] != 0 || a[7] != 1 || c->arp_owner != c->me)
		return drop(M_ARP_DROPPED);
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return drop(M_MALFORMED);
	__u8 sha[6];
	__u32 spa = word(a + 14);
	__builtin_memcpy(sha, a + 8, 6);
	// Ethernet: back to the asker, from this member's own (unicast) MAC: a
	// multicast address is never a valid source.
	__builtin_memcpy(eth->h_dest, eth->h_source, 6);
	__builtin_memcpy(eth->h_source, c->own_mac, 6);
	a[7] = 2; // reply
	__builtin_memcpy(a + 8, c->cluster_mac, 6);
	__builtin_memcpy(a + 14, &c->vip, 4);
	__builtin_memcpy(a + 18, sha, 6);
	__builtin_memcpy(a + 24, &spa, 4);
	count(M_ARP_REPLIED);
	return XDP_TX;
}

SEC("xdp")
int uvs_member(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return pass();
	__u32 zero = 0;
	const struct member_cfg *c = bpf_map_lookup_elem(&mcfg, &zero);
	if (!c || c->vip == 0)
		return pass();
	// Untagged frames only: members sit on the VIP's access segment.
	__u8 *l3 = (__u8 *)(eth + 1);
	if (eth->h_proto == ETH_P_IP_BE)
		return ipv4(ctx, c, l3, end);
	if (eth->h_proto == ETH_P_ARP_BE)
		return arp(ctx, c, l3, end);
	return pass();
}

// No GPL-only helper is used, so the crate's own licence is accepted.
char LICENSE[] SEC("license") = "Apache-2.0";
