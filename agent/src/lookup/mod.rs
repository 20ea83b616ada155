//! Who is the client? The lookup that gives an application behind FullNAT its client's
//! address.
//!
//! With FullNAT a real server's connections come from the balancer's pool address (uvs
//! rewrites both ends, as DPVS and Alibaba's LVS FullNAT do), so the application sees
//! `pool:port → server:port` and not the client. uvsd knows the mapping: the connection's
//! reply tuple (server → pool) is in its connection table next to the original one
//! (client → VIP). This module is the small UDP protocol a real server asks it with:
//!
//! ```text
//! request (102 bytes)                         answer (94 bytes, never larger: no amplification)
//!   "UVSL" version=1 type=1 protocol 0          "UVSL" version=1 type=2 status 0
//!   nonce (16, random)                          nonce (16, the request's)
//!   time (8, ms since the Unix epoch)           client: family(4|6) address(16) port(2)
//!   server: family(4|6) address(16) port(2)     virtual service: family address port
//!   peer:   family(4|6) address(16) port(2)     HMAC-SHA256 of all the above (32)
//!   HMAC-SHA256 of all the above (32)
//! ```
//!
//! `server` is the real server's own end of the connection (`ss`'s local address), `peer`
//! the other end as it sees it (the pool address and port). Status 0 means found; 1 means
//! uvsd has no such connection (it ended, or the tuple is not one uvs forwards).
//!
//! Both directions carry an HMAC-SHA256 under a key shared by uvsd (`client_lookup.auth_key`)
//! and the real servers (the same construction as the sync protocol's authenticated
//! messages). uvsd answers only requests whose tag verifies, whose time is within
//! [`MAX_SKEW`] of its clock and whose nonce it has not seen in that window ([`ReplayGuard`]):
//! a forged, truncated, stale or replayed request gets no answer (so nobody without the key
//! learns anything, and nothing reflects off uvsd). The asker accepts only an answer whose tag
//! verifies and that carries its own request's nonce.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

mod guard;
mod query;

pub use guard::ReplayGuard;
pub use query::query;

/// Fewest bytes a shared key has (as the sync protocol's `auth_key`).
pub const MIN_KEY_LEN: usize = 16;
/// Length of a request datagram.
pub const REQUEST_LEN: usize = 102;
/// Length of an answer datagram.
pub const ANSWER_LEN: usize = 94;
/// How far a request's time may be from uvsd's clock (NTP keeps real servers well inside).
pub const MAX_SKEW: Duration = Duration::from_secs(30);
/// How long [`query`] waits for an answer by default (it asks twice within it).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

const MAGIC: &[u8; 4] = b"UVSL";
const VERSION: u8 = 1;
const TYPE_REQUEST: u8 = 1;
const TYPE_ANSWER: u8 = 2;
const TAG: usize = 32;
const ENDPOINT: usize = 19;

/// The transport protocol of the connection asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    fn from_number(n: u8) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl FromStr for Protocol {
    type Err = LookupError;
    fn from_str(s: &str) -> Result<Protocol, LookupError> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            _ => Err(LookupError::Protocol(s.to_string())),
        }
    }
}

/// A question: the client of which connection?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub protocol: Protocol,
    /// The real server's end (its own address and port).
    pub server: SocketAddr,
    /// The other end as the real server sees it (FullNAT: the pool address and port).
    pub peer: SocketAddr,
    pub nonce: [u8; 16],
    /// Milliseconds since the Unix epoch when it was asked.
    pub time_ms: u64,
}

/// What uvsd knows about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The client's address and port, and the virtual service it connected to.
    Found {
        client: SocketAddr,
        virtual_service: SocketAddr,
    },
    /// uvsd tracks no such connection.
    Unknown,
}

/// Why uvsd refused a request (it does not answer; it counts and logs these).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
pub enum Refused {
    #[error("wrong length {0} (a request is {REQUEST_LEN} bytes)")]
    Length(usize),
    #[error("not a uvs lookup request (magic, version or type)")]
    NotRequest,
    #[error("authentication failed (wrong key or altered request)")]
    BadTag,
    #[error("malformed request (protocol, address family or ports)")]
    Malformed,
    #[error("request time more than 30 s from this clock (replayed late, or clocks apart)")]
    Stale,
    #[error("request replayed (nonce already seen)")]
    Replayed,
    #[error("too many requests in the replay window")]
    Busy,
}

impl Refused {
    /// A short name, for counters and logs.
    pub fn name(self) -> &'static str {
        match self {
            Refused::Length(_) => "length",
            Refused::NotRequest => "not_request",
            Refused::BadTag => "bad_tag",
            Refused::Malformed => "malformed",
            Refused::Stale => "stale",
            Refused::Replayed => "replayed",
            Refused::Busy => "busy",
        }
    }
}

/// Why a lookup failed on the asking side.
#[derive(Debug, Error)]
pub enum LookupError {
    #[error("unknown protocol {0:?}: tcp, udp or sctp")]
    Protocol(String),
    #[error("the key has {0} bytes, fewer than {MIN_KEY_LEN}")]
    ShortKey(usize),
    #[error("{server} and {peer} are not of one address family")]
    Family {
        server: SocketAddr,
        peer: SocketAddr,
    },
    #[error("reading random bytes for the nonce: {0}")]
    Random(std::io::Error),
    #[error("talking to uvsd at {at}: {source}")]
    Io {
        at: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "no answer from uvsd at {0} (it answers only authentic requests: check \
         client_lookup.listen and that the key is the one in uvsd's client_lookup.auth_key, \
         and that this clock is within 30 s of the balancer's)"
    )]
    NoAnswer(SocketAddr),
    #[error("the answer did not verify ({0})")]
    BadAnswer(&'static str),
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length")
}

fn put_endpoint(out: &mut Vec<u8>, a: SocketAddr) {
    let mut addr = [0u8; 16];
    match a.ip() {
        IpAddr::V4(v4) => {
            out.push(4);
            addr[..4].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(6);
            addr = v6.octets();
        }
    }
    out.extend_from_slice(&addr);
    out.extend_from_slice(&a.port().to_be_bytes());
}

fn get_endpoint(b: &[u8]) -> Option<SocketAddr> {
    let addr: [u8; 16] = b[1..17].try_into().ok()?;
    let port = u16::from_be_bytes([b[17], b[18]]);
    let ip = match b[0] {
        4 if addr[4..].iter().all(|&x| x == 0) => {
            IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
        }
        6 => IpAddr::V6(Ipv6Addr::from(addr)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

fn seal(mut body: Vec<u8>, key: &[u8]) -> Vec<u8> {
    let mut m = mac(key);
    m.update(&body);
    body.extend_from_slice(&m.finalize().into_bytes());
    body
}

/// Splits `buf` into body and tag and checks the tag in constant time.
fn open<'a>(buf: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let (body, tag) = buf.split_at(buf.len().checked_sub(TAG)?);
    let mut m = mac(key);
    m.update(body);
    m.verify_slice(tag).ok().map(|()| body)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn random_nonce() -> Result<[u8; 16], LookupError> {
    let mut n = [0u8; 16];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").map_err(LookupError::Random)?,
        &mut n,
    )
    .map_err(LookupError::Random)?;
    Ok(n)
}

impl Request {
    /// A fresh request (random nonce, the current time).
    pub fn new(
        protocol: Protocol,
        server: SocketAddr,
        peer: SocketAddr,
    ) -> Result<Request, LookupError> {
        if server.is_ipv6() != peer.is_ipv6() {
            return Err(LookupError::Family { server, peer });
        }
        Ok(Request {
            protocol,
            server,
            peer,
            nonce: random_nonce()?,
            time_ms: now_ms(),
        })
    }

    /// The datagram, authenticated with `key`.
    pub fn encode(&self, key: &[u8]) -> Vec<u8> {
        let mut b = Vec::with_capacity(REQUEST_LEN);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&[VERSION, TYPE_REQUEST, self.protocol.number(), 0]);
        b.extend_from_slice(&self.nonce);
        b.extend_from_slice(&self.time_ms.to_be_bytes());
        put_endpoint(&mut b, self.server);
        put_endpoint(&mut b, self.peer);
        seal(b, key)
    }

    /// uvsd's side: the request in `buf` if it is well formed and its tag verifies under
    /// `key` (freshness and replay are [`ReplayGuard`]'s).
    pub fn decode(buf: &[u8], key: &[u8]) -> Result<Request, Refused> {
        if buf.len() != REQUEST_LEN {
            return Err(Refused::Length(buf.len()));
        }
        if &buf[..4] != MAGIC || buf[4] != VERSION || buf[5] != TYPE_REQUEST {
            return Err(Refused::NotRequest);
        }
        let body = open(buf, key).ok_or(Refused::BadTag)?;
        let protocol = Protocol::from_number(body[6]).ok_or(Refused::Malformed)?;
        let nonce: [u8; 16] = body[8..24].try_into().expect("16 bytes");
        let time_ms = u64::from_be_bytes(body[24..32].try_into().expect("8 bytes"));
        let server = get_endpoint(&body[32..32 + ENDPOINT]).ok_or(Refused::Malformed)?;
        let peer = get_endpoint(&body[51..51 + ENDPOINT]).ok_or(Refused::Malformed)?;
        if server.is_ipv6() != peer.is_ipv6() || server.port() == 0 || peer.port() == 0 {
            return Err(Refused::Malformed);
        }
        Ok(Request {
            protocol,
            server,
            peer,
            nonce,
            time_ms,
        })
    }
}

/// uvsd's answer to `nonce`, authenticated with `key`.
pub fn encode_answer(nonce: &[u8; 16], outcome: &Outcome, key: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(ANSWER_LEN);
    b.extend_from_slice(MAGIC);
    let unspecified = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
    let (status, client, vs) = match *outcome {
        Outcome::Found {
            client,
            virtual_service,
        } => (0, client, virtual_service),
        Outcome::Unknown => (1, unspecified, unspecified),
    };
    b.extend_from_slice(&[VERSION, TYPE_ANSWER, status, 0]);
    b.extend_from_slice(nonce);
    put_endpoint(&mut b, client);
    put_endpoint(&mut b, vs);
    seal(b, key)
}

/// The asker's side: the outcome in `buf`, if it verifies under `key` and answers `nonce`.
pub fn decode_answer(buf: &[u8], key: &[u8], nonce: &[u8; 16]) -> Result<Outcome, LookupError> {
    if buf.len() != ANSWER_LEN || &buf[..4] != MAGIC || buf[4] != VERSION || buf[5] != TYPE_ANSWER {
        return Err(LookupError::BadAnswer("not a lookup answer"));
    }
    let body = open(buf, key).ok_or(LookupError::BadAnswer("authentication failed"))?;
    if &body[8..24] != nonce {
        return Err(LookupError::BadAnswer("it answers another request"));
    }
    match body[6] {
        0 => {
            let client = get_endpoint(&body[24..24 + ENDPOINT]);
            let vs = get_endpoint(&body[43..43 + ENDPOINT]);
            match (client, vs) {
                (Some(client), Some(virtual_service)) => Ok(Outcome::Found {
                    client,
                    virtual_service,
                }),
                _ => Err(LookupError::BadAnswer("malformed address")),
            }
        }
        1 => Ok(Outcome::Unknown),
        _ => Err(LookupError::BadAnswer("unknown status")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn req() -> Request {
        Request::new(
            Protocol::Tcp,
            sa("198.18.1.11:80"),
            sa("198.18.1.100:40001"),
        )
        .unwrap()
    }

    #[test]
    fn requests_and_answers_round_trip() {
        for (server, peer) in [
            ("198.18.1.11:80", "198.18.1.100:40001"),
            ("[2001:2:0:1::11]:443", "[2001:2:0:1::100]:1025"),
        ] {
            let r = Request::new(Protocol::Sctp, sa(server), sa(peer)).unwrap();
            let b = r.encode(KEY);
            assert_eq!(b.len(), REQUEST_LEN);
            assert_eq!(Request::decode(&b, KEY), Ok(r));
        }
        let r = req();
        for o in [
            Outcome::Found {
                client: sa("198.18.0.2:51234"),
                virtual_service: sa("198.18.100.1:80"),
            },
            Outcome::Found {
                client: sa("[2001:2::2]:1"),
                virtual_service: sa("[2001:2:0:100::1]:80"),
            },
            Outcome::Unknown,
        ] {
            let a = encode_answer(&r.nonce, &o, KEY);
            assert_eq!(a.len(), ANSWER_LEN);
            assert!(
                a.len() <= REQUEST_LEN,
                "an answer never outgrows its request"
            );
            assert_eq!(decode_answer(&a, KEY, &r.nonce).unwrap(), o);
        }
        assert!(Request::new(Protocol::Tcp, sa("198.18.1.11:80"), sa("[2001:2::1]:80")).is_err());
    }

    #[test]
    fn forged_and_truncated_requests_are_refused() {
        let b = req().encode(KEY);
        // Every prefix, and one byte more.
        for n in 0..b.len() {
            assert_eq!(Request::decode(&b[..n], KEY), Err(Refused::Length(n)));
        }
        let mut long = b.clone();
        long.push(0);
        assert_eq!(Request::decode(&long, KEY), Err(Refused::Length(103)));
        // Another key.
        assert_eq!(
            Request::decode(&b, b"another key of 16 bytes or more"),
            Err(Refused::BadTag)
        );
        // Any bit flipped anywhere (header, body or tag).
        for i in 0..b.len() {
            let mut f = b.clone();
            f[i] ^= 0x01;
            let e = Request::decode(&f, KEY).unwrap_err();
            assert!(
                matches!(e, Refused::BadTag | Refused::NotRequest),
                "byte {i}: {e:?}"
            );
        }
        // Authentic but malformed (a sender with the key and a bug): refused, not trusted.
        let mut body = b[..REQUEST_LEN - TAG].to_vec();
        body[32] = 5; // no such family
        assert_eq!(
            Request::decode(&seal(body, KEY), KEY),
            Err(Refused::Malformed)
        );
        // An answer is not a request.
        let a = encode_answer(&req().nonce, &Outcome::Unknown, KEY);
        assert!(Request::decode(&a, KEY).is_err());
    }

    #[test]
    fn forged_or_misdirected_answers_are_refused() {
        let r = req();
        let found = Outcome::Found {
            client: sa("198.18.0.2:51234"),
            virtual_service: sa("198.18.100.1:80"),
        };
        let a = encode_answer(&r.nonce, &found, KEY);
        assert!(matches!(
            decode_answer(&a, b"another key of 16 bytes or more", &r.nonce),
            Err(LookupError::BadAnswer("authentication failed"))
        ));
        assert!(matches!(
            decode_answer(&a, KEY, &req().nonce),
            Err(LookupError::BadAnswer("it answers another request"))
        ));
        for n in 0..a.len() {
            assert!(decode_answer(&a[..n], KEY, &r.nonce).is_err());
        }
        for i in 0..a.len() {
            let mut f = a.clone();
            f[i] ^= 0x80;
            assert!(decode_answer(&f, KEY, &r.nonce).is_err(), "byte {i}");
        }
        // A request echoed back is not an answer.
        assert!(decode_answer(&r.encode(KEY), KEY, &r.nonce).is_err());
    }

    proptest::proptest! {
        /// Arbitrary datagrams never panic the decoders; only an exact-length, authentic
        /// request decodes (random bytes never carry a valid tag).
        #[test]
        fn arbitrary_bytes_are_refused_without_panicking(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)
        ) {
            let r = Request::decode(&bytes, KEY);
            if bytes.len() != REQUEST_LEN {
                proptest::prop_assert_eq!(r, Err(Refused::Length(bytes.len())));
            } else {
                proptest::prop_assert!(r.is_err());
            }
            proptest::prop_assert!(decode_answer(&bytes, KEY, &[0; 16]).is_err());
        }

        /// The same with a valid header in front: the tag still decides.
        #[test]
        fn authentic_looking_headers_do_not_help(
            tail in proptest::collection::vec(proptest::num::u8::ANY, REQUEST_LEN - 6)
        ) {
            let mut b = b"UVSL\x01\x01".to_vec();
            b.extend_from_slice(&tail);
            proptest::prop_assert_eq!(Request::decode(&b, KEY), Err(Refused::BadTag));
        }
    }
}
