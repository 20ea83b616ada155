//! Situations and the request streams they generate: arrival times, request sizes (work
//! units; 1 unit takes 1 s on a speed-1 server) and flow keys. Every scheduler of a
//! situation sees the same stream (common random numbers), so differences are theirs.

use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;
use uvs_sched::FlowHashKey;

/// splitmix64: small, fast, reproducible from the seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    pub fn exp(&mut self, mean: f64) -> f64 {
        -self.unit().ln() * mean
    }

    /// Pareto with shape `alpha` > 1 scaled to `mean` (heavy-tailed for alpha < 2).
    pub fn pareto(&mut self, alpha: f64, mean: f64) -> f64 {
        let xm = mean * (alpha - 1.0) / alpha;
        xm / self.unit().powf(1.0 / alpha)
    }
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Sizes {
    Exponential,
    Pareto { alpha: f64 },
}

/// Arrivals: Poisson, or a two-state modulated Poisson process (bursts).
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Arrivals {
    Poisson,
    /// Alternates high (`high` × the mean rate) and low periods, exponential lengths of
    /// mean `period_s`; the low rate keeps the long-run mean.
    Bursts {
        high: f64,
        period_s: f64,
    },
}

/// A cluster and its traffic.
#[derive(Clone, Debug, Serialize)]
pub struct Situation {
    pub name: &'static str,
    pub about: &'static str,
    /// Nominal speeds (work units per second); weights are 10 × nominal speed.
    pub speeds: Vec<f64>,
    pub sizes: Sizes,
    pub arrivals: Arrivals,
    /// Offered load as a fraction of the nominal capacity.
    pub load: f64,
    /// Mean request size in work units (seconds on a speed-1 server).
    pub mean_size: f64,
    /// Server `.0` runs at `.1` × its speed from the middle of the run on.
    pub slowdown: Option<(usize, f64)>,
}

impl Situation {
    pub fn weights(&self) -> Vec<u32> {
        self.speeds
            .iter()
            .map(|s| (s * 10.0).round() as u32)
            .collect()
    }

    /// Mean arrival rate (requests/s).
    pub fn rate(&self) -> f64 {
        self.load * self.speeds.iter().sum::<f64>() / self.mean_size
    }
}

/// The study's situations.
pub fn situations() -> Vec<Situation> {
    let hetero = vec![1.0, 1.0, 2.0, 4.0];
    vec![
        Situation {
            name: "hetero-exp",
            about: "speeds 1,1,2,4; exponential sizes; Poisson arrivals; 85% load",
            speeds: hetero.clone(),
            sizes: Sizes::Exponential,
            arrivals: Arrivals::Poisson,
            load: 0.85,
            mean_size: 0.01,
            slowdown: None,
        },
        Situation {
            name: "hetero-pareto",
            about: "speeds 1,1,2,4; Pareto sizes (alpha 1.5, heavy tail); Poisson; 85% load",
            speeds: hetero.clone(),
            sizes: Sizes::Pareto { alpha: 1.5 },
            arrivals: Arrivals::Poisson,
            load: 0.85,
            mean_size: 0.01,
            slowdown: None,
        },
        Situation {
            name: "bursts",
            about: "speeds 1,1,2,4; exponential sizes; bursts at 1.6x the mean rate; 75% load",
            speeds: hetero,
            sizes: Sizes::Exponential,
            arrivals: Arrivals::Bursts {
                high: 1.6,
                period_s: 0.5,
            },
            load: 0.75,
            mean_size: 0.01,
            slowdown: None,
        },
        Situation {
            name: "slowdown",
            about: "4 equal servers; one drops to 1/4 speed mid-run (weights unchanged); 70% load",
            speeds: vec![2.0, 2.0, 2.0, 2.0],
            sizes: Sizes::Exponential,
            arrivals: Arrivals::Poisson,
            load: 0.7,
            mean_size: 0.01,
            slowdown: Some((0, 0.25)),
        },
    ]
}

/// One request.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    pub at: f64,
    pub size: f64,
    pub key: FlowHashKey,
}

/// `n` requests of situation `s`.
pub fn generate(s: &Situation, n: usize, seed: u64) -> Vec<Request> {
    let mut rng = Rng::new(seed);
    let rate = s.rate();
    let vip = IpAddr::V4(Ipv4Addr::new(198, 18, 100, 1));
    let (mut t, mut high, mut switch_at) = (0.0, true, 0.0);
    if let Arrivals::Bursts { period_s, .. } = s.arrivals {
        switch_at = rng.exp(period_s);
    }
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let r = match s.arrivals {
            Arrivals::Poisson => rate,
            Arrivals::Bursts { high: h, .. } => {
                // Equal mean period lengths: low = 2 - high keeps the mean rate.
                if high {
                    rate * h
                } else {
                    rate * (2.0 - h).max(0.05)
                }
            }
        };
        let next = t + rng.exp(1.0 / r);
        if let Arrivals::Bursts { period_s, .. } = s.arrivals {
            if next > switch_at {
                // Memoryless: restart the draw from the switch with the new rate.
                t = switch_at;
                high = !high;
                switch_at = t + rng.exp(period_s);
                continue;
            }
        }
        t = next;
        let size = match s.sizes {
            Sizes::Exponential => rng.exp(s.mean_size),
            Sizes::Pareto { alpha } => rng.pareto(alpha, s.mean_size),
        };
        let c = rng.next_u64();
        let src = IpAddr::V4(Ipv4Addr::new(198, 18, (c >> 8) as u8, c as u8));
        out.push(Request {
            at: t,
            size,
            key: FlowHashKey::new(src, vip, 1024 + (c >> 16) as u16 % 60_000, 80, 6),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_have_their_means() {
        let mut r = Rng::new(7);
        let n = 200_000;
        let e: f64 = (0..n).map(|_| r.exp(2.0)).sum::<f64>() / n as f64;
        assert!((e - 2.0).abs() < 0.05, "{e}");
        // alpha 2.5 so the sample mean converges quickly enough to test.
        let p: f64 = (0..n).map(|_| r.pareto(2.5, 1.0)).sum::<f64>() / n as f64;
        assert!((p - 1.0).abs() < 0.05, "{p}");
    }

    #[test]
    fn arrival_rate_matches_the_load() {
        for s in situations() {
            let reqs = generate(&s, 50_000, 3);
            let span = reqs.last().unwrap().at;
            let measured = reqs.len() as f64 / span;
            assert!(
                (measured / s.rate() - 1.0).abs() < 0.1,
                "{}: {measured} vs {}",
                s.name,
                s.rate()
            );
            assert!(reqs.windows(2).all(|w| w[0].at <= w[1].at));
        }
    }
}
