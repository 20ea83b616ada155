//! The translation as uvs YAML, written out field by field in the order of
//! configs/reference.yaml, with a comment naming the keepalived block each service came from,
//! and a map from YAML field paths back to keepalived positions (for errors the uvs loader
//! finds in the result).

use super::check::{Check, Kind, Port, Url};
use super::lex::{Files, Pos};
use super::translate::{Service, Translation};
use std::fmt::Write;
use std::net::IpAddr;

/// What the operator adds on the command line: the interface uvs serves on.
pub struct Interface<'a> {
    pub name: &'a str,
    pub networks: &'a [String],
    pub local: &'a [String],
    pub routes: &'a [(String, String)],
}

/// The YAML, and `(field path, keepalived position)` for every translated field.
pub fn yaml(files: &Files, t: &Translation, iface: &Interface<'_>) -> (String, Vec<(String, Pos)>) {
    let file = files.name(Pos::default());
    let mut y = String::new();
    let mut at: Vec<(String, Pos)> = Vec::new();
    let _ = writeln!(
        y,
        "# Translated from {file} by uvsadm import-keepalived.\n\
         # Review `interfaces`: uvs needs the networks it reaches the real servers on (DR needs\n\
         # them on-link) and an address of its own there (`local`): it asks for the servers'\n\
         # MAC addresses from it, and NAT's real servers may route their replies through it.\n\
         # Every field is described in configs/reference.yaml.\n"
    );
    y.push_str("interfaces:\n");
    let _ = writeln!(y, "  - name: {}", scalar(iface.name));
    if !iface.local.is_empty() {
        let _ = writeln!(y, "    local: {}", list(iface.local));
    }
    if !iface.networks.is_empty() {
        let _ = writeln!(y, "    networks: {}", list(iface.networks));
    }
    if !iface.routes.is_empty() {
        y.push_str("    routes:\n");
        for (prefix, via) in iface.routes {
            let _ = writeln!(
                y,
                "      - {{ prefix: {}, via: {} }}",
                list_item(prefix),
                list_item(via)
            );
        }
    }
    if let Some((fields, pos)) = &t.timeouts {
        let _ = writeln!(
            y,
            "\ntimeouts:                        # {}:{}: lvs_timeouts",
            files.name(*pos),
            pos.line
        );
        for (field, secs) in fields {
            let _ = writeln!(y, "  {field}: {secs}");
            at.push((format!("timeouts.{field}"), *pos));
        }
        at.push(("timeouts".into(), *pos));
    }
    if let Some(sync) = &t.sync {
        let _ = writeln!(
            y,
            "\nsync:                            # {}:{}: {}",
            files.name(sync.pos),
            sync.pos.line,
            sync.keyword
        );
        y.push_str("  mode: both\n");
        let _ = writeln!(y, "  interface: {}", scalar(&sync.interface.0));
        at.push(("sync.interface".into(), sync.interface.1));
        for (field, value, pos) in &sync.fields {
            // Numbers as they are; the group's address quoted where YAML needs it.
            let value = if *field == "group" {
                scalar(value)
            } else {
                value.clone()
            };
            let _ = writeln!(y, "  {field}: {value}");
            at.push((format!("sync.{field}"), *pos));
        }
        at.push(("sync".into(), sync.pos));
    }
    y.push_str("\nservices:\n");
    for (i, s) in t.services.iter().enumerate() {
        service(&mut y, &mut at, files, i, s);
    }
    (y, at)
}

fn service(y: &mut String, at: &mut Vec<(String, Pos)>, files: &Files, i: usize, s: &Service) {
    let base = format!("services[{i}]");
    let mut field = |path: &str, pos: Pos| at.push((format!("{base}{path}"), pos));
    field("", s.pos);
    let _ = writeln!(y, "  # {}:{}: {}", files.name(s.pos), s.pos.line, s.header);
    let mut first = true;
    let mut line = |y: &mut String, text: String| {
        let _ = writeln!(y, "{}{text}", if first { "  - " } else { "    " });
        first = false;
    };
    if let Some((name, pos)) = &s.name {
        line(y, format!("name: {}", scalar(name)));
        field(".name", *pos);
    }
    line(y, format!("vip: {}", ip(s.vip)));
    line(y, format!("protocol: {}", s.protocol.name()));
    line(y, format!("port: {}", s.port));
    line(y, format!("scheduler: {}", s.scheduler.0.name()));
    if let Some(p) = s.scheduler.1 {
        field(".scheduler", p);
    }
    if !s.flags.is_empty() {
        let names: Vec<String> = s.flags.iter().map(|(f, _)| f.name().to_string()).collect();
        line(y, format!("scheduler_flags: [{}]", names.join(", ")));
        for (j, (_, p)) in s.flags.iter().enumerate() {
            field(&format!(".scheduler_flags[{j}]"), *p);
        }
    }
    line(y, format!("forwarding: {}", s.forwarding.name()));
    if let Some((timeout, mask, pos)) = &s.persistence {
        let mask = mask
            .as_ref()
            .map(|m| {
                // IPv6 granularity is a prefix length, a number.
                let m = if s.vip.is_ipv6() {
                    m.clone()
                } else {
                    scalar(m)
                };
                format!(", netmask: {m}")
            })
            .unwrap_or_default();
        line(y, format!("persistence: {{ timeout: {timeout}{mask} }}"));
        field(".persistence", *pos);
    }
    if let Some(p) = s.one_packet {
        line(y, "one_packet: true".into());
        field(".one_packet", p);
    }
    if let Some((address, port, pos)) = &s.sorry {
        let port = port.map(|p| format!(", port: {p}")).unwrap_or_default();
        line(
            y,
            format!("sorry_server: {{ address: {}{port} }}", ip(*address)),
        );
        field(".sorry_server", *pos);
    }
    if let Some(c) = &s.check {
        line(y, "health_check:".into());
        health_check(y, c);
        field(".health_check", c.pos);
    }
    line(y, "real_servers:".into());
    for (j, r) in s.reals.iter().enumerate() {
        let rb = format!(".real_servers[{j}]");
        field(&rb, r.pos);
        let _ = writeln!(y, "      - address: {}", ip(r.address));
        if let Some((p, pos)) = r.port {
            let _ = writeln!(y, "        port: {p}");
            field(&format!("{rb}.port"), pos);
        }
        if let Some((w, pos)) = r.weight {
            let _ = writeln!(y, "        weight: {w}");
            field(&format!("{rb}.weight"), pos);
        }
        if let Some((f, pos)) = r.forwarding {
            let _ = writeln!(y, "        forwarding: {}", f.name());
            field(&format!("{rb}.forwarding"), pos);
        }
        if let Some(t) = r.tunnel {
            if t.kind != uvs_config::Tunnel::Ipip {
                let _ = writeln!(y, "        tunnel: {}", t.kind.name());
                field(&format!("{rb}.tunnel"), t.pos);
            }
            if let Some(p) = t.port {
                let _ = writeln!(y, "        tun_port: {p}");
                field(&format!("{rb}.tun_port"), t.pos);
            }
            if t.csum != uvs_config::TunCsum::None {
                let _ = writeln!(y, "        tun_csum: {}", t.csum.name());
                field(&format!("{rb}.tun_csum"), t.pos);
            }
        }
        if let Some((n, pos)) = r.upper {
            let _ = writeln!(y, "        upper_threshold: {n}");
            field(&format!("{rb}.upper_threshold"), pos);
        }
        if let Some((n, pos)) = r.lower {
            let _ = writeln!(y, "        lower_threshold: {n}");
            field(&format!("{rb}.lower_threshold"), pos);
        }
    }
}

fn health_check(y: &mut String, c: &Check) {
    let secs = |ms: u64| {
        if ms.is_multiple_of(1000) {
            (ms / 1000).to_string()
        } else {
            (ms as f64 / 1000.0).to_string()
        }
    };
    let type_name = match c.kind {
        Kind::Tcp => "tcp",
        Kind::Http { .. } => "http",
        Kind::Https { .. } => "https",
        Kind::Command { .. } => "command",
    };
    let _ = writeln!(y, "      type: {type_name}");
    let _ = writeln!(y, "      interval: {}", secs(c.interval_ms));
    let _ = writeln!(y, "      timeout: {}", secs(c.timeout_ms));
    let _ = writeln!(y, "      rise: 1");
    let _ = writeln!(y, "      fall: {}", c.fall);
    if let Port::Fixed(p) = c.port {
        let _ = writeln!(y, "      port: {p}");
    }
    if c.start_down {
        let _ = writeln!(y, "      start_down: true");
    }
    match &c.kind {
        Kind::Tcp => {}
        Kind::Http { urls, host } => {
            emit_urls(y, urls);
            if let Some(h) = host {
                let _ = writeln!(y, "      host: {}", scalar(h));
            }
        }
        Kind::Https { urls, sni } => {
            emit_urls(y, urls);
            if let Some(n) = sni {
                let _ = writeln!(y, "      sni: {}", scalar(n));
            }
            // keepalived's SSL_GET verifies no certificate: neither does the translation.
            let _ = writeln!(y, "      verify: false");
        }
        Kind::Command { line, user } => {
            let _ = writeln!(y, "      command: {}", quoted(line));
            if let Some(u) = user {
                let _ = writeln!(y, "      user: {}", quoted(u));
            }
        }
    }
}

/// One url in the check's own fields; several under `urls:`, each of which must pass.
fn emit_urls(y: &mut String, urls: &[Url]) {
    let fields = |y: &mut String, u: &Url, first: &str, rest: &str| {
        let _ = writeln!(y, "{first}path: {}", scalar(&u.path));
        let _ = writeln!(y, "{rest}expect_status: {}", u.expect_status);
        if let Some(b) = &u.expect_body {
            let _ = writeln!(y, "{rest}expect_body: {}", quoted(b));
        }
        if let Some(d) = &u.expect_digest {
            let _ = writeln!(y, "{rest}expect_digest: {}", quoted(d));
        }
    };
    match urls {
        [one] => fields(y, one, "      ", "      "),
        several => {
            let _ = writeln!(y, "      urls:");
            for u in several {
                fields(y, u, "        - ", "          ");
            }
        }
    }
}

/// IPv4 plain, IPv6 quoted (as configs/reference.yaml writes them).
fn ip(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"{v6}\""),
    }
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

/// Plain when the text cannot be read as anything but this string, quoted otherwise.
fn scalar(s: &str) -> String {
    const SPECIAL: &[&str] = &[
        "true", "false", "yes", "no", "on", "off", "null", "y", "n", "~",
    ];
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
        && s.parse::<f64>().is_err()
        && !SPECIAL.contains(&s.to_ascii_lowercase().as_str());
    if plain {
        s.to_string()
    } else {
        quoted(s)
    }
}

/// An address or prefix: IPv6 quoted, as configs/reference.yaml writes them.
fn list_item(s: &str) -> String {
    if s.contains(':') {
        quoted(s)
    } else {
        scalar(s)
    }
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| list_item(s)).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_quote_what_yaml_would_read_otherwise() {
        assert_eq!(scalar("web"), "web");
        assert_eq!(scalar("/healthz"), "/healthz");
        assert_eq!(scalar("255.255.255.0"), "255.255.255.0");
        assert_eq!(scalar("64"), "\"64\"");
        assert_eq!(scalar("yes"), "\"yes\"");
        assert_eq!(scalar("/a b?c"), "\"/a b?c\"");
        assert_eq!(scalar("#x"), "\"#x\"");
        assert_eq!(ip("2001:2::1".parse().unwrap()), "\"2001:2::1\"");
    }
}
