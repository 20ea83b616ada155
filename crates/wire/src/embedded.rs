//! The packet quoted inside an ICMP/ICMPv6 error, and its translation.
//!
//! An error about a flow the balancer rewrote quotes the packet *as the real server or router
//! saw it*; to deliver the error to the client, the quoted addresses/ports are translated back
//! along with the outer header (IPVS `ip_vs_in_icmp`/`ip_vs_out_icmp`, Linux
//! `nf_nat_icmp_reply_translation`). Each `set_embedded_*` fixes the quoted IPv4 header
//! checksum, the quoted L4 checksum when the quote reaches it (TCP's sits at byte 16, past the
//! 8 bytes RFC 792 guarantees), and the outer ICMP checksum, which covers every quoted byte.
//! The outer header itself is rewritten with [`crate::set_src_addr`] and friends.

use crate::bytes::{get16, get8};
use crate::ip_proto;
use crate::ipv6_ext;
use crate::parse::{Frag, Parsed, L3};
use crate::rewrite::adjust_csum;
use crate::{icmpv4, icmpv6, ipv4, ipv6, tcp, udp, ParseError};

/// The packet quoted in an ICMP error. Offsets are from the frame start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Embedded {
    /// Family (always the outer family).
    pub l3: L3,
    /// Start of the outer ICMP header (its checksum is at +2).
    pub icmp_off: u16,
    /// Start of the quoted IP header.
    pub l3_off: u16,
    /// Start of the quoted L4 header.
    pub l4_off: u16,
    /// End of the quote (end of the outer IP packet).
    pub end: u16,
    /// Quoted protocol (after extension headers).
    pub l4_proto: u8,
    /// Quoted source address (IPv4 in the first 4 bytes).
    pub src: [u8; 16],
    /// Quoted destination address.
    pub dst: [u8; 16],
    /// Quoted source port, 0 when the protocol has none or the quote is a later fragment.
    pub sport: u16,
    /// Quoted destination port.
    pub dport: u16,
    /// Fragment state of the quoted packet.
    pub frag: Frag,
}

impl Embedded {
    #[inline]
    fn has_ports(&self) -> bool {
        !matches!(self.frag, Frag::Later { .. })
            && matches!(
                self.l4_proto,
                ip_proto::TCP | ip_proto::UDP | ip_proto::SCTP
            )
    }
}

/// Locates and parses the packet quoted by an ICMPv4 error (destination unreachable, source
/// quench, time exceeded, parameter problem) or ICMPv6 error (types 1-4). `p` comes from
/// [`crate::classify`] on the same frame. A quote of the other family than the outer packet is
/// refused, as are quotes too short for their IP header or (TCP/UDP/SCTP) ports.
pub fn parse_icmp_embedded(frame: &[u8], p: &Parsed) -> Result<Embedded, ParseError> {
    let icmp_off = usize::from(p.l4_off);
    let is_err = match (p.l3, p.l4_proto) {
        (L3::V4, ip_proto::ICMP) => get8(frame, icmp_off).is_some_and(icmpv4::is_error),
        (L3::V6, ip_proto::ICMPV6) => get8(frame, icmp_off).is_some_and(icmpv6::is_error),
        _ => false,
    };
    if !is_err || !p.has_l4_header() {
        return Err(ParseError::NotIcmpError);
    }
    let l3_off = icmp_off + icmpv4::HEADER_LEN;
    let end = p.l3_end().min(frame.len());
    quoted(frame, p.l3, icmp_off, l3_off, end)
}

/// The packet quoted `skip` bytes further into `e`'s quote: the tunnelled packet of a
/// quoted tunnel packet ([`crate::untunnel`]).
pub fn parse_quoted_inner(frame: &[u8], e: &Embedded, skip: usize) -> Result<Embedded, ParseError> {
    quoted(
        frame,
        e.l3,
        usize::from(e.icmp_off),
        usize::from(e.l3_off) + skip,
        usize::from(e.end),
    )
}

fn quoted(
    frame: &[u8],
    l3: L3,
    icmp_off: usize,
    l3_off: usize,
    end: usize,
) -> Result<Embedded, ParseError> {
    let quote = frame
        .get(l3_off..end)
        .ok_or(ParseError::TruncatedEmbedded)?;
    let mut e = Embedded {
        l3,
        icmp_off: icmp_off as u16,
        l3_off: l3_off as u16,
        l4_off: 0,
        end: end as u16,
        l4_proto: 0,
        src: [0; 16],
        dst: [0; 16],
        sport: 0,
        dport: 0,
        frag: Frag::None,
    };
    let l4_rel = match l3 {
        L3::V4 => {
            if quote.len() < ipv4::HEADER_LEN {
                return Err(ParseError::TruncatedEmbedded);
            }
            let ip = crate::Ipv4Packet::new_unchecked(quote);
            let hl = ip.header_len();
            if ip.version() != 4 || hl < ipv4::HEADER_LEN {
                return Err(ParseError::BadEmbeddedIp);
            }
            if hl > quote.len() {
                return Err(ParseError::TruncatedEmbedded);
            }
            let id = u32::from(ip.ident());
            e.frag = if ip.frag_offset() != 0 {
                Frag::Later { id }
            } else if ip.more_frags() {
                Frag::First { id }
            } else {
                Frag::None
            };
            e.l4_proto = ip.protocol();
            e.src[..4].copy_from_slice(&ip.src_addr());
            e.dst[..4].copy_from_slice(&ip.dst_addr());
            hl
        }
        L3::V6 => {
            if quote.len() < ipv6::HEADER_LEN {
                return Err(ParseError::TruncatedEmbedded);
            }
            let ip = crate::Ipv6Packet::new_unchecked(quote);
            if ip.version() != 6 {
                return Err(ParseError::BadEmbeddedIp);
            }
            let chain =
                ipv6_ext::walk(ip.next_header(), &quote[ipv6::HEADER_LEN..]).map_err(|err| {
                    match err {
                        ParseError::TruncatedIpv6Ext => ParseError::TruncatedEmbedded,
                        _ => ParseError::BadEmbeddedIp,
                    }
                })?;
            e.frag = match chain.fragment {
                Some(f) if f.offset != 0 => Frag::Later { id: f.ident },
                Some(f) if f.more => Frag::First { id: f.ident },
                _ => Frag::None,
            };
            e.l4_proto = chain.l4_proto;
            e.src = ip.src_addr();
            e.dst = ip.dst_addr();
            ipv6::HEADER_LEN + chain.l4_off
        }
    };
    e.l4_off = (l3_off + l4_rel) as u16;
    if e.has_ports() {
        let l4 = &quote[l4_rel..];
        match (get16(l4, 0), get16(l4, 2)) {
            (Some(s), Some(d)) => {
                e.sport = s;
                e.dport = d;
            }
            _ => return Err(ParseError::TruncatedEmbedded),
        }
    }
    Ok(e)
}

/// Writes `new` at `off` inside the quote and carries the change into the outer ICMP checksum;
/// `false` (nothing written) when the bytes are not all inside the quote.
fn write_quoted(frame: &mut [u8], e: &Embedded, off: usize, new: &[u8]) -> bool {
    let end = off + new.len();
    if end > usize::from(e.end) {
        return false;
    }
    let Some(slot) = frame.get_mut(off..end) else {
        return false;
    };
    let mut old = [0u8; 16];
    let n = new.len().min(16);
    old[..n].copy_from_slice(&slot[..n]);
    slot.copy_from_slice(new);
    adjust_csum(
        frame,
        usize::from(e.icmp_off) + icmpv4::CHECKSUM_OFFSET,
        &old[..n],
        new,
        false,
    );
    true
}

/// Adjusts a quoted checksum field at `off` for `old` → `new` and carries its own change
/// into the outer ICMP checksum. Skipped when the field is outside the quote.
fn adjust_quoted_csum(
    frame: &mut [u8],
    e: &Embedded,
    off: usize,
    old: &[u8],
    new: &[u8],
    udp_rules: bool,
) {
    if off + 2 > usize::from(e.end) {
        return;
    }
    let Some(before) = get16(frame, off) else {
        return;
    };
    adjust_csum(frame, off, old, new, udp_rules);
    let Some(after) = get16(frame, off) else {
        return;
    };
    adjust_csum(
        frame,
        usize::from(e.icmp_off) + icmpv4::CHECKSUM_OFFSET,
        &before.to_be_bytes(),
        &after.to_be_bytes(),
        false,
    );
}

/// Quoted L4 checksum that covers the pseudo-header, and whether UDP's zero rules apply.
fn quoted_pseudo_csum(e: &Embedded) -> Option<(usize, bool)> {
    if matches!(e.frag, Frag::Later { .. }) {
        return None;
    }
    let l4 = usize::from(e.l4_off);
    match (e.l4_proto, e.l3) {
        (ip_proto::TCP, _) => Some((l4 + tcp::CHECKSUM_OFFSET, false)),
        (ip_proto::UDP, _) => Some((l4 + udp::CHECKSUM_OFFSET, true)),
        (ip_proto::ICMPV6, L3::V6) => Some((l4 + icmpv6::CHECKSUM_OFFSET, false)),
        _ => None,
    }
}

fn set_quoted_addr(frame: &mut [u8], e: &mut Embedded, addr: &[u8; 16], src: bool) -> bool {
    let l3 = usize::from(e.l3_off);
    let (off, len) = match (e.l3, src) {
        (L3::V4, true) => (l3 + ipv4::SRC_OFFSET, 4),
        (L3::V4, false) => (l3 + ipv4::DST_OFFSET, 4),
        (L3::V6, true) => (l3 + ipv6::SRC_OFFSET, 16),
        (L3::V6, false) => (l3 + ipv6::DST_OFFSET, 16),
    };
    let mut old = [0u8; 16];
    match frame.get(off..off + len) {
        Some(s) => old[..len].copy_from_slice(s),
        None => return false,
    }
    let new = &addr[..len];
    if !write_quoted(frame, e, off, new) {
        return false;
    }
    if e.l3 == L3::V4 {
        adjust_quoted_csum(
            frame,
            e,
            l3 + ipv4::CHECKSUM_OFFSET,
            &old[..len],
            new,
            false,
        );
    }
    if let Some((csum_off, udp_rules)) = quoted_pseudo_csum(e) {
        adjust_quoted_csum(frame, e, csum_off, &old[..len], new, udp_rules);
    }
    let slot = if src { &mut e.src } else { &mut e.dst };
    *slot = [0; 16];
    slot[..len].copy_from_slice(new);
    true
}

/// Rewrites the quoted packet's source address, fixing the quoted IPv4 header checksum, the
/// quoted L4 checksum if quoted, and the outer ICMP checksum. Returns `false` (frame
/// untouched) when the address is not inside the quote.
pub fn set_embedded_src_addr(frame: &mut [u8], e: &mut Embedded, addr: &[u8; 16]) -> bool {
    set_quoted_addr(frame, e, addr, true)
}

/// Rewrites the quoted packet's destination address; see [`set_embedded_src_addr`].
pub fn set_embedded_dst_addr(frame: &mut [u8], e: &mut Embedded, addr: &[u8; 16]) -> bool {
    set_quoted_addr(frame, e, addr, false)
}

fn set_quoted_port(frame: &mut [u8], e: &mut Embedded, port: u16, src: bool) -> bool {
    if !e.has_ports() {
        return false;
    }
    let l4 = usize::from(e.l4_off);
    let off = if src { l4 } else { l4 + 2 };
    let Some(old) = get16(frame, off) else {
        return false;
    };
    if !write_quoted(frame, e, off, &port.to_be_bytes()) {
        return false;
    }
    // SCTP's CRC32c over a truncated quote cannot be made right; it is left as quoted.
    match e.l4_proto {
        ip_proto::TCP => adjust_quoted_csum(
            frame,
            e,
            l4 + tcp::CHECKSUM_OFFSET,
            &old.to_be_bytes(),
            &port.to_be_bytes(),
            false,
        ),
        ip_proto::UDP => adjust_quoted_csum(
            frame,
            e,
            l4 + udp::CHECKSUM_OFFSET,
            &old.to_be_bytes(),
            &port.to_be_bytes(),
            true,
        ),
        _ => {}
    }
    if src {
        e.sport = port;
    } else {
        e.dport = port;
    }
    true
}

/// Rewrites the quoted TCP/UDP/SCTP source port, fixing the quoted TCP/UDP checksum when
/// quoted and the outer ICMP checksum. Returns `false` when there is no such port in the
/// quote.
pub fn set_embedded_src_port(frame: &mut [u8], e: &mut Embedded, port: u16) -> bool {
    set_quoted_port(frame, e, port, true)
}

/// Rewrites the quoted destination port; see [`set_embedded_src_port`].
pub fn set_embedded_dst_port(frame: &mut [u8], e: &mut Embedded, port: u16) -> bool {
    set_quoted_port(frame, e, port, false)
}

/// Translates the quoted TCP segment's numbers with `s` (a SYN proxy's splice, see
/// [`crate::tcp_splice::splice_quoted`]), fixing the quoted TCP checksum when quoted and
/// the outer ICMP checksum. Returns `false` (frame untouched) when the quote is not a TCP
/// segment's start with its sequence number.
pub fn splice_embedded(frame: &mut [u8], e: &Embedded, s: &crate::Splice) -> bool {
    if e.l4_proto != ip_proto::TCP || !e.has_ports() {
        return false;
    }
    let (l4, end) = (usize::from(e.l4_off), usize::from(e.end));
    let Some(quote) = frame.get_mut(l4..end) else {
        return false;
    };
    // What the translation may change: the header, at most 60 bytes. Its quoted length,
    // rounded down to whole 16-bit words: the changed fields are words (an option field
    // at an odd offset only in a whole header, which ends on a word), and the quote starts
    // an even number of bytes into the ICMP message (8 + an IP header and its extension
    // headers, multiples of 4 and 8), so the words are the ICMP checksum's words too.
    let n = quote.len().min(60) & !1;
    let mut old = [0u8; 60];
    old[..n].copy_from_slice(&quote[..n]);
    if crate::tcp_splice::splice_quoted(quote, s).is_err() {
        return false;
    }
    let mut new = [0u8; 60];
    new[..n].copy_from_slice(&quote[..n]);
    adjust_csum(
        frame,
        usize::from(e.icmp_off) + icmpv4::CHECKSUM_OFFSET,
        &old[..n],
        &new[..n],
        false,
    );
    true
}

/// Writes a 16-bit value inside the quote, keeping the outer ICMP checksum right; used by
/// callers translating fields not covered above (e.g. an ICMP echo id in a quoted echo).
pub fn set_embedded_u16(frame: &mut [u8], e: &Embedded, off: usize, v: u16) -> bool {
    if off < usize::from(e.l3_off) || !(off - usize::from(e.icmp_off)).is_multiple_of(2) {
        return false;
    }
    write_quoted(frame, e, off, &v.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum;
    use crate::parse::parse_frame;

    /// Port unreachable from 198.18.1.11 to 198.18.0.2 quoting a UDP datagram
    /// 198.18.0.2:40000 → 198.18.1.11:53 (full 8-byte UDP header quoted).
    fn port_unreachable() -> Vec<u8> {
        let mut inner = vec![
            0x45, 0, 0, 32, 0, 7, 0, 0, 63, 17, 0, 0, 198, 18, 0, 2, 198, 18, 1, 11, // IPv4
            0x9c, 0x40, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4, // UDP
        ];
        crate::Ipv4Packet::new_unchecked(&mut inner[..20]).fill_checksum();
        let pseudo = checksum::pseudo_header_v4(&[198, 18, 0, 2], &[198, 18, 1, 11], 17, 12);
        crate::UdpPacket::new_unchecked(&mut inner[20..]).fill_checksum(pseudo);
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        let total = 20 + 8 + inner.len();
        f.extend_from_slice(&[
            0x45,
            0,
            0,
            total as u8,
            0,
            9,
            0,
            0,
            64,
            1,
            0,
            0,
            198,
            18,
            1,
            11,
            198,
            18,
            0,
            2,
        ]);
        f.extend_from_slice(&[3, 3, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(&inner);
        crate::Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
        crate::Icmpv4Packet::new_unchecked(&mut f[34..]).fill_checksum();
        f
    }

    #[test]
    fn parse_quote() {
        let f = port_unreachable();
        let p = parse_frame(&f).unwrap();
        assert_eq!((p.icmp_type, p.icmp_code, p.sport), (3, 3, 0));
        let e = parse_icmp_embedded(&f, &p).unwrap();
        assert_eq!((e.icmp_off, e.l3_off, e.l4_off, e.end), (34, 42, 62, 74));
        assert_eq!(e.l4_proto, ip_proto::UDP);
        assert_eq!(&e.src[..4], &[198, 18, 0, 2]);
        assert_eq!(&e.dst[..4], &[198, 18, 1, 11]);
        assert_eq!((e.sport, e.dport), (40000, 53));
        assert_eq!(e.frag, Frag::None);
    }

    #[test]
    fn translate_quote_keeps_all_checksums() {
        let mut f = port_unreachable();
        let mut p = parse_frame(&f).unwrap();
        let mut e = parse_icmp_embedded(&f, &p).unwrap();
        let vip = [198, 18, 100, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(set_embedded_dst_addr(&mut f, &mut e, &vip));
        assert!(set_embedded_dst_port(&mut f, &mut e, 5353));
        crate::set_src_addr(&mut f, &mut p, &vip);
        let p2 = parse_frame(&f).unwrap();
        assert!(crate::verify_l4_checksum(&f, &p2));
        let e2 = parse_icmp_embedded(&f, &p2).unwrap();
        assert_eq!(e2, e);
        assert_eq!(&e2.dst[..4], &[198, 18, 100, 1]);
        assert_eq!(e2.dport, 5353);
        assert!(crate::Ipv4Packet::new_unchecked(&f[42..62]).verify_checksum());
        let pseudo = checksum::pseudo_header_v4(&[198, 18, 0, 2], &[198, 18, 100, 1], 17, 12);
        assert!(crate::UdpPacket::new_checked(&f[62..74])
            .unwrap()
            .verify_checksum(pseudo));
        assert!(set_embedded_src_port(&mut f, &mut e, 1));
        assert!(set_embedded_src_addr(
            &mut f,
            &mut e,
            &[198, 18, 0, 99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        ));
        assert!(crate::verify_l4_checksum(&f, &p2));
    }

    /// Fragmentation needed from 198.18.0.2 to 198.18.100.1 quoting the first `cut` bytes
    /// of a TCP segment 198.18.100.1:80 → 198.18.0.2:40000 (timestamps, 10 bytes of data).
    fn frag_needed_tcp(cut: usize) -> Vec<u8> {
        let mut seg = Vec::new();
        etherparse::PacketBuilder::ipv4([198, 18, 100, 1], [198, 18, 0, 2], 63)
            .tcp(80, 40000, 1000, 512)
            .ack(2000)
            .options(&[
                etherparse::TcpOptionElement::Noop,
                etherparse::TcpOptionElement::Noop,
                etherparse::TcpOptionElement::Timestamp(7, 8),
            ])
            .unwrap()
            .write(&mut seg, b"0123456789")
            .unwrap();
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([198, 18, 0, 2], [198, 18, 100, 1], 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: 1280,
                },
            ))
            .write(&mut f, &seg[..cut.min(seg.len())])
            .unwrap();
        f
    }

    #[test]
    fn spliced_quotes_keep_the_icmp_and_tcp_checksums() {
        let s = crate::Splice {
            seq: 0x0123_4567,
            ack: 28,
            tsval: 5,
            window: Some((7, 5)),
            ..crate::Splice::default()
        };
        for cut in [28, 29, 33, 34, 35, 36, 38, 39, 40, 41, 52, 62] {
            let mut f = frag_needed_tcp(cut);
            let p = parse_frame(&f).unwrap();
            let e = parse_icmp_embedded(&f, &p).unwrap();
            assert!(splice_embedded(&mut f, &e, &s), "cut {cut}");
            assert!(
                crate::verify_l4_checksum(&f, &p),
                "ICMP checksum, cut {cut}"
            );
            let q = &f[usize::from(e.l4_off)..];
            assert_eq!(get16(q, 4), Some(0x0123), "cut {cut}");
            assert_eq!(get16(q, 6), Some(0x4567 + 1000), "cut {cut}");
        }
        // The whole segment quoted: its own checksum is right too, and the timestamp
        // translated.
        let mut f = frag_needed_tcp(1000);
        let p = parse_frame(&f).unwrap();
        let e = parse_icmp_embedded(&f, &p).unwrap();
        assert!(splice_embedded(&mut f, &e, &s));
        assert!(crate::verify_l4_checksum(&f, &p));
        let q = &f[usize::from(e.l3_off)..];
        let (ip, rest) = etherparse::Ipv4Header::from_slice(q).unwrap();
        let (t, payload) = etherparse::TcpHeader::from_slice(rest).unwrap();
        assert_eq!(t.checksum, t.calc_checksum_ipv4(&ip, payload).unwrap());
        assert_eq!(
            (t.sequence_number, t.acknowledgment_number),
            (0x0123_4567 + 1000, 2028)
        );
        assert_eq!(t.window_size, 2048, "512 in shift 7 is 2 048 in shift 5");
        assert!(t
            .options_iterator()
            .any(|o| o == Ok(etherparse::TcpOptionElement::Timestamp(12, 8))));
        // Too short for the sequence number, or not TCP: refused, untouched.
        let mut f = frag_needed_tcp(26);
        let p = parse_frame(&f).unwrap();
        let e = parse_icmp_embedded(&f, &p).unwrap();
        let before = f.clone();
        assert!(!splice_embedded(&mut f, &e, &s));
        assert_eq!(f, before);
        let mut f = port_unreachable();
        let p = parse_frame(&f).unwrap();
        let e = parse_icmp_embedded(&f, &p).unwrap();
        assert!(!splice_embedded(&mut f, &e, &s));
    }

    #[test]
    fn not_an_error_and_truncated_quotes() {
        let f = port_unreachable();
        let p = parse_frame(&f).unwrap();
        let mut echo = f.clone();
        echo[34] = 8;
        assert_eq!(
            parse_icmp_embedded(&echo, &p),
            Err(ParseError::NotIcmpError)
        );
        let mut q = p;
        q.ip_total_len = 20 + 8 + 19;
        assert_eq!(
            parse_icmp_embedded(&f, &q),
            Err(ParseError::TruncatedEmbedded)
        );
        q.ip_total_len = 20 + 8 + 22;
        assert_eq!(
            parse_icmp_embedded(&f, &q),
            Err(ParseError::TruncatedEmbedded)
        );
        let mut v6 = f.clone();
        v6[42] = 0x65;
        assert_eq!(parse_icmp_embedded(&v6, &p), Err(ParseError::BadEmbeddedIp));
    }
}
