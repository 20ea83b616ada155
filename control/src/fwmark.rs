//! Firewall marks at the XDP program: which destination prefixes (and protocols and ports)
//! it must hand to uvs rather than to the kernel, for the marks that a service uses.

use std::collections::BTreeMap;
use std::net::IpAddr;

use uvs_config::{Config, IpPrefix, Mark, Protocol, Service};
use uvs_xsk::{MarkRange, MARK_RANGES, MARK_SCTP, MARK_TCP, MARK_UDP};

/// Destination prefix → the protocols and port ranges the XDP program steers to uvs.
pub type Steering = BTreeMap<(IpAddr, u8), Vec<MarkRange>>;

fn proto_bit(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => MARK_TCP,
        Protocol::Udp => MARK_UDP,
        Protocol::Sctp => MARK_SCTP,
    }
}

/// What one mark matches, as ranges.
fn ranges(m: &Mark) -> Vec<MarkRange> {
    let protos = m.protocols.iter().fold(0, |b, p| b | proto_bit(*p));
    if m.ports.is_empty() {
        return vec![MarkRange {
            first: 1,
            last: u16::MAX,
            protos,
        }];
    }
    m.ports
        .iter()
        .map(|r| MarkRange {
            first: r.first,
            last: r.last,
            protos,
        })
        .collect()
}

/// At most [`MARK_RANGES`] ranges covering `all`: equal ranges share one entry; past the
/// limit the two closest are joined (the program then takes a few ports more, which uvs finds
/// no service for and drops, never fewer).
fn merge(all: Vec<MarkRange>) -> Vec<MarkRange> {
    let mut by_range: BTreeMap<(u16, u16), u8> = BTreeMap::new();
    for r in all {
        *by_range.entry((r.first, r.last)).or_insert(0) |= r.protos;
    }
    let mut v: Vec<MarkRange> = by_range
        .into_iter()
        .map(|((first, last), protos)| MarkRange {
            first,
            last,
            protos,
        })
        .collect();
    while v.len() > MARK_RANGES {
        let i = (0..v.len() - 1)
            .min_by_key(|&i| v[i + 1].first.saturating_sub(v[i].last))
            .expect("more than one range");
        let (a, b) = (v[i], v.remove(i + 1));
        v[i] = MarkRange {
            first: a.first.min(b.first),
            last: a.last.max(b.last),
            protos: a.protos | b.protos,
        };
    }
    v
}

/// The steering for `cfg`: each destination prefix of a mark that a service of that family
/// uses, with the ranges of every used mark whose destinations contain it (the program's
/// longest-prefix match finds only the most specific prefix).
pub fn steering(cfg: &Config) -> Steering {
    let used = |m: &Mark, v6: bool| {
        cfg.services
            .iter()
            .any(|s: &Service| s.fwmark == m.mark && s.vip.is_ipv6() == v6)
    };
    let entries: Vec<(IpPrefix, Vec<MarkRange>)> = cfg
        .marks
        .iter()
        .flat_map(|m| {
            m.destinations
                .iter()
                .filter(move |d| used(m, !d.is_ipv4()))
                .map(move |d| (*d, ranges(m)))
        })
        .collect();
    let mut out = Steering::new();
    for (p, _) in &entries {
        let covering = entries
            .iter()
            .filter(|(d, _)| {
                d.is_ipv4() == p.is_ipv4() && d.len() <= p.len() && d.contains(p.addr())
            })
            .flat_map(|(_, r)| r.iter().copied())
            .collect();
        out.insert((p.addr(), p.len()), merge(covering));
    }
    out
}

/// The IP protocol numbers whose replies a service's real servers send: the service's
/// protocol, or every protocol of a firewall-mark service's mark.
pub fn reply_protocols(cfg: &Config, s: &Service) -> Vec<Protocol> {
    if s.fwmark == 0 {
        return vec![s.protocol];
    }
    cfg.marks
        .iter()
        .find(|m| m.mark == s.fwmark)
        .map(|m| m.protocols.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(first: u16, last: u16, protos: u8) -> MarkRange {
        MarkRange {
            first,
            last,
            protos,
        }
    }

    #[test]
    fn merging_keeps_at_most_the_limit_and_covers_everything() {
        let all: Vec<MarkRange> = (0..12)
            .map(|i| r(1000 + i * 10, 1000 + i * 10, MARK_TCP))
            .collect();
        let m = merge(all.clone());
        assert_eq!(m.len(), MARK_RANGES);
        for a in &all {
            assert!(m
                .iter()
                .any(|x| x.first <= a.first && a.last <= x.last && x.protos & a.protos != 0));
        }
        assert_eq!(
            merge(vec![r(80, 80, MARK_TCP), r(80, 80, MARK_UDP)]),
            vec![r(80, 80, MARK_TCP | MARK_UDP)]
        );
    }

    #[test]
    fn nested_prefixes_carry_the_outer_marks_ranges() {
        let yaml = r#"
interfaces:
  - name: uvs-lb0
    local: [198.18.0.3]
    networks: [198.18.0.0/24]
marks:
  - { mark: 1, destinations: [198.18.128.0/17], protocols: [tcp], ports: [80] }
  - { mark: 2, destinations: [198.18.200.0/24, "2001:2:0:200::/64"], protocols: [udp], ports: [53] }
  - { mark: 3, destinations: [198.18.201.0/24] }
services:
  - { fwmark: 1, forwarding: nat, real_servers: [{ address: 198.18.0.11 }] }
  - { fwmark: 2, forwarding: nat, real_servers: [{ address: 198.18.0.12 }] }
"#;
        let cfg = uvs_config::load_str(yaml, "t.yaml").unwrap();
        let s = steering(&cfg);
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        assert_eq!(
            s.keys().cloned().collect::<Vec<_>>(),
            vec![(ip("198.18.128.0"), 17), (ip("198.18.200.0"), 24)],
            "mark 3 has no service, mark 2 no IPv6 one"
        );
        assert_eq!(s[&(ip("198.18.128.0"), 17)], vec![r(80, 80, MARK_TCP)]);
        assert_eq!(
            s[&(ip("198.18.200.0"), 24)],
            vec![r(53, 53, MARK_UDP), r(80, 80, MARK_TCP)]
        );
        assert_eq!(reply_protocols(&cfg, &cfg.services[1]), vec![Protocol::Udp]);
    }
}
