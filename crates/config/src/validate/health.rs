//! Health check settings: types, timings and per-type fields.

use super::{Ctx, Result};
use crate::marks::join;
use crate::model::{HealthCheck, HealthCheckKind, HttpUrl, StatusCodes};
use crate::raw::{RawHealthCheck, RawHttpUrl, RawStatus};
use std::time::Duration;

/// Health check defaults (milliseconds, counts).
pub(crate) const HC_INTERVAL_MS: u64 = 2000;
pub(crate) const HC_TIMEOUT_MS: u64 = 1000;
pub(crate) const HC_RISE: u32 = 2;
pub(crate) const HC_FALL: u32 = 3;
pub(crate) const HC_PATH: &str = "/";
pub(crate) const HC_STATUS: u16 = 200;
/// Longest string an agent check sends (HAProxy's `agent-send`).
const MAX_AGENT_SEND: usize = 1024;
/// Longest health check interval: one hour.
const MAX_HC_INTERVAL_MS: u64 = 3_600_000;
/// Seconds (float) → whole milliseconds, so values survive a save/load round trip exactly.
fn millis(cx: &Ctx<'_>, path: &str, secs: f64, what: &str) -> Result<u64> {
    let ms = (secs * 1000.0).round();
    if !secs.is_finite() || ms < 1.0 || ms > MAX_HC_INTERVAL_MS as f64 {
        return Err(cx
            .err(
                path,
                format!("{what} {secs} s is out of range 0.001..=3600"),
            )
            .with_hint(Some("durations are in seconds".into())));
    }
    Ok(ms as u64)
}

pub(super) fn health_check(
    cx: &Ctx<'_>,
    base: &str,
    r: RawHealthCheck,
    service_port: u16,
) -> Result<HealthCheck> {
    let p = |f: &str| join(base, f);
    let kind_name = match &r.kind {
        Some(t) => cx
            .name(
                &p("type"),
                t,
                "health check type",
                &["tcp", "http", "https", "command", "agent"],
                |s| {
                    ["tcp", "http", "https", "command", "agent"]
                        .contains(&s)
                        .then_some(())
                },
            )
            .map(|()| t.as_str())?,
        None => {
            return Err(cx
                .err(&p("type"), "the health check has no `type`")
                .with_hint(Some(
                    "add `type: tcp`, `http`, `https`, `command` or `agent`".into(),
                )))
        }
    };
    // Fields that belong to one type only are errors elsewhere, so a typo'd type is not
    // silently ignored.
    let only = |present: bool, field: &str, owner: &str| -> Result<()> {
        if present && kind_name != owner {
            return Err(cx
                .err_key(
                    &p(field),
                    format!("`{field}` applies only to {owner} checks, this one is {kind_name}"),
                )
                .with_hint(Some(format!("remove it, or set `type: {owner}`"))));
        }
        Ok(())
    };
    let web = matches!(kind_name, "http" | "https");
    let only_web = |present: bool, field: &str| -> Result<()> {
        if present && !web {
            return Err(cx
                .err_key(
                    &p(field),
                    format!(
                        "`{field}` applies only to http and https checks, this one is {kind_name}"
                    ),
                )
                .with_hint(Some("remove it, or set `type: http` or `https`".into())));
        }
        Ok(())
    };
    only_web(r.path.is_some(), "path")?;
    only_web(r.expect_status.is_some(), "expect_status")?;
    only_web(r.expect_body.is_some(), "expect_body")?;
    only_web(r.expect_digest.is_some(), "expect_digest")?;
    only_web(r.urls.is_some(), "urls")?;
    only(r.host.is_some(), "host", "http")?;
    only(r.sni.is_some(), "sni", "https")?;
    only(r.verify.is_some(), "verify", "https")?;
    only(r.ca_file.is_some(), "ca_file", "https")?;
    only(r.command.is_some(), "command", "command")?;
    only(r.send.is_some(), "send", "agent")?;
    only(r.user.is_some(), "user", "command")?;
    let kind = match kind_name {
        "tcp" => HealthCheckKind::Tcp,
        "agent" => {
            if r.port.is_none() {
                return Err(cx
                    .err_key(
                        base,
                        "an agent check needs `port`: the port the agent listens on, not the service's",
                    )
                    .with_hint(Some(
                        "uvs-agent listens on 9900 unless told otherwise: `port: 9900`".into(),
                    )));
            }
            if let Some(send) = &r.send {
                if send.len() > MAX_AGENT_SEND {
                    return Err(cx.err(
                        &p("send"),
                        format!("`send` is {} bytes; at most {MAX_AGENT_SEND}", send.len()),
                    ));
                }
            }
            HealthCheckKind::Agent {
                send: r.send.filter(|s| !s.is_empty()),
            }
        }
        "http" | "https" => {
            let single = [
                ("path", r.path.is_some()),
                ("expect_status", r.expect_status.is_some()),
                ("expect_body", r.expect_body.is_some()),
                ("expect_digest", r.expect_digest.is_some()),
            ];
            let urls = match r.urls {
                Some(list) => {
                    if let Some((field, _)) = single.iter().find(|(_, given)| *given) {
                        return Err(cx
                            .err_key(&p(field), format!("`{field}` is given beside `urls`"))
                            .with_hint(Some(
                                "give each url's path and expectations in `urls`, or one \
                                 url's in path, expect_status, ... without `urls`"
                                    .into(),
                            )));
                    }
                    if list.is_empty() {
                        return Err(cx
                            .err(&p("urls"), "`urls` is empty")
                            .with_hint(Some("list at least one `- path: /healthz`".into())));
                    }
                    list.into_iter()
                        .enumerate()
                        .map(|(i, u)| http_url(cx, &p(&format!("urls[{i}]")), u))
                        .collect::<Result<Vec<_>>>()?
                }
                None => vec![http_url(
                    cx,
                    base,
                    RawHttpUrl {
                        path: r.path,
                        expect_status: r.expect_status,
                        expect_body: r.expect_body,
                        expect_digest: r.expect_digest,
                    },
                )?],
            };
            if kind_name == "http" {
                if let Some(h) = &r.host {
                    check_host(cx, &p("host"), h)?;
                }
                HealthCheckKind::Http { urls, host: r.host }
            } else {
                let verify = r.verify.unwrap_or(false);
                if let Some(name) = &r.sni {
                    check_server_name(cx, &p("sni"), name)?;
                }
                if let Some(f) = &r.ca_file {
                    if !verify {
                        return Err(cx
                            .err_key(
                                &p("ca_file"),
                                "`ca_file` is used only to verify certificates, and `verify` is off",
                            )
                            .with_hint(Some("add `verify: true`, or remove `ca_file`".into())));
                    }
                    if !f.starts_with('/') {
                        return Err(cx
                            .err(&p("ca_file"), format!("'{f}' is not an absolute path"))
                            .with_hint(Some(
                                "the PEM file of the trusted CAs, like /etc/uvs/ca.pem".into(),
                            )));
                    }
                }
                HealthCheckKind::Https {
                    urls,
                    sni: r.sni,
                    verify,
                    ca_file: r.ca_file,
                }
            }
        }
        _ => {
            let command = r.command.unwrap_or_default();
            if command.trim().is_empty() {
                return Err(cx
                    .err(&p("command"), "a command health check needs a `command`")
                    .with_hint(Some("for example \"/usr/bin/check %a %p\"".into())));
            }
            check_placeholders(cx, &p("command"), &command)?;
            if let Some(u) = &r.user {
                check_user_name(cx, &p("user"), u)?;
            }
            HealthCheckKind::Command {
                command,
                user: r.user,
            }
        }
    };
    let interval = millis(
        cx,
        &p("interval"),
        r.interval.unwrap_or(HC_INTERVAL_MS as f64 / 1000.0),
        "interval",
    )?;
    let timeout = millis(
        cx,
        &p("timeout"),
        r.timeout.unwrap_or(HC_TIMEOUT_MS as f64 / 1000.0),
        "timeout",
    )?;
    if timeout > interval {
        return Err(cx
            .err(
                &p("timeout"),
                format!(
                    "timeout {} s is longer than the interval {} s",
                    timeout as f64 / 1000.0,
                    interval as f64 / 1000.0
                ),
            )
            .with_hint(Some(
                "a check must finish before the next one starts".into(),
            )));
    }
    let rise = cx.range(
        &p("rise"),
        r.rise.unwrap_or(u64::from(HC_RISE)),
        1,
        1000,
        "rise",
    )? as u32;
    let fall = cx.range(
        &p("fall"),
        r.fall.unwrap_or(u64::from(HC_FALL)),
        1,
        1000,
        "fall",
    )? as u32;
    let port = match r.port {
        Some(v) => Some(cx.range(&p("port"), v, 1, 65535, "port")? as u16),
        None => None,
    };
    if port.is_none() && service_port == 0 && kind_name != "command" {
        return Err(cx
            .err_key(
                base,
                "the service covers every port (port 0), \
                 so the check cannot use the real server's port",
            )
            .with_hint(Some("set `health_check.port`".into())));
    }
    Ok(HealthCheck {
        kind,
        interval: Duration::from_millis(interval),
        timeout: Duration::from_millis(timeout),
        rise,
        fall,
        port,
        start_down: r.start_down.unwrap_or(false),
    })
}

/// An MD5 digest in hex (keepalived's `digest`, as `genhash` prints it), kept in lower case.
/// One url of an http or https check; `base` is where its fields are (the check itself, or
/// its `urls[i]`).
fn http_url(cx: &Ctx<'_>, base: &str, u: RawHttpUrl) -> Result<HttpUrl> {
    let p = |f: &str| join(base, f);
    let path = u.path.unwrap_or_else(|| HC_PATH.to_string());
    if !path.starts_with('/') || path.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(cx
            .err(&p("path"), format!("'{path}' is not an HTTP request path"))
            .with_hint(Some(
                "it starts with '/' and has no spaces, like /healthz".into(),
            )));
    }
    let expect_status = match u.expect_status {
        Some(s) => status_codes(cx, &p("expect_status"), s)?,
        None => StatusCodes::one(HC_STATUS),
    };
    let expect_digest = match u.expect_digest {
        Some(d) => Some(check_digest(cx, &p("expect_digest"), &d)?),
        None => None,
    };
    Ok(HttpUrl {
        path,
        expect_status,
        expect_body: u.expect_body,
        expect_digest,
    })
}

/// `200`, or codes and ranges separated by spaces or commas (`"200-299 301"`), each
/// 100..=599.
fn status_codes(cx: &Ctx<'_>, path: &str, s: RawStatus) -> Result<StatusCodes> {
    let text = match s {
        RawStatus::One(n) => {
            return Ok(StatusCodes::one(
                cx.range(path, n, 100, 599, "HTTP status")? as u16,
            ))
        }
        RawStatus::Text(t) => t,
    };
    let bad = |what: &str| {
        cx.err(path, format!("'{text}': {what}")).with_hint(Some(
            "an HTTP status (200), or statuses and ranges: \"200-299 301\"".into(),
        ))
    };
    let mut codes = Vec::new();
    for word in text.split(|c: char| c == ',' || c.is_whitespace()) {
        if word.is_empty() {
            continue;
        }
        let (lo, hi) = word.split_once('-').unwrap_or((word, word));
        let code = |w: &str| -> Result<u16> {
            let n: u64 = w
                .parse()
                .map_err(|_| bad(&format!("'{w}' is not a status")))?;
            Ok(cx.range(path, n, 100, 599, "HTTP status")? as u16)
        };
        let (lo, hi) = (code(lo)?, code(hi)?);
        if lo > hi {
            return Err(bad(&format!("the range {word} is backwards")));
        }
        codes.push((lo, hi));
    }
    if codes.is_empty() {
        return Err(bad("no status"));
    }
    Ok(StatusCodes(codes))
}

/// The Host header of an http check: a host name (or an address).
fn check_host(cx: &Ctx<'_>, path: &str, name: &str) -> Result<()> {
    if name.parse::<std::net::IpAddr>().is_ok() || host_name_ok(name) {
        return Ok(());
    }
    Err(cx
        .err(path, format!("'{name}' is not a host name"))
        .with_hint(Some("a DNS name, like www.example.com".into())))
}

/// A DNS name: dot-separated labels of letters, digits, '-' and '_'.
fn host_name_ok(name: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    name.len() <= 253 && name.split('.').all(label_ok)
}

fn check_digest(cx: &Ctx<'_>, path: &str, d: &str) -> Result<String> {
    if d.len() == 32 && d.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(d.to_ascii_lowercase());
    }
    Err(cx
        .err(path, format!("'{d}' is not an MD5 digest"))
        .with_hint(Some(
            "32 hex digits, as `md5sum` or keepalived's genhash print them".into(),
        )))
}

/// A DNS name as SNI carries it (RFC 6066 §3: a host name, not an address).
fn check_server_name(cx: &Ctx<'_>, path: &str, name: &str) -> Result<()> {
    let name_ok = host_name_ok(name);
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err(cx
            .err(
                path,
                format!("'{name}' is an address: SNI carries a host name"),
            )
            .with_hint(Some(
                "remove `sni` to check by address (no SNI is sent then)".into(),
            )));
    }
    if name_ok {
        return Ok(());
    }
    Err(cx
        .err(path, format!("'{name}' is not a host name"))
        .with_hint(Some("a DNS name, like www.example.com".into())))
}

/// An account name as useradd(8) accepts it (or a numeric uid). Whether it exists is the
/// host's business: uvsd looks it up when it loads the file.
fn check_user_name(cx: &Ctx<'_>, path: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        return Ok(());
    }
    Err(cx
        .err(path, format!("'{name}' is not a user name"))
        .with_hint(Some(
            "an account of this host, like `uvs-check` or `nobody`".into(),
        )))
}

/// `%a` address, `%p` port, `%%` a literal percent sign; anything else is a typo.
fn check_placeholders(cx: &Ctx<'_>, path: &str, command: &str) -> Result<()> {
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('a' | 'p' | '%') => {}
                other => {
                    let seen = other.map_or(String::from("%"), |o| format!("%{o}"));
                    return Err(cx
                        .err(path, format!("unknown placeholder '{seen}' in the command"))
                        .with_hint(Some(
                            "use %a for the address, %p for the port, %% for '%'".into(),
                        )));
                }
            }
        }
    }
    Ok(())
}
