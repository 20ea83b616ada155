//! NAT64 header translation (RFC 7915, "IP/ICMP Translation Algorithm"), in place.
//!
//! A NAT64 virtual service (an IPv6 VIP served by IPv4 real servers, as DPVS's NAT64) turns
//! the client's IPv6 packet into an IPv4 one towards the real server and the server's replies
//! back into IPv6. The IP header is rebuilt (40 ↔ 20 bytes, the frame shrinks or grows by 20
//! bytes; IPv6 extension headers and IPv4 options are not carried over, RFC 7915 §4.1/§5.1),
//! the L4 payload moves behind it, and the TCP/UDP checksum is updated for the new
//! pseudo-header and ports with one RFC 1624 adjustment (the L4 length is the same on both
//! sides, so only addresses and ports change). ICMP/ICMPv6 errors about a translated flow are
//! rebuilt with their quoted packet translated too (RFC 7915 §4.2-4.3, §5.2-5.3).
//!
//! Fragments are not translated (the dataplane drops them on NAT64 flows): translating them
//! needs the fragment header ↔ IPv4 fragment fields mapping of RFC 7915 §4.1/§5.1.1.

use crate::bytes::{get16, get8, put16};
use crate::checksum;
use crate::ip_proto;
use crate::parse::{Frag, Parsed, L3};
use crate::{ipv4, ipv6, Embedded, Ipv4Repr, Ipv6Repr};

/// The addresses and ports of the translated packet (IPv4 addresses in the first 4 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuple {
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// Why a packet was not translated; the frame is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat64Error {
    /// Not an unfragmented TCP/UDP packet of the expected family, or shorter than it says.
    NotTranslatable,
    /// The translated frame would not fit the buffer or the 16-bit length fields.
    NoRoom,
    /// An ICMP message RFC 7915 says to drop (or one uvs does not translate).
    Untranslated,
}

/// IPv4 TOS / IPv6 traffic class are copied as is (RFC 7915 §4.1, §5.1).
/// Hop limit ↔ TTL likewise (the caller decrements it first, as a router).
///
/// IPv6 → IPv4 on the way to the real server: returns the new frame length (20 bytes
/// shorter, Ethernet padding dropped). The IPv4 header has DF set and identification 0: an
/// atomic datagram (RFC 6864 §4), so the IPv4 real server's path-MTU discovery works and the
/// client hears about a smaller MTU as a translated Packet Too Big.
pub fn v6_to_v4(buf: &mut [u8], len: usize, p: &Parsed, t: &Tuple) -> Result<usize, Nat64Error> {
    let (l3, l4, end) = spans(buf, len, p, L3::V6)?;
    let tc = crate::Ipv6Packet::new_unchecked(&buf[l3..]).traffic_class();
    let hop = get8(buf, l3 + ipv6::HOP_LIMIT_OFFSET).ok_or(Nat64Error::NotTranslatable)?;
    let l4_len = end - l4;
    if l4_len + ipv4::HEADER_LEN > usize::from(u16::MAX) {
        return Err(Nat64Error::NoRoom);
    }
    let old_src = p.src;
    let old_dst = p.dst;
    fix_l4(buf, l4, end, p, &old_src, &old_dst, t, L3::V4);
    let new_l4 = l3 + ipv4::HEADER_LEN;
    buf.copy_within(l4..end, new_l4);
    let repr = Ipv4Repr {
        src: v4(&t.src),
        dst: v4(&t.dst),
        protocol: p.l4_proto,
        payload_len: l4_len as u16,
        ttl: hop,
        dscp_ecn: tc,
        ident: 0,
        dont_frag: true,
    };
    repr.emit(&mut buf[l3..]).ok_or(Nat64Error::NoRoom)?;
    put16(buf, l3 - 2, L3::V4.ethertype());
    Ok(new_l4 + l4_len)
}

/// IPv4 → IPv6 on the way back to the client: returns the new frame length (20 bytes longer
/// than the IPv4 packet with a 20-byte header). `buf` must have the room after `len`.
pub fn v4_to_v6(buf: &mut [u8], len: usize, p: &Parsed, t: &Tuple) -> Result<usize, Nat64Error> {
    let (l3, l4, end) = spans(buf, len, p, L3::V4)?;
    let tos = get8(buf, l3 + 1).ok_or(Nat64Error::NotTranslatable)?;
    let ttl = get8(buf, l3 + ipv4::TTL_OFFSET).ok_or(Nat64Error::NotTranslatable)?;
    let l4_len = end - l4;
    let new_l4 = l3 + ipv6::HEADER_LEN;
    if new_l4 + l4_len > buf.len() {
        return Err(Nat64Error::NoRoom);
    }
    let old_src = p.src;
    let old_dst = p.dst;
    fix_l4(buf, l4, end, p, &old_src, &old_dst, t, L3::V6);
    buf.copy_within(l4..end, new_l4);
    let repr = Ipv6Repr {
        src: t.src,
        dst: t.dst,
        next_header: p.l4_proto,
        payload_len: l4_len as u16,
        hop_limit: ttl,
        traffic_class: tos,
        flow_label: 0,
    };
    repr.emit(&mut buf[l3..]).ok_or(Nat64Error::NoRoom)?;
    put16(buf, l3 - 2, L3::V6.ethertype());
    Ok(new_l4 + l4_len)
}

/// IP header start, L4 start and packet end of an unfragmented TCP/UDP packet of `family`.
fn spans(
    buf: &[u8],
    len: usize,
    p: &Parsed,
    family: L3,
) -> Result<(usize, usize, usize), Nat64Error> {
    let l3 = usize::from(p.l3_off);
    let l4 = usize::from(p.l4_off);
    let end = p.l3_end();
    let min_l4 = if p.l4_proto == ip_proto::TCP { 20 } else { 8 };
    if p.l3 != family
        || p.frag != Frag::None
        || !matches!(p.l4_proto, ip_proto::TCP | ip_proto::UDP)
        || l3 < 2
        || l4 < l3 + family.header_len()
        || end > len
        || len > buf.len()
        || end < l4 + min_l4
    {
        return Err(Nat64Error::NotTranslatable);
    }
    Ok((l3, l4, end))
}

fn v4(a: &[u8; 16]) -> [u8; 4] {
    [a[0], a[1], a[2], a[3]]
}

/// The bytes of an address as the pseudo-header sums them: 4 for IPv4, 16 for IPv6.
fn addr(a: &[u8; 16], family: L3) -> &[u8] {
    match family {
        L3::V4 => &a[..4],
        L3::V6 => &a[..],
    }
}

/// Rewrites the ports of the TCP/UDP header at `buf[l4..end]` and updates its checksum for
/// the new pseudo-header (RFC 1624: subtract the old addresses and ports, add the new ones;
/// protocol and L4 length do not change). A UDP datagram without a checksum (IPv4 allows
/// it) gets a full one: IPv6 requires it (RFC 8200 §8.1, RFC 7915 §4.5).
#[allow(clippy::too_many_arguments)] // Both directions share it; all are the packet's parts.
fn fix_l4(
    buf: &mut [u8],
    l4: usize,
    end: usize,
    p: &Parsed,
    old_src: &[u8; 16],
    old_dst: &[u8; 16],
    t: &Tuple,
    to: L3,
) {
    let from = p.l3;
    let udp = p.l4_proto == ip_proto::UDP;
    let csum_off = l4 + if udp { 6 } else { 16 };
    put16(buf, l4, t.sport);
    put16(buf, l4 + 2, t.dport);
    let Some(c) = get16(buf, csum_off) else {
        return;
    };
    if udp && c == 0 {
        let l4_len = (end - l4) as u32;
        let pseudo = match to {
            L3::V4 => {
                checksum::pseudo_header_v4(&v4(&t.src), &v4(&t.dst), p.l4_proto, l4_len as u16)
            }
            L3::V6 => checksum::pseudo_header_v6(&t.src, &t.dst, p.l4_proto, l4_len),
        };
        let mut n = !checksum::fold(pseudo + checksum::data_sum(&buf[l4..end]));
        if n == 0 {
            n = 0xffff;
        }
        put16(buf, csum_off, n);
        return;
    }
    let old = checksum::data_sum(addr(old_src, from))
        + checksum::data_sum(addr(old_dst, from))
        + u64::from(p.sport)
        + u64::from(p.dport);
    let new = checksum::data_sum(addr(&t.src, to))
        + checksum::data_sum(addr(&t.dst, to))
        + u64::from(t.sport)
        + u64::from(t.dport);
    let mut n = !checksum::fold(u64::from(!c) + u64::from(!checksum::fold(old)) + new);
    if udp && n == 0 {
        n = 0xffff;
    }
    put16(buf, csum_off, n);
}

/// RFC 7915 §4.2: ICMPv4 error type/code → ICMPv6, with the 32-bit field after the checksum
/// (`rest`, the next-hop MTU for fragmentation needed). `None`: dropped (RFC 7915 says so for
/// source quench, and uvs does not translate parameter problems' pointers).
pub fn icmp4_to_icmp6(ty: u8, code: u8, rest: u32) -> Option<(u8, u8, u32)> {
    match (ty, code) {
        // Destination unreachable.
        (3, 0 | 1 | 5 | 6 | 7 | 8 | 11 | 12) => Some((1, 0, 0)),
        (3, 9 | 10 | 13 | 15) => Some((1, 1, 0)),
        (3, 3) => Some((1, 4, 0)),
        // Protocol unreachable: parameter problem, unrecognized next header at its offset.
        (3, 2) => Some((4, 1, 6)),
        // Fragmentation needed: packet too big, the MTU grown by the header difference
        // (IPv6's own minimum is 1280, RFC 8200 §5).
        (3, 4) => {
            let mtu = rest & 0xffff;
            Some((2, 0, (mtu + 20).max(1280)))
        }
        // Time exceeded.
        (11, c @ (0 | 1)) => Some((3, c, 0)),
        _ => None,
    }
}

/// RFC 7915 §5.2: ICMPv6 error type/code → ICMPv4 (`rest` as in [`icmp4_to_icmp6`]).
pub fn icmp6_to_icmp4(ty: u8, code: u8, rest: u32) -> Option<(u8, u8, u32)> {
    match (ty, code) {
        (1, 0 | 2 | 3) => Some((3, 1, 0)),
        (1, 1) => Some((3, 10, 0)),
        (1, 4) => Some((3, 3, 0)),
        // Packet too big: fragmentation needed, the MTU shrunk by the header difference.
        (2, 0) => {
            let mtu = rest.saturating_sub(20).min(u32::from(u16::MAX));
            Some((3, 4, mtu))
        }
        (3, c @ (0 | 1)) => Some((11, c, 0)),
        // Unrecognized next header: protocol unreachable.
        (4, 1) => Some((3, 2, 0)),
        _ => None,
    }
}

/// Largest ICMPv6 error (RFC 4443 §2.4(c)) and ICMPv4 error (RFC 1812 §4.3.2.3) built.
const ICMPV6_ERROR_MAX: usize = 1280;
const ICMPV4_ERROR_MAX: usize = 576;

/// Rebuilds the ICMP error in `buf[..len]` (classified as `p`, its quote `e`) as the other
/// family's error: outer addresses `outer.src/dst` (ports ignored), the quoted packet with
/// addresses and ports `quote`. The quote is cut so the error stays within RFC 4443/1812's
/// sizes; the quoted L4 checksum is left as quoted (receivers match on addresses and ports,
/// a truncated quote's checksum cannot be verified). Returns the new frame length.
pub fn translate_icmp_error(
    buf: &mut [u8],
    len: usize,
    p: &Parsed,
    e: &Embedded,
    outer: &Tuple,
    quote: &Tuple,
) -> Result<usize, Nat64Error> {
    let l3 = usize::from(p.l3_off);
    let icmp = usize::from(e.icmp_off);
    let q3 = usize::from(e.l3_off);
    let q4 = usize::from(e.l4_off);
    let qend = usize::from(e.end);
    if l3 < 2
        || !(l3 < icmp
            && icmp + 8 <= q3
            && q3 < q4
            && q4 <= qend
            && qend <= len
            && len <= buf.len())
        || e.frag != Frag::None
    {
        return Err(Nat64Error::NotTranslatable);
    }
    let ty = buf[icmp];
    let code = buf[icmp + 1];
    let rest = u32::from_be_bytes([buf[icmp + 4], buf[icmp + 5], buf[icmp + 6], buf[icmp + 7]]);
    let to = match p.l3 {
        L3::V4 => L3::V6,
        L3::V6 => L3::V4,
    };
    let (nty, ncode, nrest) = match to {
        L3::V6 => icmp4_to_icmp6(ty, code, rest),
        L3::V4 => icmp6_to_icmp4(ty, code, rest),
    }
    .ok_or(Nat64Error::Untranslated)?;
    // The outer header's hop count and class, and the quoted header's, carry over.
    let (tc, hop) = ip_class_hop(buf, l3, p.l3);
    let (qtc, qhop) = ip_class_hop(buf, q3, p.l3);
    let q_payload = match p.l3 {
        L3::V4 => get16(buf, q3 + 2).map(|t| t.saturating_sub((q4 - q3) as u16)),
        L3::V6 => get16(buf, q3 + 4).map(|t| t.saturating_sub((q4 - q3 - ipv6::HEADER_LEN) as u16)),
    }
    .ok_or(Nat64Error::NotTranslatable)?;

    let mut out = [0u8; ICMPV6_ERROR_MAX + ipv6::HEADER_LEN];
    let (max, oh) = match to {
        L3::V6 => (ICMPV6_ERROR_MAX, ipv6::HEADER_LEN),
        L3::V4 => (ICMPV4_ERROR_MAX, ipv4::HEADER_LEN),
    };
    // ICMP header (8) + quoted header (same size as `oh`) + quoted L4 bytes.
    let l4_room = max - oh - 8 - oh;
    let l4_bytes = (qend - q4).min(l4_room);
    let o_icmp = oh;
    let o_q3 = o_icmp + 8;
    let o_q4 = o_q3 + oh;
    let total = o_q4 + l4_bytes;
    out[o_icmp] = nty;
    out[o_icmp + 1] = ncode;
    out[o_icmp + 4..o_icmp + 8].copy_from_slice(&nrest.to_be_bytes());
    match to {
        L3::V6 => Ipv6Repr {
            src: quote.src,
            dst: quote.dst,
            next_header: e.l4_proto,
            payload_len: q_payload,
            hop_limit: qhop,
            traffic_class: qtc,
            flow_label: 0,
        }
        .emit(&mut out[o_q3..]),
        L3::V4 => Ipv4Repr {
            src: v4(&quote.src),
            dst: v4(&quote.dst),
            protocol: e.l4_proto,
            payload_len: q_payload,
            ttl: qhop,
            dscp_ecn: qtc,
            ident: 0,
            dont_frag: true,
        }
        .emit(&mut out[o_q3..]),
    }
    .ok_or(Nat64Error::NoRoom)?;
    out[o_q4..total].copy_from_slice(&buf[q4..q4 + l4_bytes]);
    if l4_bytes >= 4 && matches!(e.l4_proto, ip_proto::TCP | ip_proto::UDP) {
        put16(&mut out, o_q4, quote.sport);
        put16(&mut out, o_q4 + 2, quote.dport);
    }
    let icmp_len = total - o_icmp;
    let (proto, sum) = match to {
        L3::V6 => (
            ip_proto::ICMPV6,
            checksum::pseudo_header_v6(&outer.src, &outer.dst, ip_proto::ICMPV6, icmp_len as u32),
        ),
        L3::V4 => (ip_proto::ICMP, 0),
    };
    let c = !checksum::fold(sum + checksum::data_sum(&out[o_icmp..total]));
    put16(&mut out, o_icmp + 2, c);
    match to {
        L3::V6 => Ipv6Repr {
            src: outer.src,
            dst: outer.dst,
            next_header: proto,
            payload_len: icmp_len as u16,
            hop_limit: hop,
            traffic_class: tc,
            flow_label: 0,
        }
        .emit(&mut out),
        L3::V4 => Ipv4Repr {
            src: v4(&outer.src),
            dst: v4(&outer.dst),
            protocol: proto,
            payload_len: icmp_len as u16,
            ttl: hop,
            dscp_ecn: tc,
            ident: 0,
            dont_frag: false,
        }
        .emit(&mut out),
    }
    .ok_or(Nat64Error::NoRoom)?;
    if l3 + total > buf.len() {
        return Err(Nat64Error::NoRoom);
    }
    buf[l3..l3 + total].copy_from_slice(&out[..total]);
    put16(buf, l3 - 2, to.ethertype());
    Ok(l3 + total)
}

/// Traffic class / TOS and hop limit / TTL of the IP header at `off`.
fn ip_class_hop(buf: &[u8], off: usize, family: L3) -> (u8, u8) {
    match family {
        L3::V4 => (
            get8(buf, off + 1).unwrap_or(0),
            get8(buf, off + ipv4::TTL_OFFSET).unwrap_or(64),
        ),
        L3::V6 => (
            crate::Ipv6Packet::new_checked(buf.get(off..).unwrap_or(&[]))
                .map(|h| h.traffic_class())
                .unwrap_or(0),
            get8(buf, off + ipv6::HOP_LIMIT_OFFSET).unwrap_or(64),
        ),
    }
}

#[cfg(test)]
mod tests;
