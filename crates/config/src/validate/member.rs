//! The `member:` section: director-less member mode (CLUSTERIP / NLB style), where every
//! real server holds the VIP and keeps only its Maglev share of the flows.

use std::collections::HashSet;
use std::net::IpAddr;

use super::health::health_check;
use super::{Ctx, Result};
use crate::model::{
    HealthCheck, Interface, MemberConfig, MemberHash, Protocol, Service, DEFAULT_HEARTBEAT_PORT,
};
use crate::raw::{RawHealthCheck, RawMember};

/// Largest Maglev table the member filter holds (`TABLE_MAX` in uvs_member.c).
const MAX_TABLE: u64 = 65_537;
/// Ports one filter lists (`MAX_PORTS` in uvs_member.c).
const MAX_PORTS: usize = 16;
/// Members of one cluster: table entries are 16-bit member indices (0xffff means none);
/// NLB stops at 32, far below.
const MAX_MEMBERS: usize = 1024;

/// `aa:bb:cc:dd:ee:ff`.
pub(crate) fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

fn is_prime(m: u64) -> bool {
    m >= 2
        && (2..)
            .take_while(|d| d * d <= m)
            .all(|d| !m.is_multiple_of(d))
}

/// A member section beside services (checked before the services themselves, whose
/// checks assume a director).
pub(super) fn no_services(cx: &Ctx<'_>) -> crate::ConfigError {
    cx.err("member", "member mode runs no services of its own")
        .with_hint(Some(
            "a member keeps its share of the VIP's flows for the local stack; remove \
             `services` (or `member`, to run as a director)"
                .into(),
        ))
}

pub(super) fn member(
    cx: &Ctx<'_>,
    raw: RawMember,
    interfaces: &[Interface],
    services: &[Service],
) -> Result<MemberConfig> {
    if !services.is_empty() {
        return Err(no_services(cx));
    }
    let Some(interface) = raw.interface else {
        return Err(cx
            .err("member", "the member section needs `interface`")
            .with_hint(Some(
                "name the interface the VIP's frames arrive on, e.g. interface: eth0".into(),
            )));
    };
    if !interfaces.iter().any(|i| i.name == interface) {
        let names: Vec<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
        return Err(cx
            .err(
                "member.interface",
                format!("'{interface}' is not one of the configured interfaces"),
            )
            .with_hint(Some(format!("one of: {}", names.join(", ")))));
    }
    let Some(vip) = &raw.vip else {
        return Err(cx.err("member", "the member section needs `vip`"));
    };
    let vip = cx.addr("member.vip", vip)?;
    if !vip.is_ipv4() || vip.is_multicast() || vip.is_unspecified() || vip.is_loopback() {
        return Err(cx
            .err("member.vip", format!("{vip} cannot be a member VIP"))
            .with_hint(Some(
                "a unicast IPv4 address (the member filter does not handle IPv6 yet)".into(),
            )));
    }
    let protocol = match &raw.protocol {
        None => Protocol::Tcp,
        Some(t) => cx.name(
            "member.protocol",
            t,
            "member protocol",
            &["tcp", "udp"],
            |s| match s {
                "tcp" => Some(Protocol::Tcp),
                "udp" => Some(Protocol::Udp),
                _ => None,
            },
        )?,
    };
    let mut ports = Vec::new();
    for (i, &p) in raw.ports.iter().flatten().enumerate() {
        let path = format!("member.ports[{i}]");
        let p = cx.range(&path, p, 1, 65535, "port")? as u16;
        if ports.contains(&p) {
            return Err(cx.err(&path, format!("port {p} is listed twice")));
        }
        if ports.len() == MAX_PORTS {
            return Err(cx
                .err(&path, format!("at most {MAX_PORTS} ports can be listed"))
                .with_hint(Some("leave `ports` out to balance every port".into())));
        }
        ports.push(p);
    }
    let mut members = Vec::new();
    let mut seen = HashSet::new();
    for (i, t) in raw.members.iter().flatten().enumerate() {
        let path = format!("member.members[{i}]");
        let a = cx.addr(&path, t)?;
        if a.is_multicast() || a.is_unspecified() || a.is_loopback() || a == vip {
            return Err(cx
                .err(&path, format!("{a} cannot be a member's address"))
                .with_hint(Some(
                    "list each member's own unicast address (not the VIP)".into(),
                )));
        }
        if !seen.insert(a) {
            return Err(cx.err(&path, format!("{a} is listed twice")));
        }
        if members.len() == MAX_MEMBERS {
            return Err(cx.err(&path, format!("at most {MAX_MEMBERS} members")));
        }
        members.push(a);
    }
    if members.is_empty() {
        return Err(cx
            .err("member", "the member section needs `members`")
            .with_hint(Some(
                "list every member's own address, in the same order on every member".into(),
            )));
    }
    let Some(me_text) = &raw.me else {
        return Err(cx
            .err("member", "the member section needs `me`")
            .with_hint(Some("this member's own address, one of `members`".into())));
    };
    let me_addr: IpAddr = cx.addr("member.me", me_text)?;
    let Some(me) = members.iter().position(|&a| a == me_addr) else {
        return Err(cx
            .err("member.me", format!("{me_addr} is not one of `members`"))
            .with_hint(Some(
                "every member lists all members, itself included".into(),
            )));
    };
    let cluster_mac = match &raw.cluster_mac {
        None => {
            let IpAddr::V4(v4) = vip else {
                unreachable!("checked IPv4 above")
            };
            let o = v4.octets();
            [0x03, 0xbf, o[0], o[1], o[2], o[3]]
        }
        Some(t) => {
            let mac = parse_mac(t).ok_or_else(|| {
                cx.err("member.cluster_mac", format!("'{t}' is not a MAC address"))
                    .with_hint(Some("write six hex bytes, e.g. 03:bf:c6:12:c8:01".into()))
            })?;
            if mac[0] & 1 == 0 {
                return Err(cx
                    .err("member.cluster_mac", format!("{t} is not a multicast MAC"))
                    .with_hint(Some(
                        "the first byte must be odd (e.g. 03:bf:…), so that switches flood \
                         the VIP's frames to every member"
                            .into(),
                    )));
            }
            mac
        }
    };
    let hash = match &raw.hash {
        None => MemberHash::FiveTuple,
        Some(t) => cx.name(
            "member.hash",
            t,
            "member hash",
            MemberHash::NAMES,
            MemberHash::from_name,
        )?,
    };
    let table_size = cx.range(
        "member.table_size",
        raw.table_size.unwrap_or(MAX_TABLE),
        members.len() as u64 + 1,
        MAX_TABLE,
        "table size",
    )?;
    if !is_prime(table_size) {
        return Err(cx
            .err("member.table_size", format!("{table_size} is not a prime"))
            .with_hint(Some(
                "Maglev needs a prime table size, e.g. 4093 or 65537".into(),
            )));
    }
    let raw_hc = raw.health_check.unwrap_or_else(|| RawHealthCheck {
        kind: Some("tcp".into()),
        ..RawHealthCheck::default()
    });
    // With no ports listed the check refuses to run without its own `port`.
    let default_port = ports.first().copied().unwrap_or(0);
    let health_check: HealthCheck = health_check(cx, "member.health_check", raw_hc, default_port)?;
    let heartbeat_port = cx.range(
        "member.heartbeat_port",
        raw.heartbeat_port
            .unwrap_or(u64::from(DEFAULT_HEARTBEAT_PORT)),
        1,
        65535,
        "port",
    )? as u16;
    Ok(MemberConfig {
        interface,
        vip,
        protocol,
        ports,
        members,
        me,
        cluster_mac,
        hash,
        table_size: table_size as u32,
        health_check,
        heartbeat_port,
    })
}
