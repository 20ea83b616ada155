//! ICMPv6 (RFC 4443) and the neighbour discovery messages the slow path answers (RFC 4861
//! §4.3-4.4 with the link-layer address options of §4.6.1).
//!
//! After [`Icmpv6Packet::check_len`] (8-byte header) no accessor panics; NDP accessors read
//! within `check_ndp_len`. Unlike ICMPv4 the checksum covers the IPv6 pseudo-header
//! (RFC 4443 §2.3).

use crate::bytes::{array, be16, be32, set_be16, set_be32};
use crate::checksum;
use crate::ip_proto;
use crate::ParseError;

/// Length of the header including the 4 type-specific bytes.
pub const HEADER_LEN: usize = 8;
/// Length of an NS/NA body up to its options (header + target address).
pub const NDP_LEN: usize = 24;

/// Message types.
pub mod msg_type {
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: u8 = 1;
    /// Packet too big (carries the MTU).
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Router solicitation.
    pub const ROUTER_SOLICIT: u8 = 133;
    /// Router advertisement.
    pub const ROUTER_ADVERT: u8 = 134;
    /// Neighbour solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbour advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
    /// Redirect.
    pub const REDIRECT: u8 = 137;
}

/// Destination unreachable codes (RFC 4443 §3.1).
pub mod unreach_code {
    /// Port unreachable.
    pub const PORT: u8 = 4;
}

/// Neighbour advertisement flags (RFC 4861 §4.4), in the first byte after the checksum.
pub mod na_flags {
    /// Sender is a router.
    pub const ROUTER: u8 = 0x80;
    /// Sent in response to a solicitation.
    pub const SOLICITED: u8 = 0x40;
    /// Override an existing cache entry.
    pub const OVERRIDE: u8 = 0x20;
}

/// NDP option types for link-layer addresses (RFC 4861 §4.6.1).
pub mod ndp_option {
    /// Source link-layer address.
    pub const SOURCE_LLADDR: u8 = 1;
    /// Target link-layer address.
    pub const TARGET_LLADDR: u8 = 2;
}

/// True for the error messages that quote the offending packet (RFC 4443 §3, types < 128).
#[inline]
pub fn is_error(ty: u8) -> bool {
    matches!(
        ty,
        msg_type::DEST_UNREACHABLE
            | msg_type::PACKET_TOO_BIG
            | msg_type::TIME_EXCEEDED
            | msg_type::PARAM_PROBLEM
    )
}

mod field {
    pub(crate) const TYPE: usize = 0;
    pub(crate) const CODE: usize = 1;
    pub(crate) const CHECKSUM: usize = 2;
    pub(crate) const WORD: usize = 4;
    pub(crate) const ECHO_SEQ: usize = 6;
    pub(crate) const NDP_TARGET: usize = 8;
}

pub(crate) const CHECKSUM_OFFSET: usize = field::CHECKSUM;

/// A view of an ICMPv6 message.
#[derive(Debug, Clone)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wraps without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
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
            Err(ParseError::TruncatedIcmpv6)
        } else {
            Ok(())
        }
    }

    /// Checks the 24 bytes of an NS/NA (header + target) are present.
    pub fn check_ndp_len(&self) -> Result<(), ParseError> {
        if self.buffer.as_ref().len() < NDP_LEN {
            Err(ParseError::TruncatedIcmpv6)
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
    /// Echo identifier.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WORD)
    }
    /// Echo sequence number.
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_SEQ)
    }
    /// MTU of a packet-too-big message.
    #[inline]
    pub fn mtu(&self) -> u32 {
        be32(self.buffer.as_ref(), field::WORD)
    }
    /// Pointer of a parameter-problem message.
    #[inline]
    pub fn pointer(&self) -> u32 {
        be32(self.buffer.as_ref(), field::WORD)
    }
    /// Flags byte of a neighbour advertisement ([`na_flags`]).
    #[inline]
    pub fn na_flags(&self) -> u8 {
        self.buffer.as_ref()[field::WORD]
    }
    /// Target address of an NS/NA; requires `check_ndp_len`.
    #[inline]
    pub fn ndp_target(&self) -> [u8; 16] {
        array(self.buffer.as_ref(), field::NDP_TARGET)
    }
    /// Options of an NS/NA (after the target); requires `check_ndp_len`.
    #[inline]
    pub fn ndp_options(&self) -> &[u8] {
        &self.buffer.as_ref()[NDP_LEN..]
    }
    /// Finds an Ethernet link-layer address option of type `kind` in the NS/NA options.
    /// Malformed options (length 0, RFC 4861 §4.6 says discard) end the search with `None`.
    pub fn ndp_lladdr(&self, kind: u8) -> Option<[u8; 6]> {
        let mut rest = self.buffer.as_ref().get(NDP_LEN..)?;
        while rest.len() >= 2 {
            let len = usize::from(rest[1]) * 8;
            if len == 0 || len > rest.len() {
                return None;
            }
            if rest[0] == kind && len >= 8 {
                return Some(array(rest, 2));
            }
            rest = &rest[len..];
        }
        None
    }
    /// Bytes after the 8-byte header: echo data or the quoted packet of an error.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// Verifies the checksum with the pseudo-header of `src`/`dst`.
    pub fn verify_checksum(&self, src: &[u8; 16], dst: &[u8; 16]) -> bool {
        let b = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header_v6(src, dst, ip_proto::ICMPV6, b.len() as u32);
        checksum::fold(pseudo + checksum::data_sum(b)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
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
    /// Sets the 4 type-specific bytes (MTU, pointer, echo id+seq, NA flags+reserved).
    #[inline]
    pub fn set_word(&mut self, v: u32) {
        set_be32(self.buffer.as_mut(), field::WORD, v);
    }
    /// Mutable data after the header.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
    /// Recomputes the checksum with the pseudo-header of `src`/`dst`.
    pub fn fill_checksum(&mut self, src: &[u8; 16], dst: &[u8; 16]) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header_v6(src, dst, ip_proto::ICMPV6, b.len() as u32);
        let c = !checksum::fold(pseudo + checksum::data_sum(b));
        self.set_checksum(c);
    }
}

/// ICMPv6 messages the slow path builds or answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv6Repr<'a> {
    /// Echo request.
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Destination unreachable with the quoted packet.
    DstUnreachable {
        /// Code.
        code: u8,
        /// Quoted packet.
        data: &'a [u8],
    },
    /// Packet too big (RFC 4443 §3.2) with the quoted packet.
    PacketTooBig {
        /// MTU of the next hop.
        mtu: u32,
        /// Quoted packet.
        data: &'a [u8],
    },
    /// Time exceeded with the quoted packet.
    TimeExceeded {
        /// Code.
        code: u8,
        /// Quoted packet.
        data: &'a [u8],
    },
    /// Neighbour solicitation (RFC 4861 §4.3).
    NeighborSolicit {
        /// Address being resolved.
        target: [u8; 16],
        /// Source link-layer address option (absent for DAD from ::).
        lladdr: Option<[u8; 6]>,
    },
    /// Neighbour advertisement (RFC 4861 §4.4).
    NeighborAdvert {
        /// [`na_flags`] bits.
        flags: u8,
        /// Address advertised.
        target: [u8; 16],
        /// Target link-layer address option.
        lladdr: Option<[u8; 6]>,
    },
}

impl<'a> Icmpv6Repr<'a> {
    /// Parses the ICMPv6 message in `buf` received from `src` to `dst`: `Err` when shorter than
    /// its header, `Ok(None)` for a bad checksum or an unrepresented type.
    pub fn parse(
        buf: &'a [u8],
        src: &[u8; 16],
        dst: &[u8; 16],
    ) -> Result<Option<Self>, ParseError> {
        let p = Icmpv6Packet::new_checked(buf)?;
        if !p.verify_checksum(src, dst) {
            return Ok(None);
        }
        let data = &buf[HEADER_LEN..];
        Ok(match p.msg_type() {
            msg_type::ECHO_REQUEST => Some(Icmpv6Repr::EchoRequest {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            }),
            msg_type::ECHO_REPLY => Some(Icmpv6Repr::EchoReply {
                ident: p.echo_ident(),
                seq_no: p.echo_seq_no(),
                data,
            }),
            msg_type::DEST_UNREACHABLE => Some(Icmpv6Repr::DstUnreachable {
                code: p.code(),
                data,
            }),
            msg_type::PACKET_TOO_BIG => Some(Icmpv6Repr::PacketTooBig { mtu: p.mtu(), data }),
            msg_type::TIME_EXCEEDED => Some(Icmpv6Repr::TimeExceeded {
                code: p.code(),
                data,
            }),
            msg_type::NEIGHBOR_SOLICIT => {
                p.check_ndp_len()?;
                Some(Icmpv6Repr::NeighborSolicit {
                    target: p.ndp_target(),
                    lladdr: p.ndp_lladdr(ndp_option::SOURCE_LLADDR),
                })
            }
            msg_type::NEIGHBOR_ADVERT => {
                p.check_ndp_len()?;
                Some(Icmpv6Repr::NeighborAdvert {
                    flags: p.na_flags(),
                    target: p.ndp_target(),
                    lladdr: p.ndp_lladdr(ndp_option::TARGET_LLADDR),
                })
            }
            _ => None,
        })
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            Icmpv6Repr::EchoRequest { data, .. }
            | Icmpv6Repr::EchoReply { data, .. }
            | Icmpv6Repr::DstUnreachable { data, .. }
            | Icmpv6Repr::PacketTooBig { data, .. }
            | Icmpv6Repr::TimeExceeded { data, .. } => HEADER_LEN + data.len(),
            Icmpv6Repr::NeighborSolicit { lladdr, .. }
            | Icmpv6Repr::NeighborAdvert { lladdr, .. } => {
                NDP_LEN + if lladdr.is_some() { 8 } else { 0 }
            }
        }
    }

    /// Writes the message and its checksum for a packet from `src` to `dst`; `None` when `buf`
    /// is short.
    pub fn emit(&self, src: &[u8; 16], dst: &[u8; 16], buf: &mut [u8]) -> Option<usize> {
        let len = self.buffer_len();
        let mut p = Icmpv6Packet::new_unchecked(buf.get_mut(..len)?);
        let echo_word = |ident: u16, seq: u16| (u32::from(ident) << 16) | u32::from(seq);
        let (ty, code, word, data): (u8, u8, u32, &[u8]) = match *self {
            Icmpv6Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => (msg_type::ECHO_REQUEST, 0, echo_word(ident, seq_no), data),
            Icmpv6Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => (msg_type::ECHO_REPLY, 0, echo_word(ident, seq_no), data),
            Icmpv6Repr::DstUnreachable { code, data } => {
                (msg_type::DEST_UNREACHABLE, code, 0, data)
            }
            Icmpv6Repr::PacketTooBig { mtu, data } => (msg_type::PACKET_TOO_BIG, 0, mtu, data),
            Icmpv6Repr::TimeExceeded { code, data } => (msg_type::TIME_EXCEEDED, code, 0, data),
            Icmpv6Repr::NeighborSolicit { .. } => (msg_type::NEIGHBOR_SOLICIT, 0, 0, &[]),
            Icmpv6Repr::NeighborAdvert { flags, .. } => {
                (msg_type::NEIGHBOR_ADVERT, 0, u32::from(flags) << 24, &[])
            }
        };
        p.set_msg_type(ty);
        p.set_code(code);
        p.set_word(word);
        match *self {
            Icmpv6Repr::NeighborSolicit { target, lladdr }
            | Icmpv6Repr::NeighborAdvert { target, lladdr, .. } => {
                let d = p.data_mut();
                d[..16].copy_from_slice(&target);
                if let Some(mac) = lladdr {
                    d[16] = if ty == msg_type::NEIGHBOR_SOLICIT {
                        ndp_option::SOURCE_LLADDR
                    } else {
                        ndp_option::TARGET_LLADDR
                    };
                    d[17] = 1;
                    d[18..24].copy_from_slice(&mac);
                }
            }
            _ => p.data_mut().copy_from_slice(data),
        }
        p.fill_checksum(src, dst);
        Some(len)
    }
}

/// The solicited-node multicast address for `addr` (RFC 4291 §2.7.1): ff02::1:ffXX:XXXX.
pub fn solicited_node(addr: &[u8; 16]) -> [u8; 16] {
    let mut a = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0, 0, 0];
    a[13..].copy_from_slice(&addr[13..]);
    a
}

/// The Ethernet multicast MAC for an IPv6 multicast address (RFC 2464 §7): 33:33 + low 32 bits.
pub fn multicast_mac(addr: &[u8; 16]) -> [u8; 6] {
    [0x33, 0x33, addr[12], addr[13], addr[14], addr[15]]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: [u8; 16] = [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    const DST: [u8; 16] = [0x20, 0x01, 0, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1];

    /// Neighbour solicitation for DST with a source link-layer option; checksum zero here and
    /// filled by the test.
    static NS: [u8; 32] = [
        135, 0, 0, 0, 0, 0, 0, 0, // type, code, checksum, reserved
        0x20, 0x01, 0, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, // target
        1, 1, 0x02, 0, 0, 0, 0, 0x02, // SLLA option
    ];

    #[test]
    fn deconstruct_ns() {
        let mut b = NS;
        Icmpv6Packet::new_unchecked(&mut b[..]).fill_checksum(&SRC, &DST);
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        p.check_ndp_len().unwrap();
        assert_eq!(p.msg_type(), msg_type::NEIGHBOR_SOLICIT);
        assert_eq!(p.ndp_target(), DST);
        assert_eq!(
            p.ndp_lladdr(ndp_option::SOURCE_LLADDR),
            Some([2, 0, 0, 0, 0, 2])
        );
        assert_eq!(p.ndp_lladdr(ndp_option::TARGET_LLADDR), None);
        assert!(p.verify_checksum(&SRC, &DST));
        assert!(!p.verify_checksum(&DST, &DST));
        let r = Icmpv6Repr::parse(&b, &SRC, &DST).unwrap().unwrap();
        assert_eq!(
            r,
            Icmpv6Repr::NeighborSolicit {
                target: DST,
                lladdr: Some([2, 0, 0, 0, 0, 2])
            }
        );
        let mut out = [0u8; 32];
        assert_eq!(r.emit(&SRC, &DST, &mut out), Some(32));
        assert_eq!(out, b);
        assert_eq!(
            Icmpv6Packet::new_checked(&b[..7]).err(),
            Some(ParseError::TruncatedIcmpv6)
        );
        // A zero-length option is malformed and ignored.
        let mut z = NS;
        z[25] = 0;
        assert_eq!(Icmpv6Packet::new_unchecked(&z[..]).ndp_lladdr(1), None);
    }

    #[test]
    fn na_and_echo_and_ptb_round_trip() {
        let na = Icmpv6Repr::NeighborAdvert {
            flags: na_flags::SOLICITED | na_flags::OVERRIDE,
            target: DST,
            lladdr: Some([2, 0, 0, 0, 0, 9]),
        };
        let mut out = [0u8; 64];
        let n = na.emit(&DST, &SRC, &mut out).unwrap();
        assert_eq!(n, 32);
        assert_eq!(out[4], 0x60);
        assert_eq!(out[24], ndp_option::TARGET_LLADDR);
        assert_eq!(Icmpv6Repr::parse(&out[..n], &DST, &SRC).unwrap(), Some(na));

        let echo = Icmpv6Repr::EchoReply {
            ident: 7,
            seq_no: 9,
            data: b"hi",
        };
        let n = echo.emit(&SRC, &DST, &mut out).unwrap();
        assert_eq!(&out[..n], &[129, 0, out[2], out[3], 0, 7, 0, 9, b'h', b'i']);
        assert_eq!(
            Icmpv6Repr::parse(&out[..n], &SRC, &DST).unwrap(),
            Some(echo)
        );

        let quoted = [0x60u8; 48];
        let ptb = Icmpv6Repr::PacketTooBig {
            mtu: 1280,
            data: &quoted,
        };
        let n = ptb.emit(&SRC, &DST, &mut out).unwrap();
        let p = Icmpv6Packet::new_checked(&out[..n]).unwrap();
        assert_eq!((p.msg_type(), p.mtu()), (msg_type::PACKET_TOO_BIG, 1280));
        assert!(is_error(p.msg_type()));
        assert_eq!(ptb.emit(&SRC, &DST, &mut out[..55]), None);
    }

    #[test]
    fn multicast_helpers() {
        let sn = solicited_node(&DST);
        assert_eq!(sn, [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 1]);
        assert_eq!(multicast_mac(&sn), [0x33, 0x33, 0xff, 0, 0, 1]);
    }
}
