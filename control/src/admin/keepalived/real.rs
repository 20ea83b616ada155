//! `real_server` blocks: address, port, weight, thresholds, per-server forwarding, and the
//! one checker uvs can run for them, which must be the same for every real server.

use super::check::{self, Check, Inherited, Target};
use super::lex::{Pos, Stmt};
use super::values::{addr, bool_arg, forwarding, one_arg, port, uint, Cx, Once, Result, TunOpts};
use std::net::IpAddr;
use uvs_config::Forwarding;

/// A translated real server.
#[derive(Clone, Debug)]
pub struct Real {
    pub pos: Pos,
    pub address: IpAddr,
    pub port: Option<(u16, Pos)>,
    pub weight: Option<(u64, Pos)>,
    /// Only when it differs from the service's.
    pub forwarding: Option<(Forwarding, Pos)>,
    pub upper: Option<(u64, Pos)>,
    pub lower: Option<(u64, Pos)>,
    /// TUN's options from its own `lvs_method`, else the virtual server's.
    pub tunnel: Option<TunOpts>,
}

/// One `real_server` and its checker, if it has one.
pub fn real_server(
    cx: &mut Cx<'_>,
    stmt: &Stmt,
    vs: &Inherited,
    service_fwd: Forwarding,
    vport: u16,
) -> Result<(Real, Option<Check>)> {
    let args = stmt.args();
    let Some(aw) = args.first() else {
        return cx.err(stmt.pos(), "real_server needs an address [and port]");
    };
    let address = addr(cx, aw)?;
    let rport = match args.get(1) {
        Some(w) => Some((port(cx, w)?, w.pos)),
        None => None,
    };
    if let Some(extra) = args.get(2) {
        return cx.err(extra.pos, "real_server takes an address and a port only");
    }
    let mut real = Real {
        pos: stmt.pos(),
        address,
        port: rport,
        weight: None,
        forwarding: None,
        upper: None,
        lower: None,
        tunnel: None,
    };
    let mut inherited = vs.clone();
    let mut once = Once::new("real_server");
    let mut checker: Option<&Stmt> = None;
    for st in stmt.block.iter().flatten() {
        let k = st.keyword();
        if check::is_checker(k) {
            if let Some(first) = checker {
                return cx.err(
                    st.pos(),
                    format!(
                        "a second checker (the first is {} at line {}): uvs runs one health \
                         check per service; keep one",
                        first.keyword(),
                        first.pos().line
                    ),
                );
            }
            checker = Some(st);
            continue;
        }
        once.check(cx, st)?;
        if st.block.is_some() {
            return cx.err(st.pos(), format!("{k} does not take a block"));
        }
        match k {
            "weight" => {
                let w = one_arg(cx, st, "WEIGHT")?;
                real.weight = Some((uint(cx, w, 0, u64::from(u32::MAX), "weight")?, w.pos));
            }
            "lvs_method" => {
                let (f, tun) = forwarding(cx, st)?;
                if f != service_fwd {
                    real.forwarding = Some((f, st.pos()));
                }
                real.tunnel = tun;
            }
            "uthreshold" => {
                let w = one_arg(cx, st, "CONNECTIONS")?;
                real.upper = Some((uint(cx, w, 0, u64::from(u32::MAX), "uthreshold")?, w.pos));
            }
            "lthreshold" => {
                let w = one_arg(cx, st, "CONNECTIONS")?;
                real.lower = Some((uint(cx, w, 0, u64::from(u32::MAX), "lthreshold")?, w.pos));
            }
            "inhibit_on_failure" => {
                bool_arg(cx, st)?;
                cx.note(
                    st.pos(),
                    "inhibit_on_failure needs no translation: a real server uvs finds down \
                     keeps its connections and gets no new ones",
                );
            }
            "notify_up" | "notify_down" => {
                return cx.err(
                    st.pos(),
                    format!(
                        "{k} cannot be translated: uvs runs no notify scripts (watch \
                         uvs_real_up in the metrics, or uvsadm -L, instead)"
                    ),
                )
            }
            "smtp_alert" => {
                if bool_arg(cx, st)? {
                    return cx.err(
                        st.pos(),
                        "smtp_alert cannot be translated: uvs sends no mail (health changes \
                         show in uvsadm -L and the metrics); remove it or write smtp_alert off",
                    );
                }
            }
            "snmp_name" => {
                one_arg(cx, st, "NAME")?;
                cx.note(
                    st.pos(),
                    "snmp_name of a real server is not translated (uvs has no SNMP)",
                );
            }
            _ => {
                if !inherited.keyword(cx, st)? {
                    return cx.err(st.pos(), format!("unknown keyword '{k}' in real_server"));
                }
            }
        }
    }
    let check = match checker {
        None => None,
        Some(st) => {
            let target = Target {
                address,
                address_text: &aw.text,
                port: rport.map_or(vport, |(p, _)| p),
            };
            Some(check::checker(cx, st, &inherited, &target)?)
        }
    };
    Ok((real, check))
}

/// The one check a uvs service runs: every real server's, which must all be equal.
pub fn one_check(cx: &Cx<'_>, checks: &[(Option<Check>, Pos, IpAddr)]) -> Result<Option<Check>> {
    let with = checks
        .iter()
        .find_map(|(c, _, a)| c.as_ref().map(|c| (c, *a)));
    let Some((first, first_addr)) = with else {
        return Ok(None);
    };
    for (c, pos, address) in checks {
        match c {
            None => {
                return cx.err(
                    *pos,
                    format!(
                        "real_server {address} has no checker, but real_server {first_addr} \
                         has one (line {}): uvs checks every real server of a service the same \
                         way; give them all the same checker, or none",
                        first.pos.line
                    ),
                )
            }
            Some(c) => {
                if let Some(d) = c.difference(first) {
                    return cx.err(
                        c.pos,
                        format!(
                            "this checker differs from real_server {first_addr}'s (line {}): \
                             {d}. uvs runs one check per service, the same for every real \
                             server",
                            first.pos.line
                        ),
                    );
                }
            }
        }
    }
    Ok(Some(first.clone()))
}
