//! Active/backup state the workers read: the owned addresses this node is silent for (VIP
//! groups in the backup role, and their FullNAT pool addresses), and the announcements a
//! group that becomes master sends.
//!
//! Control publishes both; workers never wait for it. The silent set is an `ArcSwap`
//! snapshot loaded only when a frame reaches the slow path. Announcements are picked up by
//! worker 0, which compares one generation counter per poll (a relaxed load) and sends each
//! round of gratuitous ARPs and unsolicited neighbour advertisements when it is due, from
//! its own ports: the kernel does not hold the VIPs, so only the AF_XDP dataplane can speak
//! for them.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use uvs_port::Port;

use crate::counters::WorkerCounters;
use crate::tables::{FastHasher, IpKey, Tables};

/// A set of addresses, hashed as the tables hash theirs.
pub type AddrSet = HashSet<IpKey, BuildHasherDefault<FastHasher>>;

/// One address to announce and the ports (interface indices) to announce it on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceTarget {
    pub addr: IpKey,
    pub ports: Vec<u8>,
}

/// `count` rounds, `interval` apart, each sending one frame per target and port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Announcement {
    pub targets: Vec<AnnounceTarget>,
    pub count: u32,
    pub interval: Duration,
}

impl Announcement {
    /// How long the rounds take from the first to the last.
    fn span(&self) -> Duration {
        self.interval * self.count.saturating_sub(1)
    }

    /// Adds `other`'s targets (ports merged for a target in both); the count and interval
    /// become `other`'s.
    fn merge(&mut self, other: Announcement) {
        for t in other.targets {
            match self.targets.iter_mut().find(|x| x.addr == t.addr) {
                Some(x) => {
                    for p in t.ports {
                        if !x.ports.contains(&p) {
                            x.ports.push(p);
                        }
                    }
                }
                None => self.targets.push(t),
            }
        }
        self.count = other.count;
        self.interval = other.interval;
    }
}

/// Shared by control (writes) and the workers (read).
pub struct Cluster {
    silent: ArcSwap<AddrSet>,
    announcement: ArcSwap<Announcement>,
    /// Bumped after each new announcement is stored.
    generation: AtomicU64,
    /// Control's record of the last announcement and when it was published, so that a
    /// group becoming master while another group's rounds still run adds to them rather
    /// than cutting them short. Never touched by a worker.
    last: Mutex<Option<(Instant, Announcement)>>,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            silent: ArcSwap::from_pointee(AddrSet::default()),
            announcement: ArcSwap::from_pointee(Announcement::default()),
            generation: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }
}

impl Cluster {
    /// The addresses the slow path does not answer for.
    pub fn silent(&self) -> arc_swap::Guard<Arc<AddrSet>> {
        self.silent.load()
    }

    /// Replaces the silent set (control).
    pub fn set_silent(&self, set: AddrSet) {
        self.silent.store(Arc::new(set));
    }

    /// Asks worker 0 to send `a` (control). Targets of an announcement still under way
    /// are kept, so each address gets its rounds.
    pub fn announce(&self, a: Announcement) {
        let mut last = self.last.lock().expect("announcement lock");
        let now = Instant::now();
        let merged = match last.take() {
            // Still running (plus one interval for the worker's scheduling slack).
            Some((at, mut prev)) if now.duration_since(at) <= prev.span() + prev.interval => {
                prev.merge(a);
                prev
            }
            _ => a,
        };
        self.announcement.store(Arc::new(merged.clone()));
        self.generation.fetch_add(1, Ordering::Release);
        *last = Some((now, merged));
    }

    /// How many announcements have been asked for.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// A worker's progress through the current announcement.
#[derive(Default)]
pub struct Announcer {
    seen: u64,
    current: Option<Arc<Announcement>>,
    rounds_sent: u32,
    /// Connection-table ticks (milliseconds) when the next round is due.
    next_tick: u32,
}

impl Announcer {
    /// True while an announcement has rounds left to send.
    pub fn is_active(&self) -> bool {
        self.current.is_some()
    }

    /// Called once per poll: picks up a new announcement and sends a round when one is
    /// due. The common case is one relaxed load and a compare.
    #[inline]
    pub fn step<P: Port>(
        &mut self,
        cluster: &Cluster,
        tables: &Tables,
        ports: &mut [P],
        scratch: &mut [u8],
        counters: &WorkerCounters,
        now_ticks: u32,
    ) {
        let g = cluster.generation();
        if g != self.seen {
            self.seen = g;
            self.current = Some(cluster.announcement.load_full());
            self.rounds_sent = 0;
            self.next_tick = now_ticks;
        }
        let Some(a) = &self.current else { return };
        // Deadlines compare with wrapping arithmetic, as the connection table's do.
        if self.rounds_sent >= a.count || (now_ticks.wrapping_sub(self.next_tick) as i32) < 0 {
            return;
        }
        let a = a.clone();
        send_round(&a, tables, ports, scratch, counters);
        self.rounds_sent += 1;
        self.next_tick = now_ticks.wrapping_add(a.interval.as_millis() as u32);
        if self.rounds_sent >= a.count {
            self.current = None;
        }
    }
}

#[cold]
fn send_round<P: Port>(
    a: &Announcement,
    tables: &Tables,
    ports: &mut [P],
    scratch: &mut [u8],
    counters: &WorkerCounters,
) {
    for t in &a.targets {
        for &pi in &t.ports {
            let (Some(iface), Some(port)) = (
                tables.ifaces.get(usize::from(pi)),
                ports.get_mut(usize::from(pi)),
            ) else {
                continue;
            };
            let n = crate::slowpath::build_announcement(iface, &t.addr, scratch);
            if n == 0 {
                continue;
            }
            if port.tx_copy(&scratch[..n]) {
                counters.tx_packets.add(1);
                counters.tx_bytes.add(n as u64);
                counters.announcements.add(1);
            } else {
                counters.drop(crate::verdict::DropReason::TxFull);
            }
        }
    }
}
