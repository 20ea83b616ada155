//! ARP (RFC 826) for Ethernet hardware and IPv4 protocol addresses: the only combination the
//! balancer answers for its VIPs and uses to resolve next hops.
//!
//! After [`ArpPacket::check_len`] succeeds no accessor panics: the address accessors use the
//! fixed Ethernet/IPv4 layout and `check_len` demands those 28 bytes.

use crate::bytes::{array, be16, set_be16};
use crate::ethernet::ethertype;
use crate::ParseError;

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// ARP operation codes (RFC 826).
pub mod operation {
    /// Who has ...?
    pub const REQUEST: u16 = 1;
    /// ... is at ...
    pub const REPLY: u16 = 2;
}

/// Hardware type for Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;

mod field {
    pub(crate) const HTYPE: usize = 0;
    pub(crate) const PTYPE: usize = 2;
    pub(crate) const HLEN: usize = 4;
    pub(crate) const PLEN: usize = 5;
    pub(crate) const OPER: usize = 6;
    pub(crate) const SHA: usize = 8;
    pub(crate) const SPA: usize = 14;
    pub(crate) const THA: usize = 18;
    pub(crate) const TPA: usize = 24;
}

/// A view of an ARP packet with Ethernet/IPv4 address sizes.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps after `check_len`.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Ensures the 28 bytes of an Ethernet/IPv4 ARP packet are present.
    pub fn check_len(&self) -> Result<(), ParseError> {
        if self.buffer.as_ref().len() < PACKET_LEN {
            Err(ParseError::TruncatedArp)
        } else {
            Ok(())
        }
    }

    /// Hardware type (1 = Ethernet).
    #[inline]
    pub fn hardware_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::HTYPE)
    }
    /// Protocol type (0x0800 = IPv4).
    #[inline]
    pub fn protocol_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PTYPE)
    }
    /// Hardware address length.
    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }
    /// Protocol address length.
    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }
    /// Operation.
    #[inline]
    pub fn operation(&self) -> u16 {
        be16(self.buffer.as_ref(), field::OPER)
    }
    /// Sender hardware address.
    #[inline]
    pub fn source_hardware_addr(&self) -> [u8; 6] {
        array(self.buffer.as_ref(), field::SHA)
    }
    /// Sender protocol address.
    #[inline]
    pub fn source_protocol_addr(&self) -> [u8; 4] {
        array(self.buffer.as_ref(), field::SPA)
    }
    /// Target hardware address.
    #[inline]
    pub fn target_hardware_addr(&self) -> [u8; 6] {
        array(self.buffer.as_ref(), field::THA)
    }
    /// Target protocol address.
    #[inline]
    pub fn target_protocol_addr(&self) -> [u8; 4] {
        array(self.buffer.as_ref(), field::TPA)
    }
    /// True for Ethernet hardware / IPv4 protocol with the matching address lengths.
    #[inline]
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.hardware_type() == HTYPE_ETHERNET
            && self.protocol_type() == ethertype::IPV4
            && self.hardware_len() == 6
            && self.protocol_len() == 4
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes the fixed Ethernet/IPv4 type and length fields.
    pub fn set_ethernet_ipv4(&mut self) {
        let b = self.buffer.as_mut();
        set_be16(b, field::HTYPE, HTYPE_ETHERNET);
        set_be16(b, field::PTYPE, ethertype::IPV4);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
    }
    /// Sets the operation.
    #[inline]
    pub fn set_operation(&mut self, op: u16) {
        set_be16(self.buffer.as_mut(), field::OPER, op);
    }
    /// Sets the sender hardware address.
    #[inline]
    pub fn set_source_hardware_addr(&mut self, a: [u8; 6]) {
        self.buffer.as_mut()[field::SHA..field::SHA + 6].copy_from_slice(&a);
    }
    /// Sets the sender protocol address.
    #[inline]
    pub fn set_source_protocol_addr(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::SPA..field::SPA + 4].copy_from_slice(&a);
    }
    /// Sets the target hardware address.
    #[inline]
    pub fn set_target_hardware_addr(&mut self, a: [u8; 6]) {
        self.buffer.as_mut()[field::THA..field::THA + 6].copy_from_slice(&a);
    }
    /// Sets the target protocol address.
    #[inline]
    pub fn set_target_protocol_addr(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::TPA..field::TPA + 4].copy_from_slice(&a);
    }
}

/// An Ethernet/IPv4 ARP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// [`operation::REQUEST`] or [`operation::REPLY`] (others are carried through).
    pub operation: u16,
    /// Sender MAC.
    pub source_hardware_addr: [u8; 6],
    /// Sender IPv4 address.
    pub source_protocol_addr: [u8; 4],
    /// Target MAC (zero in a request).
    pub target_hardware_addr: [u8; 6],
    /// Target IPv4 address.
    pub target_protocol_addr: [u8; 4],
}

impl ArpRepr {
    /// Parses an Ethernet/IPv4 ARP packet: `Ok(None)` for ARP of another hardware or protocol
    /// type (nothing the balancer answers), `Err(TruncatedArp)` when short.
    pub fn parse(buf: &[u8]) -> Result<Option<Self>, ParseError> {
        let p = ArpPacket::new_checked(buf)?;
        if !p.is_ethernet_ipv4() {
            return Ok(None);
        }
        Ok(Some(ArpRepr {
            operation: p.operation(),
            source_hardware_addr: p.source_hardware_addr(),
            source_protocol_addr: p.source_protocol_addr(),
            target_hardware_addr: p.target_hardware_addr(),
            target_protocol_addr: p.target_protocol_addr(),
        }))
    }

    /// A request for `target_ip` from `(our_mac, our_ip)`.
    pub fn request(our_mac: [u8; 6], our_ip: [u8; 4], target_ip: [u8; 4]) -> Self {
        ArpRepr {
            operation: operation::REQUEST,
            source_hardware_addr: our_mac,
            source_protocol_addr: our_ip,
            target_hardware_addr: [0; 6],
            target_protocol_addr: target_ip,
        }
    }

    /// The reply to this request saying the target address is at `our_mac` (RFC 826: swap
    /// sender and target, fill in the sender hardware address).
    pub fn reply(&self, our_mac: [u8; 6]) -> Self {
        ArpRepr {
            operation: operation::REPLY,
            source_hardware_addr: our_mac,
            source_protocol_addr: self.target_protocol_addr,
            target_hardware_addr: self.source_hardware_addr,
            target_protocol_addr: self.source_protocol_addr,
        }
    }

    /// Bytes `emit` writes.
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet; `None` when `buf` is shorter than 28 bytes.
    pub fn emit(&self, buf: &mut [u8]) -> Option<usize> {
        let mut p = ArpPacket::new_checked(buf.get_mut(..PACKET_LEN)?).ok()?;
        p.set_ethernet_ipv4();
        p.set_operation(self.operation);
        p.set_source_hardware_addr(self.source_hardware_addr);
        p.set_source_protocol_addr(self.source_protocol_addr);
        p.set_target_hardware_addr(self.target_hardware_addr);
        p.set_target_protocol_addr(self.target_protocol_addr);
        Some(PACKET_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // eth/ipv4, request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 198, 18, 0, 2, // sender
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 198, 18, 100, 1, // target
    ];

    #[test]
    fn deconstruct() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert!(p.is_ethernet_ipv4());
        assert_eq!(p.operation(), operation::REQUEST);
        assert_eq!(p.source_hardware_addr(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(p.source_protocol_addr(), [198, 18, 0, 2]);
        assert_eq!(p.target_hardware_addr(), [0; 6]);
        assert_eq!(p.target_protocol_addr(), [198, 18, 100, 1]);
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..27]).err(),
            Some(ParseError::TruncatedArp)
        );
    }

    #[test]
    fn request_emit_matches_literal_and_reply_swaps() {
        let req = ArpRepr::request([2, 0, 0, 0, 0, 2], [198, 18, 0, 2], [198, 18, 100, 1]);
        let mut buf = [0u8; 28];
        assert_eq!(req.emit(&mut buf), Some(28));
        assert_eq!(buf, REQUEST);
        assert_eq!(ArpRepr::parse(&buf).unwrap(), Some(req));
        let rep = req.reply([2, 0, 0, 0, 0, 9]);
        assert_eq!(rep.operation, operation::REPLY);
        assert_eq!(rep.source_protocol_addr, [198, 18, 100, 1]);
        assert_eq!(rep.target_hardware_addr, [2, 0, 0, 0, 0, 2]);
        assert_eq!(rep.target_protocol_addr, [198, 18, 0, 2]);
        assert_eq!(req.emit(&mut buf[..27]), None);
    }

    #[test]
    fn other_protocol_is_none() {
        let mut b = REQUEST;
        b[3] = 0xdd;
        assert_eq!(ArpRepr::parse(&b).unwrap(), None);
    }
}
