//! Whole TCP segments written over a frame (a SYN proxy's SYN-ACK, SYN, ACK and RST) and
//! the fields a SYN proxy reads from a segment (the in-place translation of a spliced
//! connection's segments is `tcp_splice`).
//!
//! All functions are total: on a `Parsed` that does not describe the frame they refuse
//! (return `None`/`false`) rather than panic.

use crate::checksum;
use crate::ip_proto;
use crate::parse::{Parsed, L3};
use crate::tcp::{TcpPacket, HEADER_LEN};
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp;
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
