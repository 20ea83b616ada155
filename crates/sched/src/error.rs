//! Errors from building a scheduler; each one names what to change.

use thiserror::Error;

use crate::server::MAX_SERVERS;

/// Why control could not build a scheduler snapshot.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SchedError {
    #[error("unknown scheduler \"{0}\"; expected one of rr, wrr, lc, wlc, sed, nq, lblc, lblcr, dh, sh, mh, fo, ovf, twos, fastest, load, geo")]
    UnknownScheduler(String),
    #[error("{count} real servers is more than a scheduler supports ({MAX_SERVERS})")]
    TooManyServers { count: usize },
    #[error("Maglev table size {0} is not prime; use a prime such as 65537 or 655373")]
    MaglevSizeNotPrime(u32),
    #[error("Maglev table size {size} must be larger than the {servers} real servers (and > 100 times as large for 1% balance)")]
    MaglevTableTooSmall { size: u32, servers: usize },
    #[error("locality table size {0} must be a power of two between 1 and 2^24")]
    LocalitySlots(u32),
    #[error("scheduler flag \"{flag}\" applies only to sh and mh, not {scheduler}")]
    FlagNotApplicable {
        flag: &'static str,
        scheduler: &'static str,
    },
    #[error("client sites apply only to the geo scheduler, not {0}")]
    SitesNotApplicable(&'static str),
}
