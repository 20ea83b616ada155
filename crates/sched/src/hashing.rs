//! IPVS's 256-bucket hash schedulers: dh (`ip_vs_dh.c`) and sh (`ip_vs_sh.c`).
//!
//! Both tables are filled once by control, walking the server list in order; lookups use
//! IPVS's own bucket functions, so an IPv4 client maps to the same bucket as under IPVS.

use crate::flow::{ipvs_addr_fold, linux_hash_32};

/// IPVS `IP_VS_DH_TAB_BITS` / `IP_VS_SH_TAB_BITS` default.
const TAB_BITS: u32 = 8;
const TAB_SIZE: usize = 1 << TAB_BITS;
const TAB_MASK: u32 = (TAB_SIZE as u32) - 1;

/// Destination hashing: bucket i holds server i mod N (`ip_vs_dh_reassign`: weights do not
/// shape the table). A bucket whose server is unavailable gives no server; IPVS dh has no
/// fallback.
#[derive(Debug)]
pub(crate) struct DhTable {
    buckets: Box<[u16]>,
}

impl DhTable {
    pub(crate) fn build(servers: usize) -> Self {
        let buckets = if servers == 0 {
            Box::new([]) as Box<[u16]>
        } else {
            (0..TAB_SIZE).map(|i| (i % servers) as u16).collect()
        };
        DhTable { buckets }
    }

    /// `ip_vs_dh_hashkey`: `(ntohl(fold) * 2654435761) & mask`.
    #[inline]
    pub(crate) fn bucket(dst: &[u8; 16]) -> usize {
        (ipvs_addr_fold(dst).wrapping_mul(2_654_435_761) & TAB_MASK) as usize
    }

    #[inline]
    pub(crate) fn lookup(
        &self,
        dst: &[u8; 16],
        available: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let s = usize::from(*self.buckets.get(Self::bucket(dst))?);
        available(s).then_some(s)
    }
}

/// Source hashing with weights: walking the list, each server fills `weight` consecutive
/// buckets before the next takes over, wrapping until all 256 are set
/// (`ip_vs_sh_reassign`; a weight-0 server still gets one bucket, where lookups then find
/// it unavailable, exactly as IPVS).
#[derive(Debug)]
pub(crate) struct ShTable {
    buckets: Box<[u16]>,
}

impl ShTable {
    pub(crate) fn build(weights: &[u32]) -> Self {
        if weights.is_empty() {
            return ShTable {
                buckets: Box::new([]),
            };
        }
        let mut buckets = Vec::with_capacity(TAB_SIZE);
        let (mut s, mut count) = (0usize, 0u32);
        for _ in 0..TAB_SIZE {
            buckets.push(s as u16);
            count += 1;
            if count >= weights[s] {
                s = (s + 1) % weights.len();
                count = 0;
            }
        }
        ShTable {
            buckets: buckets.into_boxed_slice(),
        }
    }

    /// `ip_vs_sh_hashkey`: `(offset + hash_32(port + ntohl(fold), 8)) & mask`.
    #[inline]
    pub(crate) fn bucket(src: &[u8; 16], port: u16, offset: u32) -> usize {
        let v = u32::from(port).wrapping_add(ipvs_addr_fold(src));
        (offset.wrapping_add(linux_hash_32(v, TAB_BITS)) & TAB_MASK) as usize
    }

    /// `ip_vs_sh_get` / `ip_vs_sh_get_fallback`: with fallback, an unavailable bucket's
    /// flows walk the table from `2·ihash` onwards (IPVS adds the offset twice) until an
    /// available server turns up.
    #[inline]
    pub(crate) fn lookup(
        &self,
        src: &[u8; 16],
        port: u16,
        fallback: bool,
        available: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        if self.buckets.is_empty() {
            return None;
        }
        let ihash = Self::bucket(src, port, 0);
        let s = usize::from(self.buckets[ihash]);
        if available(s) {
            return Some(s);
        }
        if !fallback {
            return None;
        }
        (0..TAB_SIZE as u32)
            .map(|offset| {
                let roffset = (offset + ihash as u32) % TAB_SIZE as u32;
                usize::from(self.buckets[Self::bucket(src, port, roffset)])
            })
            .find(|&s| available(s))
    }

    #[cfg(test)]
    pub(crate) fn buckets(&self) -> &[u16] {
        &self.buckets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[10] = 0xff;
        b[11] = 0xff;
        b[12..].copy_from_slice(&a);
        b
    }

    #[test]
    fn dh_bucket_is_ipvs_formula() {
        // 198.18.0.1 = 0xC6120001; × 2654435761 mod 2^32, low 8 bits.
        let expect = (0xC612_0001u32.wrapping_mul(2_654_435_761) & 0xff) as usize;
        assert_eq!(DhTable::bucket(&v4([198, 18, 0, 1])), expect);
        let t = DhTable::build(3);
        assert_eq!(t.buckets[..6], [0, 1, 2, 0, 1, 2]);
        assert!(DhTable::build(0)
            .lookup(&v4([1, 2, 3, 4]), |_| true)
            .is_none());
    }

    #[test]
    fn sh_table_fills_weight_consecutive_buckets() {
        let t = ShTable::build(&[2, 0, 3]);
        assert_eq!(&t.buckets()[..10], [0, 0, 1, 2, 2, 2, 0, 0, 1, 2]);
        let t = ShTable::build(&[1, 1]);
        assert_eq!(&t.buckets()[..4], [0, 1, 0, 1]);
    }

    #[test]
    fn sh_bucket_is_ipvs_formula_and_port_flag_matters() {
        let a = v4([198, 18, 0, 2]);
        let expect = (0xC612_0002u32.wrapping_add(443).wrapping_mul(0x61C8_8647) >> 24) as usize;
        assert_eq!(ShTable::bucket(&a, 443, 0), expect);
        assert_eq!(ShTable::bucket(&a, 443, 3), (expect + 3) & 0xff);
    }

    #[test]
    fn sh_fallback_skips_unavailable() {
        let t = ShTable::build(&[1, 1, 1, 1]);
        for i in 0..=255u8 {
            let a = v4([198, 18, 1, i]);
            let home = t.lookup(&a, 0, false, |_| true).unwrap();
            assert_eq!(t.lookup(&a, 0, false, |s| s != home), None);
            let other = t.lookup(&a, 0, true, |s| s != home).unwrap();
            assert_ne!(other, home);
            assert_eq!(t.lookup(&a, 0, true, |s| s == 2), Some(2));
        }
        assert_eq!(t.lookup(&v4([1, 1, 1, 1]), 0, true, |_| false), None);
    }
}
