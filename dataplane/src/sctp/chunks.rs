//! What the SCTP stage reads from a packet's chunks, and the one rewrite that changes their
//! bytes: removing address parameters from INIT / INIT-ACK for NAT and FullNAT.
//!
//! `uvs_wire::classify` has already walked every chunk of an unfragmented packet (a chunk
//! length below 4 or past the end is a parse error), so offsets here stay in bounds; every
//! access is still checked and a surprise becomes `SctpMalformed`, never a panic.

use uvs_wire::sctp::{chunk_type, SctpPacket, CHUNK_HEADER_LEN, HEADER_LEN};
use uvs_wire::{Parsed, L3};

use super::state::SctpEvent;
use crate::verdict::DropReason;

/// INIT / INIT-ACK fixed part after the chunk header: initiate tag, a_rwnd, outbound and
/// inbound stream counts, initial TSN (RFC 9260 §3.3.2).
const INIT_FIXED: usize = 16;
/// Chunk flag T of ABORT and SHUTDOWN COMPLETE (RFC 9260 §3.3.7, §3.3.13).
const FLAG_T: u8 = 0x01;

/// Address-carrying parameters of INIT / INIT-ACK (RFC 9260 §3.3.2.1).
pub mod param {
    pub const IPV4_ADDRESS: u16 = 5;
    pub const IPV6_ADDRESS: u16 = 6;
    /// Host Name Address (deprecated by RFC 9260, still defined).
    pub const HOST_NAME: u16 = 11;
}

#[inline]
fn be16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

#[inline]
fn be32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

#[inline]
fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// The chunk facts the association tracker needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkSummary {
    /// Type of the first chunk.
    pub first: u8,
    /// The state-machine event: the first chunk's, except that an ABORT bundled right
    /// after COOKIE-ECHO / COOKIE-ACK wins (IPVS `set_sctp_state`).
    pub event: SctpEvent,
    /// The chunk type standing for `event` (stored in `Parsed::sctp_first_chunk` for the
    /// state hook).
    pub event_chunk: u8,
    /// The packet carries an ABORT or SHUTDOWN COMPLETE with the T bit set: its
    /// verification tag is the sender's own tag (RFC 9260 §8.5.1 B, C).
    pub reflected_tag: bool,
    /// INIT / INIT-ACK: the initiate tag.
    pub initiate_tag: u32,
}

/// Reads the chunks of an SCTP packet (`sctp` = common header onwards).
///
/// INIT, INIT-ACK and SHUTDOWN COMPLETE must travel alone (RFC 9260 §6.10); an INIT or
/// INIT-ACK must hold its fixed part and a non-zero initiate tag (§3.3.2: a zero tag is
/// a protocol violation). Those failures are `SctpMalformed`.
pub fn summarize(sctp: &[u8]) -> Result<ChunkSummary, DropReason> {
    let first = *sctp.get(HEADER_LEN).ok_or(DropReason::SctpMalformed)?;
    let flags = *sctp.get(HEADER_LEN + 1).ok_or(DropReason::SctpMalformed)?;
    let len = usize::from(be16(sctp, HEADER_LEN + 2).ok_or(DropReason::SctpMalformed)?);
    let next = HEADER_LEN + pad4(len);
    let mut s = ChunkSummary {
        first,
        event: SctpEvent::of_chunk(first),
        event_chunk: first,
        reflected_tag: false,
        initiate_tag: 0,
    };
    match first {
        chunk_type::INIT | chunk_type::INIT_ACK => {
            if len < CHUNK_HEADER_LEN + INIT_FIXED || next < sctp.len() {
                return Err(DropReason::SctpMalformed);
            }
            s.initiate_tag = be32(sctp, HEADER_LEN + CHUNK_HEADER_LEN).unwrap_or(0);
            if s.initiate_tag == 0 {
                return Err(DropReason::SctpMalformed);
            }
        }
        chunk_type::SHUTDOWN_COMPLETE => {
            if next < sctp.len() {
                return Err(DropReason::SctpMalformed);
            }
            s.reflected_tag = flags & FLAG_T != 0;
        }
        chunk_type::ABORT => s.reflected_tag = flags & FLAG_T != 0,
        chunk_type::COOKIE_ECHO | chunk_type::COOKIE_ACK
            if sctp.get(next) == Some(&chunk_type::ABORT) =>
        {
            s.event = SctpEvent::Abort;
            s.event_chunk = chunk_type::ABORT;
            s.reflected_tag = sctp.get(next + 1).is_some_and(|f| f & FLAG_T != 0);
        }
        _ => {}
    }
    Ok(s)
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

/// Removes address parameters from the INIT / INIT-ACK chunk of `buf[..*len]` in place:
/// kept parameters slide down, the chunk length, the IP length (and IPv4 header checksum,
/// RFC 1624) shrink, `p.ip_total_len` and `*len` follow, and the CRC32c is recomputed
/// because the chunk bytes changed. Returns the bytes removed (0: nothing to do, the frame
/// is untouched). Parameters after a malformed one are kept as they are.
pub fn strip_addresses(buf: &mut [u8], len: &mut usize, p: &mut Parsed, how: Strip) -> usize {
    let l4 = usize::from(p.l4_off);
    let l3_end = p.l3_end().min(*len);
    let chunk = l4 + HEADER_LEN;
    let Some(chunk_len) = be16(buf, chunk + 2).map(usize::from) else {
        return 0;
    };
    let chunk_end = (chunk + chunk_len).min(l3_end);
    let params = chunk + CHUNK_HEADER_LEN + INIT_FIXED;
    let v6 = p.l3 == L3::V6;
    let drop_param = |t: u16| match t {
        param::IPV4_ADDRESS => how == Strip::All || v6,
        param::IPV6_ADDRESS => how == Strip::All || !v6,
        param::HOST_NAME => true,
        _ => false,
    };
    let (mut read, mut write) = (params, params);
    // Unpadded length of the last parameter kept, for the new chunk length (the chunk
    // length does not count the final padding, RFC 9260 §3.2).
    let mut last_pad = 0;
    while read + 4 <= chunk_end {
        let (Some(t), Some(plen)) = (be16(buf, read), be16(buf, read + 2)) else {
            break;
        };
        let plen = usize::from(plen);
        if plen < 4 || read + plen > chunk_end {
            break;
        }
        let step = pad4(plen).min(l3_end - read);
        if !drop_param(t) {
            buf.copy_within(read..read + step, write);
            write += step;
            last_pad = step - plen;
        }
        read += step;
    }
    if read == write {
        return 0;
    }
    // Whatever followed (a malformed tail) moves down with the kept parameters.
    let tail = chunk_end.max(read) - read;
    buf.copy_within(read..read + tail, write);
    write += tail;
    if tail > 0 {
        last_pad = 0;
    }
    let new_chunk_len = write - chunk - last_pad;
    let new_l3_end = chunk + pad4(new_chunk_len);
    buf[chunk + new_chunk_len..new_l3_end].fill(0);
    let removed = l3_end - new_l3_end;
    buf[chunk + 2..chunk + 4].copy_from_slice(&(new_chunk_len as u16).to_be_bytes());
    let l3 = usize::from(p.l3_off);
    if v6 {
        let old = u16::from_be_bytes([buf[l3 + 4], buf[l3 + 5]]);
        let new = old.wrapping_sub(removed as u16);
        buf[l3 + 4..l3 + 6].copy_from_slice(&new.to_be_bytes());
    } else {
        let old = u16::from_be_bytes([buf[l3 + 2], buf[l3 + 3]]);
        let new = old.wrapping_sub(removed as u16);
        buf[l3 + 2..l3 + 4].copy_from_slice(&new.to_be_bytes());
        let csum = u16::from_be_bytes([buf[l3 + 10], buf[l3 + 11]]);
        let csum = uvs_wire::checksum::update16(csum, old, new);
        buf[l3 + 10..l3 + 12].copy_from_slice(&csum.to_be_bytes());
    }
    p.ip_total_len = p.ip_total_len.wrapping_sub(removed as u16);
    SctpPacket::new_unchecked(&mut buf[l4..new_l3_end]).fill_checksum();
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
        assert_eq!(s.event, SctpEvent::Init);
        assert_eq!(s.initiate_tag, 0xdead_beef);
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
        assert!(a.reflected_tag);
        assert_eq!(a.event, SctpEvent::Abort);
        assert!(
            !summarize(&packet(chunk_type::ABORT, 0, &[]))
                .unwrap()
                .reflected_tag
        );
        let mut b = packet(chunk_type::COOKIE_ACK, 0, &[]);
        b.extend_from_slice(&[chunk_type::ABORT, 1, 0, 4]);
        let s = summarize(&b).unwrap();
        assert_eq!(
            (s.first, s.event),
            (chunk_type::COOKIE_ACK, SctpEvent::Abort)
        );
        assert!(s.reflected_tag);
        let d = summarize(&packet(chunk_type::DATA, 3, &[0; 16])).unwrap();
        assert_eq!(d.event, SctpEvent::Data);
        assert!(!d.reflected_tag);
    }
}
