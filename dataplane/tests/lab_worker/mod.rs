//! TCP frames of the lab (`uvs_dataplane::lab`) shared by the pipeline tests: a client's
//! segment towards the IPv4 VIP and a real server's reply to it.
#![allow(dead_code)]

use std::net::IpAddr;

use uvs_dataplane::lab;
use uvs_testkit::{self as tk, Flags};

pub fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The lab client's TCP segment from `sport` to the IPv4 VIP's port 80.
pub fn client_tcp(sport: u16, flags: Flags, payload: &[u8]) -> Vec<u8> {
    tk::tcp(
        lab::CLIENT_MAC,
        lab::LB0_MAC,
        a(lab::CLIENT4),
        sport,
        a(lab::VIP4),
        80,
        flags,
        payload,
    )
}

/// Real server `n`'s empty segment from its port 80 back to the lab client's `sport`.
pub fn server_tcp(n: u8, sport: u16, flags: Flags) -> Vec<u8> {
    tk::tcp(
        lab::real_mac(n),
        lab::LB1_MAC,
        lab::real(n, false).to_ip(),
        80,
        a(lab::CLIENT4),
        sport,
        flags,
        b"",
    )
}
