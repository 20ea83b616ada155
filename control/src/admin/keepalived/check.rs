//! keepalived's health checkers (`TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `MISC_CHECK`) → one uvs
//! `health_check`, with keepalived's defaults and inheritance (virtual server → real server →
//! checker) resolved first.
//!
//! What keepalived does and uvs does the same way: a check every `delay_loop`, bounded by
//! `connect_timeout` (`misc_timeout` for commands); a server that is up goes down after the
//! first failure plus `retry` failed retries, so `fall = retry + 1`; a server that is down
//! comes back on its first success, so `rise = 1`; servers start up unless `alpha` is set
//! (`start_down: true`).

use super::command::command_line;
use super::lex::{Pos, Stmt, Word};
use super::values::{bool_arg, one_arg, timer_ms, uint, Cx, Result};
use std::net::IpAddr;

/// keepalived's `delay_loop` default (`KEEPALIVED_DEFAULT_DELAY`): 60 s.
pub const DEFAULT_DELAY_LOOP_MS: u64 = 60_000;
/// keepalived's `connect_timeout` default: 5 s.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// keepalived's HTTP `status_code` default when none is given: any 2xx.
const DEFAULT_STATUS: &str = "200-299";

/// Settings a virtual server or real server hands down to its checkers, each with where it
/// was written.
#[derive(Clone, Debug, Default)]
pub struct Inherited {
    pub connect_timeout: Option<(u64, Pos)>,
    pub retry: Option<(u64, Pos)>,
    pub delay_loop: Option<(u64, Pos)>,
    pub alpha: Option<(bool, Pos)>,
    /// The `virtualhost` name: HTTP_GET's Host header, SSL_GET's server name.
    pub virtualhost_name: Option<(String, Pos)>,
}

impl Inherited {
    /// Handles one of the inheritable keywords; `false` if `stmt` is not one of them.
    pub fn keyword(&mut self, cx: &mut Cx<'_>, stmt: &Stmt) -> Result<bool> {
        let pos = stmt.pos();
        match stmt.keyword() {
            "connect_timeout" => {
                let ms = timer_ms(cx, one_arg(cx, stmt, "SECONDS")?, "connect_timeout")?;
                self.connect_timeout = Some((ms, pos));
            }
            "retry" | "nb_get_retry" => {
                let n = uint(
                    cx,
                    one_arg(cx, stmt, "COUNT")?,
                    0,
                    u64::from(u32::MAX),
                    "retry",
                )?;
                self.retry = Some((n, pos));
            }
            "delay_loop" => {
                let ms = timer_ms(cx, one_arg(cx, stmt, "SECONDS")?, "delay_loop")?;
                self.delay_loop = Some((ms, pos));
            }
            "alpha" => self.alpha = Some((bool_arg(cx, stmt)?, pos)),
            "virtualhost" => {
                let name = one_arg(cx, stmt, "NAME")?.text.clone();
                self.virtualhost_name = Some((name, pos));
            }
            "delay_before_retry" => {
                one_arg(cx, stmt, "SECONDS")?;
                cx.note(
                    pos,
                    "delay_before_retry is not translated: uvs repeats a failed check at the \
                     check interval (delay_loop), so a server goes down after `fall` failed \
                     checks one interval apart",
                );
            }
            "warmup" => {
                one_arg(cx, stmt, "SECONDS")?;
                cx.note(
                    pos,
                    "warmup is not translated: uvs starts each server's checks when it loads \
                     the configuration",
                );
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// What a check does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Tcp,
    /// `HTTP_GET`: every url must pass; `host` is the `virtualhost` (the Host header).
    Http {
        urls: Vec<Url>,
        host: Option<String>,
    },
    /// `SSL_GET`: the http check over TLS, verifying no certificate (keepalived's SSL_GET
    /// does not either), with the server name it sends as SNI and Host if any.
    Https {
        urls: Vec<Url>,
        sni: Option<String>,
    },
    /// The command line for `sh -c`, with the real server's address as `%a`, and the
    /// account it runs as (MISC_CHECK's `user`).
    Command {
        line: String,
        user: Option<String>,
    },
}

/// One `url { }` of an HTTP_GET or SSL_GET.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub path: String,
    /// keepalived's `status_code` words as uvs's `expect_status`: `200`, `200-299 301`.
    pub expect_status: String,
    pub expect_body: Option<String>,
    pub expect_digest: Option<String>,
}

/// Which port a check connects to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// The real server's own port (uvs's default).
    Real,
    Fixed(u16),
}

/// One real server's check, resolved; a service's real servers must all have equal ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub kind: Kind,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub fall: u64,
    pub port: Port,
    /// `alpha`: a server starts down until its first check passes (`start_down`).
    pub start_down: bool,
    /// The checker keyword, for messages and the YAML's positions.
    pub pos: Pos,
}

impl Check {
    /// How `self` differs from `other`, in keepalived's terms; `None` if it does not.
    pub fn difference(&self, other: &Check) -> Option<String> {
        let secs = |ms: u64| format!("{} s", ms as f64 / 1000.0);
        let kind_name = |k: &Kind| match k {
            Kind::Tcp => "TCP_CHECK",
            Kind::Http { .. } => "HTTP_GET",
            Kind::Https { .. } => "SSL_GET",
            Kind::Command { .. } => "MISC_CHECK",
        };
        if std::mem::discriminant(&self.kind) != std::mem::discriminant(&other.kind) {
            return Some(format!(
                "{} here, {} there",
                kind_name(&self.kind),
                kind_name(&other.kind)
            ));
        }
        if self.kind != other.kind {
            return Some(match (&self.kind, &other.kind) {
                (Kind::Command { line: a, .. }, Kind::Command { line: b, .. }) if a != b => {
                    format!("misc_path runs \"{a}\" here, \"{b}\" there (%a = the real server)")
                }
                (Kind::Command { user: a, .. }, Kind::Command { user: b, .. }) => format!(
                    "the script runs as user {} here, {} there",
                    a.as_deref().unwrap_or("(uvsd's)"),
                    b.as_deref().unwrap_or("(uvsd's)")
                ),
                (Kind::Https { sni: a, .. }, Kind::Https { sni: b, .. }) if a != b => format!(
                    "the server name (sni_name or virtualhost) is {} here, {} there",
                    a.as_deref().unwrap_or("none"),
                    b.as_deref().unwrap_or("none")
                ),
                (Kind::Http { host: a, .. }, Kind::Http { host: b, .. }) if a != b => format!(
                    "the virtualhost is {} here, {} there",
                    a.as_deref().unwrap_or("none"),
                    b.as_deref().unwrap_or("none")
                ),
                _ => "the urls (path, status_code or regex) differ".to_string(),
            });
        }
        if self.interval_ms != other.interval_ms {
            return Some(format!(
                "delay_loop {} here, {} there",
                secs(self.interval_ms),
                secs(other.interval_ms)
            ));
        }
        if self.timeout_ms != other.timeout_ms {
            return Some(format!(
                "the timeout is {} here, {} there",
                secs(self.timeout_ms),
                secs(other.timeout_ms)
            ));
        }
        if self.fall != other.fall {
            return Some(format!(
                "retry {} here, {} there",
                self.fall - 1,
                other.fall - 1
            ));
        }
        if self.start_down != other.start_down {
            let a = |on: bool| if on { "alpha" } else { "no alpha" };
            return Some(format!(
                "{} here, {} there",
                a(self.start_down),
                a(other.start_down)
            ));
        }
        if self.port != other.port {
            let p = |p: Port| match p {
                Port::Real => "the real server's port".to_string(),
                Port::Fixed(n) => format!("port {n}"),
            };
            return Some(format!(
                "it connects to {} here, {} there",
                p(self.port),
                p(other.port)
            ));
        }
        None
    }
}

const OTHER_CHECKERS: &[&str] = &[
    "SMTP_CHECK",
    "DNS_CHECK",
    "BFD_CHECK",
    "UDP_CHECK",
    "PING_CHECK",
    "FILE_CHECK",
];

/// Whether `keyword` names a keepalived checker.
pub fn is_checker(keyword: &str) -> bool {
    matches!(keyword, "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK")
        || OTHER_CHECKERS.contains(&keyword)
}

/// The real server a checker belongs to.
pub struct Target<'a> {
    pub address: IpAddr,
    /// As written in the file, for finding it in a command line.
    pub address_text: &'a str,
    /// The real server's port (the service port if the file gives none).
    pub port: u16,
}

/// Translates one checker block of a real server.
pub fn checker(
    cx: &mut Cx<'_>,
    stmt: &Stmt,
    inherited: &Inherited,
    target: &Target<'_>,
) -> Result<Check> {
    let pos = stmt.pos();
    let kw = stmt.keyword();
    match kw {
        k if OTHER_CHECKERS.contains(&k) => {
            return cx.err(
                pos,
                format!(
                    "{k} cannot be translated: uvs checks with TCP connects (TCP_CHECK), HTTP \
                     and HTTPS GETs (HTTP_GET, SSL_GET) and commands (MISC_CHECK)"
                ),
            )
        }
        _ => {}
    }
    if !stmt.args().is_empty() {
        return cx.err(
            stmt.args()[0].pos,
            format!("{kw} takes no value, only a block"),
        );
    }
    let Some(body) = &stmt.block else {
        return cx.err(pos, format!("{kw} needs a {{ ... }} block"));
    };
    let mut s = inherited.clone();
    // The checker's own virtualhost counts too; an inherited one matters only to HTTP_GET.
    let mut connect_port = None;
    let mut urls: Vec<&Stmt> = Vec::new();
    let mut misc_path: Option<(String, Pos)> = None;
    let mut misc_timeout: Option<(u64, Pos)> = None;
    let mut misc_user: Option<String> = None;
    let mut enable_sni: Option<(bool, Pos)> = None;
    let mut sni_name: Option<(String, Pos)> = None;
    let mut seen: Vec<(&str, Pos)> = Vec::new();
    for st in body {
        let k = st.keyword();
        if k != "url" {
            if let Some((_, first)) = seen.iter().find(|(name, _)| *name == k) {
                return cx.err(
                    st.pos(),
                    format!("{k} is given twice in {kw} (first at line {})", first.line),
                );
            }
            seen.push((k, st.pos()));
        }
        if st.block.is_some() && k != "url" {
            return cx.err(st.pos(), format!("{k} does not take a block"));
        }
        let ssl = kw == "SSL_GET";
        let http = kw == "HTTP_GET" || ssl;
        let misc = kw == "MISC_CHECK";
        match k {
            "connect_ip" if !misc => {
                let w = one_arg(cx, st, "ADDRESS")?;
                if w.text.parse::<IpAddr>().ok() != Some(target.address) {
                    return cx.err(
                        w.pos,
                        format!(
                            "connect_ip {} cannot be translated: uvs checks the real server's \
                             own address ({})",
                            w.text, target.address
                        ),
                    );
                }
            }
            "connect_port" if !misc => {
                let w = one_arg(cx, st, "PORT")?;
                connect_port = Some(uint(cx, w, 1, 65535, "connect_port")? as u16);
            }
            "bindto" | "bind_port" | "bind_if" | "fwmark" if !misc => {
                return cx.err(
                    st.pos(),
                    format!(
                        "{k} cannot be translated: uvs's checks leave from the balancer's own \
                         address, as the kernel routes them, unmarked"
                    ),
                )
            }
            "connect_timeout" if misc => {
                one_arg(cx, st, "SECONDS")?;
                cx.note(
                    st.pos(),
                    "connect_timeout does not apply to MISC_CHECK (misc_timeout does); ignored",
                );
            }
            "log_all_failures" => {
                bool_arg(cx, st)?;
                cx.note(
                    st.pos(),
                    "log_all_failures is not translated (logging only)",
                );
            }
            "url" if http => urls.push(st),
            "http_protocol" if http => {
                let w = one_arg(cx, st, "1.0|1.0C|1.1")?;
                if !matches!(w.text.as_str(), "1.0" | "1.0C" | "1.1") {
                    return cx.err(
                        w.pos,
                        format!("unknown http_protocol '{}': 1.0, 1.0C or 1.1", w.text),
                    );
                }
                if w.text != "1.1" {
                    cx.note(
                        w.pos,
                        "uvs's http check sends HTTP/1.1 requests with `Connection: close`, \
                         whatever http_protocol says",
                    );
                }
            }
            "fast_recovery" if http => {
                // keepalived's own default behaviour with one url and rise 1 is the same.
                bool_arg(cx, st)?;
            }
            "enable_sni" if ssl => enable_sni = Some((bool_arg(cx, st)?, st.pos())),
            "sni_name" if ssl => {
                sni_name = Some((one_arg(cx, st, "NAME")?.text.clone(), st.pos()));
            }
            "tls_compliant" if ssl => {
                bool_arg(cx, st)?;
                cx.note(
                    st.pos(),
                    "tls_compliant is not needed: uvs's https check reads the answer to its \
                     end or to the expected text, whatever the server's TLS closure",
                );
            }
            "enable_sni" | "sni_name" | "tls_compliant" if http => {
                return cx.err(st.pos(), format!("{k} applies to SSL_GET only; remove it"))
            }
            "misc_path" if misc => {
                if st.args().is_empty() {
                    return cx.err(st.pos(), "misc_path needs the command to run");
                }
                misc_path = Some((command_line(st.args(), target), st.pos()));
            }
            "misc_timeout" if misc => {
                let ms = timer_ms(cx, one_arg(cx, st, "SECONDS")?, "misc_timeout")?;
                misc_timeout = Some((ms, st.pos()));
            }
            "misc_dynamic" if misc => {
                return cx.err(
                    st.pos(),
                    "misc_dynamic cannot be translated: uvs does not set weights from exit \
                     codes; a command check that prints a number (0 idle .. 1000 saturated) \
                     reports load to the `load` scheduler instead. Remove misc_dynamic",
                )
            }
            "user" if misc => match st.args() {
                [u] => misc_user = Some(u.text.clone()),
                [_, group, ..] => {
                    return cx.err(
                        group.pos,
                        "a group cannot be translated: uvs runs the command with the user's \
                         own group; remove the group name",
                    )
                }
                [] => return cx.err(st.pos(), "user needs a value: user USERNAME"),
            },
            _ => {
                if !s.keyword(cx, st)? {
                    return cx.err(st.pos(), format!("unknown keyword '{k}' in {kw}"));
                }
            }
        }
    }
    let interval_ms = s.delay_loop.map_or(DEFAULT_DELAY_LOOP_MS, |(ms, _)| ms);
    let (kind, timeout) = match kw {
        "TCP_CHECK" => (Kind::Tcp, s.connect_timeout),
        "SSL_GET" | "HTTP_GET" => {
            if urls.is_empty() {
                return cx.err(pos, format!("{kw} has no url {{ path ... }} to request"));
            }
            let ssl = kw == "SSL_GET";
            // Each url's Host (and, over TLS, server name): its own virtualhost, else the
            // checker's (or inherited) one. uvs's check sends one for every url.
            let mut parsed = Vec::new();
            let mut host: Option<(Option<String>, Pos)> = None;
            for url in urls {
                let (u, own) = http_url(cx, url, ssl)?;
                let (name, at) = match own {
                    Some((h, at)) => (Some(h), at),
                    None => (
                        s.virtualhost_name.as_ref().map(|(h, _)| h.clone()),
                        s.virtualhost_name.as_ref().map_or(url.pos(), |(_, at)| *at),
                    ),
                };
                match &host {
                    Some((first, _)) if *first != name => {
                        return cx.err(
                            at,
                            format!(
                                "this url's Host ({}) differs from the first url's ({}): uvs's \
                                 {} check sends one Host header for every url; give the urls \
                                 the same virtualhost, or check the others with a MISC_CHECK",
                                name.as_deref().unwrap_or("the address"),
                                first.as_deref().unwrap_or("the address"),
                                if ssl { "https" } else { "http" }
                            ),
                        )
                    }
                    Some(_) => {}
                    None => host = Some((name, at)),
                }
                parsed.push(u);
            }
            let kind = if ssl {
                // The urls' common virtualhost is the checker's, for the server name.
                if let Some((Some(h), at)) = host {
                    s.virtualhost_name = Some((h, at));
                }
                Kind::Https {
                    urls: parsed,
                    sni: ssl_name(cx, enable_sni, sni_name, &s)?,
                }
            } else {
                Kind::Http {
                    urls: parsed,
                    host: host.and_then(|(h, _)| h),
                }
            };
            (kind, s.connect_timeout)
        }
        _ => {
            let Some((command, _)) = misc_path else {
                return cx.err(pos, "MISC_CHECK has no misc_path");
            };
            // keepalived waits `delay_loop` for a script without misc_timeout.
            (
                Kind::Command {
                    line: command,
                    user: misc_user,
                },
                misc_timeout.or(Some((interval_ms, s.delay_loop.map_or(pos, |(_, p)| p)))),
            )
        }
    };
    let mut timeout_ms = timeout.map_or(DEFAULT_CONNECT_TIMEOUT_MS, |(ms, _)| ms);
    if timeout_ms > interval_ms {
        let at = timeout
            .map(|(_, p)| p)
            .or(s.delay_loop.map(|(_, p)| p))
            .unwrap_or(pos);
        return cx.err(
            at,
            format!(
                "the check's timeout ({} s) is longer than its delay_loop ({} s): uvs starts a \
                 check only after the previous one finished within the interval; lower \
                 connect_timeout/misc_timeout or raise delay_loop",
                timeout_ms as f64 / 1000.0,
                interval_ms as f64 / 1000.0
            ),
        );
    }
    // keepalived gives each url its connect_timeout; uvs's check has one timeout for all
    // its urls: as many times connect_timeout, within the delay_loop.
    let urls = match &kind {
        Kind::Http { urls, .. } | Kind::Https { urls, .. } => urls.len() as u64,
        _ => 1,
    };
    if urls > 1 {
        let all = (timeout_ms * urls).min(interval_ms);
        cx.note(
            timeout.map_or(pos, |(_, p)| p),
            format!(
                "keepalived gives each of the {urls} urls the connect_timeout ({} s); uvs's \
                 check has one timeout for all of them: {} s{}",
                timeout_ms as f64 / 1000.0,
                all as f64 / 1000.0,
                if all < timeout_ms * urls {
                    " (the delay_loop, which a check may not exceed)"
                } else {
                    ""
                }
            ),
        );
        timeout_ms = all;
    }
    // keepalived's retry defaults: 0 for MISC_CHECK, 1 for the others.
    let retry = s
        .retry
        .map_or(if kw == "MISC_CHECK" { 0 } else { 1 }, |(n, _)| n);
    let port = match connect_port {
        Some(p) if p != target.port => Port::Fixed(p),
        _ => Port::Real,
    };
    Ok(Check {
        kind,
        interval_ms,
        timeout_ms,
        fall: retry + 1,
        port,
        start_down: s.alpha.is_some_and(|(on, _)| on),
        pos,
    })
}

/// The server name of an `SSL_GET`: keepalived sends `sni_name` (or the `virtualhost`) as
/// SNI when `enable_sni` is on, and the `virtualhost` as the Host header. uvs's https check
/// sends one name as both.
fn ssl_name(
    cx: &mut Cx<'_>,
    enable_sni: Option<(bool, Pos)>,
    sni_name: Option<(String, Pos)>,
    s: &Inherited,
) -> Result<Option<String>> {
    let enabled = enable_sni.is_some_and(|(on, _)| on);
    let host = s.virtualhost_name.clone();
    match (enabled, sni_name, host) {
        (true, Some((n, at)), Some((h, _))) if n != h => cx.err(
            at,
            format!(
                "sni_name {n} with virtualhost {h} cannot be translated: uvs's https check \
                 sends one name as both SNI and Host; keep one of them"
            ),
        ),
        (true, Some((n, _)), _) => Ok(Some(n)),
        (true, None, Some((h, _))) => Ok(Some(h)),
        (true, None, None) => {
            if let Some((_, at)) = enable_sni {
                cx.note(
                    at,
                    "enable_sni without sni_name or virtualhost: no name to send, so uvs \
                     sends no SNI (an address is never sent as SNI)",
                );
            }
            Ok(None)
        }
        (false, Some((_, at)), _) => {
            cx.note(
                at,
                "sni_name is not sent without enable_sni: ignored, as keepalived does",
            );
            Ok(s.virtualhost_name
                .clone()
                .map(|(h, at)| virtualhost_as_sni(cx, h, at)))
        }
        (false, None, Some((h, at))) => Ok(Some(virtualhost_as_sni(cx, h, at))),
        (false, None, None) => Ok(None),
    }
}

fn virtualhost_as_sni(cx: &mut Cx<'_>, host: String, at: Pos) -> String {
    cx.note(
        at,
        format!(
            "virtualhost {host} becomes the https check's `sni`: uvs sends it as the Host header, \
             and as SNI too (keepalived sends SNI only with enable_sni)"
        ),
    );
    host
}

/// One `url { }`, and its own `virtualhost` if it has one.
fn http_url(cx: &mut Cx<'_>, url: &Stmt, ssl: bool) -> Result<(Url, Option<(String, Pos)>)> {
    if !url.args().is_empty() {
        return cx.err(url.args()[0].pos, "url takes no value, only a block");
    }
    let Some(body) = &url.block else {
        return cx.err(url.pos(), "url needs a { path ... } block");
    };
    let mut path = None;
    let mut status = None;
    let mut body_text = None;
    let mut digest = None;
    let mut vhost = None;
    for st in body {
        let k = st.keyword();
        match k {
            "path" => path = Some(one_arg(cx, st, "PATH")?.text.clone()),
            "status_code" => {
                if st.args().is_empty() {
                    return cx.err(
                        st.pos(),
                        "status_code needs a value: a code or range, e.g. status_code 200-299",
                    );
                }
                // keepalived 2: codes and ranges, any number of them (`200-299 301`).
                let mut codes = Vec::new();
                for w in st.args() {
                    let (lo, hi) = w.text.split_once('-').unwrap_or((&w.text, &w.text));
                    let code = |cx: &mut Cx<'_>, text: &str| {
                        let word = Word {
                            text: text.to_string(),
                            pos: w.pos,
                        };
                        uint(cx, &word, 100, 599, "status_code")
                    };
                    let (lo, hi) = (code(cx, lo)?, code(cx, hi)?);
                    if lo > hi {
                        return cx.err(
                            w.pos,
                            format!("status_code {} is a backwards range", w.text),
                        );
                    }
                    codes.push(if lo == hi {
                        lo.to_string()
                    } else {
                        format!("{lo}-{hi}")
                    });
                }
                status = Some(codes.join(" "));
            }
            "digest" => {
                let w = one_arg(cx, st, "MD5")?;
                if w.text.len() != 32 || !w.text.chars().all(|c| c.is_ascii_hexdigit()) {
                    return cx.err(
                        w.pos,
                        format!("digest {} is not an MD5 (32 hex digits)", w.text),
                    );
                }
                digest = Some(w.text.to_ascii_lowercase());
            }
            "regex" => {
                let w = one_arg(cx, st, "TEXT")?;
                if w.text.chars().any(|c| "\\^$.|?*+()[]{}".contains(c)) {
                    return cx.err(
                        w.pos,
                        "this regex cannot be translated: uvs's http check looks for a plain \
                         text in the body (no regular expressions)",
                    );
                }
                body_text = Some(w.text.clone());
            }
            "virtualhost" => {
                vhost = Some((one_arg(cx, st, "NAME")?.text.clone(), st.pos()));
            }
            "regex_no_match" | "regex_options" | "regex_stack" | "regex_min_offset"
            | "regex_max_offset" => {
                return cx.err(
                    st.pos(),
                    format!("{k} cannot be translated: uvs's http check has no regexes"),
                )
            }
            "tls_compliant" if ssl => {
                bool_arg(cx, st)?;
            }
            "tls_compliant" => {
                return cx.err(st.pos(), "tls_compliant applies to SSL_GET only; remove it")
            }
            _ => return cx.err(st.pos(), format!("unknown keyword '{k}' in url")),
        }
    }
    let Some(path) = path else {
        return cx.err(url.pos(), "url has no path");
    };
    Ok((
        Url {
            path,
            expect_status: status.unwrap_or_else(|| DEFAULT_STATUS.to_string()),
            expect_body: body_text,
            expect_digest: digest,
        },
        vhost,
    ))
}
