//! Sites of the `geo` scheduler: named client prefix lists, and each real server's site.

use super::{family, Ctx, Result};
use crate::marks::join;
use crate::model::{Scheduler, Site};
use crate::net::IpPrefix;
use crate::raw::RawSite;
use std::collections::HashMap;
use std::net::IpAddr;

/// More sites than this is a mistake, not a topology; real servers store the index as u16.
pub(crate) const MAX_SITES: usize = 1024;

/// The service's `sites:`; present exactly when the scheduler is `geo`.
pub(super) fn sites(
    cx: &Ctx<'_>,
    base: &str,
    raw: Option<Vec<RawSite>>,
    scheduler: Scheduler,
    vip: IpAddr,
) -> Result<Vec<Site>> {
    let sp = join(base, "sites");
    let raw = match (raw, scheduler) {
        (Some(_), s) if s != Scheduler::Geo => {
            return Err(cx
                .err_key(
                    &sp,
                    format!("`sites` applies only to the geo scheduler, not {s}"),
                )
                .with_hint(Some("remove it, or set `scheduler: geo`".into())))
        }
        (Some(list), _) if !list.is_empty() => list,
        _ if scheduler == Scheduler::Geo => {
            return Err(cx
                .err(&join(base, "scheduler"), "the geo scheduler needs `sites`")
                .with_hint(Some(
                    "add `sites: [{ name: <site>, clients: [<prefix>, ...] }]` and a \
                     `site: <name>` to every real server"
                        .into(),
                )))
        }
        _ => return Ok(Vec::new()),
    };
    if raw.len() > MAX_SITES {
        return Err(cx.err(&sp, format!("{} sites is more than {MAX_SITES}", raw.len())));
    }
    let mut out: Vec<Site> = Vec::with_capacity(raw.len());
    let mut names: HashMap<String, String> = HashMap::new();
    let mut owners: HashMap<IpPrefix, (String, String)> = HashMap::new();
    for (k, rs) in raw.into_iter().enumerate() {
        let base_k = format!("{sp}[{k}]");
        let np = join(&base_k, "name");
        let name = match rs.name {
            Some(n) if n.trim().is_empty() => return Err(cx.err(&np, "the site name is empty")),
            Some(n) => n,
            None => return Err(cx.err(&np, "the site has no `name`")),
        };
        if let Some(first) = names.insert(name.clone(), np.clone()) {
            return Err(cx.err(
                &np,
                format!(
                    "site name '{name}' is already used at line {}",
                    cx.line_of(&first)
                ),
            ));
        }
        let mut clients = Vec::new();
        for (c, text) in rs.clients.iter().flatten().enumerate() {
            let cp = format!("{base_k}.clients[{c}]");
            let prefix = cx.prefix(&cp, text)?;
            if prefix.is_ipv4() != vip.is_ipv4() {
                return Err(cx
                    .err(
                        &cp,
                        format!(
                            "client prefix {prefix} is {}, the VIP {vip} is {}",
                            family(prefix.addr()),
                            family(vip)
                        ),
                    )
                    .with_hint(Some(
                        "clients reach a VIP in its own family: this prefix would never match"
                            .into(),
                    )));
            }
            if let Some((site, first)) = owners.get(&prefix) {
                return Err(cx
                    .err(
                        &cp,
                        format!(
                            "client prefix {prefix} is already listed at line {} (site '{site}')",
                            cx.line_of(first)
                        ),
                    )
                    .with_hint(Some(
                        "a prefix belongs to one site; list a longer prefix to carve out part of it"
                            .into(),
                    )));
            }
            owners.insert(prefix, (name.clone(), cp));
            clients.push(prefix);
        }
        out.push(Site { name, clients });
    }
    Ok(out)
}

/// A real server's `site:`: the index of a known site, required with `geo`, refused
/// otherwise.
pub(super) fn real_site(
    cx: &Ctx<'_>,
    rbase: &str,
    raw: Option<&str>,
    scheduler: Scheduler,
    sites: &[Site],
) -> Result<Option<u16>> {
    let p = join(rbase, "site");
    let known = || {
        let names: Vec<&str> = sites.iter().map(|s| s.name.as_str()).collect();
        format!("the service's sites are: {}", names.join(", "))
    };
    match raw {
        Some(_) if scheduler != Scheduler::Geo => Err(cx
            .err_key(
                &p,
                format!("`site` applies only to the geo scheduler, not {scheduler}"),
            )
            .with_hint(Some("remove it, or set `scheduler: geo`".into()))),
        None if scheduler == Scheduler::Geo => Err(cx
            .err_at(
                &join(rbase, "address"),
                &p,
                "the geo scheduler needs every real server to name its `site`",
            )
            .with_hint(Some(format!("add `site: <name>`; {}", known())))),
        None => Ok(None),
        Some(name) => match sites.iter().position(|s| s.name == name) {
            Some(i) => Ok(Some(i as u16)),
            None => Err(cx
                .err(&p, format!("unknown site '{name}'"))
                .with_hint(Some(known()))),
        },
    }
}
