//! IPv6 extension headers (RFC 8200 §4) and a bounded walk of the chain to the upper layer.
//!
//! The walk is capped at [`MAX_EXT_HEADERS`]: RFC 8200 §4.1 recommends at most six in a fixed
//! order (destination options may appear twice), so more is a crafted packet and would make
//! the per-packet cost attacker-controlled.

use crate::bytes::{be16, be32};
use crate::ip_proto;
use crate::ParseError;

/// The most extension headers the walk accepts before giving up.
pub const MAX_EXT_HEADERS: usize = 8;

/// A view of a generic extension header: next header, length in 8-octet units not counting the
/// first 8 (RFC 8200 §4.3-4.6, RFC 6564), or in 4-octet units minus 2 for AH (RFC 4302 §2.2).
#[derive(Debug, Clone)]
pub struct ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
    kind: u8,
}

impl<T: AsRef<[u8]>> ExtHeader<T> {
    /// Wraps a header of type `kind` (the next-header value that announced it), unchecked.
    pub const fn new_unchecked(buffer: T, kind: u8) -> Self {
        ExtHeader { buffer, kind }
    }

    /// Wraps after `check_len`.
    pub fn new_checked(buffer: T, kind: u8) -> Result<Self, ParseError> {
        let h = Self::new_unchecked(buffer, kind);
        h.check_len()?;
        Ok(h)
    }

    /// Checks the 8-byte minimum and the whole announced header are present.
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < 8 || len < self.header_len() {
            Err(ParseError::TruncatedIpv6Ext)
        } else {
            Ok(())
        }
    }

    /// Next header.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// Total length of this header in bytes.
    #[inline]
    pub fn header_len(&self) -> usize {
        let b = self.buffer.as_ref();
        match (self.kind, b.get(1)) {
            (ip_proto::FRAGMENT, _) => 8,
            (ip_proto::AH, Some(&l)) => (usize::from(l) + 2) * 4,
            (_, Some(&l)) => (usize::from(l) + 1) * 8,
            (_, None) => 8,
        }
    }

    /// The header's bytes after next-header and length (options, routing data, ...).
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[2..self.header_len()]
    }
}

/// A view of the fragment header (RFC 8200 §4.5).
#[derive(Debug, Clone)]
pub struct FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FragmentHeader<T> {
    /// Wraps without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        FragmentHeader { buffer }
    }

    /// Wraps after `check_len`.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    /// Checks the 8 bytes are present.
    pub fn check_len(&self) -> Result<(), ParseError> {
        if self.buffer.as_ref().len() < 8 {
            Err(ParseError::TruncatedIpv6Ext)
        } else {
            Ok(())
        }
    }

    /// Next header of the fragmentable part.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[0]
    }
    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        be16(self.buffer.as_ref(), 2) & 0xfff8
    }
    /// More fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), 2) & 1 != 0
    }
    /// Identification.
    #[inline]
    pub fn ident(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }
}

/// Fragment header contents found by the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Fragment {
    /// Identification.
    pub ident: u32,
    /// Offset in bytes.
    pub offset: u16,
    /// More fragments.
    pub more: bool,
}

/// Where the chain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtChain {
    /// Final next-header value: the upper-layer protocol, 59 (no next header), 50 (ESP, not
    /// walkable), or, for a non-first fragment, the protocol of the fragmented payload.
    pub l4_proto: u8,
    /// Offset of the upper-layer header (or fragment payload) from the start of the IPv6
    /// payload, i.e. after the fixed 40-byte header.
    pub l4_off: usize,
    /// The fragment header, if one was crossed.
    pub fragment: Option<Ipv6Fragment>,
    /// Number of extension headers walked.
    pub count: usize,
}

/// True for next-header values that are extension headers with the generic layout.
#[inline]
pub fn is_ext_header(nh: u8) -> bool {
    matches!(
        nh,
        ip_proto::HOPOPTS
            | ip_proto::ROUTING
            | ip_proto::FRAGMENT
            | ip_proto::DSTOPTS
            | ip_proto::AH
            | ip_proto::MOBILITY
            | ip_proto::HIP
            | ip_proto::SHIM6
    )
}

/// Walks extension headers starting with `first` (the fixed header's next header) over
/// `payload` (the bytes after the fixed header). Stops at the first non-extension header, or
/// after a fragment header whose offset is non-zero (what follows is fragment data, not
/// headers). Hop-by-hop anywhere but first is refused (RFC 8200 §4.3).
#[inline]
pub fn walk(first: u8, payload: &[u8]) -> Result<ExtChain, ParseError> {
    let mut nh = first;
    let mut off = 0usize;
    let mut count = 0usize;
    let mut fragment = None;
    while is_ext_header(nh) {
        if count == MAX_EXT_HEADERS {
            return Err(ParseError::Ipv6ExtChainTooLong);
        }
        if nh == ip_proto::HOPOPTS && count != 0 {
            return Err(ParseError::Ipv6HopByHopNotFirst);
        }
        let rest = payload.get(off..).unwrap_or(&[]);
        let hdr = ExtHeader::new_checked(rest, nh)?;
        count += 1;
        let hlen = hdr.header_len();
        if nh == ip_proto::FRAGMENT {
            let f = FragmentHeader::new_unchecked(rest);
            let frag = Ipv6Fragment {
                ident: f.ident(),
                offset: f.frag_offset(),
                more: f.more_frags(),
            };
            fragment = Some(frag);
            off += hlen;
            nh = f.next_header();
            if frag.offset != 0 {
                break;
            }
            continue;
        }
        nh = hdr.next_header();
        off += hlen;
    }
    Ok(ExtChain {
        l4_proto: nh,
        l4_off: off,
        fragment,
        count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_hbh_dst_frag_to_udp() {
        let payload = [
            ip_proto::DSTOPTS,
            0,
            1,
            4,
            0,
            0,
            0,
            0, // HBH, 8 bytes, PadN
            ip_proto::FRAGMENT,
            1,
            1,
            12,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0, // DST, 16 bytes
            ip_proto::UDP,
            0,
            0x00,
            0x01,
            0xde,
            0xad,
            0xbe,
            0xef, // first fragment, M=1
            0x12,
            0x34,
            0x00,
            0x35,
            0,
            8,
            0,
            0, // UDP
        ];
        let c = walk(ip_proto::HOPOPTS, &payload).unwrap();
        assert_eq!(c.l4_proto, ip_proto::UDP);
        assert_eq!(c.l4_off, 32);
        assert_eq!(c.count, 3);
        assert_eq!(
            c.fragment,
            Some(Ipv6Fragment {
                ident: 0xdeadbeef,
                offset: 0,
                more: true
            })
        );
        let h = ExtHeader::new_checked(&payload[8..], ip_proto::DSTOPTS).unwrap();
        assert_eq!(h.header_len(), 16);
        assert_eq!(h.data().len(), 14);
        let f = FragmentHeader::new_checked(&payload[24..]).unwrap();
        assert_eq!(f.next_header(), ip_proto::UDP);
        assert!(f.more_frags());
    }

    #[test]
    fn later_fragment_stops_walk() {
        let payload = [ip_proto::TCP, 0, 0x05, 0xa8, 0, 0, 0, 9, 0xff, 0xff];
        let c = walk(ip_proto::FRAGMENT, &payload).unwrap();
        assert_eq!(c.l4_proto, ip_proto::TCP);
        assert_eq!(c.l4_off, 8);
        assert_eq!(
            c.fragment,
            Some(Ipv6Fragment {
                ident: 9,
                offset: 0x5a8,
                more: false
            })
        );
    }

    #[test]
    fn ah_length_in_four_octet_units() {
        // AH with payload len 4 → (4+2)*4 = 24 bytes (RFC 4302 with 96-bit ICV).
        let mut payload = [0u8; 24 + 8];
        payload[0] = ip_proto::TCP;
        payload[1] = 4;
        let c = walk(ip_proto::AH, &payload).unwrap();
        assert_eq!((c.l4_proto, c.l4_off), (ip_proto::TCP, 24));
    }

    #[test]
    fn bounded_and_truncated() {
        // Nine destination-options headers, each pointing at the next.
        let mut payload = [0u8; 9 * 8];
        for i in 0..9 {
            payload[i * 8] = ip_proto::DSTOPTS;
        }
        assert_eq!(
            walk(ip_proto::DSTOPTS, &payload),
            Err(ParseError::Ipv6ExtChainTooLong)
        );
        // Eight are fine and end at "no next header".
        payload[7 * 8] = ip_proto::NONE;
        let c = walk(ip_proto::DSTOPTS, &payload).unwrap();
        assert_eq!((c.count, c.l4_proto, c.l4_off), (8, ip_proto::NONE, 64));
        assert_eq!(
            walk(ip_proto::DSTOPTS, &payload[..7]),
            Err(ParseError::TruncatedIpv6Ext)
        );
        // Length byte claiming more than present.
        let p = [ip_proto::TCP, 3, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            walk(ip_proto::ROUTING, &p),
            Err(ParseError::TruncatedIpv6Ext)
        );
        let p = [
            ip_proto::HOPOPTS,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        assert_eq!(
            walk(ip_proto::DSTOPTS, &p),
            Err(ParseError::Ipv6HopByHopNotFirst)
        );
        assert_eq!(walk(ip_proto::TCP, &[]).unwrap().l4_off, 0);
    }
}
