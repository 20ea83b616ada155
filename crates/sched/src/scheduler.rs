//! The per-service scheduler snapshot workers share.
//!
//! Control builds a [`Scheduler`] from configuration (expensive parts such as the Maglev
//! table are computed here, off the packet path) and publishes it behind an `Arc`; every
//! worker calls [`Scheduler::pick`] with `&self`. The little mutable state some algorithms
//! need (rr/wrr cursors, twos random state, lblc/lblcr tables) lives inside as atomics, so
//! `pick` takes no lock and allocates nothing.

use std::sync::atomic::AtomicU64;

use crate::config::{SchedConfig, SchedulerKind};
use crate::error::SchedError;
use crate::flow::FlowHashKey;
use crate::geo::GeoTable;
use crate::hashing::{DhTable, ShTable};
use crate::locality::{LblcTable, LblcrTable};
use crate::maglev::{is_prime, MaglevTable};
use crate::padded::CachePadded;
use crate::select;
use crate::server::{ServerLive, ServerSpec, MAX_SERVERS};
use crate::wrr::WrrCycle;

/// Largest accepted Maglev table (entries are 2 bytes: 32 MiB).
pub const MAX_MH_TABLE_SIZE: u32 = 1 << 24;

#[derive(Debug)]
enum Algo {
    Rr(CachePadded<AtomicU64>),
    Wrr(WrrCycle),
    Lc,
    Wlc,
    Sed,
    Nq,
    Lblc(LblcTable),
    Lblcr(LblcrTable),
    Dh(DhTable),
    Sh(ShTable),
    Mh(MaglevTable),
    Fo,
    Ovf,
    Twos(CachePadded<AtomicU64>),
    Fastest,
    Load,
    Geo(GeoTable),
}

/// An immutable scheduling snapshot for one virtual service: `Send + Sync`, shared by all
/// workers.
#[derive(Debug)]
pub struct Scheduler {
    config: SchedConfig,
    weights: Box<[u32]>,
    algo: Algo,
}

impl Scheduler {
    /// Builds the scheduler for `servers` (their order is the IPVS destination-list order,
    /// which rr/wrr/lc… tie-breaks and dh/sh tables follow). Fails with a message naming
    /// the setting to change.
    pub fn build(cfg: &SchedConfig, servers: &[ServerSpec]) -> Result<Scheduler, SchedError> {
        if servers.len() > MAX_SERVERS {
            return Err(SchedError::TooManyServers {
                count: servers.len(),
            });
        }
        if !cfg.kind.takes_hash_flags() {
            let flag = match (cfg.flags.fallback, cfg.flags.port) {
                (true, _) => Some("fallback"),
                (_, true) => Some("port"),
                _ => None,
            };
            if let Some(flag) = flag {
                return Err(SchedError::FlagNotApplicable {
                    flag,
                    scheduler: cfg.kind.name(),
                });
            }
        }
        if cfg.kind != SchedulerKind::Geo && !cfg.sites.is_empty() {
            return Err(SchedError::SitesNotApplicable(cfg.kind.name()));
        }
        let weights: Box<[u32]> = servers.iter().map(|s| s.weight).collect();
        let locality_slots = || {
            let n = cfg.locality_slots;
            if n.is_power_of_two() && n <= 1 << 24 {
                Ok(n)
            } else {
                Err(SchedError::LocalitySlots(n))
            }
        };
        let algo = match cfg.kind {
            SchedulerKind::Rr => Algo::Rr(CachePadded::new(AtomicU64::new(0))),
            SchedulerKind::Wrr => Algo::Wrr(WrrCycle::new(&weights)),
            SchedulerKind::Lc => Algo::Lc,
            SchedulerKind::Wlc => Algo::Wlc,
            SchedulerKind::Sed => Algo::Sed,
            SchedulerKind::Nq => Algo::Nq,
            SchedulerKind::Lblc => {
                Algo::Lblc(LblcTable::new(locality_slots()?, cfg.locality_expiration_s))
            }
            SchedulerKind::Lblcr => Algo::Lblcr(LblcrTable::new(
                locality_slots()?,
                cfg.locality_expiration_s,
            )),
            SchedulerKind::Dh => Algo::Dh(DhTable::build(servers.len())),
            SchedulerKind::Sh => Algo::Sh(ShTable::build(&weights)),
            SchedulerKind::Mh => {
                let m = cfg.mh_table_size;
                if !is_prime(m) || m > MAX_MH_TABLE_SIZE {
                    return Err(SchedError::MaglevSizeNotPrime(m));
                }
                if m as usize <= servers.len() {
                    return Err(SchedError::MaglevTableTooSmall {
                        size: m,
                        servers: servers.len(),
                    });
                }
                let keys: Vec<u64> = servers.iter().map(|s| s.key).collect();
                Algo::Mh(MaglevTable::build(&keys, &weights, m))
            }
            SchedulerKind::Fo => Algo::Fo,
            SchedulerKind::Ovf => Algo::Ovf,
            SchedulerKind::Twos => Algo::Twos(CachePadded::new(AtomicU64::new(
                0x853c_49e6_748f_ea9b ^ servers.len() as u64,
            ))),
            SchedulerKind::Fastest => Algo::Fastest,
            SchedulerKind::Load => Algo::Load,
            SchedulerKind::Geo => Algo::Geo(GeoTable::new(
                &cfg.sites,
                servers.iter().map(|s| s.site).collect(),
            )),
        };
        Ok(Scheduler {
            config: cfg.clone(),
            weights,
            algo,
        })
    }

    /// Chooses a server for a new flow: an index into the `servers` given to
    /// [`Scheduler::build`], or `None` when no server may take it (the dataplane counts
    /// that and may use a sorry server).
    ///
    /// `live` is the per-server live state in the same order; if it is shorter than the
    /// server list nothing is picked. `now_s` is a coarse clock in seconds (any origin,
    /// wrapping) used only by lblc/lblcr expiry; pass the burst's timestamp.
    ///
    /// A returned server is always available (weight > 0, health up, not overloaded) at
    /// the moment its state was read. Lock-free and allocation-free for every kind.
    #[inline]
    pub fn pick(&self, key: &FlowHashKey, live: &[ServerLive], now_s: u32) -> Option<usize> {
        let w = &*self.weights;
        if live.len() < w.len() {
            return None;
        }
        let live = &live[..w.len()];
        let available = |i: usize| live[i].available(w[i]);
        match &self.algo {
            Algo::Rr(cursor) => select::rr(cursor, w, live),
            Algo::Wrr(cycle) => cycle.pick(available),
            Algo::Lc => select::lc(w, live),
            Algo::Wlc => select::wlc(w, live),
            Algo::Sed => select::sed(w, live),
            Algo::Nq => select::nq(w, live),
            Algo::Lblc(t) => t.pick(&key.dst, now_s, w, live),
            Algo::Lblcr(t) => t.pick(&key.dst, now_s, w, live),
            Algo::Dh(t) => t.lookup(&key.dst, available),
            Algo::Sh(t) => t.lookup(
                &key.src,
                self.hash_port(key),
                self.config.flags.fallback,
                available,
            ),
            Algo::Mh(t) => t.lookup(
                &key.src,
                self.hash_port(key),
                self.config.flags.fallback,
                available,
            ),
            Algo::Fo => select::fo(w, live),
            Algo::Ovf => select::ovf(w, live),
            Algo::Twos(rng) => select::twos(rng, w, live),
            Algo::Fastest => select::fastest(w, live),
            Algo::Load => select::load(w, live),
            Algo::Geo(t) => t.pick(&key.src, w, live),
        }
    }

    /// [`pick`](Self::pick) as if server `except` could take nothing: another server for a
    /// connection that `except` refused (the SYN proxy's redispatch, HAProxy's `option
    /// redispatch`). Every algorithm then goes on as it does for a server that is down: a
    /// table scheduler (`sh`, `mh`, `dh`) picks another only with its fallback, `lc` no
    /// longer picks the server whose refusals left it the fewest connections. It picks
    /// over a copy of `live` with `except` down, allocated per call: for that rare path
    /// only, never a packet's.
    pub fn pick_except(
        &self,
        key: &FlowHashKey,
        live: &[ServerLive],
        now_s: u32,
        except: usize,
    ) -> Option<usize> {
        let view: Vec<ServerLive> = live
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let s = l.snapshot();
                if i == except {
                    s.health_up
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                }
                s
            })
            .collect();
        self.pick(key, &view, now_s)
    }

    #[inline]
    fn hash_port(&self, key: &FlowHashKey) -> u16 {
        if self.config.flags.port {
            key.sport
        } else {
            0
        }
    }

    /// The configuration this snapshot was built from.
    pub fn config(&self) -> &SchedConfig {
        &self.config
    }

    /// Which algorithm this is.
    pub fn kind(&self) -> SchedulerKind {
        self.config.kind
    }

    /// Whether any server could take a new flow now, by the rule every pick applies
    /// ([`ServerLive::available`]: weight > 0, not drained by its agent, health up, not
    /// overloaded) — not whether this algorithm would pick one for a given flow (`ovf`,
    /// or `sh`/`mh` without `fallback`, may still pick none). Reads each server's state
    /// once; no algorithm state moves. `false` when `live` is shorter than the server list,
    /// as [`Scheduler::pick`] then picks nothing.
    pub fn any_available(&self, live: &[ServerLive]) -> bool {
        let w = &*self.weights;
        live.len() >= w.len() && w.iter().zip(live).any(|(&w, l)| l.available(w))
    }

    /// Number of servers the snapshot was built for.
    pub fn server_count(&self) -> usize {
        self.weights.len()
    }

    /// The Maglev lookup table (entry → server index) for `mh`; `None` for other kinds.
    /// Empty when no server has a positive weight.
    pub fn maglev_table(&self) -> Option<&[u16]> {
        match &self.algo {
            Algo::Mh(t) => Some(t.entries()),
            _ => None,
        }
    }

    /// For `wrr`: the server at each position of one full cycle (Σ weight/gcd entries),
    /// ignoring availability — for tests and `uvsadm` display. `None` for other kinds or
    /// cycles longer than `limit`.
    pub fn wrr_cycle(&self, limit: usize) -> Option<Vec<usize>> {
        match &self.algo {
            Algo::Wrr(c) if c.cycle_len() <= limit as u64 => {
                Some((0..c.cycle_len()).map(|p| c.at(p)).collect())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SchedFlags;

    fn servers(weights: &[u32]) -> Vec<ServerSpec> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| ServerSpec::new(w, 1000 + i as u64))
            .collect()
    }

    #[test]
    fn any_available_follows_the_pick_rule() {
        use std::sync::atomic::Ordering::Relaxed;
        let s =
            Scheduler::build(&SchedConfig::new(SchedulerKind::Rr), &servers(&[1, 0, 2])).unwrap();
        let live: Vec<ServerLive> = (0..3).map(|_| ServerLive::new()).collect();
        assert!(s.any_available(&live));
        live[0].health_up.store(false, Relaxed);
        live[2].overloaded.store(true, Relaxed);
        assert!(!s.any_available(&live), "down, weight 0, overloaded");
        assert_eq!(s.pick(&FlowHashKey::default(), &live, 0), None);
        live[2].overloaded.store(false, Relaxed);
        live[2].set_agent(&ServerSpec::new(2, 0), 0, 0);
        assert!(!s.any_available(&live), "drained by its agent");
        live[2].set_agent(&ServerSpec::new(2, 0), 50, 0);
        assert!(s.any_available(&live));
        assert!(
            !s.any_available(&live[..2]),
            "fewer live states than servers"
        );
    }

    #[test]
    fn scheduler_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Scheduler>();
    }

    /// Every kind built over `specs` (hash kinds with fallback), each asked about 64 keys:
    /// `check(kind, scheduler, key)`.
    fn for_every_kind(
        specs: &[ServerSpec],
        mut check: impl FnMut(&SchedConfig, &Scheduler, &FlowHashKey),
    ) {
        for &kind in SchedulerKind::ALL {
            let mut cfg = SchedConfig::new(kind);
            cfg.mh_table_size = 251;
            cfg.locality_slots = 64;
            if kind.takes_hash_flags() {
                cfg.flags.fallback = true;
            }
            let s = Scheduler::build(&cfg, specs).unwrap();
            for i in 0..64u8 {
                let key = FlowHashKey {
                    src: [i; 16],
                    dst: [i.wrapping_mul(7); 16],
                    sport: u16::from(i),
                    ..FlowHashKey::default()
                };
                check(&cfg, &s, &key);
            }
        }
    }

    #[test]
    fn every_kind_builds_and_picks_only_available() {
        let specs = servers(&[3, 0, 2, 5]);
        let live: Vec<ServerLive> = (0..4).map(|_| ServerLive::new()).collect();
        live[3]
            .health_up
            .store(false, std::sync::atomic::Ordering::Relaxed);
        for_every_kind(&specs, |cfg, s, key| {
            let kind = cfg.kind;
            match s.pick(key, &live, 0) {
                Some(p) => assert!(p == 0 || p == 2, "{kind} picked {p}"),
                // dh has no fallback: a bucket of a quiesced/down server gives none.
                None => assert_eq!(kind, SchedulerKind::Dh, "{kind} gave None"),
            }
            assert_eq!(s.pick(&FlowHashKey::default(), &live[..2], 0), None);
            let empty = Scheduler::build(cfg, &[]).unwrap();
            assert_eq!(empty.pick(&FlowHashKey::default(), &[], 0), None, "{kind}");
        });
    }

    /// Every kind, asked for another server than the one a flow would get, gives another
    /// available one or none, and never the excluded one; the live state is not changed.
    /// `lc` is the case that matters: a server refusing every connection at once has the
    /// fewest, so a plain pick would choose it again.
    #[test]
    fn pick_except_never_gives_the_excluded_server() {
        use std::sync::atomic::Ordering::Relaxed;
        let specs = servers(&[3, 1, 2, 5]);
        let live: Vec<ServerLive> = (0..4).map(|i| ServerLive::with_conns(10 * i, 0)).collect();
        live[3].health_up.store(false, Relaxed);
        for_every_kind(&specs, |cfg, s, key| {
            let kind = cfg.kind;
            let Some(first) = s.pick(key, &live, 0) else {
                return;
            };
            match s.pick_except(key, &live, 0, first) {
                Some(p) => assert!(p != first && p < 3, "{kind}: {first} then {p}"),
                // dh has no fallback; ovf takes a server only below its weight in
                // connections (here only server 0 is).
                None => assert!(
                    matches!(kind, SchedulerKind::Dh | SchedulerKind::Ovf),
                    "{kind} gave None"
                ),
            }
        });
        let lc = Scheduler::build(&SchedConfig::new(SchedulerKind::Lc), &specs).unwrap();
        let key = FlowHashKey::default();
        assert_eq!(lc.pick(&key, &live, 0), Some(0));
        assert_eq!(lc.pick_except(&key, &live, 0, 0), Some(1));
        assert!(
            live[0].health_up.load(Relaxed),
            "the live state is left alone"
        );
        assert_eq!(live[1].active.load(Relaxed), 10);
    }

    #[test]
    fn build_rejects_bad_settings() {
        let specs = servers(&[1, 1, 1]);
        let mut cfg = SchedConfig::new(SchedulerKind::Mh);
        cfg.mh_table_size = 65_535;
        assert_eq!(
            Scheduler::build(&cfg, &specs).unwrap_err(),
            SchedError::MaglevSizeNotPrime(65_535)
        );
        cfg.mh_table_size = 3;
        assert!(matches!(
            Scheduler::build(&cfg, &specs),
            Err(SchedError::MaglevTableTooSmall {
                size: 3,
                servers: 3
            })
        ));
        let cfg = SchedConfig::new(SchedulerKind::Rr).with_flags(SchedFlags {
            fallback: false,
            port: true,
        });
        let err = Scheduler::build(&cfg, &specs).unwrap_err();
        assert_eq!(
            err.to_string(),
            "scheduler flag \"port\" applies only to sh and mh, not rr"
        );
        let mut cfg = SchedConfig::new(SchedulerKind::Lblc);
        cfg.locality_slots = 1000;
        assert_eq!(
            Scheduler::build(&cfg, &specs).unwrap_err(),
            SchedError::LocalitySlots(1000)
        );
        let too_many = vec![ServerSpec::new(1, 0); MAX_SERVERS + 1];
        assert!(matches!(
            Scheduler::build(&SchedConfig::new(SchedulerKind::Rr), &too_many),
            Err(SchedError::TooManyServers { .. })
        ));
    }

    #[test]
    fn only_mh_exposes_a_maglev_table() {
        let specs = servers(&[1, 1]);
        let mh = Scheduler::build(&SchedConfig::new(SchedulerKind::Mh), &specs).unwrap();
        assert_eq!(mh.maglev_table().map(<[u16]>::len), Some(65_537));
        let rr = Scheduler::build(&SchedConfig::new(SchedulerKind::Rr), &specs).unwrap();
        assert!(rr.maglev_table().is_none());
        let wrr =
            Scheduler::build(&SchedConfig::new(SchedulerKind::Wrr), &servers(&[4, 3, 2])).unwrap();
        assert_eq!(wrr.wrr_cycle(100).unwrap(), [0, 0, 1, 0, 1, 2, 0, 1, 2]);
    }
}
