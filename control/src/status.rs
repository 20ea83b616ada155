//! Builds the plain-data [`Snapshot`] from the live tables and counters, and samples
//! rates once a second (ipvsadm `--rate` is an average over the last estimator period).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use uvs_conntrack::tcp::TcpState;
use uvs_conntrack::Conn;
use uvs_dataplane::counters::{PerWorkerStats, TrafficTotals};
use uvs_dataplane::lifecycle::EntryKind;
use uvs_dataplane::pipeline::{PROTO_SCTP, PROTO_TCP, PROTO_UDP};
use uvs_dataplane::tables::{Tables, SORRY_SLOT};
use uvs_dataplane::{DropReason, Method, Shared};

use crate::snapshot::{
    ConnSnapshot, Rates, RealSnapshot, ServiceSnapshot, Snapshot, Traffic, WorkerSnapshot,
};

fn traffic(t: TrafficTotals) -> Traffic {
    Traffic {
        conns: t.conns,
        packets_in: t.packets_in,
        packets_out: t.packets_out,
        bytes_in: t.bytes_in,
        bytes_out: t.bytes_out,
    }
}

pub fn proto_name(p: u8) -> &'static str {
    match p {
        PROTO_TCP => "TCP",
        PROTO_UDP => "UDP",
        PROTO_SCTP => "SCTP",
        _ => "IP",
    }
}

/// Keys rates by service (and real server) identity, which survives reloads.
pub type RateKey = (IpAddr, u8, u16, Option<(IpAddr, u16)>);

/// One series the sampler follows: a service or one of its real servers, in the order
/// [`series_of`] walks a snapshot.
struct Sampled {
    key: RateKey,
    /// Totals at the previous sample (`None`: not sampled yet).
    prev: Option<Traffic>,
}

/// The series of `tables`, in walk order (services, each followed by its real servers).
fn series_of(tables: &Tables) -> impl Iterator<Item = (RateKey, &PerWorkerStats)> {
    tables.services.iter().flatten().flat_map(|s| {
        let base = (s.key.vip.to_ip(), s.key.proto, s.key.port);
        std::iter::once(((base.0, base.1, base.2, None), &*s.stats)).chain(
            s.reals.iter().flatten().map(move |r| {
                (
                    (base.0, base.1, base.2, Some((r.addr.to_ip(), r.port))),
                    &*r.stats,
                )
            }),
        )
    })
}

/// The status history's identity of a rate series ([`crate::statuspage`]): what the
/// snapshot shows of the service (protocol or `FWM`, VIP, port, mark) and the real server.
pub fn history_key(key: &RateKey) -> crate::statuspage::Key {
    let (vip, proto, port, real) = *key;
    let mark = (proto == 0).then(|| match vip {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => u32::from_be_bytes(a.octets()[..4].try_into().expect("4 bytes")),
    });
    let vip = match (mark, vip) {
        (None, v) => v,
        (Some(_), IpAddr::V4(_)) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        (Some(_), IpAddr::V6(_)) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    };
    let protocol = if mark.is_some() {
        "FWM".to_string()
    } else {
        proto_name(proto).to_string()
    };
    (protocol, vip, port, mark.unwrap_or(0), real)
}

/// Remembers the previous totals to turn them into per-second rates.
///
/// Idle cost follows changes, not the number of services: the series are walked in a list
/// built when the tables change (a reload or an edit), each sample only reads their
/// counters, and a series whose counters did not move and whose rate was already zero
/// costs nothing more; only non-zero rates are kept, and only changed rates are handed to
/// the status history (`RateSampler::changes`).
#[derive(Default)]
pub struct RateSampler {
    last: Option<Instant>,
    /// The tables snapshot `series` follows ([`Tables::epoch`]; 0: none yet).
    epoch: u64,
    series: Vec<Sampled>,
    /// Non-zero rates only; a series not here runs at zero.
    rates: HashMap<RateKey, Rates>,
    /// Rates that changed at the last sample, and whether the series themselves changed.
    changes: Vec<(RateKey, Rates)>,
    series_changed: bool,
    prev_workers: Vec<(u64, u64)>,
    busy: Vec<f64>,
}

impl RateSampler {
    pub fn sample(&mut self, shared: &Shared) {
        let now = Instant::now();
        let dt = self
            .last
            .map_or(0.0, |l| now.duration_since(l).as_secs_f64());
        self.last = Some(now);
        let tables = shared.tables.load();
        self.changes.clear();
        self.series_changed = tables.epoch != self.epoch;
        if self.series_changed {
            // A reload or an edit: follow the new snapshot's series, carrying each one's
            // previous totals by identity; rates of series that left are forgotten.
            self.epoch = tables.epoch;
            let mut prev: HashMap<RateKey, Option<Traffic>> =
                self.series.drain(..).map(|s| (s.key, s.prev)).collect();
            self.series = series_of(&tables)
                .map(|(key, _)| Sampled {
                    key,
                    prev: prev.remove(&key).flatten(),
                })
                .collect();
            for gone in prev.keys() {
                if self.rates.remove(gone).is_some() {
                    self.changes.push((*gone, Rates::default()));
                }
            }
        }
        for (s, (_, stats)) in self.series.iter_mut().zip(series_of(&tables)) {
            let t = traffic(stats.totals());
            let Some(p) = s.prev.replace(t) else { continue };
            if dt <= 0.0 || (p == t && !self.rates.contains_key(&s.key)) {
                continue;
            }
            let d = |a: u64, b: u64| a.saturating_sub(b) as f64 / dt;
            let r = Rates {
                cps: d(t.conns, p.conns),
                inpps: d(t.packets_in, p.packets_in),
                outpps: d(t.packets_out, p.packets_out),
                inbps: d(t.bytes_in, p.bytes_in) * 8.0,
                outbps: d(t.bytes_out, p.bytes_out) * 8.0,
            };
            if r == Rates::default() {
                self.rates.remove(&s.key);
            } else {
                self.rates.insert(s.key, r);
            }
            self.changes.push((s.key, r));
        }
        let now_w: Vec<(u64, u64)> = shared
            .counters
            .iter()
            .map(|c| (c.polls.get(), c.empty_polls.get()))
            .collect();
        self.busy = now_w
            .iter()
            .enumerate()
            .map(|(i, (b, e))| {
                let (pb, pe) = self.prev_workers.get(i).copied().unwrap_or((0, 0));
                let polls = b.saturating_sub(pb);
                if polls == 0 {
                    0.0
                } else {
                    1.0 - e.saturating_sub(pe) as f64 / polls as f64
                }
            })
            .collect();
        self.prev_workers = now_w;
    }

    fn rate(&self, key: &RateKey) -> Rates {
        self.rates.get(key).copied().unwrap_or_default()
    }

    /// What the last sample changed, for the status history (with `drops`, the drops
    /// so far): every series when the tables changed, and the rates that moved (a rate
    /// back to zero included).
    pub fn history_sample(&self, drops: u64) -> crate::statuspage::Sample {
        crate::statuspage::Sample {
            series: self
                .series_changed
                .then(|| self.series.iter().map(|s| history_key(&s.key)).collect()),
            changed: self
                .changes
                .iter()
                .map(|(k, r)| (history_key(k), *r))
                .collect(),
            busy: self.busy.clone(),
            drops,
        }
    }
}

/// Persistence templates per (service id, real server slot): a walk of the whole table.
pub fn persistent_counts(shared: &Shared) -> HashMap<(u16, u16), u32> {
    let mut counts = HashMap::new();
    shared.conns.for_each(|_, c, _| {
        if EntryKind::of(c) == EntryKind::Template {
            *counts.entry((c.service, c.real)).or_insert(0) += 1;
        }
    });
    counts
}

/// The picture `uvsadm` and the metrics endpoint render.
pub fn snapshot(
    shared: &Shared,
    rates: &RateSampler,
    cores: &[Option<usize>],
    flags_of: impl Fn(&uvs_dataplane::ServiceKey) -> String,
) -> Snapshot {
    snapshot_with(shared, rates, cores, flags_of, None)
}

/// [`snapshot`], with each real server's persistence templates from `persistent`
/// ([`persistent_counts`]).
pub fn snapshot_with(
    shared: &Shared,
    rates: &RateSampler,
    cores: &[Option<usize>],
    flags_of: impl Fn(&uvs_dataplane::ServiceKey) -> String,
    persistent: Option<&HashMap<(u16, u16), u32>>,
) -> Snapshot {
    let tables = shared.tables.load();
    let mut services = Vec::new();
    for s in tables.services.iter().flatten() {
        let base = (s.key.vip.to_ip(), s.key.proto, s.key.port);
        let mut reals = Vec::new();
        for (slot, r) in s.reals.iter().enumerate() {
            let Some(r) = r else { continue };
            let live = &s.live[slot];
            let spec = &s.specs[slot];
            reals.push(RealSnapshot {
                address: r.addr.to_ip(),
                port: r.port,
                forward: r.method.ipvsadm_name().to_string(),
                tunnel: crate::admin::tunnel::info_rt(r.method, r.tun),
                // In effect: an agent's percentage or drain shows, as HAProxy's stats do.
                weight: live.weight(r.weight),
                active: live.active.load(Relaxed),
                inactive: live.inactive.load(Relaxed),
                health_up: live.health_up.load(Relaxed),
                overloaded: live.overloaded.load(Relaxed),
                upper_threshold: spec.upper_threshold,
                lower_threshold: spec.lower_threshold,
                persistent: persistent
                    .and_then(|p| p.get(&(s.id, slot as u16)))
                    .copied()
                    .unwrap_or(0),
                response_time_us: live.rtt_us.load(Relaxed),
                load: live.load.load(Relaxed),
                traffic: traffic(r.stats.totals()),
                rates: rates.rate(&(base.0, base.1, base.2, Some((r.addr.to_ip(), r.port)))),
            });
        }
        let fwmark = s.key.fwmark();
        services.push(ServiceSnapshot {
            name: s.name.clone(),
            protocol: if fwmark.is_some() {
                "FWM".to_string()
            } else {
                proto_name(s.key.proto).to_string()
            },
            vip: match (fwmark, s.key.vip.v6) {
                (None, _) => s.key.vip.to_ip(),
                (Some(_), false) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                (Some(_), true) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            },
            port: s.key.port,
            fwmark: fwmark.unwrap_or(0),
            scheduler: s.sched_name.to_string(),
            flags: flags_of(&s.key),
            persistent: s.persistence.map(|p| (p.timeout_s, p.prefix_len)),
            one_packet: s.one_packet,
            reals,
            traffic: traffic(s.stats.totals()),
            rates: rates.rate(&(base.0, base.1, base.2, None)),
        });
    }
    services.sort_by(|a, b| {
        (a.fwmark, a.protocol.clone(), a.vip, a.port).cmp(&(
            b.fwmark,
            b.protocol.clone(),
            b.vip,
            b.port,
        ))
    });
    let workers = shared
        .counters
        .iter()
        .enumerate()
        .map(|(i, c)| WorkerSnapshot {
            id: i,
            core: cores.get(i).copied().flatten(),
            rx_packets: c.rx_packets.get(),
            tx_packets: c.tx_packets.get(),
            rx_bytes: c.rx_bytes.get(),
            tx_bytes: c.tx_bytes.get(),
            slow_path: c.slow_path.get(),
            new_conns: c.new_conns.get(),
            reused_conns: c.reused_conns.get(),
            hash_adopted: c.hash_adopted.get(),
            flow_cache: c.flow_cache.get(),
            class_replays: c.class_replays.get(),
            burst_lookups: c.burst_lookups.get(),
            sleeps: c.sleeps.get(),
            tunnelled: [0, 1, 2].map(|i| c.tunnelled[i].get()),
            synproxy: crate::snapshot::SynProxyCounts {
                cookies_sent: c.synproxy_cookies_sent.get(),
                cookies_valid: c.synproxy_cookies_valid.get(),
                spliced: c.synproxy_spliced.get(),
                syn_retransmits: c.synproxy_syn_retransmits.get(),
                failures: c.synproxy_failures.get(),
                untracked_syns: c.synproxy_untracked_syns.get(),
                redispatched: c.synproxy_redispatched.get(),
                handed_over: c.synproxy_handed_over.get(),
                held: c.synproxy_held.get(),
                proxy_headers: c.synproxy_proxy_headers.get(),
                proxy_resent: c.synproxy_proxy_resent.get(),
                layer7_incomplete: c.layer7_incomplete.get(),
                layer7_pending: c.layer7_pending.get(),
                layer7_pending_bytes: c.layer7_pending_bytes.get(),
                layer7_replayed: c.layer7_replayed.get(),
            },
            busy_ratio: rates.busy.get(i).copied().unwrap_or(0.0),
            standing_by: false,
        })
        .collect();
    let mut drops = Vec::new();
    for i in 0..DropReason::COUNT {
        let n: u64 = shared.counters.iter().map(|c| c.drops[i].get()).sum();
        if n > 0 {
            drops.push((DropReason::name_of(i).to_string(), n));
        }
    }
    Snapshot {
        version: env!("CARGO_PKG_VERSION").to_string(),
        // `conn_table.capacity`: each address family has a table that size (the sum of
        // both would be a number of IPv4 flows the table cannot hold).
        conn_capacity: shared
            .conns
            .capacity_of(false)
            .max(shared.conns.capacity_of(true)),
        conn_count: shared.conns.len(),
        conn_dropped: shared
            .conns_dropped
            .load(std::sync::atomic::Ordering::Relaxed),
        services,
        workers,
        drops,
        generation: tables.generation,
        sync: None,
        node: None,
        client_lookup: None,
        cluster: None,
        fast_path: Vec::new(),
        fast_path_sent: Vec::new(),
        attached_again: Vec::new(),
        unclaimed: Vec::new(),
        layer7_pools: tables
            .services
            .iter()
            .flatten()
            .flat_map(|s| {
                s.layer7.iter().flat_map(move |l| {
                    l.pools.iter().map(move |p| crate::snapshot::PoolHits {
                        service: s.name.clone(),
                        pool: p.name.clone(),
                        hits: p.hits.totals().conns,
                        reals: s
                            .reals
                            .iter()
                            .enumerate()
                            .filter_map(|(slot, r)| Some((slot, r.as_ref()?)))
                            .filter(|(_, r)| p.members.contains(&r.addr))
                            .map(|(slot, r)| crate::snapshot::PoolReal {
                                address: r.addr.to_ip(),
                                port: r.port,
                                // Up for the pool: up as a server (its own health holds
                                // for every pool) and not failing a check of this pool's.
                                up: s.live[slot].health_up.load(Relaxed)
                                    && !p.down.contains(&(r.addr, r.port)),
                            })
                            .collect(),
                    })
                })
            })
            .collect(),
    }
}

/// Every tracked connection and persistence template (`uvsadm -L -c`), as ipvsadm lists
/// IPVS's connection table (`/proc/net/ip_vs_conn` holds both). SCTP tag records, flagged
/// as templates in the table too, are how an association's packets are found, not
/// entries an operator placed: they are left out.
pub fn connections(shared: &Shared) -> Vec<ConnSnapshot> {
    let now = shared.clock.now_ticks();
    let tables = shared.tables.load();
    let mut out = Vec::new();
    shared.conns.for_each(|_, c, deadline| {
        // Deadlines are millisecond ticks that wrap; what is left is a wrapping difference.
        let expires_s = deadline.wrapping_sub(now).min(i32::MAX as u32) / 1000;
        match EntryKind::of(c) {
            EntryKind::Flow => out.push(flow_entry(c, expires_s)),
            EntryKind::Template => out.extend(template_entry(&tables, c, expires_s)),
            EntryKind::SctpTag => {}
        }
    });
    out.sort_by_key(|a| (a.client, a.virtual_));
    out
}

fn entry_ip(v6: bool, a: [u8; 16]) -> IpAddr {
    uvs_dataplane::IpKey { v6, addr: a }.to_ip()
}

fn flow_entry(c: &Conn, expires_s: u32) -> ConnSnapshot {
    let ip = entry_ip;
    let state = match c.orig.proto {
        PROTO_TCP => TcpState::from_u8(c.state)
            .map_or("NONE", |s| s.name())
            .to_string(),
        PROTO_UDP => "UDP".to_string(),
        PROTO_SCTP => uvs_dataplane::sctp::state_name(c.state).to_string(),
        _ => "NONE".to_string(),
    };
    let fullnat = Method::from_u8(c.method) == Some(Method::FullNat);
    ConnSnapshot {
        protocol: proto_name(c.orig.proto).to_string(),
        expires_s,
        state,
        client: (ip(c.orig.v6, c.orig.src), c.orig.sport),
        virtual_: (ip(c.orig.v6, c.orig.dst), c.orig.dport),
        // A NAT64 flow keeps its IPv4 server and pool address IPv4-mapped: shown as IPv4.
        real: (ip(c.reply.v6, c.reply.src).to_canonical(), c.reply.sport),
        local: fullnat.then(|| (ip(c.reply.v6, c.reply.dst).to_canonical(), c.reply.dport)),
        template: false,
    }
}

/// A persistence template as IPVS lists one (`ip_vs_sched_persist`): `<protocol, client
/// (masked), 0, VIP, service port, real server, its port>`, state NONE; for a
/// firewall-mark service `<IP, client, 0, mark, 0, real server, 0>` (the template key
/// carries the mark where the VIP would be, as IPVS's), and for a port-0 service the
/// ports 0. `None` for a template of a service the running tables no longer have (the
/// dataplane drops it at its next lookup) or of a real server slot now empty.
fn template_entry(tables: &Tables, c: &Conn, expires_s: u32) -> Option<ConnSnapshot> {
    let k = &c.orig;
    let svc = tables.service(c.service)?;
    // The key names its service (`lifecycle::template_key`): a service id reused since
    // by another service is not this template's.
    if svc.key.vip.addr != k.dst || svc.key.vip.v6 != k.v6 || svc.key.port != k.dport {
        return None;
    }
    if u16::from(svc.key.proto) != k.sport {
        return None;
    }
    let real = if c.real == SORRY_SLOT {
        svc.sorry.as_ref()?
    } else {
        svc.reals.get(usize::from(c.real))?.as_ref()?
    };
    let real_port = if svc.key.port == 0 { 0 } else { real.port };
    Some(ConnSnapshot {
        // 0 for a firewall-mark service: "IP", as IPVS's IPPROTO_IP templates.
        protocol: proto_name(svc.key.proto).to_string(),
        expires_s,
        state: "NONE".to_string(),
        client: (entry_ip(k.v6, k.src), 0),
        virtual_: (entry_ip(k.v6, k.dst), k.dport),
        real: (real.addr.to_ip().to_canonical(), real_port),
        local: None,
        template: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uvs_dataplane::pipeline::conn_flags;
    use uvs_dataplane::tables::{TablesBuilder, TablesSpec};

    /// 5 000 services with three real servers each, as `uvs-lb` tables.
    fn five_thousand_services() -> Shared {
        let mut spec = uvs_dataplane::lab::spec(Method::Nat, uvs_sched::SchedulerKind::Rr, 1);
        let template = spec.services[0].clone();
        spec.services = (0..5_000u32)
            .map(|i| {
                let mut s = template.clone();
                s.key.vip = uvs_dataplane::IpKey::from_ip(IpAddr::from([
                    198,
                    18,
                    100 + (i / 250) as u8,
                    (i % 250) as u8 + 1,
                ]));
                s.name = format!("s{i}");
                s
            })
            .collect();
        Shared::new(TablesBuilder::build(&spec, None).unwrap(), 1000, 1)
    }

    /// The control loop samples rates and feeds the status history every second: idle,
    /// with 5 000 services, the history is handed nothing (no series list, no change),
    /// not a pass over every service's hash entries, strings and rings (that took ~20 % of
    /// a core in a debug build; 20 idle seconds 3.27 s before, 0.30 s after, measured, not
    /// asserted: speed lives in benchmarks, not timed tests).
    #[test]
    fn idle_seconds_of_five_thousand_services_cost_what_changed() {
        let shared = five_thousand_services();
        let mut rates = RateSampler::default();
        let mut history = crate::statuspage::History::default();
        rates.sample(&shared);
        history.record(&rates.history_sample(0));
        for _ in 0..20 {
            rates.sample(&shared);
            let idle = rates.history_sample(0);
            assert!(idle.series.is_none() && idle.changed.is_empty());
            history.record(&idle);
        }
    }

    /// Only what moved is handed to the history, a rate back to zero included; the rates
    /// `uvsadm --rate` shows follow the counters.
    #[test]
    fn rates_follow_the_counters_that_moved() {
        let shared = five_thousand_services();
        let mut rates = RateSampler::default();
        rates.sample(&shared);
        let first = rates.history_sample(0);
        assert_eq!(first.series.as_ref().map(Vec::len), Some(20_000));
        assert!(first.changed.is_empty());
        let tables = shared.tables.load();
        let svc = tables.services.iter().flatten().nth(7).unwrap();
        let real = svc.reals[1].as_ref().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        real.stats.worker(0).conns.add(10);
        svc.stats.worker(0).conns.add(10);
        rates.sample(&shared);
        let moved = rates.history_sample(0);
        assert!(moved.series.is_none());
        assert_eq!(moved.changed.len(), 2, "{:?}", moved.changed);
        let key = |r: Option<(IpAddr, u16)>| (svc.key.vip.to_ip(), svc.key.proto, svc.key.port, r);
        assert!(rates.rate(&key(None)).cps > 0.0);
        assert!(rates.rate(&key(Some((real.addr.to_ip(), real.port)))).cps > 0.0);
        rates.sample(&shared);
        let back = rates.history_sample(0);
        assert_eq!(back.changed.len(), 2);
        assert!(back.changed.iter().all(|(_, r)| r.cps == 0.0));
        assert_eq!(rates.rate(&key(None)), Rates::default());
        rates.sample(&shared);
        assert!(rates.history_sample(0).changed.is_empty());
    }

    /// `conn_table.capacity` sizes each address family's table; the snapshot (and so
    /// `uvsadm -L`'s size=, `top` and `uvs_conn_table_capacity`) reports that number, not
    /// the sum of both families.
    #[test]
    fn capacity_is_the_configured_one() {
        let tables = TablesBuilder::build(&TablesSpec::default(), None).unwrap();
        let shared = Shared::new(tables, 1000, 1);
        let s = snapshot(&shared, &RateSampler::default(), &[None], |_| String::new());
        assert_eq!(s.conn_capacity, 1000);
    }

    /// `-L -c` lists persistence templates as ipvsadm lists IPVS's (its `ip_vs_conn` file
    /// holds them): the service's protocol, the (masked) client with port 0, the VIP and
    /// the service's port, the real server, state NONE. A firewall-mark service's template
    /// shows protocol IP and the mark as its virtual address, ports 0, as IPVS's
    /// `<IPPROTO_IP, caddr, 0, fwmark, 0, daddr, 0>`. SCTP tag records, which are also
    /// flagged as templates in the table, are not listed.
    #[test]
    fn persistence_templates_are_listed_and_sctp_tag_records_are_not() {
        use uvs_conntrack::{Conn, FlowKey};
        use uvs_dataplane::lifecycle::{template, template_key};
        let mut spec = uvs_dataplane::lab::spec(Method::Nat, uvs_sched::SchedulerKind::Rr, 1);
        let mut mark = spec.services[0].clone();
        mark.key = uvs_dataplane::ServiceKey::mark(7, false);
        mark.name = "fwm-7".into();
        spec.services.push(mark);
        let tables = TablesBuilder::build(&spec, None).unwrap();
        let shared = Shared::new(tables, 1000, 1);
        let now = shared.clock.now_ticks();
        let tables = shared.tables.load();
        let by_name = |n: &str| {
            tables
                .services
                .iter()
                .flatten()
                .find(|s| s.name == n)
                .unwrap()
                .clone()
        };
        let web = by_name("tcp/198.18.100.1:80");
        let fwm = by_name("fwm-7");
        let client = |last: u8| {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&[198, 18, 0, last]);
            a
        };
        // The client's /24, as `-M 255.255.255.0` masks it, to the second real server.
        let t = template(
            &web,
            template_key(&web, client(0), web.key.vip.addr, false),
            1,
        );
        shared
            .conns
            .insert(&t, now, now.wrapping_add(300_000))
            .unwrap();
        let t = template(
            &fwm,
            template_key(&fwm, client(9), fwm.key.vip.addr, false),
            2,
        );
        shared
            .conns
            .insert(&t, now, now.wrapping_add(60_000))
            .unwrap();
        // A connection the template placed, and an SCTP association's tag record.
        let flow = Conn {
            orig: FlowKey {
                proto: PROTO_TCP,
                v6: false,
                src: client(2),
                dst: web.key.vip.addr,
                sport: 40000,
                dport: 80,
            },
            reply: FlowKey {
                proto: PROTO_TCP,
                v6: false,
                src: web.reals[1].as_ref().unwrap().addr.addr,
                dst: client(2),
                sport: 80,
                dport: 40000,
            },
            service: web.id,
            real: 1,
            method: Method::Nat as u8,
            state: TcpState::Established as u8,
            flags: 0,
        };
        shared
            .conns
            .insert(&flow, now, now.wrapping_add(900_000))
            .unwrap();
        let tag = uvs_dataplane::sctp::tags::record(
            &flow,
            uvs_dataplane::sctp::tags::Side::ToServer,
            0xabcd,
        );
        shared
            .conns
            .insert(&tag, now, now.wrapping_add(900_000))
            .unwrap();

        let conns = connections(&shared);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let templates: Vec<&ConnSnapshot> = conns.iter().filter(|c| c.template).collect();
        assert_eq!(conns.len(), 3, "{conns:#?}");
        assert_eq!(templates.len(), 2, "{conns:#?}");
        let t = templates
            .iter()
            .find(|c| c.protocol == "TCP")
            .expect("the TCP service's template");
        assert_eq!(t.state, "NONE");
        assert_eq!(t.client, (ip("198.18.0.0"), 0));
        assert_eq!(t.virtual_, (ip("198.18.100.1"), 80));
        assert_eq!(t.real, (ip("198.18.1.12"), 80));
        assert_eq!(t.local, None);
        assert!((299..=300).contains(&t.expires_s), "{}", t.expires_s);
        let m = templates
            .iter()
            .find(|c| c.protocol == "IP")
            .expect("the mark service's template");
        assert_eq!(m.state, "NONE");
        assert_eq!(m.client, (ip("198.18.0.9"), 0));
        assert_eq!(m.virtual_, (ip("0.0.0.7"), 0));
        assert_eq!(m.real, (ip("198.18.1.13"), 0));
        let f = conns.iter().find(|c| !c.template).unwrap();
        assert_eq!(
            (f.protocol.as_str(), f.state.as_str()),
            ("TCP", "ESTABLISHED")
        );
        assert_eq!(f.client, (ip("198.18.0.2"), 40000));
    }

    /// `--persistent-conn`: templates are counted per real server, flows are not.
    #[test]
    fn persistence_templates_are_counted_per_real_server() {
        use uvs_conntrack::{Conn, FlowKey};
        let spec = uvs_dataplane::lab::spec(Method::Nat, uvs_sched::SchedulerKind::Rr, 1);
        let tables = TablesBuilder::build(&spec, None).unwrap();
        let shared = Shared::new(tables, 1000, 1);
        let key = |client: u8, proto: u8| FlowKey {
            proto,
            v6: false,
            src: [198, 18, 0, client, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            dst: [198, 18, 100, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            sport: 6,
            dport: 80,
        };
        let conn = |k: FlowKey, real: u16, flags: u8| Conn {
            orig: k,
            reply: k.reversed(),
            service: 0,
            real,
            method: 0,
            state: 0,
            flags,
        };
        for (client, real, flags) in [
            (2, 1, conn_flags::TEMPLATE),
            (3, 1, conn_flags::TEMPLATE),
            (4, 2, conn_flags::TEMPLATE),
            (5, 1, 0),
        ] {
            let proto = if flags == 0 { PROTO_TCP } else { 0 };
            shared
                .conns
                .insert(&conn(key(client, proto), real, flags), 0, 60_000)
                .unwrap();
        }
        let counts = persistent_counts(&shared);
        assert_eq!(counts, HashMap::from([((0, 1), 2), ((0, 2), 1)]));
        let s = snapshot_with(
            &shared,
            &RateSampler::default(),
            &[None],
            |_| String::new(),
            Some(&counts),
        );
        let svc = s
            .services
            .iter()
            .find(|x| x.name == "tcp/198.18.100.1:80")
            .unwrap();
        let p: Vec<u32> = svc.reals.iter().map(|r| r.persistent).collect();
        assert_eq!(p, [0, 2, 1]);
    }
}
