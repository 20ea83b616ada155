// SPDX-License-Identifier: Apache-2.0
//
// Loss and reordering for end-to-end tests, as a tc classifier (cls_bpf, direct action)
// under an HTB qdisc, for kernels built without netem: of every IPv4/IPv6 packet,
// LOSS_PER_MILLE in a thousand are dropped (`tc_loss`, direct action), and of the rest
// REORDER_PER_MILLE go to HTB class 1:2 (`tc_class`, a slow class with a short queue:
// they wait behind its backlog and leave after packets sent later), the others to class
// 1:1. Both rates are compile-time defines (-D).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef LOSS_PER_MILLE
#define LOSS_PER_MILLE 10
#endif
#ifndef REORDER_PER_MILLE
#define REORDER_PER_MILLE 100
#endif

static __always_inline int is_ip(struct __sk_buff *skb)
{
	return skb->protocol == bpf_htons(ETH_P_IP) || skb->protocol == bpf_htons(ETH_P_IPV6);
}

// Direct action: drop LOSS_PER_MILLE, hand the rest to the next filter (TC_ACT_UNSPEC).
SEC("tc_loss")
int loss(struct __sk_buff *skb)
{
	if (is_ip(skb) && bpf_get_prandom_u32() % 1000 < LOSS_PER_MILLE)
		return TC_ACT_SHOT;
	return TC_ACT_UNSPEC;
}

// Classic mode: the return value is the class id (1:2 for REORDER_PER_MILLE, else 1:1).
SEC("tc_class")
int class(struct __sk_buff *skb)
{
	if (is_ip(skb) && bpf_get_prandom_u32() % 1000 < REORDER_PER_MILLE)
		return TC_H_MAKE(1 << 16, 2);
	return TC_H_MAKE(1 << 16, 1);
}

char LICENSE[] SEC("license") = "GPL";
