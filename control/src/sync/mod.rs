//! Connection synchronisation between uvs nodes (and with kernel IPVS), as IPVS's sync
//! daemon does it: `wire` is the protocol.

pub mod wire;
