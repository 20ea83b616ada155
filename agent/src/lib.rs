//! uvs-agent: the real server's side of load balancing.
//!
//! - [`proto`]: HAProxy's agent-check protocol — the reply grammar (`75%`, `drain`,
//!   `maint`, `up`, `down #why`, `maxconn:N`), its parser (used by uvsd's `agent` health
//!   check) and the sticky state replies build up.
//! - [`client`]: the command socket of a running `uvs-agent`, for applications that take
//!   themselves out of rotation (`drain`), come back (`ready`) or report their own load.
//!
//! The `uvs-agent` binary is the daemon (`uvs-agent run`: answers agent checks from uvsd
//! or HAProxy with the server's headroom as a weight percentage and the state the
//! application asked for) and the command (`uvs-agent drain`, `ready`, `status`, …).

#![deny(unsafe_code)]

pub mod client;
pub mod lookup;
pub mod proto;

pub use proto::{parse_reply, Admin, AgentState, Health, Reply, ReplyError};
