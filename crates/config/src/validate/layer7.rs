//! `layer: 7` services: pools of the service's real servers and the content rules that
//! choose among them (the dataplane's `synproxy::layer7`).

use super::health::health_check;
use super::{Ctx, Result};
use crate::marks::join;
use crate::model::{HealthCheckKind, Layer7, Match, Pool, RealServer, Rule, Scheduler};
use crate::raw::{RawNameValue, RawPool, RawRule};
use std::collections::HashMap;
use std::net::IpAddr;

/// What a `layer: 7` service adds, as written.
pub(super) struct RawLayer7 {
    pub layer: Option<u64>,
    pub pools: Option<Vec<RawPool>>,
    pub rules: Option<Vec<RawRule>>,
    pub default_pool: Option<String>,
    pub head_limit: Option<u64>,
    pub head_timeout: Option<u64>,
}

/// `head_limit` bounds: a request line and a Host header at least; at most what a worker
/// keeps per client (64 KiB).
const HEAD_LIMIT: (u64, u64) = (256, 65536);
/// `head_timeout` bounds, in seconds.
const HEAD_TIMEOUT: (u64, u64) = (1, 3600);

/// Schedulers a pool may use: those that need nothing beyond weights and live counters
/// (geo needs sites, the feedback ones probes of their own, the hashing ones their flags).
const POOL_SCHEDULERS: [Scheduler; 6] = [
    Scheduler::RoundRobin,
    Scheduler::WeightedRoundRobin,
    Scheduler::LeastConnection,
    Scheduler::WeightedLeastConnection,
    Scheduler::ShortestExpectedDelay,
    Scheduler::NeverQueue,
];

/// `Some` for a `layer: 7` service, `None` for layer 4 (the default).
pub(super) fn layer7(
    cx: &Ctx<'_>,
    base: &str,
    raw: RawLayer7,
    reals: &[RealServer],
    port: u16,
    // The service's scheduler, and whether the YAML names it: its pools' default.
    (service_scheduler, named): (Scheduler, bool),
) -> Result<Option<Layer7>> {
    let p = |f: &str| join(base, f);
    match raw.layer {
        None | Some(4) => {
            for (field, there) in [
                ("pools", raw.pools.is_some()),
                ("rules", raw.rules.is_some()),
                ("default_pool", raw.default_pool.is_some()),
                ("head_limit", raw.head_limit.is_some()),
                ("head_timeout", raw.head_timeout.is_some()),
            ] {
                if there {
                    return Err(cx
                        .err_key(
                            &p(field),
                            format!("`{field}` applies only to a layer 7 service"),
                        )
                        .with_hint(Some("add `layer: 7`, or remove the field".into())));
                }
            }
            return Ok(None);
        }
        Some(7) => {}
        Some(other) => {
            return Err(cx
                .err(&p("layer"), format!("layer {other} is not 4 or 7"))
                .with_hint(Some(
                    "`layer: 4` (the default) schedules by addresses, `layer: 7` by the first \
                     request's content"
                        .into(),
                )))
        }
    }
    // The service's scheduler schedules the pools that name none (ipvsadm's `-s`, which
    // `uvsadm -L` shows): one they cannot use is refused rather than ignored.
    if named && !POOL_SCHEDULERS.contains(&service_scheduler) {
        return Err(cx
            .err(
                &p("scheduler"),
                format!("scheduler {service_scheduler} cannot schedule a layer 7 service's pools"),
            )
            .with_hint(Some(
                "a layer 7 service's scheduler is its pools' default: use rr, wrr, lc, wlc, sed \
                 or nq, or remove it and give each pool its own"
                    .into(),
            )));
    }
    let raw_pools = raw.pools.unwrap_or_default();
    if raw_pools.is_empty() {
        return Err(cx
            .err_key(&p("pools"), "a layer 7 service needs `pools`")
            .with_hint(Some(
                "add `pools: [{ name: web, real_servers: [<address>, ...] }]`".into(),
            )));
    }
    let mut pools: Vec<Pool> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for (j, rp) in raw_pools.into_iter().enumerate() {
        let pp = format!("{base}.pools[{j}]");
        let name = match rp.name {
            Some(n) if !n.trim().is_empty() => n,
            _ => return Err(cx.err(&join(&pp, "name"), "the pool has no `name`")),
        };
        if by_name.insert(name.clone(), j).is_some() {
            return Err(cx.err(
                &join(&pp, "name"),
                format!("pool name '{name}' is used twice"),
            ));
        }
        let scheduler = match &rp.scheduler {
            Some(t) => {
                let sp = join(&pp, "scheduler");
                let s = cx.name(&sp, t, "scheduler", Scheduler::NAMES, Scheduler::from_name)?;
                if !POOL_SCHEDULERS.contains(&s) {
                    return Err(cx
                        .err(&sp, format!("scheduler {s} cannot schedule a pool"))
                        .with_hint(Some("use rr, wrr, lc, wlc, sed or nq".into())));
                }
                s
            }
            None => service_scheduler,
        };
        let list = rp.real_servers.unwrap_or_default();
        if list.is_empty() {
            return Err(cx
                .err_key(
                    &join(&pp, "real_servers"),
                    format!("pool '{name}' has no real servers"),
                )
                .with_hint(Some("list addresses of the service's real servers".into())));
        }
        let mut members: Vec<IpAddr> = Vec::new();
        for (k, t) in list.iter().enumerate() {
            let ap = format!("{pp}.real_servers[{k}]");
            let ip = cx.addr(&ap, t)?;
            if !reals.iter().any(|r| r.address == ip) {
                return Err(cx
                    .err(&ap, format!("{ip} is not a real server of this service"))
                    .with_hint(Some(
                        "a pool names real servers listed under the service's `real_servers` \
                         (their weights are the service's)"
                            .into(),
                    )));
            }
            if members.contains(&ip) {
                return Err(cx.err(&ap, format!("{ip} is listed twice")));
            }
            members.push(ip);
        }
        let check = match rp.health_check {
            Some(h) => {
                let hp = join(&pp, "health_check");
                let check = health_check(cx, &hp, h, port)?;
                if matches!(check.kind, HealthCheckKind::Agent { .. }) {
                    // An agent's weight and drain are the server's, not one pool's.
                    return Err(cx
                        .err(&join(&hp, "type"), "a pool cannot have an agent check")
                        .with_hint(Some(
                            "an agent sets the server's weight for every pool: put the agent \
                             check on the service's `health_check`"
                                .into(),
                        )));
                }
                Some(check)
            }
            None => None,
        };
        pools.push(Pool {
            name,
            scheduler,
            members,
            health_check: check,
        });
    }
    let pool_of = |path: &str, text: Option<&String>, what: &str| -> Result<usize> {
        let Some(t) = text else {
            return Err(cx
                .err_key(path, format!("{what} names no pool"))
                .with_hint(Some(format!(
                    "add `{}: <one of: {}>`",
                    path.rsplit('.').next().unwrap_or("pool"),
                    pools
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))));
        };
        by_name.get(t).copied().ok_or_else(|| {
            cx.err(path, format!("no pool named '{t}'"))
                .with_hint(Some(format!(
                    "pools: {}",
                    pools
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
        })
    };
    let mut rules: Vec<Rule> = Vec::new();
    for (j, rr) in raw.rules.unwrap_or_default().into_iter().enumerate() {
        let rp = format!("{base}.rules[{j}]");
        let pool = pool_of(&join(&rp, "pool"), rr.pool.as_ref(), "the rule")?;
        let (first_key, matches) = conditions(cx, &rp, rr)?;
        // The first rule whose conditions all hold wins, so a later one with the same
        // conditions would never be used.
        if let Some(k) = rules.iter().position(|r| r.matches == matches) {
            return Err(cx
                .err_key(
                    &join(&rp, first_key),
                    format!("rules[{k}] has the same conditions: this rule never matches"),
                )
                .with_hint(Some(
                    "remove one of the two, or make the conditions differ".into(),
                )));
        }
        rules.push(Rule { matches, pool });
    }
    let default_pool = match raw.default_pool {
        Some(_) => pool_of(&p("default_pool"), raw.default_pool.as_ref(), "the service")?,
        // Missing: point at `layer: 7`, which asks for it.
        None => {
            return Err(cx
                .err_at(
                    &p("layer"),
                    &p("default_pool"),
                    "the service names no default pool",
                )
                .with_hint(Some(format!(
                    "add `default_pool: <one of: {}>` (requests no rule matches go there)",
                    pools
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))))
        }
    };
    let head_limit = match raw.head_limit {
        None => u64::from(crate::model::DEFAULT_HEAD_LIMIT),
        Some(n) if (HEAD_LIMIT.0..=HEAD_LIMIT.1).contains(&n) => n,
        Some(n) => {
            return Err(cx
                .err(&p("head_limit"), format!("head_limit {n} is out of range"))
                .with_hint(Some(format!(
                    "bytes, {} to {} (default {})",
                    HEAD_LIMIT.0,
                    HEAD_LIMIT.1,
                    crate::model::DEFAULT_HEAD_LIMIT
                ))))
        }
    };
    let head_timeout = match raw.head_timeout {
        None => u64::from(crate::model::DEFAULT_HEAD_TIMEOUT),
        Some(n) if (HEAD_TIMEOUT.0..=HEAD_TIMEOUT.1).contains(&n) => n,
        Some(n) => {
            return Err(cx
                .err(
                    &p("head_timeout"),
                    format!("head_timeout {n} is out of range"),
                )
                .with_hint(Some(format!(
                    "seconds, {} to {} (default {}, as HAProxy's `timeout http-request` \
                     example)",
                    HEAD_TIMEOUT.0,
                    HEAD_TIMEOUT.1,
                    crate::model::DEFAULT_HEAD_TIMEOUT
                ))))
        }
    };
    Ok(Some(Layer7 {
        pools,
        rules,
        default_pool,
        head_limit: head_limit as u32,
        head_timeout: head_timeout as u32,
    }))
}

/// The conditions of a rule (all must hold), in a fixed order, with the key of the first.
fn conditions(cx: &Ctx<'_>, rp: &str, rr: RawRule) -> Result<(&'static str, Vec<Match>)> {
    let mut found: Vec<(&'static str, Match)> = Vec::new();
    if let Some(h) = rr.host {
        found.push((
            "host",
            Match::Host(host_pattern(cx, &join(rp, "host"), &h)?),
        ));
    }
    if let Some(path) = rr.path_prefix {
        if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(cx
                .err(&join(rp, "path_prefix"), format!("'{path}' is not a path"))
                .with_hint(Some(
                    "a path prefix starts with `/` and has no spaces".into(),
                )));
        }
        found.push(("path_prefix", Match::PathPrefix(path)));
    }
    if let Some(nv) = rr.header {
        let (name, value) = name_value(cx, &join(rp, "header"), nv)?;
        found.push((
            "header",
            Match::Header {
                name: name.to_ascii_lowercase(),
                value,
            },
        ));
    }
    if let Some(nv) = rr.cookie {
        let (name, value) = name_value(cx, &join(rp, "cookie"), nv)?;
        found.push(("cookie", Match::Cookie { name, value }));
    }
    if let Some(h) = rr.sni {
        found.push(("sni", Match::Sni(host_pattern(cx, &join(rp, "sni"), &h)?)));
    }
    let Some(&(first, _)) = found.first() else {
        return Err(cx.err_key(rp, "the rule matches nothing").with_hint(Some(
            "give it one or more of `host`, `path_prefix`, `header`, `cookie` (all must \
             hold), or `sni`"
                .into(),
        )));
    };
    // The SNI is read from a TLS ClientHello, the others from an HTTP request head: a
    // first request is one or the other, so a rule with both could never match.
    if found.len() > 1 && found.iter().any(|(k, _)| *k == "sni") {
        return Err(cx
            .err_key(
                &join(rp, "sni"),
                format!("`sni` (TLS) cannot be combined with `{first}` (HTTP)"),
            )
            .with_hint(Some(
                "a connection starts with a TLS ClientHello or an HTTP request, never both: \
                 split it into two rules"
                    .into(),
            )));
    }
    Ok((first, found.into_iter().map(|(_, m)| m).collect()))
}

/// A host name, or `*.suffix`; lowercase (DNS names compare case-insensitively, RFC 4343).
fn host_pattern(cx: &Ctx<'_>, path: &str, text: &str) -> Result<String> {
    let name = text.strip_prefix("*.").unwrap_or(text);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !ok {
        return Err(cx
            .err(path, format!("'{text}' is not a host name or `*.suffix`"))
            .with_hint(Some(
                "write `www.example.org` or `*.example.org` (no port, no scheme)".into(),
            )));
    }
    Ok(text.to_ascii_lowercase())
}

fn name_value(cx: &Ctx<'_>, path: &str, nv: RawNameValue) -> Result<(String, String)> {
    let name = match nv.name {
        Some(n)
            if !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)) =>
        {
            n
        }
        Some(n) => {
            return Err(cx
                .err(
                    &join(path, "name"),
                    format!("'{n}' is not a token (RFC 9110 §5.6.2)"),
                )
                .with_hint(Some("letters, digits and !#$%&'*+-.^_`|~ only".into())))
        }
        None => return Err(cx.err_key(path, "`name` is missing")),
    };
    let Some(value) = nv.value else {
        return Err(cx
            .err_key(path, "`value` is missing")
            .with_hint(Some("the rule matches this exact value".into())));
    };
    Ok((name, value))
}
