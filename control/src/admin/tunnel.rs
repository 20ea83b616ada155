//! TUN's encapsulation options as ipvsadm 1.31 has them: `--tun-type ipip|gue|gre`,
//! `--tun-port`, `--tun-nocsum|--tun-csum|--tun-remcsum` on `-a`/`-e`, `--tun-info` on `-L`,
//! and the same options in `-S` rules. Which option goes with which type is ipvsadm's
//! `tunnel_types_v_options` table: gue needs `--tun-port` and takes one checksum option; gre
//! takes `--tun-nocsum` or `--tun-csum`; ipip takes none.

use uvs_config::{Forwarding, RealServer, TunCsum, Tunnel};

/// The tunnel options one `-a`/`-e` command line gave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunArgs {
    /// `--tun-type`; `None` when not given.
    pub kind: Option<Tunnel>,
    /// `--tun-port`.
    pub port: Option<u16>,
    /// `--tun-nocsum`, `--tun-csum` or `--tun-remcsum`.
    pub csum: Option<TunCsum>,
}

impl TunArgs {
    /// True when no tunnel option was given.
    pub fn is_empty(&self) -> bool {
        *self == TunArgs::default()
    }

    /// ipvsadm's checks: tunnel options only with tunnelling, and only the ones the type
    /// (ipip when `--tun-type` is absent) allows. `forward` is `-g/-i/-m`, `None` when the
    /// service's default applies (checked when the edit is validated).
    pub fn check(&self, forward: Option<Forwarding>) -> Result<(), String> {
        if self.is_empty() {
            return Ok(());
        }
        if forward.is_some_and(|f| f != Forwarding::Tun) {
            return Err(
                "tunnel options conflict with the forwarding method: they need -i \
                        (ipip)"
                    .into(),
            );
        }
        let kind = self.kind.unwrap_or(Tunnel::Ipip);
        match (kind, self.port) {
            (Tunnel::Gue, None) => {
                return Err(
                    "you need to supply the '--tun-port' option for the 'gue' tunnel \
                            type"
                        .into(),
                )
            }
            (Tunnel::Ipip | Tunnel::Gre, Some(_)) => {
                return Err(format!(
                    "illegal '--tun-port' option with the '{kind}' tunnel type"
                ))
            }
            _ => {}
        }
        match (kind, self.csum) {
            (Tunnel::Ipip, Some(c)) | (Tunnel::Gre, Some(c @ TunCsum::Remcsum)) => Err(format!(
                "illegal '{}' option with the '{kind}' tunnel type",
                csum_option(c)
            )),
            _ => Ok(()),
        }
    }

    /// The real server's tunnel settings for a `-a`/`-e` with these options: what was
    /// given, or for `-e` without `--tun-type` the server's previous settings (uvs keeps
    /// them, as it keeps a YAML-only setting such as the site).
    pub fn resolve(
        &self,
        forwarding: Forwarding,
        old: Option<&RealServer>,
    ) -> (Option<Tunnel>, Option<u16>, TunCsum) {
        if forwarding != Forwarding::Tun {
            return (None, None, TunCsum::None);
        }
        match (self.kind, old) {
            (Some(kind), _) => (
                Some(kind),
                self.port.filter(|_| kind == Tunnel::Gue),
                self.csum.unwrap_or(TunCsum::None),
            ),
            (None, Some(o)) if o.tunnel.is_some() => (o.tunnel, o.tun_port, o.tun_csum),
            (None, _) => (Some(Tunnel::Ipip), None, TunCsum::None),
        }
    }
}

/// ipvsadm's option for a checksum setting.
pub fn csum_option(c: TunCsum) -> &'static str {
    match c {
        TunCsum::None => "--tun-nocsum",
        TunCsum::Csum => "--tun-csum",
        TunCsum::Remcsum => "--tun-remcsum",
    }
}

/// ipvsadm's short form in the TunnelInfo column.
fn csum_flag(c: TunCsum) -> &'static str {
    match c {
        TunCsum::None => "-c",
        TunCsum::Csum => "+c",
        TunCsum::Remcsum => "r+c",
    }
}

/// The TunnelInfo column of `-L --tun-info` (ipvsadm's `fwd_tun_info`): `ipip`,
/// `gue:6080:+c`, `gre:-c`; empty for a server that does not tunnel (shown as `n/a`).
pub fn info(kind: Option<Tunnel>, port: Option<u16>, csum: TunCsum) -> String {
    match kind {
        None => String::new(),
        Some(Tunnel::Ipip) => "ipip".into(),
        Some(Tunnel::Gue) => format!("gue:{}:{}", port.unwrap_or(0), csum_flag(csum)),
        Some(Tunnel::Gre) => format!("gre:{}", csum_flag(csum)),
    }
}

/// [`info`] of a real server in the running tables.
pub fn info_rt(method: uvs_dataplane::Method, tun: uvs_dataplane::TunEncap) -> String {
    use uvs_dataplane::TunEncap;
    if method != uvs_dataplane::Method::Tun {
        return String::new();
    }
    let csum = |checksum: bool, remcsum: bool| match (checksum, remcsum) {
        (_, true) => TunCsum::Remcsum,
        (true, false) => TunCsum::Csum,
        (false, false) => TunCsum::None,
    };
    match tun {
        TunEncap::Ipip => info(Some(Tunnel::Ipip), None, TunCsum::None),
        TunEncap::Gue {
            port,
            checksum,
            remcsum,
        } => info(Some(Tunnel::Gue), Some(port), csum(checksum, remcsum)),
        TunEncap::Gre { checksum } => info(Some(Tunnel::Gre), None, csum(checksum, false)),
    }
}

/// The options `-S` writes after `-w N` for a tunnelling server (ipvsadm's
/// `print_tunnel_rule`): ` --tun-type ipip`, ` --tun-type gue --tun-port 6080 --tun-csum`,
/// ` --tun-type gre --tun-nocsum`.
pub fn rule_options(r: &RealServer) -> String {
    match r.tunnel {
        None => String::new(),
        Some(Tunnel::Ipip) => " --tun-type ipip".into(),
        Some(Tunnel::Gue) => format!(
            " --tun-type gue --tun-port {} {}",
            r.tun_port.unwrap_or(0),
            csum_option(r.tun_csum)
        ),
        Some(Tunnel::Gre) => format!(" --tun-type gre {}", csum_option(r.tun_csum)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(kind: Option<Tunnel>, port: Option<u16>, csum: Option<TunCsum>) -> TunArgs {
        TunArgs { kind, port, csum }
    }

    #[test]
    fn ipvsadm_table() {
        let tun = Some(Forwarding::Tun);
        assert!(args(Some(Tunnel::Gue), Some(6080), Some(TunCsum::Remcsum))
            .check(tun)
            .is_ok());
        assert!(args(Some(Tunnel::Gre), None, Some(TunCsum::Csum))
            .check(None)
            .is_ok());
        assert!(args(Some(Tunnel::Ipip), None, None).check(tun).is_ok());
        let err = |a: TunArgs, f| a.check(f).unwrap_err();
        assert!(err(args(Some(Tunnel::Gue), None, None), tun).contains("'--tun-port'"));
        assert!(err(args(Some(Tunnel::Gre), Some(1), None), tun).contains("'gre'"));
        assert!(err(args(None, Some(1), None), tun).contains("'ipip'"));
        assert!(
            err(args(Some(Tunnel::Gre), None, Some(TunCsum::Remcsum)), tun)
                .contains("--tun-remcsum")
        );
        assert!(
            err(args(Some(Tunnel::Gre), None, None), Some(Forwarding::Dr)).contains("conflict")
        );
    }

    #[test]
    fn info_and_rules_as_ipvsadm_prints_them() {
        assert_eq!(info(None, None, TunCsum::None), "");
        assert_eq!(info(Some(Tunnel::Ipip), None, TunCsum::None), "ipip");
        assert_eq!(
            info(Some(Tunnel::Gue), Some(6080), TunCsum::Csum),
            "gue:6080:+c"
        );
        assert_eq!(info(Some(Tunnel::Gre), None, TunCsum::None), "gre:-c");
        assert_eq!(
            info(Some(Tunnel::Gue), Some(1), TunCsum::Remcsum),
            "gue:1:r+c"
        );
    }
}
