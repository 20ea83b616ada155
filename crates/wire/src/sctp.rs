//! SCTP common header, chunk walk and CRC32c checksum (RFC 9260 §3, appendix A).
//!
//! The CRC32c covers only the SCTP packet, not an IP pseudo-header: address rewrites leave it
//! alone, port rewrites must recompute it. Packets up to [`ONE_PASS_MAX`] bytes are summed in one
//! pass of the SSE4.2 `crc32` instruction, longer ones by the `crc32c` crate (which uses it
//! too, in three interleaved streams). The checksum is stored in the byte order Linux and
//! RFC 3309/3720 use: the CRC's little-endian bytes.

use crate::bytes::{be16, be32, set_be16, set_be32};
use crate::ParseError;

/// Length of the common header.
pub const HEADER_LEN: usize = 12;
/// Length of a chunk header.
pub const CHUNK_HEADER_LEN: usize = 4;

/// Chunk types (RFC 9260 §3.2).
pub mod chunk_type {
    /// Payload data.
    pub const DATA: u8 = 0;
    /// Initiation.
    pub const INIT: u8 = 1;
    /// Initiation acknowledgement.
    pub const INIT_ACK: u8 = 2;
    /// Selective acknowledgement.
    pub const SACK: u8 = 3;
    /// Heartbeat request.
    pub const HEARTBEAT: u8 = 4;
    /// Heartbeat acknowledgement.
    pub const HEARTBEAT_ACK: u8 = 5;
    /// Abort.
    pub const ABORT: u8 = 6;
    /// Shutdown.
    pub const SHUTDOWN: u8 = 7;
    /// Shutdown acknowledgement.
    pub const SHUTDOWN_ACK: u8 = 8;
    /// Operation error.
    pub const ERROR: u8 = 9;
    /// State cookie.
    pub const COOKIE_ECHO: u8 = 10;
    /// Cookie acknowledgement.
    pub const COOKIE_ACK: u8 = 11;
    /// Shutdown complete.
    pub const SHUTDOWN_COMPLETE: u8 = 14;
}

mod field {
    pub(crate) const SRC_PORT: usize = 0;
    pub(crate) const DST_PORT: usize = 2;
    pub(crate) const VTAG: usize = 4;
    pub(crate) const CHECKSUM: usize = 8;
}

/// CRC32c of an SCTP packet with its checksum field taken as zero (RFC 9260 appendix A).
/// Packets shorter than the common header are summed as they are.
///
/// A packet of up to [`ONE_PASS_MAX`] bytes is summed in one pass of the SSE4.2 `crc32`
/// instruction, 8 bytes at a time, the checksum field masked out of its word
/// (`one_pass`); a longer one (or a CPU without SSE4.2) takes the `crc32c` crate in three
/// calls, whose three interleaved streams win once a packet is long enough to amortise
/// their set-up.
#[inline]
pub fn compute_crc32c(packet: &[u8]) -> u32 {
    if packet.len() < HEADER_LEN {
        return crc32c::crc32c(packet);
    }
    if packet.len() <= ONE_PASS_MAX {
        if let Some(c) = one_pass::crc32c(packet) {
            return c;
        }
    }
    let c = crc32c::crc32c(&packet[..field::CHECKSUM]);
    let c = crc32c::crc32c_append(c, &[0u8; 4]);
    crc32c::crc32c_append(c, &packet[HEADER_LEN..])
}

/// Longest packet [`compute_crc32c`] sums in one pass (bench/README.md, "SCTP's CRC32c in
/// one pass").
pub const ONE_PASS_MAX: usize = 768;

/// The CRC32c of a short SCTP packet in one pass of the `crc32` instruction. The `crc32c`
/// crate's three calls (the checksum field as zero between them) cost 26 ns on a 36-byte
/// DATA packet, against 7 ns here, each sum waiting for the one before (feature check,
/// alignment prologue byte by byte and stream selection in each call); its three
/// interleaved streams win from about 1 KiB (one pass 110 ns, the crate 78 at 1 024
/// bytes; 84 against 98 at 768).
#[allow(unsafe_code)]
mod one_pass {
    use super::{field, HEADER_LEN};

    /// `None`: the CPU has no SSE4.2 (the caller falls back to the crate).
    #[inline]
    pub(super) fn crc32c(packet: &[u8]) -> Option<u32> {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("sse4.2") {
            // SAFETY: `sum` needs SSE4.2, which the CPU has (checked just above); it reads
            // only within `packet`, like any safe function.
            return Some(unsafe { sum(packet) });
        }
        let _ = packet;
        None
    }

    /// `packet` is at least [`HEADER_LEN`] bytes long; its bytes 8..12 (the checksum field)
    /// are summed as zero: they are the low half of the second little-endian word.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "sse4.2")]
    fn sum(packet: &[u8]) -> u32 {
        use std::arch::x86_64::{_mm_crc32_u16, _mm_crc32_u32, _mm_crc32_u64, _mm_crc32_u8};
        const _: () = assert!(field::CHECKSUM == 8 && HEADER_LEN == 12);
        let mut words = packet.chunks_exact(8);
        let mut c = u64::from(u32::MAX);
        for (i, w) in (&mut words).enumerate() {
            let mut v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            if i == 1 {
                v &= !u64::from(u32::MAX);
            }
            c = _mm_crc32_u64(c, v);
        }
        let mut c = c as u32;
        let mut rest = words.remainder();
        // A 12- to 15-byte packet: its checksum field is in the remainder, at its start.
        if packet.len() < 16 {
            c = _mm_crc32_u32(c, 0);
            rest = &rest[4..];
        }
        if let [a, b, cc, d, tail @ ..] = rest {
            c = _mm_crc32_u32(c, u32::from_le_bytes([*a, *b, *cc, *d]));
            rest = tail;
        }
        if let [a, b, tail @ ..] = rest {
            c = _mm_crc32_u16(c, u16::from_le_bytes([*a, *b]));
            rest = tail;
        }
        for &b in rest {
            c = _mm_crc32_u8(c, b);
        }
        !c
    }
}

/// A view of an SCTP packet (common header then chunks).
#[derive(Debug, Clone)]
pub struct SctpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SctpPacket<T> {
    /// Wraps without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        SctpPacket { buffer }
    }

    /// Wraps after `check_len`.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the common header and at least one chunk header are present.
    pub fn check_len(&self) -> Result<(), ParseError> {
        if self.buffer.as_ref().len() < HEADER_LEN + CHUNK_HEADER_LEN {
            Err(ParseError::TruncatedSctp)
        } else {
            Ok(())
        }
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }
    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }
    /// Verification tag.
    #[inline]
    pub fn verification_tag(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VTAG)
    }
    /// The checksum field as the CRC value (decoded from its little-endian bytes).
    #[inline]
    pub fn checksum(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_le_bytes([b[8], b[9], b[10], b[11]])
    }
    /// Type of the first chunk.
    #[inline]
    pub fn first_chunk_type(&self) -> u8 {
        self.buffer.as_ref()[HEADER_LEN]
    }
    /// Iterates the chunks; see [`ChunkIter`].
    pub fn chunks(&self) -> ChunkIter<'_> {
        ChunkIter {
            rest: &self.buffer.as_ref()[HEADER_LEN..],
        }
    }
    /// Walks every chunk and reports the first error (length < 4 or overrun).
    pub fn validate_chunks(&self) -> Result<(), ParseError> {
        for c in self.chunks() {
            c?;
        }
        Ok(())
    }
    /// True when the stored CRC32c matches the packet.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        compute_crc32c(self.buffer.as_ref()) == self.checksum()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> SctpPacket<T> {
    /// Sets the source port (CRC not updated).
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::SRC_PORT, v);
    }
    /// Sets the destination port (CRC not updated).
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::DST_PORT, v);
    }
    /// Sets the verification tag (CRC not updated).
    #[inline]
    pub fn set_verification_tag(&mut self, v: u32) {
        set_be32(self.buffer.as_mut(), field::VTAG, v);
    }
    /// Stores a CRC value in the checksum field (little-endian bytes).
    #[inline]
    pub fn set_checksum(&mut self, crc: u32) {
        self.buffer.as_mut()[field::CHECKSUM..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    }
    /// Recomputes the CRC32c over the whole buffer.
    pub fn fill_checksum(&mut self) {
        let c = compute_crc32c(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

/// Chunk flag T of ABORT and SHUTDOWN COMPLETE (RFC 9260 §3.3.7, §3.3.13): the packet's
/// verification tag is the sender's own (reflected).
pub const FLAG_T: u8 = 0x01;

/// INIT and INIT-ACK chunks (RFC 9260 §3.3.2, §3.3.3).
pub mod init {
    /// The fixed part after the chunk header: initiate tag, a_rwnd, outbound and inbound
    /// stream counts, initial TSN.
    pub const FIXED_LEN: usize = 16;

    /// Address-carrying parameters (RFC 9260 §3.3.2.1).
    pub mod param {
        /// IPv4 Address.
        pub const IPV4_ADDRESS: u16 = 5;
        /// IPv6 Address.
        pub const IPV6_ADDRESS: u16 = 6;
        /// Host Name Address (deprecated by RFC 9260, still defined).
        pub const HOST_NAME: u16 = 11;
    }

    /// The initiate tag of an INIT / INIT-ACK chunk's value; `None` without the fixed part.
    #[inline]
    pub fn initiate_tag(value: &[u8]) -> Option<u32> {
        (value.len() >= FIXED_LEN).then(|| crate::bytes::be32(value, 0))
    }
}

#[inline]
fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> SctpPacket<T> {
    /// Removes from the first chunk (an INIT or INIT-ACK) the parameters whose type `drop`
    /// selects: kept parameters slide down, the chunk length shrinks (it does not count the
    /// final padding, RFC 9260 §3.2) and the CRC32c is recomputed over what remains.
    /// Returns the packet's new length, or `None` when nothing was removed (the packet is
    /// untouched). Parameters after a malformed one are kept as they are; the buffer is
    /// the SCTP packet alone (the IP length is the caller's).
    pub fn strip_init_params(&mut self, drop: impl Fn(u16) -> bool) -> Option<usize> {
        let buf = self.buffer.as_mut();
        let chunk = HEADER_LEN;
        if buf.len() < chunk + CHUNK_HEADER_LEN {
            return None;
        }
        let end = buf.len();
        let chunk_end = (chunk + usize::from(be16(buf, chunk + 2))).min(end);
        let params = chunk + CHUNK_HEADER_LEN + init::FIXED_LEN;
        let (mut read, mut write) = (params, params);
        // Unpadded length of the last parameter kept, for the new chunk length.
        let mut last_pad = 0;
        while read + 4 <= chunk_end {
            let (t, plen) = (be16(buf, read), usize::from(be16(buf, read + 2)));
            if plen < 4 || read + plen > chunk_end {
                break;
            }
            let step = pad4(plen).min(end - read);
            if !drop(t) {
                buf.copy_within(read..read + step, write);
                write += step;
                last_pad = step - plen;
            }
            read += step;
        }
        if read == write {
            return None;
        }
        // Whatever followed (a malformed tail) moves down with the kept parameters.
        let tail = chunk_end.max(read) - read;
        buf.copy_within(read..read + tail, write);
        write += tail;
        if tail > 0 {
            last_pad = 0;
        }
        let new_chunk_len = write - chunk - last_pad;
        let new_len = chunk + pad4(new_chunk_len);
        buf[chunk + new_chunk_len..new_len].fill(0);
        set_be16(buf, chunk + 2, new_chunk_len as u16);
        SctpPacket::new_unchecked(&mut buf[..new_len]).fill_checksum();
        Some(new_len)
    }
}

/// One chunk: its header fields and value (without padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// Chunk type.
    pub kind: u8,
    /// Chunk flags.
    pub flags: u8,
    /// The value bytes (length − 4).
    pub value: &'a [u8],
}

/// Iterator over chunks. Yields one `Err` and stops when a chunk length is below 4
/// (`SctpChunkTooShort`: such a chunk would loop forever) or runs past the packet
/// (`SctpChunkOverrun`). Padding to a 4-byte boundary is skipped; a last chunk without its
/// padding is accepted, as Linux does.
#[derive(Debug, Clone)]
pub struct ChunkIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for ChunkIter<'a> {
    type Item = Result<Chunk<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let r = self.rest;
        if r.len() < CHUNK_HEADER_LEN {
            self.rest = &[];
            return Some(Err(ParseError::SctpChunkOverrun));
        }
        let len = usize::from(be16(r, 2));
        if len < CHUNK_HEADER_LEN {
            self.rest = &[];
            return Some(Err(ParseError::SctpChunkTooShort));
        }
        if len > r.len() {
            self.rest = &[];
            return Some(Err(ParseError::SctpChunkOverrun));
        }
        let padded = (len + 3) & !3;
        self.rest = r.get(padded..).unwrap_or(&[]);
        Some(Ok(Chunk {
            kind: r[0],
            flags: r[1],
            value: &r[CHUNK_HEADER_LEN..len],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// INIT with an IPv4 address, a supported-extensions and a host-name parameter:
    /// dropping the addresses keeps the middle one, slides it down, shrinks the chunk and
    /// re-fills the CRC; nothing to drop leaves the packet byte for byte.
    #[test]
    fn strip_init_params_keeps_the_rest() {
        let mut b = vec![0x13, 0x88, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut value = vec![0xde, 0xad, 0xbe, 0xef, 0, 1, 0, 0, 0, 10, 0, 10, 0, 0, 0, 1];
        value.extend_from_slice(&[0, 5, 0, 8, 198, 18, 0, 1]); // IPv4 address
        value.extend_from_slice(&[0x80, 0x08, 0, 6, 0xc1, 0x0f, 0, 0]); // extensions + pad
        value.extend_from_slice(&[0, 11, 0, 7, b'a', b'b', b'c', 0]); // host name + pad
        b.extend_from_slice(&[chunk_type::INIT, 0]);
        b.extend_from_slice(&((4 + value.len() - 1) as u16).to_be_bytes());
        b.extend_from_slice(&value);
        SctpPacket::new_unchecked(&mut b[..]).fill_checksum();
        let untouched = b.clone();
        assert_eq!(
            SctpPacket::new_unchecked(&mut b[..]).strip_init_params(|t| t == 9),
            None
        );
        assert_eq!(b, untouched);
        let new_len = SctpPacket::new_unchecked(&mut b[..])
            .strip_init_params(|t| t == init::param::IPV4_ADDRESS || t == init::param::HOST_NAME)
            .unwrap();
        assert_eq!(new_len, HEADER_LEN + 4 + 16 + 8);
        let p = SctpPacket::new_checked(&b[..new_len]).unwrap();
        assert!(p.verify_checksum());
        let c = p.chunks().next().unwrap().unwrap();
        assert_eq!(
            c.value.len(),
            16 + 6,
            "the chunk length leaves out the final padding"
        );
        assert_eq!(&c.value[16..], &[0x80, 0x08, 0, 6, 0xc1, 0x0f]);
        assert_eq!(init::initiate_tag(c.value), Some(0xdead_beef));
        assert_eq!(init::initiate_tag(&c.value[..15]), None);
    }

    /// The one-pass sum against a bit-by-bit CRC32c written apart from the crate (testkit)
    /// over random packets of every length either side of the one-pass bound and of the
    /// 12- to 16-byte edge, at every alignment in the buffer: the checksum field counts as
    /// zero whatever it holds.
    #[test]
    fn compute_crc32c_matches_a_bitwise_crc_at_every_length() {
        let mut next = crate::xorshift(0x5c7b_2024_0c3c_0001);
        let mut buf = [0u8; ONE_PASS_MAX + 24];
        for len in (0..=ONE_PASS_MAX + 16).chain([600, 1480]) {
            for start in 0..8 {
                let mut b = vec![0u8; start + len];
                b.iter_mut().for_each(|x| *x = next() as u8);
                let pkt = &b[start..];
                let want = if len < HEADER_LEN {
                    uvs_testkit::sctp::crc32c(pkt)
                } else {
                    u32::from_le_bytes(uvs_testkit::sctp::sctp_crc(pkt))
                };
                assert_eq!(compute_crc32c(pkt), want, "length {len} at offset {start}");
            }
        }
        // A DATA packet stored with its CRC verifies, and one flipped bit anywhere fails it.
        buf.iter_mut().for_each(|x| *x = next() as u8);
        let mut p = SctpPacket::new_unchecked(&mut buf[..40]);
        p.fill_checksum();
        assert!(p.verify_checksum());
        for bit in 0..40 * 8 {
            buf[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !SctpPacket::new_unchecked(&buf[..40]).verify_checksum(),
                "bit {bit}"
            );
            buf[bit / 8] ^= 1 << (bit % 8);
        }
    }

    /// RFC 3720 appendix B.4 CRC32c test vectors.
    #[test]
    fn rfc3720_vectors() {
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c::crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let inc: Vec<u8> = (0..32u8).collect();
        assert_eq!(crc32c::crc32c(&inc), 0x46dd_794e);
        let dec: Vec<u8> = (0..32u8).rev().collect();
        assert_eq!(crc32c::crc32c(&dec), 0x113f_db5c);
        // The iSCSI Read (10) command PDU of B.4. The RFC prints this one's CRC as
        // "d9 96 3a 56", most significant byte first, unlike the four vectors above; the
        // value 0xd9963a56 is what every CRC32c implementation's test suite checks.
        let mut pdu = [0u8; 48];
        pdu[0..2].copy_from_slice(&[0x01, 0xc0]);
        pdu[16] = 0x14;
        pdu[22] = 0x04;
        pdu[27] = 0x14;
        pdu[31] = 0x18;
        pdu[32] = 0x28;
        pdu[40] = 0x02;
        assert_eq!(crc32c::crc32c(&pdu), 0xd996_3a56);
    }

    /// An INIT chunk packet (port 5000 → 7, vtag 0) built by hand, CRC filled and stored in
    /// the little-endian order tshark's CRC-32C check expects.
    fn init_packet() -> Vec<u8> {
        let mut b = vec![
            0x13,
            0x88,
            0x00,
            0x07,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0, // common header
            chunk_type::INIT,
            0,
            0,
            20, // INIT, length 20
            0x11,
            0x22,
            0x33,
            0x44,
            0,
            1,
            0,
            0,
            0,
            10,
            0,
            10,
            0,
            0,
            0,
            1, // init tag .. TSN
            chunk_type::COOKIE_ACK,
            0,
            0,
            5,
            0xaa,
            0,
            0,
            0, // len 5: 1 value byte + 3 padding
        ];
        SctpPacket::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    #[test]
    fn deconstruct_and_crc() {
        let b = init_packet();
        let p = SctpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.src_port(), 5000);
        assert_eq!(p.dst_port(), 7);
        assert_eq!(p.verification_tag(), 0);
        assert_eq!(p.first_chunk_type(), chunk_type::INIT);
        assert!(p.verify_checksum());
        assert_eq!(&b[8..12], &p.checksum().to_le_bytes());
        let chunks: Vec<_> = p.chunks().map(Result::unwrap).collect();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].value.len(), 16);
        assert_eq!(
            chunks[1],
            Chunk {
                kind: chunk_type::COOKIE_ACK,
                flags: 0,
                value: &[0xaa]
            }
        );
        assert!(p.validate_chunks().is_ok());
        let mut c = b.clone();
        c[20] ^= 1;
        assert!(!SctpPacket::new_checked(&c[..]).unwrap().verify_checksum());
    }

    #[test]
    fn port_change_changes_crc() {
        let mut b = init_packet();
        let before = SctpPacket::new_checked(&b[..]).unwrap().checksum();
        let mut p = SctpPacket::new_checked(&mut b[..]).unwrap();
        p.set_dst_port(8);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_ne!(p.checksum(), before);
    }

    #[test]
    fn malformed_chunks() {
        let b = init_packet();
        assert_eq!(
            SctpPacket::new_checked(&b[..15]).err(),
            Some(ParseError::TruncatedSctp)
        );
        let mut z = b.clone();
        z[14] = 0;
        z[15] = 0;
        assert_eq!(
            SctpPacket::new_unchecked(&z[..]).validate_chunks(),
            Err(ParseError::SctpChunkTooShort)
        );
        let mut z = b.clone();
        z[15] = 3;
        assert_eq!(
            SctpPacket::new_unchecked(&z[..]).validate_chunks(),
            Err(ParseError::SctpChunkTooShort)
        );
        let mut o = b.clone();
        o[15] = 200;
        assert_eq!(
            SctpPacket::new_unchecked(&o[..]).validate_chunks(),
            Err(ParseError::SctpChunkOverrun)
        );
        // A trailing partial chunk header.
        assert_eq!(
            SctpPacket::new_unchecked(&b[..34]).validate_chunks(),
            Err(ParseError::SctpChunkOverrun)
        );
        // Last chunk without its padding is fine.
        assert!(SctpPacket::new_unchecked(&b[..37])
            .validate_chunks()
            .is_ok());
    }
}
