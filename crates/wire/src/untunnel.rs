//! ICMP errors about a packet the balancer tunnelled (TUN: IPIP, GUE or GRE). A router
//! between the balancer and the real server quotes the *outer* packet (balancer → real
//! server, tunnel header, then the client's packet); the client must hear about its own
//! packet. As IPVS's `ip_vs_in_icmp` does for its tunnels, the error is turned into one to the
//! client: the quote loses the outer IP and tunnel headers, the error comes from the address
//! the client sent to (the VIP) and, for fragmentation-needed / packet-too-big, the MTU it
//! reports is reduced by the bytes the tunnel adds.
//!
//! Same family only (the error, the quoted outer packet and the quoted inner packet are all
//! IPv4 or all IPv6): an ICMPv4 error cannot quote an IPv6 packet.

use crate::embedded::Embedded;
use crate::gre::GrePacket;
use crate::gue::GuePacket;
use crate::parse::{Parsed, L3};
use crate::udp::UdpPacket;
use crate::{icmpv4, icmpv6, ip_proto, ipv4, ipv6, Icmpv4Packet, Icmpv6Packet};
use crate::{Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr};

/// Bytes of the quote in front of the tunnelled packet (quoted outer IP header plus the
/// tunnel header), when `e` quotes a tunnel packet of the error's own family: IP-in-IP
/// (protocol 4 / 41), UDP to `gue_port` with a GUE variant-0 header, or GRE version 0. `None`
/// for anything else or a quote too short to hold the tunnelled packet's IP header.
pub fn tunnel_quote_len(frame: &[u8], e: &Embedded, gue_port: Option<u16>) -> Option<usize> {
    let (inner_proto, inner_ethertype, inner_hdr) = match e.l3 {
        L3::V4 => (
            ip_proto::IPIP,
            crate::ethernet::ethertype::IPV4,
            ipv4::HEADER_LEN,
        ),
        L3::V6 => (
            ip_proto::IPV6,
            crate::ethernet::ethertype::IPV6,
            ipv6::HEADER_LEN,
        ),
    };
    let (l3, l4, end) = (
        usize::from(e.l3_off),
        usize::from(e.l4_off),
        usize::from(e.end),
    );
    let l4_bytes = frame.get(l4..end)?;
    let tunnel = match e.l4_proto {
        p if p == inner_proto => 0,
        ip_proto::UDP => {
            // The quoted UDP length covers the whole datagram, not the quote.
            let udp = UdpPacket::new_unchecked(l4_bytes.get(..crate::udp::HEADER_LEN)?);
            if gue_port.is_none() || Some(udp.dst_port()) != gue_port {
                return None;
            }
            let gue = GuePacket::new_checked(l4_bytes.get(crate::udp::HEADER_LEN..)?).ok()?;
            if gue.variant() != 0 || gue.is_control() || gue.proto() != inner_proto {
                return None;
            }
            crate::udp::HEADER_LEN + gue.header_len()
        }
        ip_proto::GRE => {
            let gre = GrePacket::new_checked(l4_bytes).ok()?;
            if gre.protocol() != inner_ethertype {
                return None;
            }
            gre.header_len()
        }
        _ => return None,
    };
    let skip = l4 - l3 + tunnel;
    let inner = frame.get(l3 + skip..end)?;
    let version = match e.l3 {
        L3::V4 => 4,
        L3::V6 => 6,
    };
    (inner.len() >= inner_hdr && inner[0] >> 4 == version).then_some(skip)
}

/// Rewrites the ICMP error at `buf[..len]` (classified as `p`, quote `e`) in place into the
/// error its tunnelled packet's sender must get: the first `skip` bytes of the quote (from
/// [`tunnel_quote_len`]) are removed, the error goes from the quoted packet's destination to
/// its source with TTL/hop limit `ttl`, and a fragmentation-needed (ICMPv4 3/4) or
/// packet-too-big (ICMPv6 2) MTU is reduced by `skip` (not below 68 / 1280). The outer
/// header must be a plain one (IPv4 without options, IPv6 without extension headers).
/// Returns the new frame length, or `None` (frame unchanged) when it cannot be done.
pub fn untunnel_icmp_error(
    buf: &mut [u8],
    len: usize,
    p: &Parsed,
    e: &Embedded,
    skip: usize,
    ttl: u8,
) -> Option<usize> {
    let (l3_off, icmp_off) = (usize::from(p.l3_off), usize::from(e.icmp_off));
    let (quote, end) = (usize::from(e.l3_off), usize::from(e.end));
    if end > len || len > buf.len() || quote + skip > end {
        return None;
    }
    let plain = icmp_off - l3_off == p.l3.header_len();
    if !plain {
        return None;
    }
    // The tunnelled packet's addresses: the new error goes back to its sender.
    let inner = &buf[quote + skip..end];
    let (mut src, mut dst) = ([0u8; 16], [0u8; 16]);
    match p.l3 {
        L3::V4 => {
            let ip = Ipv4Packet::new_unchecked(inner.get(..ipv4::HEADER_LEN)?);
            dst[..4].copy_from_slice(&ip.src_addr());
            src[..4].copy_from_slice(&ip.dst_addr());
        }
        L3::V6 => {
            let ip = Ipv6Packet::new_unchecked(inner.get(..ipv6::HEADER_LEN)?);
            dst = ip.src_addr();
            src = ip.dst_addr();
        }
    }
    buf.copy_within(quote + skip..end, quote);
    let new_end = end - skip;
    let icmp_len = new_end - icmp_off;
    let overhead = skip as u32;
    match p.l3 {
        L3::V4 => {
            let mut icmp = Icmpv4Packet::new_unchecked(&mut buf[icmp_off..new_end]);
            if icmp.msg_type() == icmpv4::msg_type::DEST_UNREACHABLE
                && icmp.code() == icmpv4::unreach_code::FRAG_NEEDED
            {
                let mtu = u32::from(icmp.next_hop_mtu());
                let left = if mtu > 68 + overhead {
                    mtu - overhead
                } else {
                    68
                };
                icmp.set_rest_of_header(0, left as u16);
            }
            icmp.fill_checksum();
            let s = [src[0], src[1], src[2], src[3]];
            let d = [dst[0], dst[1], dst[2], dst[3]];
            Ipv4Repr {
                src: s,
                dst: d,
                protocol: ip_proto::ICMP,
                payload_len: icmp_len as u16,
                ttl,
                dscp_ecn: 0,
                ident: 0,
                dont_frag: false,
            }
            .emit(&mut buf[l3_off..icmp_off])?;
        }
        L3::V6 => {
            let mut icmp = Icmpv6Packet::new_unchecked(&mut buf[icmp_off..new_end]);
            if icmp.msg_type() == icmpv6::msg_type::PACKET_TOO_BIG {
                let mtu = icmp.mtu();
                let left = mtu.saturating_sub(overhead).max(1280);
                icmp.set_word(left);
            }
            icmp.fill_checksum(&src, &dst);
            Ipv6Repr {
                src,
                dst,
                next_header: ip_proto::ICMPV6,
                payload_len: icmp_len as u16,
                hop_limit: ttl,
                traffic_class: 0,
                flow_label: 0,
            }
            .emit(&mut buf[l3_off..icmp_off])?;
        }
    }
    Some(new_end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encap::{encap, Outer, Tunnel};
    use crate::{parse_frame, parse_icmp_embedded};

    /// Client 198.18.0.2:40000 → VIP 198.18.100.1:80, TCP SYN, DF.
    fn client_packet() -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&[
            0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 2, 198, 18, 100, 1,
        ]);
        f.extend_from_slice(&[0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02]);
        f.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
        f
    }

    /// A router 198.18.1.254 tells 198.18.1.3 (the balancer) that the tunnel packet to
    /// 198.18.1.11 needs fragmenting for MTU 1400, quoting it whole.
    fn router_error(tunnel: Tunnel) -> Vec<u8> {
        let mut t = client_packet();
        let n = t.len();
        t.resize(200, 0);
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[198, 18, 1, 3]);
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&[198, 18, 1, 11]);
        let o = Outer {
            src: a,
            dst: b,
            family: L3::V4,
            ttl: 64,
        };
        let n = encap(&mut t, n, 14, L3::V4, &o, tunnel).unwrap();
        let quoted = &t[14..n];
        let mut f = vec![2, 0, 0, 0, 0, 3, 2, 0, 0, 0, 0, 4, 0x08, 0x00];
        let icmp_len = 8 + quoted.len();
        Ipv4Repr {
            src: [198, 18, 1, 254],
            dst: [198, 18, 1, 3],
            protocol: 1,
            payload_len: icmp_len as u16,
            ttl: 64,
            dscp_ecn: 0,
            ident: 9,
            dont_frag: false,
        }
        .emit({
            f.resize(34, 0);
            &mut f[14..34]
        })
        .unwrap();
        f.extend_from_slice(&[3, 4, 0, 0, 0, 0, 0x05, 0x78]);
        f.extend_from_slice(quoted);
        Icmpv4Packet::new_unchecked(&mut f[34..]).fill_checksum();
        f
    }

    #[test]
    fn errors_about_each_tunnel_reach_the_client_with_the_mtu_left() {
        let gue = Tunnel::Gue {
            src_port: 40001,
            dst_port: 6080,
            checksum: true,
        };
        for (tunnel, overhead) in [
            (Tunnel::Ipip, 20),
            (gue, 32),
            (Tunnel::Gre { checksum: true }, 28),
        ] {
            let mut f = router_error(tunnel);
            let p = parse_frame(&f).unwrap();
            let e = parse_icmp_embedded(&f, &p).unwrap();
            assert_eq!(
                tunnel_quote_len(&f, &e, Some(6081)).is_some(),
                !matches!(tunnel, Tunnel::Gue { .. })
            );
            let skip = tunnel_quote_len(&f, &e, Some(6080)).unwrap();
            assert_eq!(skip, overhead, "{tunnel:?}");
            let len = f.len();
            let n = untunnel_icmp_error(&mut f, len, &p, &e, skip, 64).unwrap();
            let p = parse_frame(&f[..n]).unwrap();
            assert_eq!(p.src_v4(), [198, 18, 100, 1], "{tunnel:?}: from the VIP");
            assert_eq!(&p.dst[..4], &[198, 18, 0, 2], "{tunnel:?}: to the client");
            let ip = Ipv4Packet::new_checked(&f[14..n]).unwrap();
            assert!(ip.verify_checksum());
            let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
            assert!(icmp.verify_checksum(), "{tunnel:?}");
            assert_eq!(icmp.next_hop_mtu(), 1400 - overhead as u16, "{tunnel:?}");
            assert_eq!(
                icmp.data(),
                &client_packet()[14..],
                "{tunnel:?}: the client's packet"
            );
        }
    }

    #[test]
    fn not_a_tunnel_or_too_short() {
        let f = router_error(Tunnel::Gre { checksum: false });
        let p = parse_frame(&f).unwrap();
        let e = parse_icmp_embedded(&f, &p).unwrap();
        // Quote cut inside the tunnelled packet's IP header.
        let short = Embedded {
            end: e.l4_off + 4 + 10,
            ..e
        };
        assert_eq!(tunnel_quote_len(&f, &short, None), None);
        // A quoted UDP datagram that is no GUE.
        let mut udp = e;
        udp.l4_proto = ip_proto::UDP;
        assert_eq!(tunnel_quote_len(&f, &udp, Some(6080)), None);
    }
}
