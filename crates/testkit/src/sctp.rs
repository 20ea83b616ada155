//! SCTP frames built by hand for tests and benchmarks (RFC 9260), with an independent,
//! bitwise CRC32c (Castagnoli) — not the `crc32c` crate uvs itself uses, so a shared bug
//! cannot hide.

use std::net::IpAddr;

/// Chunk types.
pub const INIT: u8 = 1;
pub const INIT_ACK: u8 = 2;
pub const SACK: u8 = 3;
pub const HEARTBEAT: u8 = 4;
pub const ABORT: u8 = 6;
pub const SHUTDOWN: u8 = 7;
pub const SHUTDOWN_ACK: u8 = 8;
pub const COOKIE_ECHO: u8 = 10;
pub const COOKIE_ACK: u8 = 11;
pub const SHUTDOWN_COMPLETE: u8 = 14;
pub const DATA: u8 = 0;

/// CRC32c (RFC 9260 appendix A), reflected polynomial 0x82F63B78, bit by bit.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The CRC as SCTP stores it: over the packet with the checksum field zero, bytes in
/// little-endian order (what Linux and tshark's CRC-32C check expect).
pub fn sctp_crc(sctp: &[u8]) -> [u8; 4] {
    let mut z = sctp.to_vec();
    z[8..12].fill(0);
    crc32c(&z).to_le_bytes()
}

pub fn chunk(kind: u8, flags: u8, value: &[u8]) -> Vec<u8> {
    let mut c = vec![kind, flags];
    c.extend_from_slice(&((4 + value.len()) as u16).to_be_bytes());
    c.extend_from_slice(value);
    while !c.len().is_multiple_of(4) {
        c.push(0);
    }
    c
}

pub fn param(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut p = kind.to_be_bytes().to_vec();
    p.extend_from_slice(&((4 + value.len()) as u16).to_be_bytes());
    p.extend_from_slice(value);
    while !p.len().is_multiple_of(4) {
        p.push(0);
    }
    p
}

pub fn addr_param(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => param(5, &v.octets()),
        IpAddr::V6(v) => param(6, &v.octets()),
    }
}

/// INIT or INIT-ACK with `tag` as initiate tag and `params` after the fixed part.
pub fn init_chunk(kind: u8, tag: u32, params: &[Vec<u8>]) -> Vec<u8> {
    let mut v = tag.to_be_bytes().to_vec();
    v.extend_from_slice(&65536u32.to_be_bytes()); // a_rwnd
    v.extend_from_slice(&[0, 10, 0, 10]); // streams
    v.extend_from_slice(&1u32.to_be_bytes()); // initial TSN
    for p in params {
        v.extend_from_slice(p);
    }
    chunk(kind, 0, &v)
}

pub fn data_chunk(payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    v.extend_from_slice(payload);
    chunk(DATA, 3, &v)
}

/// An Ethernet frame with IPv4/IPv6 and an SCTP packet of `chunks`, CRC32c filled.
#[allow(clippy::too_many_arguments)]
pub fn frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    vtag: u32,
    chunks: &[Vec<u8>],
) -> Vec<u8> {
    let mut sctp = Vec::new();
    sctp.extend_from_slice(&sport.to_be_bytes());
    sctp.extend_from_slice(&dport.to_be_bytes());
    sctp.extend_from_slice(&vtag.to_be_bytes());
    sctp.extend_from_slice(&[0; 4]);
    for c in chunks {
        sctp.extend_from_slice(c);
    }
    let crc = sctp_crc(&sctp);
    sctp[8..12].copy_from_slice(&crc);
    let mut f = dst_mac.to_vec();
    f.extend_from_slice(&src_mac);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&[0x08, 0x00]);
            let total = (20 + sctp.len()) as u16;
            let mut h = vec![0x45, 0];
            h.extend_from_slice(&total.to_be_bytes());
            h.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, 132, 0, 0]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let c = crate::ipv4_header_checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&h);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&[0x86, 0xdd]);
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(sctp.len() as u16).to_be_bytes());
            f.extend_from_slice(&[132, 64]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        _ => panic!("mixed families"),
    }
    f.extend_from_slice(&sctp);
    f
}
