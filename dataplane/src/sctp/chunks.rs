//! What the SCTP stage reads from a packet's chunks, and the one rewrite that changes their
//! bytes: removing address parameters from INIT / INIT-ACK for NAT and FullNAT.
//!
//! `uvs_wire::classify` has already walked every chunk of an unfragmented packet (a chunk
//! length below 4 or past the end is a parse error), so offsets here stay in bounds; every
//! access is still checked and a surprise becomes `SctpMalformed`, never a panic.

use uvs_wire::sctp::{chunk_type, init, SctpPacket, FLAG_T};
use uvs_wire::L3;

use super::state::SctpEvent;
use crate::pipeline::Packet;
use crate::verdict::DropReason;

/// The chunk facts the association tracker needs, packed in one word: built field by field
/// in a struct, the summary was read back by the pipeline in loads spanning several of
/// those stores, a store-forwarding stall on every SCTP packet (bench/README.md, "SCTP's
/// summary in one word"). Bits 0–7: the first chunk's type; 8–15: the event's chunk type;
/// 16: the reflected-tag flag; 32–63: the initiate tag.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ChunkSummary(u64);

impl ChunkSummary {
    #[inline]
    fn new(first: u8, event_chunk: u8, reflected_tag: bool, initiate_tag: u32) -> Self {
        Self(
            u64::from(first)
                | u64::from(event_chunk) << 8
                | u64::from(reflected_tag) << 16
                | u64::from(initiate_tag) << 32,
        )
    }

    /// Type of the first chunk.
    #[inline]
    pub fn first(self) -> u8 {
        self.0 as u8
    }

    /// The state-machine event: the first chunk's, except that an ABORT bundled right after
    /// COOKIE-ECHO / COOKIE-ACK wins (IPVS `set_sctp_state`).
    #[inline]
    pub fn event(self) -> SctpEvent {
        SctpEvent::of_chunk(self.event_chunk())
    }

    /// The chunk type standing for [`event`](Self::event) (stored in
    /// `Parsed::sctp_first_chunk` for the state hook).
    #[inline]
    pub fn event_chunk(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// The packet carries an ABORT or SHUTDOWN COMPLETE with the T bit set: its
    /// verification tag is the sender's own tag (RFC 9260 §8.5.1 B, C).
    #[inline]
    pub fn reflected_tag(self) -> bool {
        self.0 & 1 << 16 != 0
    }

    /// INIT / INIT-ACK: the initiate tag (0 otherwise).
    #[inline]
    pub fn initiate_tag(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

impl std::fmt::Debug for ChunkSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkSummary")
            .field("first", &self.first())
            .field("event", &self.event())
            .field("event_chunk", &self.event_chunk())
            .field("reflected_tag", &self.reflected_tag())
            .field("initiate_tag", &self.initiate_tag())
            .finish()
    }
}

/// Reads the chunks of an SCTP packet (`sctp` = common header onwards).
///
/// INIT, INIT-ACK and SHUTDOWN COMPLETE must travel alone (RFC 9260 §6.10); an INIT or
/// INIT-ACK must hold its fixed part and a non-zero initiate tag (§3.3.2: a zero tag is
/// a protocol violation). Those failures are `SctpMalformed`.
pub fn summarize(sctp: &[u8]) -> Result<ChunkSummary, DropReason> {
    let pkt = SctpPacket::new_checked(sctp).map_err(|_| DropReason::SctpMalformed)?;
    let mut chunks = pkt.chunks();
    let head = chunks
        .next()
        .and_then(Result::ok)
        .ok_or(DropReason::SctpMalformed)?;
    let next = chunks.next();
    let alone = next.is_none();
    let mut event_chunk = head.kind;
    let mut reflected_tag = false;
    let mut initiate_tag = 0;
    match head.kind {
        chunk_type::INIT | chunk_type::INIT_ACK => {
            initiate_tag = init::initiate_tag(head.value)
                .filter(|t| *t != 0 && alone)
                .ok_or(DropReason::SctpMalformed)?;
        }
        chunk_type::SHUTDOWN_COMPLETE => {
            if !alone {
                return Err(DropReason::SctpMalformed);
            }
            reflected_tag = head.flags & FLAG_T != 0;
        }
        chunk_type::ABORT => reflected_tag = head.flags & FLAG_T != 0,
        chunk_type::COOKIE_ECHO | chunk_type::COOKIE_ACK => match next {
            Some(Ok(abort)) if abort.kind == chunk_type::ABORT => {
                event_chunk = chunk_type::ABORT;
                reflected_tag = abort.flags & FLAG_T != 0;
            }
            _ => {}
        },
        _ => {}
    }
    Ok(ChunkSummary::new(
        head.kind,
        event_chunk,
        reflected_tag,
        initiate_tag,
    ))
}

/// Which address parameters to remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strip {
    /// Every IPv4/IPv6/host-name address parameter: the receiver then knows the sender only
    /// by the packet's source address (RFC 9260 §5.1.2 "no address parameters").
    All,
    /// Only the parameters the translation cannot carry: the other IP family and host names.
    OtherFamily,
}

/// Removes address parameters from the INIT / INIT-ACK chunk of the frame in place
/// ([`SctpPacket::strip_init_params`]); the IP length (and IPv4 header checksum), the parse
/// and the frame's length follow. Returns the bytes removed (0: nothing to do, the frame
/// is untouched).
pub fn strip_addresses(pkt: &mut Packet<'_>, how: Strip) -> usize {
    let Packet { buf, len, p } = pkt;
    let l4 = usize::from(p.l4_off);
    let l3_end = p.l3_end().min(*len);
    let v6 = p.l3 == L3::V6;
    let drop_param = |t: u16| match t {
        init::param::IPV4_ADDRESS => how == Strip::All || v6,
        init::param::IPV6_ADDRESS => how == Strip::All || !v6,
        init::param::HOST_NAME => true,
        _ => false,
    };
    let Some(sctp) = buf.get_mut(l4..l3_end) else {
        return 0;
    };
    let Some(new_len) = SctpPacket::new_unchecked(sctp).strip_init_params(drop_param) else {
        return 0;
    };
    let new_l3_end = l4 + new_len;
    let removed = l3_end - new_l3_end;
    uvs_wire::shrink_ip_payload(buf, p, removed as u16);
    *len = new_l3_end;
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Common header + one chunk of `kind` with `value`, CRC filled.
    fn packet(kind: u8, flags: u8, value: &[u8]) -> Vec<u8> {
        let mut b = vec![0x13, 0x88, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[kind, flags]);
        b.extend_from_slice(&((4 + value.len()) as u16).to_be_bytes());
        b.extend_from_slice(value);
        while !b.len().is_multiple_of(4) {
            b.push(0);
        }
        SctpPacket::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    fn init_value(tag: u32) -> Vec<u8> {
        let mut v = tag.to_be_bytes().to_vec();
        v.extend_from_slice(&[0, 1, 0, 0, 0, 10, 0, 10, 0, 0, 0, 1]);
        v
    }

    #[test]
    fn init_summary() {
        let s = summarize(&packet(chunk_type::INIT, 0, &init_value(0xdead_beef))).unwrap();
        assert_eq!(s.event(), SctpEvent::Init);
        assert_eq!(s.initiate_tag(), 0xdead_beef);
        assert_eq!(
            summarize(&packet(chunk_type::INIT, 0, &init_value(0))),
            Err(DropReason::SctpMalformed),
            "initiate tag 0"
        );
        assert_eq!(
            summarize(&packet(chunk_type::INIT, 0, &[1, 2, 3, 4])),
            Err(DropReason::SctpMalformed),
            "no fixed part"
        );
        let mut bundled = packet(chunk_type::INIT, 0, &init_value(1));
        bundled.extend_from_slice(&[chunk_type::COOKIE_ACK, 0, 0, 4]);
        assert_eq!(summarize(&bundled), Err(DropReason::SctpMalformed));
    }

    #[test]
    fn abort_bits_and_bundling() {
        let a = summarize(&packet(chunk_type::ABORT, 1, &[])).unwrap();
        assert!(a.reflected_tag());
        assert_eq!(a.event(), SctpEvent::Abort);
        assert!(!summarize(&packet(chunk_type::ABORT, 0, &[]))
            .unwrap()
            .reflected_tag());
        let mut b = packet(chunk_type::COOKIE_ACK, 0, &[]);
        b.extend_from_slice(&[chunk_type::ABORT, 1, 0, 4]);
        let s = summarize(&b).unwrap();
        assert_eq!(
            (s.first(), s.event()),
            (chunk_type::COOKIE_ACK, SctpEvent::Abort)
        );
        assert!(s.reflected_tag());
        let d = summarize(&packet(chunk_type::DATA, 3, &[0; 16])).unwrap();
        assert_eq!(d.event(), SctpEvent::Data);
        assert!(!d.reflected_tag());
    }
}
