//! Neighbour resolution: IP → MAC for next hops and real servers.
//!
//! The table is an immutable map behind an `ArcSwap`: workers load it once per poll and
//! read it without locks; the rare update (an ARP reply, an NDP advertisement) copies the
//! map and swaps it. Frames waiting for a resolution sit in a small per-worker queue
//! ([`Pending`]) instead of being dropped; requests are retransmitted once a second and
//! the frames dropped (counted) after three unanswered tries, as the kernel's NUD does.

use arc_swap::ArcSwap;
use std::sync::Arc;

use crate::tables::{FastMap, IpKey};

/// A resolved neighbour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbour {
    pub mac: [u8; 6],
    /// Second (on the dataplane clock) it was last confirmed.
    pub confirmed: u32,
}

/// Seconds after which an entry is stale: still used, but re-confirmed by a new request
/// ([`Refresh`]).
pub const STALE_AFTER_S: u32 = 60;
/// Seconds between requests for an unresolved neighbour.
pub const RETRY_EVERY_S: u32 = 1;
/// Requests before queued frames are dropped.
pub const MAX_TRIES: u8 = 3;

pub type NeighMap = FastMap<IpKey, Neighbour>;

#[derive(Default)]
pub struct NeighTable {
    map: ArcSwap<NeighMap>,
}

impl NeighTable {
    /// The current map: load once per poll.
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<NeighMap>> {
        self.map.load()
    }

    /// Records `ip` at `mac`. Copies the map only when something changed (or the entry's
    /// confirmation is older than a second), so a stream of replies costs little.
    pub fn learn(&self, ip: IpKey, mac: [u8; 6], now: u32) {
        let cur = self.map.load();
        if let Some(n) = cur.get(&ip) {
            if n.mac == mac && now.saturating_sub(n.confirmed) < 1 {
                return;
            }
        }
        self.map.rcu(|m| {
            let mut m = NeighMap::clone(m);
            m.insert(
                ip,
                Neighbour {
                    mac,
                    confirmed: now,
                },
            );
            m
        });
    }

    /// Forgets everything (tests, interface changes).
    pub fn clear(&self) {
        self.map.store(Arc::new(NeighMap::default()));
    }

    pub fn snapshot(&self) -> Vec<(IpKey, Neighbour)> {
        let m = self.map.load();
        let mut v: Vec<_> = m.iter().map(|(k, n)| (*k, *n)).collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }
}

/// Re-confirms stale neighbours, as the kernel re-probes a stale entry: a neighbour last
/// confirmed [`STALE_AFTER_S`] ago or more is asked again (ARP request, neighbour
/// solicitation) while its MAC stays in use, and the answer re-confirms it or teaches its
/// new MAC. A real server that came back at its address with another MAC (a rebuilt VM,
/// a restarted container) and no gratuitous ARP is reached again within a stale period
/// instead of never. A neighbour that does not answer is asked [`MAX_TRIES`] times a
/// second apart, then again a stale period later; its entry stays (the health check, not
/// the neighbour table, says whether a real server is there). At most
/// [`REFRESH_PER_S`] requests a second: a large client network whose hosts all went stale
/// at once is asked over several seconds rather than in one burst. One worker runs it.
#[derive(Default)]
pub struct Refresh {
    /// The second of the last pass: one pass a second.
    last: u32,
    /// Stale neighbours asked about: (second of the round's first request, requests).
    asked: FastMap<IpKey, (u32, u8)>,
}

/// Requests [`Refresh`] sends in one second at most.
pub const REFRESH_PER_S: usize = 64;

impl Refresh {
    /// Once a second: calls `ask` for each stale neighbour due a request (at most
    /// [`REFRESH_PER_S`]; the others are due the next second).
    pub fn step(&mut self, neigh: &NeighMap, now: u32, mut ask: impl FnMut(&IpKey)) {
        if now == self.last {
            return;
        }
        self.last = now;
        let stale = |n: &Neighbour| now.saturating_sub(n.confirmed) >= STALE_AFTER_S;
        // Confirmed since (or gone): a later staleness starts a new round.
        self.asked.retain(|ip, _| neigh.get(ip).is_some_and(stale));
        let mut budget = REFRESH_PER_S;
        for (ip, n) in neigh.iter() {
            if !stale(n) {
                continue;
            }
            if budget == 0 {
                break;
            }
            let round = self.asked.entry(*ip).or_insert((now, 0));
            if round.1 >= MAX_TRIES {
                if now.saturating_sub(round.0) < STALE_AFTER_S {
                    continue;
                }
                *round = (now, 0);
            }
            round.1 += 1;
            budget -= 1;
            ask(ip);
        }
    }
}

/// A frame held until its next hop resolves.
struct Held {
    port: u8,
    next_hop: IpKey,
    since: u32,
    len: u16,
    data: Box<[u8]>,
}

/// Per-worker queue of frames awaiting resolution, with the request schedule of each
/// next hop. Capacity is fixed at start; nothing is allocated while it runs.
pub struct Pending {
    held: Vec<Held>,
    used: usize,
    /// Next hops with an outstanding request: (next hop, port, last request second, tries).
    asking: Vec<(IpKey, u8, u32, u8)>,
}

/// What the worker must do after a `Pending` step.
pub enum PendingAction<'a> {
    /// Send a request for `next_hop` out of `port`.
    Request { port: u8, next_hop: IpKey },
    /// Transmit this frame (its destination MAC filled in) on `port`.
    Send { port: u8, frame: &'a [u8] },
    /// Frames dropped because the neighbour never answered.
    Dropped(u64),
}

pub const PENDING_FRAMES: usize = 256;

/// Frames held for one next hop at most (Linux's per-neighbour `unres_qlen`, smaller): one
/// address that never answers (a spoofed on-link source the real servers keep answering
/// during a SYN flood) cannot take the queue from every other.
pub const FRAMES_PER_HOP: usize = 16;

/// Next hops asked about at once at most (each is forgotten `MAX_TRIES` seconds after its
/// first request).
pub const ASKING: usize = 1024;

impl Default for Pending {
    fn default() -> Self {
        Self::new(PENDING_FRAMES)
    }
}

impl Pending {
    pub fn new(capacity: usize) -> Self {
        Self {
            held: (0..capacity)
                .map(|_| Held {
                    port: 0,
                    next_hop: IpKey {
                        v6: false,
                        addr: [0; 16],
                    },
                    since: 0,
                    len: 0,
                    data: vec![0; uvs_port::FRAME_CAPACITY].into_boxed_slice(),
                })
                .collect(),
            used: 0,
            asking: Vec::with_capacity(capacity),
        }
    }

    /// No frame held and no neighbour being asked about (nothing for `step` to do).
    pub fn is_empty(&self) -> bool {
        self.used == 0 && self.asking.is_empty()
    }

    pub fn len(&self) -> usize {
        self.used
    }

    /// Holds a copy of `frame` (`Ok`) or drops it (`Err`: the queue is full, or holds
    /// [`FRAMES_PER_HOP`] frames for `next_hop` already); either way the flag says whether
    /// a request for `next_hop` should go out now (the first time it is asked about), so a
    /// neighbour is resolved even while the queue is full and its next frame goes out.
    pub fn hold(
        &mut self,
        frame: &[u8],
        port: u8,
        next_hop: IpKey,
        now: u32,
    ) -> Result<bool, bool> {
        let asked = self.asking.iter().any(|a| a.0 == next_hop);
        let ask = !asked && self.asking.len() < ASKING;
        if ask {
            self.asking.push((next_hop, port, now, 1));
        }
        if self.used == self.held.len()
            || frame.len() > uvs_port::FRAME_CAPACITY
            || (asked
                && self.held[..self.used]
                    .iter()
                    .filter(|h| h.next_hop == next_hop)
                    .count()
                    >= FRAMES_PER_HOP)
        {
            return Err(ask);
        }
        let h = &mut self.held[self.used];
        h.port = port;
        h.next_hop = next_hop;
        h.since = now;
        h.len = frame.len() as u16;
        h.data[..frame.len()].copy_from_slice(frame);
        self.used += 1;
        Ok(ask)
    }

    /// Releases frames whose neighbour is now known, re-requests on schedule and drops
    /// frames of neighbours that never answered. `act` performs each action.
    pub fn step(&mut self, neigh: &NeighMap, now: u32, mut act: impl FnMut(PendingAction<'_>)) {
        if self.is_empty() {
            return;
        }
        let mut dead: Vec<IpKey> = Vec::new();
        let mut i = 0;
        while i < self.asking.len() {
            let (hop, port, last, tries) = self.asking[i];
            if neigh.contains_key(&hop) {
                self.asking.swap_remove(i);
                continue;
            }
            if now.saturating_sub(last) >= RETRY_EVERY_S {
                if tries >= MAX_TRIES {
                    dead.push(hop);
                    self.asking.swap_remove(i);
                    continue;
                }
                self.asking[i] = (hop, port, now, tries + 1);
                act(PendingAction::Request {
                    port,
                    next_hop: hop,
                });
            }
            i += 1;
        }
        let mut dropped = 0;
        let mut j = 0;
        while j < self.used {
            let hop = self.held[j].next_hop;
            let release = if let Some(n) = neigh.get(&hop) {
                let h = &mut self.held[j];
                h.data[..6].copy_from_slice(&n.mac);
                act(PendingAction::Send {
                    port: h.port,
                    frame: &h.data[..usize::from(h.len)],
                });
                true
            } else if dead.contains(&hop) || !self.asking.iter().any(|a| a.0 == hop) {
                dropped += 1;
                true
            } else {
                false
            };
            if release {
                self.used -= 1;
                self.held.swap(j, self.used);
            } else {
                j += 1;
            }
        }
        if dropped > 0 {
            act(PendingAction::Dropped(dropped));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpKey {
        let mut addr = [0; 16];
        addr[..4].copy_from_slice(&[198, 18, 1, last]);
        IpKey { v6: false, addr }
    }

    #[test]
    fn held_frames_leave_when_resolved() {
        let t = NeighTable::default();
        let mut p = Pending::new(4);
        assert_eq!(p.hold(&[0u8; 60], 1, ip(11), 10), Ok(true));
        assert_eq!(p.hold(&[1u8; 60], 1, ip(11), 10), Ok(false));
        t.learn(ip(11), [2, 0, 0, 0, 0, 11], 10);
        let mut sent = Vec::new();
        p.step(&t.load(), 10, |a| {
            if let PendingAction::Send { port, frame } = a {
                sent.push((port, frame[..6].to_vec(), frame[6]));
            }
        });
        assert_eq!(sent.len(), 2);
        assert!(sent.iter().all(|s| s.1 == vec![2, 0, 0, 0, 0, 11]));
        assert!(p.is_empty());
    }

    #[test]
    fn unanswered_neighbours_drop_after_retries() {
        let t = NeighTable::default();
        let mut p = Pending::new(2);
        assert_eq!(p.hold(&[0u8; 60], 0, ip(12), 0), Ok(true));
        assert_eq!(p.hold(&[0u8; 60], 0, ip(12), 0), Ok(false));
        assert_eq!(p.hold(&[0u8; 60], 0, ip(12), 0), Err(false));
        let (mut requests, mut dropped) = (0, 0);
        for now in 0..10 {
            p.step(&t.load(), now, |a| match a {
                PendingAction::Request { .. } => requests += 1,
                PendingAction::Dropped(n) => dropped += n,
                PendingAction::Send { .. } => panic!("nothing resolved"),
            });
        }
        assert_eq!(requests, 2, "the first request went out at hold time");
        assert_eq!(dropped, 2);
        assert!(p.is_empty());
    }

    /// One next hop that never answers holds at most FRAMES_PER_HOP frames, and a full
    /// queue still asks about a new next hop: the frame is lost, the neighbour is not.
    #[test]
    fn an_unanswering_hop_cannot_take_the_queue() {
        let t = NeighTable::default();
        let mut p = Pending::new(FRAMES_PER_HOP + 2);
        for i in 0..FRAMES_PER_HOP + 5 {
            let got = p.hold(&[0u8; 60], 0, ip(200), 0);
            assert_eq!(got.is_ok(), i < FRAMES_PER_HOP, "frame {i}");
        }
        assert_eq!(p.len(), FRAMES_PER_HOP);
        assert_eq!(
            p.hold(&[1u8; 60], 0, ip(2), 0),
            Ok(true),
            "room for another"
        );
        assert_eq!(p.hold(&[1u8; 60], 0, ip(2), 0), Ok(false));
        assert_eq!(
            p.hold(&[2u8; 60], 0, ip(3), 0),
            Err(true),
            "full, but asked"
        );
        assert_eq!(p.hold(&[2u8; 60], 0, ip(3), 0), Err(false), "asked once");
        t.learn(ip(3), [2, 0, 0, 0, 0, 3], 0);
        let mut sent = 0;
        p.step(&t.load(), 0, |a| {
            if let PendingAction::Send { .. } = a {
                sent += 1;
            }
        });
        assert_eq!(
            sent, 0,
            "ip(3)'s frames were dropped; its next ones go at once"
        );
    }

    #[test]
    fn learn_skips_identical_updates() {
        let t = NeighTable::default();
        t.learn(ip(1), [1; 6], 5);
        let a = t.load().clone();
        t.learn(ip(1), [1; 6], 5);
        assert!(Arc::ptr_eq(&a, &t.load()));
        t.learn(ip(1), [2; 6], 5);
        assert_eq!(t.load().get(&ip(1)).unwrap().mac, [2; 6]);
    }

    /// A stale neighbour is asked MAX_TRIES times a second apart, then again a stale
    /// period later; an answer ends the round; a fresh one is never asked.
    #[test]
    fn stale_neighbours_are_asked_in_rounds() {
        let t = NeighTable::default();
        t.learn(ip(1), [1; 6], 0);
        t.learn(ip(2), [2; 6], 30);
        let mut r = Refresh::default();
        let mut asked = Vec::new();
        for now in 1..=STALE_AFTER_S + 10 {
            r.step(&t.load(), now, |ip| asked.push((now, ip.addr[3])));
            r.step(&t.load(), now, |_| panic!("twice in one second"));
        }
        let s = STALE_AFTER_S;
        assert_eq!(asked, vec![(s, 1), (s + 1, 1), (s + 2, 1)]);
        // Unanswered: the next round a stale period after the first; ip(2) stale by then.
        asked.clear();
        for now in s + 11..=2 * s {
            r.step(&t.load(), now, |ip| asked.push((now, ip.addr[3])));
        }
        assert_eq!(
            asked,
            vec![(s + 30, 2), (s + 31, 2), (s + 32, 2), (2 * s, 1)]
        );
        // ip(1) answers: fresh again, asked no more until it is stale again.
        t.learn(ip(1), [9; 6], 2 * s);
        asked.clear();
        for now in 2 * s + 1..3 * s {
            r.step(&t.load(), now, |ip| asked.push((now, ip.addr[3])));
        }
        assert!(asked.iter().all(|(_, n)| *n == 2), "{asked:?}");
    }

    /// Many neighbours stale at once are asked REFRESH_PER_S a second, each in turn.
    #[test]
    fn a_crowd_of_stale_neighbours_is_asked_over_several_seconds() {
        let t = NeighTable::default();
        let n = 3 * REFRESH_PER_S;
        for i in 0..n {
            t.learn(
                IpKey::v4([198, 18, (i / 256) as u8, (i % 256) as u8]),
                [2; 6],
                0,
            );
        }
        let mut r = Refresh::default();
        let mut seen = std::collections::HashSet::new();
        for now in STALE_AFTER_S..STALE_AFTER_S + 3 {
            let mut this_second = 0;
            r.step(&t.load(), now, |ip| {
                this_second += 1;
                seen.insert(*ip);
            });
            assert_eq!(this_second, REFRESH_PER_S, "second {now}");
        }
        assert!(seen.len() >= REFRESH_PER_S, "{}", seen.len());
        // Within MAX_TRIES + 3 seconds every one was asked at least once.
        for now in STALE_AFTER_S + 3..STALE_AFTER_S + 12 {
            r.step(&t.load(), now, |ip| {
                seen.insert(*ip);
            });
        }
        assert_eq!(seen.len(), n);
    }
}
