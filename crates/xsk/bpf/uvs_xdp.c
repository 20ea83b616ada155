// SPDX-License-Identifier: Apache-2.0
//
// uvs XDP program: steer to the AF_XDP socket only what the balancer owns and
// give everything else back to the kernel (XDP_PASS), so that ssh, ping to the
// host, the kernel's own health checks to real servers and neighbour
// discovery keep working while uvs runs (DESIGN.md "Slow path"). The socket
// for a frame is the one registered at `xsks[rx_queue_index]`; when none is
// registered `bpf_redirect_map` falls back to XDP_PASS, so VIP traffic reaches
// the kernel if the balancer is gone.
//
// One loaded object (own maps) per interface: the XSKMAP is indexed by queue
// and two interfaces both have queue 0.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_8021Q_BE bpf_htons(0x8100)
#define ETH_P_8021AD_BE bpf_htons(0x88A8)
#define ETH_P_IP_BE bpf_htons(0x0800)
#define ETH_P_IPV6_BE bpf_htons(0x86DD)
#define ETH_P_ARP_BE bpf_htons(0x0806)
#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

#define IPPROTO_ICMPV6_NR 58
#define IPPROTO_ICMP_NR 1
#define IPPROTO_TCP_NR 6
#define IPPROTO_UDP_NR 17
#define IPPROTO_SCTP_NR 132
#define ICMPV6_ROUTER_SOLICIT 133
#define ICMPV6_REDIRECT 137
#define ICMPV6_NEIGH_SOLICIT 135
#define ICMPV6_NEIGH_ADVERT 136

// Counter slots of `stats`; the loader reads them by these indices.
#define STAT_REDIRECTED 0 // handed to the AF_XDP socket
#define STAT_PASSED 1     // not ours: given to the kernel
#define STAT_UNCLAIMED 2  // ours, but no socket on this queue: kernel got it
#define STAT_FAST 3       // rewritten by the kernel fast path and given to the kernel
#define STAT_FAST_SENT 4  // of those, sent on by uvs_fast_tc, past the kernel's forwarding
#define STAT_COUNT 5

// `settings[0]` bits.
#define SETTING_REDIRECT_ALL 1 // baseline mode (xsk_l2fwd): every frame to the socket
#define SETTING_FAST_PATH 2    // workers.kernel_fast_path: look frames up in `fast4`/`fast6`
#define SETTING_FAST_SEND 4    // mark the fast path's frames for uvs_fast_tc (`fast_routes`/`6`)
#define SETTING_FAST_PATH6 8   // with SETTING_FAST_PATH: IPv6 too (`fast6`; IPv6 forwarding on)

#define READ_ONCE(x) (*(volatile __typeof__(x) *)&(x))
#define barrier() asm volatile("" ::: "memory")

struct in6_key {
	__u8 b[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

// VIPs and uvs's own local/FullNAT addresses.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} owned4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct in6_key);
	__type(value, __u8);
} owned6 SEC(".maps");

// Real servers: their packets to non-host addresses from a service port (see
// `real_ports`) are replies of NATed flows; their own traffic (DNS lookups,
// updates) from other ports goes to the kernel, which routes it as IPVS's
// director does.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} reals4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct in6_key);
	__type(value, __u8);
} reals6 SEC(".maps");

// The kernel's own addresses on this box (filled by uvsd).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} host4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct in6_key);
	__type(value, __u8);
} host6 SEC(".maps");

// (real server, protocol, port) of every service a real server serves; port 0
// for a port-0 (all ports) service. IPv4 addresses fill the first 4 bytes.
struct real_port_key {
	__u8 addr[16];
	__u16 port; // network order, as in the packet
	__u8 proto;
	__u8 v6;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct real_port_key);
	__type(value, __u8);
} real_ports SEC(".maps");

// Firewall marks (uvs's stand-in for netfilter marks): destination prefixes
// whose packets of some protocols and destination ports belong to a
// firewall-mark service. Longest prefix match; each prefix's value lists what
// every mark covering it matches (uvsd merges them), at most MARK_RANGES
// port ranges, each with a bit per protocol.
#define MARK_RANGES 8
#define MARK_TCP 1
#define MARK_UDP 2
#define MARK_SCTP 4

struct mark_range {
	__u16 first; // host order
	__u16 last;
	__u8 protos; // MARK_* bits
	__u8 pad[3];
};

struct mark_match {
	__u8 nranges;
	__u8 pad[3];
	struct mark_range ranges[MARK_RANGES];
};

struct mark_key4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct mark_key6 {
	__u32 prefixlen;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mark_key4);
	__type(value, struct mark_match);
} marks4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mark_key6);
	__type(value, struct mark_match);
} marks6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} settings SEC(".maps");

// The kernel fast path (workers.kernel_fast_path; crates/port/src/fast.rs): one direction
// of an established TCP/UDP flow per line, written by uvs's workers through a memory
// mapping of these arrays (`fast4` for IPv4, `fast6` for IPv6), read here. Layouts and
// index: `FastLineOf` and `index` in fast.rs.
#define FAST_LINES 65536
#define FAST_INBOUND (1 << 8)
#define FAST_DATA_ONLY (1 << 9) // written at the handshake: only TCP segments with payload
#define FAST_SYN_ACK (1 << 10) // written at the client's SYN: the server's SYN-ACK passes too

struct fast_line {
	__u32 seq; // odd while a worker writes the line
	__u32 kind; // protocol | FAST_INBOUND | FAST_DATA_ONLY | FAST_SYN_ACK; 0: empty
	__u32 saddr, daddr, ports; // the tuple as it arrives
	__u32 to_saddr, to_daddr, to_ports; // the tuple it leaves with
	__u64 until_ns; // bpf_ktime_get_ns() before which the line holds
	__u64 packets, bytes; // forwarded here; the workers take them
	__u32 service, real;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, FAST_LINES);
	__type(key, __u32);
	__type(value, struct fast_line);
} fast4 SEC(".maps");

// An IPv6 line: `struct fast_line` with addresses of four words, padded to two cache
// lines (`FastLine6` in fast.rs, 128 bytes, its offsets checked there).
struct fast_line6 {
	__u32 seq;
	__u32 kind;
	__u32 saddr[4], daddr[4], ports;
	__u32 to_saddr[4], to_daddr[4], to_ports;
	__u64 until_ns;
	__u64 packets, bytes;
	__u32 service, real;
	__u32 pad[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, FAST_LINES);
	__type(key, __u32);
	__type(value, struct fast_line6);
} fast6 SEC(".maps");

// uvs's IPv4 routes (the workers' own, crates/xsk FastRoute), for the frames the fast path
// rewrote: uvs_fast_tc sends them out of the route's interface to its next hop (the
// destination itself when `via` is 0), past the kernel's forwarding. A frame whose
// destination has no route here, or that is larger than the route's MTU, is left to the
// kernel to forward.
struct fast_route_key {
	__u32 prefixlen;
	__u32 addr;
};

struct fast_route {
	__u32 ifindex;
	__u32 via;
	__u32 mtu;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096);
	__type(key, struct fast_route_key);
	__type(value, struct fast_route);
} fast_routes SEC(".maps");

// uvs's IPv6 routes, as `fast_routes` (crates/xsk FastRoute6): addresses as they lie in
// the packet; `via` all zero on the link.
struct fast_route6_key {
	__u32 prefixlen;
	__u32 addr[4];
};

struct fast_route6 {
	__u32 ifindex;
	__u32 via[4];
	__u32 mtu;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096);
	__type(key, struct fast_route6_key);
	__type(value, struct fast_route6);
} fast_routes6 SEC(".maps");

// How the fast path marks a frame for uvs_fast_tc: this source MAC (locally administered,
// "uvsf"), written over the sender's. Both ways a marked frame can go write the MACs
// again, bpf_redirect_neigh and the kernel's forwarding, so the mark never leaves the
// host, and it works whatever the driver (XDP metadata, the first way, reaches the skb
// only where the driver keeps it, and some kernel builds keep bpf_xdp_adjust_meta from
// XDP programs altogether: the verifier then refused the whole program). A frame that
// arrives with it as its source has its last byte flipped on the way in (uvs_xdp), so
// only the fast path's frames carry it.
#define FAST_MARK0 0x02
#define FAST_MARK1 0x75
#define FAST_MARK2 0x76
#define FAST_MARK3 0x73
#define FAST_MARK4 0x66
#define FAST_MARK5 0x00

static __always_inline int is_fast_mark(const __u8 *mac)
{
	return mac[0] == FAST_MARK0 && mac[1] == FAST_MARK1 && mac[2] == FAST_MARK2 &&
	       mac[3] == FAST_MARK3 && mac[4] == FAST_MARK4 && mac[5] == FAST_MARK5;
}

// Marks a rewritten untagged frame for uvs_fast_tc: the mark as its source MAC.
static __always_inline void fast_mark(struct xdp_md *ctx)
{
	__u8 *eth = (void *)(long)ctx->data;
	if ((void *)(eth + 12) <= (void *)(long)ctx->data_end) {
		eth[6] = FAST_MARK0;
		eth[7] = FAST_MARK1;
		eth[8] = FAST_MARK2;
		eth[9] = FAST_MARK3;
		eth[10] = FAST_MARK4;
		eth[11] = FAST_MARK5;
	}
}

static __always_inline void count(__u32 slot)
{
	__u64 *c = bpf_map_lookup_elem(&stats, &slot);
	if (c)
		*c += 1;
}

static __always_inline int pass(void)
{
	count(STAT_PASSED);
	return XDP_PASS;
}

static __always_inline int to_socket(struct xdp_md *ctx)
{
	long act = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	count(act == XDP_REDIRECT ? STAT_REDIRECTED : STAT_UNCLAIMED);
	return (int)act;
}

static __always_inline int in4(void *map, __u32 addr)
{
	return bpf_map_lookup_elem(map, &addr) != 0;
}

static __always_inline int in6(void *map, const void *addr)
{
	struct in6_key k;
	__builtin_memcpy(&k, addr, sizeof(k));
	return bpf_map_lookup_elem(map, &k) != 0;
}

// Is (addr, proto, sport) a service a real server serves (or a port-0 one)?
static __always_inline int real_port(const __u8 *addr, int len, __u8 proto, __u16 sport, __u8 v6)
{
	struct real_port_key k = {};
	if (len == 4)
		__builtin_memcpy(k.addr, addr, 4);
	else
		__builtin_memcpy(k.addr, addr, 16);
	k.proto = proto;
	k.v6 = v6;
	k.port = sport;
	if (bpf_map_lookup_elem(&real_ports, &k))
		return 1;
	k.port = 0;
	return bpf_map_lookup_elem(&real_ports, &k) != 0;
}

// A real server's packet towards a non-host address: a reply of a balanced
// flow (from a service port), an ICMP error about one (uvs translates it), or
// a later fragment (uvs follows fragments) goes to the socket; anything else
// is the server's own traffic, which the kernel routes.
static __always_inline int from_real(struct xdp_md *ctx, const __u8 *src, int alen, __u8 proto,
				     __u8 *l4, void *end, __u8 v6)
{
	if (proto == IPPROTO_TCP_NR || proto == IPPROTO_UDP_NR || proto == IPPROTO_SCTP_NR) {
		if ((void *)(l4 + 2) > end)
			return pass();
		__u16 sport;
		__builtin_memcpy(&sport, l4, 2);
		if (real_port(src, alen, proto, sport, v6))
			return to_socket(ctx);
		return pass();
	}
	if (proto == IPPROTO_ICMP_NR || proto == IPPROTO_ICMPV6_NR) {
		if ((void *)(l4 + 1) > end)
			return pass();
		__u8 type = l4[0];
		// ICMP: unreachable 3, time exceeded 11, parameter problem 12.
		// ICMPv6: unreachable 1, too big 2, time exceeded 3, parameter problem 4.
		int error = proto == IPPROTO_ICMP_NR ? (type == 3 || type == 11 || type == 12)
						    : (type >= 1 && type <= 4);
		return error ? to_socket(ctx) : pass();
	}
	// IPv6 extension headers: uvs walks them.
	return v6 ? to_socket(ctx) : pass();
}

// Does a mark's match take this packet? `l4` is where its TCP/UDP/SCTP
// header would be; `later` marks a non-first fragment or an IPv6 packet with
// extension headers, whose port cannot be read here: it matches on address and
// protocol (uvs follows fragments and walks extension headers itself).
static __always_inline int mark_takes(const struct mark_match *m, __u8 proto, const __u8 *l4,
				      void *end, int later)
{
	__u8 bit = proto == IPPROTO_TCP_NR ? MARK_TCP
		 : proto == IPPROTO_UDP_NR ? MARK_UDP
		 : proto == IPPROTO_SCTP_NR ? MARK_SCTP : 0;
	if (!bit)
		return 0;
	__u16 port = 0;
	if (!later) {
		if ((void *)(l4 + 4) > end)
			return 0;
		port = ((__u16)l4[2] << 8) | l4[3];
	}
#pragma unroll
	for (int i = 0; i < MARK_RANGES; i++) {
		if (i >= m->nranges)
			break;
		const struct mark_range *r = &m->ranges[i];
		if ((r->protos & bit) && (later || (port >= r->first && port <= r->last)))
			return 1;
	}
	return 0;
}

// 224.0.0.0/4 and the limited broadcast belong to the kernel even when a real
// server sends them (VRRP, DHCP, mDNS).
static __always_inline int multicast4(__u32 be_addr)
{
	__u32 a = bpf_ntohl(be_addr);
	return (a >> 28) == 0xe || a == 0xffffffff;
}

// The line of a tuple, as uvs_port::fast::index computes it: the addresses' word
// multiplied before the protocol and ports are folded in (XOR-ed unmixed, a server's last
// octet and a client's port cancelled out), then the whole multiplied again.
static __always_inline __u32 fast_index(__u32 saddr, __u32 daddr, __u32 ports, __u8 proto)
{
	__u64 a = ((__u64)saddr << 32) | daddr;
	__u64 b = ((__u64)proto << 32) | ports;
	return (__u32)((((a * 0x9e3779b97f4a7c15ULL) ^ b) * 0xff51afd7ed558ccdULL) >> 48);
}

// fast_index for IPv6: each pair of address words (source ‖ destination) XOR-ed in and
// multiplied in turn (for one pair, fast_index), as uvs_port::fast::index does.
static __always_inline __u32 fast_index6(const __u32 *saddr, const __u32 *daddr, __u32 ports,
					 __u8 proto)
{
	__u64 a = 0;
#pragma unroll
	for (int i = 0; i < 4; i++)
		a = (a ^ (((__u64)saddr[i] << 32) | daddr[i])) * 0x9e3779b97f4a7c15ULL;
	__u64 b = ((__u64)proto << 32) | ports;
	return (__u32)(((a ^ b) * 0xff51afd7ed558ccdULL) >> 48);
}

// A 32-bit word as two 16-bit terms of a ones' complement sum (every term is loaded the
// same way, so the sum is right in either byte order, RFC 1071).
static __always_inline __u64 w32(__u32 x)
{
	return (x & 0xffff) + (x >> 16);
}

static __always_inline __u16 fold(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

// The L4 header of a fast-path candidate (both families): TCP without SYN/FIN/RST, or a
// SYN-ACK (`*syn_ack`, for a line that takes one), or UDP; where its checksum lies and how
// long its TCP header is. -1: the workers'.
static __always_inline int fast_l4(__u8 proto, __u8 *l4, void *end, __u32 *csum_off, __u32 *l4hdr,
				   int *syn_ack)
{
	*syn_ack = 0;
	*l4hdr = 8;
	if (proto == IPPROTO_TCP_NR) {
		if ((void *)(l4 + 20) > end)
			return -1;
		if (l4[13] & 0x07) { // FIN, SYN, RST: the workers', but a SYN-ACK a line may take
			if ((l4[13] & 0x17) != 0x12)
				return -1;
			*syn_ack = 1;
		}
		*csum_off = 16;
		*l4hdr = (__u32)(l4[12] >> 4) * 4;
		return 0;
	}
	if (proto == IPPROTO_UDP_NR) {
		if ((void *)(l4 + 8) > end)
			return -1;
		*csum_off = 6;
		return 0;
	}
	return -1;
}

// The L4 checksum `check` (not UDP's 0) after the rewrite: `pseudo` is the pseudo-header's
// sum as the packet came, `addrs` the addresses' change (old ones' complements and the new
// ones), `ports`/`to_p` the port pair before and after. A partial checksum (the field
// holds the pseudo-header's sum, as veth and virtio hand it over) stays partial, for the
// new addresses; a full one is updated (RFC 1624).
static __always_inline __u16 fast_check(__u8 proto, __u16 check, __u64 pseudo, __u64 addrs,
					__u32 ports, __u32 to_p)
{
	if (fold(pseudo) == check)
		return fold(check + addrs);
	check = ~fold((__u16)~check + addrs + w32(~ports) + w32(to_p));
	if (proto == IPPROTO_UDP_NR && check == 0)
		check = 0xffff;
	return check;
}

// The kernel fast path: a frame of a flow a worker wrote into `fast4` (untagged IPv4
// without options, not a fragment, TTL above 1; TCP without SYN/FIN/RST, whose state
// changes only the workers follow, or a SYN-ACK on a line that takes it; or UDP) is
// rewritten to the line's tuple, its checksums updated (RFC 1624; a partial L4 checksum,
// which veth and virtio hand over, stays partial with its pseudo-header's addresses
// changed) and given to the kernel, which forwards it.
// Anything else, a line being written or past its time, goes the usual way (-1).
static __always_inline int fast_path(struct xdp_md *ctx, __u8 *ip, void *end, int send)
{
	if ((void *)(ip + 20) > end || ip[0] != 0x45 || ip[8] <= 1)
		return -1;
	__u16 frag;
	__builtin_memcpy(&frag, ip + 6, 2);
	if (bpf_ntohs(frag) & 0x3fff)
		return -1;
	__u8 proto = ip[9];
	__u8 *l4 = ip + 20;
	__u32 csum_off = 0, l4hdr = 8;
	int syn_ack = 0;
	if (fast_l4(proto, l4, end, &csum_off, &l4hdr, &syn_ack) < 0)
		return -1;
	__u32 saddr, daddr, ports;
	__builtin_memcpy(&saddr, ip + 12, 4);
	__builtin_memcpy(&daddr, ip + 16, 4);
	__builtin_memcpy(&ports, l4, 4);
	__u32 idx = fast_index(saddr, daddr, ports, proto);
	struct fast_line *l = bpf_map_lookup_elem(&fast4, &idx);
	if (!l)
		return -1;
	__u32 seq = READ_ONCE(l->seq);
	if (seq & 1)
		return -1;
	barrier();
	__u32 kind = READ_ONCE(l->kind);
	if ((kind & 0xff) != proto || (syn_ack && !(kind & FAST_SYN_ACK)) ||
	    READ_ONCE(l->saddr) != saddr ||
	    READ_ONCE(l->daddr) != daddr || READ_ONCE(l->ports) != ports)
		return -1;
	__u32 to_s = READ_ONCE(l->to_saddr);
	__u32 to_d = READ_ONCE(l->to_daddr);
	__u32 to_p = READ_ONCE(l->to_ports);
	__u64 until = READ_ONCE(l->until_ns);
	barrier();
	if (READ_ONCE(l->seq) != seq || bpf_ktime_get_ns() >= until)
		return -1;

	__u16 tot;
	__builtin_memcpy(&tot, ip + 2, 2);
	__u32 l4len = bpf_ntohs(tot);
	if (l4len < 20)
		return -1;
	l4len -= 20;
	// A line written at the handshake: the client's bare ACK that completes it goes to
	// the workers (its state change is theirs); a segment with data may pass it, and a
	// SYN-ACK where the line takes one (that leaves the state as it is).
	if ((kind & FAST_DATA_ONLY) && !syn_ack && l4len <= l4hdr)
		return -1;
	__u64 addrs = w32(~saddr) + w32(~daddr) + w32(to_s) + w32(to_d);
	__u16 check;
	__u16 *l4check = (__u16 *)(l4 + csum_off);
	__builtin_memcpy(&check, l4check, 2);
	if (!(proto == IPPROTO_UDP_NR && check == 0)) {
		__u64 pseudo = w32(saddr) + w32(daddr) + bpf_htons((__u16)proto) +
			       bpf_htons((__u16)l4len);
		check = fast_check(proto, check, pseudo, addrs, ports, to_p);
		__builtin_memcpy(l4check, &check, 2);
	}
	__u16 ipcheck;
	__builtin_memcpy(&ipcheck, ip + 10, 2);
	ipcheck = ~fold((__u16)~ipcheck + addrs);
	__builtin_memcpy(ip + 10, &ipcheck, 2);
	__builtin_memcpy(ip + 12, &to_s, 4);
	__builtin_memcpy(ip + 16, &to_d, 4);
	__builtin_memcpy(l4, &to_p, 4);
	__sync_fetch_and_add(&l->packets, 1);
	__sync_fetch_and_add(&l->bytes, (__u64)(ctx->data_end - ctx->data));
	count(STAT_FAST);
	// An untagged frame (the caller's condition): the source MAC at bytes 6..12.
	if (send)
		fast_mark(ctx);
	return XDP_PASS;
}

// The kernel fast path for IPv6: a frame of a flow a worker wrote into `fast6` (untagged,
// TCP or UDP right after the fixed header: no extension header, so no fragment; hop limit
// above 1; the segments fast_path takes; UDP with a checksum, which IPv6 requires: one
// without goes to the workers) is rewritten to the line's tuple, its L4 checksum updated
// as fast_path updates it (IPv6 has no header checksum; the hop limit is the kernel's
// forwarding's or uvs_fast_tc's to take down, as the TTL is for IPv4), counted on its line,
// marked for uvs_fast_tc when `send` (its IPv6 routes, `fast_routes6`) and given to the
// kernel, which forwards it where uvs_fast_tc does not (net.ipv6.conf.all.forwarding).
// Anything else goes the usual way (-1).
static __always_inline int fast_path6(struct xdp_md *ctx, __u8 *ip, void *end, int send)
{
	if ((void *)(ip + 40) > end || (ip[0] >> 4) != 6 || ip[7] <= 1)
		return -1;
	__u8 proto = ip[6];
	__u8 *l4 = ip + 40;
	__u32 csum_off = 0, l4hdr = 8;
	int syn_ack = 0;
	if (fast_l4(proto, l4, end, &csum_off, &l4hdr, &syn_ack) < 0)
		return -1;
	__u16 plen;
	__builtin_memcpy(&plen, ip + 4, 2);
	__u32 l4len = bpf_ntohs(plen);
	if (l4len < 8)
		return -1;
	__u16 check;
	__u16 *l4check = (__u16 *)(l4 + csum_off);
	__builtin_memcpy(&check, l4check, 2);
	if (proto == IPPROTO_UDP_NR && check == 0)
		return -1;
	__u32 saddr[4], daddr[4], ports;
	__builtin_memcpy(saddr, ip + 8, 16);
	__builtin_memcpy(daddr, ip + 24, 16);
	__builtin_memcpy(&ports, l4, 4);
	__u32 idx = fast_index6(saddr, daddr, ports, proto);
	struct fast_line6 *l = bpf_map_lookup_elem(&fast6, &idx);
	if (!l)
		return -1;
	__u32 seq = READ_ONCE(l->seq);
	if (seq & 1)
		return -1;
	barrier();
	__u32 kind = READ_ONCE(l->kind);
	if ((kind & 0xff) != proto || (syn_ack && !(kind & FAST_SYN_ACK)) ||
	    READ_ONCE(l->ports) != ports)
		return -1;
	__u32 to_s[4], to_d[4];
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (READ_ONCE(l->saddr[i]) != saddr[i] || READ_ONCE(l->daddr[i]) != daddr[i])
			return -1;
		to_s[i] = READ_ONCE(l->to_saddr[i]);
		to_d[i] = READ_ONCE(l->to_daddr[i]);
	}
	__u32 to_p = READ_ONCE(l->to_ports);
	__u64 until = READ_ONCE(l->until_ns);
	barrier();
	if (READ_ONCE(l->seq) != seq || bpf_ktime_get_ns() >= until)
		return -1;
	// A line written at the handshake takes segments with data (and a SYN-ACK where it
	// takes one), as fast_path's does.
	if ((kind & FAST_DATA_ONLY) && !syn_ack && l4len <= l4hdr)
		return -1;
	__u64 addrs = 0, pseudo = bpf_htons((__u16)proto) + bpf_htons((__u16)l4len);
#pragma unroll
	for (int i = 0; i < 4; i++) {
		addrs += w32(~saddr[i]) + w32(~daddr[i]) + w32(to_s[i]) + w32(to_d[i]);
		pseudo += w32(saddr[i]) + w32(daddr[i]);
	}
	check = fast_check(proto, check, pseudo, addrs, ports, to_p);
	__builtin_memcpy(l4check, &check, 2);
	__builtin_memcpy(ip + 8, to_s, 16);
	__builtin_memcpy(ip + 24, to_d, 16);
	__builtin_memcpy(l4, &to_p, 4);
	__sync_fetch_and_add(&l->packets, 1);
	__sync_fetch_and_add(&l->bytes, (__u64)(ctx->data_end - ctx->data));
	count(STAT_FAST);
	if (send)
		fast_mark(ctx);
	return XDP_PASS;
}

// `fast`: the settings' SETTING_FAST_PATH and SETTING_FAST_SEND bits, for an untagged frame.
static __always_inline int ipv4(struct xdp_md *ctx, void *l3, void *end, __u32 fast)
{
	__u8 *ip = l3;
	if ((void *)(ip + 20) > end)
		return pass();
	if (fast & SETTING_FAST_PATH) {
		int act = fast_path(ctx, ip, end, fast & SETTING_FAST_SEND);
		if (act >= 0)
			return act;
	}
	if ((ip[0] >> 4) != 4)
		return pass();
	__u32 src, dst;
	__builtin_memcpy(&src, ip + 12, 4);
	__builtin_memcpy(&dst, ip + 16, 4);
	if (in4(&owned4, dst))
		return to_socket(ctx);
	if (in4(&reals4, src) && !in4(&host4, dst) && !multicast4(dst)) {
		__u16 frag;
		__builtin_memcpy(&frag, ip + 6, 2);
		if (bpf_ntohs(frag) & 0x1fff)
			return to_socket(ctx);
		__u32 ihl = (ip[0] & 0xf) * 4;
		if (ihl < 20)
			return pass();
		return from_real(ctx, ip + 12, 4, ip[9], ip + ihl, end, 0);
	}
	// A firewall mark's destinations (never the host's own addresses).
	if (!in4(&host4, dst) && !multicast4(dst)) {
		struct mark_key4 k = {.prefixlen = 32};
		__builtin_memcpy(k.addr, &dst, 4);
		const struct mark_match *m = bpf_map_lookup_elem(&marks4, &k);
		if (m) {
			__u16 frag;
			__builtin_memcpy(&frag, ip + 6, 2);
			__u32 ihl = (ip[0] & 0xf) * 4;
			if (ihl >= 20 &&
			    mark_takes(m, ip[9], ip + ihl, end, (bpf_ntohs(frag) & 0x1fff) != 0))
				return to_socket(ctx);
		}
	}
	return pass();
}

// `fast`: the settings' SETTING_FAST_PATH, SETTING_FAST_PATH6 and SETTING_FAST_SEND bits, for
// an untagged frame.
static __always_inline int ipv6(struct xdp_md *ctx, void *l3, void *end, __u32 fast)
{
	__u8 *ip = l3;
	if ((void *)(ip + 40) > end)
		return pass();
	if ((fast & SETTING_FAST_PATH) && (fast & SETTING_FAST_PATH6)) {
		int act = fast_path6(ctx, ip, end, fast & SETTING_FAST_SEND);
		if (act >= 0)
			return act;
	}
	if ((ip[0] >> 4) != 6)
		return pass();
	__u8 *src = ip + 8;
	__u8 *dst = ip + 24;
	// Neighbour discovery (RFC 4861) carries no extension headers in
	// practice; the next header is ICMPv6 directly.
	if (ip[6] == IPPROTO_ICMPV6_NR) {
		__u8 *icmp = ip + 40;
		if ((void *)(icmp + 1) > end)
			return pass();
		__u8 type = icmp[0];
		if (type == ICMPV6_NEIGH_SOLICIT || type == ICMPV6_NEIGH_ADVERT) {
			// type(1) code(1) checksum(2) flags/reserved(4) target(16)
			if ((void *)(icmp + 24) > end)
				return pass();
			if (in6(&owned6, icmp + 8))
				return to_socket(ctx);
			if (type == ICMPV6_NEIGH_ADVERT && in6(&owned6, dst))
				return to_socket(ctx);
			return pass();
		}
		// RS, RA, redirect: the kernel's business. Also NUD probes are
		// unicast NS, handled above by target.
		if (type >= ICMPV6_ROUTER_SOLICIT && type <= ICMPV6_REDIRECT)
			return pass();
	}
	if (in6(&owned6, dst))
		return to_socket(ctx);
	// fe80::/10 link-local and ff00::/8 multicast stay with the kernel: a
	// real server's neighbour traffic must never be stolen (ARCHITECTURE.md, platform facts).
	int link_local = dst[0] == 0xfe && (dst[1] & 0xc0) == 0x80;
	int multicast = dst[0] == 0xff;
	if (!link_local && !multicast && in6(&reals6, src) && !in6(&host6, dst))
		return from_real(ctx, src, 16, ip[6], ip + 40, end, 1);
	if (!link_local && !multicast && !in6(&host6, dst)) {
		struct mark_key6 k = {.prefixlen = 128};
		__builtin_memcpy(k.addr, dst, 16);
		const struct mark_match *m = bpf_map_lookup_elem(&marks6, &k);
		if (m) {
			__u8 next = ip[6];
			int direct = next == IPPROTO_TCP_NR || next == IPPROTO_UDP_NR ||
				     next == IPPROTO_SCTP_NR;
			// Hop-by-hop, routing, fragment, destination options: uvs walks
			// them, so any of the mark's protocols may follow.
			int ext = next == 0 || next == 43 || next == 44 || next == 60;
			if (direct ? mark_takes(m, next, ip + 40, end, 0) : (ext && m->nranges > 0))
				return to_socket(ctx);
		}
	}
	return pass();
}

// ARP over Ethernet/IPv4 (RFC 826): the balancer answers for what it owns.
static __always_inline int arp(struct xdp_md *ctx, void *l3, void *end)
{
	__u8 *a = l3;
	if ((void *)(a + 28) > end)
		return pass();
	// htype 1, ptype 0x0800, hlen 6, plen 4
	if (a[0] != 0 || a[1] != 1 || a[2] != 0x08 || a[3] != 0 || a[4] != 6 || a[5] != 4)
		return pass();
	__u32 target;
	__builtin_memcpy(&target, a + 24, 4);
	if (in4(&owned4, target))
		return to_socket(ctx);
	return pass();
}

SEC("xdp")
int uvs_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return pass();

	__u32 zero = 0;
	__u32 *flags = bpf_map_lookup_elem(&settings, &zero);
	if (flags && (*flags & SETTING_REDIRECT_ALL))
		return to_socket(ctx);

	// A frame from the wire with the fast path's mark as its source (see FAST_MARK0):
	// not the fast path's, so no longer marked.
	if (is_fast_mark(eth->h_source))
		eth->h_source[5] ^= 0xff;

	__u16 proto = eth->h_proto;
	__u8 *cur = (__u8 *)(eth + 1);
	// Up to two tags: 802.1Q, or 802.1ad outer + 802.1Q inner (QinQ).
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != ETH_P_8021Q_BE && proto != ETH_P_8021AD_BE)
			break;
		if ((void *)(cur + 4) > end)
			return pass();
		__builtin_memcpy(&proto, cur + 2, 2);
		cur += 4;
	}

	if (proto == ETH_P_IP_BE)
		return ipv4(ctx, cur, end,
			    flags && cur == (__u8 *)(eth + 1) ?
				    *flags & (SETTING_FAST_PATH | SETTING_FAST_SEND) :
				    0);
	if (proto == ETH_P_IPV6_BE)
		return ipv6(ctx, cur, end,
			    flags && cur == (__u8 *)(eth + 1) ?
				    *flags & (SETTING_FAST_PATH | SETTING_FAST_PATH6 | SETTING_FAST_SEND) :
				    0);
	if (proto == ETH_P_ARP_BE)
		return arp(ctx, cur, end);
	return pass();
}

// The fast path's frames (FAST_MARK0.. as their source MAC) as skbs at the interface's TC
// ingress: sent out of their route's interface (`fast_routes`) to its next hop, the TTL
// taken down as the kernel's forwarding would (ip_decrease_ttl); bpf_redirect_neigh finds
// the next hop's MAC (or resolves it) as the kernel's output does, without ip_rcv and
// ip_forward. The fast path passes only frames with a TTL above 1, without options, not
// fragments. IPv6 frames likewise by `fast_routes6`, their hop limit taken down (no header
// checksum), without ip6_rcv and ip6_forward. Anything else goes on to the kernel as it
// came.
static __always_inline int fast_tc6(struct __sk_buff *skb, __u8 *ip, void *end)
{
	if ((void *)(ip + 40) > end || ip[7] <= 1)
		return TC_ACT_OK;
	struct fast_route6_key k = { .prefixlen = 128 };
	__builtin_memcpy(k.addr, ip + 24, 16);
	struct fast_route6 *r = bpf_map_lookup_elem(&fast_routes6, &k);
	if (!r)
		return TC_ACT_OK;
	// Larger than the route's MTU (and not a GRO aggregate): the kernel answers it
	// (Packet Too Big).
	if (skb->len - sizeof(struct ethhdr) > r->mtu && !skb->gso_size)
		return TC_ACT_OK;
	ip[7] -= 1;
	struct bpf_redir_neigh nh = { .nh_family = AF_INET6 };
	if (r->via[0] | r->via[1] | r->via[2] | r->via[3])
		__builtin_memcpy(nh.ipv6_nh, r->via, 16);
	else
		__builtin_memcpy(nh.ipv6_nh, k.addr, 16);
	count(STAT_FAST_SENT);
	return bpf_redirect_neigh(r->ifindex, &nh, sizeof(nh), 0);
}

SEC("tc")
int uvs_fast_tc(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || !is_fast_mark(eth->h_source))
		return TC_ACT_OK;
	__u8 *ip = (__u8 *)data + sizeof(struct ethhdr);
	if (eth->h_proto == ETH_P_IPV6_BE)
		return fast_tc6(skb, ip, end);
	if (eth->h_proto != ETH_P_IP_BE || (void *)(ip + 20) > end || ip[8] <= 1)
		return TC_ACT_OK;
	struct fast_route_key k = { .prefixlen = 32 };
	__builtin_memcpy(&k.addr, ip + 16, 4);
	struct fast_route *r = bpf_map_lookup_elem(&fast_routes, &k);
	if (!r)
		return TC_ACT_OK;
	// Larger than the route's MTU (and not a GRO aggregate the device splits): the kernel
	// answers it (fragmentation needed).
	if (skb->len - sizeof(struct ethhdr) > r->mtu && !skb->gso_size)
		return TC_ACT_OK;
	__u16 check;
	__builtin_memcpy(&check, ip + 10, 2);
	__u32 c = (__u32)check + bpf_htons(0x0100);
	check = (__u16)(c + (c >= 0xffff));
	__builtin_memcpy(ip + 10, &check, 2);
	ip[8] -= 1;
	struct bpf_redir_neigh nh = { .nh_family = AF_INET };
	nh.ipv4_nh = r->via ? r->via : k.addr;
	count(STAT_FAST_SENT);
	return bpf_redirect_neigh(r->ifindex, &nh, sizeof(nh), 0);
}

// No GPL-only helper is used, so the crate's own licence is accepted.
char LICENSE[] SEC("license") = "Apache-2.0";
