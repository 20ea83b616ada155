//! The SYN proxy (`syn_proxy: true` on a TCP service forwarded by NAT or FullNAT), as
//! DPVS's `ip_vs_synproxy.c` does it for IPVS and RFC 4987 §3.6 describes SYN cookies:
//!
//! 1. A client's SYN is answered by uvs with a SYN-ACK whose sequence number is a SYN cookie
//!    ([`cookie`]); nothing is stored, so a flood of spoofed SYNs fills no table.
//! 2. The client's ACK returns the cookie. A valid one creates the connection entry (flag
//!    `SYNPROXY`, state SYN_SENT), the scheduler picks the real server, and the ACK frame
//!    becomes a SYN to it carrying the client's ISN and options (MSS, window scale, SACK,
//!    timestamps as the cookie decoded them). The SYN is retransmitted by the worker that
//!    sent it ([`retransmit`]) until the server answers; a server that never answers (or
//!    refuses) gets the client reset.
//! 3. The server's SYN-ACK is turned into the ACK that completes its handshake; the
//!    difference between its ISN and the cookie (and between its TSval and uvs's) goes to
//!    a table beside the connection table ([`SpliceTable`]); from then on every segment is
//!    translated (`splice`).
//!
//! With `proxy_protocol: v2` the ACK of step 3 carries a PROXY protocol v2 header (HAProxy's
//! `proxy-protocol.txt`; `uvs_wire::proxy_v2`): the client's address and port and the VIP's,
//! the first bytes the server reads. The client's sequence space is then `L` bytes (28 for
//! IPv4, 52 for IPv6) behind the server's view of it: its SEQ gets + L on the way in, the
//! server's ACK and SACK blocks − L on the way out (`splice`). A header that went
//! missing is sent again when the server shows it: a repeated SYN-ACK (our ACK never
//! arrived) or an ACK of only its SYN (a later client segment completed the handshake).
//!
//! A client's first segment that arrives before the server's SYN-ACK is held in a fixed
//! per-worker pool and sent once the connection is spliced ([`retransmit`]); others are
//! dropped and counted (`synproxy_not_ready`): the client still holds them and
//! retransmits. No memory grows with a client's sending.
//!
//! A `layer: 7` service ([`layer7`]) defers step 2 to the client's first data segment, which
//! returns the same cookie: its request head or TLS ClientHello chooses the pool whose
//! scheduler picks the server; the segment is then held like any early segment. A head
//! longer than one segment is received by uvs itself ([`head`]) and replayed to the server.

pub mod cookie;
mod handshake;
pub mod head;
mod heads;
pub mod layer7;
pub mod retransmit;
mod splice;

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;

use crossbeam::queue::ArrayQueue;

pub(crate) use handshake::on_new_flow;
pub(crate) use splice::{established, quoted};

/// The window-scale shift uvs offers a client in its SYN-ACK (before it knows the real
/// server's): Linux's default for a 6 MiB receive buffer. A server that scales by another
/// shift has its windows rescaled on the way (`splice`).
pub const OFFERED_WSCALE: u8 = 7;
/// The window of uvs's SYN-ACK (never scaled, RFC 7323 §2.2).
pub const SYNACK_WINDOW: u16 = 65535;
/// How long an entry waits for the real server's SYN-ACK at most (the retransmissions
/// give up earlier and reset the client).
pub const SYN_SENT_TIMEOUT_MS: u32 = 8000;

/// State the SYN proxy shares between workers.
#[derive(Debug)]
pub struct ProxyShared {
    pub secret: cookie::CookieSecret,
    splices: OnceLock<SpliceTable>,
    /// Refusals handed to the worker keeping their connection's SYN ([`Handovers`]).
    pub handovers: Handovers,
}

impl Default for ProxyShared {
    fn default() -> Self {
        Self::new(1)
    }
}

impl ProxyShared {
    pub fn new(workers: usize) -> Self {
        Self {
            secret: cookie::CookieSecret::random(),
            splices: OnceLock::new(),
            handovers: Handovers::new(workers),
        }
    }

    /// The splice table (22 bytes per connection slot of each family), allocated when
    /// tables with a `syn_proxy` service are first built or published (`Shared::new`,
    /// control's reload), so a configuration without `syn_proxy` never pays for it; a
    /// worker only allocates it if it was somehow missed.
    pub fn splices(&self, conns: &uvs_conntrack::ConnTable) -> &SpliceTable {
        self.splices
            .get_or_init(|| SpliceTable::new(conns.capacity_of(false), conns.capacity_of(true)))
    }
}

/// Largest refusal handed over: a RST with its link header (two VLAN tags), IPv6 and TCP
/// with 40 bytes of options.
pub const HANDED_MAX: usize = 142;
/// Refusals waiting per worker at most; beyond, the worker that got one answers the client
/// itself.
pub const HANDED_QUEUE: usize = 256;

/// A server's refusal (RST to uvs's SYN) that RSS gave to another worker than the one that
/// sent the SYN and keeps its copy: only that one can send the SYN to another server
/// (`splice.rs`'s redispatch). The worker that got the RST hands it over, as received, and
/// rings the keeper's doorbell; the keeper runs it through its pipeline as if it had
/// received it (at its next poll, before its timers).
#[derive(Debug)]
pub struct Handovers {
    queues: Box<[ArrayQueue<Handed>]>,
}

/// A handed-over frame and its length.
type Handed = ([u8; HANDED_MAX], u8);

impl Handovers {
    fn new(workers: usize) -> Self {
        Self {
            queues: (0..workers.max(1))
                .map(|_| ArrayQueue::new(HANDED_QUEUE))
                .collect(),
        }
    }

    /// Queues `frame` for `worker`; false if it cannot (no such worker, its queue full,
    /// the frame too long).
    pub(crate) fn hand(&self, worker: usize, frame: &[u8]) -> bool {
        let Some(q) = self
            .queues
            .get(worker)
            .filter(|_| frame.len() <= HANDED_MAX)
        else {
            return false;
        };
        let mut f = [0u8; HANDED_MAX];
        f[..frame.len()].copy_from_slice(frame);
        q.push((f, frame.len() as u8)).is_ok()
    }

    /// Whether a refusal waits for `worker`.
    pub(crate) fn waiting(&self, worker: usize) -> bool {
        self.queues.get(worker).is_some_and(|q| !q.is_empty())
    }

    /// The next refusal handed to `worker`, copied into `out`: its length.
    pub(crate) fn take(&self, worker: usize, out: &mut [u8]) -> Option<usize> {
        let (f, len) = self.queues.get(worker)?.pop()?;
        let n = usize::from(len).min(out.len());
        out[..n].copy_from_slice(&f[..n]);
        Some(n)
    }
}

/// Connection `id`'s element of a per-slot array of each family.
fn of_family<'a, T>(id: uvs_conntrack::ConnId, v4: &'a [T], v6: &'a [T]) -> Option<&'a T> {
    if id.is_v6() { v6 } else { v4 }.get(id.index())
}

/// Per connection slot: what a spliced connection adds to the connection entry.
///
/// - word `a`: while SYN_SENT, uvs's ISN (high 32 bits) and the TSval it sent the client
///   (low); once spliced, the sequence delta (server ISN − cookie) and the timestamp delta
///   (server TSval − uvs's TSval).
/// - word `b`: the option bits ([`Opts`]); with a PROXY header, the client's ISN + 1 in
///   the high 32 bits.
///
/// The worker that completes the handshake writes both words before it moves the entry
/// to ESTABLISHED; a worker that sees ESTABLISHED reads them.
#[derive(Debug)]
pub struct SpliceTable {
    v4: Box<[[AtomicU64; 2]]>,
    v6: Box<[[AtomicU64; 2]]>,
    /// Layer 7 ([`head`]): where the request head uvs received and replays ends, in the
    /// client's sequence space (4 bytes per slot; read only with [`Opts::REPLAY`]).
    replay_v4: Box<[AtomicU32]>,
    replay_v6: Box<[AtomicU32]>,
    /// While SYN_SENT: the worker that sent the SYN and keeps its copy (2 bytes per slot;
    /// `u16::MAX`: none known).
    keeper_v4: Box<[AtomicU16]>,
    keeper_v6: Box<[AtomicU16]>,
}

impl SpliceTable {
    fn new(v4: usize, v6: usize) -> Self {
        let mk = |n: usize| {
            (0..n)
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect()
        };
        let ends = |n: usize| (0..n).map(|_| AtomicU32::new(0)).collect();
        let keepers = |n: usize| (0..n).map(|_| AtomicU16::new(u16::MAX)).collect();
        Self {
            v4: mk(v4),
            v6: mk(v6),
            replay_v4: ends(v4),
            replay_v6: ends(v6),
            keeper_v4: keepers(v4),
            keeper_v6: keepers(v6),
        }
    }

    fn keeper_slot(&self, id: uvs_conntrack::ConnId) -> Option<&AtomicU16> {
        of_family(id, &self.keeper_v4, &self.keeper_v6)
    }

    /// Records that `worker` sent connection `id`'s SYN and keeps its copy.
    pub(crate) fn set_keeper(&self, id: uvs_conntrack::ConnId, worker: usize) {
        if let Some(s) = self.keeper_slot(id) {
            s.store(u16::try_from(worker).unwrap_or(u16::MAX), Ordering::Release);
        }
    }

    /// The worker that sent connection `id`'s SYN, if known.
    pub(crate) fn keeper(&self, id: uvs_conntrack::ConnId) -> Option<usize> {
        let w = self.keeper_slot(id)?.load(Ordering::Acquire);
        (w != u16::MAX).then_some(usize::from(w))
    }

    fn replay_slot(&self, id: uvs_conntrack::ConnId) -> Option<&AtomicU32> {
        of_family(id, &self.replay_v4, &self.replay_v6)
    }

    /// Records where a replayed head ends (before the entry leaves SYN_SENT).
    pub(crate) fn set_replay_end(&self, id: uvs_conntrack::ConnId, end: u32) {
        if let Some(s) = self.replay_slot(id) {
            s.store(end, Ordering::Release);
        }
    }

    pub(crate) fn replay_end(&self, id: uvs_conntrack::ConnId) -> u32 {
        self.replay_slot(id)
            .map_or(0, |s| s.load(Ordering::Acquire))
    }

    fn slot(&self, id: uvs_conntrack::ConnId) -> Option<&[AtomicU64; 2]> {
        of_family(id, &self.v4, &self.v6)
    }

    pub(crate) fn load(&self, id: uvs_conntrack::ConnId) -> (u64, Opts) {
        match self.slot(id) {
            Some(s) => (
                s[0].load(Ordering::Acquire),
                Opts(s[1].load(Ordering::Acquire)),
            ),
            None => (0, Opts(0)),
        }
    }

    pub(crate) fn store(&self, id: uvs_conntrack::ConnId, a: u64, b: Opts) {
        if let Some(s) = self.slot(id) {
            s[0].store(a, Ordering::Release);
            s[1].store(b.0, Ordering::Release);
        }
    }

    /// Sets `bits` in word `b` (a flag learnt after the splice, such as
    /// [`Opts::PROXY_ACKED`]).
    pub(crate) fn set(&self, id: uvs_conntrack::ConnId, bits: u64) {
        if let Some(s) = self.slot(id) {
            s[1].fetch_or(bits, Ordering::AcqRel);
        }
    }

    /// Claims the completion of a handshake: sets `SPLICED` with the server's option bits
    /// unless another worker did; true for the one that did.
    pub(crate) fn claim(&self, id: uvs_conntrack::ConnId, server: Opts) -> bool {
        match self.slot(id) {
            Some(s) => {
                let old = s[1].fetch_or(server.0 | Opts::SPLICED, Ordering::AcqRel);
                old & Opts::SPLICED == 0
            }
            None => false,
        }
    }
}

/// Option bits of a proxied connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Opts(pub u64);

impl Opts {
    /// The client offered window scaling (uvs's SYN-ACK then offered [`OFFERED_WSCALE`]).
    pub const CLIENT_WS: u64 = 1 << 8;
    /// The server's SYN-ACK carried window scale: scaling is on for the server's half.
    pub const SERVER_WS: u64 = 1 << 9;
    /// Timestamps are on for the client's half.
    pub const CLIENT_TS: u64 = 1 << 10;
    /// The server's SYN-ACK carried timestamps.
    pub const SERVER_TS: u64 = 1 << 11;
    /// The handshake with the server completed and word `a` holds the deltas.
    pub const SPLICED: u64 = 1 << 12;
    /// A PROXY v2 header goes first to the server (`proxy_protocol: v2`); the high 32 bits
    /// hold the client's ISN + 1, where the header starts.
    pub const PROXY: u64 = 1 << 13;
    /// The server acknowledged the PROXY header: it is never sent again.
    pub const PROXY_ACKED: u64 = 1 << 14;
    /// Layer 7: uvs received (and acknowledged) the client's request head itself and
    /// replays it to the server ([`head`]); it ends at `SpliceTable::replay_end`.
    pub const REPLAY: u64 = 1 << 15;
    /// Layer 7: the first request is plain HTTP/1.x and ends at
    /// `SpliceTable::replay_end`: a server that refuses the connection gets the client a
    /// `503` there instead of a RST.
    pub const HTTP: u64 = 1 << 30;
    /// The server acknowledged the whole replayed head: the worker holding it frees it.
    pub const REPLAY_ACKED: u64 = 1 << 31;
    /// Bits 16..29: the MSS of the server's SYN-ACK (capped at 16383; 0 without one), the
    /// size of the replayed head's segments.
    const SERVER_MSS_SHIFT: u32 = 16;
    const SERVER_MSS_MAX: u64 = 0x3fff;

    /// These bits with the MSS the server announced.
    pub fn with_server_mss(self, mss: Option<u16>) -> Self {
        let m = u64::from(mss.unwrap_or(0)).min(Self::SERVER_MSS_MAX);
        Opts(
            (self.0 & !(Self::SERVER_MSS_MAX << Self::SERVER_MSS_SHIFT))
                | (m << Self::SERVER_MSS_SHIFT),
        )
    }

    /// The MSS the server announced in its SYN-ACK, if it did.
    pub fn server_mss(self) -> Option<u16> {
        match ((self.0 >> Self::SERVER_MSS_SHIFT) & Self::SERVER_MSS_MAX) as u16 {
            0 => None,
            m => Some(m),
        }
    }

    /// These bits with a PROXY header starting at the client's sequence number `start`.
    pub fn with_proxy(self, start: u32) -> Self {
        Opts((self.0 & 0xffff_ffff) | Self::PROXY | (u64::from(start) << 32))
    }

    /// The PROXY header's length for a connection of this family, 0 without one.
    pub fn proxy_len(self, v6: bool) -> u32 {
        match (self.has(Self::PROXY), v6) {
            (false, _) => 0,
            (true, false) => uvs_wire::proxy_v2::LEN_V4 as u32,
            (true, true) => uvs_wire::proxy_v2::LEN_V6 as u32,
        }
    }

    /// The client's sequence number where the PROXY header starts (its ISN + 1).
    pub fn proxy_start(self) -> u32 {
        (self.0 >> 32) as u32
    }

    pub fn client(wscale: Option<u8>, ts: bool) -> Self {
        let mut v = u64::from(wscale.unwrap_or(0) & 0x0f);
        if wscale.is_some() {
            v |= Self::CLIENT_WS;
        }
        if ts {
            v |= Self::CLIENT_TS;
        }
        Opts(v)
    }

    pub fn server(wscale: Option<u8>, ts: bool) -> Self {
        let mut v = u64::from(wscale.unwrap_or(0).min(cookie::MAX_WSCALE)) << 4;
        if wscale.is_some() {
            v |= Self::SERVER_WS;
        }
        if ts {
            v |= Self::SERVER_TS;
        }
        Opts(v)
    }

    pub fn has(self, bit: u64) -> bool {
        self.0 & bit != 0
    }

    /// The client's shift.
    pub fn client_shift(self) -> u8 {
        (self.0 & 0x0f) as u8
    }

    /// The server's shift.
    pub fn server_shift(self) -> u8 {
        ((self.0 >> 4) & 0x0f) as u8
    }

    /// Window rescaling client → server: the client scales by its shift when it offered
    /// scaling; the server reads that shift only if it accepted scaling.
    pub fn window_to_server(self) -> (u8, u8) {
        let from = if self.has(Self::CLIENT_WS) {
            self.client_shift()
        } else {
            0
        };
        let to = if self.has(Self::SERVER_WS) { from } else { 0 };
        (from, to)
    }

    /// Window rescaling server → client: the server scales by its own shift when it
    /// accepted scaling; the client reads the shift uvs offered it.
    pub fn window_to_client(self) -> (u8, u8) {
        let from = if self.has(Self::SERVER_WS) {
            self.server_shift()
        } else {
            0
        };
        let to = if self.has(Self::CLIENT_WS) {
            OFFERED_WSCALE
        } else {
            0
        };
        (from, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_rescaling_follows_what_each_side_agreed() {
        // Both sides scale, by different shifts.
        let o = Opts(Opts::client(Some(9), true).0 | Opts::server(Some(5), true).0);
        assert_eq!(o.window_to_server(), (9, 9));
        assert_eq!(o.window_to_client(), (5, OFFERED_WSCALE));
        // The server refuses scaling: the client's scaled windows are widened for it, and
        // its unscaled windows narrowed for the client.
        let o = Opts(Opts::client(Some(9), true).0 | Opts::server(None, true).0);
        assert_eq!(o.window_to_server(), (9, 0));
        assert_eq!(o.window_to_client(), (0, OFFERED_WSCALE));
        // The client never offered scaling: nothing to do.
        let o = Opts(Opts::client(None, false).0 | Opts::server(None, false).0);
        assert_eq!(o.window_to_server(), (0, 0));
        assert_eq!(o.window_to_client(), (0, 0));
    }

    #[test]
    fn proxy_bits_keep_the_options_and_the_start() {
        let o = Opts::client(Some(9), true).with_proxy(0xdead_beef);
        assert!(o.has(Opts::PROXY) && o.has(Opts::CLIENT_WS) && o.has(Opts::CLIENT_TS));
        assert_eq!(o.client_shift(), 9);
        assert_eq!(o.proxy_start(), 0xdead_beef);
        assert_eq!(o.proxy_len(false), 28);
        assert_eq!(o.proxy_len(true), 52);
        assert_eq!(Opts::client(None, false).proxy_len(true), 0);
    }

    #[test]
    fn server_mss_and_replay_bits_keep_the_rest() {
        let o = Opts(Opts::client(Some(9), true).with_proxy(7).0 | Opts::REPLAY | Opts::HTTP);
        let m = o.with_server_mss(Some(1460));
        assert_eq!(m.server_mss(), Some(1460));
        assert!(m.has(Opts::REPLAY) && !m.has(Opts::REPLAY_ACKED) && m.has(Opts::PROXY));
        assert!(m.has(Opts::HTTP));
        assert_eq!((m.client_shift(), m.proxy_start()), (9, 7));
        let big = o.with_server_mss(Some(60000));
        assert_eq!(big.server_mss(), Some(0x3fff));
        assert!(big.has(Opts::HTTP) && !big.has(Opts::REPLAY_ACKED));
        assert_eq!(o.server_mss(), None);
    }
}
