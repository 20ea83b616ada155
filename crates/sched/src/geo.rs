//! The `geo` scheduler: client prefix → site, nearest site first with global spill-over.
//!
//! The LVS TODO list's "geographic" scheduler: a client is mapped by the longest matching
//! prefix to a site, and sent to that site's real servers (typically reached through a
//! tunnel when the site is remote). Within the site the choice is wlc. If the site has no
//! available server (all down, quiesced or overloaded), or the client matches no prefix,
//! the flow spills over to wlc across every available server — the nearest-site-first,
//! then-global policy GSLB balancers use, so a site outage degrades latency rather than
//! availability.

use std::net::IpAddr;

use crate::select;
use crate::server::ServerLive;

/// One client prefix of a site. Addresses are held as 128-bit IPv6 or IPv4-mapped IPv6
/// (`::ffff:a.b.c.d/96+len`), the encoding of [`crate::FlowHashKey::new`].
///
/// The zero-padded form (an IPv4 address in the first 4 bytes, then zeros — how the
/// dataplane stores addresses in its own tables) is recognised as IPv4 too, for callers
/// that pass addresses as stored. It is ambiguous with an IPv6 address whose low 96 bits
/// are zero, which is why an IPv6 prefix also accepts it; this never mixes families in
/// practice because a service's prefixes are all of its VIP's family (the configuration
/// checks that). The dataplane itself passes the mapped form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SitePrefix {
    net: u128,
    /// Prefix length over the 128-bit form (IPv4 lengths + 96).
    len: u8,
    /// An IPv4 prefix matches only IPv4 clients and an IPv6 one only IPv6 clients, so
    /// `::/0` or `::/2` does not swallow `::ffff:0:0/96`.
    v4: bool,
    site: u16,
}

impl SitePrefix {
    /// `addr/len` (IPv4 length 0..=32, IPv6 0..=128; longer is clamped) belongs to `site`.
    /// Host bits are cleared.
    pub fn new(addr: IpAddr, len: u8, site: u16) -> Self {
        let (bits, len) = match addr {
            IpAddr::V4(v4) => (
                u128::from_be_bytes(v4.to_ipv6_mapped().octets()),
                96 + len.min(32),
            ),
            IpAddr::V6(v6) => (u128::from_be_bytes(v6.octets()), len.min(128)),
        };
        SitePrefix {
            net: bits & mask(len),
            len,
            v4: addr.is_ipv4(),
            site,
        }
    }

    /// The site clients in this prefix belong to.
    pub fn site(&self) -> u16 {
        self.site
    }

    #[inline]
    fn matches(&self, addr: u128) -> bool {
        let addr = if self.v4 {
            match as_v4_mapped(addr) {
                Some(m) => m,
                None => return false,
            }
        } else if is_v4_mapped(addr) {
            return false;
        } else {
            addr
        };
        (addr & mask(self.len)) == self.net
    }
}

/// `::ffff:a.b.c.d`, how [`crate::FlowHashKey`] holds an IPv4 address.
#[inline]
fn is_v4_mapped(addr: u128) -> bool {
    addr >> 32 == 0xffff
}

/// The `::ffff:a.b.c.d` form of an IPv4 client in either layout (see [`SitePrefix`]).
#[inline]
fn as_v4_mapped(addr: u128) -> Option<u128> {
    if is_v4_mapped(addr) {
        Some(addr)
    } else if addr << 32 == 0 {
        Some(0xffff_u128 << 32 | addr >> 96)
    } else {
        None
    }
}

#[inline]
fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

/// The built table: prefixes longest first (so the first match is the longest), and each
/// server's site.
#[derive(Debug)]
pub(crate) struct GeoTable {
    prefixes: Box<[SitePrefix]>,
    server_site: Box<[u16]>,
}

impl GeoTable {
    pub(crate) fn new(prefixes: &[SitePrefix], server_site: Box<[u16]>) -> Self {
        let mut prefixes = prefixes.to_vec();
        // Stable: equal lengths keep the configured order.
        prefixes.sort_by_key(|p| std::cmp::Reverse(p.len));
        GeoTable {
            prefixes: prefixes.into_boxed_slice(),
            server_site,
        }
    }

    /// Site of a client address (16-byte [`crate::FlowHashKey::src`] form): the longest
    /// matching prefix's. A linear scan: site tables are small (tens of prefixes).
    #[inline]
    pub(crate) fn site_of(&self, src: &[u8; 16]) -> Option<u16> {
        let a = u128::from_be_bytes(*src);
        self.prefixes.iter().find(|p| p.matches(a)).map(|p| p.site)
    }

    /// wlc among the client's site, else wlc among all. No allocation, no lock.
    #[inline]
    pub(crate) fn pick(&self, src: &[u8; 16], w: &[u32], live: &[ServerLive]) -> Option<usize> {
        if let Some(site) = self.site_of(src) {
            let local = select::wlc_where(w, live, |i| self.server_site[i] == site);
            if local.is_some() {
                return local;
            }
        }
        select::wlc(w, live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowHashKey;
    use std::net::Ipv4Addr;

    fn src(ip: &str) -> [u8; 16] {
        FlowHashKey::new(
            ip.parse().unwrap(),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            1,
            2,
            6,
        )
        .src
    }

    fn table() -> GeoTable {
        GeoTable::new(
            &[
                SitePrefix::new("198.18.0.0".parse().unwrap(), 16, 0),
                SitePrefix::new("198.18.7.0".parse().unwrap(), 24, 1),
                SitePrefix::new("2001:2::".parse().unwrap(), 48, 1),
                SitePrefix::new("2001:2:0:5::".parse().unwrap(), 64, 2),
            ],
            Box::new([]),
        )
    }

    #[test]
    fn longest_prefix_wins_in_both_families() {
        let t = table();
        assert_eq!(t.site_of(&src("198.18.1.2")), Some(0));
        assert_eq!(t.site_of(&src("198.18.7.9")), Some(1));
        assert_eq!(t.site_of(&src("198.19.0.1")), None);
        assert_eq!(t.site_of(&src("2001:2:0:4::1")), Some(1));
        assert_eq!(t.site_of(&src("2001:2:0:5::1")), Some(2));
        assert_eq!(t.site_of(&src("2001:3::1")), None);
        // An IPv4 prefix never matches an IPv6 client that merely shares low bits.
        assert_eq!(t.site_of(&src("::c612:101")), None);
        // The dataplane's layout: a.b.c.d then twelve zero bytes.
        let mut padded = [0u8; 16];
        padded[..4].copy_from_slice(&[198, 18, 7, 9]);
        assert_eq!(t.site_of(&padded), Some(1));
        padded[..4].copy_from_slice(&[198, 18, 1, 9]);
        assert_eq!(t.site_of(&padded), Some(0));
    }

    #[test]
    fn host_bits_are_cleared_and_lengths_clamped() {
        let p = SitePrefix::new("198.18.7.99".parse().unwrap(), 24, 3);
        assert_eq!(p, SitePrefix::new("198.18.7.0".parse().unwrap(), 24, 3));
        let all4 = SitePrefix::new("0.0.0.0".parse().unwrap(), 0, 0);
        assert!(all4.matches(u128::from_be_bytes(src("203.0.113.1"))));
        assert!(!all4.matches(u128::from_be_bytes(src("2001:2::1"))));
        let host = SitePrefix::new("198.18.0.1".parse().unwrap(), 99, 0);
        assert_eq!(host.len, 128);
        let all6 = SitePrefix::new("::".parse().unwrap(), 0, 0);
        assert!(all6.matches(7));
        assert!(!all6.matches(u128::from_be_bytes(src("198.18.0.1"))));
    }
}
