//! The in-place translation of a spliced connection's segments (a SYN proxy's two halves):
//! sequence and acknowledgement numbers, SACK blocks, timestamps and the window, in one pass
//! over the header with one RFC 1624 checksum update, so the cost grows neither with the
//! payload nor with the number of fields touched.
//!
//! Every changed 16-bit word adds its difference term `~m + m'` to one sum, applied to the
//! checksum once: ones'-complement addition is associative, so this is the checksum the
//! field-by-field updates would give, bit for bit (the tests check it against them). A
//! 32-bit field at an odd offset of the segment (an option after a lone NOP) is summed as if
//! aligned and the folded term byte-swapped (RFC 1071 §2(B)).
//!
//! The options are validated as [`TcpOptions::parse`] does (a malformed area is refused),
//! but the layout every Linux segment of an established connection has — nothing, or NOP
//! NOP timestamp (RFC 7323 appendix A) — is recognised without walking it.

use crate::bytes::{be16, set_be16};
use crate::checksum;
use crate::ip_proto;
use crate::parse::Parsed;
use crate::tcp::{self, HEADER_LEN};
use crate::tcp_options::{kind, TcpOptions};
use crate::tcp_segment::SegmentError;

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

impl Splice {
    /// The translation that undoes this one: every number moved back by its delta, the
    /// window rescaled the other way (exact for numbers; a window only as exact as the
    /// rescaling that rounded it). An ICMP error quotes a segment as the splice delivered
    /// it; the inverse turns the quote back into the segment its sender sent.
    pub fn inverse(&self) -> Splice {
        Splice {
            seq: self.seq.wrapping_neg(),
            ack: self.ack.wrapping_neg(),
            sack: self.sack.wrapping_neg(),
            tsval: self.tsval.wrapping_neg(),
            tsecr: self.tsecr.wrapping_neg(),
            window: self.window.map(|(from, to)| (to, from)),
        }
    }
}

/// The options area of Linux's established segments with timestamps: NOP, NOP, kind 8,
/// length 10, then TSval and TSecr.
const NOP_NOP_TS: [u8; 4] = [kind::NOP, kind::NOP, kind::TIMESTAMP, 10];

/// The checksum difference terms of one segment's changes.
#[derive(Default)]
struct Terms {
    sum: u64,
    /// Some field sat at an odd offset.
    odd: bool,
}

impl Terms {
    /// Adds `delta` to the 32-bit field at `off` of `seg` (in bounds: the caller checked the
    /// header length; `get_mut` keeps it total without a panic path).
    #[inline(always)]
    fn add32(&mut self, seg: &mut [u8], off: usize, delta: u32) {
        let Some(field) = seg.get_mut(off..off + 4) else {
            return;
        };
        let old = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
        let new = old.wrapping_add(delta);
        field.copy_from_slice(&new.to_be_bytes());
        let t = u64::from(!(old >> 16) & 0xffff)
            + u64::from(!old & 0xffff)
            + u64::from(new >> 16)
            + u64::from(new & 0xffff);
        if off & 1 == 0 {
            self.sum += t;
        } else {
            self.sum += u64::from(checksum::fold(t).swap_bytes());
            self.odd = true;
        }
    }

    /// Rescales the window of `seg` (at least 16 bytes: the caller checked) from shift
    /// `from` to shift `to`.
    #[inline(always)]
    fn rescale(&mut self, seg: &mut [u8], (from, to): (u8, u8)) {
        if from != to {
            let w = be16(seg, 14);
            let bytes = u64::from(w) << from.min(14);
            let nw = (bytes >> to.min(14)).min(0xffff) as u16;
            set_be16(seg, 14, nw);
            self.sum += u64::from(!w) + u64::from(nw);
        }
    }

    /// Writes the updated checksum of `seg`.
    #[inline(always)]
    fn apply(self, seg: &mut [u8]) {
        // A field-by-field update of an odd-offset field sums whole aligned words around it,
        // which never add up to zero; keep that (0xffff is ones'-complement zero) so that the
        // result is the same even in the ±0 corner of RFC 1624 §3.
        let sum = self.sum + if self.odd { 0xffff } else { 0 };
        let c = be16(seg, tcp::CHECKSUM_OFFSET);
        set_be16(
            seg,
            tcp::CHECKSUM_OFFSET,
            !checksum::fold(u64::from(!c) + sum),
        );
    }
}

/// Applies `s` to the TCP segment of `frame` in place, with one incremental checksum update
/// (the checksum must already be complete: the pipeline completes partial ones first). A
/// field whose delta is 0 is left alone. Refuses, without writing anything, a frame that is
/// not a whole unfragmented TCP segment or whose options are malformed.
#[inline]
pub fn splice(frame: &mut [u8], p: &Parsed, s: &Splice) -> Result<(), SegmentError> {
    if p.l4_proto != ip_proto::TCP || p.is_fragment() {
        return Err(SegmentError::NotTcp);
    }
    let seg = frame
        .get_mut(usize::from(p.l4_off)..p.l3_end())
        .ok_or(SegmentError::NotTcp)?;
    splice_segment(seg, s)
}

/// [`splice`] on `seg`, a TCP header and what follows it: refused, untouched, when the
/// header (options included) is not all there or its options are malformed.
#[inline(always)]
fn splice_segment(seg: &mut [u8], s: &Splice) -> Result<(), SegmentError> {
    if seg.len() < HEADER_LEN {
        return Err(SegmentError::NotTcp);
    }
    let hlen = usize::from(seg[12] >> 4) * 4;
    if hlen < HEADER_LEN || hlen > seg.len() {
        return Err(SegmentError::NotTcp);
    }
    let opts = &seg[HEADER_LEN..hlen];
    let (ts_at, sack_at) = if opts.is_empty() {
        (None, None)
    } else if opts.len() == 12 && opts[..4] == NOP_NOP_TS {
        (Some(4), None)
    } else {
        let o = TcpOptions::parse(opts)?;
        (o.ts_at, o.sack_at)
    };
    let mut t = Terms::default();
    if s.seq != 0 {
        t.add32(seg, 4, s.seq);
    }
    if s.ack != 0 && seg[13] & tcp::flags::ACK != 0 {
        t.add32(seg, 8, s.ack);
    }
    if let Some(at) = ts_at {
        let at = HEADER_LEN + usize::from(at);
        if s.tsval != 0 {
            t.add32(seg, at, s.tsval);
        }
        if s.tsecr != 0 {
            t.add32(seg, at + 4, s.tsecr);
        }
    }
    if let (Some((at, n)), true) = (sack_at, s.sack != 0) {
        let at = HEADER_LEN + usize::from(at);
        for i in 0..usize::from(n) * 2 {
            t.add32(seg, at + 4 * i, s.sack);
        }
    }
    if let Some(w) = s.window {
        t.rescale(seg, w);
    }
    if t.sum != 0 || t.odd {
        t.apply(seg);
    }
    Ok(())
}

/// Applies `s` to the TCP segment quoted in an ICMP error, `quote` holding the quoted bytes
/// from the TCP header on (a router may quote as little as 8 bytes, RFC 792). A whole
/// header with sound options is translated as [`splice`] translates a segment, its
/// checksum updated as the NAT rewrite updates a quoted checksum (incrementally, whether
/// the quote holds the whole segment or not). Otherwise the fixed fields the quote holds
/// are: the sequence number, the acknowledgement number once the flags show ACK, the
/// window, and the checksum when quoted. Refused, untouched, without a sequence number.
pub fn splice_quoted(quote: &mut [u8], s: &Splice) -> Result<(), SegmentError> {
    if quote.len() < 8 {
        return Err(SegmentError::NotTcp);
    }
    if splice_segment(quote, s).is_ok() {
        return Ok(());
    }
    let mut t = Terms::default();
    if s.seq != 0 {
        t.add32(quote, 4, s.seq);
    }
    if s.ack != 0 && quote.get(13).is_some_and(|f| f & tcp::flags::ACK != 0) {
        t.add32(quote, 8, s.ack);
    }
    if let (Some(w), true) = (s.window, quote.len() >= 16) {
        t.rescale(quote, w);
    }
    if quote.len() >= tcp::CHECKSUM_OFFSET + 2 && (t.sum != 0 || t.odd) {
        t.apply(quote);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::{be32, get16, put16, set_be32};
    use crate::parse::L3;
    use crate::tcp_segment::tcp_fields;
    use etherparse::{NetHeaders, PacketBuilder, PacketHeaders, TcpOptionElement};
    use proptest::prelude::*;

    /// The field-by-field translation this module replaced (one RFC 1624 update per 32-bit
    /// field, over the aligned words around it): the reference for bit-exact output.
    fn reference(frame: &mut [u8], p: &Parsed, opts: &TcpOptions, s: &Splice) {
        let l4 = usize::from(p.l4_off);
        let csum = l4 + tcp::CHECKSUM_OFFSET;
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
                let w = get16(frame, l4 + 14).unwrap();
                let bytes = u64::from(w) << from.min(14);
                let nw = (bytes >> to.min(14)).min(0xffff) as u16;
                let c = get16(frame, csum).unwrap();
                put16(frame, csum, checksum::update16(c, w, nw));
                put16(frame, l4 + 14, nw);
            }
        }
    }

    fn add32(frame: &mut [u8], seg_start: usize, csum: usize, off: usize, delta: u32) {
        let start = seg_start + ((off - seg_start) & !1);
        let end = (off + 4 + ((off - seg_start) & 1)).min(frame.len());
        let mut old = [0u8; 6];
        let n = end - start;
        old[..n].copy_from_slice(&frame[start..end]);
        let v = be32(frame, off);
        set_be32(frame, off, v.wrapping_add(delta));
        let c = get16(frame, csum).unwrap();
        let mut new = [0u8; 6];
        new[..n].copy_from_slice(&frame[start..end]);
        let m = n + (n & 1);
        put16(frame, csum, checksum::update_bytes(c, &old[..m], &new[..m]));
    }

    /// Options areas (each a multiple of 4 bytes): none, Linux's NOP NOP timestamp, SACK
    /// blocks with and without timestamps, and odd offsets (a lone NOP before them).
    fn layout(i: usize, ts: (u32, u32), sack: &[u32; 8]) -> Vec<u8> {
        let mut o = Vec::new();
        let push_ts = |o: &mut Vec<u8>| {
            o.extend_from_slice(&[kind::TIMESTAMP, 10]);
            o.extend_from_slice(&ts.0.to_be_bytes());
            o.extend_from_slice(&ts.1.to_be_bytes());
        };
        let push_sack = |o: &mut Vec<u8>, n: usize| {
            o.extend_from_slice(&[kind::SACK, (2 + 8 * n) as u8]);
            for v in &sack[..2 * n] {
                o.extend_from_slice(&v.to_be_bytes());
            }
        };
        match i {
            0 => {}
            1 => {
                o.extend_from_slice(&[kind::NOP, kind::NOP]);
                push_ts(&mut o);
            }
            2..=4 => {
                o.extend_from_slice(&[kind::NOP, kind::NOP]);
                push_ts(&mut o);
                o.extend_from_slice(&[kind::NOP, kind::NOP]);
                push_sack(&mut o, i - 1);
            }
            5 => {
                o.push(kind::NOP);
                push_sack(&mut o, 1);
            }
            6 => {
                o.extend_from_slice(&[kind::NOP, kind::NOP]);
                push_sack(&mut o, 4);
            }
            7 => {
                // Odd offsets: TSval at 3, the SACK edges at 13, 17, ...
                o.push(kind::NOP);
                push_ts(&mut o);
                push_sack(&mut o, 2);
                o.push(kind::EOL);
            }
            _ => {
                // Timestamp after a window scale (TSval at 5), then EOL padding.
                o.extend_from_slice(&[kind::WSCALE, 3, 7]);
                push_ts(&mut o);
                o.extend_from_slice(&[kind::EOL; 3]);
            }
        }
        while o.len() % 4 != 0 {
            o.push(kind::EOL);
        }
        o
    }

    fn frame(v6: bool, opts: &[u8], seq: u32, ack: u32, window: u16, payload: &[u8]) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let ip = if v6 {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&[0x20, 0x01, 0, 2]);
            let mut b = a;
            a[15] = 10;
            b[15] = 1;
            eth.ipv6(a, b, 64)
        } else {
            eth.ipv4([198, 18, 0, 10], [198, 18, 100, 1], 64)
        };
        let b = ip
            .tcp(40000, 80, seq, window)
            .ack(ack)
            .options_raw(opts)
            .expect("options fit");
        let mut out = Vec::new();
        b.write(&mut out, payload).expect("frame");
        out
    }

    /// What etherparse reads from a frame: seq, ack, window, timestamp, SACK edges, and
    /// whether the checksum is the one it computes.
    type Seen = (u32, u32, u16, Option<(u32, u32)>, Vec<u32>, bool);

    fn seen(f: &[u8]) -> Seen {
        let h = PacketHeaders::from_ethernet_slice(f).expect("etherparse reads it");
        let t = h.transport.and_then(|t| t.tcp()).expect("tcp");
        let good = match h.net {
            Some(NetHeaders::Ipv4(ip, _)) => t.calc_checksum_ipv4(&ip, h.payload.slice()),
            Some(NetHeaders::Ipv6(ip, _)) => t.calc_checksum_ipv6(&ip, h.payload.slice()),
            _ => panic!("not ip"),
        }
        .map(|c| c == t.checksum)
        .unwrap_or(false);
        let (mut ts, mut sack) = (None, Vec::new());
        for o in t.options_iterator() {
            match o.expect("options parse") {
                TcpOptionElement::Timestamp(v, e) => ts = Some((v, e)),
                TcpOptionElement::SelectiveAcknowledgement(first, rest) => {
                    for (l, r) in std::iter::once(Some(first)).chain(rest).flatten() {
                        sack.extend([l, r]);
                    }
                }
                _ => {}
            }
        }
        (
            t.sequence_number,
            t.acknowledgment_number,
            t.window_size,
            ts,
            sack,
            good,
        )
    }

    fn delta() -> impl Strategy<Value = u32> {
        prop_oneof![Just(0u32), Just(1), Just(u32::MAX), any::<u32>()]
    }

    proptest! {
        /// Bit for bit what the field-by-field updates give, with the values and the
        /// checksum etherparse expects.
        #[test]
        fn one_update_matches_field_by_field(
            v6 in any::<bool>(),
            which in 0usize..9,
            seq in any::<u32>(),
            ack in any::<u32>(),
            window in any::<u16>(),
            ts in any::<(u32, u32)>(),
            edges in any::<[u32; 8]>(),
            payload_len in 0usize..7,
            s in (delta(), delta(), delta(), delta(), delta(),
                  proptest::option::of((0u8..16, 0u8..16))),
        ) {
            let s = Splice { seq: s.0, ack: s.1, sack: s.2, tsval: s.3, tsecr: s.4, window: s.5 };
            let opts = layout(which, ts, &edges);
            let payload: Vec<u8> = (0..payload_len as u8).map(|i| i.wrapping_mul(37)).collect();
            let before = frame(v6, &opts, seq, ack, window, &payload);
            let p = crate::parse_frame(&before).unwrap();
            prop_assert_eq!(p.l3, if v6 { L3::V6 } else { L3::V4 });
            let t = tcp_fields(&before, &p).unwrap();
            let mut want = before.clone();
            reference(&mut want, &p, &t.options, &s);
            let mut got = before.clone();
            prop_assert!(splice(&mut got, &p, &s).is_ok());
            prop_assert_eq!(&got, &want);
            let (b, a) = (seen(&before), seen(&got));
            prop_assert!(b.5 && a.5, "etherparse's checksum before and after");
            prop_assert_eq!(a.0, b.0.wrapping_add(s.seq));
            prop_assert_eq!(a.1, b.1.wrapping_add(s.ack));
            let add = |(v, e): (u32, u32)| (v.wrapping_add(s.tsval), e.wrapping_add(s.tsecr));
            prop_assert_eq!(a.3, b.3.map(add));
            let shifted: Vec<u32> = b.4.iter().map(|e| e.wrapping_add(s.sack)).collect();
            prop_assert_eq!(a.4, shifted);
        }
    }

    #[test]
    fn only_the_checksum_word_and_the_fields_change() {
        let f = frame(false, &layout(1, (100, 200), &[0; 8]), 1000, 5000, 512, b"");
        let p = crate::parse_frame(&f).unwrap();
        let mut g = f.clone();
        let s = Splice {
            ack: 7,
            tsecr: 9u32.wrapping_neg(),
            window: Some((7, 7)),
            ..Splice::default()
        };
        splice(&mut g, &p, &s).unwrap();
        let l4 = usize::from(p.l4_off);
        let changed: Vec<usize> = (0..f.len()).filter(|&i| f[i] != g[i]).collect();
        assert!(changed.iter().all(|&i| {
            let o = i - l4;
            (8..12).contains(&o) || (16..18).contains(&o) || (28..32).contains(&o)
        }));
        assert_eq!(seen(&g).1, 5007);
        assert_eq!(seen(&g).3, Some((100, 191)));
        assert!(crate::verify_l4_checksum(&g, &p));
        // No delta: nothing written at all.
        let mut h = f.clone();
        splice(&mut h, &p, &Splice::default()).unwrap();
        assert_eq!(h, f);
    }

    /// RFC 1624 §3's corner: a checksum field of 0xffff (−0, as valid as 0) and an
    /// odd-offset field whose difference term is zero. The field-by-field update sums the
    /// words around the field and so never reaches −0 again; neither does the single one.
    #[test]
    fn the_minus_zero_corner_matches_field_by_field() {
        for v6 in [false, true] {
            let opts = layout(7, (u32::MAX, 5), &[9; 8]);
            let f = frame(v6, &opts, 1, 2, 3, &[0, 0]);
            let p = crate::parse_frame(&f).unwrap();
            let c = usize::from(p.l4_off) + tcp::CHECKSUM_OFFSET;
            // A payload word that brings the checksum to 0, then written as 0xffff.
            let mut f = frame(v6, &opts, 1, 2, 3, &f[c..c + 2]);
            assert_eq!(&f[c..c + 2], &[0, 0]);
            f[c..c + 2].copy_from_slice(&[0xff, 0xff]);
            assert!(crate::verify_l4_checksum(&f, &p));
            let s = Splice {
                tsval: 1,
                ..Splice::default()
            };
            let t = tcp_fields(&f, &p).unwrap();
            assert_eq!(t.options.ts_at, Some(3), "TSval at an odd offset");
            let mut want = f.clone();
            reference(&mut want, &p, &t.options, &s);
            let mut got = f.clone();
            splice(&mut got, &p, &s).unwrap();
            assert_eq!(got, want);
            assert!(crate::verify_l4_checksum(&got, &p));
        }
    }

    #[test]
    fn malformed_segments_are_refused() {
        let s = Splice {
            ack: 1,
            ..Splice::default()
        };
        // An option running past the header, and a timestamp of the wrong size.
        for bad in [
            vec![
                kind::NOP,
                kind::NOP,
                kind::TIMESTAMP,
                12,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
            ],
            vec![
                kind::NOP,
                kind::NOP,
                kind::TIMESTAMP,
                9,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
            ],
            vec![kind::SACK, 7, 0, 0, 0, 0, 0, 0],
        ] {
            let f = frame(false, &bad, 1, 2, 3, b"");
            let p = crate::parse_frame(&f).unwrap();
            let mut g = f.clone();
            assert!(splice(&mut g, &p, &s).is_err(), "{bad:?}");
            assert_eq!(g, f, "nothing written");
        }
        // A data offset past the segment, and a frame shorter than the Parsed says.
        let mut f = frame(true, &[], 1, 2, 3, b"");
        let p = crate::parse_frame(&f).unwrap();
        let l4 = usize::from(p.l4_off);
        f[l4 + 12] = 0xf0;
        assert_eq!(splice(&mut f, &p, &s), Err(SegmentError::NotTcp));
        let n = f.len() - 1;
        assert_eq!(splice(&mut f[..n], &p, &s), Err(SegmentError::NotTcp));
        // Not TCP at all.
        let mut u = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
            .udp(1, 2)
            .write(&mut u, b"x")
            .unwrap();
        let p = crate::parse_frame(&u).unwrap();
        assert_eq!(splice(&mut u, &p, &s), Err(SegmentError::NotTcp));
    }

    proptest! {
        /// A splice and then its inverse give back every number (without rescaling the
        /// window, which rounds) and a segment whose checksum is right.
        #[test]
        fn the_inverse_gives_the_numbers_back(
            v6 in any::<bool>(),
            which in 0usize..9,
            ts in any::<(u32, u32)>(),
            edges in any::<[u32; 8]>(),
            s in (delta(), delta(), delta(), delta(), delta()),
        ) {
            let s = Splice { seq: s.0, ack: s.1, sack: s.2, tsval: s.3, tsecr: s.4, window: None };
            let f = frame(v6, &layout(which, ts, &edges), 77, 88, 99, b"abc");
            let p = crate::parse_frame(&f).unwrap();
            let mut g = f.clone();
            splice(&mut g, &p, &s).unwrap();
            splice(&mut g, &p, &s.inverse()).unwrap();
            let (b, a) = (seen(&f), seen(&g));
            prop_assert!(a.5, "the checksum is right");
            prop_assert_eq!((a.0, a.1, a.2, a.3, a.4), (b.0, b.1, b.2, b.3, b.4));
        }

        /// A quote cut anywhere: with its whole header, the segment's translation; cut
        /// shorter, the fixed fields it holds (SEQ from 8 bytes, ACK once the flags are
        /// quoted, the window), and from 18 bytes the checksum updated for them, so the
        /// segment with the rest left as it was still sums right.
        #[test]
        fn a_quote_cut_anywhere_has_what_it_holds_translated(
            v6 in any::<bool>(),
            which in 0usize..9,
            ts in any::<(u32, u32)>(),
            edges in any::<[u32; 8]>(),
            cut in 0usize..64,
            s in (delta(), delta(), delta(), delta(), delta(),
                  proptest::option::of((0u8..16, 0u8..16))),
        ) {
            let s = Splice { seq: s.0, ack: s.1, sack: s.2, tsval: s.3, tsecr: s.4, window: s.5 };
            let f = frame(v6, &layout(which, ts, &edges), 77, 88, 99, b"abcdefgh");
            let p = crate::parse_frame(&f).unwrap();
            let l4 = usize::from(p.l4_off);
            let hlen = usize::from(f[l4 + 12] >> 4) * 4;
            let cut = cut.min(f.len() - l4);
            let mut g = f.clone();
            let r = splice_quoted(&mut g[l4..l4 + cut], &s);
            if cut < 8 {
                prop_assert_eq!(r, Err(SegmentError::NotTcp));
                prop_assert_eq!(&g, &f);
                return Ok(());
            }
            prop_assert!(r.is_ok());
            if cut >= hlen {
                let mut want = f.clone();
                splice(&mut want, &p, &s).unwrap();
                prop_assert_eq!(&g[..l4 + hlen], &want[..l4 + hlen]);
                return Ok(());
            }
            let (b, a) = (seen(&f), seen(&g));
            prop_assert_eq!(a.0, b.0.wrapping_add(s.seq));
            prop_assert_eq!(a.1, if cut >= 14 { b.1.wrapping_add(s.ack) } else { b.1 });
            if cut < 16 {
                prop_assert_eq!(a.2, b.2);
            }
            prop_assert_eq!((a.3, a.4), (b.3, b.4), "options cut short are left alone");
            if cut >= 18 {
                prop_assert!(a.5, "the checksum follows the fields");
            }
        }
    }
}
