//! Real-server description (immutable, from config) and live state (shared counters the
//! dataplane and control update), plus IPVS's connection-threshold hysteresis.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

/// The agent's weight percentage when it has said nothing: the configured weight.
pub const FULL_WEIGHT_PCT: u32 = 100;
/// Largest weight percentage an agent may set (HAProxy clamps `NNN%` there too).
pub const MAX_WEIGHT_PCT: u32 = 25_600;

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

    /// Overload flag after the thresholds in force changed from `before` to these (ipvsadm
    /// `-e -x/-y`, a reload, an agent's `maxconn`), given the current total. As IPVS's
    /// `__ip_vs_update_dest`, a removed or raised upper threshold clears the flag; then
    /// the unbind and bind rules apply at the current total with the new thresholds, as
    /// the server's next unbind or bind would: a server still draining (at or above the
    /// lower threshold) stays overloaded unless its upper threshold was raised or removed,
    /// one below a raised lower threshold leaves overload, and one already holding as many
    /// connections as the new upper threshold is overloaded at once.
    pub fn overloaded_after_update(
        &self,
        before: &ServerSpec,
        total_conns: u32,
        was_overloaded: bool,
    ) -> bool {
        let raised = self.upper_threshold == 0 || self.upper_threshold > before.upper_threshold;
        let draining = self.overloaded_after_unbind(total_conns, was_overloaded && !raised);
        self.overloaded_after_bind(total_conns, draining)
    }
}

/// The thresholds of a server that had none: what a server new to a slot is compared
/// with when it gets its own ([`ServerLive::update_thresholds`]), as IPVS starts a new
/// dest from zeroed thresholds.
pub const NO_THRESHOLDS: ServerSpec = ServerSpec {
    weight: 0,
    upper_threshold: 0,
    lower_threshold: 0,
    key: 0,
    site: 0,
};

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
    /// [`ServerLive::unbind_conn`], and re-evaluated when the thresholds change
    /// ([`ServerLive::update_thresholds`], [`ServerLive::set_agent`]).
    pub overloaded: AtomicBool,
    /// Smoothed response time in microseconds (for `fastest`); 0 = not measured yet.
    pub rtt_us: AtomicU32,
    /// Agent-reported load, 0..=1000 (for `load`), as control publishes it: smoothed and
    /// aged by [`crate::LoadFilter`] (0 = idle or no recent report); larger values count
    /// as 1000.
    pub load: AtomicU32,
    /// Percentage of the configured weight in effect (an agent's `75%`, `drain` = 0):
    /// 100 unless an agent says otherwise, at most [`MAX_WEIGHT_PCT`]. 0 quiesces the
    /// server for every scheduler; scanning schedulers scale the weight by it, table
    /// schedulers (wrr, sh, mh, dh) whose tables are built from configured weights only
    /// honour 0.
    pub weight_pct: AtomicU32,
    /// Connection limit an agent set (`maxconn:N`), replacing the configured
    /// thresholds while non-zero; 0 = the configured `upper_threshold`/`lower_threshold`.
    pub agent_maxconn: AtomicU32,
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
            weight_pct: AtomicU32::new(FULL_WEIGHT_PCT),
            agent_maxconn: AtomicU32::new(0),
        }
    }

    /// A copy of this state as read now (each field on its own, as a pick reads them): a
    /// view to pick over with one server's state changed ([`crate::Scheduler::pick_except`]).
    pub fn snapshot(&self) -> Self {
        let s = ServerLive::new();
        s.active.store(self.active.load(Relaxed), Relaxed);
        s.inactive.store(self.inactive.load(Relaxed), Relaxed);
        s.health_up.store(self.health_up.load(Relaxed), Relaxed);
        s.overloaded.store(self.overloaded.load(Relaxed), Relaxed);
        s.rtt_us.store(self.rtt_us.load(Relaxed), Relaxed);
        s.load.store(self.load.load(Relaxed), Relaxed);
        s.weight_pct.store(self.weight_pct.load(Relaxed), Relaxed);
        s.agent_maxconn
            .store(self.agent_maxconn.load(Relaxed), Relaxed);
        s
    }

    /// A state with the given counters, for tests and simulations.
    pub fn with_conns(active: u32, inactive: u32) -> Self {
        let s = ServerLive::new();
        s.active.store(active, Relaxed);
        s.inactive.store(inactive, Relaxed);
        s
    }

    /// Whether a server with static `weight` may take a new flow: weight > 0, not drained
    /// by its agent, health up, not overloaded.
    #[inline]
    pub fn available(&self, weight: u32) -> bool {
        weight > 0
            && self.health_up.load(Relaxed)
            && !self.overloaded.load(Relaxed)
            && self.weight_pct.load(Relaxed) != 0
    }

    /// The weight in effect times 100 (configured weight × agent percentage), for
    /// comparing ratios: every server is scaled by the same 100, so with no agent the
    /// comparisons are IPVS's exactly, and a weight-1 server at 75 % still differs from
    /// one at 30 % (an integer `weight × pct / 100` would make both 0 or 1).
    #[inline]
    pub fn scaled_weight(&self, configured: u32) -> u64 {
        u64::from(configured) * u64::from(self.weight_pct.load(Relaxed).min(MAX_WEIGHT_PCT))
    }

    /// The weight in effect: configured × agent percentage / 100, never rounded down to 0
    /// unless the percentage or the configured weight is 0 (what `uvsadm -L` shows, and
    /// what absolute comparisons such as ovf's `active > weight` use).
    #[inline]
    pub fn weight(&self, configured: u32) -> u32 {
        match self.weight_pct.load(Relaxed) {
            FULL_WEIGHT_PCT => configured,
            0 => 0,
            _ if configured == 0 => 0,
            _ => u32::try_from(self.scaled_weight(configured) / 100)
                .unwrap_or(u32::MAX)
                .max(1),
        }
    }

    /// Applies an agent's verdict to a server configured as `spec`: the weight percentage
    /// (clamped to [`MAX_WEIGHT_PCT`]; 0 = drain) and the connection limit (0 = the
    /// configured thresholds). A new limit, or the configured thresholds coming back,
    /// takes effect at once: the overload flag is re-evaluated as for any change of
    /// thresholds ([`ServerSpec::overloaded_after_update`]).
    pub fn set_agent(&self, spec: &ServerSpec, weight_pct: u32, maxconn: u32) {
        self.weight_pct
            .store(weight_pct.min(MAX_WEIGHT_PCT), Relaxed);
        let before = self.thresholds(spec);
        if self.agent_maxconn.swap(maxconn, Relaxed) != maxconn {
            self.rethreshold(&before, &self.thresholds(spec));
        }
    }

    /// The server's configured thresholds changed from those of `old` to those of `new`
    /// (ipvsadm `-e -x/-y`, a reload; [`NO_THRESHOLDS`] for a server new to the slot):
    /// the overload flag is re-evaluated from the connections it holds now
    /// ([`ServerSpec::overloaded_after_update`]) instead of waiting for the next one to
    /// come or go. An agent's `maxconn` in force replaces both.
    pub fn update_thresholds(&self, old: &ServerSpec, new: &ServerSpec) {
        self.rethreshold(&self.thresholds(old), &self.thresholds(new));
    }

    fn rethreshold(&self, before: &ServerSpec, after: &ServerSpec) {
        let was = self.overloaded.load(Relaxed);
        let now = after.overloaded_after_update(before, self.total_conns(), was);
        if now != was {
            self.overloaded.store(now, Relaxed);
        }
    }

    /// The thresholds in force: the agent's `maxconn` (with IPVS's default lower
    /// threshold, 3/4 of it) while it set one, else the configured ones.
    #[inline]
    fn thresholds(&self, spec: &ServerSpec) -> ServerSpec {
        match self.agent_maxconn.load(Relaxed) {
            0 => *spec,
            n => ServerSpec {
                upper_threshold: n,
                lower_threshold: 0,
                ..*spec
            },
        }
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
        let now = self
            .thresholds(spec)
            .overloaded_after_bind(self.total_conns(), was);
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
        let now = self
            .thresholds(spec)
            .overloaded_after_unbind(self.total_conns(), was);
        if now != was {
            self.overloaded.store(now, Relaxed);
        }
    }

    /// Forgets every connection: counters at zero, not overloaded (a slot given to a new
    /// server; the caller knows no connection is still counted here).
    pub fn reset_conns(&self) {
        self.active.store(0, Relaxed);
        self.inactive.store(0, Relaxed);
        self.overloaded.store(false, Relaxed);
    }

    /// Health up and no agent verdict (full weight, the configured thresholds): a slot
    /// given to a server health checking has not judged yet. The overload flag is left
    /// to the caller, which knows the server's thresholds
    /// ([`ServerLive::update_thresholds`]).
    pub fn reset_health(&self) {
        self.health_up.store(true, Relaxed);
        self.weight_pct.store(FULL_WEIGHT_PCT, Relaxed);
        self.agent_maxconn.store(0, Relaxed);
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
    fn agent_percentage_scales_and_drains() {
        let l = ServerLive::new();
        let s = spec(0, 0);
        assert_eq!((l.weight(3), l.scaled_weight(3)), (3, 300));
        l.set_agent(&s, 75, 0);
        assert_eq!((l.weight(4), l.scaled_weight(4)), (3, 300));
        assert_eq!(l.weight(1), 1, "75 % of 1 is not rounded down to a drain");
        assert!(l.available(1));
        l.set_agent(&s, 0, 0);
        assert_eq!((l.weight(9), l.scaled_weight(9)), (0, 0));
        assert!(!l.available(9), "drain quiesces");
        l.set_agent(&s, u32::MAX, 0);
        assert_eq!(l.weight_pct.load(Relaxed), MAX_WEIGHT_PCT);
        assert_eq!(l.weight(u32::MAX), u32::MAX, "saturates");
        assert_eq!(l.weight(0), 0);
    }

    #[test]
    fn agent_maxconn_replaces_thresholds_until_cleared() {
        let s = spec(0, 0);
        let l = ServerLive::with_conns(3, 0);
        l.set_agent(&s, 100, 3);
        assert!(l.overloaded.load(Relaxed), "already at the new limit");
        l.unbind_conn(&s, true);
        // 3/4 of 3: clears below 2.25, i.e. at 2.
        assert!(!l.overloaded.load(Relaxed));
        l.bind_conn(&s, true);
        assert!(l.overloaded.load(Relaxed));
        l.set_agent(&s, 100, 0);
        assert!(!l.overloaded.load(Relaxed), "no configured limit");
        l.bind_conn(&s, true);
        assert!(!l.overloaded.load(Relaxed));
        // Configured thresholds come back at once when the agent's limit goes.
        let configured = spec(4, 0);
        l.set_agent(&configured, 100, 6);
        assert!(!l.overloaded.load(Relaxed), "4 < maxconn 6");
        l.set_agent(&configured, 100, 0);
        assert!(l.overloaded.load(Relaxed), "4 connections at -x 4");
        // A higher agent limit takes it out of overload; a lower one, at the count, in.
        l.set_agent(&configured, 100, 5);
        assert!(!l.overloaded.load(Relaxed));
        l.set_agent(&configured, 100, 4);
        assert!(l.overloaded.load(Relaxed));
    }

    #[test]
    fn threshold_update_follows_ipvs_then_the_hysteresis() {
        // __ip_vs_update_dest: removed or raised upper threshold clears...
        assert!(!spec(0, 0).overloaded_after_update(&spec(1, 0), 1, true));
        assert!(!spec(5, 0).overloaded_after_update(&spec(1, 0), 1, true));
        assert!(!spec(12, 0).overloaded_after_update(&spec(10, 0), 10, true));
        // ...unless the server already holds the new upper threshold's worth.
        assert!(spec(2, 0).overloaded_after_update(&spec(1, 0), 3, true));
        // An upper threshold set or lowered to at most the count: overloaded at once.
        assert!(spec(3, 0).overloaded_after_update(&spec(0, 0), 3, false));
        assert!(!spec(4, 0).overloaded_after_update(&spec(0, 0), 3, false));
        // Not raised: a draining server stays overloaded down to the (new) lower
        // threshold, and one not overloaded is not made so below the upper one.
        assert!(spec(4, 2).overloaded_after_update(&spec(4, 2), 3, true));
        assert!(spec(4, 3).overloaded_after_update(&spec(4, 2), 3, true));
        assert!(!spec(4, 4).overloaded_after_update(&spec(4, 2), 3, true));
        assert!(
            spec(8, 0).overloaded_after_update(&spec(10, 0), 6, true),
            "6 >= 3/4 of 8"
        );
        assert!(!spec(8, 0).overloaded_after_update(&spec(10, 0), 5, true));
        assert!(!spec(4, 2).overloaded_after_update(&spec(4, 2), 3, false));
        // A server new to its slot is compared with no thresholds.
        assert!(spec(2, 0).overloaded_after_update(&NO_THRESHOLDS, 2, true));
        assert!(!spec(3, 0).overloaded_after_update(&NO_THRESHOLDS, 2, true));
    }

    #[test]
    fn update_thresholds_reevaluates_the_live_flag() {
        let l = ServerLive::new();
        l.bind_conn(&spec(1, 0), true);
        assert!(l.overloaded.load(Relaxed));
        l.update_thresholds(&spec(1, 0), &spec(0, 0));
        assert!(!l.overloaded.load(Relaxed), "-x 0 -y 0");
        l.update_thresholds(&spec(0, 0), &spec(1, 0));
        assert!(l.overloaded.load(Relaxed), "-x 1 again, 1 connection");
        // An agent's maxconn in force: configured changes do not apply.
        l.set_agent(&spec(1, 0), 100, 1);
        l.update_thresholds(&spec(1, 0), &spec(0, 0));
        assert!(l.overloaded.load(Relaxed), "maxconn 1 still in force");
        l.set_agent(&spec(0, 0), 100, 0);
        assert!(!l.overloaded.load(Relaxed));
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
