//! The client lookup service (`client_lookup:` in the YAML): real servers behind FullNAT
//! ask who the client of one of their connections is, and uvsd answers from its connection
//! table.
//!
//! A FullNAT connection is stored with both tuples (`uvs_conntrack::Conn`): the original
//! one, client → VIP, and the reply one, real server → pool address:port, exactly as the
//! real server sees its connection (`ss -tn`: Local = server, Peer = pool). The question
//! names the reply tuple; one `ConnTable::lookup` (no walk, no lock) finds the entry, and its
//! original tuple is the answer. The wire format, its HMAC-SHA256 and the replay guard are
//! `uvs_agent::lookup`'s, shared with the asking side. Requests that do not verify, are stale
//! or replayed get no answer (they are counted and logged every 10 s at most), so the
//! service tells nothing to whoever lacks the key and reflects nothing.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use uvs_agent::lookup::{self, Outcome, ReplayGuard, Request};
use uvs_config::ClientLookup;
use uvs_conntrack::ConnView;
use uvs_conntrack::{Dir, FlowKey};
use uvs_dataplane::pipeline::conn_flags;
use uvs_dataplane::{IpKey, Shared};

/// Counters of the service.
#[derive(Debug, Default)]
pub struct LookupStats {
    pub found: AtomicU64,
    pub unknown: AtomicU64,
    pub refused: AtomicU64,
    /// Refusals by reason (rare: a lock is fine).
    by_reason: std::sync::Mutex<BTreeMap<&'static str, u64>>,
}

impl LookupStats {
    fn refuse(&self, why: lookup::Refused) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        *self
            .by_reason
            .lock()
            .expect("lookup stats lock")
            .entry(why.name())
            .or_default() += 1;
    }

    /// For `/metrics` and `uvsadm -L --json`.
    pub fn snapshot(&self) -> crate::snapshot::LookupSnapshot {
        crate::snapshot::LookupSnapshot {
            found: self.found.load(Ordering::Relaxed),
            unknown: self.unknown.load(Ordering::Relaxed),
            refused: self
                .by_reason
                .lock()
                .expect("lookup stats lock")
                .iter()
                .map(|(k, n)| (k.to_string(), *n))
                .collect(),
        }
    }
}

/// The running service; stops (and frees its port) when dropped.
pub struct LookupService {
    pub config: ClientLookup,
    pub stats: Arc<LookupStats>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LookupService {
    /// Binds `cfg.listen` (in the calling thread's network namespace) and answers there.
    pub fn start(shared: Arc<Shared>, cfg: ClientLookup) -> Result<LookupService> {
        let sock = UdpSocket::bind(cfg.listen)
            .with_context(|| format!("client_lookup: binding UDP {}", cfg.listen))?;
        // The stop flag is looked at this often.
        sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        let stats = Arc::new(LookupStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp, key) = (
            stats.clone(),
            stop.clone(),
            cfg.auth_key.clone().into_bytes(),
        );
        let thread = std::thread::Builder::new()
            .name("uvs-client-lookup".into())
            .spawn(move || serve(&sock, &shared, &key, &st, &sp))?;
        log::info!("client lookup: answering on UDP {}", cfg.listen);
        Ok(LookupService {
            config: cfg,
            stats,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for LookupService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What uvsd knows of the connection `req` names (its reply tuple).
pub fn answer(shared: &Shared, req: &Request) -> Outcome {
    let key = FlowKey {
        proto: req.protocol.number(),
        v6: req.server.is_ipv6(),
        src: IpKey::from_ip(req.server.ip()).addr,
        sport: req.server.port(),
        dst: IpKey::from_ip(req.peer.ip()).addr,
        dport: req.peer.port(),
    };
    match shared.conns.lookup(&key, shared.clock.now_ticks()) {
        // Only the reply direction: the asker is the real server. A persistence template
        // is no connection.
        Some(hit) if hit.dir == Dir::Reply && hit.flags() & conn_flags::TEMPLATE == 0 => {
            let o = hit.orig();
            let ip = |addr| IpKey { v6: o.v6, addr }.to_ip();
            Outcome::Found {
                client: SocketAddr::new(ip(o.src), o.sport),
                virtual_service: SocketAddr::new(ip(o.dst), o.dport),
            }
        }
        _ => Outcome::Unknown,
    }
}

fn serve(sock: &UdpSocket, shared: &Shared, key: &[u8], stats: &LookupStats, stop: &AtomicBool) {
    let mut guard = ReplayGuard::default();
    let mut buf = [0u8; 2048];
    let mut refused: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut last_log = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if !refused.is_empty() && last_log.elapsed() >= Duration::from_secs(10) {
            let what: Vec<String> = refused.iter().map(|(k, n)| format!("{k} {n}")).collect();
            log::warn!(
                "client lookup: refused requests (no answer sent): {}",
                what.join(", ")
            );
            refused.clear();
            last_log = Instant::now();
        }
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                log::warn!("client lookup: receiving: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let checked = Request::decode(&buf[..n], key)
            .and_then(|r| guard.check(&r, lookup::now_ms()).map(|()| r));
        let req = match checked {
            Ok(r) => r,
            Err(why) => {
                stats.refuse(why);
                *refused.entry(why.name()).or_default() += 1;
                log::debug!("client lookup: refused a request from {from}: {why}");
                continue;
            }
        };
        let outcome = answer(shared, &req);
        match outcome {
            Outcome::Found { .. } => stats.found.fetch_add(1, Ordering::Relaxed),
            Outcome::Unknown => stats.unknown.fetch_add(1, Ordering::Relaxed),
        };
        log::debug!(
            "client lookup from {from}: {} {} <-> {}: {outcome:?}",
            req.protocol.name(),
            req.server,
            req.peer
        );
        if let Err(e) = sock.send_to(&lookup::encode_answer(&req.nonce, &outcome, key), from) {
            log::debug!("client lookup: answering {from}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uvs_agent::lookup::Protocol;
    use uvs_conntrack::Conn;
    use uvs_dataplane::tables::{TablesBuilder, TablesSpec};

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A FullNAT entry: client 198.18.0.2:51234 → VIP 198.18.100.1:80, real server
    /// 198.18.1.11:80 → pool 198.18.1.100:40001.
    fn shared_with_a_connection() -> Arc<Shared> {
        let tables = TablesBuilder::build(&TablesSpec::default(), None).unwrap();
        let shared = Arc::new(Shared::new(tables, 1000, 1));
        let orig = FlowKey::v4(6, [198, 18, 0, 2], 51234, [198, 18, 100, 1], 80);
        let reply = FlowKey::v4(6, [198, 18, 1, 11], 80, [198, 18, 1, 100], 40001);
        let conn = Conn {
            orig,
            reply,
            service: 0,
            real: 0,
            method: uvs_dataplane::Method::FullNat as u8,
            state: 0,
            flags: 0,
        };
        let now = shared.clock.now_ticks();
        shared.conns.insert(&conn, now, now + 60_000).unwrap();
        shared
    }

    #[test]
    fn answers_from_the_reply_tuple_only() {
        let shared = shared_with_a_connection();
        let ask = |server: &str, peer: &str| {
            answer(
                &shared,
                &Request::new(Protocol::Tcp, sa(server), sa(peer)).unwrap(),
            )
        };
        assert_eq!(
            ask("198.18.1.11:80", "198.18.1.100:40001"),
            Outcome::Found {
                client: sa("198.18.0.2:51234"),
                virtual_service: sa("198.18.100.1:80"),
            }
        );
        // Unknown tuples: another port, the reversed tuple, the client's own tuple.
        assert_eq!(
            ask("198.18.1.11:80", "198.18.1.100:40002"),
            Outcome::Unknown
        );
        assert_eq!(
            ask("198.18.1.100:40001", "198.18.1.11:80"),
            Outcome::Unknown
        );
        assert_eq!(ask("198.18.0.2:51234", "198.18.100.1:80"), Outcome::Unknown);
        let udp = Request::new(
            Protocol::Udp,
            sa("198.18.1.11:80"),
            sa("198.18.1.100:40001"),
        )
        .unwrap();
        assert_eq!(answer(&shared, &udp), Outcome::Unknown);
    }

    /// Over a real UDP socket on loopback: an authentic request is answered, a replayed,
    /// forged or truncated one is not (and is counted).
    #[test]
    fn the_service_answers_only_authentic_fresh_requests() {
        let shared = shared_with_a_connection();
        let cfg = ClientLookup {
            listen: sa("127.0.0.1:0"),
            auth_key: String::from_utf8(KEY.to_vec()).unwrap(),
        };
        // Port 0 for the test: bind first to learn the port.
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let cfg = ClientLookup {
            listen: SocketAddr::new(cfg.listen.ip(), port),
            ..cfg
        };
        let svc = LookupService::start(shared, cfg.clone()).unwrap();
        let at = cfg.listen;
        let got = lookup::query(
            at,
            KEY,
            Protocol::Tcp,
            sa("198.18.1.11:80"),
            sa("198.18.1.100:40001"),
            Duration::from_secs(2),
        )
        .unwrap();
        assert_eq!(
            got,
            Outcome::Found {
                client: sa("198.18.0.2:51234"),
                virtual_service: sa("198.18.100.1:80"),
            }
        );
        let unknown = lookup::query(
            at,
            KEY,
            Protocol::Tcp,
            sa("198.18.1.11:80"),
            sa("198.18.1.100:1"),
            Duration::from_secs(2),
        )
        .unwrap();
        assert_eq!(unknown, Outcome::Unknown);

        // By hand: one request sent twice, then forged and truncated ones.
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        // An answer is waited for up to 5 s (a loaded machine); a refused request's absence
        // of one for 300 ms.
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let req = Request::new(
            Protocol::Tcp,
            sa("198.18.1.11:80"),
            sa("198.18.1.100:40001"),
        )
        .unwrap();
        let bytes = req.encode(KEY);
        let mut buf = [0u8; 512];
        c.send_to(&bytes, at).unwrap();
        let n = c.recv(&mut buf).unwrap();
        assert!(lookup::decode_answer(&buf[..n], KEY, &req.nonce).is_ok());
        let refused_before = svc.stats.refused.load(Ordering::Relaxed);
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let forged = req.encode(b"not the key, but 16 bytes or more");
        for bad in [&bytes[..], &forged[..], &bytes[..60], b"\x00"] {
            c.send_to(bad, at).unwrap();
            assert!(c.recv(&mut buf).is_err(), "no answer to a refused request");
        }
        // The server counts a refusal after it has read the request: the last may lag.
        let t = std::time::Instant::now();
        while svc.stats.refused.load(Ordering::Relaxed) < refused_before + 4
            && t.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            svc.stats.refused.load(Ordering::Relaxed),
            refused_before + 4
        );
        let snap = svc.stats.snapshot();
        assert_eq!((snap.found, snap.unknown), (2, 1));
        assert_eq!(
            snap.refused,
            [
                ("bad_tag".to_string(), 1),
                ("length".to_string(), 2),
                ("replayed".to_string(), 1)
            ]
        );
    }
}
