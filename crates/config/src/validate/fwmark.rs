//! Firewall marks: what each mark matches, and the firewall-mark services that use them.

use super::{Ctx, Result};
use crate::marks::join;
use crate::model::{Mark, PortRange, Protocol, ServiceKey};
use crate::raw::{RawMark, RawPorts};
use std::collections::HashMap;

/// Port ranges one mark may list: the XDP program checks a destination's ranges in a bounded
/// loop of this many (crates/xsk/bpf/uvs_xdp.c `MARK_RANGES`).
pub const MAX_MARK_PORT_RANGES: usize = 8;
/// Destination prefixes one mark may list (each is an entry of the XDP program's prefix map).
pub(crate) const MAX_MARK_DESTINATIONS: usize = 1024;

pub(super) fn marks(cx: &Ctx<'_>, raw: Vec<RawMark>) -> Result<Vec<Mark>> {
    let mut out: Vec<Mark> = Vec::with_capacity(raw.len());
    let mut numbers: HashMap<u32, String> = HashMap::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for (i, r) in raw.into_iter().enumerate() {
        let base = format!("marks[{i}]");
        let m = mark(cx, &base, r)?;
        let mp = join(&base, "mark");
        if let Some(first) = numbers.insert(m.mark, mp.clone()) {
            return Err(cx
                .err(
                    &mp,
                    format!(
                        "mark {} is already defined at line {}",
                        m.mark,
                        cx.line_of(&first)
                    ),
                )
                .with_hint(Some(
                    "a mark is one match: list all its destinations, protocols and ports in \
                     one entry"
                        .into(),
                )));
        }
        let np = join(&base, "name");
        if let Some(first) = names.insert(m.name.clone(), np.clone()) {
            return Err(cx.err(
                &np,
                format!(
                    "mark name '{}' is already used at line {}",
                    m.name,
                    cx.line_of(&first)
                ),
            ));
        }
        out.push(m);
    }
    Ok(out)
}

fn mark(cx: &Ctx<'_>, base: &str, r: RawMark) -> Result<Mark> {
    let p = |f: &str| join(base, f);
    let number = match r.mark {
        Some(n) => cx
            .range(&p("mark"), n, 1, u64::from(u32::MAX), "mark")
            .map_err(|e| {
                e.with_hint(Some(
                    "a firewall mark is an integer greater than zero, as ipvsadm -f".into(),
                ))
            })? as u32,
        None => {
            return Err(cx
                .err(&p("mark"), "the mark has no `mark` number")
                .with_hint(Some(
                    "add `mark: 1`: the number services name with `fwmark: 1` (ipvsadm -f 1)"
                        .into(),
                )))
        }
    };
    let name = match r.name {
        Some(n) if n.trim().is_empty() => return Err(cx.err(&p("name"), "the mark name is empty")),
        Some(n) => n,
        None => format!("fwmark {number}"),
    };
    let raw_dest = r.destinations.unwrap_or_default();
    if raw_dest.is_empty() {
        return Err(cx
            .err(&p("destinations"), "the mark has no `destinations`")
            .with_hint(Some(
                "list the destination prefixes it matches: `destinations: [198.18.200.0/24]`"
                    .into(),
            )));
    }
    if raw_dest.len() > MAX_MARK_DESTINATIONS {
        return Err(cx.err(
            &format!("{base}.destinations[{MAX_MARK_DESTINATIONS}]"),
            format!("more than {MAX_MARK_DESTINATIONS} destinations in one mark"),
        ));
    }
    let mut destinations = Vec::with_capacity(raw_dest.len());
    for (j, t) in raw_dest.iter().enumerate() {
        let dp = format!("{base}.destinations[{j}]");
        let prefix = cx.prefix(&dp, t)?;
        if destinations.contains(&prefix) {
            return Err(cx.err(&dp, format!("{prefix} is listed twice")));
        }
        destinations.push(prefix);
    }
    let protocols = match r.protocols {
        None => Protocol::ALL.to_vec(),
        Some(list) if list.is_empty() => {
            return Err(cx
                .err(
                    &p("protocols"),
                    "`protocols` is empty: the mark would match nothing",
                )
                .with_hint(Some("omit it to match tcp, udp and sctp".into())))
        }
        Some(list) => {
            let mut out = Vec::new();
            for (j, t) in list.iter().enumerate() {
                let pp = format!("{base}.protocols[{j}]");
                let proto = cx.name(&pp, t, "protocol", Protocol::NAMES, Protocol::from_name)?;
                if out.contains(&proto) {
                    return Err(cx.err(&pp, format!("{proto} is listed twice")));
                }
                out.push(proto);
            }
            out.sort();
            out
        }
    };
    let mut ports: Vec<PortRange> = Vec::new();
    for (j, raw) in r.ports.iter().flatten().enumerate() {
        let pp = format!("{base}.ports[{j}]");
        if j == MAX_MARK_PORT_RANGES {
            return Err(cx
                .err(
                    &pp,
                    format!("more than {MAX_MARK_PORT_RANGES} port ranges in one mark"),
                )
                .with_hint(Some(
                    "join neighbouring ports into ranges (\"8000-8099\"), or split the mark".into(),
                )));
        }
        let range = port_range(cx, &pp, raw)?;
        if let Some(k) = ports
            .iter()
            .position(|o| o.first <= range.last && range.first <= o.last)
        {
            return Err(cx.err(
                &pp,
                format!("ports {range} overlap ports {} listed before", ports[k]),
            ));
        }
        ports.push(range);
    }
    ports.sort();
    Ok(Mark {
        mark: number,
        name,
        destinations,
        protocols,
        ports,
    })
}

fn port_range(cx: &Ctx<'_>, path: &str, raw: &RawPorts) -> Result<PortRange> {
    let bad = |text: &str| {
        cx.err(path, format!("'{text}' is not a port or a range of ports"))
            .with_hint(Some("write 80 or \"8000-8099\"".into()))
    };
    let (first, last) = match raw {
        RawPorts::One(n) => (*n, *n),
        RawPorts::Text(t) => match t.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<u64>().map_err(|_| bad(t))?,
                b.trim().parse::<u64>().map_err(|_| bad(t))?,
            ),
            None => {
                let n = t.trim().parse::<u64>().map_err(|_| bad(t))?;
                (n, n)
            }
        },
    };
    let first = cx.range(path, first, 1, 65535, "port")? as u16;
    let last = cx.range(path, last, 1, 65535, "port")? as u16;
    if first > last {
        return Err(cx
            .err(path, format!("the range {first}-{last} is empty"))
            .with_hint(Some(format!("write {last}-{first}"))));
    }
    Ok(PortRange { first, last })
}

/// The firewall-mark service's key, checked against the marks: the mark must exist and match
/// destinations of the service's family.
pub(super) fn service_key(
    cx: &Ctx<'_>,
    base: &str,
    fwmark: u64,
    family: Option<&str>,
    marks: &[Mark],
) -> Result<ServiceKey> {
    let fp = join(base, "fwmark");
    let number = cx
        .range(&fp, fwmark, 1, u64::from(u32::MAX), "fwmark")
        .map_err(|e| {
            e.with_hint(Some(
                "a firewall mark is an integer greater than zero, as ipvsadm -f".into(),
            ))
        })? as u32;
    let ipv6 = match family {
        None | Some("ipv4") => false,
        Some("ipv6") => true,
        Some(other) => {
            return Err(cx
                .err(&join(base, "family"), format!("unknown family '{other}'"))
                .with_hint(Some("ipv4 (the default) or ipv6 (ipvsadm -f N -6)".into())))
        }
    };
    let Some(mark) = marks.iter().find(|m| m.mark == number) else {
        let known: Vec<String> = marks.iter().map(|m| m.mark.to_string()).collect();
        return Err(cx
            .err(&fp, format!("no mark {number} in `marks`"))
            .with_hint(Some(if known.is_empty() {
                format!("define it: `marks: [{{ mark: {number}, destinations: [<prefix>] }}]`")
            } else {
                format!("the marks defined are {}", known.join(", "))
            })));
    };
    if !mark.destinations.iter().any(|d| d.is_ipv4() != ipv6) {
        let fam = if ipv6 { "IPv6" } else { "IPv4" };
        return Err(cx
            .err(
                &fp,
                format!(
                    "mark {number} ('{}') has no {fam} destination, so this {fam} service \
                     would get no traffic",
                    mark.name
                ),
            )
            .with_hint(Some(if ipv6 {
                "add an IPv6 prefix to the mark's destinations, or drop `family: ipv6`".into()
            } else {
                "add an IPv4 prefix to the mark's destinations, or set `family: ipv6`".into()
            })));
    }
    Ok(ServiceKey::mark(number, ipv6))
}
