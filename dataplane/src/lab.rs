//! The standard lab: the tables of the test network `scripts/testbed.sh` builds, for
//! pipeline fixtures, the pipeline benchmark and examples. Client side on port 0
//! (198.18.0.0/24, 2001:2::/64), real servers on port 1 (198.18.1.0/24,
//! 2001:2:0:1::/64), VIPs 198.18.100.1 and 2001:2:0:100::1, TCP 80 and UDP 53.

use std::net::IpAddr;

use uvs_conntrack::Timeouts;
use uvs_sched::{SchedConfig, SchedulerKind};

use crate::tables::{IfaceRt, IpKey, Method, RealSpec, Route, ServiceKey, ServiceSpec, TablesSpec};

pub const LB0_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xb0, 0x00];
pub const LB1_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xb1, 0x00];
pub const VIP4: &str = "198.18.100.1";
pub const VIP6: &str = "2001:2:0:100::1";
pub const CLIENT4: &str = "198.18.0.2";
pub const CLIENT6: &str = "2001:2::2";
pub const POOL4: &str = "198.18.1.100";
pub const POOL6: &str = "2001:2:0:1::100";

pub fn ipk(s: &str) -> IpKey {
    IpKey::from_ip(s.parse::<IpAddr>().expect("lab address"))
}

/// Real server `n` (1..=3) of a family.
pub fn real(n: u8, v6: bool) -> IpKey {
    if v6 {
        ipk(&format!("2001:2:0:1::1{n}"))
    } else {
        ipk(&format!("198.18.1.1{n}"))
    }
}

fn prefix(s: &str, len: u8, port: u8) -> Route {
    Route {
        prefix: ipk(s),
        len,
        port,
        via: None,
    }
}

/// The lab with every service forwarding by `method` and scheduling with `sched`.
pub fn spec(method: Method, sched: SchedulerKind, workers: usize) -> TablesSpec {
    let ifaces = vec![
        IfaceRt {
            name: "uvs-lb0".into(),
            mac: LB0_MAC,
            mtu: 1500,
            local4: Some([198, 18, 0, 3]),
            local6: Some(ipk("2001:2::3").addr),
        },
        IfaceRt {
            name: "uvs-lb1".into(),
            mac: LB1_MAC,
            mtu: 1500,
            local4: Some([198, 18, 1, 3]),
            local6: Some(ipk("2001:2:0:1::3").addr),
        },
    ];
    let routes = vec![
        prefix("198.18.0.0", 24, 0),
        prefix("2001:2::", 64, 0),
        prefix("198.18.1.0", 24, 1),
        prefix("2001:2:0:1::", 64, 1),
    ];
    let mut services = Vec::new();
    for v6 in [false, true] {
        for (proto, port) in [(6u8, 80u16), (17, 53)] {
            let vip = if v6 { ipk(VIP6) } else { ipk(VIP4) };
            services.push(ServiceSpec {
                key: ServiceKey { vip, proto, port },
                name: format!(
                    "{}/{}:{port}",
                    if proto == 6 { "tcp" } else { "udp" },
                    vip.to_ip()
                ),
                sched: SchedConfig::new(sched),
                reals: (1..=3)
                    .map(|n| RealSpec {
                        addr: real(n, v6),
                        port,
                        method,
                        tun: Default::default(),
                        weight: 1,
                        upper_threshold: 0,
                        lower_threshold: 0,
                        site: 0,
                    })
                    .collect(),
                persistence: None,
                one_packet: false,
                syn_proxy: false,
                proxy_protocol: false,
                layer7: None,
                timeouts: Timeouts::default(),
                fullnat_pool: if method == Method::FullNat {
                    vec![if v6 { ipk(POOL6) } else { ipk(POOL4) }]
                } else {
                    Vec::new()
                },
                sorry: None,
            });
        }
    }
    TablesSpec {
        ifaces,
        routes,
        services,
        marks: Vec::new(),
        workers,
    }
}

/// The MAC the lab's neighbour table gives real server `n`.
pub fn real_mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0x11, n]
}

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// Fills a neighbour table with the lab's client and real servers.
pub fn learn_neighbours(neigh: &crate::neigh::NeighTable, now: u32) {
    neigh.learn(ipk(CLIENT4), CLIENT_MAC, now);
    neigh.learn(ipk(CLIENT6), CLIENT_MAC, now);
    for n in 1..=3 {
        neigh.learn(real(n, false), real_mac(n), now);
        neigh.learn(real(n, true), real_mac(n), now);
    }
}
