//! IPv6 fixed header (RFC 8200 §3).
//!
//! [`Ipv6Packet::check_len`] validates the payload length against the buffer, so afterwards no
//! accessor panics; `payload()` ends at 40 + payload length, dropping Ethernet padding.
//! Extension headers are walked by [`crate::ipv6_ext`].

use crate::bytes::{array, be16, be32, set_be16, set_be32};
use crate::ParseError;

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

mod field {
    pub(crate) const VER_TC_FLOW: usize = 0;
    pub(crate) const LENGTH: usize = 4;
    pub(crate) const NXT_HDR: usize = 6;
    pub(crate) const HOP_LIMIT: usize = 7;
    pub(crate) const SRC: usize = 8;
    pub(crate) const DST: usize = 24;
}

pub(crate) const HOP_LIMIT_OFFSET: usize = field::HOP_LIMIT;
pub(crate) const SRC_OFFSET: usize = field::SRC;
pub(crate) const DST_OFFSET: usize = field::DST;

/// A view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps after `check_len`.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the fixed header and the announced payload are present.
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::TruncatedIpv6);
        }
        if len < HEADER_LEN + usize::from(self.payload_len()) {
            return Err(ParseError::BadIpv6PayloadLength);
        }
        Ok(())
    }

    /// Returns the wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version nibble (6).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }
    /// Traffic class (DSCP + ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        ((be16(self.buffer.as_ref(), 0) >> 4) & 0xff) as u8
    }
    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        be32(self.buffer.as_ref(), 0) & 0x000f_ffff
    }
    /// Payload length (extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Next header of the fixed header.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }
    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }
    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> [u8; 16] {
        array(self.buffer.as_ref(), field::SRC)
    }
    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> [u8; 16] {
        array(self.buffer.as_ref(), field::DST)
    }
    /// The payload (extension headers and upper layer) up to the payload length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets version 6, traffic class and flow label.
    #[inline]
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let v = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        set_be32(self.buffer.as_mut(), field::VER_TC_FLOW, v);
    }
    /// Sets the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::LENGTH, v);
    }
    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = v;
    }
    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }
    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: [u8; 16]) {
        self.buffer.as_mut()[field::SRC..field::SRC + 16].copy_from_slice(&a);
    }
    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: [u8; 16]) {
        self.buffer.as_mut()[field::DST..field::DST + 16].copy_from_slice(&a);
    }
    /// Mutable payload up to the payload length.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// A fixed header without extension headers, for building.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// Next header.
    pub next_header: u8,
    /// Payload length.
    pub payload_len: u16,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Parses a checked packet; version must be 6.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Result<Self, ParseError> {
        p.check_len()?;
        if p.version() != 6 {
            return Err(ParseError::BadIpVersion);
        }
        Ok(Ipv6Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: p.payload_len(),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        })
    }

    /// Header bytes `emit` writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 40-byte header; `None` when `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) -> Option<usize> {
        let mut p = Ipv6Packet::new_unchecked(buf.get_mut(..HEADER_LEN)?);
        p.set_version_tc_flow(self.traffic_class, self.flow_label);
        p.set_payload_len(self.payload_len);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        Some(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip_proto;

    static PACKET: [u8; 46] = [
        0x6b, 0x81, 0x23, 0x45, // v6, TC 0xb8, flow 0x12345
        0x00, 0x04, 0x11, 0x40, // payload 4, UDP, hop limit 64
        0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // src 2001:2::2
        0x20, 0x01, 0x00, 0x02, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // dst 2001:2:0:100::1
        0xaa, 0xbb, 0xcc, 0xdd, // payload
        0xee, 0xee, // padding
    ];

    #[test]
    fn deconstruct() {
        let p = Ipv6Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 4);
        assert_eq!(p.next_header(), ip_proto::UDP);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr()[15], 2);
        assert_eq!(p.dst_addr()[6], 1);
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(
            Ipv6Packet::new_checked(&PACKET[..39]).err(),
            Some(ParseError::TruncatedIpv6)
        );
        assert_eq!(
            Ipv6Packet::new_checked(&PACKET[..43]).err(),
            Some(ParseError::BadIpv6PayloadLength)
        );
    }

    #[test]
    fn repr_round_trip() {
        let p = Ipv6Packet::new_checked(&PACKET[..]).unwrap();
        let r = Ipv6Repr::parse(&p).unwrap();
        let mut buf = [0u8; 40];
        assert_eq!(r.emit(&mut buf), Some(40));
        assert_eq!(&buf[..], &PACKET[..40]);
        assert_eq!(r.emit(&mut buf[..39]), None);
        let mut bad = PACKET;
        bad[0] = 0x4b;
        assert_eq!(
            Ipv6Repr::parse(&Ipv6Packet::new_unchecked(&bad[..])),
            Err(ParseError::BadIpVersion)
        );
    }
}
