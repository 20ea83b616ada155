//! Schedulers that choose by scanning live counters: rr, lc, wlc, sed, nq, fo, ovf, twos,
//! fastest, load. Each is a transcription of its IPVS function (list order, strict
//! comparisons, so ties go to the earliest server) written over `ServerLive` atomics.
//!
//! Weighted comparisons are cross-multiplied in `u128` (`a/wa < b/wb ⇔ a·wb < b·wa`, as
//! IPVS does in `__s64`), so no division and no overflow for any `u32` weight. They use
//! the weight in effect ([`ServerLive::scaled_weight`]: configured × the agent's
//! percentage); with no agent every weight is scaled by the same 100 and the comparisons
//! are IPVS's.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::flow::mix64;
use crate::server::ServerLive;

#[inline]
fn wide(x: u64) -> u128 {
    u128::from(x)
}

/// Server `i`'s weight in effect ×100, for ratio comparisons.
#[inline]
fn sw(weights: &[u32], live: &[ServerLive], i: usize) -> u64 {
    live[i].scaled_weight(weights[i])
}

/// IPVS rr: the next available server after the last one picked. The shared cursor moves
/// past skipped servers too, so a down server's turn is not handed twice to its successor.
#[inline]
pub(crate) fn rr(cursor: &AtomicU64, weights: &[u32], live: &[ServerLive]) -> Option<usize> {
    let n = weights.len() as u64;
    if n == 0 {
        return None;
    }
    let start = cursor.fetch_add(1, Relaxed);
    for d in 0..n {
        let i = ((start + d) % n) as usize;
        if live[i].available(weights[i]) {
            if d != 0 {
                cursor.fetch_add(d, Relaxed);
            }
            return Some(i);
        }
    }
    None
}

/// IPVS lc: least `active*256 + inactive`, weights ignored (except 0 = quiesced).
#[inline]
pub(crate) fn lc(weights: &[u32], live: &[ServerLive]) -> Option<usize> {
    let mut best: Option<(usize, u64)> = None;
    for (i, l) in live.iter().enumerate() {
        if !l.available(weights[i]) {
            continue;
        }
        let oh = l.conn_overhead();
        if best.is_none_or(|(_, b)| oh < b) {
            best = Some((i, oh));
        }
    }
    best.map(|(i, _)| i)
}

/// Shared shape of wlc and sed: the first available server, replaced by any later one
/// with `loh·dw > doh·lw` (strictly less overhead per weight).
#[inline]
fn weighted_least(
    weights: &[u32],
    live: &[ServerLive],
    overhead: impl Fn(&ServerLive) -> u64,
    keep: impl Fn(usize) -> bool,
) -> Option<usize> {
    let mut best: Option<(usize, u64, u64)> = None;
    for (i, l) in live.iter().enumerate() {
        if !keep(i) || !l.available(weights[i]) {
            continue;
        }
        let (doh, w) = (overhead(l), sw(weights, live, i));
        match best {
            None => best = Some((i, doh, w)),
            Some((_, loh, bw)) => {
                if wide(loh) * wide(w) > wide(doh) * wide(bw) {
                    best = Some((i, doh, w));
                }
            }
        }
    }
    best.map(|(i, _, _)| i)
}

/// IPVS wlc: least `(active*256 + inactive) / weight`.
#[inline]
pub(crate) fn wlc(weights: &[u32], live: &[ServerLive]) -> Option<usize> {
    weighted_least(weights, live, ServerLive::conn_overhead, |_| true)
}

/// wlc restricted to the servers `keep` accepts (geo: one site's servers).
#[inline]
pub(crate) fn wlc_where(
    weights: &[u32],
    live: &[ServerLive],
    keep: impl Fn(usize) -> bool,
) -> Option<usize> {
    weighted_least(weights, live, ServerLive::conn_overhead, keep)
}

#[inline]
fn sed_overhead(l: &ServerLive) -> u64 {
    u64::from(l.active.load(Relaxed)) + 1
}

/// IPVS sed: least `(active + 1) / weight` (shortest expected delay).
#[inline]
pub(crate) fn sed(weights: &[u32], live: &[ServerLive]) -> Option<usize> {
    weighted_least(weights, live, sed_overhead, |_| true)
}

/// IPVS nq: the first idle (active == 0) available server, else sed.
#[inline]
pub(crate) fn nq(weights: &[u32], live: &[ServerLive]) -> Option<usize> {
    let mut best: Option<(usize, u64, u64)> = None;
    for (i, l) in live.iter().enumerate() {
        if !l.available(weights[i]) {
            continue;
        }
        if l.active.load(Relaxed) == 0 {
            return Some(i);
        }
        let (doh, w) = (sed_overhead(l), sw(weights, live, i));
        if best.is_none_or(|(_, loh, bw)| wide(loh) * wide(w) > wide(doh) * wide(bw)) {
            best = Some((i, doh, w));
        }
    }
    best.map(|(i, _, _)| i)
}

/// IPVS fo: the available server with the highest weight (first of equals).
#[inline]
pub(crate) fn fo(weights: &[u32], live: &[ServerLive]) -> Option<usize> {
    let mut best: Option<(usize, u64)> = None;
    for (i, l) in live.iter().enumerate() {
        if !l.available(weights[i]) {
            continue;
        }
        let w = sw(weights, live, i);
        if best.is_none_or(|(_, hw)| w > hw) {
            best = Some((i, w));
        }
    }
    best.map(|(i, _)| i)
}

/// IPVS ovf: the highest-weight available server whose active connections do not exceed
/// its weight. IPVS skips a server when `activeconns > weight`, so `active == weight` is
/// still eligible (the issue text said `active < weight`; the kernel source wins).
#[inline]
pub(crate) fn ovf(weights: &[u32], live: &[ServerLive]) -> Option<usize> {
    let mut best: Option<(usize, u64)> = None;
    for (i, l) in live.iter().enumerate() {
        if !l.available(weights[i]) || l.active.load(Relaxed) > l.weight(weights[i]) {
            continue;
        }
        let w = sw(weights, live, i);
        if best.is_none_or(|(_, hw)| w > hw) {
            best = Some((i, w));
        }
    }
    best.map(|(i, _)| i)
}

/// Lock-free random source: a shared SplitMix64 sequence (one `fetch_add`, then a mix).
#[inline]
pub(crate) fn next_random(state: &AtomicU64) -> u64 {
    mix64(state.fetch_add(0x9e37_79b9_7f4a_7c15, Relaxed))
}

/// IPVS twos: two servers drawn at random with probability proportional to weight; the
/// one with less `overhead/weight` wins (`weight2·overhead1 > weight1·overhead2` → second).
/// IPVS draws from `[0, total]` with `<= 0` tests, slightly favouring the first server;
/// here each draw is exactly weight-proportional.
#[inline]
pub(crate) fn twos(rng: &AtomicU64, weights: &[u32], live: &[ServerLive]) -> Option<usize> {
    let total: u64 = live
        .iter()
        .enumerate()
        .filter(|(i, l)| l.available(weights[*i]))
        .map(|(i, _)| sw(weights, live, i))
        .fold(0u64, u64::saturating_add);
    if total == 0 {
        return None;
    }
    let r = next_random(rng);
    // Multiply-shift maps a 32-bit draw onto [0, total); u128 because total may exceed 2^32.
    let draw = |bits: u64| ((u128::from(bits) * u128::from(total)) >> 32) as u64;
    let (r1, r2) = (draw(r >> 32), draw(r & 0xffff_ffff));
    let (mut c1, mut c2, mut last) = (None, None, None);
    let mut acc = 0u64;
    for (i, l) in live.iter().enumerate() {
        if !l.available(weights[i]) {
            continue;
        }
        last = Some(i);
        acc = acc.saturating_add(sw(weights, live, i));
        if c1.is_none() && r1 < acc {
            c1 = Some(i);
        }
        if c2.is_none() && r2 < acc {
            c2 = Some(i);
        }
        if c1.is_some() && c2.is_some() {
            break;
        }
    }
    // Servers may go down between the two passes, leaving a draw past the end: the last
    // server still available takes it.
    let (a, b) = (c1.or(last)?, c2.or(last)?);
    let (oa, ob) = (live[a].conn_overhead(), live[b].conn_overhead());
    if wide(sw(weights, live, b)) * wide(oa) > wide(sw(weights, live, a)) * wide(ob) {
        Some(b)
    } else {
        Some(a)
    }
}

/// Fastest response: least `rtt_us · (active + 1) / weight`. A server with no measurement
/// yet (rtt 0) is scored with the smallest measured RTT, so it is tried without being
/// flooded; with no measurements at all this is sed.
#[inline]
pub(crate) fn fastest(weights: &[u32], live: &[ServerLive]) -> Option<usize> {
    let min_rtt = live
        .iter()
        .enumerate()
        .filter(|(i, l)| l.available(weights[*i]))
        .map(|(_, l)| l.rtt_us.load(Relaxed))
        .filter(|&r| r > 0)
        .min()
        .unwrap_or(1);
    let mut best: Option<(usize, u64, u64)> = None;
    for (i, l) in live.iter().enumerate() {
        if !l.available(weights[i]) {
            continue;
        }
        let rtt = match l.rtt_us.load(Relaxed) {
            0 => min_rtt,
            r => r,
        };
        let score = u64::from(rtt) * (u64::from(l.active.load(Relaxed)) + 1);
        let w = sw(weights, live, i);
        if best.is_none_or(|(_, bs, bw)| wide(score) * wide(bw) < wide(bs) * wide(w)) {
            best = Some((i, score, w));
        }
    }
    best.map(|(i, _, _)| i)
}

/// Highest load an agent may report; larger values are clamped.
pub const MAX_AGENT_LOAD: u32 = 1000;

/// Headroom (out of 1000) still credited to a server that reports full load, so that
/// when every server is saturated flows spread by weight and connections instead of all
/// going to whichever reported 999 rather than 1000.
pub const LOAD_HEADROOM_FLOOR: u64 = 50;

/// Load-informed: least `(active·256 + inactive + 256) / (weight × headroom)`, where
/// headroom is `1000 − load` (at least [`LOAD_HEADROOM_FLOOR`]) and load is the smoothed,
/// aged agent report ([`crate::LoadFilter`]); ties go to the earliest server.
///
/// The connection term is what stops herding: a report is minutes of computer time old
/// by the time the next flows arrive, and a score made of the report alone sends every
/// one of them to the server that last looked idle. With the connections uvs has bound
/// since (sed's `active + 1`, in IPVS's overhead units so UDP's inactive flows count too),
/// each new flow makes its server a little less attractive, and the report only tilts
/// the shares: a server with half the headroom gets about half the flows of an equal one.
/// With no reports every headroom is 1000 and this is sed over the weights.
#[inline]
pub(crate) fn load(weights: &[u32], live: &[ServerLive]) -> Option<usize> {
    let mut best: Option<(usize, u64, u128)> = None;
    for (i, l) in live.iter().enumerate() {
        if !l.available(weights[i]) {
            continue;
        }
        let ld = u64::from(l.load.load(Relaxed).min(MAX_AGENT_LOAD));
        let headroom = (u64::from(MAX_AGENT_LOAD) - ld).max(LOAD_HEADROOM_FLOOR);
        let cost = l.conn_overhead() + 256;
        let capacity = wide(sw(weights, live, i)) * wide(headroom);
        // cost < 2^41 and capacity < 2^58 (weight·pct < 2^47, headroom ≤ 1000): no overflow.
        if best.is_none_or(|(_, bc, bcap)| wide(cost) * bcap < wide(bc) * capacity) {
            best = Some((i, cost, capacity));
        }
    }
    best.map(|(i, _, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(conns: &[(u32, u32)]) -> Vec<ServerLive> {
        conns
            .iter()
            .map(|&(a, i)| ServerLive::with_conns(a, i))
            .collect()
    }

    #[test]
    fn rr_cycles_and_skips_without_doubling() {
        let c = AtomicU64::new(0);
        let l = live(&[(0, 0); 4]);
        let w = [1, 1, 1, 1];
        let got: Vec<_> = (0..8).map(|_| rr(&c, &w, &l).unwrap()).collect();
        assert_eq!(got, [0, 1, 2, 3, 0, 1, 2, 3]);
        l[1].health_up.store(false, Relaxed);
        let got: Vec<_> = (0..6).map(|_| rr(&c, &w, &l).unwrap()).collect();
        assert_eq!(got, [0, 2, 3, 0, 2, 3]);
        assert_eq!(rr(&c, &[0, 0], &live(&[(0, 0); 2])), None);
    }

    #[test]
    fn lc_uses_overhead_and_first_of_equals() {
        // 1 active (256) beats 300 inactive.
        assert_eq!(lc(&[1, 1], &live(&[(0, 300), (1, 0)])), Some(1));
        assert_eq!(lc(&[1, 1, 1], &live(&[(2, 0), (1, 5), (1, 5)])), Some(1));
        assert_eq!(lc(&[0, 1], &live(&[(0, 0), (9, 9)])), Some(1));
    }

    #[test]
    fn wlc_sed_nq_small_cases() {
        // wlc: 512/2 = 256 vs 300/1.
        assert_eq!(wlc(&[1, 2], &live(&[(0, 300), (2, 0)])), Some(1));
        // sed: (0+1)/1 = 1 vs (1+1)/3 = 0.67 → the loaded but heavier server.
        assert_eq!(sed(&[1, 3], &live(&[(0, 0), (1, 0)])), Some(1));
        // nq: the idle server wins regardless.
        assert_eq!(nq(&[1, 3], &live(&[(0, 0), (1, 0)])), Some(0));
        assert_eq!(nq(&[1, 3], &live(&[(1, 0), (1, 0)])), Some(1));
    }

    #[test]
    fn fo_and_ovf() {
        let l = live(&[(0, 0), (5, 0), (3, 0)]);
        assert_eq!(fo(&[1, 5, 5], &l), Some(1));
        // ovf: server 1 has active 5 == weight 5 → still eligible (IPVS uses `>`).
        assert_eq!(ovf(&[1, 5, 4], &l), Some(1));
        l[1].active.store(6, Relaxed);
        assert_eq!(ovf(&[1, 5, 4], &l), Some(2));
        l[2].active.store(5, Relaxed);
        assert_eq!(ovf(&[1, 5, 4], &l), Some(0));
        l[0].active.store(2, Relaxed);
        assert_eq!(ovf(&[1, 5, 4], &l), None);
    }

    #[test]
    fn twos_never_picks_unavailable_and_prefers_lighter() {
        let rng = AtomicU64::new(1);
        let l = live(&[(100, 0), (0, 0), (50, 0)]);
        l[1].overloaded.store(true, Relaxed);
        let mut picks = [0usize; 3];
        for _ in 0..1000 {
            picks[twos(&rng, &[1, 1, 1], &l).unwrap()] += 1;
        }
        assert_eq!(picks[1], 0);
        // Server 0 wins only when both draws hit it: ~1/4.
        assert!(picks[0] > 150 && picks[0] < 350, "{picks:?}");
        assert_eq!(twos(&rng, &[0, 0], &live(&[(0, 0); 2])), None);
    }

    #[test]
    fn fastest_weighs_rtt_by_queue_and_weight() {
        let l = live(&[(0, 0), (0, 0), (3, 0)]);
        l[0].rtt_us.store(1000, Relaxed);
        l[1].rtt_us.store(400, Relaxed);
        l[2].rtt_us.store(100, Relaxed);
        // scores: 1000, 400, 100*4=400 → tie between 1 and 2 → first.
        assert_eq!(fastest(&[1, 1, 1], &l), Some(1));
        // Weight 2 on server 2 halves its score.
        assert_eq!(fastest(&[1, 1, 2], &l), Some(2));
        // Unmeasured server scored at the best measured RTT (100): 100*1 wins.
        let m = live(&[(0, 0), (0, 0)]);
        m[0].rtt_us.store(100, Relaxed);
        m[0].active.store(1, Relaxed);
        assert_eq!(fastest(&[1, 1], &m), Some(1));
    }

    #[test]
    fn load_weighs_connections_by_headroom() {
        // Equal weights, no connections: the server with more headroom.
        let l = live(&[(0, 0), (0, 0), (0, 0)]);
        l[0].load.store(600, Relaxed);
        l[1].load.store(200, Relaxed);
        l[2].load.store(5000, Relaxed); // clamped to 1000 → the floor
        assert_eq!(load(&[1, 1, 1], &l), Some(1));
        // Each flow bound to server 1 makes it less attractive: with one flow its cost
        // per headroom is 2/800, server 0's 1/400 — a tie, which goes to the first.
        l[1].active.store(1, Relaxed);
        assert_eq!(load(&[1, 1, 1], &l), Some(0));
        l[0].active.store(1, Relaxed);
        assert_eq!(load(&[1, 1, 1], &l), Some(1));
        // The saturated server still counts at the floor: idle, 20× the weight of the
        // others, it wins (1/(20·50) < 2/800).
        assert_eq!(load(&[1, 1, 20], &l), Some(2));
        // No reports at all: sed (inactive connections count 1/256 of an active one).
        let s = live(&[(2, 0), (1, 0), (0, 9)]);
        assert_eq!(load(&[1, 1, 1], &s), Some(2));
        assert_eq!(sed(&[1, 1, 1], &s), Some(2));
        assert_eq!(load(&[0, 0, 0], &s), None);
    }
}
