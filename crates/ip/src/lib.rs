//! The IP identities every uvs crate shares: the one internal address form (16 bytes and
//! a family flag, IPv4 in the first four bytes and the other twelve zero) and the one set
//! of IP protocol numbers ([`proto`]).
//!
//! Why not `std::net::IpAddr`: the connection table, the packet parser and the rewrite
//! write and compare addresses as fixed 16-byte arrays in 8-byte words (no branch on the
//! family per byte, no enum layout); `IpAddr` stays at the edges (configuration, admin,
//! metrics) and converts with [`IpKey::from_ip`] / [`IpKey::to_ip`]. A flow key keeps its
//! two addresses as raw arrays beside one family flag (`uvs_conntrack::FlowKey`), in this
//! same layout, built with [`widen_v4`].

use std::hash::{Hash, Hasher};
use std::net::IpAddr;

/// IPv4 address bytes in the 16-byte form: the four octets first, twelve zero bytes after
/// (built in registers: the parser widens two addresses per packet).
#[inline(always)]
pub fn widen_v4(a: [u8; 4]) -> [u8; 16] {
    (u128::from(u32::from_be_bytes(a)) << 96).to_be_bytes()
}

/// An IP address in the 16-byte form the tables use: IPv4 in the first four bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct IpKey {
    pub v6: bool,
    pub addr: [u8; 16],
}

/// One folded multiply of the two address words instead of the derived hash (a length
/// prefix, then a byte copy per 8-byte chunk): the neighbour map is looked up once per
/// forwarded packet. The fold also puts every address bit into the low bits hashbrown
/// picks buckets by; with a plain multiply those depend only on the words' low bytes, the
/// same for every address of an IPv4 /24.
impl Hash for IpKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let p = u128::from(word(&self.addr, 0) ^ 0xa076_1d64_78bd_642f ^ u64::from(self.v6))
            * u128::from(word(&self.addr, 8) ^ 0xe703_7ed1_a0b4_28db);
        state.write_u64((p as u64) ^ ((p >> 64) as u64));
    }
}

#[inline]
fn word(a: &[u8; 16], i: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&a[i..i + 8]);
    u64::from_le_bytes(b)
}

/// Whether two 16-byte addresses are equal, compared as two 8-byte words: the connection
/// table writes addresses in 8-byte pieces, and a 16-byte load of them would stall on
/// store forwarding (measured: 7.5 % of the established path).
#[inline]
pub fn same_addr_bytes(a: &[u8; 16], b: &[u8; 16]) -> bool {
    word(a, 0) == word(b, 0) && word(a, 8) == word(b, 8)
}

impl IpKey {
    /// An IPv4 address.
    pub fn v4(octets: [u8; 4]) -> Self {
        IpKey {
            v6: false,
            addr: widen_v4(octets),
        }
    }

    /// An IPv6 address.
    pub fn v6(octets: [u8; 16]) -> Self {
        IpKey {
            v6: true,
            addr: octets,
        }
    }

    /// Whether `addr` is this address ([`same_addr_bytes`]).
    #[inline]
    pub fn same_addr(&self, addr: &[u8; 16]) -> bool {
        same_addr_bytes(&self.addr, addr)
    }

    pub fn from_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => IpKey::v4(a.octets()),
            IpAddr::V6(a) => IpKey::v6(a.octets()),
        }
    }

    pub fn to_ip(self) -> IpAddr {
        if self.v6 {
            IpAddr::V6(self.addr.into())
        } else {
            let mut o = [0; 4];
            o.copy_from_slice(&self.addr[..4]);
            IpAddr::V4(o.into())
        }
    }
}

impl From<IpAddr> for IpKey {
    fn from(ip: IpAddr) -> Self {
        IpKey::from_ip(ip)
    }
}

/// IP protocol / IPv6 next-header numbers (IANA "Assigned Internet Protocol Numbers").
pub mod proto {
    /// IPv6 hop-by-hop options.
    pub const HOPOPTS: u8 = 0;
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// IPv4 encapsulation (IP-in-IP, RFC 2003).
    pub const IPIP: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 encapsulation (RFC 2473 / RFC 4213).
    pub const IPV6: u8 = 41;
    /// Generic routing encapsulation (RFC 2784).
    pub const GRE: u8 = 47;
    /// IPv6 routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 fragment header.
    pub const FRAGMENT: u8 = 44;
    /// Encapsulating security payload (not walkable).
    pub const ESP: u8 = 50;
    /// Authentication header.
    pub const AH: u8 = 51;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// No next header.
    pub const NONE: u8 = 59;
    /// IPv6 destination options.
    pub const DSTOPTS: u8 = 60;
    /// SCTP.
    pub const SCTP: u8 = 132;
    /// Mobility header (RFC 6275).
    pub const MOBILITY: u8 = 135;
    /// Host identity protocol (RFC 7401).
    pub const HIP: u8 = 139;
    /// Shim6 (RFC 5533).
    pub const SHIM6: u8 = 140;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_families() {
        for s in ["198.18.0.1", "2001:2::1", "0.0.0.0", "::"] {
            let ip: IpAddr = s.parse().unwrap();
            let k = IpKey::from_ip(ip);
            assert_eq!(k.to_ip(), ip, "{s}");
            assert_eq!(k.v6, ip.is_ipv6());
        }
        let k = IpKey::v4([198, 18, 0, 1]);
        assert_eq!(k.addr[4..], [0u8; 12]);
        assert!(k.same_addr(&widen_v4([198, 18, 0, 1])));
        assert!(!k.same_addr(&widen_v4([198, 18, 0, 2])));
    }

    #[test]
    fn the_family_is_part_of_the_identity() {
        let v4 = IpKey::v4([0, 0, 0, 0]);
        let v6 = IpKey::v6([0; 16]);
        assert_ne!(v4, v6);
        let h = |k: &IpKey| {
            let mut s = std::collections::hash_map::DefaultHasher::new();
            k.hash(&mut s);
            s.finish()
        };
        assert_ne!(h(&v4), h(&v6));
    }
}
