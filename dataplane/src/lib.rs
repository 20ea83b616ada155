//! The uvs dataplane: poll-mode workers, the per-packet pipeline, the tables control
//! publishes, neighbour resolution and the slow path. Ports (AF_XDP, in-memory) come in
//! through `uvs_port::Port`; the pipeline never knows which it has.
#![deny(unsafe_code)]

pub mod cluster;
pub mod counters;
pub mod egress;
pub mod fastpath;
pub mod flowcache;
pub mod frag;
pub mod lab;
pub mod lifecycle;
pub mod neigh;
pub mod pipeline;
pub mod sctp;
pub mod slowpath;
pub mod sync_tap;
pub mod synproxy;
pub mod tables;
pub mod verdict;
pub mod wake;
pub mod worker;

pub use tables::{
    IfaceRt, IpKey, Method, RealSpec, Route, ServiceKey, ServiceSpec, Tables, TablesBuilder,
    TablesSpec, TunEncap,
};
pub use verdict::{DropReason, Verdict};
pub use worker::{Shared, Worker, BURST};
