//! TCP header (RFC 9293 §3.1). Only what a layer-4 balancer reads or rewrites: ports, flags,
//! sequence numbers for state tracking, the checksum.
//!
//! After [`TcpPacket::check_len`] (data offset within the buffer) no accessor panics.

use crate::bytes::{be16, be32, set_be16, set_be32};
use crate::checksum;
use crate::ParseError;

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

/// Flag bits of the 8-bit flags byte (RFC 9293, RFC 3168 for ECE/CWR).
pub mod flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer significant.
    pub const URG: u8 = 0x20;
    /// ECN echo.
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced.
    pub const CWR: u8 = 0x80;
}

mod field {
    pub(crate) const SRC_PORT: usize = 0;
    pub(crate) const DST_PORT: usize = 2;
    pub(crate) const SEQ: usize = 4;
    pub(crate) const ACK: usize = 8;
    pub(crate) const DATA_OFF: usize = 12;
    pub(crate) const FLAGS: usize = 13;
    pub(crate) const WINDOW: usize = 14;
    pub(crate) const CHECKSUM: usize = 16;
    pub(crate) const URGENT: usize = 18;
}

pub(crate) const CHECKSUM_OFFSET: usize = field::CHECKSUM;

/// A view of a TCP segment.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps after `check_len`.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the fixed header is present and the data offset is ≥ 5 and within the buffer.
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::TruncatedTcp);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN || hl > len {
            return Err(ParseError::BadTcpDataOffset);
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
    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ)
    }
    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK)
    }
    /// Header length in bytes (data offset × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }
    /// The flags byte (see [`flags`]).
    #[inline(always)]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    /// Window.
    #[inline]
    pub fn window(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW)
    }
    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Urgent pointer.
    #[inline]
    pub fn urgent(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT)
    }
    /// Options bytes.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
    /// Payload after the options (to the end of the buffer).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    /// Verifies the checksum over the whole buffer given the pseudo-header sum (see
    /// [`checksum::pseudo_header_v4`] / [`checksum::pseudo_header_v6`]).
    #[inline]
    pub fn verify_checksum(&self, pseudo: u64) -> bool {
        checksum::fold(pseudo + checksum::data_sum(self.buffer.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
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
    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        set_be32(self.buffer.as_mut(), field::SEQ, v);
    }
    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        set_be32(self.buffer.as_mut(), field::ACK, v);
    }
    /// Sets the header length in bytes (multiple of 4).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let b = self.buffer.as_mut();
        b[field::DATA_OFF] = (((len / 4) as u8) << 4) | (b[field::DATA_OFF] & 0x0f);
    }
    /// Sets the flags byte.
    #[inline]
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }
    /// Sets the window.
    #[inline]
    pub fn set_window(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::WINDOW, v);
    }
    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::URGENT, v);
    }
    /// Recomputes the checksum over the whole buffer from the pseudo-header sum.
    pub fn fill_checksum(&mut self, pseudo: u64) {
        self.set_checksum(0);
        let c = !checksum::fold(pseudo + checksum::data_sum(self.buffer.as_ref()));
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SEGMENT: [u8; 28] = [
        0x30, 0x39, 0x00, 0x50, // 12345 → 80
        0x00, 0x00, 0x00, 0x64, // seq 100
        0x00, 0x00, 0x00, 0x00, // ack 0
        0x60, 0x02, 0xfa, 0xf0, // doff 6, SYN, window 64240
        0x00, 0x00, 0x00, 0x00, // checksum, urgent
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
        0xde, 0xad, 0xbe, 0xef, // payload
    ];

    #[test]
    fn deconstruct() {
        let p = TcpPacket::new_checked(&SEGMENT[..]).unwrap();
        assert_eq!(p.src_port(), 12345);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 100);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.flags(), flags::SYN);
        assert_eq!(p.window(), 64240);
        assert_eq!(p.urgent(), 0);
        assert_eq!(p.options(), &[2, 4, 5, 0xb4]);
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn length_checks() {
        assert_eq!(
            TcpPacket::new_checked(&SEGMENT[..19]).err(),
            Some(ParseError::TruncatedTcp)
        );
        assert_eq!(
            TcpPacket::new_checked(&SEGMENT[..23]).err(),
            Some(ParseError::BadTcpDataOffset)
        );
        let mut b = SEGMENT;
        b[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&b[..]).err(),
            Some(ParseError::BadTcpDataOffset)
        );
    }

    #[test]
    fn construct_and_checksum() {
        let mut b = SEGMENT;
        let pseudo = checksum::pseudo_header_v4(&[198, 18, 0, 2], &[198, 18, 100, 1], 6, 28);
        let mut p = TcpPacket::new_checked(&mut b[..]).unwrap();
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_seq_number(3);
        p.set_ack_number(4);
        p.set_flags(flags::ACK | flags::FIN);
        p.set_window(5);
        p.set_urgent(6);
        p.set_header_len(24);
        p.fill_checksum(pseudo);
        assert!(p.verify_checksum(pseudo));
        assert!(!p.verify_checksum(pseudo + 1));
        assert_eq!(
            &b[..20],
            &[0, 1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0x60, 0x11, 0, 5, b[16], b[17], 0, 6]
        );
    }
}
