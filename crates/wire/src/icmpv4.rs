//! ICMPv4 (RFC 792, RFC 1191 for the next-hop MTU of "fragmentation needed").
//!
//! After [`Icmpv4Packet::check_len`] (8-byte header) no accessor panics. ICMPv4 has no
//! pseudo-header: its checksum covers the ICMP message only.

use crate::bytes::{be16, set_be16};
use crate::checksum;
use crate::ParseError;

/// Length of the header including the 4 type-specific bytes.
pub const HEADER_LEN: usize = 8;

/// Message types the balancer handles.
pub mod msg_type {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Source quench (deprecated by RFC 6633, still translated by IPVS).
    pub const SOURCE_QUENCH: u8 = 4;
    /// Redirect.
    pub const REDIRECT: u8 = 5;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 12;
}

/// Destination-unreachable codes.
pub mod unreach_code {
    /// Port unreachable.
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set (RFC 1191: carries the next-hop MTU).
    pub const FRAG_NEEDED: u8 = 4;
}

/// True for error messages that quote the offending packet and which the balancer translates
/// with their flow (IPVS `ip_vs_in_icmp` handles unreachable, source quench and time exceeded;
/// parameter problem quotes the packet the same way).
#[inline]
pub fn is_error(ty: u8) -> bool {
    matches!(
        ty,
        msg_type::DEST_UNREACHABLE
            | msg_type::SOURCE_QUENCH
            | msg_type::TIME_EXCEEDED
            | msg_type::PARAM_PROBLEM
    )
}

mod field {
    pub(crate) const TYPE: usize = 0;
    pub(crate) const CODE: usize = 1;
    pub(crate) const CHECKSUM: usize = 2;
    pub(crate) const ECHO_IDENT: usize = 4;
    pub(crate) const ECHO_SEQ: usize = 6;
    pub(crate) const NEXT_HOP_MTU: usize = 6;
}

pub(crate) const CHECKSUM_OFFSET: usize = field::CHECKSUM;

/// A view of an ICMPv4 message.
#[derive(Debug, Clone)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }

    /// Wraps after `check_len`.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the 8-byte header is present.
    pub fn check_len(&self) -> Result<(), ParseError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(ParseError::TruncatedIcmp)
        } else {
            Ok(())
        }
    }

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    /// Code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Echo identifier (echo request/reply).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_IDENT)
    }
    /// Echo sequence number (echo request/reply).
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_SEQ)
    }
    /// Next-hop MTU of a fragmentation-needed message (RFC 1191).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        be16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }
    /// Bytes after the 8-byte header: echo data, or the quoted packet of an error.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// True when the checksum over the whole buffer verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Sets the type.
    #[inline]
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }
    /// Sets the code.
    #[inline]
    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }
    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Sets the echo identifier.
    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::ECHO_IDENT, v);
    }
    /// Sets the echo sequence number.
    #[inline]
    pub fn set_echo_seq_no(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::ECHO_SEQ, v);
    }
    /// Sets the 4 type-specific bytes from two 16-bit words (e.g. unused + next-hop MTU).
    #[inline]
    pub fn set_rest_of_header(&mut self, hi: u16, lo: u16) {
        set_be16(self.buffer.as_mut(), 4, hi);
        set_be16(self.buffer.as_mut(), 6, lo);
    }
    /// Mutable data after the header.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
    /// Recomputes the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

/// ICMPv4 messages the slow path builds or answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv4Repr<'a> {
    /// Echo request.
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// Echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// Destination unreachable; `next_hop_mtu` is meaningful for code 4 (RFC 1191) and zero
    /// otherwise. `data` is the quoted packet: its IP header and at least 8 bytes (RFC 792).
    DstUnreachable {
        /// Code.
        code: u8,
        /// Next-hop MTU.
        next_hop_mtu: u16,
        /// Quoted packet.
        data: &'a [u8],
    },
    /// Time exceeded.
    TimeExceeded {
        /// Code (0 TTL exceeded in transit, 1 reassembly time exceeded).
        code: u8,
        /// Quoted packet.
        data: &'a [u8],
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Parses the ICMP message in `buf`: `Err` when shorter than its header, `Ok(None)` for a
    /// bad checksum or a type not represented here.
    pub fn parse(buf: &'a [u8]) -> Result<Option<Self>, ParseError> {
        let p = Icmpv4Packet::new_checked(buf)?;
        if !p.verify_checksum() {
            return Ok(None);
        }
        let data = &buf[HEADER_LEN..];
        Ok(match p.msg_type() {
            msg_type::ECHO_REQUEST => Some(Icmpv4Repr::EchoRequest {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            }),
            msg_type::ECHO_REPLY => Some(Icmpv4Repr::EchoReply {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            }),
            msg_type::DEST_UNREACHABLE => Some(Icmpv4Repr::DstUnreachable {
                code: p.code(),
                next_hop_mtu: p.next_hop_mtu(),
                data,
            }),
            msg_type::TIME_EXCEEDED => Some(Icmpv4Repr::TimeExceeded {
                code: p.code(),
                data,
            }),
            _ => None,
        })
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Icmpv4Repr::EchoRequest { data, .. }
                | Icmpv4Repr::EchoReply { data, .. }
                | Icmpv4Repr::DstUnreachable { data, .. }
                | Icmpv4Repr::TimeExceeded { data, .. } => data.len(),
            }
    }

    /// Writes the message with its checksum; `None` when `buf` is short.
    pub fn emit(&self, buf: &mut [u8]) -> Option<usize> {
        let len = self.buffer_len();
        let mut p = Icmpv4Packet::new_unchecked(buf.get_mut(..len)?);
        let (ty, code, hi, lo, data) = match *self {
            Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => (msg_type::ECHO_REQUEST, 0, ident, seq_no, data),
            Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => (msg_type::ECHO_REPLY, 0, ident, seq_no, data),
            Icmpv4Repr::DstUnreachable {
                code,
                next_hop_mtu,
                data,
            } => (msg_type::DEST_UNREACHABLE, code, 0, next_hop_mtu, data),
            Icmpv4Repr::TimeExceeded { code, data } => (msg_type::TIME_EXCEEDED, code, 0, 0, data),
        };
        p.set_msg_type(ty);
        p.set_code(code);
        p.set_rest_of_header(hi, lo);
        p.data_mut().copy_from_slice(data);
        p.fill_checksum();
        Some(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echo request, id 0x1234 seq 1, data "abcd"; the checksum is filled in by `echo()` and
    /// compared with the hand sum of its words in `deconstruct`.
    static ECHO: [u8; 12] = [
        0x08, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64,
    ];

    fn echo() -> [u8; 12] {
        let mut b = ECHO;
        Icmpv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    #[test]
    fn deconstruct() {
        let b = echo();
        let sum: u32 = 0x0800 + 0x1234 + 0x0001 + 0x6162 + 0x6364;
        assert_eq!(u16::from_be_bytes([b[2], b[3]]), !(sum as u16));
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), msg_type::ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.data(), b"abcd");
        assert!(p.verify_checksum());
        assert_eq!(
            Icmpv4Packet::new_checked(&b[..7]).err(),
            Some(ParseError::TruncatedIcmp)
        );
        assert!(is_error(msg_type::DEST_UNREACHABLE));
        assert!(!is_error(msg_type::ECHO_REQUEST));
    }

    #[test]
    fn repr_echo_reply_and_frag_needed() {
        let b = echo();
        let req = Icmpv4Repr::parse(&b).unwrap().unwrap();
        let Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        } = req
        else {
            panic!("not echo")
        };
        let reply = Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data,
        };
        let mut out = [0u8; 12];
        assert_eq!(reply.emit(&mut out), Some(12));
        let rp = Icmpv4Packet::new_checked(&out[..]).unwrap();
        assert_eq!(rp.msg_type(), msg_type::ECHO_REPLY);
        assert!(rp.verify_checksum());
        assert_eq!(Icmpv4Repr::parse(&out).unwrap(), Some(reply));

        let quoted = [0x45u8; 28];
        let fnd = Icmpv4Repr::DstUnreachable {
            code: unreach_code::FRAG_NEEDED,
            next_hop_mtu: 1400,
            data: &quoted,
        };
        let mut out = [0u8; 36];
        assert_eq!(fnd.emit(&mut out), Some(36));
        let fp = Icmpv4Packet::new_checked(&out[..]).unwrap();
        assert_eq!((fp.msg_type(), fp.code(), fp.next_hop_mtu()), (3, 4, 1400));
        assert!(fp.verify_checksum());
        assert_eq!(fnd.emit(&mut out[..35]), None);
        let mut bad = out;
        bad[9] ^= 0xff;
        assert_eq!(Icmpv4Repr::parse(&bad).unwrap(), None);
        assert_eq!(Icmpv4Repr::parse(&bad[..7]), Err(ParseError::TruncatedIcmp));
    }
}
