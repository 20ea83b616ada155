//! Whole TCP segments written over a frame (a SYN proxy's SYN-ACK, SYN, ACK and RST) and
//! the in-place translation of a spliced connection's segments: sequence and
//! acknowledgement numbers, SACK blocks, timestamps and the window, each checksum word
//! updated incrementally (RFC 1624), so the cost does not grow with the payload.
//!
//! All functions are total: on a `Parsed` that does not describe the frame they refuse
//! (return `None`/`false`) rather than panic.

use crate::bytes::{get16, put16};
use crate::checksum;
use crate::ip_proto;
use crate::parse::{Parsed, L3};
use crate::tcp::{self, TcpPacket, HEADER_LEN};
use crate::tcp_options::{OptionsError, TcpOptions};

/// A segment without payload, for [`write_segment`].
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    /// Source address (IPv4: first 4 bytes).
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// TTL / hop limit.
    pub ttl: u8,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags byte (`tcp::flags`).
    pub flags: u8,
    /// Window.
    pub window: u16,
    /// Options, a multiple of 4 bytes, at most 40.
    pub options: &'a [u8],
}

/// Writes an IP header (IPv4 without options, DF set; or IPv6 without extension headers)
/// and the segment at `l3_off`, keeping the link-layer header before it. Returns the new
/// frame length, or `None` if the frame is too short or the options malformed in size.
pub fn write_segment(frame: &mut [u8], l3_off: usize, l3: L3, s: &Segment<'_>) -> Option<usize> {
    write_data_segment(frame, l3_off, l3, s, &[])
}

/// [`write_segment`] with `payload` after the TCP header (a SYN proxy's PROXY protocol
/// header on the ACK that completes the server's handshake). `payload` must not overlap
/// the frame.
pub fn write_data_segment(
    frame: &mut [u8],
    l3_off: usize,
    l3: L3,
    s: &Segment<'_>,
    payload: &[u8],
) -> Option<usize> {
    if !s.options.len().is_multiple_of(4) || s.options.len() > 40 || payload.len() > 0xff00 {
        return None;
    }
    let ip_len = if l3 == L3::V6 { 40 } else { 20 };
    let tcp_len = HEADER_LEN + s.options.len() + payload.len();
    let end = l3_off.checked_add(ip_len + tcp_len)?;
    let out = frame.get_mut(l3_off..end)?;
    let (iph, seg) = out.split_at_mut(ip_len);
    let pseudo = match l3 {
        L3::V4 => {
            let total = (ip_len + tcp_len) as u16;
            iph.copy_from_slice(&[0u8; 20]);
            iph[0] = 0x45;
            iph[2..4].copy_from_slice(&total.to_be_bytes());
            iph[6] = 0x40;
            iph[8] = s.ttl;
            iph[9] = ip_proto::TCP;
            iph[12..16].copy_from_slice(&s.src[..4]);
            iph[16..20].copy_from_slice(&s.dst[..4]);
            let c = checksum::checksum(iph);
            iph[10..12].copy_from_slice(&c.to_be_bytes());
            let (mut a, mut b) = ([0u8; 4], [0u8; 4]);
            a.copy_from_slice(&s.src[..4]);
            b.copy_from_slice(&s.dst[..4]);
            checksum::pseudo_header_v4(&a, &b, ip_proto::TCP, tcp_len as u16)
        }
        L3::V6 => {
            iph.copy_from_slice(&[0u8; 40]);
            iph[0] = 0x60;
            iph[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
            iph[6] = ip_proto::TCP;
            iph[7] = s.ttl;
            iph[8..24].copy_from_slice(&s.src);
            iph[24..40].copy_from_slice(&s.dst);
            checksum::pseudo_header_v6(&s.src, &s.dst, ip_proto::TCP, tcp_len as u32)
        }
    };
    let data = HEADER_LEN + s.options.len();
    seg[HEADER_LEN..data].copy_from_slice(s.options);
    seg[data..].copy_from_slice(payload);
    let mut t = TcpPacket::new_unchecked(&mut *seg);
    t.set_src_port(s.sport);
    t.set_dst_port(s.dport);
    t.set_seq_number(s.seq);
    t.set_ack_number(s.ack);
    t.set_header_len(data);
    t.set_flags(s.flags);
    t.set_window(s.window);
    t.set_urgent(0);
    t.fill_checksum(pseudo);
    Some(end)
}

/// The fields of a TCP segment a SYN proxy decides on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFields {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Window (unscaled, as on the wire).
    pub window: u16,
    /// Payload bytes.
    pub payload_len: usize,
    /// The options.
    pub options: TcpOptions,
}

/// Why [`tcp_fields`] refused a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// Not TCP, a fragment, or the header does not fit.
    #[error("not a whole tcp segment")]
    NotTcp,
    /// Its options are malformed.
    #[error(transparent)]
    Options(#[from] OptionsError),
}

/// Reads the sequence numbers, window, payload length and options of a TCP frame.
pub fn tcp_fields(frame: &[u8], p: &Parsed) -> Result<TcpFields, SegmentError> {
    if p.l4_proto != ip_proto::TCP || p.is_fragment() {
        return Err(SegmentError::NotTcp);
    }
    let seg = frame
        .get(usize::from(p.l4_off)..p.l3_end())
        .ok_or(SegmentError::NotTcp)?;
    let t = TcpPacket::new_checked(seg).map_err(|_| SegmentError::NotTcp)?;
    Ok(TcpFields {
        seq: t.seq_number(),
        ack: t.ack_number(),
        window: t.window(),
        payload_len: seg.len() - t.header_len(),
        options: TcpOptions::parse(t.options())?,
    })
}

/// What [`splice`] changes in a segment of a spliced connection. Numbers are added with
/// wrapping (a delta "minus d" is `d.wrapping_neg()`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Splice {
    /// Added to the sequence number.
    pub seq: u32,
    /// Added to the acknowledgement number (when ACK is set).
    pub ack: u32,
    /// Added to both edges of every SACK block.
    pub sack: u32,
    /// Added to TSval.
    pub tsval: u32,
    /// Added to TSecr.
    pub tsecr: u32,
    /// The window is rescaled: the sender means `window << from` bytes, the receiver reads
    /// it as `window << to` (clamped to 65 535; rounding down never promises more).
    pub window: Option<(u8, u8)>,
}

/// Applies `s` to the TCP segment of `frame` in place, with incremental checksum updates
/// (the checksum must already be complete: the pipeline completes partial ones first).
/// `opts` is what [`tcp_fields`] read from the same frame. False if nothing could be
/// written (a `Parsed` that does not describe the frame).
pub fn splice(frame: &mut [u8], p: &Parsed, opts: &TcpOptions, s: &Splice) -> bool {
    let l4 = usize::from(p.l4_off);
    let csum = l4 + tcp::CHECKSUM_OFFSET;
    if frame.len() < l4 + HEADER_LEN || p.l3_end() > frame.len() {
        return false;
    }
    let flags = frame[l4 + 13];
    if s.seq != 0 {
        add32(frame, l4, csum, l4 + 4, s.seq);
    }
    if s.ack != 0 && flags & tcp::flags::ACK != 0 {
        add32(frame, l4, csum, l4 + 8, s.ack);
    }
    let opt0 = l4 + HEADER_LEN;
    if let (Some(at), true) = (opts.ts_at, s.tsval != 0 || s.tsecr != 0) {
        let at = opt0 + usize::from(at);
        if s.tsval != 0 {
            add32(frame, l4, csum, at, s.tsval);
        }
        if s.tsecr != 0 {
            add32(frame, l4, csum, at + 4, s.tsecr);
        }
    }
    if let (Some((at, n)), true) = (opts.sack_at, s.sack != 0) {
        for i in 0..usize::from(n) * 2 {
            add32(frame, l4, csum, opt0 + usize::from(at) + 4 * i, s.sack);
        }
    }
    if let Some((from, to)) = s.window {
        if from != to {
            if let Some(w) = get16(frame, l4 + 14) {
                let bytes = u64::from(w) << from.min(14);
                let nw = (bytes >> to.min(14)).min(0xffff) as u16;
                if let Some(c) = get16(frame, csum) {
                    put16(frame, csum, checksum::update16(c, w, nw));
                }
                put16(frame, l4 + 14, nw);
            }
        }
    }
    true
}

/// Adds `delta` to the 32-bit field at `off` and fixes the checksum at `csum`; the field may
/// sit at an odd offset from the segment start (options), so the update covers the
/// 16-bit-aligned words around it.
fn add32(frame: &mut [u8], seg_start: usize, csum: usize, off: usize, delta: u32) {
    let start = seg_start + ((off - seg_start) & !1);
    let end = (off + 4 + ((off - seg_start) & 1)).min(frame.len());
    if off + 4 > frame.len() || end - start > 6 {
        return;
    }
    let mut old = [0u8; 6];
    let n = end - start;
    old[..n].copy_from_slice(&frame[start..end]);
    let v = u32::from_be_bytes([frame[off], frame[off + 1], frame[off + 2], frame[off + 3]]);
    frame[off..off + 4].copy_from_slice(&v.wrapping_add(delta).to_be_bytes());
    if let Some(c) = get16(frame, csum) {
        let mut new = [0u8; 6];
        new[..n].copy_from_slice(&frame[start..end]);
        // An odd-length span (the field ends the frame) gets a zero pad byte on both sides.
        let m = n + (n & 1);
        put16(frame, csum, checksum::update_bytes(c, &old[..m], &new[..m]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp_options::write_syn_options;

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut x = [0; 16];
        x[..4].copy_from_slice(&a);
        x
    }

    fn syn_frame(l3: L3) -> ([u8; 128], usize) {
        let mut f = [0u8; 128];
        f[12..14].copy_from_slice(if l3 == L3::V4 { &[8, 0] } else { &[0x86, 0xdd] });
        let mut o = [0u8; 20];
        let n = write_syn_options(&mut o, 1460, Some(7), true, Some((100, 0)));
        let (src, dst) = if l3 == L3::V4 {
            (v4([198, 18, 0, 10]), v4([198, 18, 100, 1]))
        } else {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&[0x20, 0x01, 0, 2]);
            let mut b = a;
            a[15] = 10;
            b[15] = 1;
            (a, b)
        };
        let seg = Segment {
            src,
            dst,
            ttl: 64,
            sport: 40000,
            dport: 80,
            seq: 1000,
            ack: 0,
            flags: tcp::flags::SYN,
            window: 64240,
            options: &o[..n],
        };
        let len = write_segment(&mut f, 14, l3, &seg).unwrap();
        (f, len)
    }

    #[test]
    fn written_segments_parse_with_valid_checksums() {
        for l3 in [L3::V4, L3::V6] {
            let (f, len) = syn_frame(l3);
            let p = crate::parse_frame(&f[..len]).unwrap();
            assert!(crate::verify_l4_checksum(&f[..len], &p));
            let t = tcp_fields(&f[..len], &p).unwrap();
            assert_eq!(t.seq, 1000);
            assert_eq!(t.options.mss, Some(1460));
            assert_eq!(t.options.timestamp, Some((100, 0)));
            assert_eq!(t.payload_len, 0);
        }
    }

    #[test]
    fn splice_keeps_checksums_valid() {
        for l3 in [L3::V4, L3::V6] {
            let (mut f, len) = syn_frame(l3);
            f[14 + if l3 == L3::V4 { 20 } else { 40 } + 13] |= tcp::flags::ACK;
            let p = crate::parse_frame(&f[..len]).unwrap();
            // Setting ACK broke the checksum on purpose: refill it first.
            let l4 = usize::from(p.l4_off);
            let pseudo = if l3 == L3::V4 {
                checksum::pseudo_header_v4(
                    &[198, 18, 0, 10],
                    &[198, 18, 100, 1],
                    6,
                    (len - l4) as u16,
                )
            } else {
                checksum::pseudo_header_v6(&p.src, &p.dst, 6, (len - l4) as u32)
            };
            TcpPacket::new_unchecked(&mut f[l4..len]).fill_checksum(pseudo);
            let t = tcp_fields(&f[..len], &p).unwrap();
            let s = Splice {
                seq: 5,
                ack: 0x8000_0000,
                sack: 0,
                tsval: 7,
                tsecr: 9u32.wrapping_neg(),
                window: Some((0, 7)),
            };
            assert!(splice(&mut f[..len], &p, &t.options, &s));
            assert!(crate::verify_l4_checksum(&f[..len], &p));
            let u = tcp_fields(&f[..len], &p).unwrap();
            assert_eq!(u.seq, 1005);
            assert_eq!(u.ack, 0x8000_0000);
            assert_eq!(u.options.timestamp, Some((107, 9u32.wrapping_neg())));
            assert_eq!(u.window, 64240 >> 7);
        }
    }

    #[test]
    fn odd_offsets_update_the_checksum() {
        // A 32-bit field at an odd offset of the segment.
        let mut seg = [0u8; 24];
        seg[5..9].copy_from_slice(&[1, 2, 3, 4]);
        let c = checksum::checksum(&seg);
        seg[16..18].copy_from_slice(&c.to_be_bytes());
        add32(&mut seg, 0, 16, 5, 0x0101_0101);
        assert_eq!(&seg[5..9], &[2, 3, 4, 5]);
        assert!(checksum::verify(&seg));
    }

    #[test]
    fn data_segments_carry_their_payload() {
        for l3 in [L3::V4, L3::V6] {
            let (mut f, len) = syn_frame(l3);
            let p = crate::parse_frame(&f[..len]).unwrap();
            let mut o = [0u8; 12];
            let ts = crate::tcp_options::write_ts_option(&mut o, (1, 2));
            let seg = Segment {
                src: p.src,
                dst: p.dst,
                ttl: 64,
                sport: 40000,
                dport: 80,
                seq: 1001,
                ack: 5,
                flags: tcp::flags::ACK,
                window: 100,
                options: &o[..ts],
            };
            let len = write_data_segment(&mut f, 14, l3, &seg, b"hello").unwrap();
            let p = crate::parse_frame(&f[..len]).unwrap();
            assert!(crate::verify_l4_checksum(&f[..len], &p));
            let t = tcp_fields(&f[..len], &p).unwrap();
            assert_eq!(t.payload_len, 5);
            assert_eq!(t.options.timestamp, Some((1, 2)));
            assert_eq!(&f[len - 5..len], b"hello");
        }
    }
}
