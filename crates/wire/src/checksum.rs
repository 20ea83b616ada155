//! The Internet checksum (RFC 1071), pseudo-headers (RFC 768/793 for IPv4, RFC 8200 §8.1 for
//! IPv6) and incremental update (RFC 1624).
//!
//! Partial sums are carried unfolded in a `u32`/`u64` so that several pieces (pseudo-header,
//! header, payload) can be added before the final fold and complement.

/// Ones'-complement sum of `data` as big-endian 16-bit words, a trailing odd byte padded with
/// zero (RFC 1071 §4.1). Unfolded; fold with [`fold`].
///
/// The sum is taken in the frame's byte order by [`data_sum_ne`] and swapped once: a
/// ones'-complement sum of byte-swapped words is the byte-swapped sum (RFC 1071 §2(B)).
/// Callers that can keep the rest of their sum in native order too (a pseudo-header from
/// [`pseudo_header_v4_ne`]) use [`data_sum_ne`] and skip the swap.
#[inline]
pub fn data_sum(data: &[u8]) -> u64 {
    u64::from(u16::from_be(fold(data_sum_ne(data))))
}

/// Ones'-complement sum of `data` as 16-bit words in native byte order (each word loaded as
/// its two bytes lie in memory), a trailing odd byte padded with a zero byte after it.
/// Unfolded but below 2^35, so a caller may add a few pseudo-header terms before [`fold`].
/// Folded, it is the byte swap of `fold(data_sum(data))` on a little-endian machine and the
/// same value on a big-endian one; `0xffff` (a correct checksum) and `0` read the same
/// either way.
///
/// Headers and short segments (the 54–90-byte frames of an established connection) are
/// summed as 8-byte words with an end-around carry, the at most 7 bytes left as one 4-, one
/// 2- and one 1-byte piece: no byte swap, no loop, no bounds check. From 64 bytes on,
/// `wide_sum_ne` (four independent lanes) does about twice the bytes per cycle.
#[inline]
pub fn data_sum_ne(data: &[u8]) -> u64 {
    data_sum_ne_inlined(data)
}

/// [`data_sum_ne`], always inlined (for `complete_l4_checksum_inlined`).
#[inline(always)]
pub fn data_sum_ne_inlined(data: &[u8]) -> u64 {
    if data.len() >= 64 {
        return wide_sum_ne(data);
    }
    // Below 64 bytes the length's bits say which pieces there are: one 32-, 16- and 8-byte
    // run of words each at most, straight-line code with a branch per piece (the same
    // way every time for one size of segment) instead of a loop and its remainder.
    let mut acc: u64 = 0;
    let mut rest = data;
    if let Some((w, r)) = rest.split_first_chunk::<32>() {
        acc = add_words(acc, w);
        rest = r;
    }
    if let Some((w, r)) = rest.split_first_chunk::<16>() {
        acc = add_words(acc, w);
        rest = r;
    }
    if let Some((w, r)) = rest.split_first_chunk::<8>() {
        acc = add_words(acc, w);
        rest = r;
    }
    // 64 → 33 bits (a 32-bit word folds to the sum of its 16-bit halves), then the tail:
    // every piece starts at an even offset, so its words line up with the data's.
    let mut sum = u64::from(acc as u32) + (acc >> 32);
    if let Some((w, r)) = rest.split_first_chunk::<4>() {
        sum += u64::from(u32::from_ne_bytes(*w));
        rest = r;
    }
    if let Some((w, r)) = rest.split_first_chunk::<2>() {
        sum += u64::from(u16::from_ne_bytes(*w));
        rest = r;
    }
    if let [b] = rest {
        // The odd byte is the first byte of a zero-padded word.
        sum += u64::from(u16::from_ne_bytes([*b, 0]));
    }
    sum
}

/// [`data_sum_ne`] of a 20-byte header (IPv4 without options), always inlined: two 8-byte
/// words and a 4-byte one, the same sum `data_sum_ne` takes for 20 bytes, without the call
/// and the length's branches.
#[inline(always)]
pub fn header_sum_ne(h: &[u8; 20]) -> u64 {
    // `add_words` takes the whole 8-byte words, bytes 0..16; the last 4 are added after the
    // 64 → 33-bit fold, as `data_sum_ne` adds its 4-byte piece.
    let acc = add_words(0, h);
    u64::from(acc as u32)
        + (acc >> 32)
        + u64::from(u32::from_ne_bytes([h[16], h[17], h[18], h[19]]))
}

/// Adds the 8-byte native-order words of `block` to `acc` with end-around carry (a carry
/// out of bit 63 is added back at bit 0, which ones'-complement addition allows at any
/// multiple of 16 bits).
#[inline(always)]
fn add_words<const N: usize>(mut acc: u64, block: &[u8; N]) -> u64 {
    let mut i = 0;
    while i + 8 <= N {
        let w = u64::from_ne_bytes([
            block[i],
            block[i + 1],
            block[i + 2],
            block[i + 3],
            block[i + 4],
            block[i + 5],
            block[i + 6],
            block[i + 7],
        ]);
        let (s, c) = acc.overflowing_add(w);
        acc = s + u64::from(c);
        i += 8;
    }
    acc
}

/// [`data_sum_ne`] for long inputs, folded: 32-bit words in native byte order (no swap per
/// word, so the loop vectorises with baseline SSE2) in four independent lanes. A 32-bit
/// word folds to the sum of its two 16-bit halves.
#[inline(never)]
fn wide_sum_ne(data: &[u8]) -> u64 {
    let mut lanes = [0u64; 4];
    let mut blocks = data.chunks_exact(16);
    for b in &mut blocks {
        for (k, lane) in lanes.iter_mut().enumerate() {
            *lane += u64::from(u32::from_ne_bytes([
                b[4 * k],
                b[4 * k + 1],
                b[4 * k + 2],
                b[4 * k + 3],
            ]));
        }
    }
    let mut acc = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    let mut words = blocks.remainder().chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    if rest.len() >= 2 {
        acc += u64::from(u16::from_ne_bytes([rest[0], rest[1]]));
    }
    if rest.len() % 2 == 1 {
        // The odd byte is the first byte of a zero-padded word.
        acc += u64::from(u16::from_ne_bytes([rest[rest.len() - 1], 0]));
    }
    u64::from(fold(acc))
}

/// Folds an unfolded sum to 16 bits with end-around carry (not complemented).
///
/// Two end-around-carry adds (64 → 32 → 16 bits), each exact: a carry out of the halves'
/// sum leaves at most `2^n − 2`, so adding it back cannot carry again. No loop, so no branch
/// on how many folds the data needs (the loop it replaces took one or two turns depending
/// on the bytes, ~6 folds per forwarded packet); the result is the same for every input
/// (`fold_matches_the_loop` below).
#[inline]
pub fn fold(sum: u64) -> u16 {
    let (s, c) = (sum as u32).overflowing_add((sum >> 32) as u32);
    let s = s + u32::from(c);
    let (t, c) = (s as u16).overflowing_add((s >> 16) as u16);
    t + u16::from(c)
}

/// The checksum field value for `data`: the complement of its folded sum.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(data_sum(data))
}

/// True when `data`, checksum field included, sums to 0xFFFF (ones'-complement zero).
/// Summed in native byte order: 0xFFFF is its own byte swap.
#[inline]
pub fn verify(data: &[u8]) -> bool {
    fold(data_sum_ne(data)) == 0xffff
}

/// Unfolded sum of the IPv4 pseudo-header (RFC 793 §3.1, RFC 768): addresses, zero, protocol,
/// and the L4 length.
#[inline]
pub fn pseudo_header_v4(src: &[u8; 4], dst: &[u8; 4], protocol: u8, l4_len: u16) -> u64 {
    u64::from(u32::from_be_bytes(*src))
        + u64::from(u32::from_be_bytes(*dst))
        + u64::from(protocol)
        + u64::from(l4_len)
}

/// [`pseudo_header_v4`] in native byte order, to add to a [`data_sum_ne`]: the addresses
/// as whole 32-bit words, protocol and length as the big-endian words they stand for.
#[inline]
pub fn pseudo_header_v4_ne(src: &[u8; 4], dst: &[u8; 4], protocol: u8, l4_len: u16) -> u64 {
    u64::from(u32::from_ne_bytes(*src))
        + u64::from(u32::from_ne_bytes(*dst))
        + u64::from(u16::from_ne_bytes([0, protocol]))
        + u64::from(u16::from_ne_bytes(l4_len.to_be_bytes()))
}

/// [`pseudo_header_v6`] in native byte order, to add to a [`data_sum_ne`], with the source
/// and destination as they lie in the IPv6 header: 32 bytes, source first.
#[inline]
pub fn pseudo_header_v6_ne(addrs: &[u8; 32], next_header: u8, l4_len: u32) -> u64 {
    let mut sum = u64::from(u32::from_ne_bytes(l4_len.to_be_bytes()))
        + u64::from(u16::from_ne_bytes([0, next_header]));
    for w in addrs.chunks_exact(4) {
        sum += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    }
    sum
}

/// Unfolded sum of the IPv6 pseudo-header (RFC 8200 §8.1): addresses, 32-bit upper-layer
/// length, three zero bytes, next header (the final one, not an extension header).
#[inline]
pub fn pseudo_header_v6(src: &[u8; 16], dst: &[u8; 16], next_header: u8, l4_len: u32) -> u64 {
    let mut sum = 0u64;
    for a in [src, dst] {
        for w in a.chunks_exact(4) {
            sum += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
        }
    }
    sum + u64::from(next_header) + u64::from(l4_len >> 16) + u64::from(l4_len & 0xffff)
}

/// RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')` for one 16-bit word `old` replaced by `new`.
///
/// Eqn. 3 rather than eqn. 2 (`HC - ~m - m'`) because it never turns a correct checksum into
/// the -0 form 0x0000 unless the data really sums to +0 (RFC 1624 §3).
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    let sum = u64::from(!csum) + u64::from(!old) + u64::from(new);
    !fold(sum)
}

/// RFC 1624 update for a 32-bit field (an IPv4 address, an SCTP-less port pair, ...).
#[inline]
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    let sum = u64::from(!csum)
        + u64::from(!(old >> 16) & 0xffff)
        + u64::from(!old & 0xffff)
        + u64::from(new >> 16)
        + u64::from(new & 0xffff);
    !fold(sum)
}

/// RFC 1624 update for a 4-byte address.
#[inline]
pub fn update_addr4(csum: u16, old: &[u8; 4], new: &[u8; 4]) -> u16 {
    update32(csum, u32::from_be_bytes(*old), u32::from_be_bytes(*new))
}

/// RFC 1624 update for a 16-byte address.
#[inline]
pub fn update_addr16(csum: u16, old: &[u8; 16], new: &[u8; 16]) -> u16 {
    let mut sum = u64::from(!csum);
    for i in 0..8 {
        let o = u16::from_be_bytes([old[2 * i], old[2 * i + 1]]);
        let n = u16::from_be_bytes([new[2 * i], new[2 * i + 1]]);
        sum += u64::from(!o) + u64::from(n);
    }
    !fold(sum)
}

/// The RFC 1624 difference term `~m + m'` for a field changing from `old` to `new`, summed
/// over its 16-bit words; apply it to every checksum covering the field with [`apply_delta`].
/// Computing it once serves the IPv4 header and the L4 checksum of an address rewrite.
#[inline(always)]
pub fn delta<const N: usize>(old: &[u8; N], new: &[u8; N]) -> u64 {
    let mut sum = 0u64;
    let mut i = 0;
    while i + 1 < N {
        sum += u64::from(!u16::from_be_bytes([old[i], old[i + 1]]))
            + u64::from(u16::from_be_bytes([new[i], new[i + 1]]));
        i += 2;
    }
    sum
}

/// Applies a [`delta`] to a checksum: `HC' = ~(~HC + delta)` (RFC 1624 eqn. 3).
#[inline(always)]
pub fn apply_delta(csum: u16, delta: u64) -> u16 {
    !fold(u64::from(!csum) + delta)
}

/// RFC 1624 update for any even-length field at an even offset (addresses of either family).
/// Odd trailing bytes are ignored, so callers pass 4- or 16-byte slices.
#[inline]
pub fn update_bytes(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut sum = u64::from(!csum);
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        sum += u64::from(!u16::from_be_bytes([o[0], o[1]]))
            + u64::from(u16::from_be_bytes([n[0], n[1]]));
    }
    !fold(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fold as RFC 1071 §4.1 writes it, one 16-bit end-around carry at a time.
    fn fold_loop(mut sum: u64) -> u16 {
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn fold_matches_the_loop() {
        let mut edges = vec![0u64, u64::MAX, u64::MAX - 1];
        for bits in [16u32, 17, 31, 32, 33, 47, 48, 63] {
            let b = 1u64 << bits;
            edges.extend([b - 2, b - 1, b, b + 1]);
        }
        edges.extend([0xffff_fffe_ffff, 0xffff_ffff_0000_0001, 0x1_ffff_fffe]);
        for &x in &edges {
            assert_eq!(fold(x), fold_loop(x), "{x:#x}");
        }
        // xorshift64: sums of every magnitude, the usual ones (a few words) included.
        let mut next = crate::xorshift(0x9e37_79b9_7f4a_7c15);
        for i in 0..1_000_000u32 {
            let x = next() >> (i % 64);
            assert_eq!(fold(x), fold_loop(x), "{x:#x}");
        }
    }

    /// RFC 1071 §3 worked example: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(data_sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    /// The wide path against a plain big-endian 16-bit sum, for every length around its
    /// threshold and block size and every start alignment.
    #[test]
    fn wide_sum_matches_the_plain_sum() {
        let data: Vec<u8> = (0..1600u32).map(|i| (i * 151 + 89) as u8).collect();
        let plain = |d: &[u8]| {
            let mut s = 0u64;
            for w in d.chunks(2) {
                s += u64::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
            }
            fold(s)
        };
        for start in 0..4 {
            for len in (0..200).chain([511, 512, 1499, 1500, 1501, 1596]) {
                let d = &data[start..start + len];
                assert_eq!(fold(data_sum(d)), plain(d), "start {start} len {len}");
            }
        }
        assert_eq!(fold(data_sum(&[0xff; 64])), 0xffff);
        assert_eq!(fold(data_sum(&[0; 100])), 0);
        let mut odd = vec![0u8; 64];
        odd.push(0xab);
        assert_eq!(fold(data_sum(&odd)), 0xab00);
    }

    /// `data_sum` as it was before the native-order short path (32-bit big-endian words
    /// below 64 bytes, the four-lane loop with one swap from 64 on), kept as the reference.
    fn data_sum_reference(data: &[u8]) -> u64 {
        if data.len() >= 64 {
            let mut lanes = [0u64; 4];
            let mut blocks = data.chunks_exact(16);
            for b in &mut blocks {
                for (k, lane) in lanes.iter_mut().enumerate() {
                    *lane += u64::from(u32::from_ne_bytes([
                        b[4 * k],
                        b[4 * k + 1],
                        b[4 * k + 2],
                        b[4 * k + 3],
                    ]));
                }
            }
            let mut acc = lanes[0] + lanes[1] + lanes[2] + lanes[3];
            let mut words = blocks.remainder().chunks_exact(4);
            for w in &mut words {
                acc += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
            }
            let rest = words.remainder();
            if rest.len() >= 2 {
                acc += u64::from(u16::from_ne_bytes([rest[0], rest[1]]));
            }
            if rest.len() % 2 == 1 {
                acc += u64::from(u16::from_ne_bytes([rest[rest.len() - 1], 0]));
            }
            return u64::from(u16::from_be(fold_loop(acc)));
        }
        let mut acc: u64 = 0;
        let mut chunks = data.chunks_exact(4);
        for c in &mut chunks {
            acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        }
        let rest = chunks.remainder();
        let mut i = 0;
        while i + 1 < rest.len() {
            acc += u64::from(u16::from_be_bytes([rest[i], rest[i + 1]]));
            i += 2;
        }
        if i < rest.len() {
            acc += u64::from(rest[i]) << 8;
        }
        acc
    }

    /// The sums against the reference for random contents, every length 0..1600 (odd ones
    /// included) at every start alignment 0..8, with and without a pseudo-header-sized term
    /// added before the fold (how every caller uses them): `data_sum` folds to the same
    /// value, `data_sum_ne` to its byte swap, and the native-order pseudo-headers to the
    /// byte swap of the big-endian ones. Contents are random bytes, all 0xff (sums that
    /// carry the most), all 0, and mostly-0xff with a few random bytes.
    #[test]
    fn short_and_wide_sums_match_the_reference() {
        let mut next = crate::xorshift(0x2545_f491_4f6c_dd1du64);
        let swap = |x: u16| u16::from_be(x);
        let mut buf = vec![0u8; 1608];
        for round in 0..6 {
            for b in buf.iter_mut() {
                *b = match round {
                    0 => 0xff,
                    1 => 0,
                    2 if !next().is_multiple_of(8) => 0xff,
                    _ => next() as u8,
                };
            }
            for len in 0..1600 {
                for start in 0..8 {
                    let d = &buf[start..start + len];
                    let want = data_sum_reference(d);
                    assert_eq!(fold(data_sum(d)), fold(want), "len {len} start {start}");
                    assert_eq!(swap(fold(data_sum_ne(d))), fold(want), "ne {len} {start}");
                    assert!(data_sum_ne(d) < 1 << 35);
                    assert_eq!(verify(d), fold(want) == 0xffff, "verify {len} {start}");
                    // A pseudo-header's worth added before the fold: up to 2^35.
                    let extra = next() >> 29;
                    assert_eq!(fold(extra + data_sum(d)), fold(extra + want), "+{extra}");
                }
            }
        }
        for _ in 0..200_000 {
            let (a, b) = (next(), next());
            let (src, dst) = ((a as u32).to_be_bytes(), ((a >> 32) as u32).to_be_bytes());
            let (proto, len4) = (b as u8, (b >> 8) as u16);
            assert_eq!(
                swap(fold(pseudo_header_v4_ne(&src, &dst, proto, len4))),
                fold(pseudo_header_v4(&src, &dst, proto, len4))
            );
            let mut s6 = [0u8; 16];
            let mut d6 = [0u8; 16];
            s6[..8].copy_from_slice(&a.to_ne_bytes());
            s6[8..].copy_from_slice(&b.to_ne_bytes());
            d6[..8].copy_from_slice(&next().to_ne_bytes());
            d6[8..].copy_from_slice(&next().to_ne_bytes());
            let len6 = (b >> 24) as u32;
            let mut pair = [0u8; 32];
            pair[..16].copy_from_slice(&s6);
            pair[16..].copy_from_slice(&d6);
            assert_eq!(
                swap(fold(pseudo_header_v6_ne(&pair, proto, len6))),
                fold(pseudo_header_v6(&s6, &d6, proto, len6))
            );
        }
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(data_sum(&[0xab])), 0xab00);
        assert_eq!(fold(data_sum(&[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    /// A well-known IPv4 header (Wikipedia "IPv4 header checksum" example) checksums to b861.
    #[test]
    fn ipv4_header_example() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10] = 0xb8;
        h[11] = 0x61;
        assert!(verify(&h));
    }

    /// RFC 1624 §4 example: HC = 0xDD2F, m = 0x5555 -> m' = 0x3285 gives HC' = 0x0000.
    #[test]
    fn rfc1624_example() {
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn incremental_matches_full_recompute() {
        let mut data: Vec<u8> = (0..64u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect();
        let before = checksum(&data);
        let old = [data[12], data[13], data[14], data[15]];
        let new = [198, 18, 0, 7];
        data[12..16].copy_from_slice(&new);
        let expect = checksum(&data);
        assert_eq!(update_addr4(before, &old, &new), expect);
        assert_eq!(update_bytes(before, &old, &new), expect);
        assert_eq!(
            update32(before, u32::from_be_bytes(old), u32::from_be_bytes(new)),
            expect
        );
        let old16: [u8; 16] = data[20..36].try_into().unwrap();
        let new16 = [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11];
        data[20..36].copy_from_slice(&new16);
        assert_eq!(update_addr16(expect, &old16, &new16), checksum(&data));
        assert_eq!(apply_delta(expect, delta(&old16, &new16)), checksum(&data));
    }

    #[test]
    fn pseudo_headers_sum_their_fields() {
        let v4 = pseudo_header_v4(&[1, 2, 3, 4], &[5, 6, 7, 8], 17, 100);
        assert_eq!(fold(v4), 0x0102 + 0x0304 + 0x0506 + 0x0708 + 17 + 100);
        let mut a = [0u8; 16];
        a[15] = 1;
        let v6 = pseudo_header_v6(&a, &a, 6, 0x0001_0002);
        assert_eq!(fold(v6), 2 + 6 + 1 + 2);
    }
}
