//! The `sync:` section: connection synchronisation between nodes (IPVS's sync daemon).

use std::net::{IpAddr, Ipv4Addr};

use super::{Ctx, Result};
use crate::model::{Interface, SyncConfig, SyncMode};
use crate::raw::RawSync;

/// IPVS's multicast group for sync messages.
const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// Shortest shared key: 16 bytes (128 bits) of an HMAC-SHA256 key.
const MIN_KEY_LEN: usize = 16;

pub(super) fn sync(cx: &Ctx<'_>, raw: RawSync, interfaces: &[Interface]) -> Result<SyncConfig> {
    let Some(mode) = &raw.mode else {
        return Err(cx
            .err("sync", "the sync section needs `mode`")
            .with_hint(Some("mode: master (send), backup (receive) or both".into())));
    };
    let mode = cx.name(
        "sync.mode",
        mode,
        "sync mode",
        SyncMode::NAMES,
        SyncMode::from_name,
    )?;
    let Some(interface) = raw.interface else {
        return Err(cx
            .err("sync", "the sync section needs `interface`")
            .with_hint(Some(
                "name the interface the nodes share, e.g. interface: uvs-lb1".into(),
            )));
    };
    if !interfaces.iter().any(|i| i.name == interface) {
        let names: Vec<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
        return Err(cx
            .err(
                "sync.interface",
                format!("'{interface}' is not one of the configured interfaces"),
            )
            .with_hint(Some(format!("one of: {}", names.join(", ")))));
    }
    let syncid = cx.range("sync.syncid", raw.syncid.unwrap_or(0), 0, 255, "sync id")? as u8;
    let group = match &raw.group {
        None => IpAddr::V4(DEFAULT_GROUP),
        Some(t) => {
            let g = cx.addr("sync.group", t)?;
            if !g.is_multicast() {
                return Err(cx
                    .err("sync.group", format!("{g} is not a multicast address"))
                    .with_hint(Some(
                        "IPVS's group is 224.0.0.81; for unicast list `peers`".into(),
                    )));
            }
            g
        }
    };
    let port = cx.range("sync.port", raw.port.unwrap_or(8848), 1, 65535, "port")? as u16;
    let ttl = cx.range("sync.ttl", raw.ttl.unwrap_or(1), 1, 255, "ttl")? as u8;
    let maxlen = match raw.maxlen {
        None => None,
        Some(m) => Some(cx.range("sync.maxlen", m, 128, 65507, "message length")? as u16),
    };
    let mut peers = Vec::new();
    for (i, t) in raw.peers.unwrap_or_default().iter().enumerate() {
        let path = format!("sync.peers[{i}]");
        let a = cx.addr(&path, t)?;
        if a.is_multicast() || a.is_unspecified() || a.is_loopback() {
            return Err(cx
                .err(&path, format!("{a} cannot be a sync peer"))
                .with_hint(Some(
                    "list the peers' unicast addresses on the sync interface".into(),
                )));
        }
        peers.push(a);
    }
    if let Some(k) = &raw.auth_key {
        if k.len() < MIN_KEY_LEN {
            return Err(cx
                .err(
                    "sync.auth_key",
                    format!("the key has {} bytes, fewer than {MIN_KEY_LEN}", k.len()),
                )
                .with_hint(Some("use e.g. `openssl rand -hex 32`".into())));
        }
    }
    let refresh_period = cx.range(
        "sync.refresh_period",
        raw.refresh_period.unwrap_or(30),
        0,
        86400,
        "refresh period",
    )? as u32;
    let max_rate = cx.range(
        "sync.max_rate",
        raw.max_rate.unwrap_or(100_000),
        1,
        10_000_000,
        "rate",
    )? as u32;
    Ok(SyncConfig {
        mode,
        interface,
        syncid,
        group,
        port,
        ttl,
        maxlen,
        peers,
        auth_key: raw.auth_key,
        refresh_period,
        max_rate,
    })
}
