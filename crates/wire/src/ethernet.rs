//! Ethernet II frames with IEEE 802.1Q VLAN tags, including QinQ (802.1ad S-tag followed by a
//! C-tag).
//!
//! After [`EthernetFrame::check_len`] succeeds no accessor panics. Frames are read at byte
//! offsets; nothing is cast.

use crate::bytes::{array, be16, set_be16};
use crate::ParseError;

/// Ethertypes the balancer understands (IEEE registry).
pub mod ethertype {
    /// IPv4 (RFC 894).
    pub const IPV4: u16 = 0x0800;
    /// ARP (RFC 826).
    pub const ARP: u16 = 0x0806;
    /// IPv6 (RFC 2464).
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service VLAN tag (QinQ outer).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ outer tag still emitted by some switches.
    pub const QINQ_LEGACY: u16 = 0x9100;
}

/// Length of the untagged Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// Length of one VLAN tag (TCI + inner ethertype).
pub const VLAN_TAG_LEN: usize = 4;

mod field {
    pub(crate) type Field = core::ops::Range<usize>;
    pub(crate) const DESTINATION: Field = 0..6;
    pub(crate) const SOURCE: Field = 6..12;
    pub(crate) const ETHERTYPE: usize = 12;
    pub(crate) const PAYLOAD: usize = 14;
}

/// A view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer without checking its length; accessors may panic until `check_len`.
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer after checking it holds the 14-byte header.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Ensures the fixed header is present.
    pub fn check_len(&self) -> Result<(), ParseError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(ParseError::TruncatedEthernet)
        } else {
            Ok(())
        }
    }

    /// Returns the wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC.
    #[inline]
    pub fn dst_addr(&self) -> [u8; 6] {
        array(self.buffer.as_ref(), field::DESTINATION.start)
    }

    /// Source MAC.
    #[inline]
    pub fn src_addr(&self) -> [u8; 6] {
        array(self.buffer.as_ref(), field::SOURCE.start)
    }

    /// The outer ethertype (a VLAN TPID when tagged).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// Everything after the 14-byte header (tags included when tagged).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC.
    #[inline]
    pub fn set_dst_addr(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&mac);
    }

    /// Sets the source MAC.
    #[inline]
    pub fn set_src_addr(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&mac);
    }

    /// Sets the outer ethertype.
    #[inline]
    pub fn set_ethertype(&mut self, ty: u16) {
        set_be16(self.buffer.as_mut(), field::ETHERTYPE, ty);
    }

    /// Mutable payload after the 14-byte header.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// A view of one 802.1Q tag: TCI (PCP 3 bits, DEI 1 bit, VID 12 bits) then the next ethertype.
#[derive(Debug, Clone)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        VlanTag { buffer }
    }

    /// Wraps a buffer after checking it holds a 4-byte tag.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let t = Self::new_unchecked(buffer);
        t.check_len()?;
        Ok(t)
    }

    /// Ensures the 4 tag bytes are present.
    pub fn check_len(&self) -> Result<(), ParseError> {
        if self.buffer.as_ref().len() < VLAN_TAG_LEN {
            Err(ParseError::TruncatedVlan)
        } else {
            Ok(())
        }
    }

    /// Priority code point (802.1p).
    #[inline]
    pub fn pcp(&self) -> u8 {
        self.buffer.as_ref()[0] >> 5
    }

    /// Drop eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        self.buffer.as_ref()[0] & 0x10 != 0
    }

    /// VLAN identifier (12 bits).
    #[inline]
    pub fn vid(&self) -> u16 {
        be16(self.buffer.as_ref(), 0) & 0x0fff
    }

    /// The ethertype that follows this tag.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    /// Sets the VLAN id, keeping PCP and DEI.
    #[inline]
    pub fn set_vid(&mut self, vid: u16) {
        let b = self.buffer.as_mut();
        let tci = (be16(b, 0) & 0xf000) | (vid & 0x0fff);
        set_be16(b, 0, tci);
    }

    /// Sets the inner ethertype.
    #[inline]
    pub fn set_ethertype(&mut self, ty: u16) {
        set_be16(self.buffer.as_mut(), 2, ty);
    }
}

/// The result of walking the link-layer header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Header {
    /// VLAN id of the outermost tag, if tagged.
    pub vlan: Option<u16>,
    /// VLAN id of the inner (C-) tag of a QinQ frame.
    pub inner_vlan: Option<u16>,
    /// The ethertype of the payload after all tags.
    pub ethertype: u16,
    /// Offset of the L3 header from the frame start (14, 18 or 22).
    pub l3_off: usize,
}

#[inline]
fn is_tag(ty: u16) -> bool {
    ty == ethertype::VLAN || ty == ethertype::QINQ || ty == ethertype::QINQ_LEGACY
}

/// Walks the Ethernet header and up to two VLAN tags (QinQ). A third tag is refused rather
/// than walked: no deployment of the balancer stacks more, and it bounds the work.
#[inline]
pub fn parse_l2(frame: &[u8]) -> Result<L2Header, ParseError> {
    let eth = EthernetFrame::new_checked(frame)?;
    let mut ty = eth.ethertype();
    let mut off = HEADER_LEN;
    let mut vlan = None;
    let mut inner_vlan = None;
    if is_tag(ty) {
        let tag = VlanTag::new_checked(&frame[off..])?;
        vlan = Some(tag.vid());
        ty = tag.ethertype();
        off += VLAN_TAG_LEN;
        if is_tag(ty) {
            let tag = VlanTag::new_checked(&frame[off..])?;
            inner_vlan = Some(tag.vid());
            ty = tag.ethertype();
            off += VLAN_TAG_LEN;
            if is_tag(ty) {
                return Err(ParseError::TooManyVlanTags);
            }
        }
    }
    Ok(L2Header {
        vlan,
        inner_vlan,
        ethertype: ty,
        l3_off: off,
    })
}

/// High-level description of an Ethernet header with at most one 802.1Q tag, for building.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Source MAC.
    pub src: [u8; 6],
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Payload ethertype (after the tag).
    pub ethertype: u16,
    /// 802.1Q VLAN id to tag with, if any.
    pub vlan: Option<u16>,
}

impl EthernetRepr {
    /// Parses the header (the outer tag only when QinQ).
    pub fn parse(frame: &[u8]) -> Result<Self, ParseError> {
        let l2 = parse_l2(frame)?;
        let eth = EthernetFrame::new_unchecked(frame);
        Ok(EthernetRepr {
            src: eth.src_addr(),
            dst: eth.dst_addr(),
            ethertype: l2.ethertype,
            vlan: l2.vlan,
        })
    }

    /// Bytes `emit` writes: 14, or 18 with a tag.
    pub const fn header_len(&self) -> usize {
        match self.vlan {
            Some(_) => HEADER_LEN + VLAN_TAG_LEN,
            None => HEADER_LEN,
        }
    }

    /// Writes the header at the start of `buf`; returns its length, or `None` if `buf` is short.
    pub fn emit(&self, buf: &mut [u8]) -> Option<usize> {
        let len = self.header_len();
        let hdr = buf.get_mut(..len)?;
        hdr[field::DESTINATION].copy_from_slice(&self.dst);
        hdr[field::SOURCE].copy_from_slice(&self.src);
        match self.vlan {
            Some(vid) => {
                set_be16(hdr, 12, ethertype::VLAN);
                set_be16(hdr, 14, vid & 0x0fff);
                set_be16(hdr, 16, self.ethertype);
            }
            None => set_be16(hdr, 12, self.ethertype),
        }
        Some(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static UNTAGGED: [u8; 16] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // src
        0x08, 0x00, // IPv4
        0x45, 0x00,
    ];

    static QINQ: [u8; 24] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // src
        0x88, 0xa8, 0x20, 0x64, // S-tag PCP 1, VID 100
        0x81, 0x00, 0x00, 0x07, // C-tag VID 7
        0x86, 0xdd, // IPv6
        0x60, 0x00,
    ];

    #[test]
    fn deconstruct_untagged() {
        let f = EthernetFrame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(f.dst_addr(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(f.src_addr(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(f.ethertype(), ethertype::IPV4);
        assert_eq!(f.payload(), &[0x45, 0x00]);
        let l2 = parse_l2(&UNTAGGED).unwrap();
        assert_eq!(
            l2,
            L2Header {
                vlan: None,
                inner_vlan: None,
                ethertype: ethertype::IPV4,
                l3_off: 14
            }
        );
    }

    #[test]
    fn deconstruct_qinq() {
        let l2 = parse_l2(&QINQ).unwrap();
        assert_eq!(
            l2,
            L2Header {
                vlan: Some(100),
                inner_vlan: Some(7),
                ethertype: ethertype::IPV6,
                l3_off: 22
            }
        );
        let tag = VlanTag::new_checked(&QINQ[14..]).unwrap();
        assert_eq!(tag.pcp(), 1);
        assert!(!tag.dei());
        assert_eq!(tag.ethertype(), ethertype::VLAN);
    }

    #[test]
    fn truncations_and_triple_tag() {
        assert_eq!(
            parse_l2(&UNTAGGED[..13]),
            Err(ParseError::TruncatedEthernet)
        );
        assert_eq!(parse_l2(&QINQ[..17]), Err(ParseError::TruncatedVlan));
        assert_eq!(parse_l2(&QINQ[..21]), Err(ParseError::TruncatedVlan));
        let mut triple = QINQ;
        triple[20] = 0x81;
        triple[21] = 0x00;
        assert_eq!(parse_l2(&triple), Err(ParseError::TooManyVlanTags));
    }

    #[test]
    fn construct_and_repr_round_trip() {
        let mut buf = [0u8; 18];
        let repr = EthernetRepr {
            src: [2, 0, 0, 0, 0, 2],
            dst: [2, 0, 0, 0, 0, 1],
            ethertype: ethertype::ARP,
            vlan: Some(42),
        };
        assert_eq!(repr.emit(&mut buf), Some(18));
        assert_eq!(EthernetRepr::parse(&buf).unwrap(), repr);
        assert_eq!(repr.emit(&mut buf[..17]), None);
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.set_dst_addr([9; 6]);
        f.set_src_addr([8; 6]);
        f.set_ethertype(ethertype::QINQ);
        assert_eq!(
            &buf[..14],
            &[9, 9, 9, 9, 9, 9, 8, 8, 8, 8, 8, 8, 0x88, 0xa8]
        );
        let mut tag = VlanTag::new_checked(&mut buf[14..]).unwrap();
        tag.set_vid(0xfff);
        tag.set_ethertype(ethertype::IPV4);
        assert_eq!(&buf[14..18], &[0x0f, 0xff, 0x08, 0x00]);
    }
}
