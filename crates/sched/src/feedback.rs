//! Load reports as the `load` scheduler should see them: smoothed, and forgotten when
//! they stop coming.
//!
//! An agent's report is a sample of a noisy quantity (CPU busy, run queue) taken once per
//! check interval. Taken raw, one busy second swings a server's share from full to
//! nothing and back; kept forever, the last report of an agent that stopped answering
//! steers traffic long after it means anything. [`LoadFilter`] damps each report into an
//! exponentially weighted average and fades it out as it ages, so a server whose reports
//! stop returns to its configured weight. Pure: the caller passes the time (control uses
//! a monotonic clock, the scheduler study its simulated one).

use std::time::Duration;

use crate::select::MAX_AGENT_LOAD;

/// A new report moves the average 1/`LOAD_SMOOTHING` of the way to itself.
pub const LOAD_SMOOTHING: u32 = 2;
/// A report counts in full until it is this many report intervals old (one late report
/// is ordinary jitter)…
pub const LOAD_FRESH_INTERVALS: u32 = 2;
/// …then fades linearly until it is this many intervals old, when it no longer counts.
pub const LOAD_GONE_INTERVALS: u32 = 4;

/// One real server's load reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadFilter {
    interval: Duration,
    /// (smoothed load 0..=1000, time of the last report).
    state: Option<(f64, Duration)>,
}

impl LoadFilter {
    /// Reports expected every `interval` (a health check's interval).
    pub fn new(interval: Duration) -> Self {
        LoadFilter {
            interval: interval.max(Duration::from_millis(1)),
            state: None,
        }
    }

    /// Records a report of `load` (0 idle ..= 1000 saturated; more counts as 1000) made
    /// at `now`. The first report, or one after the previous has faded out, is taken as
    /// it is.
    pub fn report(&mut self, load: u32, now: Duration) {
        let x = f64::from(load.min(MAX_AGENT_LOAD));
        let smoothed = match self.state {
            Some((s, _)) if self.weight_at(now) > 0.0 => s + (x - s) / f64::from(LOAD_SMOOTHING),
            _ => x,
        };
        self.state = Some((smoothed, now));
    }

    /// The load to publish at `now`: the smoothed reports, faded by their age; 0 (what
    /// the scheduler reads as "no load known") once they are too old or if none came.
    pub fn current(&self, now: Duration) -> u32 {
        match self.state {
            Some((s, _)) => (s * self.weight_at(now)).round() as u32,
            None => 0,
        }
    }

    /// Whether a report has been made and has not faded out yet.
    pub fn is_fresh(&self, now: Duration) -> bool {
        self.state.is_some() && self.weight_at(now) > 0.0
    }

    /// 1 while the last report is fresh, falling linearly to 0 as it ages out.
    fn weight_at(&self, now: Duration) -> f64 {
        let Some((_, at)) = self.state else {
            return 0.0;
        };
        let age = now.saturating_sub(at).as_secs_f64();
        let i = self.interval.as_secs_f64();
        let (fresh, gone) = (
            i * f64::from(LOAD_FRESH_INTERVALS),
            i * f64::from(LOAD_GONE_INTERVALS),
        );
        if age <= fresh {
            1.0
        } else if age >= gone {
            0.0
        } else {
            (gone - age) / (gone - fresh)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: f64) -> Duration {
        Duration::from_secs_f64(x)
    }

    #[test]
    fn smooths_reports() {
        let mut f = LoadFilter::new(s(1.0));
        assert_eq!(f.current(s(0.0)), 0, "nothing reported");
        f.report(800, s(0.0));
        assert_eq!(f.current(s(0.0)), 800, "the first report is taken as it is");
        f.report(0, s(1.0));
        assert_eq!(f.current(s(1.0)), 400);
        f.report(0, s(2.0));
        assert_eq!(f.current(s(2.0)), 200);
        f.report(5000, s(3.0));
        assert_eq!(f.current(s(3.0)), 600, "clamped to 1000 before smoothing");
    }

    #[test]
    fn stale_reports_fade_to_nothing() {
        let mut f = LoadFilter::new(s(0.5));
        f.report(600, s(10.0));
        assert_eq!(f.current(s(11.0)), 600, "2 intervals old: full");
        assert_eq!(f.current(s(11.5)), 300, "3 intervals old: half");
        assert!(f.is_fresh(s(11.9)));
        assert_eq!(f.current(s(12.0)), 0, "4 intervals old: gone");
        assert!(!f.is_fresh(s(12.0)));
        // After fading out, a new report starts afresh instead of averaging with a ghost.
        f.report(100, s(20.0));
        assert_eq!(f.current(s(20.0)), 100);
        // A clock that goes backwards (another origin) counts as age 0, not a panic.
        assert_eq!(f.current(s(1.0)), 100);
    }
}
