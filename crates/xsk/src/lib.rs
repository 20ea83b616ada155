#![allow(unsafe_code)]
//! AF_XDP ports and the XDP program that feeds them.
//!
//! - [`XskPort`]: one AF_XDP socket on (interface, queue) with its own UMEM,
//!   implementing [`uvs_port::Port`] (xsk-rs rings, batch-oriented, no
//!   allocation per burst).
//! - [`XskPair`]: two sockets on one shared UMEM, forwarding by descriptor (the
//!   measured alternative to `XskPort`'s copy between two UMEMs).
//! - [`XdpProgram`]: the uvs XDP program (`bpf/uvs_xdp.c`, compiled by
//!   build.rs and embedded) loaded with libbpf and attached by a BPF link. It
//!   redirects to the socket only what the balancer owns and passes the rest
//!   to the kernel, so the host stays reachable (DESIGN.md "Slow path").
//! - [`MemberProgram`]: the director-less member filter (`bpf/uvs_member.c`): keeps this
//!   real server's Maglev share of a shared VIP's flows and drops the rest.
//!
//! Typical use, per interface:
//! ```no_run
//! use uvs_xsk::{XdpMode, XdpProgram, XskConfig, XskPort};
//! let prog = XdpProgram::attach("eth1", XdpMode::Auto)?;
//! prog.add_owned("198.18.100.1".parse().unwrap())?;
//! let port = XskPort::open("eth1", 0, &XskConfig::default())?;
//! prog.register_socket(0, port.fd())?;
//! # Ok::<(), uvs_xsk::XskError>(())
//! ```
//!
//! This is the only crate of the workspace that allows `unsafe`: ring and
//! UMEM access through xsk-rs and the libbpf/syscall FFI. Every unsafe block
//! says why it is sound.

mod error;
mod libbpf_log;
mod member;
mod pair;
mod port;
mod port_config;
mod program;
mod sys;

pub use error::XskError;
pub use member::{
    flow_hash, flow_slot, MemberCounters, MemberHash, MemberProgram, MemberSettings,
    MEMBER_MAX_PORTS, MEMBER_TABLE_MAX, NO_OWNER,
};
pub use pair::XskPair;
pub use port::XskPort;
pub use port_config::{XskConfig, XskPortStats, ZeroCopy};
pub use program::{
    FastMap, FastRoute, FastRoute6, MarkRange, XdpCounters, XdpMode, XdpProgram, MARK_RANGES,
    MARK_SCTP, MARK_TCP, MARK_UDP,
};
pub use sys::is_root;
pub use xsk_rs::socket::XdpStatistics;
