//! IPVS's connection-synchronisation protocol for uvs, without sockets: [`wire`] is the
//! protocol (version 1, byte for byte as Linux's `ip_vs_sync.c`), [`install`] the mapping
//! between sync records and connection-table entries. The daemon that sends and receives
//! them is `control/src/sync/` (uvsd); `uvs-bench sync` measures them.

#![deny(unsafe_code)]

pub mod install;
pub mod wire;
