//! The slow path: what a host must answer for the addresses uvs owns (VIPs, local and
//! FullNAT addresses), off the forwarding fast path.
//!
//! - ARP (RFC 826): reply to requests for owned addresses; learn senders.
//! - NDP (RFC 4861): answer neighbour solicitations for owned addresses with a solicited,
//!   override advertisement carrying our link-layer address; learn from NS/NA options.
//! - ICMP / ICMPv6 echo (RFC 792 / RFC 4443) to owned addresses.
//! - Building ARP requests and neighbour solicitations for next hops the fast path needs.
//!
//! Everything is built into a caller-provided buffer; nothing allocates.

use uvs_wire::checksum;

use crate::neigh::NeighTable;
use crate::tables::{IfaceRt, IpKey, Tables};
use crate::verdict::DropReason;

const ETH_ARP: u16 = 0x0806;
const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;
const ND_NS: u8 = 135;
const ND_NA: u8 = 136;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn v4(addr: [u8; 4]) -> IpKey {
    let mut a = [0; 16];
    a[..4].copy_from_slice(&addr);
    IpKey { v6: false, addr: a }
}

fn v6(addr: [u8; 16]) -> IpKey {
    IpKey { v6: true, addr }
}

/// Handles a frame the fast path sent here. Returns the length of a reply written to
/// `out` (0 = nothing to send), or why the frame was not answered.
pub fn handle(
    frame: &[u8],
    in_port: u8,
    tables: &Tables,
    neigh: &NeighTable,
    now: u32,
    out: &mut [u8],
) -> Result<usize, DropReason> {
    let Some(iface) = tables.ifaces.get(usize::from(in_port)) else {
        return Err(DropReason::SlowPathIgnored);
    };
    let l2 = uvs_wire::ethernet::parse_l2(frame).map_err(DropReason::Parse)?;
    let l3 = l2.l3_off;
    match l2.ethertype {
        ETH_ARP => arp(frame, l3, iface, tables, neigh, now, out),
        ETH_IPV4 => icmp4_echo(frame, l3, iface, tables, out),
        ETH_IPV6 => icmp6(frame, l3, iface, tables, neigh, now, out),
        _ => Err(DropReason::UnsupportedEtherType),
    }
}

fn arp(
    frame: &[u8],
    l3: usize,
    iface: &IfaceRt,
    tables: &Tables,
    neigh: &NeighTable,
    now: u32,
    out: &mut [u8],
) -> Result<usize, DropReason> {
    let Some(arp) = uvs_wire::arp::ArpRepr::parse(&frame[l3..]).map_err(DropReason::Parse)? else {
        return Err(DropReason::SlowPathIgnored);
    };
    let target = v4(arp.target_protocol_addr);
    if arp.source_protocol_addr != [0; 4] {
        neigh.learn(v4(arp.source_protocol_addr), arp.source_hardware_addr, now);
    }
    if arp.operation != uvs_wire::arp::operation::REQUEST || !tables.owns(&target) {
        return Ok(0);
    }
    // Reply in the request's own L2 framing (keeps any VLAN tags).
    out[..l3].copy_from_slice(&frame[..l3]);
    out[..6].copy_from_slice(&arp.source_hardware_addr);
    out[6..12].copy_from_slice(&iface.mac);
    let a = &mut out[l3..l3 + 28];
    put16(a, 0, 1); // Ethernet
    put16(a, 2, ETH_IPV4);
    a[4] = 6;
    a[5] = 4;
    put16(a, 6, uvs_wire::arp::operation::REPLY);
    a[8..14].copy_from_slice(&iface.mac);
    a[14..18].copy_from_slice(&arp.target_protocol_addr);
    a[18..24].copy_from_slice(&arp.source_hardware_addr);
    a[24..28].copy_from_slice(&arp.source_protocol_addr);
    Ok((l3 + 28).max(60))
}

fn icmp4_echo(
    frame: &[u8],
    l3: usize,
    iface: &IfaceRt,
    tables: &Tables,
    out: &mut [u8],
) -> Result<usize, DropReason> {
    let ip = uvs_wire::ipv4::Ipv4Packet::new_checked(&frame[l3..]).map_err(DropReason::Parse)?;
    let hl = ip.header_len();
    let total = usize::from(ip.total_len());
    if ip.protocol() != ICMP
        || ip.dst_addr() == [255; 4]
        || ip.more_frags()
        || ip.frag_offset() != 0
    {
        return Err(DropReason::SlowPathIgnored);
    }
    if !tables.owns(&v4(ip.dst_addr())) {
        return Err(DropReason::SlowPathIgnored);
    }
    let icmp = &frame[l3 + hl..l3 + total];
    if icmp.len() < 8 || icmp[0] != 8 || !checksum::verify(icmp) {
        return Err(DropReason::SlowPathIgnored);
    }
    let len = l3 + total;
    if len > out.len() {
        return Err(DropReason::SlowPathIgnored);
    }
    out[..len].copy_from_slice(&frame[..len]);
    out[..6].copy_from_slice(&frame[6..12]);
    out[6..12].copy_from_slice(&iface.mac);
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let h = &mut out[l3..l3 + hl];
    h[12..16].copy_from_slice(&dst);
    h[16..20].copy_from_slice(&src);
    h[8] = 64;
    put16(h, 10, 0);
    let c = checksum::checksum(h);
    put16(h, 10, c);
    let m = &mut out[l3 + hl..len];
    m[0] = 0;
    let c = checksum::update16(be16(m, 2), 0x0800, 0x0000);
    put16(m, 2, c);
    Ok(len.max(60))
}

fn icmp6(
    frame: &[u8],
    l3: usize,
    iface: &IfaceRt,
    tables: &Tables,
    neigh: &NeighTable,
    now: u32,
    out: &mut [u8],
) -> Result<usize, DropReason> {
    let ip = &frame[l3..];
    if ip.len() < 40 {
        return Err(DropReason::SlowPathIgnored);
    }
    let payload = usize::from(be16(ip, 4));
    // NDP and echo carry no extension headers in practice; anything else is not ours.
    if ip[6] != ICMPV6 || ip.len() < 40 + payload || payload < 8 {
        return Err(DropReason::SlowPathIgnored);
    }
    let mut src = [0; 16];
    let mut dst = [0; 16];
    src.copy_from_slice(&ip[8..24]);
    dst.copy_from_slice(&ip[24..40]);
    let m = &ip[40..40 + payload];
    if !icmp6_checksum_ok(&src, &dst, m) {
        return Err(DropReason::BadChecksum);
    }
    match m[0] {
        ND_NS if payload >= 24 && ip[7] == 255 => {
            let mut target = [0; 16];
            target.copy_from_slice(&m[8..24]);
            if let Some(mac) = nd_option(&m[24..], 1) {
                if src != [0; 16] {
                    neigh.learn(v6(src), mac, now);
                }
            }
            if !tables.owns(&v6(target)) {
                return Ok(0);
            }
            // RFC 4861 7.2.4: reply to the soliciting address, or all-nodes for DAD.
            let (reply_dst, reply_mac) = if src == [0; 16] {
                let mut d = [0; 16];
                d[0] = 0xff;
                d[1] = 0x02;
                d[15] = 1;
                (d, [0x33, 0x33, 0, 0, 0, 1])
            } else {
                let mut mac = [0; 6];
                mac.copy_from_slice(&frame[6..12]);
                (src, mac)
            };
            let flags = if src == [0; 16] { 0x20 } else { 0x60 }; // S only when solicited; O
            Ok(build_nd(
                out, iface.mac, reply_mac, &target, &reply_dst, ND_NA, flags, &target, 2,
            ))
        }
        ND_NA if payload >= 24 && ip[7] == 255 => {
            let mut target = [0; 16];
            target.copy_from_slice(&m[8..24]);
            let mac = nd_option(&m[24..], 2).unwrap_or_else(|| {
                let mut mac = [0; 6];
                mac.copy_from_slice(&frame[6..12]);
                mac
            });
            neigh.learn(v6(target), mac, now);
            Ok(0)
        }
        128 if tables.owns(&v6(dst)) => {
            let len = l3 + 40 + payload;
            if len > out.len() {
                return Err(DropReason::SlowPathIgnored);
            }
            out[..len].copy_from_slice(&frame[..len]);
            out[..6].copy_from_slice(&frame[6..12]);
            out[6..12].copy_from_slice(&iface.mac);
            let h = &mut out[l3..len];
            h[7] = 64;
            h[8..24].copy_from_slice(&dst);
            h[24..40].copy_from_slice(&src);
            h[40] = 129;
            // Swapping addresses leaves the pseudo-header sum unchanged; only the type moved.
            let c = checksum::update16(be16(h, 42), 0x8000, 0x8100);
            put16(h, 42, c);
            Ok(len.max(60))
        }
        _ => Err(DropReason::SlowPathIgnored),
    }
}

fn icmp6_checksum_ok(src: &[u8; 16], dst: &[u8; 16], msg: &[u8]) -> bool {
    let sum =
        checksum::pseudo_header_v6(src, dst, ICMPV6, msg.len() as u32) + checksum::data_sum(msg);
    checksum::fold(sum) == 0xffff || checksum::fold(sum) == 0
}

/// The link-layer address option of `kind` (1 = source, 2 = target) in NDP options.
fn nd_option(mut opts: &[u8], kind: u8) -> Option<[u8; 6]> {
    while opts.len() >= 8 {
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            return None;
        }
        if opts[0] == kind && len >= 8 {
            let mut mac = [0; 6];
            mac.copy_from_slice(&opts[2..8]);
            return Some(mac);
        }
        opts = &opts[len..];
    }
    None
}

/// Builds an NDP message (NS or NA) with one link-layer address option.
#[allow(clippy::too_many_arguments)]
fn build_nd(
    out: &mut [u8],
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: &[u8; 16],
    dst: &[u8; 16],
    kind: u8,
    flags: u8,
    target: &[u8; 16],
    option: u8,
) -> usize {
    let len = 14 + 40 + 32;
    out[..len].fill(0);
    out[..6].copy_from_slice(&dst_mac);
    out[6..12].copy_from_slice(&src_mac);
    put16(out, 12, ETH_IPV6);
    let ip = &mut out[14..len];
    ip[0] = 0x60;
    put16(ip, 4, 32);
    ip[6] = ICMPV6;
    ip[7] = 255;
    ip[8..24].copy_from_slice(src);
    ip[24..40].copy_from_slice(dst);
    let m = &mut ip[40..72];
    m[0] = kind;
    m[4] = flags;
    m[8..24].copy_from_slice(target);
    m[24] = option;
    m[25] = 1;
    m[26..32].copy_from_slice(&src_mac);
    let sum = checksum::pseudo_header_v6(src, dst, ICMPV6, 32) + checksum::data_sum(m);
    let c = !checksum::fold(sum);
    put16(m, 2, c);
    len
}

/// An ARP request for `target` from the interface's local address, or a neighbour
/// solicitation to the target's solicited-node multicast group. Returns the frame length,
/// 0 when the interface has no local address of that family.
pub fn build_request(iface: &IfaceRt, target: &IpKey, out: &mut [u8]) -> usize {
    if target.v6 {
        let Some(local) = iface.local6 else { return 0 };
        let mut group = [0u8; 16];
        group[0] = 0xff;
        group[1] = 0x02;
        group[11] = 1;
        group[12] = 0xff;
        group[13..].copy_from_slice(&target.addr[13..]);
        let mac = [
            0x33,
            0x33,
            0xff,
            target.addr[13],
            target.addr[14],
            target.addr[15],
        ];
        build_nd(
            out,
            iface.mac,
            mac,
            &local,
            &group,
            ND_NS,
            0,
            &target.addr,
            1,
        )
    } else {
        let Some(local) = iface.local4 else { return 0 };
        out[..60].fill(0);
        out[..6].copy_from_slice(&[0xff; 6]);
        out[6..12].copy_from_slice(&iface.mac);
        put16(out, 12, ETH_ARP);
        let a = &mut out[14..42];
        put16(a, 0, 1);
        put16(a, 2, ETH_IPV4);
        a[4] = 6;
        a[5] = 4;
        put16(a, 6, uvs_wire::arp::operation::REQUEST);
        a[8..14].copy_from_slice(&iface.mac);
        a[14..18].copy_from_slice(&local);
        a[24..28].copy_from_slice(&target.addr[..4]);
        60
    }
}
