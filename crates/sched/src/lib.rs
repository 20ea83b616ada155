//! uvs schedulers: every IPVS scheduling algorithm (rr, wrr, lc, wlc, sed, nq, lblc, lblcr,
//! dh, sh, mh, fo, ovf, twos) plus `fastest` (response time) and `load` (agent feedback).
//!
//! Pure code — no packets, no I/O. Control builds an immutable [`Scheduler`] per virtual
//! service with [`Scheduler::build`]; workers call [`Scheduler::pick`] concurrently through
//! `&self`. Live per-server state ([`ServerLive`]) is a slice of cache-line-padded atomics
//! the dataplane updates ([`ServerLive::bind_conn`] / [`ServerLive::unbind_conn`] also keep
//! IPVS's overload hysteresis) and control feeds (health, RTT, agent load).
//!
//! Availability everywhere is IPVS's: weight > 0 (0 = quiesced), health up, and not
//! overloaded by the connection thresholds.

#![deny(unsafe_code)]

mod config;
mod error;
mod flow;
mod hashing;
mod locality;
mod maglev;
mod padded;
mod scheduler;
mod select;
mod server;
mod wrr;

pub use config::{
    SchedConfig, SchedFlags, SchedulerKind, DEFAULT_LOCALITY_EXPIRATION_S, DEFAULT_LOCALITY_SLOTS,
    DEFAULT_MH_TABLE_SIZE,
};
pub use error::SchedError;
pub use flow::FlowHashKey;
pub use locality::LBLCR_SET_CAPACITY;
pub use maglev::is_prime;
pub use scheduler::{Scheduler, MAX_MH_TABLE_SIZE};
pub use select::MAX_AGENT_LOAD;
pub use server::{ServerLive, ServerSpec, MAX_SERVERS};
