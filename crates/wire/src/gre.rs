//! GRE header (RFC 2784, with RFC 2890's key and sequence number), as Linux's
//! `gre_build_header` writes it for IPVS's `ipvs_gre_encap`:
//!
//! ```text
//!  0                   1                   2                   3
//! |C| |K|S| Reserved0       | Ver |         Protocol Type         |
//! |      Checksum (optional)      |       Reserved1 (optional)    |
//! |                         Key (optional)                        |
//! |                 Sequence Number (optional)                    |
//! ```
//!
//! The checksum (present when C is set) is the ones' complement of the ones' complement sum
//! of the GRE header and payload, computed with the checksum field zero (RFC 2784 §2.5).
//!
//! After [`GrePacket::check_len`] (version 0, and the header with its optional fields in the
//! buffer) no accessor panics.

use crate::bytes::{be16, be32, set_be16};
use crate::checksum;
use crate::ParseError;

/// Length of the header without optional fields.
pub const HEADER_LEN: usize = 4;

mod field {
    pub(crate) const FLAGS_VER: usize = 0;
    pub(crate) const PROTOCOL: usize = 2;
    pub(crate) const CHECKSUM: usize = 4;
}

const FLAG_C: u16 = 0x8000;
const FLAG_K: u16 = 0x2000;
const FLAG_S: u16 = 0x1000;
const VERSION_MASK: u16 = 0x0007;

/// A view of a GRE header and its payload.
#[derive(Debug, Clone)]
pub struct GrePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GrePacket<T> {
    /// Wraps without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        GrePacket { buffer }
    }

    /// Wraps after `check_len`.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks version 0 (RFC 2784 §2.3.1: other versions are discarded) and that the
    /// header with the optional fields its flags announce is in the buffer.
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::TruncatedGre);
        }
        if self.version() != 0 {
            return Err(ParseError::BadGreVersion);
        }
        if len < self.header_len() {
            return Err(ParseError::TruncatedGre);
        }
        Ok(())
    }

    #[inline]
    fn flags_ver(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS_VER)
    }
    /// Checksum present (C bit).
    #[inline]
    pub fn has_checksum(&self) -> bool {
        self.flags_ver() & FLAG_C != 0
    }
    /// Key present (K bit, RFC 2890).
    #[inline]
    pub fn has_key(&self) -> bool {
        self.flags_ver() & FLAG_K != 0
    }
    /// Sequence number present (S bit, RFC 2890).
    #[inline]
    pub fn has_seq(&self) -> bool {
        self.flags_ver() & FLAG_S != 0
    }
    /// Version (0 for GRE).
    #[inline]
    pub fn version(&self) -> u16 {
        self.flags_ver() & VERSION_MASK
    }
    /// Ethertype of the payload (0x0800 IPv4, 0x86DD IPv6).
    #[inline]
    pub fn protocol(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PROTOCOL)
    }
    /// Header length with the optional fields the flags announce.
    #[inline]
    pub fn header_len(&self) -> usize {
        let words = usize::from(self.has_checksum()) // checksum + reserved1
            + usize::from(self.has_key())
            + usize::from(self.has_seq());
        HEADER_LEN + 4 * words
    }
    /// Checksum field (meaningful when [`Self::has_checksum`]).
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Key (when [`Self::has_key`]).
    #[inline]
    pub fn key(&self) -> Option<u32> {
        let off = HEADER_LEN + 4 * usize::from(self.has_checksum());
        self.has_key().then(|| be32(self.buffer.as_ref(), off))
    }
    /// True when no checksum is present or it verifies over the whole buffer.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        !self.has_checksum() || checksum::verify(self.buffer.as_ref())
    }
    /// The payload after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GrePacket<T> {
    /// Sets version 0, the C flag as given, K and S clear.
    #[inline]
    pub fn set_flags(&mut self, checksum: bool) {
        set_be16(
            self.buffer.as_mut(),
            field::FLAGS_VER,
            if checksum { FLAG_C } else { 0 },
        );
    }
    /// Sets the payload ethertype.
    #[inline]
    pub fn set_protocol(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::PROTOCOL, v);
    }
    /// Computes the checksum over the whole buffer (header and payload) and writes it with
    /// Reserved1 zero; only for a header with C set.
    pub fn fill_checksum(&mut self) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM, 0);
        set_be16(self.buffer.as_mut(), field::CHECKSUM + 2, 0);
        let c = checksum::checksum(self.buffer.as_ref());
        set_be16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
}

/// A header as IPVS sends it: no key, no sequence number, a checksum if asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreRepr {
    /// Payload ethertype.
    pub protocol: u16,
    /// Carry a checksum (ipvsadm `--tun-csum`).
    pub checksum: bool,
}

impl GreRepr {
    /// Header bytes `emit` writes: 4, or 8 with a checksum.
    pub const fn header_len(&self) -> usize {
        if self.checksum {
            HEADER_LEN + 4
        } else {
            HEADER_LEN
        }
    }

    /// Writes the header in front of the payload already in `buf[header_len()..]` (all of
    /// `buf` is the GRE packet) and fills the checksum if one is carried. `None` if `buf`
    /// cannot hold the header.
    pub fn emit(&self, buf: &mut [u8]) -> Option<usize> {
        let hl = self.header_len();
        if buf.len() < hl {
            return None;
        }
        let mut p = GrePacket::new_unchecked(buf);
        p.set_flags(self.checksum);
        p.set_protocol(self.protocol);
        if self.checksum {
            p.fill_checksum();
        }
        Some(hl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// C and K set, IPv4 payload, checksum ~(0xa000 + 0x0800 + 0x0102 + 0x0304 + 0x4500) = 0x0ef9, key 0x01020304, then a
    /// 4-byte payload.
    static WITH_CSUM_AND_KEY: [u8; 16] = [
        0xa0, 0x00, 0x08, 0x00, // C, K, version 0, IPv4
        0x0e, 0xf9, 0x00, 0x00, // checksum, reserved1
        0x01, 0x02, 0x03, 0x04, // key
        0x45, 0x00, 0x00, 0x00, // payload
    ];

    #[test]
    fn deconstruct() {
        let p = GrePacket::new_checked(&WITH_CSUM_AND_KEY[..]).unwrap();
        assert!(p.has_checksum() && p.has_key() && !p.has_seq());
        assert_eq!(p.version(), 0);
        assert_eq!(p.protocol(), 0x0800);
        assert_eq!(p.header_len(), 12);
        assert_eq!(p.key(), Some(0x0102_0304));
        assert_eq!(p.checksum(), 0x0ef9);
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &[0x45, 0, 0, 0]);
        let mut bad = WITH_CSUM_AND_KEY;
        bad[15] = 1;
        assert!(!GrePacket::new_checked(&bad[..]).unwrap().verify_checksum());
    }

    #[test]
    fn length_and_version_checks() {
        assert_eq!(
            GrePacket::new_checked(&WITH_CSUM_AND_KEY[..3]).err(),
            Some(ParseError::TruncatedGre)
        );
        assert_eq!(
            GrePacket::new_checked(&WITH_CSUM_AND_KEY[..11]).err(),
            Some(ParseError::TruncatedGre)
        );
        // Version 1 is PPTP's enhanced GRE (RFC 2637), not ours.
        let pptp = [0x30, 0x01, 0x88, 0x0b, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            GrePacket::new_checked(&pptp[..]).err(),
            Some(ParseError::BadGreVersion)
        );
    }

    #[test]
    fn emit_plain_and_with_checksum() {
        let mut b = [0xffu8; 6];
        let plain = GreRepr {
            protocol: 0x86dd,
            checksum: false,
        };
        assert_eq!(plain.emit(&mut b), Some(4));
        assert_eq!(b, [0x00, 0x00, 0x86, 0xdd, 0xff, 0xff]);

        let mut b = [0u8; 12];
        b[8..].copy_from_slice(&[0x45, 0x00, 0x00, 0x00]);
        let csum = GreRepr {
            protocol: 0x0800,
            checksum: true,
        };
        assert_eq!(csum.emit(&mut b), Some(8));
        // ~(0x8000 + 0x0800 + 0x4500) = ~0xcd00 = 0x32ff
        assert_eq!(b, [0x80, 0, 0x08, 0, 0x32, 0xff, 0, 0, 0x45, 0, 0, 0]);
        assert!(GrePacket::new_checked(&b[..]).unwrap().verify_checksum());
        assert_eq!(csum.emit(&mut b[..7]), None);
    }
}
