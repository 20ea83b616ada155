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
//!   (a CRC has no cheap incremental form without knowing the distance to the end): once
//!   per [`nat`] however many ports it writes, and not when the port is unchanged;
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

/// The fields a NAT rewrite of one packet changes ([`nat_v4_tcp`]); `None` leaves a field as
/// it is. An address is given as the entry stores it (IPv4 in the first 4 bytes).
#[derive(Clone, Copy, Debug, Default)]
pub struct NatFields<'a> {
    /// New source address.
    pub src_addr: Option<&'a [u8; 16]>,
    /// New source port.
    pub src_port: Option<u16>,
    /// New destination address.
    pub dst_addr: Option<&'a [u8; 16]>,
    /// New destination port.
    pub dst_port: Option<u16>,
}

/// The NAT/FullNAT rewrite of a packet: the TTL (hop limit) decremented, then the given
/// addresses and ports written, each change reflected in the checksums. TCP and UDP take
/// [`nat_v4_tcp`], [`nat_v4_udp`], [`nat_v6_tcp`] and [`nat_v6_udp`] (each checksum updated
/// once), every other packet the field-by-field calls, which give the same bytes. `false`: the TTL would reach 0, nothing is written.
#[inline]
pub fn nat(frame: &mut [u8], p: &mut Parsed, n: &NatFields<'_>) -> bool {
    if let Some(ok) = nat_v4_tcp(frame, p, n) {
        return ok;
    }
    if let Some(ok) = nat_v4_udp(frame, p, n) {
        return ok;
    }
    if let Some(ok) = nat_v6(frame, p, n) {
        return ok;
    }
    if !decrement_ttl(frame, p) {
        return false;
    }
    // SCTP's CRC32c covers both ports: recomputed once, after both are written.
    let mut refill = false;
    if let Some(a) = n.dst_addr {
        set_dst_addr(frame, p, a);
    }
    if let Some(port) = n.dst_port {
        refill |= write_port(frame, p, port, false);
    }
    if let Some(a) = n.src_addr {
        set_src_addr(frame, p, a);
    }
    if let Some(port) = n.src_port {
        refill |= write_port(frame, p, port, true);
    }
    if refill {
        refill_sctp_crc(frame, p);
    }
    true
}

/// The established NAT path's whole rewrite of an IPv4 TCP segment that is not a fragment:
/// the TTL decremented, then the given addresses and ports written, each checksum (the IPv4
/// header's, TCP's) updated once with the sum of its changes' RFC 1624 terms instead of once
/// per field. The bytes and `p` come out as from [`decrement_ttl`] followed by the
/// [`set_dst_addr`] / [`set_dst_port`] / [`set_src_addr`] / [`set_src_port`] calls (in any
/// order): with one ones'-complement fold per update, `~fold(~fold(a + d1) + d2)` equals
/// `~fold(a + d1 + d2)` for every `a`, `d1`, `d2` (TCP has no zero rule; tested below).
///
/// `None` when the packet is not such a segment or `p` does not describe a frame holding both
/// headers: nothing is written, and the caller takes the field-by-field path.
/// `Some(false)`: the TTL would reach 0, nothing is written (as [`decrement_ttl`]).
#[inline]
pub fn nat_v4_tcp(frame: &mut [u8], p: &mut Parsed, n: &NatFields<'_>) -> Option<bool> {
    if p.l4_proto != ip_proto::TCP {
        return None;
    }
    let f = nat_v4_fields(frame, p, n, tcp::HEADER_LEN)?;
    Some(finish_tcp(frame, f))
}

/// [`nat_v4_tcp`] for an IPv4 UDP datagram that is not a fragment, with UDP's zero rules
/// applied once at the end: a 0 field (no checksum) is left alone, a computed 0 is written as
/// 0xFFFF. The per-field updates apply them at every step; the two differ only in which form
/// of ones'-complement zero (0x0000, 0xFFFF) an intermediate takes, which the final rule
/// maps the same way (tested below).
#[inline]
pub fn nat_v4_udp(frame: &mut [u8], p: &mut Parsed, n: &NatFields<'_>) -> Option<bool> {
    if p.l4_proto != ip_proto::UDP {
        return None;
    }
    let f = nat_v4_fields(frame, p, n, udp::HEADER_LEN)?;
    Some(finish_udp(frame, f))
}

/// [`nat_v4_tcp`] for an IPv6 TCP segment whose TCP header follows the fixed header (no
/// extension header, so not a fragment): the hop limit decremented (IPv6 has no header
/// checksum), then the addresses and ports written and TCP's checksum updated once.
#[inline]
pub fn nat_v6_tcp(frame: &mut [u8], p: &mut Parsed, n: &NatFields<'_>) -> Option<bool> {
    if p.l4_proto != ip_proto::TCP {
        return None;
    }
    let f = nat_v6_fields(frame, p, n, tcp::HEADER_LEN)?;
    Some(finish_tcp(frame, f))
}

/// [`nat_v6_tcp`] for a UDP datagram, with UDP's zero rules as in [`nat_v4_udp`] (over IPv6
/// a 0 checksum is not allowed, RFC 8200 §8.1, but it is left as found, as the field-by-field
/// path does).
#[inline]
pub fn nat_v6_udp(frame: &mut [u8], p: &mut Parsed, n: &NatFields<'_>) -> Option<bool> {
    if p.l4_proto != ip_proto::UDP {
        return None;
    }
    let f = nat_v6_fields(frame, p, n, udp::HEADER_LEN)?;
    Some(finish_udp(frame, f))
}

/// [`nat_v6_tcp`] or [`nat_v6_udp`], out of line: inlined into the established path beside
/// IPv4's, they made IPv6 NAT 4 % and IPv4 NAT 2 % slower (bench/README.md, "The one-pass
/// NAT rewrite for IPv6").
#[inline(never)]
fn nat_v6(frame: &mut [u8], p: &mut Parsed, n: &NatFields<'_>) -> Option<bool> {
    match p.l4_proto {
        ip_proto::TCP => nat_v6_tcp(frame, p, n),
        _ => nat_v6_udp(frame, p, n),
    }
}

/// TCP's checksum after [`nat_v4_fields`] or [`nat_v6_fields`]: `false` when the TTL ran out.
#[inline(always)]
fn finish_tcp(frame: &mut [u8], f: L4Fields) -> bool {
    let L4Fields::Written(l4) = f else {
        return false;
    };
    if let Some((l4, delta)) = l4 {
        let at = l4 + tcp::CHECKSUM_OFFSET;
        let c = u16::from_ne_bytes([frame[at], frame[at + 1]]);
        frame[at..at + 2].copy_from_slice(&checksum::apply_delta(c, delta).to_ne_bytes());
    }
    true
}

/// UDP's checksum after [`nat_v4_fields`] or [`nat_v6_fields`], with its zero rules.
#[inline(always)]
fn finish_udp(frame: &mut [u8], f: L4Fields) -> bool {
    let L4Fields::Written(l4) = f else {
        return false;
    };
    if let Some((l4, delta)) = l4 {
        let at = l4 + udp::CHECKSUM_OFFSET;
        // 0 and 0xFFFF read the same in either byte order.
        let c = u16::from_ne_bytes([frame[at], frame[at + 1]]);
        if c != 0 {
            let new = match checksum::apply_delta(c, delta) {
                0 => 0xffff,
                v => v,
            };
            frame[at..at + 2].copy_from_slice(&new.to_ne_bytes());
        }
    }
    true
}

/// What [`nat_v4_fields`] or [`nat_v6_fields`] did.
enum L4Fields {
    /// The TTL (hop limit) would reach 0: nothing written.
    TtlOut,
    /// TTL, addresses, ports (and the IPv4 header checksum) written; the L4 header's offset
    /// and the sum of the changes' RFC 1624 terms for its checksum, `None` when no field
    /// changed.
    Written(Option<(usize, u64)>),
}

/// The part of [`nat_v4_tcp`] and [`nat_v4_udp`] before the L4 checksum: checks the packet
/// (`None`: not handled, nothing written; `l4_header` is the L4 header's least length),
/// then decrements the TTL, writes the addresses and ports and updates the IPv4 header
/// checksum.
#[inline(always)]
fn nat_v4_fields(
    frame: &mut [u8],
    p: &mut Parsed,
    n: &NatFields<'_>,
    l4_header: usize,
) -> Option<L4Fields> {
    let l3 = usize::from(p.l3_off);
    let l4 = usize::from(p.l4_off);
    if p.l3 != L3::V4
        || p.frag != Frag::None
        || l3 + ipv4::HEADER_LEN > l4
        || frame.len() < l4 + l4_header
    {
        return None;
    }
    // The sums run in the frame's byte order, words loaded and stored as they are (a ones'-
    // complement sum of byte-swapped words is the byte-swapped sum, RFC 1071 §2(B)), an
    // address as one 32-bit word (it folds to the sum of its two 16-bit halves).
    let ttl = frame[l3 + ipv4::TTL_OFFSET];
    if ttl <= 1 {
        return Some(L4Fields::TtlOut);
    }
    let proto = frame[l3 + ipv4::TTL_OFFSET + 1];
    frame[l3 + ipv4::TTL_OFFSET] = ttl - 1;
    // TTL is the high byte of the word it shares with the protocol.
    let mut ip_delta = u64::from(!u16::from_ne_bytes([ttl, proto]))
        + u64::from(u16::from_ne_bytes([ttl - 1, proto]));
    let mut l4_delta = 0u64;
    let mut addr = |field: usize, new: &[u8; 16]| -> [u8; 16] {
        let new = [new[0], new[1], new[2], new[3]];
        let mut old = [0u8; 4];
        old.copy_from_slice(&frame[field..field + 4]);
        frame[field..field + 4].copy_from_slice(&new);
        let d = u64::from(!u32::from_ne_bytes(old)) + u64::from(u32::from_ne_bytes(new));
        ip_delta += d;
        l4_delta += d;
        crate::parse::widen_v4(new)
    };
    if let Some(a) = n.dst_addr {
        p.dst = addr(l3 + ipv4::DST_OFFSET, a);
    }
    if let Some(a) = n.src_addr {
        p.src = addr(l3 + ipv4::SRC_OFFSET, a);
    }
    let mut port = |field: usize, new: u16| {
        let old = u16::from_ne_bytes([frame[field], frame[field + 1]]);
        let new = new.to_be_bytes();
        frame[field..field + 2].copy_from_slice(&new);
        l4_delta += u64::from(!old) + u64::from(u16::from_ne_bytes(new));
    };
    if let Some(v) = n.dst_port {
        port(l4 + 2, v);
        p.dport = v;
    }
    if let Some(v) = n.src_port {
        port(l4, v);
        p.sport = v;
    }
    let at = l3 + ipv4::CHECKSUM_OFFSET;
    let c = u16::from_ne_bytes([frame[at], frame[at + 1]]);
    frame[at..at + 2].copy_from_slice(&checksum::apply_delta(c, ip_delta).to_ne_bytes());
    let changed = n.dst_addr.is_some()
        || n.src_addr.is_some()
        || n.dst_port.is_some()
        || n.src_port.is_some();
    Some(L4Fields::Written(changed.then_some((l4, l4_delta))))
}

/// [`nat_v4_fields`] for IPv6: checks the packet (`None`: not handled, nothing written —
/// also when an extension header sits between the fixed header and the L4 header), then
/// decrements the hop limit and writes the addresses and ports. The L4 delta sums each
/// 16-byte address as two 64-bit words in the frame's byte order (each folds to the sum of
/// its four 16-bit words).
#[inline(always)]
fn nat_v6_fields(
    frame: &mut [u8],
    p: &mut Parsed,
    n: &NatFields<'_>,
    l4_header: usize,
) -> Option<L4Fields> {
    let l3 = usize::from(p.l3_off);
    let l4 = usize::from(p.l4_off);
    if p.l3 != L3::V6
        || p.frag != Frag::None
        || l3 + ipv6::HEADER_LEN != l4
        || frame.len() < l4 + l4_header
    {
        return None;
    }
    let hop = frame[l3 + ipv6::HOP_LIMIT_OFFSET];
    if hop <= 1 {
        return Some(L4Fields::TtlOut);
    }
    frame[l3 + ipv6::HOP_LIMIT_OFFSET] = hop - 1;
    let mut l4_delta = 0u64;
    let mut addr = |field: usize, new: &[u8; 16]| {
        let (o0, o1) = (ne64(frame, field), ne64(frame, field + 8));
        let (n0, n1) = (ne64(new, 0), ne64(new, 8));
        frame[field..field + 16].copy_from_slice(new);
        // Each 64-bit word is folded to 32 bits first so the sum cannot overflow.
        let w = |v: u64| (v >> 32) + (v & 0xffff_ffff);
        l4_delta += w(!o0) + w(!o1) + w(n0) + w(n1);
    };
    if let Some(a) = n.dst_addr {
        addr(l3 + ipv6::DST_OFFSET, a);
        p.dst = *a;
    }
    if let Some(a) = n.src_addr {
        addr(l3 + ipv6::SRC_OFFSET, a);
        p.src = *a;
    }
    let mut port = |field: usize, new: u16| {
        let old = u16::from_ne_bytes([frame[field], frame[field + 1]]);
        let new = new.to_be_bytes();
        frame[field..field + 2].copy_from_slice(&new);
        l4_delta += u64::from(!old) + u64::from(u16::from_ne_bytes(new));
    };
    if let Some(v) = n.dst_port {
        port(l4 + 2, v);
        p.dport = v;
    }
    if let Some(v) = n.src_port {
        port(l4, v);
        p.sport = v;
    }
    let changed = n.dst_addr.is_some()
        || n.src_addr.is_some()
        || n.dst_port.is_some()
        || n.src_port.is_some();
    Some(L4Fields::Written(changed.then_some((l4, l4_delta))))
}

/// The 8 bytes of `b` at `i` as a native-order word (`i + 8 <= b.len()`).
#[inline(always)]
fn ne64(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i..i + 8]);
    u64::from_ne_bytes(w)
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
    if write_port(frame, p, port, src) {
        refill_sctp_crc(frame, p);
    }
}

/// Writes a port and updates a TCP/UDP checksum with it. `true`: the packet is SCTP (not a
/// fragment) and the port changed, so its CRC32c must be recomputed, which is left to the
/// caller so that a rewrite of both ports recomputes it once.
#[inline]
fn write_port(frame: &mut [u8], p: &mut Parsed, port: u16, src: bool) -> bool {
    if !p.has_l4_header() || !p.has_ports() {
        return false;
    }
    let l4 = usize::from(p.l4_off);
    let field = if src { l4 } else { l4 + 2 };
    let Some(old) = get16(frame, field) else {
        return false;
    };
    put16(frame, field, port);
    let delta = u64::from(!old) + u64::from(port);
    let refill = match p.l4_proto {
        ip_proto::TCP => {
            apply_csum_delta(frame, l4 + tcp::CHECKSUM_OFFSET, delta, false);
            false
        }
        ip_proto::UDP => {
            apply_csum_delta(frame, l4 + udp::CHECKSUM_OFFSET, delta, true);
            false
        }
        _ => p.frag == Frag::None && old != port,
    };
    if src {
        p.sport = port;
    } else {
        p.dport = port;
    }
    refill
}

/// SCTP's CRC32c over the whole packet: out of line, it is the expensive case.
#[inline(never)]
fn refill_sctp_crc(frame: &mut [u8], p: &Parsed) {
    if let Some(pkt) = frame.get_mut(usize::from(p.l4_off)..p.l3_end()) {
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

/// One direction of an IPv4 TCP or UDP flow's NAT/FullNAT rewrite, worked out once from a
/// packet of the flow ([`V4Rewrite::new`]: the new addresses and ports, and the RFC 1624
/// terms of their changes summed and folded) and then applied to each later packet with the
/// same addresses, ports and protocol ([`V4Rewrite::apply`]): the TTL and the header words
/// written, each checksum updated with one addition. The bytes come out as [`nat`]'s with
/// the same [`NatFields`]: folding part of a ones'-complement sum early keeps both its
/// value and whether it is zero, and the TTL's term keeps the header's sum from zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V4Rewrite {
    /// New source ‖ destination address, as they lie in the frame.
    addrs: [u8; 8],
    /// New source ‖ destination port, as they lie in the frame.
    ports: [u8; 4],
    /// The address changes' terms for the IPv4 header checksum, folded.
    ip: u16,
    /// The address and port changes' terms for the TCP/UDP checksum, folded; `None` when
    /// nothing it covers changes (the checksum is then left alone, as [`nat`] does).
    l4: Option<u16>,
    udp: bool,
}

impl V4Rewrite {
    /// The rewrite [`nat`] would make with `n` of a packet parsed as `p`: `None` unless `p`
    /// is an IPv4 TCP or UDP packet that is not a fragment. An address is given as
    /// [`NatFields`] holds it (IPv4 in the first 4 bytes).
    pub fn new(p: &Parsed, n: &NatFields<'_>) -> Option<Self> {
        let udp = match p.l4_proto {
            ip_proto::TCP => false,
            ip_proto::UDP => true,
            _ => return None,
        };
        if p.l3 != L3::V4 || p.frag != Frag::None {
            return None;
        }
        let v4 = |a: &[u8; 16]| [a[0], a[1], a[2], a[3]];
        let (old_src, old_dst) = (v4(&p.src), v4(&p.dst));
        let src = n.src_addr.map_or(old_src, v4);
        let dst = n.dst_addr.map_or(old_dst, v4);
        // Terms in the frame's byte order, as `nat_v4_fields` sums them: only for the
        // fields `n` names, so the sum is the one `nat` takes.
        let word = |old: [u8; 4], new: [u8; 4]| {
            u64::from(!u32::from_ne_bytes(old)) + u64::from(u32::from_ne_bytes(new))
        };
        let mut ip = 0u64;
        if n.dst_addr.is_some() {
            ip += word(old_dst, dst);
        }
        if n.src_addr.is_some() {
            ip += word(old_src, src);
        }
        let (port_terms, ports) = port_rewrite(p, n);
        let mut addrs = [0u8; 8];
        addrs[..4].copy_from_slice(&src);
        addrs[4..].copy_from_slice(&dst);
        Some(Self {
            addrs,
            ports,
            ip: checksum::fold(ip),
            l4: changes_anything(n).then_some(checksum::fold(ip + port_terms)),
            udp,
        })
    }

    /// Whether `p` has the addresses, ports and protocol this rewrite writes: the parse of
    /// a packet it (or [`nat`] with the same fields) has rewritten, not of one answered
    /// or left as it came.
    pub fn wrote(&self, p: &Parsed) -> bool {
        let proto = if self.udp {
            ip_proto::UDP
        } else {
            ip_proto::TCP
        };
        p.l3 == L3::V4
            && p.l4_proto == proto
            && p.src[..4] == self.addrs[..4]
            && p.dst[..4] == self.addrs[4..]
            && p.sport.to_be_bytes() == self.ports[..2]
            && p.dport.to_be_bytes() == self.ports[2..]
    }

    /// Rewrites a packet of the flow `self` was made for (`p` its parse: the same
    /// addresses, ports and protocol), updating `p`'s addresses and ports. `false`: nothing
    /// written, because the TTL would reach 0 or `p` does not describe such a packet in
    /// `frame`; the caller takes the general path ([`nat`]), which answers both.
    #[inline(always)]
    pub fn apply(&self, frame: &mut [u8], p: &mut Parsed) -> bool {
        if !self.write(frame, p) {
            return false;
        }
        p.src =
            crate::parse::widen_v4([self.addrs[0], self.addrs[1], self.addrs[2], self.addrs[3]]);
        p.dst =
            crate::parse::widen_v4([self.addrs[4], self.addrs[5], self.addrs[6], self.addrs[7]]);
        p.sport = u16::from_be_bytes([self.ports[0], self.ports[1]]);
        p.dport = u16::from_be_bytes([self.ports[2], self.ports[3]]);
        true
    }

    /// [`apply`](Self::apply) to the frame alone, `p` left as it was: for a caller that
    /// sends the packet once rewritten and reads its parse no more.
    #[inline(always)]
    pub fn write(&self, frame: &mut [u8], p: &Parsed) -> bool {
        if p.l3 != L3::V4 || p.frag != Frag::None {
            return false;
        }
        self.write_at(frame, usize::from(p.l3_off), usize::from(p.l4_off))
    }

    /// This rewrite with the source address and port given (as they lie in the frame):
    /// for a rewrite that leaves the source as it is (NAT towards the real server), the
    /// same rewrite for another client.
    #[inline(always)]
    pub fn with_source(&self, addrs: u64, ports: u32) -> V4Rewrite {
        let mut w = *self;
        w.addrs[..4].copy_from_slice(&addrs.to_ne_bytes()[..4]);
        w.ports[..2].copy_from_slice(&ports.to_ne_bytes()[..2]);
        w
    }

    /// [`write`](Self::write) to the frame a [`CommonV4`](crate::CommonV4) was read from.
    #[inline(always)]
    pub fn write_common(&self, frame: &mut [u8]) -> bool {
        self.write_at(frame, crate::CommonV4::L3_OFF, crate::CommonV4::L4_OFF)
    }

    /// The rewrite of an IPv4 packet whose header starts at `l3` and whose TCP or UDP
    /// header starts at `l4` in `frame`.
    #[inline(always)]
    fn write_at(&self, frame: &mut [u8], l3: usize, l4: usize) -> bool {
        let header = if self.udp {
            udp::HEADER_LEN
        } else {
            tcp::HEADER_LEN
        };
        if l3 + ipv4::HEADER_LEN > l4 || frame.len() < l4 + header {
            return false;
        }
        let ip = &mut frame[l3..l3 + ipv4::HEADER_LEN];
        let ttl = ip[ipv4::TTL_OFFSET];
        if ttl <= 1 {
            return false;
        }
        let proto = ip[ipv4::TTL_OFFSET + 1];
        ip[ipv4::TTL_OFFSET] = ttl - 1;
        ip[ipv4::SRC_OFFSET..ipv4::DST_OFFSET + 4].copy_from_slice(&self.addrs);
        let ttl_term = u64::from(!u16::from_ne_bytes([ttl, proto]))
            + u64::from(u16::from_ne_bytes([ttl - 1, proto]));
        let at = ipv4::CHECKSUM_OFFSET;
        let c = u16::from_ne_bytes([ip[at], ip[at + 1]]);
        let c = checksum::apply_delta(c, ttl_term + u64::from(self.ip));
        ip[at..at + 2].copy_from_slice(&c.to_ne_bytes());
        write_ports(&mut frame[l4..l4 + header], self.ports, self.l4, self.udp);
        true
    }
}

/// The ports and the L4 checksum of a [`V4Rewrite`] or [`V6Rewrite`], `seg` the TCP or
/// UDP header: the ports written, the checksum updated by the folded terms `l4` (left
/// alone when `None`), with UDP's zero rules as [`nat`]'s.
#[inline(always)]
fn write_ports(seg: &mut [u8], ports: [u8; 4], l4: Option<u16>, udp: bool) {
    seg[..4].copy_from_slice(&ports);
    if let Some(d) = l4 {
        let at = if udp {
            udp::CHECKSUM_OFFSET
        } else {
            tcp::CHECKSUM_OFFSET
        };
        // 0 and 0xFFFF read the same in either byte order.
        let c = u16::from_ne_bytes([seg[at], seg[at + 1]]);
        if !(udp && c == 0) {
            let n = match checksum::apply_delta(c, u64::from(d)) {
                0 if udp => 0xffff,
                v => v,
            };
            seg[at..at + 2].copy_from_slice(&n.to_ne_bytes());
        }
    }
}

/// The ports a [`V4Rewrite`] or [`V6Rewrite`] writes (as they lie in the frame) and their
/// changes' terms for the L4 checksum, in the frame's byte order as `nat` sums them: only
/// for the ports `n` names.
fn port_rewrite(p: &Parsed, n: &NatFields<'_>) -> (u64, [u8; 4]) {
    let half = |old: u16, new: u16| {
        u64::from(!u16::from_ne_bytes(old.to_be_bytes()))
            + u64::from(u16::from_ne_bytes(new.to_be_bytes()))
    };
    let sport = n.src_port.unwrap_or(p.sport);
    let dport = n.dst_port.unwrap_or(p.dport);
    let mut terms = 0u64;
    if n.dst_port.is_some() {
        terms += half(p.dport, dport);
    }
    if n.src_port.is_some() {
        terms += half(p.sport, sport);
    }
    let mut ports = [0u8; 4];
    ports[..2].copy_from_slice(&sport.to_be_bytes());
    ports[2..].copy_from_slice(&dport.to_be_bytes());
    (terms, ports)
}

/// Whether `n` names any field (`nat` leaves the L4 checksum alone otherwise).
fn changes_anything(n: &NatFields<'_>) -> bool {
    n.dst_addr.is_some() || n.src_addr.is_some() || n.dst_port.is_some() || n.src_port.is_some()
}

/// [`V4Rewrite`] for IPv6: what [`nat`] writes into an IPv6 TCP segment or UDP datagram
/// whose header follows the fixed header, worked out once per flow. IPv6 has no header
/// checksum, and the hop limit is not in the pseudo-header: the L4 checksum's terms are
/// the addresses' and ports' alone, summed as `nat_v6_fields` sums them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V6Rewrite {
    /// New source ‖ destination address, as they lie in the frame.
    addrs: [u8; 32],
    /// New source ‖ destination port, as they lie in the frame.
    ports: [u8; 4],
    /// The changes' terms for the TCP/UDP checksum, folded; `None` when nothing it covers
    /// changes.
    l4: Option<u16>,
    udp: bool,
}

impl V6Rewrite {
    /// [`V4Rewrite::with_source`] for IPv6: `addrs` the source ‖ destination addresses
    /// and `ports` the ports as they lie in the frame.
    #[inline(always)]
    pub fn with_source(&self, addrs: &[u8; 32], ports: u32) -> V6Rewrite {
        let mut w = *self;
        w.addrs[..16].copy_from_slice(&addrs[..16]);
        w.ports[..2].copy_from_slice(&ports.to_ne_bytes()[..2]);
        w
    }

    /// The rewrite [`nat`] would make with `n` of a packet parsed as `p`: `None` unless `p`
    /// is an IPv6 TCP or UDP packet that is not a fragment.
    pub fn new(p: &Parsed, n: &NatFields<'_>) -> Option<Self> {
        let udp = match p.l4_proto {
            ip_proto::TCP => false,
            ip_proto::UDP => true,
            _ => return None,
        };
        if p.l3 != L3::V6 || p.frag != Frag::None {
            return None;
        }
        let src = n.src_addr.copied().unwrap_or(p.src);
        let dst = n.dst_addr.copied().unwrap_or(p.dst);
        let words = |old: &[u8; 16], new: &[u8; 16]| -> u64 {
            (0..4)
                .map(|i| {
                    let w = |a: &[u8; 16]| {
                        u32::from_ne_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]])
                    };
                    u64::from(!w(old)) + u64::from(w(new))
                })
                .sum()
        };
        let (mut l4, ports) = port_rewrite(p, n);
        if n.dst_addr.is_some() {
            l4 += words(&p.dst, &dst);
        }
        if n.src_addr.is_some() {
            l4 += words(&p.src, &src);
        }
        let mut addrs = [0u8; 32];
        addrs[..16].copy_from_slice(&src);
        addrs[16..].copy_from_slice(&dst);
        Some(Self {
            addrs,
            ports,
            l4: changes_anything(n).then_some(checksum::fold(l4)),
            udp,
        })
    }

    /// Whether `p` has the addresses, ports and protocol this rewrite writes (see
    /// [`V4Rewrite::wrote`]).
    pub fn wrote(&self, p: &Parsed) -> bool {
        let proto = if self.udp {
            ip_proto::UDP
        } else {
            ip_proto::TCP
        };
        p.l3 == L3::V6
            && p.l4_proto == proto
            && p.src[..] == self.addrs[..16]
            && p.dst[..] == self.addrs[16..]
            && p.sport.to_be_bytes() == self.ports[..2]
            && p.dport.to_be_bytes() == self.ports[2..]
    }

    /// Rewrites the frame a [`CommonV6`](crate::CommonV6) was read from, of the flow `self`
    /// was made for: the hop limit decremented, the addresses and ports written, the L4
    /// checksum updated (UDP's zero rules as [`nat`]'s). `false`: nothing written, because
    /// the hop limit would reach 0 or the frame is too short.
    #[inline(always)]
    pub fn write_common(&self, frame: &mut [u8]) -> bool {
        const L3: usize = crate::CommonV6::L3_OFF;
        const L4: usize = crate::CommonV6::L4_OFF;
        let header = if self.udp {
            udp::HEADER_LEN
        } else {
            tcp::HEADER_LEN
        };
        if frame.len() < L4 + header {
            return false;
        }
        let hop = frame[L3 + ipv6::HOP_LIMIT_OFFSET];
        if hop <= 1 {
            return false;
        }
        frame[L3 + ipv6::HOP_LIMIT_OFFSET] = hop - 1;
        frame[L3 + ipv6::SRC_OFFSET..L3 + ipv6::SRC_OFFSET + 32].copy_from_slice(&self.addrs);
        write_ports(&mut frame[L4..L4 + header], self.ports, self.l4, self.udp);
        true
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

    /// `nat_v4_tcp` and `nat_v4_udp` against `decrement_ttl` and the `set_*` calls one by
    /// one, in both orders the forwarding code uses, over random TCP segments and UDP
    /// datagrams: every checksum value (0 and 0xFFFF included: UDP's "no checksum" and its
    /// written zero), addresses, ports, TTLs (1 and 2 included), any subset of the fields.
    #[test]
    fn nat_v4_tcp_matches_the_field_by_field_rewrite() {
        nat_v4_matches_in(false);
    }

    #[test]
    fn nat_v4_udp_matches_the_field_by_field_rewrite() {
        nat_v4_matches_in(true);
    }

    /// The field-by-field rewrite a one-pass one must equal: `decrement_ttl`, then the
    /// `set_*` calls, the destination's before or after the source's (the forwarding code
    /// uses both orders).
    fn field_by_field(
        frame: &[u8],
        mut p: Parsed,
        n: &NatFields<'_>,
        dst_first: bool,
    ) -> (bool, Vec<u8>, Parsed) {
        let mut f = frame.to_vec();
        let ok = decrement_ttl(&mut f, &p);
        if ok {
            let dst = |f: &mut Vec<u8>, p: &mut Parsed| {
                if let Some(a) = n.dst_addr {
                    set_dst_addr(f, p, a);
                }
                if let Some(v) = n.dst_port {
                    set_dst_port(f, p, v);
                }
            };
            if dst_first {
                dst(&mut f, &mut p);
            }
            if let Some(a) = n.src_addr {
                set_src_addr(&mut f, &mut p, a);
            }
            if let Some(v) = n.src_port {
                set_src_port(&mut f, &mut p, v);
            }
            if !dst_first {
                dst(&mut f, &mut p);
            }
        }
        (ok, f, p)
    }

    /// Rewrites `frame` with `one_pass` and with [`field_by_field`] in both orders and
    /// checks that bytes, `p` and the outcome agree, for the fields `pick`'s low bits choose
    /// (destination `a1`, source `a2`; in every ninth round `i` the destination port is the
    /// one the packet already has). Returns whether the TTL allowed the rewrite.
    fn one_pass_is_field_by_field(
        one_pass: fn(&mut [u8], &mut Parsed, &NatFields<'_>) -> Option<bool>,
        frame: &[u8],
        p: Parsed,
        i: u32,
        pick: u64,
        a1: &[u8; 16],
        a2: &[u8; 16],
    ) -> bool {
        let n = NatFields {
            dst_addr: (pick & 1 != 0).then_some(a1),
            dst_port: (pick & 2 != 0).then_some(match i % 9 {
                0 => p.dport,
                _ => (pick >> 8) as u16,
            }),
            src_addr: (pick & 4 != 0).then_some(a2),
            src_port: (pick & 8 != 0).then_some((pick >> 24) as u16),
        };
        let (mut f1, mut p1) = (frame.to_vec(), p);
        let ok = one_pass(&mut f1, &mut p1, &n).unwrap();
        // The same rewrite worked out once and applied (IPv4 only).
        if let Some(rw) = V4Rewrite::new(&p, &n) {
            let (mut f3, mut p3) = (frame.to_vec(), p);
            assert_eq!(rw.apply(&mut f3, &mut p3), ok, "round {i}");
            if ok {
                assert_eq!((&f3, p3), (&f1, p1), "round {i}");
                assert!(rw.wrote(&p3), "round {i}");
                assert!(!rw.wrote(&p) || rw.wrote(&p1) && p == p1, "round {i}");
            } else {
                assert_eq!(f3, frame, "round {i}: nothing written");
            }
        }
        // IPv6's, on the common frame (the TCP/UDP header right after the fixed header).
        if let Some(rw) = V6Rewrite::new(&p, &n) {
            assert_eq!(usize::from(p.l4_off), crate::CommonV6::L4_OFF);
            let mut f3 = frame.to_vec();
            assert_eq!(rw.write_common(&mut f3), ok, "round {i}");
            if ok {
                assert_eq!(f3, f1, "round {i}");
                assert!(rw.wrote(&p1), "round {i}");
                assert!(!rw.wrote(&p) || p == p1, "round {i}");
            } else {
                assert_eq!(f3, frame, "round {i}: nothing written");
            }
        }
        for dst_first in [true, false] {
            let (ok2, f2, p2) = field_by_field(frame, p, &n, dst_first);
            assert_eq!(ok, ok2, "round {i}");
            assert_eq!(f1, f2, "round {i}");
            assert_eq!(p1, p2, "round {i}");
        }
        ok
    }

    /// An IPv6 TCP segment (4 bytes of payload) or UDP datagram, checksums left 0 (the
    /// random test below writes its own).
    fn v6_l4(udp: bool) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];
        let l4: Vec<u8> = if udp {
            vec![0x30, 0x39, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4]
        } else {
            vec![
                0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0, 1,
                2, 3, 4,
            ]
        };
        f.extend_from_slice(&[
            0x60,
            0,
            0,
            0,
            0,
            l4.len() as u8,
            if udp { 17 } else { 6 },
            64,
        ]);
        f.extend_from_slice(&[0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend_from_slice(&[0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 1]);
        f.extend_from_slice(&l4);
        f
    }

    /// `nat_v6_tcp` and `nat_v6_udp` against the field-by-field path in both orders, as for
    /// IPv4 below.
    #[test]
    fn nat_v6_tcp_and_udp_match_the_field_by_field_rewrite() {
        for udp in [false, true] {
            let mut next = crate::xorshift(0x9e37_79b9_7f4a_7c15 ^ u64::from(udp));
            let mut frame = v6_l4(udp);
            let base = parse_frame(&frame).unwrap();
            assert_eq!((base.l3, base.l4_off), (L3::V6, 54));
            let l4_csum = 54 + if udp { 6 } else { 16 };
            let mut seen_hop_out = false;
            for i in 0..100_000u32 {
                let x = next();
                frame[21] = match i % 16 {
                    0 => 1,
                    1 => 2,
                    _ => (x >> 56) as u8,
                };
                frame[l4_csum..l4_csum + 2].copy_from_slice(&match i % 5 {
                    0 => [0, 0],
                    1 => [0xff, 0xff],
                    _ => (x as u16).to_be_bytes(),
                });
                for w in frame[22..54].chunks_mut(8) {
                    w.copy_from_slice(&next().to_ne_bytes());
                }
                frame[54..58].copy_from_slice(&((x >> 24) as u32).to_be_bytes());
                let mut p = base;
                p.src.copy_from_slice(&frame[22..38]);
                p.dst.copy_from_slice(&frame[38..54]);
                p.sport = u16::from_be_bytes([frame[54], frame[55]]);
                p.dport = u16::from_be_bytes([frame[56], frame[57]]);
                let mut a1 = [0u8; 16];
                a1[..8].copy_from_slice(&next().to_ne_bytes());
                a1[8..].copy_from_slice(&next().to_ne_bytes());
                let a2 = if i % 11 == 0 {
                    p.src
                } else {
                    a1.map(|b| !b.rotate_left(3))
                };
                let one_pass = if udp { nat_v6_udp } else { nat_v6_tcp };
                let ok = one_pass_is_field_by_field(one_pass, &frame, p, i, next(), &a1, &a2);
                seen_hop_out |= !ok;
            }
            assert!(seen_hop_out);
        }
    }

    /// IPv6 packets the one-pass rewrite leaves to the field-by-field path: an extension
    /// header before the L4 header, a frame shorter than the L4 header, an IPv4 packet.
    #[test]
    fn nat_v6_declines_other_packets() {
        let a = [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
        let n = NatFields {
            dst_addr: Some(&a),
            ..NatFields::default()
        };
        let mut f = v6_l4(false);
        let base = parse_frame(&f).unwrap();
        let before = f.clone();
        let mut p = base;
        p.l4_off += 8;
        assert_eq!(nat_v6_tcp(&mut f, &mut p, &n), None, "an extension header");
        let mut p = base;
        assert_eq!(nat_v6_tcp(&mut f[..70], &mut p, &n), None, "short");
        assert_eq!(nat_v6_udp(&mut f, &mut p, &n), None, "TCP, not UDP");
        let mut g = v4_udp(true);
        let mut q = parse_frame(&g).unwrap();
        assert_eq!(nat_v6_udp(&mut g, &mut q, &n), None, "IPv4");
        assert_eq!(f, before);
    }

    fn nat_v4_matches_in(udp: bool) {
        let mut next = crate::xorshift(0x2545_f491_4f6c_dd1du64);
        let mut frame = if udp {
            v4_udp(true)
        } else {
            let mut f = vec![
                2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00, // Ethernet
                0x45, 0, 0, 44, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 2, 198, 18, 100,
                1, // IPv4
                0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x10, 0xff, 0xff, 0, 0, 0,
                0, // TCP
                1, 2, 3, 4, // payload
            ];
            crate::Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
            f
        };
        let l4_csum = 34 + if udp { 6 } else { 16 };
        let base = parse_frame(&frame).unwrap();
        let mut seen_ttl_out = false;
        for i in 0..200_000u32 {
            let x = next();
            let y = next();
            frame[22] = match i % 16 {
                0 => 1,
                1 => 2,
                _ => (x >> 56) as u8,
            };
            frame[24..26].copy_from_slice(&match i % 7 {
                0 => [0, 0],
                1 => [0xff, 0xff],
                _ => (x as u16).to_be_bytes(),
            });
            frame[l4_csum..l4_csum + 2].copy_from_slice(&match i % 5 {
                0 => [0, 0],
                1 => [0xff, 0xff],
                _ => ((x >> 16) as u16).to_be_bytes(),
            });
            frame[26..34].copy_from_slice(&y.to_be_bytes());
            frame[34..38].copy_from_slice(&((x >> 24) as u32).to_be_bytes());
            let mut p = base;
            p.src = crate::parse::widen_v4([frame[26], frame[27], frame[28], frame[29]]);
            p.dst = crate::parse::widen_v4([frame[30], frame[31], frame[32], frame[33]]);
            p.sport = u16::from_be_bytes([frame[34], frame[35]]);
            p.dport = u16::from_be_bytes([frame[36], frame[37]]);
            let z = next();
            let a1 = crate::parse::widen_v4((z as u32).to_be_bytes());
            let a2 = match i % 11 {
                0 => p.src,
                _ => crate::parse::widen_v4(((z >> 32) as u32).to_be_bytes()),
            };
            let one_pass = if udp { nat_v4_udp } else { nat_v4_tcp };
            let ok = one_pass_is_field_by_field(one_pass, &frame, p, i, next(), &a1, &a2);
            seen_ttl_out |= !ok;
        }
        assert!(seen_ttl_out);
    }

    /// `V4Rewrite` is made only for IPv4 TCP and UDP packets that are not fragments, and
    /// declines (writing nothing) a `Parsed` that does not fit the frame.
    #[test]
    fn v4_rewrite_declines_other_packets() {
        let a = [198, 18, 1, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let n = NatFields {
            dst_addr: Some(&a),
            ..NatFields::default()
        };
        let f = v4_udp(true);
        let base = parse_frame(&f).unwrap();
        let rw = V4Rewrite::new(&base, &n).expect("IPv4 UDP");
        let mut p = base;
        p.l4_proto = ip_proto::SCTP;
        assert_eq!(V4Rewrite::new(&p, &n), None, "SCTP");
        let mut p = base;
        p.frag = Frag::First { id: 1 };
        assert_eq!(V4Rewrite::new(&p, &n), None, "a fragment");
        let v6 = v6_l4(true);
        assert_eq!(V4Rewrite::new(&parse_frame(&v6).unwrap(), &n), None, "IPv6");
        let mut g = f.clone();
        let mut p = base;
        assert!(!rw.apply(&mut g[..40], &mut p), "shorter than a UDP header");
        let mut p = base;
        p.l4_off = 30;
        assert!(!rw.apply(&mut g, &mut p), "L4 inside the IPv4 header");
        assert_eq!(g, f);
        let mut p = base;
        assert!(rw.apply(&mut g, &mut p));
        assert_eq!(&g[30..34], &a[..4]);
    }

    /// A rewrite that leaves the source alone, made from one client's packet and given
    /// another client's source ([`V4Rewrite::with_source`]), writes that client's packet as
    /// a rewrite made from its own packet does: random sources, checksums (0 and 0xFFFF
    /// included), TTLs, destination port changed or not, TCP and UDP.
    #[test]
    fn with_source_writes_what_a_rewrite_of_that_packet_writes() {
        let mut next = crate::xorshift(0x9e37_79b9_7f4a_7c15);
        let real = [198, 18, 1, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        for udp in [false, true] {
            let mut frame = v4_udp(true);
            if !udp {
                frame = vec![
                    2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00, // Ethernet
                    0x45, 0, 0, 44, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 2, 198, 18, 100,
                    1, // IPv4
                    0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x10, 0xff, 0xff, 0, 0, 0,
                    0, // TCP
                    1, 2, 3, 4, // payload
                ];
                crate::Ipv4Packet::new_unchecked(&mut frame[14..34]).fill_checksum();
            }
            let l4_csum = 34 + if udp { 6 } else { 16 };
            let first = parse_frame(&frame).unwrap();
            for i in 0..20_000u32 {
                let n = NatFields {
                    dst_addr: Some(&real),
                    dst_port: (i % 2 == 0).then_some(8080),
                    ..NatFields::default()
                };
                let class = V4Rewrite::new(&first, &n).unwrap();
                let (x, y) = (next(), next());
                let mut f = frame.clone();
                f[22] = 2 + (x >> 56) as u8 % 200;
                f[26..30].copy_from_slice(&(y as u32).to_be_bytes());
                f[34..36].copy_from_slice(&((x >> 8) as u16).to_be_bytes());
                f[l4_csum..l4_csum + 2].copy_from_slice(&match i % 5 {
                    0 if !udp => [0, 0],
                    1 => [0xff, 0xff],
                    _ => ((x >> 24) as u16).to_be_bytes(),
                });
                f[24..26].fill(0);
                crate::Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
                let p = parse_frame(&f).unwrap();
                let own = V4Rewrite::new(&p, &n).unwrap();
                let c = crate::CommonV4::read(&f).unwrap();
                assert_eq!(class.with_source(c.addrs, c.ports), own, "round {i}");
                let (mut a, mut b) = (f.clone(), f.clone());
                assert!(class.with_source(c.addrs, c.ports).write_common(&mut a));
                assert!(own.write_common(&mut b));
                assert_eq!(a, b, "round {i}");
            }
        }
    }

    /// [`V6Rewrite::with_source`]: as
    /// `with_source_writes_what_a_rewrite_of_that_packet_writes` for IPv4 (the IPv6 header
    /// has no checksum; the L4 one may be anything but, for UDP, 0).
    #[test]
    fn v6_with_source_writes_what_a_rewrite_of_that_packet_writes() {
        let mut next = crate::xorshift(0x2545_f491_4f6c_dd1d);
        let real = [0x20, 0x01, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x11];
        for udp in [false, true] {
            let frame = v6_l4(udp);
            let l4_csum = 54 + if udp { 6 } else { 16 };
            let first = parse_frame(&frame).unwrap();
            for i in 0..20_000u32 {
                let n = NatFields {
                    dst_addr: Some(&real),
                    dst_port: (i % 2 == 0).then_some(8080),
                    ..NatFields::default()
                };
                let class = V6Rewrite::new(&first, &n).unwrap();
                let (x, y, z) = (next(), next(), next());
                let mut f = frame.clone();
                f[21] = 2 + (x >> 56) as u8 % 200;
                f[22..30].copy_from_slice(&y.to_be_bytes());
                f[30..38].copy_from_slice(&z.to_be_bytes());
                f[54..56].copy_from_slice(&((x >> 8) as u16).to_be_bytes());
                f[l4_csum..l4_csum + 2].copy_from_slice(&match i % 5 {
                    0 if !udp => [0, 0],
                    1 => [0xff, 0xff],
                    _ => ((x >> 24) as u16 | 1).to_be_bytes(),
                });
                let p = parse_frame(&f).unwrap();
                let own = V6Rewrite::new(&p, &n).unwrap();
                let c = crate::CommonV6::read(&f).unwrap();
                assert_eq!(class.with_source(&c.addrs, c.ports), own, "round {i}");
                let (mut a, mut b) = (f.clone(), f.clone());
                assert!(class.with_source(&c.addrs, c.ports).write_common(&mut a));
                assert!(own.write_common(&mut b));
                assert_eq!(a, b, "round {i}");
            }
        }
    }

    /// Not an IPv4 TCP segment (UDP datagram), or a `Parsed` that does not fit the frame: not
    /// handled, nothing written.
    #[test]
    fn nat_v4_declines_other_packets() {
        let a = [198, 18, 1, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let n = NatFields {
            dst_addr: Some(&a),
            ..NatFields::default()
        };
        let mut f = v4_udp(true);
        let base = parse_frame(&f).unwrap();
        let before = f.clone();
        let mut p = base;
        assert_eq!(nat_v4_tcp(&mut f, &mut p, &n), None);
        p.l4_proto = ip_proto::SCTP;
        assert_eq!(nat_v4_udp(&mut f, &mut p, &n), None);
        p.l4_proto = ip_proto::TCP;
        assert_eq!(
            nat_v4_tcp(&mut f, &mut p, &n),
            None,
            "shorter than a TCP header"
        );
        let mut p = base;
        assert_eq!(
            nat_v4_udp(&mut f[..40], &mut p, &n),
            None,
            "shorter than a UDP header"
        );
        p.frag = Frag::First { id: 1 };
        assert_eq!(nat_v4_udp(&mut f, &mut p, &n), None, "a fragment");
        let mut p = base;
        p.l4_off = 1000;
        assert_eq!(nat_v4_udp(&mut f, &mut p, &n), None);
        assert_eq!(f, before);
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
