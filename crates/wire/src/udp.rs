//! UDP header (RFC 768).
//!
//! After [`UdpPacket::check_len`] (length field between 8 and the buffer length) no accessor
//! panics; `payload()` ends at the UDP length.

use crate::bytes::{be16, set_be16};
use crate::checksum;
use crate::ParseError;

/// Length of the header.
pub const HEADER_LEN: usize = 8;

mod field {
    pub(crate) const SRC_PORT: usize = 0;
    pub(crate) const DST_PORT: usize = 2;
    pub(crate) const LENGTH: usize = 4;
    pub(crate) const CHECKSUM: usize = 6;
}

pub(crate) const CHECKSUM_OFFSET: usize = field::CHECKSUM;

/// A view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps after `check_len`.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the header is present and the length field lies in `8..=buffer length`.
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::TruncatedUdp);
        }
        let l = usize::from(self.len());
        if l < HEADER_LEN || l > len {
            return Err(ParseError::BadUdpLength);
        }
        Ok(())
    }

    /// Source port.
    #[inline(always)]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }
    /// Destination port.
    #[inline(always)]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }
    /// Length of header plus payload.
    #[inline]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    /// True when the length field says there is no payload.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }
    /// Checksum field; 0 means "not computed" over IPv4 (RFC 768).
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Payload up to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
    /// Verifies the checksum over the datagram (up to the length field) with the pseudo-header
    /// sum. A zero checksum is reported as valid: whether it is allowed depends on the family
    /// (RFC 768 for IPv4; RFC 8200 §8.1 forbids it over IPv6) and is the caller's call.
    #[inline]
    pub fn verify_checksum(&self, pseudo: u64) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let b = &self.buffer.as_ref()[..usize::from(self.len())];
        checksum::fold(pseudo + checksum::data_sum(b)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port (checksum not updated).
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::SRC_PORT, v);
    }
    /// Sets the destination port (checksum not updated).
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::DST_PORT, v);
    }
    /// Sets the length.
    #[inline]
    pub fn set_len(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::LENGTH, v);
    }
    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Computes the checksum over the datagram (up to the length field); a computed 0 is sent
    /// as 0xFFFF (RFC 768: zero means "no checksum").
    pub fn fill_checksum(&mut self, pseudo: u64) {
        self.set_checksum(0);
        let end = usize::from(self.len()).min(self.buffer.as_ref().len());
        let c = !checksum::fold(pseudo + checksum::data_sum(&self.buffer.as_ref()[..end]));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
    /// Mutable payload up to the length field.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// A UDP header for building.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl UdpRepr {
    /// Parses a checked datagram; the checksum is not verified here.
    pub fn parse<T: AsRef<[u8]>>(p: &UdpPacket<T>) -> Result<Self, ParseError> {
        p.check_len()?;
        Ok(UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
        })
    }

    /// Header bytes `emit` writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header in front of the `payload_len` bytes already in `buf[8..]` and fills
    /// the checksum with `pseudo` (the pseudo-header sum for length `8 + payload_len`).
    /// `None` when `buf` cannot hold header and payload or the length overflows.
    pub fn emit(&self, buf: &mut [u8], payload_len: usize, pseudo: u64) -> Option<usize> {
        let total = HEADER_LEN.checked_add(payload_len)?;
        let len16 = u16::try_from(total).ok()?;
        let mut p = UdpPacket::new_unchecked(buf.get_mut(..total)?);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(len16);
        p.fill_checksum(pseudo);
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static DATAGRAM: [u8; 14] = [
        0xbf, 0x00, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xee,
    ];

    #[test]
    fn deconstruct() {
        let p = UdpPacket::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 0xbf00);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 12);
        assert!(!p.is_empty());
        assert_eq!(p.checksum(), 0);
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert!(p.verify_checksum(12345));
    }

    #[test]
    fn length_checks() {
        assert_eq!(
            UdpPacket::new_checked(&DATAGRAM[..7]).err(),
            Some(ParseError::TruncatedUdp)
        );
        assert_eq!(
            UdpPacket::new_checked(&DATAGRAM[..11]).err(),
            Some(ParseError::BadUdpLength)
        );
        let mut b = DATAGRAM;
        b[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&b[..]).err(),
            Some(ParseError::BadUdpLength)
        );
    }

    #[test]
    fn emit_and_checksum() {
        let mut b = DATAGRAM;
        let r = UdpRepr {
            src_port: 1000,
            dst_port: 2000,
        };
        let pseudo = checksum::pseudo_header_v4(&[198, 18, 0, 2], &[198, 18, 0, 3], 17, 12);
        assert_eq!(r.emit(&mut b, 4, pseudo), Some(12));
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert_ne!(p.checksum(), 0);
        assert!(p.verify_checksum(pseudo));
        assert!(!p.verify_checksum(pseudo + 1));
        assert_eq!(UdpRepr::parse(&p).unwrap(), r);
        assert_eq!(r.emit(&mut b, 7, pseudo), None);
    }

    /// A datagram whose checksum computes to 0 must carry 0xFFFF (RFC 768).
    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Header with zero checksum; choose the pseudo-header sum so the total folds to 0xFFFF.
        let mut b = [0u8, 1, 0, 2, 0, 8, 0, 0];
        let data = checksum::fold(checksum::data_sum(&b));
        let pseudo = u64::from(0xffff - data);
        let mut p = UdpPacket::new_checked(&mut b[..]).unwrap();
        p.fill_checksum(pseudo);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(pseudo));
    }
}
