//! IP-in-IP tunnelling for the TUN forwarding method: IPv4-in-IPv4 (protocol 4, RFC 2003),
//! IPv6-in-IPv6 (next header 41, RFC 2473) and the mixed 4-in-6 / 6-in-4 (RFC 4213), built in
//! place in a frame buffer that has room after the frame.
//!
//! The Ethernet header (and any VLAN tags) stays at the front; the IP packet moves right by
//! the outer header size with `copy_within`, and the ethertype just before `l3_off` is set to
//! the outer family. Outer header fields follow IPVS `ip_vs_tunnel_xmit`: DSCP/ECN copied from
//! the inner packet (RFC 6040 normal mode), IPv4 DF copied from an IPv4 inner packet and set for
//! an IPv6 one (IPv6 is never fragmented on path), outer IPv4 identification taken from the
//! inner IPv4 packet.

use crate::bytes::{get16, put16};
use crate::ip_proto;
use crate::ipv6_ext;
use crate::parse::L3;
use crate::{ipv6, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr};

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
    let hdr = outer.header_len();
    let outer_total = len + hdr;
    let payload_limit = match outer {
        L3::V4 => usize::from(u16::MAX) - hdr,
        L3::V6 => usize::from(u16::MAX),
    };
    if len > payload_limit {
        return Err(EncapError::TooBig);
    }
    let new_len = l3_off + outer_total;
    if new_len > buf.len() {
        return Err(EncapError::NoRoom);
    }
    buf.copy_within(l3_off..l3_off + len, l3_off + hdr);
    let proto = match inner {
        L3::V4 => ip_proto::IPIP,
        L3::V6 => ip_proto::IPV6,
    };
    let out = &mut buf[l3_off..l3_off + hdr];
    match outer {
        L3::V4 => {
            let repr = Ipv4Repr {
                src: [outer_src[0], outer_src[1], outer_src[2], outer_src[3]],
                dst: [outer_dst[0], outer_dst[1], outer_dst[2], outer_dst[3]],
                protocol: proto,
                payload_len: len as u16,
                ttl,
                dscp_ecn,
                ident,
                dont_frag,
            };
            repr.emit(out);
        }
        L3::V6 => {
            let repr = Ipv6Repr {
                src: *outer_src,
                dst: *outer_dst,
                next_header: proto,
                payload_len: len as u16,
                hop_limit: ttl,
                traffic_class: dscp_ecn,
                flow_label: 0,
            };
            repr.emit(out);
        }
    }
    put16(buf, l3_off - 2, outer.ethertype());
    Ok(new_len)
}

/// Removes an IPv4 or IPv6 outer header carrying protocol 4 or 41 from the packet at
/// `buf[l3_off..frame_len]`, moving the inner packet to `l3_off` and setting the ethertype to
/// the inner family. IPv6 extension headers before the inner packet are skipped; a fragmented
/// outer packet is refused. The outer IPv4 checksum is not verified here (classify does).
/// Returns the new frame length.
pub fn decap_ipip(buf: &mut [u8], frame_len: usize, l3_off: usize) -> Result<usize, EncapError> {
    if l3_off < 2 || l3_off > frame_len || frame_len > buf.len() {
        return Err(EncapError::BadOffset);
    }
    let ip = &buf[l3_off..frame_len];
    let version = ip.first().map(|b| b >> 4);
    let (proto, start, end) = match version {
        Some(4) => {
            let p = Ipv4Packet::new_checked(ip).map_err(|_| EncapError::BadOuter)?;
            if p.is_fragment() {
                return Err(EncapError::BadOuter);
            }
            (p.protocol(), p.header_len(), usize::from(p.total_len()))
        }
        Some(6) => {
            let p = Ipv6Packet::new_checked(ip).map_err(|_| EncapError::BadOuter)?;
            let chain =
                ipv6_ext::walk(p.next_header(), p.payload()).map_err(|_| EncapError::BadOuter)?;
            if chain.fragment.is_some_and(|f| f.offset != 0 || f.more) {
                return Err(EncapError::BadOuter);
            }
            let end = ipv6::HEADER_LEN + usize::from(p.payload_len());
            (chain.l4_proto, ipv6::HEADER_LEN + chain.l4_off, end)
        }
        _ => return Err(EncapError::BadOuter),
    };
    let family = match proto {
        ip_proto::IPIP => L3::V4,
        ip_proto::IPV6 => L3::V6,
        _ => return Err(EncapError::NotTunnel),
    };
    let len = inner_len(&ip[start..end], family)?;
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

    fn a16(v4: [u8; 4]) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&v4);
        a
    }

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
