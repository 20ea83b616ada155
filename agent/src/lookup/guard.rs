//! uvsd's side of freshness: each request once, and only near uvsd's clock.

use super::{Refused, Request, MAX_SKEW};
use std::collections::HashMap;

/// uvsd's replay protection: a request counts once, and only within [`MAX_SKEW`] of now.
/// Remembers the nonces of the window (at most `capacity`; beyond, requests are refused as
/// [`Refused::Busy`] until old ones age out, so memory stays bounded).
#[derive(Debug)]
pub struct ReplayGuard {
    seen: HashMap<[u8; 16], u64>,
    capacity: usize,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        ReplayGuard::with_capacity(100_000)
    }
}

impl ReplayGuard {
    pub fn with_capacity(capacity: usize) -> ReplayGuard {
        ReplayGuard {
            seen: HashMap::new(),
            capacity,
        }
    }

    /// Accepts `r` at `now_ms` once.
    pub fn check(&mut self, r: &Request, now_ms: u64) -> Result<(), Refused> {
        let skew = MAX_SKEW.as_millis() as u64;
        if r.time_ms.abs_diff(now_ms) > skew {
            return Err(Refused::Stale);
        }
        if self.seen.contains_key(&r.nonce) {
            return Err(Refused::Replayed);
        }
        if self.seen.len() >= self.capacity {
            // Anything older than the window can no longer pass the time check.
            self.seen
                .retain(|_, t| t.saturating_add(skew) >= now_ms.saturating_sub(skew));
            if self.seen.len() >= self.capacity {
                return Err(Refused::Busy);
            }
        }
        self.seen.insert(r.nonce, r.time_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Protocol;
    use super::*;

    fn req() -> Request {
        Request::new(
            Protocol::Tcp,
            "198.18.1.11:80".parse().unwrap(),
            "198.18.1.100:40001".parse().unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn replayed_and_stale_requests_are_refused() {
        let mut g = ReplayGuard::default();
        let r = req();
        let now = r.time_ms;
        assert_eq!(g.check(&r, now), Ok(()));
        assert_eq!(g.check(&r, now + 5), Err(Refused::Replayed));
        let skew = MAX_SKEW.as_millis() as u64;
        let old = Request {
            time_ms: now - skew - 1,
            ..req()
        };
        assert_eq!(g.check(&old, now), Err(Refused::Stale));
        let ahead = Request {
            time_ms: now + skew + 1,
            ..req()
        };
        assert_eq!(g.check(&ahead, now), Err(Refused::Stale));
        // The edge of the window still passes.
        let edge = Request {
            time_ms: now - skew,
            ..req()
        };
        assert_eq!(g.check(&edge, now), Ok(()));

        // Bounded: a full window refuses until its entries age out. The requests carry
        // `now` itself: `req()` reads the clock, which may have moved on since `now`, and
        // an entry from after `now` would rightly still be inside the later window.
        let at_now = || Request {
            time_ms: now,
            ..req()
        };
        let mut g = ReplayGuard::with_capacity(2);
        assert_eq!(g.check(&at_now(), now), Ok(()));
        assert_eq!(g.check(&at_now(), now), Ok(()));
        assert_eq!(g.check(&at_now(), now), Err(Refused::Busy));
        let later = Request {
            time_ms: now + 2 * skew + 1,
            ..req()
        };
        assert_eq!(g.check(&later, now + 2 * skew + 1), Ok(()));
    }
}
