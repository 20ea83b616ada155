//! PROXY protocol version 2 headers (HAProxy's `proxy-protocol.txt`, section 2.2): the
//! binary preamble a proxy sends first on a connection to tell the server who the client
//! was. uvs writes one for connections its SYN proxy splices (`proxy_protocol: v2`), so a
//! real server that speaks the protocol (nginx `listen … proxy_protocol`, HAProxy
//! `accept-proxy`) sees the client's address and port and the VIP it connected to.
//!
//! Layout (all numbers big-endian):
//!
//! ```text
//! 12 bytes  signature  0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A
//!  1 byte   version (high nibble, 2) | command (low nibble: 0 LOCAL, 1 PROXY)
//!  1 byte   family (high nibble: 1 AF_INET, 2 AF_INET6) | transport (low: 1 STREAM, 2 DGRAM)
//!  2 bytes  length of what follows
//!  AF_INET:  src addr (4), dst addr (4), src port (2), dst port (2)       = 12
//!  AF_INET6: src addr (16), dst addr (16), src port (2), dst port (2)     = 36
//!  then optional TLVs up to `length`
//! ```
//!
//! [`ProxyV2::write`] writes the header without TLVs; [`ProxyV2::parse`] reads one (TLVs are
//! skipped) and refuses anything malformed or longer than the spec's receiver limit.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The 12-byte signature that starts every version 2 header.
pub const SIGNATURE: [u8; 12] = [
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
];
/// Signature, version/command, family/transport and length.
pub const FIXED_LEN: usize = 16;
/// A whole header for an IPv4 connection, without TLVs.
pub const LEN_V4: usize = FIXED_LEN + 12;
/// A whole header for an IPv6 connection, without TLVs.
pub const LEN_V6: usize = FIXED_LEN + 36;
/// The largest header a receiver must accept (the spec's 536-byte minimum TCP segment
/// minus IPv4 and TCP headers: 216 bytes of addresses and TLVs after the fixed part);
/// [`ProxyV2::parse`] refuses longer ones.
pub const MAX_LEN: usize = FIXED_LEN + 216;

/// `version 2 | PROXY`.
const VER_CMD_PROXY: u8 = 0x21;
/// `version 2 | LOCAL` (health checks from the proxy itself).
const VER_CMD_LOCAL: u8 = 0x20;
/// `AF_INET | STREAM`.
const TCP4: u8 = 0x11;
/// `AF_INET6 | STREAM`.
const TCP6: u8 = 0x21;

/// The addresses a header carries: the client's (source) and the one it connected to
/// (destination) of a TCP connection. Both of one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyV2 {
    /// The client's address.
    pub src: IpAddr,
    /// The address the client connected to (the VIP).
    pub dst: IpAddr,
    /// The client's port.
    pub src_port: u16,
    /// The port the client connected to.
    pub dst_port: u16,
}

/// What a parsed header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// PROXY command over TCP: the connection's original endpoints, and the header's
    /// whole length (the connection's data starts after it).
    Proxy(ProxyV2, usize),
    /// LOCAL command (or a family the receiver must ignore): the connection is the proxy's
    /// own; the header's whole length.
    Local(usize),
}

/// Why a header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyV2Error {
    /// Fewer bytes than the header says (more may come on the stream).
    #[error("proxy v2 header truncated: {have} of {need} bytes")]
    Truncated {
        /// Bytes available.
        have: usize,
        /// Bytes the header needs.
        need: usize,
    },
    /// The 12-byte signature is not there.
    #[error("not a proxy protocol v2 header (bad signature)")]
    Signature,
    /// Version other than 2, or a command other than LOCAL/PROXY.
    #[error("proxy v2 header with version/command byte {0:#04x}")]
    VersionCommand(u8),
    /// A family/transport byte that is not TCP over IPv4 or IPv6 on a PROXY command.
    #[error("proxy v2 header with unsupported family/transport {0:#04x}")]
    Family(u8),
    /// The length field is shorter than the family's addresses.
    #[error("proxy v2 header length {len} too short for its addresses ({need})")]
    ShortAddresses {
        /// The length field.
        len: usize,
        /// What the addresses need.
        need: usize,
    },
    /// The header is longer than [`MAX_LEN`].
    #[error("proxy v2 header of {0} bytes is longer than the {MAX_LEN}-byte limit")]
    Oversized(usize),
    /// Source and destination are of different families ([`ProxyV2::write`]).
    #[error("proxy v2 source and destination of different families")]
    MixedFamilies,
    /// The output buffer is too short ([`ProxyV2::write`]).
    #[error("proxy v2 header needs {0} bytes of buffer")]
    NoRoom(usize),
}

impl ProxyV2 {
    /// The header's length when written: [`LEN_V4`] or [`LEN_V6`].
    pub fn len(&self) -> usize {
        if self.src.is_ipv4() {
            LEN_V4
        } else {
            LEN_V6
        }
    }

    /// Never empty: a header always has its fixed part (for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the header (PROXY command, STREAM, no TLVs) at the start of `out`; its length.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, ProxyV2Error> {
        if self.src.is_ipv4() != self.dst.is_ipv4() {
            return Err(ProxyV2Error::MixedFamilies);
        }
        let n = self.len();
        let out = out.get_mut(..n).ok_or(ProxyV2Error::NoRoom(n))?;
        out[..12].copy_from_slice(&SIGNATURE);
        out[12] = VER_CMD_PROXY;
        let at = match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                out[13] = TCP4;
                out[16..20].copy_from_slice(&s.octets());
                out[20..24].copy_from_slice(&d.octets());
                24
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                out[13] = TCP6;
                out[16..32].copy_from_slice(&s.octets());
                out[32..48].copy_from_slice(&d.octets());
                48
            }
            _ => return Err(ProxyV2Error::MixedFamilies),
        };
        out[14..16].copy_from_slice(&((n - FIXED_LEN) as u16).to_be_bytes());
        out[at..at + 2].copy_from_slice(&self.src_port.to_be_bytes());
        out[at + 2..at + 4].copy_from_slice(&self.dst_port.to_be_bytes());
        Ok(n)
    }

    /// Reads a header at the start of `b` (a server's view of its connection's first bytes).
    pub fn parse(b: &[u8]) -> Result<Parsed, ProxyV2Error> {
        if b.len() < FIXED_LEN {
            // A short prefix that already differs from the signature is refused at once.
            let k = b.len().min(12);
            if b[..k] != SIGNATURE[..k] {
                return Err(ProxyV2Error::Signature);
            }
            return Err(ProxyV2Error::Truncated {
                have: b.len(),
                need: FIXED_LEN,
            });
        }
        if b[..12] != SIGNATURE {
            return Err(ProxyV2Error::Signature);
        }
        let len = usize::from(u16::from_be_bytes([b[14], b[15]]));
        let total = FIXED_LEN + len;
        if total > MAX_LEN {
            return Err(ProxyV2Error::Oversized(total));
        }
        let cmd = b[12];
        if cmd != VER_CMD_PROXY && cmd != VER_CMD_LOCAL {
            return Err(ProxyV2Error::VersionCommand(cmd));
        }
        if b.len() < total {
            return Err(ProxyV2Error::Truncated {
                have: b.len(),
                need: total,
            });
        }
        if cmd == VER_CMD_LOCAL {
            // The spec: the receiver must ignore the family and addresses of LOCAL.
            return Ok(Parsed::Local(total));
        }
        let need = match b[13] {
            TCP4 => 12,
            TCP6 => 36,
            f => return Err(ProxyV2Error::Family(f)),
        };
        if len < need {
            return Err(ProxyV2Error::ShortAddresses { len, need });
        }
        let a = &b[FIXED_LEN..];
        let h = if b[13] == TCP4 {
            let ip = |o: usize| IpAddr::V4(Ipv4Addr::new(a[o], a[o + 1], a[o + 2], a[o + 3]));
            ProxyV2 {
                src: ip(0),
                dst: ip(4),
                src_port: u16::from_be_bytes([a[8], a[9]]),
                dst_port: u16::from_be_bytes([a[10], a[11]]),
            }
        } else {
            let ip = |o: usize| {
                let mut x = [0u8; 16];
                x.copy_from_slice(&a[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(x))
            };
            ProxyV2 {
                src: ip(0),
                dst: ip(16),
                src_port: u16::from_be_bytes([a[32], a[33]]),
                dst_port: u16::from_be_bytes([a[34], a[35]]),
            }
        };
        Ok(Parsed::Proxy(h, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's section 2.2 layout written out by hand: TCP over IPv4 from
    /// 198.18.0.10:40000 to 198.18.100.1:80.
    const TCP4_BYTES: [u8; 28] = [
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, // signature
        0x21, // version 2, PROXY
        0x11, // AF_INET, STREAM
        0x00, 0x0c, // 12 bytes follow
        198, 18, 0, 10, // src_addr
        198, 18, 100, 1, // dst_addr
        0x9c, 0x40, // src_port 40000
        0x00, 0x50, // dst_port 80
    ];

    /// TCP over IPv6 from [2001:2::10]:443 to [2001:2:0:100::1]:8443.
    const TCP6_BYTES: [u8; 52] = [
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, // signature
        0x21, // version 2, PROXY
        0x21, // AF_INET6, STREAM
        0x00, 0x24, // 36 bytes follow
        0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, // src_addr
        0x20, 0x01, 0x00, 0x02, 0, 0, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0x01, // dst_addr
        0x01, 0xbb, // src_port 443
        0x20, 0xfb, // dst_port 8443
    ];

    fn v4() -> ProxyV2 {
        ProxyV2 {
            src: "198.18.0.10".parse().unwrap(),
            dst: "198.18.100.1".parse().unwrap(),
            src_port: 40000,
            dst_port: 80,
        }
    }

    fn v6() -> ProxyV2 {
        ProxyV2 {
            src: "2001:2::10".parse().unwrap(),
            dst: "2001:2:0:100::1".parse().unwrap(),
            src_port: 443,
            dst_port: 8443,
        }
    }

    #[test]
    fn writes_the_spec_layout() {
        let mut out = [0xffu8; 64];
        assert_eq!(v4().write(&mut out), Ok(LEN_V4));
        assert_eq!(out[..LEN_V4], TCP4_BYTES);
        assert_eq!(out[LEN_V4], 0xff, "nothing written past the header");
        assert_eq!(v6().write(&mut out), Ok(LEN_V6));
        assert_eq!(out[..LEN_V6], TCP6_BYTES);
        assert_eq!(v4().len(), 28);
        assert_eq!(v6().len(), 52);
    }

    #[test]
    fn parses_what_it_writes_and_the_literal_bytes() {
        assert_eq!(ProxyV2::parse(&TCP4_BYTES), Ok(Parsed::Proxy(v4(), 28)));
        assert_eq!(ProxyV2::parse(&TCP6_BYTES), Ok(Parsed::Proxy(v6(), 52)));
        // Data after the header is the connection's, not the header's.
        let mut b = TCP4_BYTES.to_vec();
        b.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(ProxyV2::parse(&b), Ok(Parsed::Proxy(v4(), 28)));
    }

    #[test]
    fn skips_tlvs_and_honours_local() {
        // A PP2_TYPE_NOOP TLV (type 0x04, length 2) after the IPv4 addresses.
        let mut b = TCP4_BYTES.to_vec();
        b[15] = 12 + 5;
        b.extend_from_slice(&[0x04, 0x00, 0x02, 0xaa, 0xbb]);
        assert_eq!(ProxyV2::parse(&b), Ok(Parsed::Proxy(v4(), 33)));
        // LOCAL with AF_UNSPEC and no addresses: the proxy's own connection.
        let mut l = SIGNATURE.to_vec();
        l.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        assert_eq!(ProxyV2::parse(&l), Ok(Parsed::Local(16)));
    }

    #[test]
    fn refuses_malformed_headers() {
        let mut b = TCP4_BYTES;
        b[3] = 0x0b;
        assert_eq!(ProxyV2::parse(&b), Err(ProxyV2Error::Signature));
        // A v1 text header.
        assert_eq!(
            ProxyV2::parse(b"PROXY TCP4 198.18.0.10 198.18.100.1 40000 80\r\n"),
            Err(ProxyV2Error::Signature)
        );
        let mut b = TCP4_BYTES;
        b[12] = 0x11; // version 1 in the binary format
        assert_eq!(ProxyV2::parse(&b), Err(ProxyV2Error::VersionCommand(0x11)));
        let mut b = TCP4_BYTES;
        b[13] = 0x12; // UDP over IPv4
        assert_eq!(ProxyV2::parse(&b), Err(ProxyV2Error::Family(0x12)));
        let mut b = TCP6_BYTES;
        b[15] = 12; // IPv6 with IPv4's length
        assert_eq!(
            ProxyV2::parse(&b[..28]),
            Err(ProxyV2Error::ShortAddresses { len: 12, need: 36 })
        );
        assert_eq!(
            ProxyV2::parse(&TCP4_BYTES[..20]),
            Err(ProxyV2Error::Truncated { have: 20, need: 28 })
        );
        assert_eq!(
            ProxyV2::parse(&TCP4_BYTES[..5]),
            Err(ProxyV2Error::Truncated { have: 5, need: 16 })
        );
        // A length field claiming 65 535 bytes: refused before waiting for them.
        let mut b = TCP4_BYTES;
        b[14..16].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(
            ProxyV2::parse(&b),
            Err(ProxyV2Error::Oversized(FIXED_LEN + 0xffff))
        );
    }

    #[test]
    fn writer_refuses_what_it_cannot_write() {
        let mut h = v4();
        h.dst = "2001:2::1".parse().unwrap();
        let mut out = [0u8; 64];
        assert_eq!(h.write(&mut out), Err(ProxyV2Error::MixedFamilies));
        assert_eq!(out, [0u8; 64], "nothing written");
        assert_eq!(v6().write(&mut [0u8; 51]), Err(ProxyV2Error::NoRoom(52)));
    }
}
