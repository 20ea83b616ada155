//! The HTTP endpoint at `metrics.listen`: `GET /metrics` (Prometheus text), and, when the
//! daemon serves it, the read-only status page `GET /` with its data `GET /status.json`.
//!
//! Connections go through `crate::gate`, as the admin socket's do: one thread reads every
//! client without blocking until it holds a whole request head (httparse, hyper's parser,
//! says when), so idle, slow or flooding clients never hold up a scrape or the daemon.
//! Off-the-shelf blocking servers were not used for this: tiny_http 0.12, for one, gives each
//! connection its own thread with no bound (200 idle connections: 345 threads), reads header
//! lines without a length limit (a 20 MiB line: +24 MiB resident) or a deadline (a client
//! dripping a byte every 100 ms is held forever), and its accept thread ends for good on the
//! first accept error (EMFILE: 40 idle connections under a 64-descriptor limit, and it
//! refuses every connection from then on), which would undo exactly these protections. Answers are whole, so each is written
//! here with its length, one request per connection (`Connection: close`). `/metrics` and
//! `/status.json` are sent gzip-compressed to a client whose `Accept-Encoding` takes gzip,
//! as Prometheus's does (5 000 services of four real servers: 29 MB of text, 1.5 MB
//! compressed); other clients get them as they are.

use crate::gate::{self, Ending, Limits, Refusal};
use crate::snapshot::Snapshot;
use crate::statuspage::StatusDoc;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use uvs_dataplane::wake::Stop;

/// What the endpoint renders on each scrape.
pub type SnapshotSource = Arc<dyn Fn() -> Snapshot + Send + Sync>;
/// The exposition text `/metrics` answers with, rendered per scrape.
pub type TextSource = Arc<dyn Fn() -> String + Send + Sync>;
/// What `/status.json` serves on each poll.
pub type StatusSource = Arc<dyn Fn() -> StatusDoc + Send + Sync>;

/// What the endpoint serves.
#[derive(Clone)]
pub struct Routes {
    /// `/metrics`: the exposition text.
    pub metrics: TextSource,
    /// `/` and `/status.json`; `None`: only `/metrics`.
    pub status: Option<StatusSource>,
}

impl Routes {
    /// Only `/metrics`.
    pub fn metrics(source: SnapshotSource) -> Routes {
        Routes::text(Arc::new(move || crate::metrics::render(&source())))
    }

    /// Only `/metrics`, with text rendered by `source` (member mode has no [`Snapshot`]).
    pub fn text(source: TextSource) -> Routes {
        Routes {
            metrics: source,
            status: None,
        }
    }
}

/// Time a client has, from connecting, to send its whole request head.
pub const REQUEST_TIME: Duration = Duration::from_secs(2);
/// Clients connected and still sending their request, at most.
pub const MAX_WAITING: usize = 64;
/// Longest request head accepted.
const MAX_HEAD: usize = 8192;
/// Most header lines accepted (a Prometheus scrape sends about five, a browser about 15).
const MAX_HEADERS: usize = 64;

const LIMITS: Limits = Limits {
    max_waiting: MAX_WAITING,
    request_time: REQUEST_TIME,
    max_request: MAX_HEAD,
    workers: 2,
    queue: 16,
    answer_time: Duration::from_secs(5),
};

/// Content type of the status page.
pub const HTML: &str = "text/html; charset=utf-8";
/// Content type of `/status.json`.
pub const JSON: &str = "application/json";
/// The page loads nothing from anywhere: its CSS and script are inline and it only fetches
/// `/status.json` from where it came from.
const PAGE_POLICY: &str =
    "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; \
     script-src 'unsafe-inline'; connect-src 'self'; img-src data:\r\n";

/// Binds `listen` and serves `GET /metrics` until `stop` is set (see [`serve_listener`]).
pub fn serve(
    listen: SocketAddr,
    source: SnapshotSource,
    stop: Arc<Stop>,
) -> io::Result<JoinHandle<()>> {
    serve_routes(listen, Routes::metrics(source), stop)
}

/// Binds `listen` and serves `routes` until `stop` is set.
pub fn serve_routes(
    listen: SocketAddr,
    routes: Routes,
    stop: Arc<Stop>,
) -> io::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(listen).map_err(|e| listen_error(listen, &e))?;
    serve_listener_routes(listener, routes, stop)
}

/// The error for `listen` that could not be bound: with what to do when the port is a
/// privileged one (below 1024) and uvsd runs without the capability for it, as the
/// package's unit does.
pub fn listen_error(listen: SocketAddr, e: &io::Error) -> io::Error {
    let hint = if e.kind() == io::ErrorKind::PermissionDenied && listen.port() < 1024 {
        " — a port below 1024 needs root or CAP_NET_BIND_SERVICE (under the uvsd unit: \
         AmbientCapabilities= and CapabilityBoundingSet= in a drop-in), or use a higher port"
    } else {
        ""
    };
    io::Error::new(
        e.kind(),
        format!("cannot listen for metrics on {listen}: {e}{hint}"),
    )
}

/// Serves `GET /metrics` (and `HEAD`) on a bound listener until `stop` is set; other paths get
/// 404, other methods 405, unparseable requests 400.
///
/// Served through `crate::gate`: a client has [`REQUEST_TIME`] to send its request head
/// (else 408), at most [`MAX_WAITING`] may be mid-request (one more and the longest-waiting
/// gets 503), and two threads render and write answers, so idle or slow clients never delay
/// a scrape. One request per connection (`Connection: close`), as Prometheus expects.
pub fn serve_listener(
    listener: TcpListener,
    source: SnapshotSource,
    stop: Arc<Stop>,
) -> io::Result<JoinHandle<()>> {
    serve_listener_routes(listener, Routes::metrics(source), stop)
}

/// Serves `/metrics` with the text `source` renders, as [`serve_listener`] does.
pub fn serve_rendered(
    listener: TcpListener,
    source: TextSource,
    stop: Arc<Stop>,
) -> io::Result<JoinHandle<()>> {
    serve_listener_routes(listener, Routes::text(source), stop)
}

/// [`serve_listener`] for `routes`: with a status source also `/` and `/status.json`.
pub fn serve_listener_routes(
    listener: TcpListener,
    routes: Routes,
    stop: Arc<Stop>,
) -> io::Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let protocol = Arc::new(Http { routes });
    std::thread::Builder::new()
        .name("uvs-metrics".into())
        .spawn(move || gate::run("uvs-metrics", listener, LIMITS, protocol, &stop))
}

/// HTTP/1.x, one request per connection.
struct Http {
    routes: Routes,
}

impl Http {
    fn not_found(&self) -> &'static str {
        if self.routes.status.is_some() {
            "not found: the status page is at /, its data at /status.json, metrics at /metrics\n"
        } else {
            "not found: metrics are at /metrics\n"
        }
    }
}

impl gate::Protocol for Http {
    fn complete(&self, request: &[u8]) -> bool {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        // An error is final too: it gets its answer at once.
        !matches!(
            httparse::Request::new(&mut headers).parse(request),
            Ok(httparse::Status::Partial)
        )
    }

    fn answer(&self, request: &[u8], ending: Ending) -> Vec<u8> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(request) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) if ending == Ending::TooLong => {
                return text("431 Request Header Fields Too Large", "", false)
            }
            Err(httparse::Error::TooManyHeaders) => {
                return text("431 Request Header Fields Too Large", "", false)
            }
            Ok(httparse::Status::Partial) | Err(_) => {
                return text("400 Bad Request", "bad request\n", false)
            }
        }
        let gzip = accepts_gzip(req.headers);
        let method = req.method.unwrap_or_default();
        let path = req.path.unwrap_or_default();
        let path = path.split('?').next().unwrap_or_default();
        let head_only = method == "HEAD";
        if method != "GET" && !head_only {
            let only = if self.routes.status.is_some() {
                "only GET and HEAD\n"
            } else {
                "only GET /metrics\n"
            };
            return text("405 Method Not Allowed", only, false);
        }
        match (path, &self.routes.status) {
            ("/metrics", _) => encoded(
                crate::metrics::CONTENT_TYPE,
                "",
                (self.routes.metrics)().as_bytes(),
                head_only,
                gzip,
            ),
            ("/" | "/index.html", Some(_)) => response(
                "200 OK",
                HTML,
                PAGE_POLICY,
                crate::statuspage::PAGE.as_bytes(),
                head_only,
            ),
            ("/status.json", Some(status)) => {
                let body = serde_json::to_vec(&status()).unwrap_or_else(|e| {
                    log::error!("status.json: {e}");
                    b"{}".to_vec()
                });
                encoded(JSON, "Cache-Control: no-store\r\n", &body, head_only, gzip)
            }
            _ => text("404 Not Found", self.not_found(), head_only),
        }
    }

    fn refusal(&self, why: Refusal) -> Vec<u8> {
        match why {
            Refusal::Slow => text(
                "408 Request Timeout",
                &format!("request not complete within {} s\n", REQUEST_TIME.as_secs()),
                false,
            ),
            Refusal::Crowded => text(
                "503 Service Unavailable",
                &format!(
                    "too many clients ({MAX_WAITING}) connected without sending a request; this \
                     one had waited longest\n"
                ),
                false,
            ),
            Refusal::Busy => text(
                "503 Service Unavailable",
                "too many requests at once; try again\n",
                false,
            ),
        }
    }
}

/// A plain-text answer (errors and refusals).
fn text(status: &str, body: &str, head_only: bool) -> Vec<u8> {
    let extra = if status.starts_with("405") {
        "Allow: GET, HEAD\r\n"
    } else if status.starts_with("503") {
        "Retry-After: 1\r\n"
    } else {
        ""
    };
    response(
        status,
        "text/plain; charset=utf-8",
        extra,
        body.as_bytes(),
        head_only,
    )
}

/// Whether a request's `Accept-Encoding` takes gzip (RFC 9110 §12.5.3): `gzip`, `x-gzip`
/// or `*` listed without `q=0`. Without the header, or with `identity` alone, the answer
/// goes as it is.
fn accepts_gzip(headers: &[httparse::Header<'_>]) -> bool {
    let mut gzip = None;
    let mut any = None;
    let values = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("accept-encoding"))
        .filter_map(|h| std::str::from_utf8(h.value).ok());
    for item in values.flat_map(|v| v.split(',')) {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        // A weight of 0 refuses the coding; a malformed one is taken as given.
        let refused = parts.any(|p| {
            let p = p.trim();
            let q = p
                .strip_prefix("q=")
                .or_else(|| p.strip_prefix("Q="))
                .map(str::trim);
            q.and_then(|q| q.parse::<f32>().ok()) == Some(0.0)
        });
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(!refused);
        } else if coding == "*" {
            any = Some(!refused);
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// A `200 OK` with `body`, gzip-compressed when `gzip` (the client takes it). Compressed at
/// the fastest level: Prometheus text shrinks about tenfold at it, and the answer threads
/// are two.
fn encoded(content_type: &str, extra: &str, body: &[u8], head_only: bool, gzip: bool) -> Vec<u8> {
    use std::io::Write as _;
    // Writing into a Vec cannot fail; if it did, the text goes as it is.
    let packed = gzip
        .then(|| {
            let level = flate2::Compression::fast();
            let mut z = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 8), level);
            z.write_all(body).and_then(|()| z.finish()).ok()
        })
        .flatten();
    let (body, coding) = match &packed {
        Some(p) => (&p[..], "Content-Encoding: gzip\r\n"),
        None => (body, ""),
    };
    let extra = format!("{extra}{coding}Vary: Accept-Encoding\r\n");
    response("200 OK", content_type, &extra, body, head_only)
}

/// The whole answer; `extra` is header lines, each ending in CRLF. A HEAD answer has the
/// GET answer's headers, Content-Length included, and no body (RFC 9110 §9.3.2).
fn response(
    status: &str,
    content_type: &str,
    extra: &str,
    body: &[u8],
    head_only: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}\
         X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;

    fn with(values: &[&str]) -> bool {
        let headers: Vec<httparse::Header<'_>> = values
            .iter()
            .map(|v| httparse::Header {
                name: "Accept-Encoding",
                value: v.as_bytes(),
            })
            .collect();
        accepts_gzip(&headers)
    }

    #[test]
    fn gzip_is_taken_when_listed_without_a_zero_weight() {
        // Prometheus's scrape and curl --compressed.
        assert!(with(&["gzip"]));
        assert!(with(&["deflate, gzip"]));
        assert!(with(&["br;q=1.0, gzip;q=0.8, *;q=0.1"]));
        assert!(with(&["GZIP"]));
        assert!(with(&["x-gzip"]));
        assert!(with(&["*"]));
        assert!(with(&["identity", "gzip"]), "two header lines");
        // Not without the header, nor when refused or not named.
        assert!(!with(&[]));
        assert!(!with(&["identity"]));
        assert!(!with(&["br, deflate"]));
        assert!(!with(&["gzip;q=0"]));
        assert!(!with(&["gzip; q=0.0, identity"]));
        assert!(!with(&["*;q=0"]));
        // A refusal of gzip by name wins over the wildcard.
        assert!(!with(&["gzip;q=0, *"]));
        assert!(with(&["*;q=0, gzip"]));
    }
}
