//! Scheduler names, flags and build-time configuration.
//!
//! Names are the ones `ipvsadm -s` accepts (ipvsadm(8)), plus `fastest` and `load`, the
//! feedback schedulers the LVS TODO list asked for.

use std::fmt;
use std::str::FromStr;

use crate::error::SchedError;
use crate::geo::SitePrefix;

/// Which scheduling algorithm a virtual service uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    /// Round robin (`ip_vs_rr.c`).
    Rr,
    /// Weighted round robin with the cw/mw/gcd interleaving of `ip_vs_wrr.c`.
    Wrr,
    /// Least connection: lowest `active*256 + inactive` (`ip_vs_lc.c`).
    Lc,
    /// Weighted least connection: lowest overhead/weight (`ip_vs_wlc.c`); ipvsadm's default.
    Wlc,
    /// Shortest expected delay: lowest `(active+1)/weight` (`ip_vs_sed.c`).
    Sed,
    /// Never queue: an idle server first, else sed (`ip_vs_nq.c`).
    Nq,
    /// Locality-based least connection, keyed by destination IP (`ip_vs_lblc.c`).
    Lblc,
    /// Locality-based least connection with replication: a server set per destination IP
    /// (`ip_vs_lblcr.c`).
    Lblcr,
    /// Destination hashing: 256-bucket table indexed by destination IP (`ip_vs_dh.c`).
    Dh,
    /// Source hashing: 256-bucket weighted table indexed by source IP (`ip_vs_sh.c`).
    Sh,
    /// Maglev hashing (Eisenbud et al., NSDI 2016; `ip_vs_mh.c`).
    Mh,
    /// Weighted failover: highest-weight available server (`ip_vs_fo.c`).
    Fo,
    /// Overflow: highest-weight server whose active connections do not exceed its weight
    /// (`ip_vs_ovf.c`).
    Ovf,
    /// Power of two choices, weighted (`ip_vs_twos.c`).
    Twos,
    /// Fastest response: lowest smoothed RTT·(active+1)/weight, RTT fed by control.
    Fastest,
    /// Load-informed: lowest `(connections + 1) / (weight × headroom)`, headroom from the
    /// smoothed, aged agent-reported load (`crate::LoadFilter`).
    Load,
    /// Geographic (the LVS TODO's "client prefix → site"): wlc among the servers of the
    /// client's site, spilling over to wlc among all servers when that site has none
    /// available.
    Geo,
}

impl SchedulerKind {
    /// Every scheduler, in the order of the LVS documentation then the new ones.
    pub const ALL: &'static [SchedulerKind] = &[
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Sed,
        SchedulerKind::Nq,
        SchedulerKind::Lblc,
        SchedulerKind::Lblcr,
        SchedulerKind::Dh,
        SchedulerKind::Sh,
        SchedulerKind::Mh,
        SchedulerKind::Fo,
        SchedulerKind::Ovf,
        SchedulerKind::Twos,
        SchedulerKind::Fastest,
        SchedulerKind::Load,
        SchedulerKind::Geo,
    ];

    /// The scheduler's name as `ipvsadm -s` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Sed => "sed",
            SchedulerKind::Nq => "nq",
            SchedulerKind::Lblc => "lblc",
            SchedulerKind::Lblcr => "lblcr",
            SchedulerKind::Dh => "dh",
            SchedulerKind::Sh => "sh",
            SchedulerKind::Mh => "mh",
            SchedulerKind::Fo => "fo",
            SchedulerKind::Ovf => "ovf",
            SchedulerKind::Twos => "twos",
            SchedulerKind::Fastest => "fastest",
            SchedulerKind::Load => "load",
            SchedulerKind::Geo => "geo",
        }
    }

    /// Looks a scheduler up by name, ignoring ASCII case.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }

    /// Whether `fallback` and `port` mean anything for this scheduler (IPVS defines
    /// `sh-fallback`/`sh-port` and `mh-fallback`/`mh-port` only).
    pub fn takes_hash_flags(&self) -> bool {
        matches!(self, SchedulerKind::Sh | SchedulerKind::Mh)
    }

    /// Whether picks follow a table built from the configured weights (wrr's cycle, the
    /// dh/sh buckets, Maglev's lookup table), so an agent's weight percentage can only
    /// quiesce a server (0 %), not scale it — HAProxy's "static" algorithms likewise
    /// accept only 0 % and 100 %.
    pub fn static_weights(&self) -> bool {
        matches!(
            self,
            SchedulerKind::Wrr | SchedulerKind::Dh | SchedulerKind::Sh | SchedulerKind::Mh
        )
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SchedulerKind {
    type Err = SchedError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s).ok_or_else(|| SchedError::UnknownScheduler(s.to_owned()))
    }
}

/// Scheduler flags (ipvsadm `-b`): IPVS's `sh-fallback`/`mh-fallback` and
/// `sh-port`/`mh-port`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SchedFlags {
    /// If the hashed server is unavailable, rehash to another one instead of refusing.
    pub fallback: bool,
    /// Hash on the source port as well as the source address.
    pub port: bool,
}

/// Default Maglev table size: the smallest prime above 2^16, as the NSDI 2016 paper's
/// evaluation uses (65537).
pub const DEFAULT_MH_TABLE_SIZE: u32 = 65_537;
/// Default number of slots in the lblc/lblcr locality table. IPVS caps its chained table at
/// 1024 buckets × 16 entries, so this holds the same number of destinations.
pub const DEFAULT_LOCALITY_SLOTS: u32 = 16_384;
/// IPVS `lblc_expiration`/`lblcr_expiration` default: 24 hours.
pub const DEFAULT_LOCALITY_EXPIRATION_S: u32 = 24 * 60 * 60;

/// Everything needed to build a [`crate::Scheduler`] besides the server list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedConfig {
    pub kind: SchedulerKind,
    pub flags: SchedFlags,
    /// Maglev lookup table size M (mh only): a prime larger than the number of servers.
    /// Balance within 1% needs M > 100·N (NSDI 2016 §3.4).
    pub mh_table_size: u32,
    /// Slots of the lblc/lblcr destination table (power of two).
    pub locality_slots: u32,
    /// lblc: a destination entry unused this long is forgotten. lblcr: additionally, a
    /// server set unchanged this long sheds its most loaded member (IPVS
    /// `lblcr_expiration`). Seconds.
    pub locality_expiration_s: u32,
    /// geo only: client prefix → site id, in any order (the build sorts them longest
    /// first). Servers name their site in [`crate::ServerSpec::site`].
    pub sites: Vec<SitePrefix>,
}

impl SchedConfig {
    /// A configuration for `kind` with IPVS defaults and no flags.
    pub fn new(kind: SchedulerKind) -> Self {
        SchedConfig {
            kind,
            flags: SchedFlags::default(),
            mh_table_size: DEFAULT_MH_TABLE_SIZE,
            locality_slots: DEFAULT_LOCALITY_SLOTS,
            locality_expiration_s: DEFAULT_LOCALITY_EXPIRATION_S,
            sites: Vec::new(),
        }
    }

    /// Same configuration with `flags`.
    pub fn with_flags(mut self, flags: SchedFlags) -> Self {
        self.flags = flags;
        self
    }
}

impl Default for SchedConfig {
    /// `wlc`, ipvsadm's default scheduler.
    fn default() -> Self {
        SchedConfig::new(SchedulerKind::Wlc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        assert_eq!(SchedulerKind::ALL.len(), 17);
        for k in SchedulerKind::ALL {
            assert_eq!(SchedulerKind::from_name(k.name()), Some(*k));
            assert_eq!(k.to_string().parse::<SchedulerKind>().unwrap(), *k);
            let n = SchedulerKind::ALL
                .iter()
                .filter(|o| o.name() == k.name())
                .count();
            assert_eq!(n, 1, "{k} listed twice");
        }
        assert_eq!(SchedulerKind::from_name("WLC"), Some(SchedulerKind::Wlc));
        assert_eq!(SchedulerKind::from_name("maglev"), None);
        assert!("xx".parse::<SchedulerKind>().is_err());
    }

    #[test]
    fn only_sh_and_mh_take_hash_flags() {
        let with: Vec<_> = SchedulerKind::ALL
            .iter()
            .filter(|k| k.takes_hash_flags())
            .map(|k| k.name())
            .collect();
        assert_eq!(with, ["sh", "mh"]);
    }
}
