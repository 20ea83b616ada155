//! IPVS's connection-synchronisation protocol, version 1, byte for byte as Linux's
//! `net/netfilter/ipvs/ip_vs_sync.c` sends and parses it, so a kernel IPVS backup can take
//! uvs's messages and the other way round.
//!
//! ```text
//! message header (8 bytes):  0 reserved(=0) | 1 sync id | 2..4 size (whole message, BE)
//!                            4 connection count | 5 version (=1) | 6..8 spare (=0)
//! connection (IPv4 36 bytes, IPv6 72), each starting on a 4-byte boundary:
//!   0 type (bit 0: IPv6) | 1 protocol | 2..4 ver_size (version << 12 | record size)
//!   4..8 flags (IP_VS_CONN_F_*) | 8..10 state | 10..12 cport | 12..14 vport | 14..16 dport
//!   16..20 fwmark | 20..24 timeout (s) | caddr | vaddr | daddr (4 or 16 bytes each)
//!   then options: type (1) | length (1) | data; type bit 0x40 (IPVS_OPT_F_PARAM) marks an
//!   option a receiver that does not know it may skip.
//! ```
//! uvs adds two such skippable things, so an IPVS peer ignores them:
//! - option `0x40 | 9`, 18 bytes: the FullNAT local address and port of the connection
//!   (IPVS has no FullNAT);
//! - with authentication on, a trailer after the last connection, inside `size`: an 8-byte
//!   sequence number and a 32-byte HMAC-SHA256 of everything before it. IPVS reads
//!   `count` connections and never looks past them.

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

pub const HEADER_LEN: usize = 8;
pub const SYNC_PROTO_VER: u8 = 1;
/// IPVS's defaults: multicast group 224.0.0.81, UDP port 8848.
pub const DEFAULT_GROUP: [u8; 4] = [224, 0, 0, 81];
pub const DEFAULT_PORT: u16 = 8848;
/// IPVS's `MAX_CONNS_PER_SYNCBUFF`: the count is one byte.
pub const MAX_CONNS: usize = 255;

const V4_LEN: usize = 36;
const V6_LEN: usize = 72;
const STYPE_F_INET6: u8 = 1;
const SVER_SHIFT: u16 = 12;
const SVER_MASK: u16 = 0x0fff;
const OPT_SEQ_DATA: u8 = 1;
const OPT_PE_DATA: u8 = 2;
const OPT_PE_NAME: u8 = 3;
const OPT_F_PARAM: u8 = 0x40;
/// uvs's FullNAT option (skippable by IPVS).
const OPT_UVS_FULLNAT: u8 = OPT_F_PARAM | 9;
const SEQ_DATA_LEN: usize = 24;
const FULLNAT_LEN: usize = 18;
/// Authentication trailer: sequence (8) + HMAC-SHA256 (32).
pub const AUTH_LEN: usize = 40;

/// `IP_VS_CONN_F_*` bits uvs reads or writes.
pub mod flags {
    pub const FWD_MASK: u32 = 0x0007;
    pub const MASQ: u32 = 0x0000;
    pub const TUNNEL: u32 = 0x0002;
    pub const DROUTE: u32 = 0x0003;
    pub const HASHED: u32 = 0x0040;
    pub const NOOUTPUT: u32 = 0x0080;
    pub const INACTIVE: u32 = 0x0100;
    pub const TEMPLATE: u32 = 0x1000;
    pub const ONE_PACKET: u32 = 0x2000;
}

/// One synced connection (or persistence template) as the protocol carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncConn {
    pub protocol: u8,
    pub flags: u32,
    pub state: u16,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    pub fwmark: u32,
    /// Seconds left.
    pub timeout: u32,
    /// uvs's FullNAT local address and port, when the connection is FullNAT.
    pub fullnat: Option<(IpAddr, u16)>,
}

impl SyncConn {
    fn v6(&self) -> bool {
        self.caddr.is_ipv6()
    }

    /// Bytes of this record without padding.
    fn len(&self) -> usize {
        let base = if self.v6() { V6_LEN } else { V4_LEN };
        base + if self.fullnat.is_some() {
            2 + FULLNAT_LEN
        } else {
            0
        }
    }
}

/// Why a message or a record was refused. Each maps to a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SyncError {
    #[error("message shorter than its header or than its size field says")]
    Truncated,
    #[error("message is not version 1 (reserved/version/spare fields)")]
    Version,
    #[error("message for another sync id")]
    OtherSyncId,
    #[error("a connection record overruns the message")]
    BadRecord,
    #[error("a connection record has an unknown mandatory option")]
    UnknownOption,
    #[error("a connection record mixes address families")]
    Family,
    #[error("message authentication failed (missing or wrong HMAC)")]
    Auth,
    #[error("message replayed or out of order")]
    Replay,
}

/// Writes messages of up to `maxlen` bytes; [`MessageWriter::push`] returns a finished
/// message whenever the next record would not fit.
pub struct MessageWriter {
    syncid: u8,
    maxlen: usize,
    key: Option<Vec<u8>>,
    buf: Vec<u8>,
    count: usize,
}

impl MessageWriter {
    /// `maxlen`: the largest message (IPVS: interface MTU − IP and UDP headers).
    pub fn new(syncid: u8, maxlen: usize, key: Option<Vec<u8>>) -> Self {
        let mut w = MessageWriter {
            syncid,
            maxlen: maxlen.max(HEADER_LEN + V6_LEN + 2 + FULLNAT_LEN + AUTH_LEN + 3),
            key,
            buf: Vec::with_capacity(maxlen),
            count: 0,
        };
        w.reset();
        w
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.buf
            .extend_from_slice(&[0, self.syncid, 0, 0, 0, SYNC_PROTO_VER, 0, 0]);
        self.count = 0;
    }

    fn room(&self) -> usize {
        self.maxlen - if self.key.is_some() { AUTH_LEN } else { 0 }
    }

    /// Adds a record; returns the previous message if this record did not fit in it.
    pub fn push(&mut self, c: &SyncConn, seq: u64) -> Option<Vec<u8>> {
        let pad = (4 - self.buf.len() % 4) % 4;
        let full = self.count == MAX_CONNS || self.buf.len() + pad + c.len() > self.room();
        let out = if full { self.finish(seq) } else { None };
        let pad = (4 - self.buf.len() % 4) % 4;
        self.buf.extend(std::iter::repeat_n(0, pad));
        encode_conn(c, &mut self.buf);
        self.count += 1;
        out
    }

    /// The message so far (`None` when empty), sealed with `seq` when authenticating.
    pub fn finish(&mut self, seq: u64) -> Option<Vec<u8>> {
        if self.count == 0 {
            return None;
        }
        Some(self.seal(seq))
    }

    /// A message of no record (the one being written, if any, stays): what a starting
    /// sender says first, so that its peers hear it at once. IPVS takes it as a message
    /// of no connection.
    pub fn hello(&self, seq: u64) -> Vec<u8> {
        let mut w = MessageWriter::new(self.syncid, self.maxlen, self.key.clone());
        w.seal(seq)
    }

    fn seal(&mut self, seq: u64) -> Vec<u8> {
        let mut m = std::mem::take(&mut self.buf);
        m[4] = self.count as u8;
        if let Some(key) = &self.key {
            let size = (m.len() + AUTH_LEN) as u16;
            m[2..4].copy_from_slice(&size.to_be_bytes());
            m.extend_from_slice(&seq.to_be_bytes());
            let tag = hmac(key, &m);
            m.extend_from_slice(&tag);
        } else {
            let size = m.len() as u16;
            m[2..4].copy_from_slice(&size.to_be_bytes());
        }
        self.buf = Vec::with_capacity(self.maxlen);
        self.reset();
        m
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

fn put_addr(out: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
}

fn encode_conn(c: &SyncConn, out: &mut Vec<u8>) {
    let len = c.len() as u16;
    out.push(if c.v6() { STYPE_F_INET6 } else { 0 });
    out.push(c.protocol);
    out.extend_from_slice(&(len & SVER_MASK).to_be_bytes());
    out.extend_from_slice(&(c.flags & !flags::HASHED).to_be_bytes());
    out.extend_from_slice(&c.state.to_be_bytes());
    out.extend_from_slice(&c.cport.to_be_bytes());
    out.extend_from_slice(&c.vport.to_be_bytes());
    out.extend_from_slice(&c.dport.to_be_bytes());
    out.extend_from_slice(&c.fwmark.to_be_bytes());
    out.extend_from_slice(&c.timeout.to_be_bytes());
    put_addr(out, c.caddr);
    put_addr(out, c.vaddr);
    put_addr(out, c.daddr);
    if let Some((laddr, lport)) = c.fullnat {
        out.push(OPT_UVS_FULLNAT);
        out.push(FULLNAT_LEN as u8);
        out.extend_from_slice(&uvs_ip::IpKey::from_ip(laddr).addr);
        out.extend_from_slice(&lport.to_be_bytes());
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn addr(b: &[u8], at: usize, v6: bool) -> IpAddr {
    if v6 {
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[at..at + 16]);
        IpAddr::from(a)
    } else {
        IpAddr::from([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }
}

/// A parsed message: its sync id, sequence (authenticated messages) and records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub syncid: u8,
    pub seq: Option<u64>,
    pub conns: Vec<SyncConn>,
    /// Records IPVS would skip (unknown protocol-independent errors inside one record);
    /// counted by the caller.
    pub skipped: usize,
}

/// Parses one datagram as IPVS's `ip_vs_process_message` does. `syncid`: accept only this
/// sync id (0 accepts any, as IPVS's backup). `key`: require and check the uvs
/// authentication trailer. Never panics on any input.
pub fn parse(buf: &[u8], syncid: u8, key: Option<&[u8]>) -> Result<Message, SyncError> {
    if buf.len() < HEADER_LEN {
        return Err(SyncError::Truncated);
    }
    let size = usize::from(be16(buf, 2));
    if size != buf.len() {
        return Err(SyncError::Truncated);
    }
    if buf[0] != 0 || buf[5] != SYNC_PROTO_VER || be16(buf, 6) != 0 {
        return Err(SyncError::Version);
    }
    if syncid != 0 && buf[1] != syncid {
        return Err(SyncError::OtherSyncId);
    }
    let (body, seq) = match key {
        None => (buf, None),
        Some(key) => {
            if buf.len() < HEADER_LEN + AUTH_LEN {
                return Err(SyncError::Auth);
            }
            let (signed, tag) = buf.split_at(buf.len() - 32);
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
            m.update(signed);
            m.verify_slice(tag).map_err(|_| SyncError::Auth)?;
            let s = &signed[signed.len() - 8..];
            let seq = u64::from_be_bytes(s.try_into().expect("8 bytes"));
            (&buf[..buf.len() - AUTH_LEN], Some(seq))
        }
    };
    let count = usize::from(buf[4]);
    let mut conns = Vec::with_capacity(count);
    let mut skipped = 0;
    let mut at = HEADER_LEN;
    for _ in 0..count {
        if at + V4_LEN > body.len() {
            return Err(SyncError::BadRecord);
        }
        let ver_size = be16(body, at + 2);
        let size = usize::from(ver_size & SVER_MASK);
        if ver_size >> SVER_SHIFT != 0 || at + size > body.len() {
            return Err(SyncError::BadRecord);
        }
        match parse_conn(&body[at..at + size]) {
            Ok(Some(c)) => conns.push(c),
            Ok(None) => skipped += 1,
            Err(e) => return Err(e),
        }
        at += (size + 3) & !3;
    }
    Ok(Message {
        syncid: buf[1],
        seq,
        conns,
        skipped,
    })
}

/// How many connection records the message `msg` (one [`MessageWriter`] produced) holds:
/// its header's count byte.
pub fn conns_in(msg: &[u8]) -> usize {
    msg.get(4).copied().map_or(0, usize::from)
}

/// One record; `Ok(None)`: a record IPVS drops alone (unknown mandatory option, bad type).
fn parse_conn(r: &[u8]) -> Result<Option<SyncConn>, SyncError> {
    let v6 = match r[0] {
        0 => false,
        STYPE_F_INET6 => true,
        _ => return Err(SyncError::BadRecord),
    };
    let base = if v6 { V6_LEN } else { V4_LEN };
    if r.len() < base {
        return Err(SyncError::BadRecord);
    }
    let alen = if v6 { 16 } else { 4 };
    let mut c = SyncConn {
        protocol: r[1],
        flags: be32(r, 4),
        state: be16(r, 8),
        cport: be16(r, 10),
        vport: be16(r, 12),
        dport: be16(r, 14),
        fwmark: be32(r, 16),
        timeout: be32(r, 20),
        caddr: addr(r, 24, v6),
        vaddr: addr(r, 24 + alen, v6),
        daddr: addr(r, 24 + 2 * alen, v6),
        fullnat: None,
    };
    let mut p = base;
    let mut seen_seq = false;
    while p < r.len() {
        if p + 2 > r.len() {
            return Err(SyncError::BadRecord);
        }
        let (ptype, plen) = (r[p], usize::from(r[p + 1]));
        p += 2;
        if plen == 0 || p + plen > r.len() {
            return Err(SyncError::BadRecord);
        }
        match ptype & !OPT_F_PARAM {
            OPT_SEQ_DATA => {
                if plen != SEQ_DATA_LEN || seen_seq {
                    return Err(SyncError::BadRecord);
                }
                seen_seq = true;
            }
            OPT_PE_DATA | OPT_PE_NAME => {}
            _ if ptype == OPT_UVS_FULLNAT && plen == FULLNAT_LEN => {
                let a = &r[p..p + 16];
                let laddr = if v6 {
                    addr(a, 0, true)
                } else {
                    if a[4..].iter().any(|&b| b != 0) {
                        return Err(SyncError::Family);
                    }
                    addr(a, 0, false)
                };
                c.fullnat = Some((laddr, be16(r, p + 16)));
            }
            _ if ptype & OPT_F_PARAM != 0 => {}
            _ => return Ok(None),
        }
        p += plen;
    }
    Ok(Some(c))
}

/// Replay protection for authenticated messages: per sender, sequence numbers must grow.
/// Senders use their wall clock in microseconds (and never repeat one), so a restarted
/// sender is accepted at once and a message recorded earlier is not.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    last: std::collections::HashMap<std::net::SocketAddr, u64>,
}

impl ReplayGuard {
    /// Accepts `seq` from `from` when it is newer than the last accepted one and within
    /// `max_age_us` of `now_us` (a message replayed after the receiver restarted).
    pub fn accept(
        &mut self,
        from: std::net::SocketAddr,
        seq: u64,
        now_us: u64,
        max_age_us: u64,
    ) -> bool {
        if seq.abs_diff(now_us) > max_age_us {
            return false;
        }
        let last = self.last.entry(from).or_insert(0);
        if seq <= *last {
            return false;
        }
        *last = seq;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn4() -> SyncConn {
        SyncConn {
            protocol: 6,
            flags: flags::MASQ | flags::INACTIVE,
            state: 3,
            caddr: "198.18.0.2".parse().unwrap(),
            cport: 40000,
            vaddr: "198.18.100.1".parse().unwrap(),
            vport: 80,
            daddr: "198.18.1.11".parse().unwrap(),
            dport: 8080,
            fwmark: 0,
            timeout: 60,
            fullnat: None,
        }
    }

    /// One IPv4 connection, byte for byte as ip_vs_sync_conn lays it out.
    #[test]
    fn ipv4_record_matches_ipvs_layout() {
        let mut w = MessageWriter::new(7, 1472, None);
        assert!(w.push(&conn4(), 0).is_none());
        let m = w.finish(0).unwrap();
        #[rustfmt::skip]
        let want: [u8; 44] = [
            0, 7, 0, 44, 1, 1, 0, 0,            // header: size 44, 1 conn, version 1
            0, 6, 0, 36,                        // type v4, TCP, ver_size 36
            0, 0, 0x01, 0x00,                   // flags INACTIVE, MASQ
            0, 3,                               // state SYN_RECV
            0x9c, 0x40, 0, 80, 0x1f, 0x90,      // cport 40000, vport 80, dport 8080
            0, 0, 0, 0,                         // fwmark
            0, 0, 0, 60,                        // timeout 60 s
            198, 18, 0, 2, 198, 18, 100, 1, 198, 18, 1, 11,
        ];
        assert_eq!(m, want);
        let back = parse(&m, 0, None).unwrap();
        assert_eq!(back.conns, vec![conn4()]);
        assert_eq!(back.syncid, 7);
    }

    #[test]
    fn ipv6_fullnat_records_pad_and_round_trip() {
        let mut c6 = conn4();
        c6.caddr = "2001:2::2".parse().unwrap();
        c6.vaddr = "2001:2:0:100::1".parse().unwrap();
        c6.daddr = "2001:2:0:1::11".parse().unwrap();
        c6.fullnat = Some(("2001:2:0:1::100".parse().unwrap(), 1025));
        let mut c4 = conn4();
        c4.fullnat = Some(("198.18.1.100".parse().unwrap(), 2048));
        let mut w = MessageWriter::new(1, 1472, None);
        w.push(&c4, 0);
        w.push(&c6, 0);
        w.push(&conn4(), 0);
        let m = w.finish(0).unwrap();
        // 8 + (36+20=56) + (72+20=92) + 36 = 192; every record starts 4-aligned.
        assert_eq!(m.len(), 192);
        assert_eq!(parse(&m, 1, None).unwrap().conns, vec![c4, c6, conn4()]);
    }

    #[test]
    fn messages_split_at_maxlen_and_at_255_conns() {
        let mut w = MessageWriter::new(1, 8 + 36 * 3, None);
        let mut out = Vec::new();
        for _ in 0..7 {
            out.extend(w.push(&conn4(), 0));
        }
        out.extend(w.finish(0));
        let counts: Vec<usize> = out.iter().map(|m| conns_in(m)).collect();
        assert_eq!(counts, vec![3, 3, 1]);
        let mut w = MessageWriter::new(1, 65000, None);
        let mut n = Vec::new();
        for _ in 0..300 {
            n.extend(w.push(&conn4(), 0));
        }
        n.extend(w.finish(0));
        assert_eq!(n.iter().map(|m| conns_in(m)).sum::<usize>(), 300);
        assert_eq!(n[0][4], 255);
    }

    #[test]
    fn ipvs_options_are_read_or_skipped_as_ipvs_does() {
        let mut w = MessageWriter::new(1, 1472, None);
        w.push(&conn4(), 0);
        let mut m = w.finish(0).unwrap();
        // Append a sequence-data option (what IPVS sends for FTP helper connections).
        m.extend_from_slice(&[OPT_SEQ_DATA, 24]);
        m.extend_from_slice(&[0; 24]);
        let size = m.len() as u16;
        m[2..4].copy_from_slice(&size.to_be_bytes());
        m[10..12].copy_from_slice(&(36u16 + 26).to_be_bytes());
        assert_eq!(parse(&m, 0, None).unwrap().conns.len(), 1);
        // An unknown mandatory option drops that record only.
        m[44] = 5;
        let p = parse(&m, 0, None).unwrap();
        assert_eq!((p.conns.len(), p.skipped), (0, 1));
        // An unknown skippable one is skipped.
        m[44] = OPT_F_PARAM | 5;
        assert_eq!(parse(&m, 0, None).unwrap().conns.len(), 1);
    }

    #[test]
    fn bad_messages_are_refused_never_panic() {
        let mut w = MessageWriter::new(3, 1472, None);
        w.push(&conn4(), 0);
        let m = w.finish(0).unwrap();
        assert_eq!(parse(&m, 4, None), Err(SyncError::OtherSyncId));
        for cut in 0..m.len() {
            assert!(parse(&m[..cut], 0, None).is_err(), "prefix {cut}");
        }
        let mut v0 = m.clone();
        v0[0] = 1;
        assert_eq!(parse(&v0, 0, None), Err(SyncError::Version));
        let mut over = m.clone();
        over[11] = 200;
        assert_eq!(parse(&over, 0, None), Err(SyncError::BadRecord));
        // Arbitrary bytes.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for len in 0..400 {
            let mut b = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.push(x as u8);
            }
            if b.len() >= 8 {
                b[0] = 0;
                b[5] = 1;
                b[6] = 0;
                b[7] = 0;
                let l = b.len() as u16;
                b[2..4].copy_from_slice(&l.to_be_bytes());
            }
            let _ = parse(&b, 0, None);
            let _ = parse(&b, 0, Some(b"key"));
        }
    }

    #[test]
    fn authentication_refuses_forged_and_unsigned_messages() {
        let key = b"a shared secret".to_vec();
        let mut w = MessageWriter::new(1, 1472, Some(key.clone()));
        w.push(&conn4(), 0);
        let m = w.finish(42).unwrap();
        assert_eq!(m.len(), 44 + AUTH_LEN);
        let p = parse(&m, 0, Some(&key)).unwrap();
        assert_eq!((p.seq, p.conns.len()), (Some(42), 1));
        // IPVS (no key) still reads the connection: the trailer is past it.
        assert_eq!(parse(&m, 0, None).unwrap().conns, vec![conn4()]);
        let mut forged = m.clone();
        forged[30] ^= 1;
        assert_eq!(parse(&forged, 0, Some(&key)), Err(SyncError::Auth));
        assert_eq!(parse(&m, 0, Some(b"other key")), Err(SyncError::Auth));
        let mut plain = MessageWriter::new(1, 1472, None);
        plain.push(&conn4(), 0);
        let unsigned = plain.finish(0).unwrap();
        assert_eq!(parse(&unsigned, 0, Some(&key)), Err(SyncError::Auth));
    }

    #[test]
    fn replays_and_stale_messages_are_refused() {
        let mut g = ReplayGuard::default();
        let from: std::net::SocketAddr = "198.18.1.3:8848".parse().unwrap();
        let now = 1_000_000_000;
        assert!(g.accept(from, now, now, 60_000_000));
        assert!(
            !g.accept(from, now, now, 60_000_000),
            "the same message again"
        );
        assert!(!g.accept(from, now - 1, now, 60_000_000), "an older one");
        assert!(g.accept(from, now + 1, now, 60_000_000));
        assert!(
            !g.accept(
                "198.18.1.4:8848".parse().unwrap(),
                now - 120_000_000,
                now,
                60_000_000
            ),
            "a recording from two minutes ago"
        );
    }
}
