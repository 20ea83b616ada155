//! The identities the tables and the connection table share: forwarding method, tunnel
//! type, addresses, service keys, and the hasher for maps keyed by them.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// Forwarding method, as ipvsadm's `-m` (NAT), `-g` (DR), `-i` (TUN) and FullNAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Method {
    Nat = 0,
    Dr = 1,
    Tun = 2,
    FullNat = 3,
}

impl Method {
    /// The method a connection entry was stored with (`method as u8`); `None` for a byte
    /// uvs never stores, which callers refuse instead of reading it as NAT.
    pub fn from_u8(v: u8) -> Option<Method> {
        match v {
            0 => Some(Method::Nat),
            1 => Some(Method::Dr),
            2 => Some(Method::Tun),
            3 => Some(Method::FullNat),
            _ => None,
        }
    }

    /// ipvsadm's name in `-L` output.
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            Method::Nat => "Masq",
            Method::Dr => "Route",
            Method::Tun => "Tunnel",
            Method::FullNat => "FullNat",
        }
    }
}

/// TUN's encapsulation towards one real server (ipvsadm `--tun-type`, `--tun-port`,
/// `--tun-nocsum`/`--tun-csum`/`--tun-remcsum`; remcsum arrives here as `checksum`, see
/// `uvs_config::TunCsum`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TunEncap {
    /// IP-in-IP / IPv6-in-IPv6 (IPVS's default).
    #[default]
    Ipip,
    /// UDP to `port` + GUE; `checksum`: compute the UDP checksum; `remcsum`: the operator
    /// asked for remote checksum offload, which is sent as `checksum` (uvs completes
    /// partial inner checksums before it forwards; kept for the listing).
    Gue {
        port: u16,
        checksum: bool,
        remcsum: bool,
    },
    /// GRE; `checksum`: carry the GRE checksum.
    Gre { checksum: bool },
}

impl TunEncap {
    /// Index of the per-type counter (`WorkerCounters::tunnelled`).
    pub fn index(self) -> usize {
        match self {
            TunEncap::Ipip => 0,
            TunEncap::Gue { .. } => 1,
            TunEncap::Gre { .. } => 2,
        }
    }

    /// The type's name, for metrics labels (ipvsadm's `--tun-type` names).
    pub const NAMES: [&'static str; 3] = ["ipip", "gue", "gre"];
}

pub use uvs_ip::IpKey;

/// A virtual service's identity: (VIP, protocol, port); port 0 means every port.
///
/// A firewall-mark service has protocol 0 and port 0, and its "VIP" holds the mark (big
/// endian, in the first four bytes, the family in `v6`): what IPVS puts in the address of a
/// firewall-mark service's persistence templates, so persistence works unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub vip: IpKey,
    pub proto: u8,
    pub port: u16,
}

impl ServiceKey {
    /// The firewall-mark service of `mark` in one family.
    pub fn mark(mark: u32, v6: bool) -> ServiceKey {
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&mark.to_be_bytes());
        ServiceKey {
            vip: IpKey { v6, addr },
            proto: 0,
            port: 0,
        }
    }

    /// The mark of a firewall-mark service.
    pub fn fwmark(&self) -> Option<u32> {
        (self.proto == 0).then(|| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&self.vip.addr[..4]);
            u32::from_be_bytes(b)
        })
    }
}

/// A multiply-rotate hasher for the small fixed-size keys looked up per packet; SipHash's
/// DoS resistance buys nothing for keys the operator configured.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
