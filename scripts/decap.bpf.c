// SPDX-License-Identifier: Apache-2.0
// tc ingress decapsulator for the LVS-TUN real servers of the test network: the kernel
// here has no ipip/ip6tnl, fou or gre device, so the real server strips the tunnel headers
// itself and lets the inner packet continue up the stack. It takes the three encapsulations
// IPVS (and uvs) send:
//   ipip: outer IPv4 protocol 4 / IPv6 next header 41;
//   gue:  outer IP + UDP to GUE_PORT + a 4-byte GUE variant-0 header (no options) whose
//         protocol is 4 / 41;
//   gre:  outer IP protocol 47 + GRE version 0 (4 bytes, or 8 with the checksum bit; no key
//         or sequence number) whose protocol is 0x0800 / 0x86DD.
// Same-family tunnels only (4-in-4, 6-in-6), which is what the test network's TUN sends.
// Checksums of the outer UDP/GRE headers are left to the tests, which capture the frames.
// `decap_count` (array: ipip, gue, gre) counts what was stripped, per CPU.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef GUE_PORT
#define GUE_PORT 6080
#endif

#define GRE_CSUM 0x8000
#define GRE_FLAGS_MASK 0xb007 /* C, K, S and the version: only C may be set */

enum { KIND_IPIP, KIND_GUE, KIND_GRE, KIND_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KIND_MAX);
	__type(key, __u32);
	__type(value, __u64);
} decap_count SEC(".maps");

struct gre_base {
	__be16 flags;
	__be16 protocol;
};

struct gue_base {
	__u8 hlen_c_ver; /* version (2 bits) | C | Hlen (5 bits) */
	__u8 proto;
	__be16 flags;
};

/* Bytes of tunnel header after an outer IP header of `l4_proto` at `l4` whose inner packet
 * must be `inner_proto` (IPPROTO_IPIP / IPPROTO_IPV6), or -1 when it is not our tunnel. */
static __always_inline int tunnel_len(void *l4, void *end, __u8 l4_proto, __u8 inner_proto,
				      __u16 inner_ethertype, __u32 *kind)
{
	if (l4_proto == inner_proto) {
		*kind = KIND_IPIP;
		return 0;
	}
	if (l4_proto == IPPROTO_UDP) {
		struct udphdr *udp = l4;
		struct gue_base *gue = (void *)(udp + 1);
		if ((void *)(gue + 1) > end || udp->dest != bpf_htons(GUE_PORT))
			return -1;
		/* variant 0, data message, no optional fields */
		if (gue->hlen_c_ver != 0 || gue->proto != inner_proto)
			return -1;
		*kind = KIND_GUE;
		return sizeof(*udp) + sizeof(*gue);
	}
	if (l4_proto == IPPROTO_GRE) {
		struct gre_base *gre = l4;
		if ((void *)(gre + 1) > end || gre->protocol != bpf_htons(inner_ethertype))
			return -1;
		__u16 flags = bpf_ntohs(gre->flags);
		if (flags & GRE_FLAGS_MASK & ~GRE_CSUM)
			return -1;
		*kind = KIND_GRE;
		return sizeof(*gre) + ((flags & GRE_CSUM) ? 4 : 0);
	}
	return -1;
}

static __always_inline void count(__u32 kind)
{
	__u64 *n = bpf_map_lookup_elem(&decap_count, &kind);
	if (n)
		*n += 1;
}

SEC("tc")
int decap(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 kind = KIND_MAX;
	int strip;
	if ((void *)(eth + 1) > end)
		return TC_ACT_OK;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->ihl != 5)
			return TC_ACT_OK;
		int t = tunnel_len(ip + 1, end, ip->protocol, IPPROTO_IPIP, ETH_P_IP, &kind);
		if (t < 0)
			return TC_ACT_OK;
		strip = sizeof(struct iphdr) + t;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return TC_ACT_OK;
		int t = tunnel_len(ip6 + 1, end, ip6->nexthdr, IPPROTO_IPV6, ETH_P_IPV6, &kind);
		if (t < 0)
			return TC_ACT_OK;
		strip = sizeof(struct ipv6hdr) + t;
	} else {
		return TC_ACT_OK;
	}
	if (bpf_skb_adjust_room(skb, -strip, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO))
		return TC_ACT_SHOT;
	count(kind);
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
