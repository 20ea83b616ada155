//! Network-endian reads and writes at byte offsets (Firecracker `dumbo/pdu/bytes.rs` style).
//!
//! The plain functions index directly and are used by views after `check_len`; the `get_*` /
//! `put_*` variants are bounds-checked and never panic, for code that works on a frame with
//! offsets it did not validate itself (the rewrite helpers, which must survive a `Parsed` that
//! does not belong to the frame).

#[inline]
pub(crate) fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

#[inline]
pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

#[inline]
pub(crate) fn set_be16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn set_be32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn get8(b: &[u8], off: usize) -> Option<u8> {
    b.get(off).copied()
}

#[inline]
pub(crate) fn get16(b: &[u8], off: usize) -> Option<u16> {
    b.get(off..off.checked_add(2)?)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
}

/// Writes `v` at `off` if the two bytes exist; reports whether it wrote.
#[inline]
pub(crate) fn put16(b: &mut [u8], off: usize, v: u16) -> bool {
    match off.checked_add(2).and_then(|end| b.get_mut(off..end)) {
        Some(s) => {
            s.copy_from_slice(&v.to_be_bytes());
            true
        }
        None => false,
    }
}

/// Copies exactly `N` bytes starting at `off`; panics if out of range (view accessors only).
#[inline]
pub(crate) fn array<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[off..off + N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_accessors_refuse_out_of_range() {
        let mut b = [1u8, 2, 3];
        assert_eq!(get16(&b, 1), Some(0x0203));
        assert_eq!(get16(&b, 2), None);
        assert_eq!(get16(&b, usize::MAX), None);
        assert!(!put16(&mut b, 2, 7));
        assert!(put16(&mut b, 1, 0xabcd));
        assert_eq!(b, [1, 0xab, 0xcd]);
        assert_eq!(get8(&b, 3), None);
    }
}
