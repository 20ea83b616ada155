//! The `http` and `https` health checks (keepalived's `HTTP_GET` and `SSL_GET`, HAProxy's
//! `check` and `check-ssl`): one `GET` sent by ureq, with rustls for TLS.
//!
//! ureq speaks HTTP/1.1 (framing, chunked bodies, TLS); this module gives it the connection.
//! [`Connect`] makes the TCP connection to the real server (whatever the URL's host says:
//! [`Fixed`] resolves every name to the checked address, so that `sni` can name a virtual
//! host that resolves elsewhere, or nowhere), and [`Stream`] does every read and write in
//! short slices, so that one deadline bounds the connect, the TLS handshake, the request and
//! the whole answer, and stopping the monitor interrupts a check at any step.
//!
//! Like keepalived, the check follows no redirect, reuses no connection (`Connection:
//! close`), and verifies no certificate unless told to (`verify`).

use crate::health::{connect_until, STOPPED, STOP_SLICE};
use md5::{Digest, Md5};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ureq::tls::{parse_pem, Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, RustlsConnector, Transport,
};
use ureq::Agent;
use uvs_config::{HttpUrl, StatusCodes};

/// Largest response body read while looking for the expected text.
const MAX_BODY: usize = 1 << 20;

/// The TLS side of an `https` check.
#[derive(Clone, Copy, Debug)]
pub struct Tls<'a> {
    /// The server name for SNI, certificate verification and the Host header; `None`:
    /// the address (no SNI is sent for an address, RFC 6066 §3).
    pub sni: Option<&'a str>,
    /// Whether the certificate chain and name must be valid.
    pub verify: bool,
    /// The trusted CAs' PEM file when verifying; `None`: the Mozilla roots.
    pub ca_file: Option<&'a str>,
}

/// One check's request and what its answer must be.
#[derive(Clone, Copy, Debug)]
pub struct Get<'a> {
    pub addr: SocketAddr,
    pub path: &'a str,
    pub expect_status: &'a StatusCodes,
    pub expect_body: Option<&'a str>,
    /// The body's MD5 in lower-case hex (keepalived's `digest`).
    pub expect_digest: Option<&'a str>,
    /// The Host header's name for http (keepalived's `virtualhost`; https sends `tls.sni`);
    /// `None`: the address.
    pub host: Option<&'a str>,
    /// `Some` for https.
    pub tls: Option<Tls<'a>>,
}

/// Runs one check of several urls, in order, within one `timeout`: every url must pass
/// (keepalived's `HTTP_GET` with several `url` blocks). With more than one, the error names
/// the url that failed.
pub fn get_urls(
    addr: SocketAddr,
    urls: &[HttpUrl],
    host: Option<&str>,
    tls: Option<Tls<'_>>,
    timeout: Duration,
    stop: &Arc<AtomicBool>,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    for u in urls {
        if Instant::now() >= deadline {
            return Err(format!(
                "GET {}: not sent, the check's {timeout:?} ran out on the urls before it",
                u.path
            ));
        }
        let req = Get {
            addr,
            path: &u.path,
            expect_status: &u.expect_status,
            expect_body: u.expect_body.as_deref(),
            expect_digest: u.expect_digest.as_deref(),
            host,
            tls,
        };
        get_until(&req, deadline, timeout, stop).map_err(|e| {
            if urls.len() > 1 && e != STOPPED {
                format!("GET {}: {e}", u.path)
            } else {
                e
            }
        })?;
    }
    Ok(())
}

/// Runs one check within `timeout`; `Err` says why it failed ([`STOPPED`] when `stop` was
/// raised).
pub fn get(req: &Get<'_>, timeout: Duration, stop: &Arc<AtomicBool>) -> Result<(), String> {
    get_until(req, Instant::now() + timeout, timeout, stop)
}

/// [`get`] ending at `deadline`; `timeout` is the check's, for the messages.
fn get_until(
    req: &Get<'_>,
    deadline: Instant,
    timeout: Duration,
    stop: &Arc<AtomicBool>,
) -> Result<(), String> {
    let addr = req.addr;
    // Why the connection gave up, in the check's words: ureq reports it as an I/O error.
    let why = Arc::new(Mutex::new(None::<String>));
    let tls_config = match req.tls {
        Some(t) => TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .disable_verification(!t.verify)
            .root_certs(match t.ca_file {
                Some(f) if t.verify => RootCerts::new_with_certs(&ca_certs(f)?),
                _ => RootCerts::WebPki,
            })
            .build(),
        None => TlsConfig::default(),
    };
    let config = Agent::config_builder()
        // Straight to the real server, whatever HTTP(S)_PROXY says in uvsd's environment.
        .proxy(None)
        .http_status_as_error(false)
        .max_redirects(0)
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
        .user_agent("uvs-health-check")
        .accept("*/*")
        .tls_config(tls_config)
        .build();
    let connector = Connect {
        addr,
        deadline,
        timeout,
        stop: Arc::clone(stop),
        why: Arc::clone(&why),
    }
    .chain(RustlsConnector::default());
    let agent = Agent::with_parts(config, connector, Fixed(addr));
    let url = url(req);
    let explain = |e: Failure<'_>| lock(&why).take().unwrap_or_else(|| describe(e, addr));
    let mut request = agent.get(&url).header("Connection", "close");
    if let (None, Some(name)) = (req.tls, req.host) {
        // keepalived 2 sends its virtualhost as the Host header as written, without a port.
        request = request.header("Host", name);
    }
    let mut response = request.call().map_err(|e| explain(Failure::Ureq(&e)))?;
    let status = response.status().as_u16();
    if !req.expect_status.contains(status) {
        return Err(format!("status {status}, expected {}", req.expect_status));
    }
    if req.expect_body.is_none() && req.expect_digest.is_none() {
        return Ok(());
    }
    // Read as far as the text, no further, unless the digest needs the whole body: a check
    // decides as early as the bytes allow.
    let mut body = Vec::new();
    let mut reader = response.body_mut().as_reader();
    let mut buf = [0u8; 8192];
    loop {
        let found = req.expect_body.is_none_or(|t| find(&body, t.as_bytes()));
        if found && req.expect_digest.is_none() {
            return Ok(());
        }
        match reader.read(&mut buf) {
            Ok(0) => {
                if let Some(want) = req.expect_body.filter(|_| !found) {
                    return Err(format!("body does not contain {want:?}"));
                }
                return match req.expect_digest {
                    Some(want) => {
                        let got = format!("{:x}", Md5::digest(&body));
                        if got.eq_ignore_ascii_case(want) {
                            Ok(())
                        } else {
                            Err(format!("body MD5 {got}, expected {want}"))
                        }
                    }
                    None => Ok(()),
                };
            }
            Ok(n) => {
                if body.len() + n > MAX_BODY {
                    return Err(format!(
                        "response larger than {MAX_BODY} bytes without the expected body \
                         (or too large to digest)"
                    ));
                }
                body.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(explain(Failure::Io(&e))),
        }
    }
}

/// An error as ureq returned it: from the request, or from reading the body.
#[derive(Clone, Copy)]
enum Failure<'a> {
    Ureq(&'a ureq::Error),
    Io(&'a io::Error),
}

/// Says what failed: the TLS handshake (a certificate refused, no TLS on the port), the
/// connection (closed before a complete answer), or the HTTP exchange.
fn describe(e: Failure<'_>, addr: SocketAddr) -> String {
    let io = match e {
        Failure::Ureq(ureq::Error::Rustls(r)) => return tls_failure(addr, r),
        Failure::Ureq(ureq::Error::Tls(r)) => return format!("TLS with {addr}: {r}"),
        Failure::Ureq(ureq::Error::Io(io)) | Failure::Io(io) => Some(io),
        Failure::Ureq(_) => None,
    };
    if let Some(r) = io
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return tls_failure(addr, r);
    }
    let text = match e {
        Failure::Ureq(e) => e.to_string(),
        Failure::Io(e) => e.to_string(),
    };
    let closed = io.is_some_and(|io| {
        matches!(
            io.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
        )
    }) || ["eof", "closed", "disconnected"]
        .iter()
        .any(|w| text.to_ascii_lowercase().contains(w));
    if closed {
        format!("connection closed without a complete HTTP response ({text})")
    } else {
        format!("{addr}: {text}")
    }
}

/// A refused handshake in the check's words, with what to do when rustls's own words do
/// not say it: a server certificate marked CA:TRUE (what `openssl req -x509` makes by
/// default), which OpenSSL accepts when it is pinned as the CA but rustls never accepts
/// as a server's.
fn tls_failure(addr: SocketAddr, e: &rustls::Error) -> String {
    let text = format!("TLS with {addr}: {e}");
    if text.contains("CaUsedAsEndEntity") {
        format!(
            "{text}: the server's certificate is a CA certificate (basicConstraints CA:TRUE), \
             which is never accepted as a server's; give the server one without it (openssl \
             req -x509 -addext basicConstraints=critical,CA:FALSE) or signed by the CA in \
             ca_file, or check with verify: false"
        )
    } else {
        text
    }
}

/// `http://198.18.1.11:8080/healthz`: the host is the address, or the `sni` (https) or `host`
/// (http) name, and the port is left out when it is the scheme's, so that the Host header
/// is what keepalived sends (`198.18.1.11`, `[2001:2::11]:8080`); an http check's `host` is
/// sent as the Host header as written, whatever the port (see [`get`]).
fn url(req: &Get<'_>) -> String {
    let (scheme, default_port) = match req.tls {
        Some(_) => ("https", 443),
        None => ("http", 80),
    };
    let name = match req.tls {
        Some(t) => t.sni,
        None => req.host,
    };
    let host = match (name, req.addr) {
        (Some(name), _) => name.to_string(),
        (None, SocketAddr::V4(a)) => a.ip().to_string(),
        (None, SocketAddr::V6(a)) => format!("[{}]", a.ip()),
    };
    let port = req.addr.port();
    if port == default_port {
        format!("{scheme}://{host}{}", req.path)
    } else {
        format!("{scheme}://{host}:{port}{}", req.path)
    }
}

/// Every https check's `ca_file` (with `verify`) can be read by uvsd and holds certificates.
/// Checked when a configuration is loaded, so that a mistyped path is refused with the file
/// instead of taking every server of the service down; the checks read it again each time.
pub fn check_ca_files(cfg: &uvs_config::Config) -> Result<(), String> {
    for s in &cfg.services {
        for check in s.health_checks() {
            let uvs_config::HealthCheck {
                kind:
                    uvs_config::HealthCheckKind::Https {
                        verify: true,
                        ca_file: Some(path),
                        ..
                    },
                ..
            } = check
            else {
                continue;
            };
            ca_certs(path).map_err(|e| format!("service '{}': health_check: {e}", s.name))?;
        }
    }
    Ok(())
}

/// The certificates of a PEM file, read at each check so that a renewed CA is picked up.
fn ca_certs(path: &str) -> Result<Vec<Certificate<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read ca_file {path}: {e}"))?;
    let mut certs = Vec::new();
    for item in parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(format!("ca_file {path}: {e}")),
        }
    }
    if certs.is_empty() {
        return Err(format!("ca_file {path} holds no PEM certificate"));
    }
    Ok(certs)
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every name is the checked address: the URL's host is only what the check sends as SNI
/// and Host.
#[derive(Debug)]
struct Fixed(SocketAddr);

impl Resolver for Fixed {
    fn resolve(
        &self,
        _uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut addrs = self.empty();
        addrs.push(self.0);
        Ok(addrs)
    }
}

/// Connects to the real server, interruptibly, within the check's deadline.
#[derive(Debug)]
struct Connect {
    addr: SocketAddr,
    deadline: Instant,
    timeout: Duration,
    stop: Arc<AtomicBool>,
    why: Arc<Mutex<Option<String>>>,
}

impl Connector<()> for Connect {
    type Out = Stream;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<Stream>, ureq::Error> {
        let tcp = connect_until(self.addr, self.deadline, self.timeout, &self.stop)
            .map_err(|w| give_up(&self.why, w))?;
        Ok(Some(Stream {
            tcp,
            buffers: LazyBuffers::new(16 * 1024, 4 * 1024),
            addr: self.addr,
            deadline: self.deadline,
            timeout: self.timeout,
            stop: Arc::clone(&self.stop),
            why: Arc::clone(&self.why),
        }))
    }
}

/// Records why the check gave up and hands ureq an error to stop with.
fn give_up(why: &Mutex<Option<String>>, reason: String) -> ureq::Error {
    let err = io::Error::other(reason.clone());
    *lock(why) = Some(reason);
    ureq::Error::Io(err)
}

/// The check's TCP connection: reads and writes wait at most [`STOP_SLICE`] at a time, then
/// look at the stop flag and the deadline. (ureq's own timeouts are not set: this deadline
/// is the check's.)
#[derive(Debug)]
struct Stream {
    tcp: TcpStream,
    buffers: LazyBuffers,
    addr: SocketAddr,
    deadline: Instant,
    timeout: Duration,
    stop: Arc<AtomicBool>,
    why: Arc<Mutex<Option<String>>>,
}

impl Stream {
    /// How long the next read or write may wait, or why the check ends now.
    fn slice(&self) -> Result<Duration, ureq::Error> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(give_up(&self.why, STOPPED.into()));
        }
        let now = Instant::now();
        if now >= self.deadline {
            return Err(give_up(
                &self.why,
                format!(
                    "no complete answer from {} within {:?}",
                    self.addr, self.timeout
                ),
            ));
        }
        // Never zero: a zero timeout means "block" to the socket.
        Ok((self.deadline - now)
            .min(STOP_SLICE)
            .max(Duration::from_millis(1)))
    }
}

fn waits(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

impl Transport for Stream {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, _timeout: NextTimeout) -> Result<(), ureq::Error> {
        let mut sent = 0;
        while sent < amount {
            let slice = self.slice()?;
            self.tcp.set_write_timeout(Some(slice))?;
            let out = &self.buffers.output()[sent..amount];
            match (&self.tcp).write(out) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => sent += n,
                Err(e) if waits(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn await_input(&mut self, _timeout: NextTimeout) -> Result<bool, ureq::Error> {
        loop {
            let slice = self.slice()?;
            self.tcp.set_read_timeout(Some(slice))?;
            let input = self.buffers.input_append_buf();
            match (&self.tcp).read(input) {
                Ok(n) => {
                    self.buffers.input_appended(n);
                    return Ok(n > 0);
                }
                Err(e) if waits(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn is_open(&mut self) -> bool {
        // Never reused: each check is a new connection, as keepalived's.
        false
    }
}
