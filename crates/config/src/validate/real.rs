//! Real servers: addresses, ports, forwarding, weights and thresholds.

use super::service::no_route;
use super::site::real_site;
use super::{family, Ctx, Links, Result, Role};
use crate::marks::join;
use crate::model::{
    Forwarding, Protocol, RealServer, Scheduler, ServiceKey, Site, TunCsum, Tunnel,
};
use crate::raw::RawRealServer;
use std::collections::HashMap;
use std::net::SocketAddr;

/// Real servers per service: the dataplane sizes each service's live-counter array once.
pub(crate) const MAX_REALS: usize = 1024;

pub(super) fn reals(
    cx: &Ctx<'_>,
    base: &str,
    raw: Vec<RawRealServer>,
    svc: ServiceKey,
    default_fwd: Forwarding,
    links: &Links,
    (scheduler, sites): (Scheduler, &[Site]),
) -> Result<Vec<RealServer>> {
    if raw.len() > MAX_REALS {
        return Err(cx
            .err(
                &format!("{base}.real_servers[{MAX_REALS}]"),
                format!("more than {MAX_REALS} real servers in one service"),
            )
            .with_hint(Some(format!(
                "uvs keeps live counters for at most {MAX_REALS} real servers per service"
            ))));
    }
    let mut out: Vec<RealServer> = Vec::with_capacity(raw.len());
    let mut seen: HashMap<SocketAddr, String> = HashMap::new();
    for (j, r) in raw.into_iter().enumerate() {
        let rbase = format!("{base}.real_servers[{j}]");
        let p = |f: &str| join(&rbase, f);
        let address = match &r.address {
            Some(t) => cx.addr(&p("address"), t)?,
            None => return Err(cx.err(&p("address"), "the real server has no `address`")),
        };
        let forwarding = match &r.forwarding {
            Some(t) => cx.name(
                &p("forwarding"),
                t,
                "forwarding method",
                Forwarding::NAMES,
                Forwarding::from_name,
            )?,
            None => default_fwd,
        };
        // IPVS allows mixed families only for tunnelling (IPv4-in-IPv6 and IPv6-in-IPv4).
        // uvs adds NAT64 (DPVS's): fullnat from an IPv6 VIP to an IPv4 real server, TCP and
        // UDP, headers translated as RFC 7915 says.
        let nat64 = forwarding == Forwarding::FullNat
            && svc.vip.is_ipv6()
            && address.is_ipv4()
            && !svc.is_fwmark();
        if nat64 && !matches!(svc.protocol, Protocol::Tcp | Protocol::Udp) {
            return Err(cx
                .err(
                    &p("address"),
                    format!(
                        "real server {address} is IPv4 behind the IPv6 VIP {} (NAT64), \
                         but the service is {}",
                        svc.vip, svc.protocol
                    ),
                )
                .with_hint(Some("NAT64 translates tcp and udp only".into())));
        }
        if address.is_ipv4() != svc.vip.is_ipv4() && forwarding != Forwarding::Tun && !nat64 {
            let message = if svc.is_fwmark() {
                format!(
                    "real server {address} is {}, the firewall-mark service is {}",
                    family(address),
                    family(svc.vip)
                )
            } else {
                format!(
                    "real server {address} is {}, the VIP {} is {}",
                    family(address),
                    svc.vip,
                    family(svc.vip)
                )
            };
            let hint = if forwarding == Forwarding::FullNat && !svc.is_fwmark() {
                "fullnat translates only from an IPv6 VIP to IPv4 real servers (NAT64), \
                 not the other way"
                    .to_string()
            } else {
                format!(
                    "{forwarding} cannot translate between families; only tun can carry one \
                     inside the other, and fullnat serves an IPv6 VIP from IPv4 servers (NAT64)"
                )
            };
            return Err(cx.err(&p("address"), message).with_hint(Some(hint)));
        }
        if address == svc.vip {
            return Err(cx.err(
                &p("address"),
                format!("real server {address} is the VIP itself"),
            ));
        }
        cx.check_address(links, &p("address"), Role::Real, address)?;
        let port = match r.port {
            Some(v) => cx.port(&p("port"), v)?,
            None => svc.port,
        };
        // A firewall-mark service's packets keep their port unless a NAT server maps them
        // all to one (IPVS's dest->port).
        if svc.is_fwmark() && port != 0 && matches!(forwarding, Forwarding::Dr | Forwarding::Tun) {
            return Err(cx
                .err(
                    &p("port"),
                    format!("{forwarding} forwarding cannot change the port (to {port})"),
                )
                .with_hint(Some(
                    "a firewall-mark service's packets keep their own port: omit `port`, or \
                     use nat to send them all to one port"
                        .into(),
                )));
        }
        if svc.port == 0 && port != 0 && !svc.is_fwmark() {
            return Err(cx
                .err(
                    &p("port"),
                    format!("real server port {port} on a port-0 service"),
                )
                .with_hint(Some(
                    "a port-0 service keeps each packet's port: omit `port` or set 0".into(),
                )));
        }
        if matches!(forwarding, Forwarding::Dr | Forwarding::Tun) && port != svc.port {
            return Err(cx
                .err(
                    &p("port"),
                    format!(
                        "{forwarding} forwarding cannot change the port ({} → {port})",
                        svc.port
                    ),
                )
                .with_hint(Some(
                    "omit `port`, or use nat or fullnat to map ports".into(),
                )));
        }
        if svc.port != 0 && port == 0 {
            return Err(cx
                .err(&p("port"), "real server port 0 on a service with a port")
                .with_hint(Some("omit `port` to use the service port".into())));
        }
        if forwarding == Forwarding::Dr && !links.on_link(address) {
            let message =
                format!("dr real server {address} is not inside any interface's networks");
            let hint = "direct routing rewrites only the MAC address, so the server must be on \
                        a directly attached network: add it to `networks`, or use tun";
            return Err(cx.err(&p("address"), message).with_hint(Some(hint.into())));
        }
        if !links.routed(address) {
            return Err(no_route(cx, &p("address"), "real server", address));
        }
        super::service::no_source(cx, links, &p("address"), "real server", address)?;
        let weight = cx.range(&p("weight"), r.weight.unwrap_or(1), 0, 65535, "weight")? as u16;
        let upper = cx.range(
            &p("upper_threshold"),
            r.upper_threshold.unwrap_or(0),
            0,
            u64::from(u32::MAX),
            "upper_threshold",
        )? as u32;
        let lower = cx.range(
            &p("lower_threshold"),
            r.lower_threshold.unwrap_or(0),
            0,
            u64::from(u32::MAX),
            "lower_threshold",
        )? as u32;
        if lower > 0 && upper == 0 {
            return Err(cx
                .err(
                    &p("lower_threshold"),
                    "lower_threshold without upper_threshold",
                )
                .with_hint(Some(
                    "the lower threshold re-enables a server stopped by the upper one: \
                     set `upper_threshold`"
                        .into(),
                )));
        }
        if upper > 0 && lower > upper {
            return Err(cx
                .err(
                    &p("lower_threshold"),
                    format!("lower_threshold {lower} is above upper_threshold {upper}"),
                )
                .with_hint(Some("lower ≤ upper (ipvsadm -y ≤ -x)".into())));
        }
        let tunnel = match (&r.tunnel, forwarding) {
            (None, Forwarding::Tun) => Some(Tunnel::Ipip),
            (None, _) => None,
            (Some(t), Forwarding::Tun) => {
                Some(cx.name(&p("tunnel"), t, "tunnel", Tunnel::NAMES, Tunnel::from_name)?)
            }
            (Some(_), other) => {
                return Err(cx
                    .err_key(
                        &p("tunnel"),
                        format!(
                        "`tunnel` applies only to tun forwarding, this real server uses {other}"
                    ),
                    )
                    .with_hint(Some("remove it, or set `forwarding: tun`".into())))
            }
        };
        let (tun_port, tun_csum) = tunnel_options(cx, &rbase, &r, tunnel)?;
        let site = real_site(cx, &rbase, r.site.as_deref(), scheduler, sites)?;
        let rs = RealServer {
            address,
            port,
            weight,
            forwarding,
            upper_threshold: upper,
            lower_threshold: lower,
            tunnel,
            tun_port,
            tun_csum,
            site,
        };
        if let Some(first) = seen.insert(rs.key(), rbase.clone()) {
            return Err(cx
                .err(
                    &p("address"),
                    format!(
                        "real server {} is already listed at line {}",
                        rs.key(),
                        cx.line_of(&first)
                    ),
                )
                .with_hint(Some(
                    "a real server is identified by (address, port) within a service".into(),
                )));
        }
        out.push(rs);
    }
    Ok(out)
}

/// `tun_port` and `tun_csum` as ipvsadm's `tunnel_types_v_options` table allows them: gue
/// needs a port and takes any checksum option; gre takes `none` or `csum`; ipip (and any
/// other forwarding method) neither.
fn tunnel_options(
    cx: &Ctx<'_>,
    rbase: &str,
    r: &RawRealServer,
    tunnel: Option<Tunnel>,
) -> Result<(Option<u16>, TunCsum)> {
    let p = |f: &str| join(rbase, f);
    let what = match tunnel {
        Some(Tunnel::Ipip) => "an ipip tunnel".to_string(),
        Some(t) => format!("a {t} tunnel"),
        None => "a real server that does not tunnel".to_string(),
    };
    let port = match (r.tun_port, tunnel) {
        (Some(v), Some(Tunnel::Gue)) => {
            Some(cx.range(&p("tun_port"), v, 1, 65535, "tun_port")? as u16)
        }
        (None, Some(Tunnel::Gue)) => {
            return Err(cx
                .err(&p("tunnel"), "a gue tunnel needs `tun_port`")
                .with_hint(Some(
                    "the UDP port the real server's GUE receiver listens on (ipvsadm \
                     --tun-port)"
                        .into(),
                )))
        }
        (Some(_), _) => {
            return Err(cx
                .err_key(
                    &p("tun_port"),
                    format!("`tun_port` does not apply to {what}"),
                )
                .with_hint(Some("only `tunnel: gue` has a UDP port".into())))
        }
        (None, _) => None,
    };
    let csum = match (&r.tun_csum, tunnel) {
        (None, _) => TunCsum::None,
        (Some(t), Some(Tunnel::Gue | Tunnel::Gre)) => {
            let c = cx.name(
                &p("tun_csum"),
                t,
                "tunnel checksum option",
                TunCsum::NAMES,
                TunCsum::from_name,
            )?;
            if c == TunCsum::Remcsum && tunnel == Some(Tunnel::Gre) {
                return Err(cx
                    .err(
                        &p("tun_csum"),
                        "remote checksum offload applies only to gue",
                    )
                    .with_hint(Some("use `none` or `csum` for gre".into())));
            }
            c
        }
        (Some(_), _) => {
            return Err(cx
                .err_key(
                    &p("tun_csum"),
                    format!("`tun_csum` does not apply to {what}"),
                )
                .with_hint(Some("only gue and gre tunnels carry checksums".into())))
        }
    };
    Ok((port, csum))
}
