//! The asking side: one question to uvsd over UDP.

use super::{decode_answer, LookupError, Outcome, Protocol, Request, MIN_KEY_LEN};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

/// Asks uvsd's lookup service at `at` who the client of the connection `server ↔ peer` is.
/// Sends the request, waits up to half of `timeout`, then asks once more (a fresh nonce:
/// the first may have been lost) and waits the rest.
pub fn query(
    at: SocketAddr,
    key: &[u8],
    protocol: Protocol,
    server: SocketAddr,
    peer: SocketAddr,
    timeout: Duration,
) -> Result<Outcome, LookupError> {
    if key.len() < MIN_KEY_LEN {
        return Err(LookupError::ShortKey(key.len()));
    }
    let io = |source| LookupError::Io { at, source };
    let local: SocketAddr = if at.is_ipv6() {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local).map_err(io)?;
    sock.connect(at).map_err(io)?;
    let each = (timeout / 2).max(Duration::from_millis(10));
    sock.set_read_timeout(Some(each)).map_err(io)?;
    for _ in 0..2 {
        let req = Request::new(protocol, server, peer)?;
        sock.send(&req.encode(key)).map_err(io)?;
        let deadline = std::time::Instant::now() + each;
        let mut buf = [0u8; 512];
        while std::time::Instant::now() < deadline {
            match sock.recv(&mut buf) {
                // Anything that does not verify (a stray or forged datagram) is skipped.
                Ok(n) => {
                    if let Ok(o) = decode_answer(&buf[..n], key, &req.nonce) {
                        return Ok(o);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                // ICMP port unreachable: nothing listens there.
                Err(e) => return Err(io(e)),
            }
        }
    }
    Err(LookupError::NoAnswer(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_needs_a_real_key() {
        let e = query(
            sa("198.18.1.1:7946"),
            b"short",
            Protocol::Tcp,
            sa("198.18.1.11:80"),
            sa("198.18.1.100:40001"),
            super::super::DEFAULT_TIMEOUT,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "the key has 5 bytes, fewer than 16");
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }
}
