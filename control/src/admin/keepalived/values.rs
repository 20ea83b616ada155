//! The values of keepalived.conf's keywords (numbers, timers, booleans, addresses,
//! forwarding methods) read with their positions, and where diagnostics are collected.

use super::lex::{Files, Pos, Stmt, Word};
use super::Diag;
use std::net::IpAddr;
use uvs_config::{Forwarding, TunCsum, Tunnel};

pub type Result<T> = std::result::Result<T, Diag>;

/// Where diagnostics go.
pub struct Cx<'a> {
    pub files: &'a Files,
    pub notes: Vec<Diag>,
}

impl Cx<'_> {
    pub fn err<T>(&self, pos: Pos, message: impl Into<String>) -> Result<T> {
        Err(Diag {
            file: self.files.name(pos).to_string(),
            pos: Some(pos),
            message: message.into(),
        })
    }

    /// Something translated approximately or left out on purpose; said once per message.
    pub fn note(&mut self, pos: Pos, message: impl Into<String>) {
        let message = message.into();
        if !self.notes.iter().any(|n| n.message == message) {
            self.notes.push(Diag {
                file: self.files.name(pos).to_string(),
                pos: Some(pos),
                message,
            });
        }
    }
}

/// The single argument of `stmt`; `what` names it in the error.
pub fn one_arg<'s>(cx: &Cx<'_>, stmt: &'s Stmt, what: &str) -> Result<&'s Word> {
    match stmt.args() {
        [w] => Ok(w),
        [] => cx.err(
            stmt.pos(),
            format!(
                "{} needs a value: {} {what}",
                stmt.keyword(),
                stmt.keyword()
            ),
        ),
        [_, extra, ..] => cx.err(
            extra.pos,
            format!(
                "{} takes one value ({what}); '{}' is one too many",
                stmt.keyword(),
                extra.text
            ),
        ),
    }
}

/// `KEYWORD [on|off|true|false|yes|no]`: no value means true.
pub fn bool_arg(cx: &Cx<'_>, stmt: &Stmt) -> Result<bool> {
    match stmt.args() {
        [] => Ok(true),
        [w] => match w.text.to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" => Ok(true),
            "off" | "false" | "no" => Ok(false),
            _ => cx.err(
                w.pos,
                format!(
                    "'{}' is not a boolean: on, off, true, false, yes or no",
                    w.text
                ),
            ),
        },
        [_, extra, ..] => cx.err(
            extra.pos,
            format!("{} takes at most one value", stmt.keyword()),
        ),
    }
}

pub fn uint(cx: &Cx<'_>, w: &Word, lo: u64, hi: u64, what: &str) -> Result<u64> {
    match w.text.parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => cx.err(
            w.pos,
            format!("{what} '{}' is not a whole number in {lo}..={hi}", w.text),
        ),
    }
}

/// keepalived's `<TIMER>`: seconds, fractions allowed; → whole milliseconds (uvs's precision).
pub fn timer_ms(cx: &Cx<'_>, w: &Word, what: &str) -> Result<u64> {
    match w.text.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 && (s * 1000.0).round() >= 1.0 => {
            Ok((s * 1000.0).round() as u64)
        }
        _ => cx.err(
            w.pos,
            format!(
                "{what} '{}' is not a time in seconds of at least 0.001 (e.g. 3 or 1.5)",
                w.text
            ),
        ),
    }
}

pub fn addr(cx: &Cx<'_>, w: &Word) -> Result<IpAddr> {
    w.text.parse().or_else(|_| {
        cx.err(
            w.pos,
            format!(
                "'{}' is not an IPv4 or IPv6 address (names are not resolved)",
                w.text
            ),
        )
    })
}

pub fn port(cx: &Cx<'_>, w: &Word) -> Result<u16> {
    Ok(uint(cx, w, 0, 65535, "port")? as u16)
}

/// TUN's options on an `lvs_method TUN type …` line, as uvs's YAML writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunOpts {
    pub kind: Tunnel,
    pub port: Option<u16>,
    pub csum: TunCsum,
    pub pos: Pos,
}

/// keepalived's `lvs_method`/`lb_kind` value, with TUN's options
/// (`TUN [type {ipip|gue port NUM|gre} [nocsum|csum|remcsum]]`, keepalived.conf(5)).
pub fn forwarding(cx: &Cx<'_>, stmt: &Stmt) -> Result<(Forwarding, Option<TunOpts>)> {
    let Some(method) = stmt.args().first() else {
        return cx.err(
            stmt.pos(),
            format!("{} needs NAT, DR or TUN", stmt.keyword()),
        );
    };
    let f = match method.text.to_ascii_uppercase().as_str() {
        "NAT" => Forwarding::Nat,
        "DR" => Forwarding::Dr,
        "TUN" => Forwarding::Tun,
        _ => {
            return cx.err(
                method.pos,
                format!(
                    "unknown forwarding method '{}': NAT, DR or TUN",
                    method.text
                ),
            )
        }
    };
    let rest = &stmt.args()[1..];
    if f != Forwarding::Tun {
        if let Some(extra) = rest.first() {
            return cx.err(extra.pos, format!("{} takes no options", method.text));
        }
        return Ok((f, None));
    }
    let mut opts: Option<TunOpts> = None;
    let mut csum: Option<(TunCsum, Pos)> = None;
    let mut i = 0;
    while i < rest.len() {
        let w = &rest[i];
        match w.text.as_str() {
            "type" => {
                let Some(t) = rest.get(i + 1) else {
                    return cx.err(w.pos, "type needs ipip, gue or gre");
                };
                let kind = match t.text.as_str() {
                    "ipip" => Tunnel::Ipip,
                    "gue" => Tunnel::Gue,
                    "gre" => Tunnel::Gre,
                    _ => return cx.err(t.pos, "type needs ipip, gue or gre"),
                };
                i += 1;
                let mut port = None;
                if kind == Tunnel::Gue {
                    match (rest.get(i + 1), rest.get(i + 2)) {
                        (Some(k), Some(v)) if k.text == "port" => {
                            port = Some(uint(cx, v, 1, 65535, "port")? as u16);
                            i += 2;
                        }
                        _ => return cx.err(t.pos, "type gue needs port NUM"),
                    }
                }
                opts = Some(TunOpts {
                    kind,
                    port,
                    csum: TunCsum::None,
                    pos: t.pos,
                });
            }
            "nocsum" => csum = Some((TunCsum::None, w.pos)),
            "csum" => csum = Some((TunCsum::Csum, w.pos)),
            "remcsum" => csum = Some((TunCsum::Remcsum, w.pos)),
            _ => {
                return cx.err(
                    w.pos,
                    format!(
                        "unknown tunnel option '{}': type ipip|gue port NUM|gre, then \
                         nocsum|csum|remcsum",
                        w.text
                    ),
                )
            }
        }
        i += 1;
    }
    // keepalived accepts nocsum for every type, csum for gue and gre, remcsum for gue.
    if let Some((c, at)) = csum {
        let kind = opts.map_or(Tunnel::Ipip, |o| o.kind);
        match (kind, c) {
            (_, TunCsum::None) => {}
            (Tunnel::Gue, _) | (Tunnel::Gre, TunCsum::Csum) => {}
            _ => {
                return cx.err(
                    at,
                    format!(
                        "{} does not apply to a {kind} tunnel",
                        c.name().to_lowercase()
                    ),
                )
            }
        }
        if let Some(o) = opts.as_mut() {
            o.csum = c;
        }
    }
    Ok((f, opts))
}

/// Refuses a second occurrence of the same keyword in one block.
pub struct Once<'s> {
    seen: Vec<(&'s str, Pos)>,
    block: &'static str,
}

impl<'s> Once<'s> {
    pub fn new(block: &'static str) -> Once<'s> {
        Once {
            seen: Vec::new(),
            block,
        }
    }

    pub fn check(&mut self, cx: &Cx<'_>, stmt: &'s Stmt) -> Result<()> {
        let k = stmt.keyword();
        if let Some((_, first)) = self.seen.iter().find(|(n, _)| *n == k) {
            return cx.err(
                stmt.pos(),
                format!(
                    "{k} is given twice in this {} (first at line {}); keep one",
                    self.block, first.line
                ),
            );
        }
        self.seen.push((k, stmt.pos()));
        Ok(())
    }
}
