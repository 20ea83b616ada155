// SPDX-License-Identifier: Apache-2.0
// tc ingress decapsulator for the LVS-TUN real servers of the test network: the kernel
// here has no IPIP/ip6tnl device, so the real server strips the outer IPv4 (protocol 4)
// or IPv6 (next header 41) header itself and lets the inner packet continue up the stack.
// Same-family tunnels only (4-in-4, 6-in-6), which is what uvs's TUN method sends.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("tc")
int decap(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return TC_ACT_OK;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_IPIP || ip->ihl != 5)
			return TC_ACT_OK;
		if (bpf_skb_adjust_room(skb, -(int)sizeof(struct iphdr), BPF_ADJ_ROOM_MAC,
					BPF_F_ADJ_ROOM_FIXED_GSO))
			return TC_ACT_SHOT;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_IPV6)
			return TC_ACT_OK;
		if (bpf_skb_adjust_room(skb, -(int)sizeof(struct ipv6hdr), BPF_ADJ_ROOM_MAC,
					BPF_F_ADJ_ROOM_FIXED_GSO))
			return TC_ACT_SHOT;
	}
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
