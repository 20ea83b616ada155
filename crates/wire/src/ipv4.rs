//! IPv4 header (RFC 791): options, fragmentation fields and the header checksum.
//!
//! [`Ipv4Packet::check_len`] validates IHL and total length against the buffer, so afterwards
//! no accessor panics; `payload()` ends at the total length, dropping Ethernet padding.

use crate::bytes::{array, be16, set_be16};
use crate::checksum;
use crate::ParseError;

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

mod field {
    pub(crate) const VER_IHL: usize = 0;
    pub(crate) const DSCP_ECN: usize = 1;
    pub(crate) const LENGTH: usize = 2;
    pub(crate) const IDENT: usize = 4;
    pub(crate) const FLG_OFF: usize = 6;
    pub(crate) const TTL: usize = 8;
    pub(crate) const PROTOCOL: usize = 9;
    pub(crate) const CHECKSUM: usize = 10;
    pub(crate) const SRC: usize = 12;
    pub(crate) const DST: usize = 16;
}

/// Byte offsets of fields other modules rewrite in place.
pub(crate) const TTL_OFFSET: usize = field::TTL;
pub(crate) const CHECKSUM_OFFSET: usize = field::CHECKSUM;
pub(crate) const SRC_OFFSET: usize = field::SRC;
pub(crate) const DST_OFFSET: usize = field::DST;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps after `check_len`.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the buffer holds the fixed header, IHL ≥ 5, the header with options, and the
    /// whole packet as announced by the total length (which must cover the header).
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::TruncatedIpv4);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(ParseError::BadIhl);
        }
        if len < hl {
            return Err(ParseError::TruncatedIpv4);
        }
        let total = usize::from(self.total_len());
        if total < hl {
            return Err(ParseError::BadIpv4TotalLength);
        }
        if len < total {
            return Err(ParseError::TruncatedIpv4);
        }
        Ok(())
    }

    /// Returns the wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version nibble (4 for IPv4).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    /// Header length in bytes (IHL × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }
    /// DSCP and ECN byte (former TOS).
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }
    /// Total length of the packet in bytes.
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }
    /// Don't fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }
    /// More fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }
    /// Fragment offset in bytes (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK) << 3
    }
    /// True for any fragment, first or later.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & (FLAG_MF | OFFSET_MASK) != 0
    }
    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    /// Protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }
    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> [u8; 4] {
        array(self.buffer.as_ref(), field::SRC)
    }
    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> [u8; 4] {
        array(self.buffer.as_ref(), field::DST)
    }
    /// The options bytes between the fixed header and IHL × 4.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
    /// Iterates the options (RFC 791 §3.1 option format).
    pub fn option_iter(&self) -> OptionIter<'_> {
        OptionIter {
            rest: self.options(),
        }
    }
    /// True when the header checksum verifies.
    #[inline(always)]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(&self.buffer.as_ref()[..self.header_len()])
    }
    /// The payload, from the end of the header to the total length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version 4 and the header length in bytes (must be a multiple of 4, 20..=60).
    #[inline]
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }
    /// Sets DSCP/ECN.
    #[inline]
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }
    /// Sets the total length.
    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::LENGTH, v);
    }
    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::IDENT, v);
    }
    /// Sets the flags and the fragment offset in bytes (rounded down to 8).
    #[inline]
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, offset_bytes: u16) {
        let mut v = (offset_bytes >> 3) & OFFSET_MASK;
        if dont_frag {
            v |= FLAG_DF;
        }
        if more_frags {
            v |= FLAG_MF;
        }
        set_be16(self.buffer.as_mut(), field::FLG_OFF, v);
    }
    /// Sets TTL (checksum not updated).
    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }
    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }
    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Sets the source address (checksum not updated).
    #[inline]
    pub fn set_src_addr(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::SRC..field::SRC + 4].copy_from_slice(&a);
    }
    /// Sets the destination address (checksum not updated).
    #[inline]
    pub fn set_dst_addr(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::DST..field::DST + 4].copy_from_slice(&a);
    }
    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::checksum(&self.buffer.as_ref()[..hl]);
        self.set_checksum(c);
    }
    /// Mutable payload up to the total length.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[hl..tl]
    }
}

/// One IPv4 option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Option<'a> {
    /// End of option list (type 0).
    EndOfList,
    /// No operation (type 1).
    Nop,
    /// Any other option: its type byte and the data after the length byte.
    Other {
        /// Option type (copied flag, class, number).
        kind: u8,
        /// Bytes after the type and length bytes.
        data: &'a [u8],
    },
}

/// Iterator over IPv4 options; yields `Err(BadIpv4Option)` once and stops on a length below 2
/// or past the end of the options area.
#[derive(Debug, Clone)]
pub struct OptionIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = Result<Ipv4Option<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, tail) = self.rest.split_first()?;
        match kind {
            0 => {
                // Everything after End of Option List is padding.
                self.rest = &[];
                Some(Ok(Ipv4Option::EndOfList))
            }
            1 => {
                self.rest = tail;
                Some(Ok(Ipv4Option::Nop))
            }
            _ => {
                let len = tail.first().map(|&l| usize::from(l));
                match len {
                    Some(len) if len >= 2 && len <= self.rest.len() => {
                        let data = &self.rest[2..len];
                        self.rest = &self.rest[len..];
                        Some(Ok(Ipv4Option::Other { kind, data }))
                    }
                    _ => {
                        self.rest = &[];
                        Some(Err(ParseError::BadIpv4Option))
                    }
                }
            }
        }
    }
}

/// A header without options, for building packets on the slow path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// Payload protocol.
    pub protocol: u8,
    /// Payload length in bytes (total length − header length).
    pub payload_len: u16,
    /// Time to live.
    pub ttl: u8,
    /// DSCP/ECN byte.
    pub dscp_ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't fragment.
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Parses a checked packet: version 4 and a valid header checksum are required; options are
    /// skipped. Fragments parse (their fragment fields are not represented).
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Result<Self, ParseError> {
        p.check_len()?;
        if p.version() != 4 {
            return Err(ParseError::BadIpVersion);
        }
        if !p.verify_checksum() {
            return Err(ParseError::BadIpv4Checksum);
        }
        Ok(Ipv4Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.total_len() - p.header_len() as u16,
            ttl: p.ttl(),
            dscp_ecn: p.dscp_ecn(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
        })
    }

    /// Header bytes `emit` writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 20-byte header with its checksum; `None` if `buf` is shorter or the total
    /// length would overflow 65535.
    pub fn emit(&self, buf: &mut [u8]) -> Option<usize> {
        let total = self.payload_len.checked_add(HEADER_LEN as u16)?;
        let mut p = Ipv4Packet::new_unchecked(buf.get_mut(..HEADER_LEN)?);
        p.set_version_and_header_len(HEADER_LEN);
        p.set_dscp_ecn(self.dscp_ecn);
        p.set_total_len(total);
        p.set_ident(self.ident);
        p.set_frag(self.dont_frag, false, 0);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.fill_checksum();
        Some(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip_proto;

    /// 20-byte header + 4 bytes of options (NOP, NOP, EOL, pad) + 4 payload bytes + 2 padding.
    static PACKET: [u8; 34] = [
        0x46, 0x00, 0x00, 0x1c, // v4, IHL 6, total 28
        0x12, 0x34, 0x20, 0x03, // ident, MF, offset 3*8
        0x40, 0x11, 0x00, 0x00, // ttl 64, UDP, checksum (filled in test)
        198, 18, 0, 2, // src
        198, 18, 100, 1, // dst
        0x01, 0x01, 0x00, 0x00, // options
        0xaa, 0xbb, 0xcc, 0xdd, // payload
        0xee, 0xee, 0, 0, 0, 0, // beyond total length
    ];

    fn packet() -> [u8; 34] {
        let mut b = PACKET;
        Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    #[test]
    fn deconstruct() {
        let b = packet();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.more_frags());
        assert!(!p.dont_frag());
        assert_eq!(p.frag_offset(), 24);
        assert!(p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), ip_proto::UDP);
        assert_eq!(p.src_addr(), [198, 18, 0, 2]);
        assert_eq!(p.dst_addr(), [198, 18, 100, 1]);
        assert_eq!(p.options(), &[1, 1, 0, 0]);
        let opts: Vec<_> = p.option_iter().collect();
        assert_eq!(
            opts,
            vec![
                Ok(Ipv4Option::Nop),
                Ok(Ipv4Option::Nop),
                Ok(Ipv4Option::EndOfList)
            ]
        );
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn length_checks() {
        let b = packet();
        assert_eq!(
            Ipv4Packet::new_checked(&b[..19]).err(),
            Some(ParseError::TruncatedIpv4)
        );
        assert_eq!(
            Ipv4Packet::new_checked(&b[..23]).err(),
            Some(ParseError::TruncatedIpv4)
        );
        assert_eq!(
            Ipv4Packet::new_checked(&b[..27]).err(),
            Some(ParseError::TruncatedIpv4)
        );
        let mut bad = b;
        bad[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).err(),
            Some(ParseError::BadIhl)
        );
        let mut bad = b;
        bad[3] = 23;
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).err(),
            Some(ParseError::BadIpv4TotalLength)
        );
        let mut bad = b;
        bad[8] ^= 1;
        assert!(!Ipv4Packet::new_checked(&bad[..]).unwrap().verify_checksum());
    }

    #[test]
    fn options_with_data_and_malformed() {
        let opts = [0x94, 0x04, 0x00, 0x00, 0x07, 0x01];
        let it = OptionIter { rest: &opts };
        let v: Vec<_> = it.collect();
        assert_eq!(
            v[0],
            Ok(Ipv4Option::Other {
                kind: 0x94,
                data: &[0, 0]
            })
        );
        assert_eq!(v[1], Err(ParseError::BadIpv4Option));
        assert_eq!(v.len(), 2);
        let v: Vec<_> = OptionIter { rest: &[0x07] }.collect();
        assert_eq!(v, vec![Err(ParseError::BadIpv4Option)]);
    }

    #[test]
    fn repr_round_trip() {
        let r = Ipv4Repr {
            src: [198, 18, 0, 1],
            dst: [198, 18, 0, 2],
            protocol: ip_proto::ICMP,
            payload_len: 8,
            ttl: 64,
            dscp_ecn: 0,
            ident: 7,
            dont_frag: true,
        };
        let mut buf = [0u8; 28];
        assert_eq!(r.emit(&mut buf), Some(20));
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p).unwrap(), r);
        assert_eq!(r.emit(&mut buf[..19]), None);
        let mut bad = buf;
        bad[0] = 0x65;
        assert_eq!(
            Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&bad[..])),
            Err(ParseError::BadIpVersion)
        );
    }
}
