//! The SYN proxy (`syn_proxy: true` on a TCP service forwarded by NAT or FullNAT).

pub mod cookie;
