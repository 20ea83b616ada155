//! Generic UDP Encapsulation header (draft-ietf-intarea-gue, variant 0), as Linux's FOU/GUE
//! and IPVS's `ipvs_gue_encap` write it after a UDP header:
//!
//! ```text
//!  0                   1                   2                   3
//! |0 0|C|   Hlen  |  Proto/ctype  |             Flags             |
//! |                   optional fields (Hlen × 4 bytes)            |
//! ```
//!
//! Variant 0 (the two high bits 00) carries a header; variant 1 (01) has none and the UDP
//! payload is the IPv4/IPv6 packet itself (its version nibble 4 or 6 makes the bits 01). C
//! set means a control message; otherwise Proto/ctype is the IP protocol of the payload
//! (4 = IPv4, 41 = IPv6 for IPVS).
//!
//! After [`GuePacket::check_len`] (the fixed 4 bytes and the Hlen optional words present) no
//! accessor panics.

use crate::bytes::{be16, set_be16};
use crate::ParseError;

/// Length of the fixed header (no optional fields).
pub const HEADER_LEN: usize = 4;

mod field {
    pub(crate) const VER_C_HLEN: usize = 0;
    pub(crate) const PROTO: usize = 1;
    pub(crate) const FLAGS: usize = 2;
}

const CONTROL: u8 = 0x20;
const HLEN_MASK: u8 = 0x1f;

/// A view of a GUE header and what follows it.
#[derive(Debug, Clone)]
pub struct GuePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GuePacket<T> {
    /// Wraps without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        GuePacket { buffer }
    }

    /// Wraps after `check_len`.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the fixed header and its optional fields are in the buffer.
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < self.header_len() {
            return Err(ParseError::TruncatedGue);
        }
        Ok(())
    }

    /// Variant: the two high bits (0 = with a header, 1 = direct IP).
    #[inline]
    pub fn variant(&self) -> u8 {
        self.buffer.as_ref()[field::VER_C_HLEN] >> 6
    }
    /// Control message bit.
    #[inline]
    pub fn is_control(&self) -> bool {
        self.buffer.as_ref()[field::VER_C_HLEN] & CONTROL != 0
    }
    /// Header length in bytes: 4 plus Hlen × 4 bytes of optional fields.
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + usize::from(self.buffer.as_ref()[field::VER_C_HLEN] & HLEN_MASK) * 4
    }
    /// IP protocol of the payload (or control type when [`Self::is_control`]).
    #[inline]
    pub fn proto(&self) -> u8 {
        self.buffer.as_ref()[field::PROTO]
    }
    /// Flags field.
    #[inline]
    pub fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS)
    }
    /// What follows the header and its optional fields.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GuePacket<T> {
    /// Writes variant 0, no control bit, `optional_words` of optional fields.
    #[inline]
    pub fn set_variant0(&mut self, optional_words: u8) {
        self.buffer.as_mut()[field::VER_C_HLEN] = optional_words & HLEN_MASK;
    }
    /// Sets the payload protocol.
    #[inline]
    pub fn set_proto(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTO] = v;
    }
    /// Sets the flags field.
    #[inline]
    pub fn set_flags(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::FLAGS, v);
    }
}

/// A data header as IPVS sends it: variant 0, no optional fields, flags 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GueRepr {
    /// IP protocol of the payload: 4 (IPv4) or 41 (IPv6).
    pub proto: u8,
}

impl GueRepr {
    /// Header bytes `emit` writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 4-byte header; `None` if `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) -> Option<usize> {
        let mut p = GuePacket::new_unchecked(buf.get_mut(..HEADER_LEN)?);
        p.set_variant0(0);
        p.set_proto(self.proto);
        p.set_flags(0);
        Some(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Variant 0, Hlen 1 (one optional word), proto 41, flags 0x8000 (private flags
    /// present, as the remote checksum offload option announces), then the optional word
    /// and two payload bytes.
    static WITH_OPTION: [u8; 10] = [0x01, 41, 0x80, 0x00, 0, 0, 0, 0, 0x60, 0x00];

    #[test]
    fn deconstruct() {
        let p = GuePacket::new_checked(&WITH_OPTION[..]).unwrap();
        assert_eq!(p.variant(), 0);
        assert!(!p.is_control());
        assert_eq!(p.header_len(), 8);
        assert_eq!(p.proto(), 41);
        assert_eq!(p.flags(), 0x8000);
        assert_eq!(p.payload(), &[0x60, 0x00]);
        let control = [0x20, 0x07, 0, 0];
        let p = GuePacket::new_checked(&control[..]).unwrap();
        assert!(p.is_control());
        // Variant 1: the first byte of an IPv4 header (0x45) reads as version bits 01.
        let direct = [0x45, 0, 0, 20];
        assert_eq!(GuePacket::new_unchecked(&direct[..]).variant(), 1);
    }

    #[test]
    fn length_checks() {
        assert_eq!(
            GuePacket::new_checked(&WITH_OPTION[..3]).err(),
            Some(ParseError::TruncatedGue)
        );
        assert_eq!(
            GuePacket::new_checked(&WITH_OPTION[..7]).err(),
            Some(ParseError::TruncatedGue)
        );
        assert!(GuePacket::new_checked(&WITH_OPTION[..8]).is_ok());
    }

    #[test]
    fn emit() {
        let mut b = [0xffu8; 6];
        assert_eq!(GueRepr { proto: 4 }.emit(&mut b), Some(4));
        assert_eq!(b, [0x00, 0x04, 0x00, 0x00, 0xff, 0xff]);
        assert_eq!(GueRepr { proto: 4 }.emit(&mut b[..3]), None);
        let p = GuePacket::new_checked(&b[..]).unwrap();
        assert_eq!((p.variant(), p.header_len(), p.proto()), (0, 4, 4));
    }
}
