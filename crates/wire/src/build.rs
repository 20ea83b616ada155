//! Whole-frame builders for the slow path: ARP and NDP for VIPs and next hops, echo replies,
//! and the "packet too big" errors a tunnelling balancer must send when encapsulation would
//! exceed the path MTU (IPVS `ip_vs_tunnel_xmit` → `icmp_send(ICMP_FRAG_NEEDED)` /
//! `icmpv6_send(ICMPV6_PKT_TOOBIG)`).
//!
//! Every builder writes into a caller-provided buffer and returns the frame length; replies
//! keep the VLAN tag of the frame they answer.

use crate::arp::{operation, ArpRepr};
use crate::ethernet::{ethertype, parse_l2, EthernetRepr};
use crate::icmpv4::{self, unreach_code, Icmpv4Repr};
use crate::icmpv6::{self, msg_type, na_flags, Icmpv6Repr};
use crate::ip_proto;
use crate::parse::{Parsed, L3};
use crate::{EthernetFrame, Ipv4Repr, Ipv6Repr};

/// Why a frame could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum BuildError {
    /// The output buffer is too small.
    #[error("output buffer too small")]
    NoRoom,
    /// The frame to answer is not of the kind this builder answers (e.g. an ARP reply given
    /// to `arp_reply`, an echo reply given to `icmp_echo_reply`).
    #[error("frame is not of the kind this builder answers")]
    NotApplicable,
}

/// Hop limit for NDP messages (RFC 4861 §7.1.1: receivers drop anything else).
pub const NDP_HOP_LIMIT: u8 = 255;
/// TTL / hop limit of locally originated packets (Linux default).
pub const DEFAULT_TTL: u8 = 64;
/// RFC 1812 §4.3.2.3: an ICMPv4 error should not exceed 576 bytes.
pub const ICMPV4_ERROR_MAX: usize = 576;
/// RFC 4443 §2.4(c): an ICMPv6 error must not exceed the minimum IPv6 MTU.
pub const ICMPV6_ERROR_MAX: usize = 1280;

const ALL_NODES: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

fn eth(
    out: &mut [u8],
    src: [u8; 6],
    dst: [u8; 6],
    ty: u16,
    vlan: Option<u16>,
) -> Result<usize, BuildError> {
    EthernetRepr {
        src,
        dst,
        ethertype: ty,
        vlan,
    }
    .emit(out)
    .ok_or(BuildError::NoRoom)
}

/// Answers an ARP request for an address we own with a reply from `our_mac`. The caller has
/// checked that the target protocol address is one of ours.
pub fn arp_reply(request: &[u8], our_mac: [u8; 6], out: &mut [u8]) -> Result<usize, BuildError> {
    let l2 = parse_l2(request).map_err(|_| BuildError::NotApplicable)?;
    if l2.ethertype != ethertype::ARP {
        return Err(BuildError::NotApplicable);
    }
    let req = match ArpRepr::parse(&request[l2.l3_off..]) {
        Ok(Some(r)) if r.operation == operation::REQUEST => r,
        _ => return Err(BuildError::NotApplicable),
    };
    let reply = req.reply(our_mac);
    let h = eth(
        out,
        our_mac,
        req.source_hardware_addr,
        ethertype::ARP,
        l2.vlan,
    )?;
    let n = reply
        .emit(out.get_mut(h..).ok_or(BuildError::NoRoom)?)
        .ok_or(BuildError::NoRoom)?;
    Ok(h + n)
}

/// A broadcast ARP request for `target_ip`.
pub fn arp_request(
    our_mac: [u8; 6],
    our_ip: [u8; 4],
    target_ip: [u8; 4],
    vlan: Option<u16>,
    out: &mut [u8],
) -> Result<usize, BuildError> {
    let h = eth(out, our_mac, [0xff; 6], ethertype::ARP, vlan)?;
    let req = ArpRepr::request(our_mac, our_ip, target_ip);
    let n = req
        .emit(out.get_mut(h..).ok_or(BuildError::NoRoom)?)
        .ok_or(BuildError::NoRoom)?;
    Ok(h + n)
}

fn ipv6_icmp(
    out: &mut [u8],
    h: usize,
    src: &[u8; 16],
    dst: &[u8; 16],
    hop_limit: u8,
    msg: &Icmpv6Repr<'_>,
) -> Result<usize, BuildError> {
    let len = msg.buffer_len();
    let repr = Ipv6Repr {
        src: *src,
        dst: *dst,
        next_header: ip_proto::ICMPV6,
        payload_len: u16::try_from(len).map_err(|_| BuildError::NoRoom)?,
        hop_limit,
        traffic_class: 0,
        flow_label: 0,
    };
    let ip = out.get_mut(h..).ok_or(BuildError::NoRoom)?;
    repr.emit(ip).ok_or(BuildError::NoRoom)?;
    let body = ip
        .get_mut(crate::ipv6::HEADER_LEN..)
        .ok_or(BuildError::NoRoom)?;
    let n = msg.emit(src, dst, body).ok_or(BuildError::NoRoom)?;
    Ok(h + crate::ipv6::HEADER_LEN + n)
}

fn ipv4_icmp(
    out: &mut [u8],
    h: usize,
    src: [u8; 4],
    dst: [u8; 4],
    msg: &Icmpv4Repr<'_>,
) -> Result<usize, BuildError> {
    let len = msg.buffer_len();
    let repr = Ipv4Repr {
        src,
        dst,
        protocol: ip_proto::ICMP,
        payload_len: u16::try_from(len).map_err(|_| BuildError::NoRoom)?,
        ttl: DEFAULT_TTL,
        dscp_ecn: 0,
        ident: 0,
        dont_frag: true,
    };
    let ip = out.get_mut(h..).ok_or(BuildError::NoRoom)?;
    repr.emit(ip).ok_or(BuildError::NoRoom)?;
    let body = ip
        .get_mut(crate::ipv4::HEADER_LEN..)
        .ok_or(BuildError::NoRoom)?;
    let n = msg.emit(body).ok_or(BuildError::NoRoom)?;
    Ok(h + crate::ipv4::HEADER_LEN + n)
}

/// A neighbour solicitation for `target` from `our_ip`, to its solicited-node multicast
/// address, with our link-layer address (RFC 4861 §7.2.2).
pub fn ndp_neighbor_solicit(
    our_mac: [u8; 6],
    our_ip: &[u8; 16],
    target: &[u8; 16],
    vlan: Option<u16>,
    out: &mut [u8],
) -> Result<usize, BuildError> {
    let dst_ip = icmpv6::solicited_node(target);
    let h = eth(
        out,
        our_mac,
        icmpv6::multicast_mac(&dst_ip),
        ethertype::IPV6,
        vlan,
    )?;
    let ns = Icmpv6Repr::NeighborSolicit {
        target: *target,
        lladdr: Some(our_mac),
    };
    ipv6_icmp(out, h, our_ip, &dst_ip, NDP_HOP_LIMIT, &ns)
}

/// Answers a neighbour solicitation (`frame`, classified as `p`) for an address we own with a
/// solicited advertisement from the target address (RFC 4861 §7.2.4). A solicitation from the
/// unspecified address (duplicate address detection) is answered to all-nodes without the
/// solicited flag. NDP with a hop limit other than 255 is refused (§7.1.1).
pub fn ndp_neighbor_advert(
    frame: &[u8],
    p: &Parsed,
    our_mac: [u8; 6],
    out: &mut [u8],
) -> Result<usize, BuildError> {
    if p.l3 != L3::V6 || p.l4_proto != ip_proto::ICMPV6 || p.is_fragment() {
        return Err(BuildError::NotApplicable);
    }
    let l3 = usize::from(p.l3_off);
    if frame.get(l3 + 7) != Some(&NDP_HOP_LIMIT) {
        return Err(BuildError::NotApplicable);
    }
    let body = frame
        .get(usize::from(p.l4_off)..p.l3_end())
        .ok_or(BuildError::NotApplicable)?;
    let target = match Icmpv6Repr::parse(body, &p.src, &p.dst) {
        Ok(Some(Icmpv6Repr::NeighborSolicit { target, .. })) => target,
        _ => return Err(BuildError::NotApplicable),
    };
    let l2 = parse_l2(frame).map_err(|_| BuildError::NotApplicable)?;
    let dad = p.src == [0; 16];
    let (dst_ip, flags) = if dad {
        (ALL_NODES, na_flags::OVERRIDE)
    } else {
        (p.src, na_flags::SOLICITED | na_flags::OVERRIDE)
    };
    let dst_mac = if dad {
        icmpv6::multicast_mac(&ALL_NODES)
    } else {
        EthernetFrame::new_unchecked(frame).src_addr()
    };
    let h = eth(out, our_mac, dst_mac, ethertype::IPV6, l2.vlan)?;
    let na = Icmpv6Repr::NeighborAdvert {
        flags,
        target,
        lladdr: Some(our_mac),
    };
    ipv6_icmp(out, h, &target, &dst_ip, NDP_HOP_LIMIT, &na)
}

/// A gratuitous ARP announcing that `ip` is at `our_mac` (RFC 5227 §3 "ARP Announcement"):
/// a broadcast request whose sender and target protocol addresses are both `ip` and whose
/// target hardware address is zero. Neighbours that hold an entry for `ip` replace its MAC
/// (Linux overrides even a fresh entry for a gratuitous request), which is how a VIP moves
/// to a new balancer without waiting for caches to expire.
pub fn gratuitous_arp(
    our_mac: [u8; 6],
    ip: [u8; 4],
    vlan: Option<u16>,
    out: &mut [u8],
) -> Result<usize, BuildError> {
    let h = eth(out, our_mac, [0xff; 6], ethertype::ARP, vlan)?;
    let n = ArpRepr::request(our_mac, ip, ip)
        .emit(out.get_mut(h..).ok_or(BuildError::NoRoom)?)
        .ok_or(BuildError::NoRoom)?;
    Ok(h + n)
}

/// An unsolicited neighbour advertisement for `target` (RFC 4861 §7.2.6): to all-nodes, from
/// the target address itself, Override set and Solicited clear, with our link-layer address,
/// so neighbours replace the MAC they have for `target`.
pub fn unsolicited_neighbor_advert(
    our_mac: [u8; 6],
    target: &[u8; 16],
    vlan: Option<u16>,
    out: &mut [u8],
) -> Result<usize, BuildError> {
    let h = eth(
        out,
        our_mac,
        icmpv6::multicast_mac(&ALL_NODES),
        ethertype::IPV6,
        vlan,
    )?;
    let na = Icmpv6Repr::NeighborAdvert {
        flags: na_flags::OVERRIDE,
        target: *target,
        lladdr: Some(our_mac),
    };
    ipv6_icmp(out, h, target, &ALL_NODES, NDP_HOP_LIMIT, &na)
}

/// Answers an ICMP/ICMPv6 echo request addressed to us with an echo reply carrying the same
/// identifier, sequence number and data, MACs and addresses swapped.
pub fn icmp_echo_reply(request: &[u8], p: &Parsed, out: &mut [u8]) -> Result<usize, BuildError> {
    if p.is_fragment() {
        return Err(BuildError::NotApplicable);
    }
    let l2 = parse_l2(request).map_err(|_| BuildError::NotApplicable)?;
    let e = EthernetFrame::new_unchecked(request);
    let body = request
        .get(usize::from(p.l4_off)..p.l3_end())
        .ok_or(BuildError::NotApplicable)?;
    match (p.l3, p.l4_proto) {
        (L3::V4, ip_proto::ICMP) => {
            let (ident, seq_no, data) = match Icmpv4Repr::parse(body) {
                Ok(Some(Icmpv4Repr::EchoRequest {
                    ident,
                    seq_no,
                    data,
                })) => (ident, seq_no, data),
                _ => return Err(BuildError::NotApplicable),
            };
            let h = eth(out, e.dst_addr(), e.src_addr(), ethertype::IPV4, l2.vlan)?;
            ipv4_icmp(
                out,
                h,
                p.dst_v4(),
                p.src_v4(),
                &Icmpv4Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                },
            )
        }
        (L3::V6, ip_proto::ICMPV6) => {
            let (ident, seq_no, data) = match Icmpv6Repr::parse(body, &p.src, &p.dst) {
                Ok(Some(Icmpv6Repr::EchoRequest {
                    ident,
                    seq_no,
                    data,
                })) => (ident, seq_no, data),
                _ => return Err(BuildError::NotApplicable),
            };
            let h = eth(out, e.dst_addr(), e.src_addr(), ethertype::IPV6, l2.vlan)?;
            let reply = Icmpv6Repr::EchoReply {
                ident,
                seq_no,
                data,
            };
            ipv6_icmp(out, h, &p.dst, &p.src, DEFAULT_TTL, &reply)
        }
        _ => Err(BuildError::NotApplicable),
    }
}

/// True when an error must not be sent about this packet: it is itself an ICMP error (RFC
/// 1122 §3.2.2 / RFC 4443 §2.4(e)) or a later fragment.
fn must_not_answer(frame: &[u8], p: &Parsed) -> bool {
    if !p.has_l4_header() {
        return true;
    }
    let ty = frame.get(usize::from(p.l4_off)).copied();
    match (p.l3, p.l4_proto) {
        (L3::V4, ip_proto::ICMP) => ty.is_none_or(icmpv4::is_error),
        (L3::V6, ip_proto::ICMPV6) => ty.is_none_or(|t| t < msg_type::ECHO_REQUEST),
        _ => false,
    }
}

/// ICMP "fragmentation needed and DF set" (type 3 code 4, RFC 1191) from `our_ip` to the
/// sender of `offending` (classified as `p`), quoting as much of the offending packet as keeps
/// the error within 576 bytes (RFC 1812 §4.3.2.3).
pub fn icmpv4_frag_needed(
    offending: &[u8],
    p: &Parsed,
    our_ip: [u8; 4],
    mtu: u16,
    out: &mut [u8],
) -> Result<usize, BuildError> {
    icmpv4_error(offending, p, our_ip, out, |data| {
        Icmpv4Repr::DstUnreachable {
            code: unreach_code::FRAG_NEEDED,
            next_hop_mtu: mtu,
            data,
        }
    })
}

/// ICMP time exceeded, TTL exceeded in transit (type 11 code 0, RFC 792), from `our_ip` to
/// the sender of `offending`, quoting as `icmpv4_frag_needed` does.
pub fn icmpv4_time_exceeded(
    offending: &[u8],
    p: &Parsed,
    our_ip: [u8; 4],
    out: &mut [u8],
) -> Result<usize, BuildError> {
    icmpv4_error(offending, p, our_ip, out, |data| Icmpv4Repr::TimeExceeded {
        code: 0,
        data,
    })
}

/// ICMP port unreachable (type 3 code 3, RFC 792) from `our_ip` to the sender of
/// `offending`, quoting as `icmpv4_frag_needed` does: IPVS's answer to a new connection
/// no real server can take (`ip_vs_leave`).
pub fn icmpv4_port_unreachable(
    offending: &[u8],
    p: &Parsed,
    our_ip: [u8; 4],
    out: &mut [u8],
) -> Result<usize, BuildError> {
    icmpv4_error(offending, p, our_ip, out, |data| {
        Icmpv4Repr::DstUnreachable {
            code: unreach_code::PORT,
            next_hop_mtu: 0,
            data,
        }
    })
}

/// An ICMP error `msg` (given the quoted bytes) from `our_ip` to the sender of `offending`.
fn icmpv4_error<'a>(
    offending: &'a [u8],
    p: &Parsed,
    our_ip: [u8; 4],
    out: &mut [u8],
    msg: impl FnOnce(&'a [u8]) -> Icmpv4Repr<'a>,
) -> Result<usize, BuildError> {
    if p.l3 != L3::V4 || must_not_answer(offending, p) {
        return Err(BuildError::NotApplicable);
    }
    let l2 = parse_l2(offending).map_err(|_| BuildError::NotApplicable)?;
    let e = EthernetFrame::new_unchecked(offending);
    let quote_max = ICMPV4_ERROR_MAX - crate::ipv4::HEADER_LEN - icmpv4::HEADER_LEN;
    let end = p.l3_end().min(usize::from(p.l3_off) + quote_max);
    let data = offending
        .get(usize::from(p.l3_off)..end)
        .ok_or(BuildError::NotApplicable)?;
    let h = eth(out, e.dst_addr(), e.src_addr(), ethertype::IPV4, l2.vlan)?;
    ipv4_icmp(out, h, our_ip, p.src_v4(), &msg(data))
}

/// ICMPv6 packet too big (RFC 4443 §3.2) from `our_ip` to the sender of `offending`, quoting
/// as much as keeps the error within 1280 bytes.
pub fn icmpv6_packet_too_big(
    offending: &[u8],
    p: &Parsed,
    our_ip: &[u8; 16],
    mtu: u32,
    out: &mut [u8],
) -> Result<usize, BuildError> {
    icmpv6_error(offending, p, our_ip, out, |data| Icmpv6Repr::PacketTooBig {
        mtu,
        data,
    })
}

/// ICMPv6 time exceeded, hop limit exceeded in transit (type 3 code 0, RFC 4443 §3.3),
/// from `our_ip` to the sender of `offending`, quoting as `icmpv6_packet_too_big` does.
pub fn icmpv6_time_exceeded(
    offending: &[u8],
    p: &Parsed,
    our_ip: &[u8; 16],
    out: &mut [u8],
) -> Result<usize, BuildError> {
    icmpv6_error(offending, p, our_ip, out, |data| Icmpv6Repr::TimeExceeded {
        code: 0,
        data,
    })
}

/// ICMPv6 port unreachable (type 1 code 4, RFC 4443 §3.1) from `our_ip` to the sender of
/// `offending`, quoting as `icmpv6_packet_too_big` does.
pub fn icmpv6_port_unreachable(
    offending: &[u8],
    p: &Parsed,
    our_ip: &[u8; 16],
    out: &mut [u8],
) -> Result<usize, BuildError> {
    icmpv6_error(offending, p, our_ip, out, |data| {
        Icmpv6Repr::DstUnreachable {
            code: crate::icmpv6::unreach_code::PORT,
            data,
        }
    })
}

/// An ICMPv6 error `msg` (given the quoted bytes) from `our_ip` to the sender of
/// `offending`.
fn icmpv6_error<'a>(
    offending: &'a [u8],
    p: &Parsed,
    our_ip: &[u8; 16],
    out: &mut [u8],
    msg: impl FnOnce(&'a [u8]) -> Icmpv6Repr<'a>,
) -> Result<usize, BuildError> {
    if p.l3 != L3::V6 || must_not_answer(offending, p) {
        return Err(BuildError::NotApplicable);
    }
    let l2 = parse_l2(offending).map_err(|_| BuildError::NotApplicable)?;
    let e = EthernetFrame::new_unchecked(offending);
    let quote_max = ICMPV6_ERROR_MAX - crate::ipv6::HEADER_LEN - icmpv6::HEADER_LEN;
    let end = p.l3_end().min(usize::from(p.l3_off) + quote_max);
    let data = offending
        .get(usize::from(p.l3_off)..end)
        .ok_or(BuildError::NotApplicable)?;
    let h = eth(out, e.dst_addr(), e.src_addr(), ethertype::IPV6, l2.vlan)?;
    ipv6_icmp(out, h, our_ip, &p.src, DEFAULT_TTL, &msg(data))
}
