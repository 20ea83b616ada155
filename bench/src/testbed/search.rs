//! RFC 2544 §26.1-style throughput search: the highest offered rate at which the device
//! under test forwards (nearly) every frame, found by bounded binary search.
//!
//! RFC 2544 asks for zero loss; on veth a 256-entry per-queue XDP ring drops a few frames
//! of any burst, so a run states its tolerance (`loss_tolerance`, e.g. 0.001 = 0.1 %) in
//! the JSON. The first trial is unpaced: its delivered rate is also reported as the
//! maximum forwarding rate under overload (RFC 2889 §5.6's "forwarding rate at maximum
//! offered load"), and if it passes the run is bounded by the generator, which the result
//! says.

use serde::Serialize;

/// One trial: what was offered and what arrived.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Trial {
    /// Requested rate, packets/s; 0 = unpaced.
    pub requested_pps: f64,
    pub sent: u64,
    pub received: u64,
    pub seconds: f64,
    pub offered_pps: f64,
    pub delivered_pps: f64,
    pub loss_ratio: f64,
}

impl Trial {
    pub fn new(requested_pps: f64, sent: u64, received: u64, seconds: f64) -> Trial {
        let secs = seconds.max(1e-9);
        let lost = sent.saturating_sub(received);
        Trial {
            requested_pps,
            sent,
            received,
            seconds,
            offered_pps: sent as f64 / secs,
            delivered_pps: received.min(sent) as f64 / secs,
            loss_ratio: if sent == 0 {
                1.0
            } else {
                lost as f64 / sent as f64
            },
        }
    }
}

/// Search settings.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct SearchSettings {
    pub loss_tolerance: f64,
    /// Trials after the unpaced one.
    pub max_steps: usize,
    /// Stop when the bracket is narrower than this fraction of its upper end.
    pub resolution: f64,
}

/// The search's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct Throughput {
    /// Highest offered rate that passed (0 if none did).
    pub zero_loss_pps: f64,
    /// Delivered rate with the generator unpaced.
    pub max_delivered_pps: f64,
    /// Offered rate with the generator unpaced (the generator's ceiling on this path).
    pub max_offered_pps: f64,
    /// The unpaced trial passed: the device was not the limit.
    pub generator_bound: bool,
    pub trials: Vec<Trial>,
}

/// Runs the search; `trial(rate)` offers `rate` packets/s (0 = unpaced) and reports.
pub fn search<F>(s: &SearchSettings, mut trial: F) -> anyhow::Result<Throughput>
where
    F: FnMut(f64) -> anyhow::Result<Trial>,
{
    let first = trial(0.0)?;
    let passes = |t: &Trial| t.loss_ratio <= s.loss_tolerance;
    let mut out = Throughput {
        zero_loss_pps: 0.0,
        max_delivered_pps: first.delivered_pps,
        max_offered_pps: first.offered_pps,
        generator_bound: passes(&first),
        trials: vec![first],
    };
    if out.generator_bound {
        out.zero_loss_pps = first.offered_pps;
        return Ok(out);
    }
    let (mut lo, mut hi) = (0.0f64, first.offered_pps);
    // The rate the device delivered under overload is the natural first guess.
    let mut rate = first.delivered_pps.min(hi) * 0.98;
    for _ in 0..s.max_steps {
        if rate <= 0.0 || hi <= 0.0 || (hi - lo) / hi < s.resolution {
            break;
        }
        let t = trial(rate)?;
        out.trials.push(t);
        if passes(&t) {
            // The generator may fall short of the request: credit what it offered.
            lo = lo.max(t.offered_pps.min(rate));
            out.zero_loss_pps = out.zero_loss_pps.max(lo);
        } else {
            hi = rate;
        }
        rate = (lo + hi) / 2.0;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that forwards everything up to `cap` pps and drops the excess.
    fn device(cap: f64, gen_max: f64) -> impl FnMut(f64) -> anyhow::Result<Trial> {
        move |rate| {
            let offered = if rate == 0.0 {
                gen_max
            } else {
                rate.min(gen_max)
            };
            let sent = offered as u64;
            let received = offered.min(cap) as u64;
            Ok(Trial::new(rate, sent, received, 1.0))
        }
    }

    fn settings() -> SearchSettings {
        SearchSettings {
            loss_tolerance: 0.001,
            max_steps: 8,
            resolution: 0.01,
        }
    }

    #[test]
    fn finds_the_capacity_from_below_within_resolution() {
        let r = search(&settings(), device(700_000.0, 1_200_000.0)).unwrap();
        assert!(!r.generator_bound);
        assert!(r.zero_loss_pps <= 700_000.0 * 1.001, "{}", r.zero_loss_pps);
        assert!(r.zero_loss_pps >= 700_000.0 * 0.97, "{}", r.zero_loss_pps);
        assert_eq!(r.max_delivered_pps, 700_000.0);
        assert!(r.trials.len() <= 9);
    }

    #[test]
    fn generator_bound_when_unpaced_trial_passes() {
        let r = search(&settings(), device(2e6, 1e6)).unwrap();
        assert!(r.generator_bound);
        assert_eq!(r.zero_loss_pps, 1e6);
        assert_eq!(r.trials.len(), 1);
    }

    #[test]
    fn nothing_passes_gives_zero() {
        let r = search(&settings(), |rate| Ok(Trial::new(rate, 1000, 0, 1.0))).unwrap();
        assert_eq!(r.zero_loss_pps, 0.0);
        assert!(r.trials.len() <= 9);
    }

    #[test]
    fn loss_ratio_counts_missing_frames() {
        let t = Trial::new(0.0, 1000, 990, 2.0);
        assert!((t.loss_ratio - 0.01).abs() < 1e-12);
        assert_eq!(t.offered_pps, 500.0);
        assert_eq!(t.delivered_pps, 495.0);
    }
}
