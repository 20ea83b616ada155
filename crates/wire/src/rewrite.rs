//! In-place rewrites for NAT, FullNAT, DR and forwarding, every checksum updated incrementally
//! (RFC 1624) rather than recomputed, so the cost does not grow with the payload.
//!
//! Rules, after IPVS (`ip_vs_proto_{tcp,udp,sctp}.c`, `ip_vs_nat_xmit`):
//! - an address change touches the IPv4 header checksum and the L4 checksum that covers the
//!   pseudo-header: TCP, UDP, ICMPv6 (ICMPv4 has no pseudo-header, SCTP's CRC32c does not
//!   cover the IP header);
//! - UDP with checksum 0 stays 0 (RFC 768: not computed); an updated UDP checksum that comes
//!   out as 0 is written as 0xFFFF;
//! - a port change updates the TCP/UDP checksum, and recomputes SCTP's CRC32c over the packet
//!   (a CRC has no cheap incremental form without knowing the distance to the end);
//! - a later fragment has no L4 header: only the IP header is touched. A first fragment's L4
//!   checksum covers the whole datagram, but a ones'-complement sum updates the same way, so it
//!   is updated. SCTP's CRC cannot be fixed from one fragment: see [`can_rewrite_ports`].
//!
//! All functions are total: given a `Parsed` that does not describe the frame they write
//! nothing out of bounds and never panic (they may then write garbage within the frame).

use crate::bytes::{get16, get8, put16};
use crate::checksum;
use crate::ip_proto;
use crate::parse::{Frag, Parsed, L3};
use crate::sctp::{self, SctpPacket};
use crate::{icmpv6, ipv4, ipv6, tcp, udp};

/// Offset of the L4 checksum that covers the pseudo-header, and whether it follows UDP's
/// zero rules.
#[inline]
fn pseudo_csum_field(p: &Parsed) -> Option<(usize, bool)> {
    let l4 = usize::from(p.l4_off);
    match (p.l4_proto, p.l3) {
        (ip_proto::TCP, _) => Some((l4 + tcp::CHECKSUM_OFFSET, false)),
        (ip_proto::UDP, _) => Some((l4 + udp::CHECKSUM_OFFSET, true)),
        (ip_proto::ICMPV6, L3::V6) => Some((l4 + icmpv6::CHECKSUM_OFFSET, false)),
        _ => None,
    }
}

/// Applies a change of the bytes `old` → `new` to the checksum at `off`. With `udp_rules`, a
/// zero checksum is left alone and a zero result is written as 0xFFFF.
#[inline]
pub(crate) fn adjust_csum(frame: &mut [u8], off: usize, old: &[u8], new: &[u8], udp_rules: bool) {
    let Some(c) = get16(frame, off) else { return };
    if udp_rules && c == 0 {
        return;
    }
    let mut n = checksum::update_bytes(c, old, new);
    if udp_rules && n == 0 {
        n = 0xffff;
    }
    put16(frame, off, n);
}

/// Applies a precomputed RFC 1624 delta to the checksum at `off`, with UDP's zero rules if
/// asked.
#[inline(always)]
fn apply_csum_delta(frame: &mut [u8], off: usize, delta: u64, udp_rules: bool) {
    let Some(c) = get16(frame, off) else { return };
    if udp_rules && c == 0 {
        return;
    }
    let mut n = checksum::apply_delta(c, delta);
    if udp_rules && n == 0 {
        n = 0xffff;
    }
    put16(frame, off, n);
}

/// Writes an `N`-byte address at `field` and fixes the checksums that cover it. Fixed-size
/// so every copy is a register move rather than a `memcpy` call.
#[inline(always)]
fn rewrite_addr<const N: usize>(frame: &mut [u8], p: &Parsed, field: usize, new: &[u8; N]) -> bool {
    let Some(slot) = frame.get_mut(field..field + N) else {
        return false;
    };
    // The old value is taken from the frame, not from `p`, so the checksums stay consistent
    // with what is actually in the packet.
    let mut old = [0u8; N];
    old.copy_from_slice(slot);
    slot.copy_from_slice(new);
    let delta = checksum::delta(&old, new);
    if p.l3 == L3::V4 {
        apply_csum_delta(
            frame,
            usize::from(p.l3_off) + ipv4::CHECKSUM_OFFSET,
            delta,
            false,
        );
    }
    if p.has_l4_header() {
        if let Some((off, udp_rules)) = pseudo_csum_field(p) {
            apply_csum_delta(frame, off, delta, udp_rules);
        }
    }
    true
}

#[inline]
fn set_addr(frame: &mut [u8], p: &mut Parsed, addr: &[u8; 16], src: bool) {
    let l3 = usize::from(p.l3_off);
    let stored = match p.l3 {
        L3::V4 => {
            let field = l3
                + if src {
                    ipv4::SRC_OFFSET
                } else {
                    ipv4::DST_OFFSET
                };
            let new = [addr[0], addr[1], addr[2], addr[3]];
            if !rewrite_addr::<4>(frame, p, field, &new) {
                return;
            }
            crate::parse::widen_v4(new)
        }
        L3::V6 => {
            let field = l3
                + if src {
                    ipv6::SRC_OFFSET
                } else {
                    ipv6::DST_OFFSET
                };
            if !rewrite_addr::<16>(frame, p, field, addr) {
                return;
            }
            *addr
        }
    };
    if src {
        p.src = stored;
    } else {
        p.dst = stored;
    }
}

/// Shortens the IP packet by `removed` bytes cut from the end of its payload: the IPv4
/// total length (header checksum updated, RFC 1624) or the IPv6 payload length, and
/// `p.ip_total_len`. The caller has already moved the bytes.
pub fn shrink_ip_payload(frame: &mut [u8], p: &mut Parsed, removed: u16) {
    let l3 = usize::from(p.l3_off);
    let Some(header) = frame.get_mut(l3..) else {
        return;
    };
    match p.l3 {
        L3::V4 => {
            let mut ip = ipv4::Ipv4Packet::new_unchecked(header);
            let old = ip.total_len();
            let new = old.wrapping_sub(removed);
            ip.set_total_len(new);
            ip.set_checksum(checksum::update16(ip.checksum(), old, new));
        }
        L3::V6 => {
            let mut ip = ipv6::Ipv6Packet::new_unchecked(header);
            ip.set_payload_len(ip.payload_len().wrapping_sub(removed));
        }
    }
    p.ip_total_len = p.ip_total_len.wrapping_sub(removed);
}

/// Rewrites the source address (IPv4: first 4 bytes of `addr`), updating the IPv4 header
/// checksum and the pseudo-header-covering L4 checksum, and `p.src`.
#[inline]
pub fn set_src_addr(frame: &mut [u8], p: &mut Parsed, addr: &[u8; 16]) {
    set_addr(frame, p, addr, true);
}

/// Rewrites the destination address; see [`set_src_addr`].
#[inline]
pub fn set_dst_addr(frame: &mut [u8], p: &mut Parsed, addr: &[u8; 16]) {
    set_addr(frame, p, addr, false);
}

/// True when port rewrites of this packet leave valid checksums: it carries the L4 header of
/// a port-carrying protocol, and is not an SCTP fragment (whose CRC32c covers bytes this frame
/// does not hold).
#[inline]
pub fn can_rewrite_ports(p: &Parsed) -> bool {
    match p.frag {
        Frag::Later { .. } => false,
        Frag::First { .. } => matches!(p.l4_proto, ip_proto::TCP | ip_proto::UDP),
        Frag::None => p.has_ports(),
    }
}

#[inline]
fn set_port(frame: &mut [u8], p: &mut Parsed, port: u16, src: bool) {
    if !p.has_l4_header() || !p.has_ports() {
        return;
    }
    let l4 = usize::from(p.l4_off);
    let field = if src { l4 } else { l4 + 2 };
    let Some(old) = get16(frame, field) else {
        return;
    };
    put16(frame, field, port);
    let delta = u64::from(!old) + u64::from(port);
    match p.l4_proto {
        ip_proto::TCP => apply_csum_delta(frame, l4 + tcp::CHECKSUM_OFFSET, delta, false),
        ip_proto::UDP => apply_csum_delta(frame, l4 + udp::CHECKSUM_OFFSET, delta, true),
        _ => {
            if p.frag == Frag::None {
                refill_sctp_crc(frame, l4, p.l3_end());
            }
        }
    }
    if src {
        p.sport = port;
    } else {
        p.dport = port;
    }
}

/// SCTP's CRC32c over the whole packet: out of line, it is the expensive case.
#[inline(never)]
fn refill_sctp_crc(frame: &mut [u8], l4: usize, end: usize) {
    if let Some(pkt) = frame.get_mut(l4..end) {
        if pkt.len() >= sctp::HEADER_LEN {
            SctpPacket::new_unchecked(pkt).fill_checksum();
        }
    }
}

/// Rewrites the TCP/UDP/SCTP source port: TCP/UDP checksum updated incrementally, SCTP CRC32c
/// recomputed (left stale for an SCTP first fragment, see [`can_rewrite_ports`]). No-op for
/// other protocols and later fragments.
#[inline]
pub fn set_src_port(frame: &mut [u8], p: &mut Parsed, port: u16) {
    set_port(frame, p, port, true);
}

/// Rewrites the destination port; see [`set_src_port`].
#[inline]
pub fn set_dst_port(frame: &mut [u8], p: &mut Parsed, port: u16) {
    set_port(frame, p, port, false);
}

/// Sets the Ethernet source and destination MACs (DR forwarding, next-hop resolution).
/// No-op on a frame shorter than the two addresses.
#[inline]
pub fn set_macs(frame: &mut [u8], src: [u8; 6], dst: [u8; 6]) {
    if let Some(h) = frame.get_mut(..12) {
        h[..6].copy_from_slice(&dst);
        h[6..].copy_from_slice(&src);
    }
}

/// Decrements the IPv4 TTL (header checksum updated incrementally) or the IPv6 hop limit.
/// Returns `false`, leaving the packet untouched, when the result would be 0: a router must
/// then drop it and send time exceeded (RFC 1812 §5.3.1, RFC 8200 §3).
#[inline]
pub fn decrement_ttl(frame: &mut [u8], p: &Parsed) -> bool {
    let l3 = usize::from(p.l3_off);
    match p.l3 {
        L3::V4 => {
            let off = l3 + ipv4::TTL_OFFSET;
            let (Some(ttl), Some(proto)) = (get8(frame, off), get8(frame, off + 1)) else {
                return false;
            };
            if ttl <= 1 {
                return false;
            }
            frame[off] = ttl - 1;
            // TTL is the high byte of the word it shares with the protocol.
            let old = u16::from_be_bytes([ttl, proto]);
            let new = u16::from_be_bytes([ttl - 1, proto]);
            if let Some(c) = get16(frame, l3 + ipv4::CHECKSUM_OFFSET) {
                put16(
                    frame,
                    l3 + ipv4::CHECKSUM_OFFSET,
                    checksum::update16(c, old, new),
                );
            }
            true
        }
        L3::V6 => {
            let off = l3 + ipv6::HOP_LIMIT_OFFSET;
            match frame.get_mut(off) {
                Some(h) if *h > 1 => {
                    *h -= 1;
                    true
                }
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_frame;
    use crate::UdpPacket;

    fn v4_udp(csum: bool) -> Vec<u8> {
        let mut f = vec![
            2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00, // Ethernet
            0x45, 0, 0, 32, 0, 1, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 2, 198, 18, 100,
            1, // IPv4
            0x30, 0x39, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4, // UDP + 4 bytes
        ];
        crate::Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
        if csum {
            let pseudo = checksum::pseudo_header_v4(&[198, 18, 0, 2], &[198, 18, 100, 1], 17, 12);
            UdpPacket::new_unchecked(&mut f[34..]).fill_checksum(pseudo);
        }
        f
    }

    #[test]
    fn udp_zero_checksum_stays_zero() {
        let mut f = v4_udp(false);
        let mut p = parse_frame(&f).unwrap();
        set_dst_addr(
            &mut f,
            &mut p,
            &[198, 18, 1, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        set_dst_port(&mut f, &mut p, 5353);
        assert_eq!(&f[40..42], &[0, 0]);
        assert_eq!(p.dst_v4(), [198, 18, 1, 11]);
        assert_eq!(p.dport, 5353);
        let q = parse_frame(&f).unwrap();
        assert_eq!(q, p);
    }

    #[test]
    fn udp_checksum_updates_and_matches_full_recompute() {
        let mut f = v4_udp(true);
        let mut p = parse_frame(&f).unwrap();
        set_src_addr(
            &mut f,
            &mut p,
            &[198, 18, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        set_src_port(&mut f, &mut p, 1);
        assert!(crate::verify_l4_checksum(&f, &p));
        let mut g = f.clone();
        let pseudo = checksum::pseudo_header_v4(&[198, 18, 7, 7], &[198, 18, 100, 1], 17, 12);
        UdpPacket::new_unchecked(&mut g[34..]).fill_checksum(pseudo);
        assert_eq!(f, g);
    }

    #[test]
    fn ttl_decrement() {
        let mut f = v4_udp(true);
        let p = parse_frame(&f).unwrap();
        assert!(decrement_ttl(&mut f, &p));
        assert_eq!(f[22], 63);
        assert!(parse_frame(&f).is_ok());
        f[22] = 1;
        crate::Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
        let before = f.clone();
        assert!(!decrement_ttl(&mut f, &p));
        assert_eq!(f, before);
    }

    #[test]
    fn macs() {
        let mut f = v4_udp(false);
        set_macs(&mut f, [1; 6], [2; 6]);
        assert_eq!(&f[..12], &[2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1]);
        let mut short = [0u8; 11];
        set_macs(&mut short, [1; 6], [2; 6]);
        assert_eq!(short, [0; 11]);
    }

    #[test]
    fn foreign_parsed_never_panics() {
        let f0 = v4_udp(true);
        let mut p = parse_frame(&f0).unwrap();
        for off in [0u16, 30, 40, 60, u16::MAX] {
            let mut f = f0.clone();
            p.l3_off = off;
            p.l4_off = off;
            p.l3 = if off % 2 == 0 { L3::V6 } else { L3::V4 };
            set_src_addr(&mut f, &mut p, &[9; 16]);
            set_dst_port(&mut f, &mut p, 9);
            decrement_ttl(&mut f, &p);
        }
        p.l4_proto = ip_proto::SCTP;
        p.frag = Frag::None;
        p.l4_off = 34;
        p.l3_off = 14;
        p.ip_total_len = u16::MAX;
        let mut f = f0.clone();
        set_src_port(&mut f, &mut p, 1);
    }

    #[test]
    fn can_rewrite_ports_rules() {
        let f = v4_udp(true);
        let mut p = parse_frame(&f).unwrap();
        assert!(can_rewrite_ports(&p));
        p.frag = Frag::First { id: 1 };
        assert!(can_rewrite_ports(&p));
        p.l4_proto = ip_proto::SCTP;
        assert!(!can_rewrite_ports(&p));
        p.frag = Frag::Later { id: 1 };
        p.l4_proto = ip_proto::TCP;
        assert!(!can_rewrite_ports(&p));
        p.frag = Frag::None;
        p.l4_proto = ip_proto::ICMP;
        assert!(!can_rewrite_ports(&p));
    }
}
