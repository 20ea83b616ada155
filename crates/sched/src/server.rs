//! Real-server description (immutable, from config) and live state (shared counters the
//! dataplane and control update), plus IPVS's connection-threshold hysteresis.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

/// Upper bound on servers per service: table entries are stored as `u16` server indices
/// (Maglev and lblcr sets), which keeps the Maglev table at 128 KiB for M = 65537.
pub const MAX_SERVERS: usize = u16::MAX as usize;

/// A real server as the scheduler sees it: what control knows from configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerSpec {
    /// Relative capacity; 0 quiesces the server (no new flows, IPVS semantics).
    pub weight: u32,
    /// IPVS `u_threshold`: overloaded once active+inactive reaches it; 0 = no limit.
    pub upper_threshold: u32,
    /// IPVS `l_threshold`: overload clears when active+inactive drops below it; 0 means
    /// 3/4 of the upper threshold (`ip_vs_unbind_dest`).
    pub lower_threshold: u32,
    /// Stable identity used for hashing (e.g. a hash of addr:port), so that every node and
    /// every rebuild places this server at the same Maglev permutation.
    pub key: u64,
    /// geo: the site this server is in (an id the scheduler's site prefixes map clients
    /// to); ignored by every other scheduler.
    pub site: u16,
}

impl ServerSpec {
    /// A server with `weight` and `key`, no thresholds, site 0.
    pub fn new(weight: u32, key: u64) -> Self {
        ServerSpec {
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            key,
            site: 0,
        }
    }

    /// Overload flag after a connection was bound, given the new total (active +
    /// inactive) — `ip_vs_bind_dest`: set once `total >= u_threshold`.
    pub fn overloaded_after_bind(&self, total_conns: u32, was_overloaded: bool) -> bool {
        (self.upper_threshold != 0 && total_conns >= self.upper_threshold) || was_overloaded
    }

    /// Overload flag after a connection was unbound, given the new total —
    /// `ip_vs_unbind_dest`: cleared below `l_threshold`, or below 3/4 of `u_threshold`
    /// when no lower threshold is set, or at once when there are no thresholds.
    pub fn overloaded_after_unbind(&self, total_conns: u32, was_overloaded: bool) -> bool {
        if self.lower_threshold != 0 {
            was_overloaded && total_conns >= self.lower_threshold
        } else if self.upper_threshold != 0 {
            was_overloaded && u64::from(total_conns) * 4 >= u64::from(self.upper_threshold) * 3
        } else {
            false
        }
    }
}

/// Live per-server state shared by control and all workers; one cache line each so that
/// workers bumping one server's counters do not slow down reads of its neighbours.
#[derive(Debug)]
#[repr(align(64))]
pub struct ServerLive {
    /// Established connections (IPVS `activeconns`).
    pub active: AtomicU32,
    /// Connections in other states (IPVS `inactconns`).
    pub inactive: AtomicU32,
    /// Health check verdict; down servers get no new flows.
    pub health_up: AtomicBool,
    /// IPVS `IP_VS_DEST_F_OVERLOAD`, maintained by [`ServerLive::bind_conn`] /
    /// [`ServerLive::unbind_conn`].
    pub overloaded: AtomicBool,
    /// Smoothed response time in microseconds (for `fastest`); 0 = not measured yet.
    pub rtt_us: AtomicU32,
    /// Agent-reported load, 0..=1000 (for `load`); larger values count as 1000.
    pub load: AtomicU32,
}

impl Default for ServerLive {
    fn default() -> Self {
        ServerLive::new()
    }
}

impl ServerLive {
    /// Healthy, idle, not overloaded, nothing measured.
    pub const fn new() -> Self {
        ServerLive {
            active: AtomicU32::new(0),
            inactive: AtomicU32::new(0),
            health_up: AtomicBool::new(true),
            overloaded: AtomicBool::new(false),
            rtt_us: AtomicU32::new(0),
            load: AtomicU32::new(0),
        }
    }

    /// A state with the given counters, for tests and simulations.
    pub fn with_conns(active: u32, inactive: u32) -> Self {
        let s = ServerLive::new();
        s.active.store(active, Relaxed);
        s.inactive.store(inactive, Relaxed);
        s
    }

    /// Whether a server with static `weight` may take a new flow: weight > 0, health up,
    /// not overloaded.
    #[inline]
    pub fn available(&self, weight: u32) -> bool {
        weight > 0 && self.health_up.load(Relaxed) && !self.overloaded.load(Relaxed)
    }

    /// IPVS `ip_vs_dest_conn_overhead`: `active * 256 + inactive` — an established
    /// connection costs about 256 times a connection in another state.
    #[inline]
    pub fn conn_overhead(&self) -> u64 {
        (u64::from(self.active.load(Relaxed)) << 8) + u64::from(self.inactive.load(Relaxed))
    }

    /// Active plus inactive connections (IPVS `ip_vs_dest_totalconns`).
    #[inline]
    pub fn total_conns(&self) -> u32 {
        self.active
            .load(Relaxed)
            .saturating_add(self.inactive.load(Relaxed))
    }

    /// Counts a new connection bound to this server (`ip_vs_bind_dest`) and raises the
    /// overload flag when the upper threshold is reached.
    pub fn bind_conn(&self, spec: &ServerSpec, active: bool) {
        if active {
            self.active.fetch_add(1, Relaxed);
        } else {
            self.inactive.fetch_add(1, Relaxed);
        }
        let was = self.overloaded.load(Relaxed);
        let now = spec.overloaded_after_bind(self.total_conns(), was);
        if now != was {
            self.overloaded.store(now, Relaxed);
        }
    }

    /// Counts a connection leaving this server (`ip_vs_unbind_dest`) and clears the
    /// overload flag per the lower threshold. Never wraps below zero.
    pub fn unbind_conn(&self, spec: &ServerSpec, was_active: bool) {
        let counter = if was_active {
            &self.active
        } else {
            &self.inactive
        };
        // A failed update means the counter was already 0: nothing to undo.
        let _ = counter.fetch_update(Relaxed, Relaxed, |v| v.checked_sub(1));
        let was = self.overloaded.load(Relaxed);
        let now = spec.overloaded_after_unbind(self.total_conns(), was);
        if now != was {
            self.overloaded.store(now, Relaxed);
        }
    }

    /// Moves a connection between the inactive and active counters (e.g. TCP reaching or
    /// leaving ESTABLISHED, as IPVS's `ip_vs_set_state` does). The total is unchanged,
    /// so the overload flag is too.
    pub fn conn_state_changed(&self, now_active: bool) {
        let (from, to) = if now_active {
            (&self.inactive, &self.active)
        } else {
            (&self.active, &self.inactive)
        };
        if from
            .fetch_update(Relaxed, Relaxed, |v| v.checked_sub(1))
            .is_ok()
        {
            to.fetch_add(1, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(u: u32, l: u32) -> ServerSpec {
        ServerSpec {
            weight: 1,
            upper_threshold: u,
            lower_threshold: l,
            key: 0,
            site: 0,
        }
    }

    #[test]
    fn live_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<ServerLive>(), 64);
        assert_eq!(std::mem::align_of::<ServerLive>(), 64);
    }

    #[test]
    fn overhead_is_ipvs_formula() {
        assert_eq!(ServerLive::with_conns(3, 7).conn_overhead(), 3 * 256 + 7);
        let big = ServerLive::with_conns(u32::MAX, u32::MAX).conn_overhead();
        assert_eq!(big, (u64::from(u32::MAX) << 8) + u64::from(u32::MAX));
    }

    #[test]
    fn availability_needs_weight_health_and_no_overload() {
        let l = ServerLive::new();
        assert!(l.available(1));
        assert!(!l.available(0));
        l.health_up.store(false, Relaxed);
        assert!(!l.available(1));
        l.health_up.store(true, Relaxed);
        l.overloaded.store(true, Relaxed);
        assert!(!l.available(1));
    }

    #[test]
    fn hysteresis_with_explicit_lower_threshold() {
        let s = spec(10, 5);
        let l = ServerLive::new();
        for _ in 0..9 {
            l.bind_conn(&s, true);
        }
        assert!(!l.overloaded.load(Relaxed), "9 < u=10");
        l.bind_conn(&s, false);
        assert!(l.overloaded.load(Relaxed), "10 >= u=10");
        // Stays overloaded until the total drops below l=5.
        for expect_total in (5..10).rev() {
            l.unbind_conn(&s, expect_total != 9);
            assert_eq!(l.total_conns(), expect_total);
            assert!(l.overloaded.load(Relaxed), "total {expect_total} >= l");
        }
        l.unbind_conn(&s, true);
        assert_eq!(l.total_conns(), 4);
        assert!(!l.overloaded.load(Relaxed));
    }

    #[test]
    fn hysteresis_default_lower_is_three_quarters() {
        let s = spec(8, 0);
        assert!(s.overloaded_after_bind(8, false));
        assert!(!s.overloaded_after_bind(7, false));
        // 3/4 of 8 = 6: clears only when total*4 < 24, i.e. total <= 5.
        assert!(s.overloaded_after_unbind(6, true));
        assert!(!s.overloaded_after_unbind(5, true));
        // Unbinding never raises the flag.
        assert!(!s.overloaded_after_unbind(100, false));
    }

    #[test]
    fn no_thresholds_never_overloads_and_clears_stale_flag() {
        let s = spec(0, 0);
        assert!(!s.overloaded_after_bind(u32::MAX, false));
        assert!(!s.overloaded_after_unbind(u32::MAX, true));
    }

    #[test]
    fn counters_do_not_wrap() {
        let s = spec(0, 0);
        let l = ServerLive::new();
        l.unbind_conn(&s, true);
        l.unbind_conn(&s, false);
        assert_eq!((l.active.load(Relaxed), l.inactive.load(Relaxed)), (0, 0));
        l.conn_state_changed(true);
        assert_eq!((l.active.load(Relaxed), l.inactive.load(Relaxed)), (0, 0));
        l.bind_conn(&s, false);
        l.conn_state_changed(true);
        assert_eq!((l.active.load(Relaxed), l.inactive.load(Relaxed)), (1, 0));
    }
}
