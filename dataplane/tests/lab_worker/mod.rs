//! The lab (`uvs_dataplane::lab`) on one worker over in-memory ports, shared by the
//! pipeline tests: the worker and its shared state, bursts in and out, a real server's
//! counters and health, and the TCP frames of the lab's client and real servers.
#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use uvs_dataplane::{lab, lifecycle, Shared, TablesBuilder, TablesSpec, Worker};
use uvs_port::MemPort;
use uvs_testkit::{self as tk, Flags};

/// One worker (id 0) serving ports 0 (client side) and 1 (server side), the lab's
/// neighbours learnt.
pub struct Lab {
    pub shared: Arc<Shared>,
    pub w: Worker<MemPort>,
    /// Control's expiry sweep, as uvsd runs it.
    pub expiry: lifecycle::Expiry,
}

impl Lab {
    pub fn with_spec(spec: TablesSpec, capacity: usize) -> Lab {
        Self::with_slots(spec, capacity, 256)
    }

    /// [`with_spec`](Self::with_spec) with `slots` frame buffers per port.
    pub fn with_slots(spec: TablesSpec, capacity: usize, slots: usize) -> Lab {
        let tables = TablesBuilder::build(&spec, None).unwrap();
        let shared = Arc::new(Shared::new(tables, capacity, 1));
        lab::learn_neighbours(&shared.neigh, 0);
        let ports = vec![MemPort::new("client", slots), MemPort::new("server", slots)];
        let w = Worker::new(0, ports, shared.clone());
        Lab {
            shared,
            w,
            expiry: lifecycle::Expiry::default(),
        }
    }

    /// One round of control's expiry sweep over the whole table, as uvsd's.
    pub fn sweep(&mut self) {
        let t = self.shared.tables.load();
        let now = self.shared.clock.now_ticks();
        self.expiry.round(&self.shared.conns, &t, now, 1 << 20);
    }

    /// One burst of `frames` (port, bytes); what left ports 0 and 1.
    pub fn burst_both(&mut self, frames: &[(usize, Vec<u8>)]) -> [Vec<Vec<u8>>; 2] {
        for (port, f) in frames {
            assert!(self.w.ports[*port].push_rx(f));
        }
        self.w.poll();
        [self.w.ports[0].take_tx(), self.w.ports[1].take_tx()]
    }

    /// (active, inactive) of real server `n` of the IPv4 TCP service.
    pub fn counts(&self, n: u8) -> (u32, u32) {
        let t = self.shared.tables.load();
        let svc = t
            .services
            .iter()
            .flatten()
            .find(|s| s.key.proto == 6 && !s.key.vip.v6)
            .unwrap();
        let l = &svc.live[usize::from(n - 1)];
        (l.active.load(Relaxed), l.inactive.load(Relaxed))
    }

    pub fn set_health(&self, n: u8, up: bool) {
        let t = self.shared.tables.load();
        for svc in t.services.iter().flatten() {
            svc.live[usize::from(n - 1)].health_up.store(up, Relaxed);
        }
    }
}

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
