//! Tunnelling for the TUN forwarding method, built in place in a frame buffer that has room
//! after the frame: IPv4-in-IPv4 (protocol 4, RFC 2003), IPv6-in-IPv6 (next header 41,
//! RFC 2473) and the mixed 4-in-6 / 6-in-4 (RFC 4213), and the two other encapsulations IPVS
//! offers (`ipvs_gue_encap`, `ipvs_gre_encap` in Linux's `ip_vs_xmit.c`): UDP + GUE
//! variant 0 ([`crate::gue`]) and GRE ([`crate::gre`]) between the outer IP header and the
//! inner packet.
//!
//! The Ethernet header (and any VLAN tags) stays at the front; the IP packet moves right by
//! the outer header size with `copy_within`, and the ethertype just before `l3_off` is set to
//! the outer family. Outer header fields follow IPVS `ip_vs_tunnel_xmit`: DSCP/ECN copied from
//! the inner packet (RFC 6040 normal mode), IPv4 DF copied from an IPv4 inner packet and set for
//! an IPv6 one (IPv6 is never fragmented on path), outer IPv4 identification taken from the
//! inner IPv4 packet.

use crate::bytes::{get16, put16};
use crate::checksum;
use crate::gre::{GrePacket, GreRepr};
use crate::gue::{GuePacket, GueRepr};
use crate::ip_proto;
use crate::ipv6_ext;
use crate::parse::L3;
use crate::udp::{UdpPacket, UdpRepr};
use crate::{ipv6, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr};

/// What goes between the outer IP header and the inner packet (IPVS's tunnel types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tunnel {
    /// Nothing: the outer header carries protocol 4 or 41 (IPVS's default, `ipip`).
    Ipip,
    /// UDP to `dst_port`, then a 4-byte GUE variant-0 header whose protocol is 4 or 41
    /// (`--tun-type gue --tun-port`). `checksum`: the UDP checksum is computed (IPVS's
    /// `--tun-csum` and `--tun-remcsum`) or left 0 (`--tun-nocsum`, the default; allowed
    /// over IPv6 for tunnels by RFC 6935).
    Gue {
        /// UDP source port: IPVS takes it from a hash of the inner flow
        /// (`udp_flow_src_port`), so one flow keeps one port and flows spread over ECMP.
        src_port: u16,
        /// UDP destination port the real server's GUE receiver listens on.
        dst_port: u16,
        /// Compute the UDP checksum.
        checksum: bool,
    },
    /// GRE with protocol 0x0800 / 0x86DD (`--tun-type gre`); `checksum` adds the optional
    /// GRE checksum (`--tun-csum`).
    Gre {
        /// Carry the GRE checksum.
        checksum: bool,
    },
}

impl Tunnel {
    /// Bytes between the outer IP header and the inner packet.
    pub const fn header_len(&self) -> usize {
        match self {
            Tunnel::Ipip => 0,
            Tunnel::Gue { .. } => crate::udp::HEADER_LEN + crate::gue::HEADER_LEN,
            Tunnel::Gre { checksum } => GreRepr {
                protocol: 0,
                checksum: *checksum,
            }
            .header_len(),
        }
    }

    /// The outer header's protocol for an inner packet of `inner`.
    const fn outer_proto(&self, inner: L3) -> u8 {
        match self {
            Tunnel::Ipip => inner_proto(inner),
            Tunnel::Gue { .. } => ip_proto::UDP,
            Tunnel::Gre { .. } => ip_proto::GRE,
        }
    }
}

/// IP protocol number that announces an inner packet of `family`.
const fn inner_proto(family: L3) -> u8 {
    match family {
        L3::V4 => ip_proto::IPIP,
        L3::V6 => ip_proto::IPV6,
    }
}

/// The outer IP header of an encapsulated packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outer {
    /// Source address (IPv4: first 4 bytes).
    pub src: [u8; 16],
    /// Destination address (IPv4: first 4 bytes).
    pub dst: [u8; 16],
    /// Outer family.
    pub family: L3,
    /// TTL / hop limit.
    pub ttl: u8,
}

/// Why a frame could not be encapsulated or decapsulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum EncapError {
    /// `l3_off` is below 2 (no ethertype before it) or past `frame_len`, or `frame_len` is past
    /// the buffer.
    #[error("L3 offset or frame length outside the buffer")]
    BadOffset,
    /// The buffer cannot hold the frame plus the outer header.
    #[error("no room in the buffer for the outer header")]
    NoRoom,
    /// The outer packet would exceed the 16-bit length field.
    #[error("encapsulated packet would exceed 65535 bytes")]
    TooBig,
    /// The inner packet is not a complete packet of the stated family.
    #[error("inner packet malformed or not of the stated family")]
    BadInner,
    /// The outer header is malformed or fragmented.
    #[error("outer header malformed or fragmented")]
    BadOuter,
    /// The outer packet does not carry protocol 4 or 41.
    #[error("not an IP-in-IP packet")]
    NotTunnel,
}

/// Length of a complete IP packet of `family` at the start of `ip`, or `BadInner`.
fn inner_len(ip: &[u8], family: L3) -> Result<usize, EncapError> {
    match family {
        L3::V4 => {
            let p = Ipv4Packet::new_checked(ip).map_err(|_| EncapError::BadInner)?;
            if p.version() != 4 {
                return Err(EncapError::BadInner);
            }
            Ok(usize::from(p.total_len()))
        }
        L3::V6 => {
            let p = Ipv6Packet::new_checked(ip).map_err(|_| EncapError::BadInner)?;
            if p.version() != 6 {
                return Err(EncapError::BadInner);
            }
            Ok(ipv6::HEADER_LEN + usize::from(p.payload_len()))
        }
    }
}

/// Encapsulates the IP packet at `buf[l3_off..frame_len]` (family `inner`) in an outer header
/// of family `outer` from `outer_src` to `outer_dst` (IPv4: first 4 bytes) with TTL/hop limit
/// `ttl`. Ethernet padding after the inner packet is dropped. Returns the new frame length.
#[allow(clippy::too_many_arguments)] // The dataplane's agreed signature: one call per packet.
pub fn encap_ipip(
    buf: &mut [u8],
    frame_len: usize,
    l3_off: usize,
    outer_src: &[u8; 16],
    outer_dst: &[u8; 16],
    inner: L3,
    outer: L3,
    ttl: u8,
) -> Result<usize, EncapError> {
    let o = Outer {
        src: *outer_src,
        dst: *outer_dst,
        family: outer,
        ttl,
    };
    encap(buf, frame_len, l3_off, inner, &o, Tunnel::Ipip)
}

/// Encapsulates the IP packet at `buf[l3_off..frame_len]` (family `inner`) in `outer` and
/// `tunnel`'s header. Ethernet padding after the inner packet is dropped. Returns the new
/// frame length; on an error the frame is unchanged.
pub fn encap(
    buf: &mut [u8],
    frame_len: usize,
    l3_off: usize,
    inner: L3,
    outer: &Outer,
    tunnel: Tunnel,
) -> Result<usize, EncapError> {
    if l3_off < 2 || l3_off > frame_len || frame_len > buf.len() {
        return Err(EncapError::BadOffset);
    }
    let ip = &buf[l3_off..frame_len];
    let len = inner_len(ip, inner)?;
    let (dscp_ecn, dont_frag, ident) = match inner {
        L3::V4 => {
            let p = Ipv4Packet::new_unchecked(ip);
            (p.dscp_ecn(), p.dont_frag(), p.ident())
        }
        L3::V6 => (Ipv6Packet::new_unchecked(ip).traffic_class(), true, 0),
    };
    let ip_hdr = outer.family.header_len();
    let tun_hdr = tunnel.header_len();
    let hdr = ip_hdr + tun_hdr;
    // The outer payload (tunnel header + inner packet) must fit the 16-bit length fields:
    // IPv4 total length counts its own header too; so does a UDP length.
    let payload_limit = match outer.family {
        L3::V4 => usize::from(u16::MAX) - ip_hdr,
        L3::V6 => usize::from(u16::MAX),
    };
    if len + tun_hdr > payload_limit {
        return Err(EncapError::TooBig);
    }
    let new_len = l3_off + hdr + len;
    if new_len > buf.len() {
        return Err(EncapError::NoRoom);
    }
    buf.copy_within(l3_off..l3_off + len, l3_off + hdr);
    let payload_len = (tun_hdr + len) as u16;
    let proto = tunnel.outer_proto(inner);
    let out = &mut buf[l3_off..l3_off + ip_hdr];
    let pseudo = match outer.family {
        L3::V4 => {
            let src = [outer.src[0], outer.src[1], outer.src[2], outer.src[3]];
            let dst = [outer.dst[0], outer.dst[1], outer.dst[2], outer.dst[3]];
            let repr = Ipv4Repr {
                src,
                dst,
                protocol: proto,
                payload_len,
                ttl: outer.ttl,
                dscp_ecn,
                ident,
                dont_frag,
            };
            repr.emit(out);
            checksum::pseudo_header_v4(&src, &dst, proto, payload_len)
        }
        L3::V6 => {
            let repr = Ipv6Repr {
                src: outer.src,
                dst: outer.dst,
                next_header: proto,
                payload_len,
                hop_limit: outer.ttl,
                traffic_class: dscp_ecn,
                flow_label: 0,
            };
            repr.emit(out);
            checksum::pseudo_header_v6(&outer.src, &outer.dst, proto, u32::from(payload_len))
        }
    };
    let tun = &mut buf[l3_off + ip_hdr..new_len];
    match tunnel {
        Tunnel::Ipip => {}
        Tunnel::Gue {
            src_port,
            dst_port,
            checksum,
        } => {
            let gue = GueRepr {
                proto: inner_proto(inner),
            };
            gue.emit(&mut tun[crate::udp::HEADER_LEN..]);
            if checksum {
                UdpRepr { src_port, dst_port }.emit(tun, gue.header_len() + len, pseudo);
            } else {
                let mut udp = UdpPacket::new_unchecked(tun);
                udp.set_src_port(src_port);
                udp.set_dst_port(dst_port);
                udp.set_len(payload_len);
                udp.set_checksum(0);
            }
        }
        Tunnel::Gre { checksum } => {
            let gre = GreRepr {
                protocol: inner.ethertype(),
                checksum,
            };
            gre.emit(tun);
        }
    }
    put16(buf, l3_off - 2, outer.family.ethertype());
    Ok(new_len)
}

/// Removes an IPv4 or IPv6 outer header carrying protocol 4 or 41 from the packet at
/// `buf[l3_off..frame_len]`, moving the inner packet to `l3_off` and setting the ethertype to
/// the inner family. IPv6 extension headers before the inner packet are skipped; a fragmented
/// outer packet is refused. The outer IPv4 checksum is not verified here (classify does).
/// Returns the new frame length.
pub fn decap_ipip(buf: &mut [u8], frame_len: usize, l3_off: usize) -> Result<usize, EncapError> {
    decap_with(buf, frame_len, l3_off, None, false)
}

/// Like [`decap_ipip`], and also removes UDP + GUE (to `gue_port`, variant 0 with protocol 4
/// or 41, or variant 1) and GRE (version 0, protocol 0x0800 / 0x86DD) between the outer
/// header and the inner packet. A GRE or UDP checksum that does not verify is refused
/// (`BadOuter`).
pub fn decap(
    buf: &mut [u8],
    frame_len: usize,
    l3_off: usize,
    gue_port: Option<u16>,
) -> Result<usize, EncapError> {
    decap_with(buf, frame_len, l3_off, gue_port, true)
}

fn decap_with(
    buf: &mut [u8],
    frame_len: usize,
    l3_off: usize,
    gue_port: Option<u16>,
    gre: bool,
) -> Result<usize, EncapError> {
    if l3_off < 2 || l3_off > frame_len || frame_len > buf.len() {
        return Err(EncapError::BadOffset);
    }
    let ip = &buf[l3_off..frame_len];
    let version = ip.first().map(|b| b >> 4);
    let (proto, start, end, pseudo) = match version {
        Some(4) => {
            let p = Ipv4Packet::new_checked(ip).map_err(|_| EncapError::BadOuter)?;
            if p.is_fragment() {
                return Err(EncapError::BadOuter);
            }
            let (hl, tl) = (p.header_len(), p.total_len());
            let pseudo = checksum::pseudo_header_v4(
                &p.src_addr(),
                &p.dst_addr(),
                p.protocol(),
                tl - hl as u16,
            );
            (p.protocol(), hl, usize::from(tl), pseudo)
        }
        Some(6) => {
            let p = Ipv6Packet::new_checked(ip).map_err(|_| EncapError::BadOuter)?;
            let chain =
                ipv6_ext::walk(p.next_header(), p.payload()).map_err(|_| EncapError::BadOuter)?;
            if chain.fragment.is_some_and(|f| f.offset != 0 || f.more) {
                return Err(EncapError::BadOuter);
            }
            let end = ipv6::HEADER_LEN + usize::from(p.payload_len());
            let start = ipv6::HEADER_LEN + chain.l4_off;
            let pseudo = checksum::pseudo_header_v6(
                &p.src_addr(),
                &p.dst_addr(),
                chain.l4_proto,
                (end - start) as u32,
            );
            (chain.l4_proto, start, end, pseudo)
        }
        _ => return Err(EncapError::BadOuter),
    };
    let outer_payload = &ip[start..end];
    let (family, skip) = match proto {
        ip_proto::IPIP => (L3::V4, 0),
        ip_proto::IPV6 => (L3::V6, 0),
        ip_proto::UDP if gue_port.is_some() => {
            let udp = UdpPacket::new_checked(outer_payload).map_err(|_| EncapError::BadOuter)?;
            if Some(udp.dst_port()) != gue_port {
                return Err(EncapError::NotTunnel);
            }
            if !udp.verify_checksum(pseudo) {
                return Err(EncapError::BadOuter);
            }
            let gue = GuePacket::new_checked(udp.payload()).map_err(|_| EncapError::BadOuter)?;
            let family = match (gue.variant(), gue.is_control(), gue.proto()) {
                (0, false, ip_proto::IPIP) => (L3::V4, gue.header_len()),
                (0, false, ip_proto::IPV6) => (L3::V6, gue.header_len()),
                // Variant 1: the payload is the IP packet itself.
                (1, _, _) => match udp.payload().first().map(|b| b >> 4) {
                    Some(4) => (L3::V4, 0),
                    Some(6) => (L3::V6, 0),
                    _ => return Err(EncapError::BadOuter),
                },
                _ => return Err(EncapError::NotTunnel),
            };
            (family.0, crate::udp::HEADER_LEN + family.1)
        }
        ip_proto::GRE if gre => {
            let g = GrePacket::new_checked(outer_payload).map_err(|_| EncapError::BadOuter)?;
            if !g.verify_checksum() {
                return Err(EncapError::BadOuter);
            }
            let family = match g.protocol() {
                crate::ethernet::ethertype::IPV4 => L3::V4,
                crate::ethernet::ethertype::IPV6 => L3::V6,
                _ => return Err(EncapError::NotTunnel),
            };
            (family, g.header_len())
        }
        _ => return Err(EncapError::NotTunnel),
    };
    let start = start + skip;
    let len = inner_len(ip.get(start..end).ok_or(EncapError::BadOuter)?, family)?;
    buf.copy_within(l3_off + start..l3_off + start + len, l3_off);
    put16(buf, l3_off - 2, family.ethertype());
    Ok(l3_off + len)
}

/// The ethertype in front of `l3_off`, for callers checking an encapsulated frame.
pub fn ethertype_before(buf: &[u8], l3_off: usize) -> Option<u16> {
    l3_off.checked_sub(2).and_then(|o| get16(buf, o))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse_frame, Frag};

    fn v4_frame() -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&[
            0x45, 0xb8, 0, 28, 0xab, 0xcd, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 2, 198, 18, 100, 1,
        ]);
        f.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
        f.extend_from_slice(&[0; 4]); // padding, dropped by encap
        Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
        f
    }

    use uvs_ip::widen_v4 as a16;

    #[test]
    fn v4_in_v4_and_back() {
        let orig = v4_frame();
        let mut buf = orig.clone();
        buf.resize(128, 0xee);
        let n = encap_ipip(
            &mut buf,
            orig.len(),
            14,
            &a16([198, 18, 1, 1]),
            &a16([198, 18, 1, 11]),
            L3::V4,
            L3::V4,
            64,
        )
        .unwrap();
        assert_eq!(n, 14 + 20 + 28);
        let p = parse_frame(&buf[..n]).unwrap();
        assert_eq!(p.l4_proto, ip_proto::IPIP);
        assert_eq!(p.src_v4(), [198, 18, 1, 1]);
        assert_eq!(p.frag, Frag::None);
        let outer = Ipv4Packet::new_checked(&buf[14..n]).unwrap();
        assert_eq!(
            (
                outer.dscp_ecn(),
                outer.dont_frag(),
                outer.ident(),
                outer.ttl()
            ),
            (0xb8, true, 0xabcd, 64)
        );
        assert_eq!(&buf[34..n], &orig[14..42]);
        let m = decap_ipip(&mut buf, n, 14).unwrap();
        assert_eq!(&buf[..m], &orig[..42]);
    }

    #[test]
    fn v4_in_v6_with_vlan_and_back() {
        let plain = v4_frame();
        let mut orig = plain[..12].to_vec();
        orig.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x08, 0x00]);
        orig.extend_from_slice(&plain[14..42]);
        let mut buf = orig.clone();
        buf.resize(200, 0);
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[0x20, 0x01, 0, 2]);
        let mut dst = src;
        dst[15] = 0x11;
        let n = encap_ipip(&mut buf, orig.len(), 18, &src, &dst, L3::V4, L3::V6, 63).unwrap();
        assert_eq!(n, 18 + 40 + 28);
        assert_eq!(&buf[16..18], &[0x86, 0xdd]);
        let p = parse_frame(&buf[..n]).unwrap();
        assert_eq!(
            (p.l3, p.vlan, p.l4_proto, p.l4_off),
            (L3::V6, Some(5), ip_proto::IPIP, 58)
        );
        assert_eq!(
            Ipv6Packet::new_checked(&buf[18..n]).unwrap().hop_limit(),
            63
        );
        let m = decap_ipip(&mut buf, n, 18).unwrap();
        assert_eq!(&buf[..m], &orig[..]);
    }

    fn outer_v4() -> Outer {
        Outer {
            src: a16([198, 18, 1, 1]),
            dst: a16([198, 18, 1, 11]),
            family: L3::V4,
            ttl: 64,
        }
    }

    /// GUE as IPVS sends it, byte for byte: outer IPv4 (protocol 17, length 20 + 8 + 4 + 28),
    /// UDP 40000 → 6080 with length 8 + 4 + 28, GUE `00 04 00 00`, the inner packet.
    #[test]
    fn gue_in_v4_bytes_checksums_and_back() {
        let orig = v4_frame();
        for checksum in [false, true] {
            let mut buf = orig.clone();
            buf.resize(160, 0xee);
            let tunnel = Tunnel::Gue {
                src_port: 40000,
                dst_port: 6080,
                checksum,
            };
            assert_eq!(tunnel.header_len(), 12);
            let n = encap(&mut buf, orig.len(), 14, L3::V4, &outer_v4(), tunnel).unwrap();
            assert_eq!(n, 14 + 20 + 12 + 28);
            assert_eq!(&buf[12..14], &[0x08, 0x00]);
            let outer = Ipv4Packet::new_checked(&buf[14..n]).unwrap();
            assert!(outer.verify_checksum());
            assert_eq!((outer.protocol(), outer.total_len()), (17, 60));
            assert_eq!(&buf[34..40], &[0x9c, 0x40, 0x17, 0xc0, 0x00, 40]);
            assert_eq!(&buf[42..46], &[0x00, 0x04, 0x00, 0x00]);
            assert_eq!(&buf[46..n], &orig[14..42]);
            let udp = UdpPacket::new_checked(&buf[34..n]).unwrap();
            let pseudo = checksum::pseudo_header_v4(&[198, 18, 1, 1], &[198, 18, 1, 11], 17, 40);
            if checksum {
                assert_ne!(udp.checksum(), 0);
                assert!(udp.verify_checksum(pseudo));
            } else {
                assert_eq!(udp.checksum(), 0);
            }
            // Not our port: not a tunnel; ours: the original frame back.
            let mut copy = buf.clone();
            assert_eq!(
                decap(&mut copy, n, 14, Some(6081)),
                Err(EncapError::NotTunnel)
            );
            assert_eq!(decap_ipip(&mut copy, n, 14), Err(EncapError::NotTunnel));
            let m = decap(&mut buf, n, 14, Some(6080)).unwrap();
            assert_eq!(&buf[..m], &orig[..42]);
        }
    }

    /// GRE over IPv6 carrying IPv4 (protocol 47, GRE `00 00 08 00`), and with the checksum
    /// (`80 00 08 00` + checksum + reserved) over IPv4; a corrupted payload fails the check.
    #[test]
    fn gre_bytes_checksum_and_back() {
        let orig = v4_frame();
        let mut buf = orig.clone();
        buf.resize(200, 0);
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[0x20, 0x01, 0, 2]);
        let mut dst = src;
        dst[15] = 0x11;
        let o6 = Outer {
            src,
            dst,
            family: L3::V6,
            ttl: 64,
        };
        let plain = Tunnel::Gre { checksum: false };
        let n = encap(&mut buf, orig.len(), 14, L3::V4, &o6, plain).unwrap();
        assert_eq!(n, 14 + 40 + 4 + 28);
        let p6 = Ipv6Packet::new_checked(&buf[14..n]).unwrap();
        assert_eq!((p6.next_header(), p6.payload_len()), (47, 32));
        assert_eq!(&buf[54..58], &[0x00, 0x00, 0x08, 0x00]);
        let m = decap(&mut buf, n, 14, None).unwrap();
        assert_eq!(&buf[..m], &orig[..42]);

        let mut buf = orig.clone();
        buf.resize(200, 0);
        let csum = Tunnel::Gre { checksum: true };
        let n = encap(&mut buf, orig.len(), 14, L3::V4, &outer_v4(), csum).unwrap();
        assert_eq!(n, 14 + 20 + 8 + 28);
        assert_eq!(Ipv4Packet::new_checked(&buf[14..n]).unwrap().protocol(), 47);
        assert_eq!(&buf[34..38], &[0x80, 0x00, 0x08, 0x00]);
        let g = GrePacket::new_checked(&buf[34..n]).unwrap();
        assert_ne!(g.checksum(), 0);
        assert!(g.verify_checksum());
        // IP-in-IP only: GRE is not decapsulated.
        assert_eq!(
            decap_ipip(&mut buf.clone(), n, 14),
            Err(EncapError::NotTunnel)
        );
        let mut bad = buf.clone();
        bad[n - 1] ^= 0x40;
        assert_eq!(decap(&mut bad, n, 14, None), Err(EncapError::BadOuter));
        let m = decap(&mut buf, n, 14, None).unwrap();
        assert_eq!(&buf[..m], &orig[..42]);
    }

    /// The 16-bit length limits count the tunnel header: a 65 515-byte inner IPv4 packet fits
    /// IPIP over IPv4 exactly, not GUE.
    #[test]
    fn length_limit_counts_the_tunnel_header() {
        let inner_len = usize::from(u16::MAX) - 20;
        let mut buf = vec![0u8; 14 + 20 + 12 + inner_len + 16];
        buf[12..14].copy_from_slice(&[0x08, 0x00]);
        let repr = Ipv4Repr {
            src: [198, 18, 0, 2],
            dst: [198, 18, 100, 1],
            protocol: 17,
            payload_len: (inner_len - 20) as u16,
            ttl: 64,
            dscp_ecn: 0,
            ident: 1,
            dont_frag: true,
        };
        repr.emit(&mut buf[14..]).unwrap();
        let frame_len = 14 + inner_len;
        let gue = Tunnel::Gue {
            src_port: 1,
            dst_port: 2,
            checksum: true,
        };
        assert_eq!(
            encap(&mut buf, frame_len, 14, L3::V4, &outer_v4(), gue),
            Err(EncapError::TooBig)
        );
        assert_eq!(
            encap(&mut buf, frame_len, 14, L3::V4, &outer_v4(), Tunnel::Ipip),
            Ok(14 + 20 + inner_len)
        );
    }

    #[test]
    fn errors() {
        let orig = v4_frame();
        let mut buf = orig.clone();
        let z = [0u8; 16];
        assert_eq!(
            encap_ipip(&mut buf, orig.len(), 14, &z, &z, L3::V4, L3::V4, 64),
            Err(EncapError::NoRoom)
        );
        assert_eq!(
            encap_ipip(&mut buf, orig.len(), 14, &z, &z, L3::V6, L3::V4, 64),
            Err(EncapError::BadInner)
        );
        assert_eq!(
            encap_ipip(&mut buf, orig.len() + 1, 14, &z, &z, L3::V4, L3::V4, 64),
            Err(EncapError::BadOffset)
        );
        assert_eq!(
            encap_ipip(&mut buf, orig.len(), 1, &z, &z, L3::V4, L3::V4, 64),
            Err(EncapError::BadOffset)
        );
        assert_eq!(
            decap_ipip(&mut buf, orig.len(), 14),
            Err(EncapError::NotTunnel)
        );
        buf[14] = 0x55;
        assert_eq!(
            decap_ipip(&mut buf, orig.len(), 14),
            Err(EncapError::BadOuter)
        );
        assert_eq!(buf.len(), orig.len());
        assert_eq!(ethertype_before(&orig, 14), Some(0x0800));
        assert_eq!(ethertype_before(&orig, 1), None);
    }
}
