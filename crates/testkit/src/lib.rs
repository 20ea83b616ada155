//! Packet builders and independent checks for uvs tests and benchmarks.
//!
//! Everything here is built and checked with etherparse, not with uvs's own wire code, so
//! a test that builds with these and checks with [`check_frame`] is an independent check
//! of what the dataplane emits.
#![deny(unsafe_code)]

pub mod sctp;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use std::net::IpAddr;

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const LB0_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xb0, 0x00];
pub const LB1_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xb1, 0x00];

/// The MAC the lab gives real server `n` (1-based).
pub fn real_mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0x11, n]
}

/// TCP flags for [`tcp`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}

pub const SYN: Flags = Flags {
    syn: true,
    ack: false,
    fin: false,
    rst: false,
};
pub const SYN_ACK: Flags = Flags {
    syn: true,
    ack: true,
    fin: false,
    rst: false,
};
pub const ACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: false,
    rst: false,
};
pub const FIN_ACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: true,
    rst: false,
};
pub const RST: Flags = Flags {
    syn: false,
    ack: false,
    fin: false,
    rst: true,
};

fn ip_builder(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
    let eth = PacketBuilder::ethernet2(src_mac, dst_mac);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed address families"),
    }
}

/// An Ethernet frame carrying a TCP segment with valid checksums.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    flags: Flags,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = ip_builder(src_mac, dst_mac, src, dst).tcp(sport, dport, 1000, 65535);
    if flags.syn {
        b = b.syn();
    }
    if flags.ack {
        b = b.ack(1);
    }
    if flags.fin {
        b = b.fin();
    }
    if flags.rst {
        b = b.rst();
    }
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).expect("build tcp");
    out
}

/// An Ethernet frame carrying a UDP datagram with valid checksums.
pub fn udp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let b = ip_builder(src_mac, dst_mac, src, dst).udp(sport, dport);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).expect("build udp");
    out
}

/// What etherparse sees in a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub ttl: u8,
    pub payload: Vec<u8>,
}

/// Parses `frame` with etherparse and verifies every checksum (IPv4 header, TCP/UDP with
/// pseudo-header) by recomputing it. Errors say what was wrong.
pub fn check_frame(frame: &[u8]) -> Result<Seen, String> {
    let sliced = SlicedPacket::from_ethernet(frame).map_err(|e| format!("etherparse: {e}"))?;
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = sliced.link else {
        return Err("no Ethernet II header".into());
    };
    let (src, dst, proto, ttl) = match &sliced.net {
        Some(NetSlice::Ipv4(v4)) => {
            let h = v4.header();
            let hdr = h.to_header();
            if hdr.calc_header_checksum() != hdr.header_checksum {
                return Err(format!(
                    "bad IPv4 header checksum {:#06x}, expected {:#06x}",
                    hdr.header_checksum,
                    hdr.calc_header_checksum()
                ));
            }
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                h.protocol().0,
                h.ttl(),
            )
        }
        Some(NetSlice::Ipv6(v6)) => {
            let h = v6.header();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                v6.payload().ip_number.0,
                h.hop_limit(),
            )
        }
        _ => return Err("no IP header".into()),
    };
    let (sport, dport, payload) = match &sliced.transport {
        Some(TransportSlice::Tcp(t)) => {
            let h = t.to_header();
            let want = match &sliced.net {
                Some(NetSlice::Ipv4(v4)) => {
                    h.calc_checksum_ipv4(&v4.header().to_header(), t.payload())
                }
                Some(NetSlice::Ipv6(v6)) => {
                    h.calc_checksum_ipv6(&v6.header().to_header(), t.payload())
                }
                _ => unreachable!(),
            }
            .map_err(|e| format!("tcp checksum: {e}"))?;
            if want != h.checksum {
                return Err(format!(
                    "bad TCP checksum {:#06x}, expected {want:#06x}",
                    h.checksum
                ));
            }
            (t.source_port(), t.destination_port(), t.payload().to_vec())
        }
        Some(TransportSlice::Udp(u)) => {
            let h = u.to_header();
            let want = match &sliced.net {
                Some(NetSlice::Ipv4(v4)) => {
                    if h.checksum == 0 {
                        h.checksum
                    } else {
                        h.calc_checksum_ipv4(&v4.header().to_header(), u.payload())
                            .map_err(|e| format!("udp checksum: {e}"))?
                    }
                }
                Some(NetSlice::Ipv6(v6)) => h
                    .calc_checksum_ipv6(&v6.header().to_header(), u.payload())
                    .map_err(|e| format!("udp checksum: {e}"))?,
                _ => unreachable!(),
            };
            if want != h.checksum {
                return Err(format!(
                    "bad UDP checksum {:#06x}, expected {want:#06x}",
                    h.checksum
                ));
            }
            (u.source_port(), u.destination_port(), u.payload().to_vec())
        }
        _ => (0, 0, Vec::new()),
    };
    Ok(Seen {
        src_mac: eth.source(),
        dst_mac: eth.destination(),
        src,
        dst,
        proto,
        sport,
        dport,
        ttl,
        payload,
    })
}

/// `frame` (TCP or UDP, no fragment) as a Linux sender with transmit checksum offload
/// hands it over (veth, virtio, tap): the L4 checksum field holds only the folded
/// pseudo-header sum (`~csum_tcpudp_magic(src, dst, len, proto, 0)`, `CHECKSUM_PARTIAL`),
/// for a NIC to add the segment. Computed here from etherparse's view of the frame, not
/// with uvs's checksum code.
pub fn partial_checksum(frame: &[u8]) -> Vec<u8> {
    let sliced = SlicedPacket::from_ethernet(frame).expect("etherparse");
    let (l4, csum_at, proto) = match &sliced.transport {
        Some(TransportSlice::Tcp(t)) => (t.slice(), 16, 6u8),
        Some(TransportSlice::Udp(u)) => (u.slice(), 6, 17u8),
        _ => panic!("partial_checksum: not TCP or UDP"),
    };
    // UDP: the datagram's own length; TCP: header and payload.
    let len = if proto == 17 {
        usize::from(u16::from_be_bytes([l4[4], l4[5]]))
    } else {
        l4.len()
    };
    let mut words = Vec::new();
    match &sliced.net {
        Some(NetSlice::Ipv4(v4)) => {
            words.extend_from_slice(&v4.header().source());
            words.extend_from_slice(&v4.header().destination());
            words.extend_from_slice(&[0, proto]);
            words.extend_from_slice(&(len as u16).to_be_bytes());
        }
        Some(NetSlice::Ipv6(v6)) => {
            words.extend_from_slice(&v6.header().source());
            words.extend_from_slice(&v6.header().destination());
            words.extend_from_slice(&(len as u32).to_be_bytes());
            words.extend_from_slice(&[0, 0, 0, proto]);
        }
        _ => panic!("partial_checksum: no IP header"),
    }
    let mut sum: u32 = words
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // Where the L4 header sits in `frame` (etherparse hands out subslices of it).
    let at = l4.as_ptr() as usize - frame.as_ptr() as usize + csum_at;
    let mut out = frame.to_vec();
    out[at..at + 2].copy_from_slice(&(sum as u16).to_be_bytes());
    out
}

/// A frame cut to `len` bytes (for truncation tests).
pub fn truncated(frame: &[u8], len: usize) -> Vec<u8> {
    frame[..len.min(frame.len())].to_vec()
}

/// The IPv4 header checksum of `h` (its checksum field as it is).
pub fn ipv4_header_checksum(h: &[u8]) -> u16 {
    let mut sum = 0u32;
    for w in h.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `frame` (Ethernet + IP, no VLAN) as a router sends it on: its TTL / hop limit one less,
/// the IPv4 header checksum recomputed.
pub fn one_hop_on(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    if f[12..14] == [0x86, 0xdd] {
        f[14 + 7] -= 1;
    } else {
        f[14 + 8] -= 1;
        let ihl = usize::from(f[14] & 0x0f) * 4;
        f[24..26].copy_from_slice(&[0, 0]);
        let c = ipv4_header_checksum(&f[14..14 + ihl]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }
    f
}

/// Splits an IPv4 frame (no options, no VLAN) into two fragments: the first carries
/// `first_len` bytes of the IP payload (a multiple of 8), the second the rest. Header
/// checksums are recomputed; the L4 checksum stays the whole datagram's.
pub fn fragment_v4(frame: &[u8], first_len: usize, id: u16) -> (Vec<u8>, Vec<u8>) {
    assert_eq!(first_len % 8, 0);
    let ip = &frame[14..];
    let hl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let payload = &ip[hl..total];
    let mk = |part: &[u8], offset: usize, more: bool| {
        let mut f = frame[..14 + hl].to_vec();
        f.extend_from_slice(part);
        let h = &mut f[14..14 + hl];
        h[2..4].copy_from_slice(&((hl + part.len()) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        let flags_off = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
        h[6..8].copy_from_slice(&flags_off.to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        let c = ipv4_header_checksum(h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        f
    };
    (
        mk(&payload[..first_len], 0, true),
        mk(&payload[first_len..], first_len, false),
    )
}

/// Splits an IPv6 frame (no extension headers, no VLAN) into two fragments with a
/// Fragment header (RFC 8200 §4.5): the first carries `first_len` bytes (a multiple of 8)
/// of the original payload, the second the rest.
pub fn fragment_v6(frame: &[u8], first_len: usize, id: u32) -> (Vec<u8>, Vec<u8>) {
    assert_eq!(first_len % 8, 0);
    let next = frame[14 + 6];
    let payload = &frame[14 + 40..];
    let mk = |part: &[u8], offset: usize, more: bool| {
        let mut f = frame[..14 + 40].to_vec();
        f[14 + 6] = 44;
        let len = (8 + part.len()) as u16;
        f[14 + 4..14 + 6].copy_from_slice(&len.to_be_bytes());
        let off = ((offset / 8) as u16) << 3 | u16::from(more);
        f.extend_from_slice(&[next, 0]);
        f.extend_from_slice(&off.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(part);
        f
    };
    (
        mk(&payload[..first_len], 0, true),
        mk(&payload[first_len..], first_len, false),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_frames_check_clean_and_corruption_is_caught() {
        let f = tcp(
            CLIENT_MAC,
            LB0_MAC,
            "198.18.0.2".parse().unwrap(),
            40000,
            "198.18.100.1".parse().unwrap(),
            80,
            SYN,
            b"",
        );
        let seen = check_frame(&f).unwrap();
        assert_eq!(seen.dport, 80);
        let mut bad = f.clone();
        let n = bad.len();
        bad[n - 1] ^= 1; // in the TCP header's urgent pointer: covered by the checksum
        assert!(check_frame(&bad).is_err());
        let u = udp(
            CLIENT_MAC,
            LB0_MAC,
            "2001:2::2".parse().unwrap(),
            5353,
            "2001:2:0:100::1".parse().unwrap(),
            53,
            b"q",
        );
        assert_eq!(check_frame(&u).unwrap().payload, b"q");
    }

    /// The partial field is the folded pseudo-header sum (checked on a value worked out by
    /// hand: 198.18.0.2 → 198.18.100.1, TCP, 24 bytes gives c612 0002 c612 6401 0006 0018
    /// = 0x1_f045, folded 0xf046), and adding the segment to it gives etherparse's checksum.
    #[test]
    fn partial_checksum_is_the_pseudo_header_sum() {
        let f = tcp(
            CLIENT_MAC,
            LB0_MAC,
            "198.18.0.2".parse().unwrap(),
            40000,
            "198.18.100.1".parse().unwrap(),
            80,
            SYN,
            b"abcd",
        );
        let p = partial_checksum(&f);
        assert_eq!(&p[50..52], &0xf046u16.to_be_bytes());
        assert_eq!((&p[..50], &p[52..]), (&f[..50], &f[52..]));
        assert!(
            check_frame(&p).is_err(),
            "a partial checksum is not a valid one"
        );
        for f in [
            f,
            udp(
                CLIENT_MAC,
                LB0_MAC,
                "2001:2::2".parse().unwrap(),
                5353,
                "2001:2:0:100::1".parse().unwrap(),
                53,
                b"odd",
            ),
        ] {
            let p = partial_checksum(&f);
            // (L4 offset, checksum offset in it): IPv6 UDP or IPv4 TCP.
            let (l4, csum) = if f[12] == 0x86 { (54, 6) } else { (34, 16) };
            let at = l4 + csum;
            let field = u32::from(u16::from_be_bytes([p[at], p[at + 1]]));
            let mut seg = p[l4..].to_vec();
            seg[csum..csum + 2].fill(0);
            seg.push(0); // pads an odd length
            let mut sum = field
                + seg
                    .chunks_exact(2)
                    .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
                    .sum::<u32>();
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            assert_eq!(
                !(sum as u16),
                u16::from_be_bytes([f[at], f[at + 1]]),
                "partial + segment = the full checksum"
            );
        }
    }
}
