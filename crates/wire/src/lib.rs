//! Packet layer of uvs: zero-copy views over frame bytes, fast-path classification and
//! in-place rewrites with incremental checksums.
//!
//! Views follow smoltcp's `src/wire`: `Packet<T: AsRef<[u8]>>` with `new_checked`/`check_len`,
//! `#[inline]` getters, setters for `T: AsMut<[u8]>`, field offsets in a private `mod field`.
//! Fields are read at byte offsets in network order, never by casting a struct over the
//! buffer. **After `check_len` succeeds no accessor of that view panics**; the fast-path
//! functions ([`classify`], the `set_*` rewrites, [`parse_icmp_embedded`], [`encap_ipip`])
//! never panic on any input at all, which the proptests and the `fuzz/` target exercise.
//!
//! The fast path is [`classify`] → [`Parsed`] → rewrites such as [`set_dst_addr`]; the slow
//! path builds whole frames with the `Repr` types and [`build`].

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod bytes;

pub mod arp;
pub mod build;
pub mod checksum;
pub mod embedded;
pub mod encap;
mod error;
pub mod ethernet;
pub mod fragment;
pub mod gre;
pub mod gue;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod ipv6_ext;
pub mod l4_checksum;
pub mod nat64;
pub mod parse;
pub mod proxy_v2;
pub mod rewrite;
pub mod sctp;
pub mod tcp;
pub mod tcp_options;
pub mod tcp_segment;
pub mod tcp_splice;
pub mod tls_sni;
pub mod udp;
pub mod untunnel;

pub use arp::{ArpPacket, ArpRepr};
pub use embedded::{
    parse_icmp_embedded, set_embedded_dst_addr, set_embedded_dst_port, set_embedded_src_addr,
    set_embedded_src_port, splice_embedded, Embedded,
};
pub use encap::{decap, decap_ipip, encap, encap_ipip, EncapError, Outer, Tunnel};
pub use error::ParseError;
pub use ethernet::{EthernetFrame, EthernetRepr};
pub use gre::{GrePacket, GreRepr};
pub use gue::{GuePacket, GueRepr};
pub use icmpv4::{Icmpv4Packet, Icmpv4Repr};
pub use icmpv6::{Icmpv6Packet, Icmpv6Repr};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr};
pub use l4_checksum::{
    complete_common_v4_checksum, complete_common_v6_checksum, complete_l4_checksum,
    complete_l4_checksum_inlined, L4Checksum,
};
pub use parse::{
    classify, classify_walk, guess_v4_tuple, parse_frame, verify_l4_checksum, Classified, CommonV4,
    CommonV6, Frag, Parsed, L3,
};
pub use proxy_v2::{ProxyV2, ProxyV2Error};
pub use rewrite::{
    can_rewrite_ports, decrement_ttl, nat, nat_v4_tcp, nat_v4_udp, set_dst_addr, set_dst_port,
    set_macs, set_src_addr, set_src_port, shrink_ip_payload, NatFields, V4Rewrite, V6Rewrite,
};
pub use sctp::SctpPacket;
pub use tcp::TcpPacket;
pub use tcp_options::TcpOptions;
pub use tcp_segment::{tcp_fields, write_data_segment, write_segment, Segment, TcpFields};
pub use tcp_splice::{splice, splice_quoted, Splice};
pub use udp::{UdpPacket, UdpRepr};

/// IP protocol / IPv6 next-header numbers, from the one set every crate uses.
pub use uvs_ip::proto as ip_proto;

/// xorshift64 from `seed`: the random tests' reproducible stream of values.
#[cfg(test)]
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}
