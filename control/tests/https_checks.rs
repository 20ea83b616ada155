//! The https health check (keepalived's SSL_GET) against a TLS server in the test: rustls,
//! with a CA and a server certificate made by rcgen at test time.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use uvs_config::{HealthCheck, HealthCheckKind, HttpUrl, StatusCodes};
use uvs_control::health::run_check;

mod common;

const SHORT: Duration = Duration::from_millis(1000);
/// The name on the server's certificate (besides 127.0.0.1).
const NAME: &str = "www.uvs-test.example";

/// A CA, and a server certificate it signed for [`NAME`] and 127.0.0.1.
struct Pki {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
}

fn pki() -> Pki {
    pki_of("uvs test CA")
}

fn pki_of(ca_name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let mut params =
        CertificateParams::new(vec![NAME.to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, NAME);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    Pki {
        ca_pem: ca.pem(),
        chain: vec![cert.der().clone()],
        key: PrivatePkcs8KeyDer::from(key.serialize_der()),
    }
}

/// What the server saw of one connection: the SNI name, and the request head (empty when
/// the handshake failed).
#[derive(Debug)]
struct Seen {
    sni: Option<String>,
    request: String,
}

/// Serves `responses` over TLS, one connection each, in order, reading the request head
/// first.
fn tls_server(pki: &Pki, responses: Vec<&'static str>) -> (SocketAddr, JoinHandle<Vec<Seen>>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), PrivateKeyDer::Pkcs8(pki.key.clone_key()))
        .unwrap();
    let config = Arc::new(config);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for resp in responses {
            let (tcp, _) = l.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let conn = ServerConnection::new(Arc::clone(&config)).unwrap();
            let mut s = StreamOwned::new(conn, tcp);
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let sni = s.conn.server_name().map(str::to_string);
            if !head.is_empty() {
                let _ = s.write_all(resp.as_bytes());
                s.conn.send_close_notify();
                let _ = s.flush();
            }
            seen.push(Seen {
                sni,
                request: String::from_utf8_lossy(&head).into_owned(),
            });
        }
        seen
    });
    (addr, h)
}

fn https(sni: Option<&str>, verify: bool, ca_file: Option<&PathBuf>) -> HealthCheck {
    HealthCheck {
        kind: HealthCheckKind::Https {
            urls: vec![HttpUrl {
                path: "/healthz".into(),
                expect_status: StatusCodes::one(200),
                expect_body: Some("ok".into()),
                expect_digest: None,
            }],
            sni: sni.map(str::to_string),
            verify,
            ca_file: ca_file.map(|p| p.display().to_string()),
        },
        interval: Duration::from_secs(2),
        timeout: SHORT,
        rise: 1,
        fall: 1,
        port: None,
        start_down: false,
    }
}

/// A file removed when the test ends, pass or fail.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, text: &str) -> TempFile {
        let p = std::env::temp_dir().join(format!("uvs-https-{tag}-{}.pem", std::process::id()));
        std::fs::write(&p, text).unwrap();
        TempFile(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

#[test]
fn up_when_the_status_and_body_match_without_verification() {
    let pki = pki();
    let (addr, server) = tls_server(
        &pki,
        vec![
            OK,
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnope",
        ],
    );
    // verify off (the default, as SSL_GET's): a certificate from an unknown CA is fine.
    run_check(&https(None, false, None), addr).unwrap();
    let err = run_check(&https(None, false, None), addr).unwrap_err();
    assert!(err.contains("status 503, expected 200"), "{err}");
    let err = run_check(&https(None, false, None), addr).unwrap_err();
    assert!(err.contains("body does not contain"), "{err}");

    let seen = server.join().unwrap();
    assert_eq!(seen[0].sni, None, "no SNI for an address (RFC 6066 §3)");
    let req = seen[0].request.to_ascii_lowercase();
    assert!(req.starts_with("get /healthz http/1.1\r\n"), "{req}");
    assert!(req.contains(&format!("\r\nhost: {addr}\r\n")), "{req}");
}

#[test]
fn sni_is_sent_and_names_the_host() {
    let pki = pki();
    let (addr, server) = tls_server(&pki, vec![OK]);
    run_check(&https(Some(NAME), false, None), addr).unwrap();
    let seen = server.join().unwrap();
    assert_eq!(seen[0].sni.as_deref(), Some(NAME));
    let req = seen[0].request.to_ascii_lowercase();
    assert!(
        req.contains(&format!("\r\nhost: {NAME}:{}\r\n", addr.port())),
        "{req}"
    );
}

#[test]
fn verification_against_the_ca_file() {
    let pki = pki();
    let ca = TempFile::new("ca", &pki.ca_pem);
    let other = TempFile::new("other-ca", &pki_of("another uvs test CA").ca_pem);
    let (addr, server) = tls_server(&pki, vec![OK, OK, OK, OK]);
    // The name on the certificate, and its address: valid.
    run_check(&https(Some(NAME), true, Some(&ca.0)), addr).unwrap();
    run_check(&https(None, true, Some(&ca.0)), addr).unwrap();
    // A name the certificate does not carry.
    let err = run_check(
        &https(Some("other.uvs-test.example"), true, Some(&ca.0)),
        addr,
    )
    .unwrap_err();
    assert!(
        err.contains("TLS") && err.contains("not valid for name"),
        "{err}"
    );
    // Signed by a CA the check does not trust.
    let err = run_check(&https(Some(NAME), true, Some(&other.0)), addr).unwrap_err();
    assert!(
        err.contains("TLS") && err.contains("UnknownIssuer"),
        "{err}"
    );
    let seen = server.join().unwrap();
    assert!(!seen[0].request.is_empty() && !seen[1].request.is_empty());
    assert!(
        seen[2].request.is_empty() && seen[3].request.is_empty(),
        "no request is sent over a refused certificate: {seen:?}"
    );

    // An unreadable CA file fails the check, saying which.
    let missing = PathBuf::from("/nonexistent/uvs-ca.pem");
    let err = run_check(&https(None, true, Some(&missing)), addr).unwrap_err();
    assert!(err.contains("/nonexistent/uvs-ca.pem"), "{err}");
}

/// A self-signed certificate made the usual way (`openssl req -x509` marks it CA:TRUE),
/// served by the real server and pinned as the `ca_file`: OpenSSL (curl --cacert,
/// HAProxy's ca-file) accepts it, rustls refuses a CA certificate as a server's. The
/// check is down either way, but the operator is told why and what to do instead of
/// `Other(OtherError(CaUsedAsEndEntity))`.
#[test]
fn a_pinned_self_signed_ca_certificate_is_explained() {
    let mut params =
        CertificateParams::new(vec![NAME.to_string(), "127.0.0.1".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, NAME);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let pki = Pki {
        ca_pem: cert.pem(),
        chain: vec![cert.der().clone()],
        key: PrivatePkcs8KeyDer::from(key.serialize_der()),
    };
    let pinned = TempFile::new("self-signed-ca", &pki.ca_pem);
    let (addr, server) = tls_server(&pki, vec![OK]);
    let err = run_check(&https(Some(NAME), true, Some(&pinned.0)), addr).unwrap_err();
    assert!(
        err.contains("CA:TRUE") && err.contains("verify: false"),
        "{err}"
    );
    server.join().unwrap();
}

#[test]
fn down_when_the_handshake_fails() {
    // A plain HTTP server on the port: the TLS handshake gets an HTTP answer.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    });
    let err = run_check(&https(None, false, None), addr).unwrap_err();
    assert!(err.contains("TLS"), "{err}");
    server.join().unwrap();
}

#[test]
fn timeout_bounds_a_stalled_handshake() {
    // Accepted by the kernel, never answered: the ClientHello gets no reply.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let mut check = https(None, false, None);
    check.timeout = Duration::from_millis(300);
    let t = Instant::now();
    let err = run_check(&check, addr).unwrap_err();
    let took = t.elapsed();
    assert!(err.contains("within 300ms"), "{err}");
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(1000),
        "{took:?}"
    );
    drop(l);
}

/// Stopping the monitor interrupts an https check in its handshake at once, instead of
/// waiting for the check's timeout.
#[test]
fn stop_interrupts_a_handshake_in_progress() {
    use uvs_config::{Protocol, ServiceKey};
    use uvs_control::health::{HealthMonitor, HealthTarget};
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut check = https(None, false, None);
    check.interval = Duration::from_secs(10);
    check.timeout = Duration::from_secs(5);
    let target = HealthTarget {
        service: ServiceKey::addr("198.18.100.1".parse().unwrap(), Protocol::Tcp, 443),
        real: silent.local_addr().unwrap(),
        check,
        pools: vec![],
    };
    let monitor = HealthMonitor::start(vec![target], Arc::new(|_: &HealthTarget, _| {}));
    std::thread::sleep(Duration::from_millis(150));
    let t = Instant::now();
    monitor.stop();
    // A check waits in 50 ms slices (`STOP_SLICE`); not waiting out the 5 s timeout is the
    // point, so the bound leaves a loaded machine room.
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

/// keepalived's `digest`: the MD5 of the whole body (here "ok", as `md5sum` prints it),
/// decoded from chunks first.
#[test]
fn digest_of_the_body() {
    let pki = pki();
    let chunked =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\no\r\n1\r\nk\r\n0\r\n\r\n";
    let (addr, server) = tls_server(&pki, vec![OK, chunked, OK]);
    let with_digest = |d: &str| {
        let mut c = https(None, false, None);
        if let HealthCheckKind::Https { urls, .. } = &mut c.kind {
            urls[0].expect_digest = Some(d.to_string());
        }
        c
    };
    run_check(&with_digest("444bcb3a3fcf8389296c49467f27e1d6"), addr).unwrap();
    run_check(&with_digest("444bcb3a3fcf8389296c49467f27e1d6"), addr).unwrap();
    let err = run_check(&with_digest("4101bef8794fed986e95dfb54850c68b"), addr).unwrap_err();
    assert!(
        err.contains("body MD5 444bcb3a3fcf8389296c49467f27e1d6, expected 4101bef8"),
        "{err}"
    );
    server.join().unwrap();
}

/// A `ca_file` uvsd cannot read is refused when the configuration loads (naming the
/// service and the file), not found out later by every check failing.
#[test]
#[ignore = "needs root: uvsd starts only as root or with its capabilities (scripts/test.sh runs it as root)"]
fn an_unreadable_ca_file_is_refused_at_start() {
    common::require_root("an_unreadable_ca_file_is_refused_at_start");
    let dir = std::env::temp_dir().join(format!("uvs-https-start-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("uvs.yaml");
    let demo = common::demo_config();
    let text = demo.replacen(
        "      type: http\n",
        "      type: https\n      verify: true\n      ca_file: /nonexistent/uvs-ca.pem\n",
        1,
    );
    assert_ne!(text, demo);
    std::fs::write(&cfg, &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_uvsd"))
        .args(["--config", cfg.to_str().unwrap(), "--run-for", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    assert!(
        text.contains("service 'web4': health_check: cannot read ca_file /nonexistent/uvs-ca.pem"),
        "{text}"
    );
}
