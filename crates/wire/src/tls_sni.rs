//! The server name a TLS client asks for (the `server_name` extension, RFC 6066 §3) read
//! from the first bytes of a connection: a TLS record (RFC 8446 §5.1) of type handshake
//! holding a ClientHello (RFC 8446 §4.1.2; TLS 1.2's, RFC 5246 §7.4.1.2, has the same
//! layout). uvs's layer-7 scheduling routes by it without decrypting anything.
//!
//! Layout read (all lengths big-endian):
//!
//! ```text
//! record:      type 0x16 (1) | legacy version (2) | length (2)
//! handshake:   type 0x01 (1) | length (3)
//! ClientHello: version (2) | random (32) | session id <1> | cipher suites <2>
//!              | compression methods <1> | extensions <2>
//! extension:   type (2) | length (2) | data; server_name is type 0:
//!              list <2> of { name type (1, 0 = host_name) | name <2> }
//! ```
//!
//! Only what one record carries is read: a ClientHello split over two records or two
//! segments is [`Sni::Truncated`]. Every read is bounds-checked: no input panics.

/// What the first bytes of a connection say about TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sni<'a> {
    /// Not a TLS handshake record (first byte not 0x16, or not a ClientHello).
    NotTls,
    /// A ClientHello that ends beyond the bytes given.
    Truncated,
    /// A ClientHello whose lengths do not add up, or a malformed `server_name`.
    Malformed,
    /// A whole ClientHello without a host name.
    None,
    /// The host name (as sent; DNS names are compared case-insensitively by the caller).
    Name(&'a [u8]),
}

const RECORD_HANDSHAKE: u8 = 0x16;
const HANDSHAKE_CLIENT_HELLO: u8 = 0x01;
const EXT_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST: u8 = 0;

/// A cursor over a byte slice whose reads fail instead of panicking.
struct Rd<'a> {
    b: &'a [u8],
}

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.b.len() {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
    /// A vector with a `w`-byte length prefix.
    fn vec(&mut self, w: usize) -> Option<&'a [u8]> {
        let n = match w {
            1 => usize::from(self.u8()?),
            _ => usize::from(self.u16()?),
        };
        self.take(n)
    }
}

/// Reads the server name of the ClientHello at the start of `data`.
pub fn client_hello_sni(data: &[u8]) -> Sni<'_> {
    let mut r = Rd { b: data };
    match r.u8() {
        Some(RECORD_HANDSHAKE) => {}
        Some(_) => return Sni::NotTls,
        None => return Sni::Truncated,
    }
    let (Some(_version), Some(rec_len)) = (r.u16(), r.u16()) else {
        return Sni::Truncated;
    };
    let Some(record) = r.take(usize::from(rec_len)) else {
        return Sni::Truncated;
    };
    let mut h = Rd { b: record };
    match h.u8() {
        Some(HANDSHAKE_CLIENT_HELLO) => {}
        Some(_) => return Sni::NotTls,
        None => return Sni::Malformed,
    }
    let Some(hs_len) = h.u24() else {
        return Sni::Malformed;
    };
    let Some(body) = h.take(hs_len) else {
        // The handshake message continues in another record.
        return Sni::Truncated;
    };
    hello(body).unwrap_or(Sni::Malformed)
}

fn hello(body: &[u8]) -> Option<Sni<'_>> {
    let mut c = Rd { b: body };
    c.take(2 + 32)?; // version, random
    c.vec(1)?; // session id
    c.vec(2)?; // cipher suites
    c.vec(1)?; // compression methods
    if c.b.is_empty() {
        // RFC 5246 §7.4.1.2: extensions may be absent altogether.
        return Some(Sni::None);
    }
    let mut ext = Rd { b: c.vec(2)? };
    while !ext.b.is_empty() {
        let ty = ext.u16()?;
        let data = ext.vec(2)?;
        if ty != EXT_SERVER_NAME {
            continue;
        }
        let mut d = Rd { b: data };
        let mut list = Rd { b: d.vec(2)? };
        while !list.b.is_empty() {
            let kind = list.u8()?;
            let name = list.vec(2)?;
            // RFC 6066 §3: at most one name per type; only host_name is defined.
            if kind == NAME_TYPE_HOST {
                if name.is_empty() {
                    return None;
                }
                return Some(Sni::Name(name));
            }
        }
        return Some(Sni::None);
    }
    Some(Sni::None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello as `openssl s_client -servername a.example` shapes it (reduced to one
    /// cipher suite and two extensions), written out byte by byte.
    fn hello_bytes(name: &[u8]) -> Vec<u8> {
        let mut sni = vec![0x00, 0x00]; // extension type server_name
        let list_len = 3 + name.len();
        sni.extend_from_slice(&((list_len + 2) as u16).to_be_bytes());
        sni.extend_from_slice(&(list_len as u16).to_be_bytes());
        sni.push(0x00); // host_name
        sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni.extend_from_slice(name);
        // supported_versions (43): TLS 1.3.
        let other = [0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04];
        let mut exts = other.to_vec();
        exts.extend_from_slice(&sni);
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[0x5a; 32]); // random
        body.extend_from_slice(&[0x00]); // empty session id
        body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01]); // TLS_AES_128_GCM_SHA256
        body.extend_from_slice(&[0x01, 0x00]); // null compression
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut hs = vec![0x01, 0x00];
        hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
        hs.extend_from_slice(&body);
        let mut rec = vec![0x16, 0x03, 0x01];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn reads_the_host_name() {
        let b = hello_bytes(b"a.example");
        assert_eq!(client_hello_sni(&b), Sni::Name(b"a.example"));
    }

    #[test]
    fn a_literal_client_hello() {
        // Record, handshake header, version, random, no session id, one suite, null
        // compression, then extensions: server_name "x.test" only.
        let mut fixed: Vec<u8> = vec![0x16, 0x03, 0x01, 0x00, 0x3e, 0x01, 0x00, 0x00, 0x3a];
        fixed.extend_from_slice(&[0x03, 0x03]);
        fixed.extend_from_slice(&[0u8; 32]);
        fixed.extend_from_slice(&[0x00, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
        fixed.extend_from_slice(&[0x00, 0x0f, 0x00, 0x00, 0x00, 0x0b, 0x00, 0x09, 0x00, 0x00]);
        fixed.extend_from_slice(&[0x06, b'x', b'.', b't', b'e', b's', b't']);
        assert_eq!(fixed.len(), 5 + 0x3e);
        // The record ends beyond the segment: truncated, not malformed.
        assert_eq!(client_hello_sni(&fixed[..fixed.len() - 3]), Sni::Truncated);
        assert_eq!(client_hello_sni(&fixed), Sni::Name(b"x.test"));
    }

    #[test]
    fn other_protocols_and_short_input() {
        assert_eq!(client_hello_sni(b"GET / HTTP/1.1\r\n"), Sni::NotTls);
        assert_eq!(client_hello_sni(b""), Sni::Truncated);
        assert_eq!(client_hello_sni(&[0x16, 0x03]), Sni::Truncated);
        // A handshake record that is not a ClientHello (ServerHello).
        assert_eq!(
            client_hello_sni(&[0x16, 0x03, 0x03, 0x00, 0x01, 0x02]),
            Sni::NotTls
        );
    }

    #[test]
    fn every_prefix_is_truncated_and_lengths_that_lie_are_malformed() {
        let b = hello_bytes(b"www.example.org");
        for n in 0..b.len() {
            assert_eq!(client_hello_sni(&b[..n]), Sni::Truncated, "prefix {n}");
        }
        // The handshake claims less than its body: the extensions run past it.
        let mut bad = b.clone();
        bad[8] -= 4;
        assert_eq!(client_hello_sni(&bad), Sni::Malformed);
        // The SNI list claims more than its extension.
        let mut bad = b.clone();
        let at = b.len() - 15 - 2 - 1 - 2;
        bad[at + 1] = 0xff;
        assert_eq!(client_hello_sni(&bad), Sni::Malformed);
    }

    #[test]
    fn no_server_name_and_no_extensions() {
        let mut b: Vec<u8> = vec![0x16, 0x03, 0x01, 0x00, 0x2d, 0x01, 0x00, 0x00, 0x29];
        b.extend_from_slice(&[0x03, 0x03]);
        b.extend_from_slice(&[0u8; 32]);
        b.extend_from_slice(&[0x00, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
        assert_eq!(client_hello_sni(&b), Sni::None);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic sweep (the proptests cover the rest of the wire crate).
        let base = hello_bytes(b"a.example");
        for i in 0..base.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = base.clone();
                b[i] = v;
                let _ = client_hello_sni(&b);
            }
        }
    }
}
