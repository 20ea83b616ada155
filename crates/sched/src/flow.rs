//! The flow fields schedulers hash on, and the hash functions.
//!
//! dh and sh reproduce IPVS's bucket functions bit for bit (`ip_vs_dh_hashkey`,
//! `ip_vs_sh_hashkey`), so an IPv4 address lands in the same bucket as under IPVS. Maglev
//! and the locality tables use a fixed-seed 64-bit mixer: deterministic across processes
//! and nodes (the scale-out design relies on every node picking the same server), and
//! unlike IPVS mh's `addr_fold + port` input it keeps all 128 address bits.

use std::net::IpAddr;

/// The fields of a new flow that schedulers look at. Addresses are IPv6 or IPv4-mapped
/// IPv6 (`::ffff:a.b.c.d`); use [`FlowHashKey::new`] to get that right.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowHashKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
}

impl FlowHashKey {
    /// Builds a key, mapping IPv4 addresses to `::ffff:a.b.c.d`.
    pub fn new(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, proto: u8) -> Self {
        FlowHashKey {
            src: addr_bytes(src),
            dst: addr_bytes(dst),
            sport,
            dport,
            proto,
        }
    }
}

fn addr_bytes(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// IPVS's 32-bit address fold in host order: the IPv4 address itself, or for IPv6 the
/// XOR of the four 32-bit words (`addr->ip6[0]^…^addr->ip6[3]`, then `ntohl`).
#[inline]
pub fn ipvs_addr_fold(addr: &[u8; 16]) -> u32 {
    let w = |i: usize| u32::from_be_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
    if is_v4_mapped(addr) {
        w(12)
    } else {
        w(0) ^ w(4) ^ w(8) ^ w(12)
    }
}

#[inline]
fn is_v4_mapped(addr: &[u8; 16]) -> bool {
    addr[..10] == [0; 10] && addr[10] == 0xff && addr[11] == 0xff
}

/// Linux `hash_32(val, bits)`: multiply by `GOLDEN_RATIO_32` and keep the top bits.
#[inline]
pub fn linux_hash_32(val: u32, bits: u32) -> u32 {
    val.wrapping_mul(0x61C8_8647) >> (32 - bits)
}

/// A strong, fixed 64-bit finalizer (MurmurHash3 `fmix64`); bijective, full avalanche.
#[inline]
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Hash of a full 128-bit address plus a 16-bit port under a seed.
#[inline]
pub fn hash_addr_port(addr: &[u8; 16], port: u16, seed: u64) -> u64 {
    let hi = u64::from_be_bytes([
        addr[0], addr[1], addr[2], addr[3], addr[4], addr[5], addr[6], addr[7],
    ]);
    let lo = u64::from_be_bytes([
        addr[8], addr[9], addr[10], addr[11], addr[12], addr[13], addr[14], addr[15],
    ]);
    let h = mix64(hi ^ seed);
    mix64(h ^ lo ^ (u64::from(port) << 48).rotate_left(7))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn v4_is_mapped_and_folds_to_itself() {
        let k = FlowHashKey::new(
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0x100, 0, 0, 0, 1)),
            1234,
            80,
            6,
        );
        assert_eq!(&k.src[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(ipvs_addr_fold(&k.src), 0xC612_0002);
        // 2001:0002:0000:0100:0000:0000:0000:0001 → 0x20010002 ^ 0x00000100 ^ 0 ^ 1
        assert_eq!(ipvs_addr_fold(&k.dst), 0x2001_0002 ^ 0x0000_0100 ^ 1);
    }

    #[test]
    fn hash_32_matches_linux_golden_ratio() {
        // hash_32(1, 8) = (0x61C88647 >> 24) = 0x61
        assert_eq!(linux_hash_32(1, 8), 0x61);
        assert_eq!(linux_hash_32(0, 8), 0);
        assert_eq!(linux_hash_32(2, 32), 0x61C8_8647u32.wrapping_mul(2));
    }

    #[test]
    fn addr_port_hash_uses_every_input() {
        let a = [7u8; 16];
        let base = hash_addr_port(&a, 80, 1);
        assert_ne!(base, hash_addr_port(&a, 81, 1));
        assert_ne!(base, hash_addr_port(&a, 80, 2));
        for i in 0..16 {
            let mut b = a;
            b[i] ^= 1;
            assert_ne!(base, hash_addr_port(&b, 80, 1), "byte {i} ignored");
        }
    }
}
