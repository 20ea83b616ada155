//! The slow path: what a host must answer for the addresses uvs owns (VIPs, local and
//! FullNAT addresses), off the forwarding fast path. The frames themselves are built by
//! `uvs_wire::build`; this module decides what to answer and learns neighbours.
//!
//! - ARP (RFC 826): reply to requests for owned addresses; learn every sender.
//! - NDP (RFC 4861): answer neighbour solicitations for owned addresses; learn from the
//!   link-layer address options of solicitations and advertisements.
//! - ICMP / ICMPv6 echo (RFC 792 / RFC 4443) to owned addresses.
//! - Requests (ARP, NS) for next hops the fast path needs.
//! - Announcements (gratuitous ARP, unsolicited NA) of the addresses of a VIP group that
//!   becomes master (`cluster`); while a group is backup its addresses are in the silent
//!   set, and nothing here answers for them.
//!
//! Everything is built into a caller-provided buffer; nothing allocates.

use uvs_wire::build;
use uvs_wire::icmpv6::Icmpv6Repr;
use uvs_wire::{ArpRepr, Classified, Parsed, L3};

use crate::cluster::AddrSet;
use crate::neigh::NeighTable;
use crate::tables::{IfaceRt, IpKey, Tables};
use crate::verdict::DropReason;

use uvs_wire::ip_proto::{ICMP, ICMPV6};

/// What the slow path answers for: the addresses uvs owns, less those of backup groups.
#[derive(Clone, Copy)]
pub struct Owner<'a> {
    pub tables: &'a Tables,
    pub silent: &'a AddrSet,
}

impl Owner<'_> {
    #[inline]
    fn answers(&self, addr: &IpKey) -> bool {
        self.tables.owns(addr) && (self.silent.is_empty() || !self.silent.contains(addr))
    }
}

/// Handles a frame the fast path sent here. Returns the length of a reply written to
/// `out` (0 = nothing to send), or why the frame was not answered.
pub fn handle(
    frame: &[u8],
    in_port: u8,
    owner: Owner<'_>,
    neigh: &NeighTable,
    now: u32,
    out: &mut [u8],
) -> Result<usize, DropReason> {
    let Some(iface) = owner.tables.ifaces.get(usize::from(in_port)) else {
        return Err(DropReason::SlowPathIgnored);
    };
    match uvs_wire::classify(frame).map_err(DropReason::Parse)? {
        Classified::Arp { l3_off } => {
            arp(frame, usize::from(l3_off), iface, owner, neigh, now, out)
        }
        Classified::Ip(p) => match (p.l3, p.l4_proto) {
            (L3::V4, ICMP) => echo(frame, &p, owner, out),
            (L3::V6, ICMPV6) => icmp6(frame, &p, iface, owner, neigh, now, out),
            _ => Err(DropReason::SlowPathIgnored),
        },
        Classified::Other(_) => Err(DropReason::UnsupportedEtherType),
    }
}

fn arp(
    frame: &[u8],
    l3: usize,
    iface: &IfaceRt,
    owner: Owner<'_>,
    neigh: &NeighTable,
    now: u32,
    out: &mut [u8],
) -> Result<usize, DropReason> {
    let Some(arp) = ArpRepr::parse(&frame[l3..]).map_err(DropReason::Parse)? else {
        return Err(DropReason::SlowPathIgnored);
    };
    if arp.source_protocol_addr != [0; 4] {
        neigh.learn(
            IpKey::v4(arp.source_protocol_addr),
            arp.source_hardware_addr,
            now,
        );
    }
    if arp.operation != uvs_wire::arp::operation::REQUEST
        || !owner.answers(&IpKey::v4(arp.target_protocol_addr))
    {
        return Ok(0);
    }
    // The reply keeps the request's VLAN tag.
    build::arp_reply(frame, iface.mac, out).map_err(|_| DropReason::SlowPathIgnored)
}

/// ICMP or ICMPv6 echo request to an owned address.
fn echo(frame: &[u8], p: &Parsed, owner: Owner<'_>, out: &mut [u8]) -> Result<usize, DropReason> {
    if !owner.answers(&IpKey {
        v6: p.l3 == L3::V6,
        addr: p.dst,
    }) {
        return Err(DropReason::SlowPathIgnored);
    }
    build::icmp_echo_reply(frame, p, out).map_err(|_| DropReason::SlowPathIgnored)
}

fn icmp6(
    frame: &[u8],
    p: &Parsed,
    iface: &IfaceRt,
    owner: Owner<'_>,
    neigh: &NeighTable,
    now: u32,
    out: &mut [u8],
) -> Result<usize, DropReason> {
    let body = frame
        .get(usize::from(p.l4_off)..p.l3_end())
        .ok_or(DropReason::SlowPathIgnored)?;
    match Icmpv6Repr::parse(body, &p.src, &p.dst).map_err(DropReason::Parse)? {
        Some(Icmpv6Repr::NeighborSolicit { target, lladdr }) => {
            if let Some(mac) = lladdr.filter(|_| p.src != [0; 16]) {
                neigh.learn(IpKey::v6(p.src), mac, now);
            }
            if !owner.answers(&IpKey::v6(target)) {
                return Ok(0);
            }
            build::ndp_neighbor_advert(frame, p, iface.mac, out)
                .map_err(|_| DropReason::SlowPathIgnored)
        }
        Some(Icmpv6Repr::NeighborAdvert { target, lladdr, .. }) => {
            let mac = lladdr.unwrap_or_else(|| {
                let mut m = [0; 6];
                m.copy_from_slice(&frame[6..12]);
                m
            });
            neigh.learn(IpKey::v6(target), mac, now);
            Ok(0)
        }
        Some(Icmpv6Repr::EchoRequest { .. }) => echo(frame, p, owner, out),
        // A bad checksum parses as None.
        None => Err(DropReason::BadChecksum),
        Some(_) => Err(DropReason::SlowPathIgnored),
    }
}

/// An ARP request for `target` from the interface's local address, or a neighbour
/// solicitation to the target's solicited-node multicast group. Returns the frame length,
/// 0 when the interface has no local address of that family.
pub fn build_request(iface: &IfaceRt, target: &IpKey, out: &mut [u8]) -> usize {
    let built = if target.v6 {
        let Some(local) = iface.local6 else { return 0 };
        build::ndp_neighbor_solicit(iface.mac, &local, &target.addr, None, out)
    } else {
        let Some(local) = iface.local4 else { return 0 };
        let mut t = [0u8; 4];
        t.copy_from_slice(&target.addr[..4]);
        build::arp_request(iface.mac, local, t, None, out)
    };
    built.unwrap_or(0)
}

/// A gratuitous ARP (IPv4) or an unsolicited neighbour advertisement with Override (IPv6)
/// saying that `addr` is at the interface's MAC. Returns the frame length (0 if `out` is
/// too small).
pub fn build_announcement(iface: &IfaceRt, addr: &IpKey, out: &mut [u8]) -> usize {
    let built = if addr.v6 {
        build::unsolicited_neighbor_advert(iface.mac, &addr.addr, None, out)
    } else {
        let mut a = [0u8; 4];
        a.copy_from_slice(&addr.addr[..4]);
        build::gratuitous_arp(iface.mac, a, None, out)
    };
    built.unwrap_or(0)
}
