//! uvs schedulers: every IPVS scheduling algorithm (rr, wrr, lc, wlc, sed, nq, lblc, lblcr,
//! dh, sh, mh, fo, ovf, twos) plus `fastest` (response time), `load` (agent feedback) and
//! `geo` (client prefix → site).
//!
//! Pure code — no packets, no I/O. Control builds an immutable [`Scheduler`] per virtual
//! service with [`Scheduler::build`]; workers call [`Scheduler::pick`] concurrently through
//! `&self`. Live per-server state ([`ServerLive`]) is a slice of cache-line-padded atomics
//! the dataplane updates ([`ServerLive::bind_conn`] / [`ServerLive::unbind_conn`] also keep
//! IPVS's overload hysteresis) and control feeds (health, RTT, agent load and weight).
//!
//! Availability everywhere is IPVS's: weight > 0 (0 = quiesced), health up, and not
//! overloaded by the connection thresholds.
//!
//! ```
//! use std::sync::Arc;
//! use std::net::{IpAddr, Ipv4Addr};
//! use uvs_sched::{FlowHashKey, SchedConfig, SchedFlags, Scheduler, SchedulerKind, ServerLive, ServerSpec};
//!
//! // Control: three real servers, Maglev with fallback, published as a shared snapshot.
//! let servers = [ServerSpec::new(1, 0xa1), ServerSpec::new(1, 0xa2), ServerSpec::new(2, 0xa3)];
//! let cfg = SchedConfig::new(SchedulerKind::Mh).with_flags(SchedFlags { fallback: true, port: false });
//! let sched = Arc::new(Scheduler::build(&cfg, &servers)?);
//! let live: Arc<[ServerLive]> = (0..3).map(|_| ServerLive::new()).collect();
//!
//! // A worker: pick for a new flow, then count the connection (IPVS ip_vs_bind_dest).
//! let key = FlowHashKey::new(
//!     IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
//!     IpAddr::V4(Ipv4Addr::new(198, 18, 100, 1)),
//!     40000, 80, 6,
//! );
//! let i = sched.pick(&key, &live, 0).expect("a server is up");
//! live[i].bind_conn(&servers[i], false);
//!
//! // Health goes down: with fallback the flow is rehashed to another server.
//! live[i].health_up.store(false, std::sync::atomic::Ordering::Relaxed);
//! let j = sched.pick(&key, &live, 0).unwrap();
//! assert_ne!(i, j);
//! # Ok::<(), uvs_sched::SchedError>(())
//! ```

#![deny(unsafe_code)]

mod config;
mod error;
mod feedback;
mod flow;
mod geo;
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
pub use feedback::{LoadFilter, LOAD_FRESH_INTERVALS, LOAD_GONE_INTERVALS, LOAD_SMOOTHING};
pub use flow::FlowHashKey;
pub use geo::SitePrefix;
pub use locality::LBLCR_SET_CAPACITY;
pub use maglev::is_prime;
pub use scheduler::{Scheduler, MAX_MH_TABLE_SIZE};
pub use select::{LOAD_HEADROOM_FLOOR, MAX_AGENT_LOAD};
pub use server::{
    ServerLive, ServerSpec, FULL_WEIGHT_PCT, MAX_SERVERS, MAX_WEIGHT_PCT, NO_THRESHOLDS,
};
