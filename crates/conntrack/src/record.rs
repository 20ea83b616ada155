//! Fixed-size serialised form of a connection, for syncing to a peer (as IPVS's sync daemon
//! sends `ip_vs_sync_conn_v0/v1` records) and for dumps.
//!
//! Peers do not share a clock, so a record carries the *remaining* timeout, not the local
//! deadline, plus the sender's tick when it was taken (`stamp`): a receiver that gets two
//! records for one flow keeps the one with the later stamp from that sender, and sets its own
//! deadline to `its now + timeout_left`, as IPVS sets `cp->timeout` from a sync message.
//!
//! Layout (big-endian, [`RECORD_LEN`] = 92 bytes):
//!
//! | off | len | field |
//! |---|---|---|
//! | 0 | 1 | format version (1) |
//! | 1 | 1 | bit 0: IPv6; other bits 0 |
//! | 2 | 1 | IP protocol |
//! | 3 | 1 | state |
//! | 4 | 1 | flags |
//! | 5 | 1 | method |
//! | 6 | 2 | service |
//! | 8 | 2 | real |
//! | 10 | 2 | reserved, 0 |
//! | 12 | 4 | timeout left (ticks) |
//! | 16 | 4 | stamp (sender tick) |
//! | 20 | 36 | original: src 16, dst 16, sport 2, dport 2 |
//! | 56 | 36 | reply: same layout |

use thiserror::Error;

use crate::flow::{Conn, FlowKey};

pub const RECORD_LEN: usize = 92;
pub const RECORD_VERSION: u8 = 1;

/// A connection as sent to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnRecord {
    pub conn: Conn,
    /// Ticks until expiry at the sender when the record was made.
    pub timeout_left: u32,
    /// Sender's tick when the record was made; orders records of one flow from one sender.
    pub stamp: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("sync record has format version {0}, expected {RECORD_VERSION}")]
    Version(u8),
    #[error("sync record has unknown bits set in its family or reserved fields")]
    Reserved,
    #[error("sync record carries an IPv4 address with non-zero padding")]
    Padding,
}

impl ConnRecord {
    /// A record for an entry with `deadline`, taken at `now`.
    pub fn new(conn: Conn, deadline: u32, now: u32) -> Self {
        let left = deadline.wrapping_sub(now);
        ConnRecord {
            conn,
            // an already expired entry has nothing left
            timeout_left: if (left as i32) < 0 { 0 } else { left },
            stamp: now,
        }
    }

    pub fn to_bytes(&self) -> [u8; RECORD_LEN] {
        let c = &self.conn;
        let mut b = [0u8; RECORD_LEN];
        b[0] = RECORD_VERSION;
        b[1] = c.orig.v6 as u8;
        b[2] = c.orig.proto;
        b[3] = c.state;
        b[4] = c.flags;
        b[5] = c.method;
        b[6..8].copy_from_slice(&c.service.to_be_bytes());
        b[8..10].copy_from_slice(&c.real.to_be_bytes());
        b[12..16].copy_from_slice(&self.timeout_left.to_be_bytes());
        b[16..20].copy_from_slice(&self.stamp.to_be_bytes());
        put_key(&mut b[20..56], &c.orig);
        put_key(&mut b[56..92], &c.reply);
        b
    }

    pub fn from_bytes(b: &[u8; RECORD_LEN]) -> Result<Self, RecordError> {
        if b[0] != RECORD_VERSION {
            return Err(RecordError::Version(b[0]));
        }
        if b[1] & !1 != 0 || b[10] != 0 || b[11] != 0 {
            return Err(RecordError::Reserved);
        }
        let v6 = b[1] & 1 == 1;
        let proto = b[2];
        let orig = get_key(&b[20..56], proto, v6);
        let reply = get_key(&b[56..92], proto, v6);
        if !orig.is_canonical() || !reply.is_canonical() {
            return Err(RecordError::Padding);
        }
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(ConnRecord {
            conn: Conn {
                orig,
                reply,
                service: u16_at(6),
                real: u16_at(8),
                method: b[5],
                state: b[3],
                flags: b[4],
            },
            timeout_left: u32_at(12),
            stamp: u32_at(16),
        })
    }
}

fn put_key(b: &mut [u8], k: &FlowKey) {
    b[0..16].copy_from_slice(&k.src);
    b[16..32].copy_from_slice(&k.dst);
    b[32..34].copy_from_slice(&k.sport.to_be_bytes());
    b[34..36].copy_from_slice(&k.dport.to_be_bytes());
}

fn get_key(b: &[u8], proto: u8, v6: bool) -> FlowKey {
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&b[0..16]);
    dst.copy_from_slice(&b[16..32]);
    FlowKey {
        proto,
        v6,
        src,
        dst,
        sport: u16::from_be_bytes([b[32], b[33]]),
        dport: u16::from_be_bytes([b[34], b[35]]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Conn {
        Conn {
            orig: FlowKey::v4(6, [198, 18, 0, 2], 40000, [198, 18, 100, 1], 80),
            reply: FlowKey::v4(6, [198, 18, 1, 11], 8080, [198, 18, 0, 2], 40000),
            service: 0x0102,
            real: 0x0304,
            method: 5,
            state: 1,
            flags: 6,
        }
    }

    #[test]
    fn literal_bytes() {
        let r = ConnRecord::new(conn(), 1_000_500, 1_000_000);
        let b = r.to_bytes();
        assert_eq!(
            &b[0..20],
            &[1, 0, 6, 1, 6, 5, 1, 2, 3, 4, 0, 0, 0, 0, 1, 0xf4, 0, 0x0f, 0x42, 0x40]
        );
        assert_eq!(&b[20..24], &[198, 18, 0, 2]);
        assert_eq!(&b[36..40], &[198, 18, 100, 1]);
        assert_eq!(&b[52..56], &[0x9c, 0x40, 0, 80]);
        assert_eq!(&b[88..92], &[0x1f, 0x90, 0x9c, 0x40]);
        assert_eq!(ConnRecord::from_bytes(&b), Ok(r));
    }

    #[test]
    fn expired_has_zero_left() {
        assert_eq!(ConnRecord::new(conn(), 10, 20).timeout_left, 0);
        // across the u32 wrap
        assert_eq!(ConnRecord::new(conn(), 5, u32::MAX - 4).timeout_left, 10);
    }

    #[test]
    fn rejects_bad_records() {
        let mut b = ConnRecord::new(conn(), 0, 0).to_bytes();
        b[0] = 2;
        assert_eq!(ConnRecord::from_bytes(&b), Err(RecordError::Version(2)));
        b[0] = 1;
        b[1] = 2;
        assert_eq!(ConnRecord::from_bytes(&b), Err(RecordError::Reserved));
        b[1] = 0;
        b[30] = 1; // orig src padding of an IPv4 key
        assert_eq!(ConnRecord::from_bytes(&b), Err(RecordError::Padding));
    }
}
