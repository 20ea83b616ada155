//! IP prefixes (`198.18.0.0/24`, `2001:2::/64`) and netmask helpers.

use serde::{Serialize, Serializer};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address prefix in CIDR notation, with no bits set past the prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

/// Why a string is not a prefix; `Display` is the user-facing sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrefixError {
    MissingLength,
    BadAddress,
    BadLength {
        max: u8,
    },
    /// Host bits are set; carries the prefix the user probably meant.
    HostBits {
        network: IpPrefix,
    },
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefixError::MissingLength => f.write_str("missing '/length'"),
            PrefixError::BadAddress => f.write_str("the address part does not parse"),
            PrefixError::BadLength { max } => write!(f, "the length must be 0..={max}"),
            PrefixError::HostBits { .. } => f.write_str("host bits are set past the length"),
        }
    }
}

impl IpPrefix {
    /// A prefix from its parts; `None` if `len` is too long for the family or host bits are set.
    pub fn new(addr: IpAddr, len: u8) -> Option<IpPrefix> {
        let p = IpPrefix { addr, len };
        (len <= max_len(addr) && p.network() == addr).then_some(p)
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits. (No `is_empty`: a /0 prefix is the default route, not empty.)
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for `0.0.0.0/0` and `::/0` (the default route).
    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Whether `ip` is inside this prefix (never across families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && mask_addr(ip, self.len) == self.addr
    }

    fn network(&self) -> IpAddr {
        mask_addr(self.addr, self.len)
    }
}

/// 32 for IPv4, 128 for IPv6.
pub fn max_len(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

/// `ip` with every bit past `len` cleared.
pub fn mask_addr(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & mask))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & mask))
        }
    }
}

/// The prefix length of a contiguous IPv4 netmask (`255.255.255.0` → 24), `None` if the ones
/// are not contiguous (IPVS's `-M` takes only such masks).
pub fn ipv4_mask_len(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let len = bits.leading_ones();
    (bits.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

/// The dotted IPv4 netmask of a prefix length (24 → `255.255.255.0`).
pub fn ipv4_mask(len: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0))
}

/// Prefixes, each with a value, that answer "which of you contain this address" with one hash
/// look-up per prefix length in use (at most 33 or 129), however many prefixes there are.
#[derive(Debug, Clone)]
pub(crate) struct PrefixMap<T> {
    map: HashMap<IpPrefix, T>,
    /// (IPv6?, length) of the prefixes present, longest first within a family.
    lens: BTreeSet<(bool, std::cmp::Reverse<u8>)>,
}

impl<T> Default for PrefixMap<T> {
    fn default() -> Self {
        PrefixMap {
            map: HashMap::new(),
            lens: BTreeSet::new(),
        }
    }
}

impl<T> PrefixMap<T> {
    /// Adds `p` unless present; `false` if it was (the first value stays).
    pub fn insert(&mut self, p: IpPrefix, value: T) -> bool {
        if self.map.contains_key(&p) {
            return false;
        }
        self.lens.insert((!p.is_ipv4(), std::cmp::Reverse(p.len)));
        self.map.insert(p, value);
        true
    }

    /// The prefixes containing `ip`, longest first.
    pub fn covering(&self, ip: IpAddr) -> impl Iterator<Item = (IpPrefix, &T)> + '_ {
        let v6 = ip.is_ipv6();
        self.lens
            .range((v6, std::cmp::Reverse(u8::MAX))..=(v6, std::cmp::Reverse(0)))
            .filter_map(move |&(_, std::cmp::Reverse(len))| {
                let p = IpPrefix {
                    addr: mask_addr(ip, len),
                    len,
                };
                self.map.get(&p).map(|v| (p, v))
            })
    }

    pub fn contains_addr(&self, ip: IpAddr) -> bool {
        self.covering(ip).next().is_some()
    }
}

impl FromStr for IpPrefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<IpPrefix, PrefixError> {
        let (addr, len) = s.split_once('/').ok_or(PrefixError::MissingLength)?;
        let addr: IpAddr = addr.parse().map_err(|_| PrefixError::BadAddress)?;
        let max = max_len(addr);
        let len: u8 = len
            .parse()
            .ok()
            .filter(|&l| l <= max)
            .ok_or(PrefixError::BadLength { max })?;
        let network = mask_addr(addr, len);
        if network != addr {
            return Err(PrefixError::HostBits {
                network: IpPrefix { addr: network, len },
            });
        }
        Ok(IpPrefix { addr, len })
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl Serialize for IpPrefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        for s in [
            "198.18.0.0/24",
            "0.0.0.0/0",
            "2001:2::/64",
            "::/0",
            "198.18.0.3/32",
        ] {
            assert_eq!(s.parse::<IpPrefix>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn rejects_host_bits_and_names_the_network() {
        assert_eq!(
            "198.18.0.1/24".parse::<IpPrefix>(),
            Err(PrefixError::HostBits {
                network: "198.18.0.0/24".parse().unwrap()
            })
        );
        assert!(matches!(
            "2001:2::1/64".parse::<IpPrefix>(),
            Err(PrefixError::HostBits { .. })
        ));
    }

    #[test]
    fn rejects_bad_parts() {
        assert_eq!(
            "198.18.0.0".parse::<IpPrefix>(),
            Err(PrefixError::MissingLength)
        );
        assert_eq!(
            "198.18.0.0/33".parse::<IpPrefix>(),
            Err(PrefixError::BadLength { max: 32 })
        );
        assert_eq!(
            "2001:2::/129".parse::<IpPrefix>(),
            Err(PrefixError::BadLength { max: 128 })
        );
        assert_eq!(
            "198.18.0/24".parse::<IpPrefix>(),
            Err(PrefixError::BadAddress)
        );
    }

    #[test]
    fn contains_respects_family_and_length() {
        let p: IpPrefix = "198.18.0.0/24".parse().unwrap();
        assert!(p.contains("198.18.0.255".parse().unwrap()));
        assert!(!p.contains("198.18.1.0".parse().unwrap()));
        assert!(!p.contains("::".parse().unwrap()));
        let all: IpPrefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("198.19.255.255".parse().unwrap()));
        assert!(!all.contains("2001:2::1".parse().unwrap()));
        let v6: IpPrefix = "2001:2::/48".parse().unwrap();
        assert!(v6.contains("2001:2:0:1::3".parse().unwrap()));
        assert!(!v6.contains("2001:3::1".parse().unwrap()));
    }

    #[test]
    fn ipv4_masks() {
        assert_eq!(ipv4_mask_len("255.255.255.255".parse().unwrap()), Some(32));
        assert_eq!(ipv4_mask_len("255.255.255.0".parse().unwrap()), Some(24));
        assert_eq!(ipv4_mask_len("0.0.0.0".parse().unwrap()), Some(0));
        assert_eq!(ipv4_mask_len("255.0.255.0".parse().unwrap()), None);
        for len in 0..=32 {
            assert_eq!(ipv4_mask_len(ipv4_mask(len)), Some(len));
        }
    }

    #[test]
    fn new_checks_length_and_host_bits() {
        assert!(IpPrefix::new("198.18.0.0".parse().unwrap(), 16).is_some());
        assert!(IpPrefix::new("198.18.0.1".parse().unwrap(), 16).is_none());
        assert!(IpPrefix::new("198.18.0.0".parse().unwrap(), 33).is_none());
    }

    #[test]
    fn prefix_map_finds_covering_prefixes_longest_first() {
        let mut m = PrefixMap::default();
        for (p, v) in [
            ("198.18.0.0/16", 1),
            ("198.18.1.0/24", 2),
            ("2001:2::/48", 3),
            ("0.0.0.0/0", 4),
        ] {
            assert!(m.insert(p.parse().unwrap(), v));
        }
        assert!(!m.insert("198.18.1.0/24".parse().unwrap(), 9));
        let found: Vec<i32> = m
            .covering("198.18.1.7".parse().unwrap())
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(found, [2, 1, 4]);
        let found: Vec<i32> = m
            .covering("198.19.0.1".parse().unwrap())
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(found, [4]);
        assert!(m.contains_addr("2001:2:0:9::1".parse().unwrap()));
        assert!(!m.contains_addr("2001:3::1".parse().unwrap()));
    }
}
