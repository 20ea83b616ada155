//! The life of a connection on its real server, in one place for the workers and the
//! control thread (IPVS spreads these rules over `ip_vs_bind_dest`, `ip_vs_unbind_dest`,
//! `set_tcp_state`, `ip_vs_in`'s `conn_reuse_mode` check and `ip_vs_random_dropentry`).
//!
//! - **Bind**: a new flow counts as *inactive* on its real server ([`bind`]).
//! - **State**: a flow is *active* while its protocol state is ESTABLISHED (TCP and SCTP,
//!   as IPVS counts them); every state write goes through [`transition`], a compare-and-set
//!   on the entry's state, so of two workers moving the same flow from a stale view exactly
//!   one moves the counters. A write that does not check the state could undo another
//!   worker's transition and leave the counters and the entry disagreeing for good.
//! - **Unbind**: whoever takes an entry out of the table — `ConnTable::remove` returning
//!   true, or the expiry callback — calls [`unbind`] exactly once, with the entry's last
//!   state.
//! - **Reuse** ([`reschedules`]): a new connection's first packet (TCP SYN, SCTP INIT) that
//!   finds an old entry of its tuple is scheduled afresh when that entry is closing
//!   (`conn_reuse_mode`) or its real server can take no traffic (removed or failed its
//!   health check) — so a client that reuses a port never follows a dead entry. Under NAT
//!   a [`closing`] entry also gives up its reply tuple to a new connection that needs it.
//! - **Alive** ([`dest_alive`]): a connection's real server is still configured at the
//!   same address and its health check passes; with `expire_nodest_conn` the others'
//!   entries are dropped.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::Relaxed};

pub use uvs_conntrack::ConnView;
use uvs_conntrack::{tcp::TcpState, Conn, ConnId, FlowKey, Hit};

use crate::pipeline::{conn_flags, PROTO_SCTP, PROTO_TCP, PROTO_TEMPLATE};
use crate::sctp::SctpState;
use crate::tables::{IpKey, Method, ServiceRt, Tables, SORRY_SLOT};

/// IPVS's connection-lifecycle sysctls, as one worker sees them for one burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `conn_reuse_mode`: bit 0 reschedules a SYN on a TIME_WAIT/CLOSE entry, bit 1 also on
    /// a FIN_WAIT entry of a DR/TUN connection.
    pub conn_reuse_mode: u8,
    /// `expire_nodest_conn`: drop connections whose real server is removed or down.
    pub expire_nodest_conn: bool,
    /// `expire_quiescent_template`: persistence templates of weight-0 servers are dropped.
    pub expire_quiescent_template: bool,
    /// `drop_entry`: half-open connections are dropped when the table is nearly full.
    pub drop_entry: bool,
}

impl Default for Settings {
    /// IPVS's defaults, except `drop_entry` (see `uvs_config::Config::drop_entry`).
    fn default() -> Self {
        Settings {
            conn_reuse_mode: 1,
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            drop_entry: true,
        }
    }
}

/// The settings as control publishes them and workers read them once per poll.
#[derive(Debug)]
pub struct SharedSettings {
    conn_reuse_mode: AtomicU8,
    expire_nodest_conn: AtomicBool,
    expire_quiescent_template: AtomicBool,
    drop_entry: AtomicBool,
}

impl Default for SharedSettings {
    fn default() -> Self {
        let s = SharedSettings {
            conn_reuse_mode: AtomicU8::new(0),
            expire_nodest_conn: AtomicBool::new(false),
            expire_quiescent_template: AtomicBool::new(false),
            drop_entry: AtomicBool::new(false),
        };
        s.store(Settings::default());
        s
    }
}

impl SharedSettings {
    pub fn load(&self) -> Settings {
        Settings {
            conn_reuse_mode: self.conn_reuse_mode.load(Relaxed),
            expire_nodest_conn: self.expire_nodest_conn.load(Relaxed),
            expire_quiescent_template: self.expire_quiescent_template.load(Relaxed),
            drop_entry: self.drop_entry.load(Relaxed),
        }
    }

    pub fn store(&self, s: Settings) {
        self.conn_reuse_mode.store(s.conn_reuse_mode, Relaxed);
        self.expire_nodest_conn.store(s.expire_nodest_conn, Relaxed);
        self.expire_quiescent_template
            .store(s.expire_quiescent_template, Relaxed);
        self.drop_entry.store(s.drop_entry, Relaxed);
    }
}

/// Whether a flow of protocol `proto` in `state` counts as active on its real server:
/// TCP and SCTP while ESTABLISHED; everything else (UDP, ICMP) is inactive, as ipvsadm
/// shows UDP flows under InActConn.
#[inline]
pub fn is_active(proto: u8, state: u8) -> bool {
    match proto {
        PROTO_TCP => state == TcpState::Established as u8,
        PROTO_SCTP => state == SctpState::Established as u8,
        _ => false,
    }
}

/// What a connection-table entry is. One table holds every kind, each in its own key
/// space (a template's key carries protocol [`PROTO_TEMPLATE`], a tag record's
/// [`crate::sctp::tags::PROTO_TAG_TO_SERVER`] / `…_TO_CLIENT`, never a packet's protocol);
/// code outside the table asks for the kind instead of testing flag bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A connection: TCP, UDP or an SCTP association, bound to a real server.
    Flow,
    /// A persistence template: client (masked), VIP and service port → real server.
    Template,
    /// An SCTP verification-tag record (`sctp/tags.rs`), how an association's packets
    /// are found by tag.
    SctpTag,
}

impl EntryKind {
    #[inline]
    pub fn of(c: &Conn) -> EntryKind {
        if c.flags & conn_flags::TEMPLATE == 0 {
            EntryKind::Flow
        } else if c.flags & crate::sctp::tags::TAG_RECORD != 0 {
            EntryKind::SctpTag
        } else {
            EntryKind::Template
        }
    }
}

/// True for connections; templates and tag records are never bound to a real server's
/// counters.
#[inline]
pub fn is_flow(c: &Conn) -> bool {
    EntryKind::of(c) == EntryKind::Flow
}

/// Counts a new flow on its real server (`ip_vs_bind_dest`): inactive until its state
/// reaches ESTABLISHED. The sorry server is not counted.
#[inline]
pub fn bind(svc: &ServiceRt, slot: u16, state: u8, proto: u8) {
    if slot == SORRY_SLOT {
        return;
    }
    let i = usize::from(slot);
    if let (Some(live), Some(spec)) = (svc.live.get(i), svc.specs.get(i)) {
        live.bind_conn(spec, is_active(proto, state));
    }
}

/// Gives a departing flow's place on its real server back (`ip_vs_unbind_dest`). Call
/// exactly once per flow, by whoever removed it from the table. A flow of a removed server
/// gives it back to the slot reserved for that server ([`crate::tables::Retired`], IPVS's
/// trash dest), so a server re-added there shows only its still-live flows; a flow whose
/// slot now holds another server is not counted against the newcomer
/// ([`ServiceRt::counts_flow_of`]).
pub fn unbind(tables: &Tables, c: &Conn) {
    if !is_flow(c) || c.real == SORRY_SLOT {
        return;
    }
    let Some(svc) = tables.service(c.service) else {
        return;
    };
    if !svc.counts_flow_of(c.real, real_addr(c)) {
        return;
    }
    let slot = usize::from(c.real);
    svc.live[slot].unbind_conn(&svc.specs[slot], is_active(c.orig.proto, c.state));
}

/// The real server a connection was sent to: its reply tuple's source, which a NAT64 flow
/// keeps IPv4-mapped in its IPv6 entry (`pipeline/nat64.rs`).
#[inline]
pub fn real_addr<C: ConnView + ?Sized>(c: &C) -> IpKey {
    if crate::pipeline::is_nat64(c) {
        IpKey {
            v6: false,
            addr: crate::pipeline::unmapped(c.reply_src()),
        }
    } else {
        IpKey {
            v6: c.v6(),
            addr: *c.reply_src(),
        }
    }
}

/// Whether a flow's real server may still carry it: configured at the same address and
/// passing its health check (IPVS's `IP_VS_DEST_F_AVAILABLE`; keepalived removes a failed
/// server, uvs keeps it configured but marks it down). The sorry server always may.
pub fn dest_alive<C: ConnView + ?Sized>(svc: &ServiceRt, c: &C) -> bool {
    let slot = c.real();
    match svc.real(slot) {
        Some(r) if r.addr == real_addr(c) => slot_alive(svc, slot),
        _ => false,
    }
}

/// Whether the real server in slot `slot` of `svc` passes its health check (the sorry
/// server always does): [`dest_alive`] once the slot is known to hold the flow's server.
#[inline]
pub fn slot_alive(svc: &ServiceRt, slot: u16) -> bool {
    slot == SORRY_SLOT
        || svc
            .live
            .get(usize::from(slot))
            .is_some_and(|l| l.health_up.load(Relaxed))
}

/// [`dest_alive`] for a connection of the snapshot `tables`: false when its service is gone.
pub fn conn_alive(tables: &Tables, c: &Conn) -> bool {
    tables.service(c.service).is_some_and(|s| dest_alive(s, c))
}

/// Whether a new connection's first packet that found the entry `c` (client → VIP
/// direction) must expire it and be scheduled afresh, as IPVS's `ip_vs_in` decides with
/// `conn_reuse_mode` and `expire_nodest_conn`, plus one rule of uvs's: a new connection
/// never follows an entry whose real server is removed or down, whatever the settings
/// (the client has given up the old connection; sending its SYN to a dead server only
/// costs it a retransmission timeout).
pub fn reschedules<C: ConnView + ?Sized>(settings: &Settings, svc: &ServiceRt, c: &C) -> bool {
    if !dest_alive(svc, c) {
        return true;
    }
    if settings.conn_reuse_mode == 0 {
        return false;
    }
    if settings.expire_nodest_conn
        && c.real() != SORRY_SLOT
        && svc
            .specs
            .get(usize::from(c.real()))
            .is_some_and(|s| s.weight == 0)
    {
        return true;
    }
    closing(c)
        || (settings.conn_reuse_mode & 2 != 0
            && c.proto() == PROTO_TCP
            && TcpState::from_u8(c.state()) == Some(TcpState::FinWait)
            && matches!(Method::from_u8(c.method()), Some(Method::Dr | Method::Tun)))
}

/// Whether a connection is over on both sides and only waits out its timer: TCP
/// TIME_WAIT or CLOSE, SCTP CLOSED. A new connection may take such an entry's tuple: its
/// own ([`reschedules`], with `conn_reuse_mode`) or, under NAT, its reply tuple
/// (`pipeline::retire_closing_holder`).
pub fn closing<C: ConnView + ?Sized>(c: &C) -> bool {
    match c.proto() {
        PROTO_TCP => matches!(
            TcpState::from_u8(c.state()),
            Some(TcpState::TimeWait | TcpState::Close)
        ),
        PROTO_SCTP => SctpState::from_u8(c.state()) == SctpState::Closed,
        _ => false,
    }
}

/// Whether a persistence template's real server may still take this client's new flows
/// (`ip_vs_check_template`): configured, passing its health check, not overloaded, and —
/// with `expire_quiescent_template` — of non-zero weight. A quiesced server keeps its
/// persistent clients by default: that is what quiescing is for.
///
/// A template naming the sorry server holds only while the service has one and none of
/// its real servers could take a new connection (the scheduler's rule,
/// `Scheduler::any_available`: up, weight > 0, not drained, not overloaded). Once one
/// could, the client is scheduled afresh and its template replaced, as under keepalived,
/// which removes the sorry server from IPVS when a real server comes back, so that
/// `ip_vs_check_template` expires its templates. Otherwise a client that keeps connecting
/// refreshes the template and never leaves the sorry server. Its established connections
/// stay there ([`dest_alive`]). Checked for new connections only.
pub fn template_usable(settings: &Settings, svc: &ServiceRt, slot: u16) -> bool {
    if slot == SORRY_SLOT {
        return svc.sorry.is_some() && !svc.sched.any_available(&svc.live);
    }
    let i = usize::from(slot);
    let (Some(Some(_)), Some(live), Some(spec)) =
        (svc.reals.get(i), svc.live.get(i), svc.specs.get(i))
    else {
        return false;
    };
    live.health_up.load(Relaxed)
        && !live.overloaded.load(Relaxed)
        && (spec.weight > 0 || !settings.expire_quiescent_template)
}

/// The persistence template that places `client`'s new flows on `svc` — the client masked
/// to the persistence netmask; the service's own address: the VIP, or for a firewall-mark
/// service its mark, so a client keeps its server across all of the mark's destinations
/// (as IPVS) — and its timeout in ticks. None for a service without persistence.
pub fn client_template(svc: &ServiceRt, client: [u8; 16], v6: bool) -> Option<(FlowKey, u32)> {
    let pers = svc.persistence?;
    let mut masked = client;
    let len = if v6 {
        pers.prefix_len
    } else {
        pers.prefix_len.min(32)
    };
    mask_prefix(&mut masked, len, v6);
    Some((
        template_key(svc, masked, svc.key.vip.addr, v6),
        pers.timeout_s.saturating_mul(1000),
    ))
}

fn mask_prefix(addr: &mut [u8; 16], len: u8, v6: bool) {
    let bits = if v6 { 128 } else { 32 };
    let len = usize::from(len.min(bits));
    for (i, b) in addr.iter_mut().enumerate().take(bits as usize / 8) {
        let keep = len.saturating_sub(i * 8).min(8);
        *b &= if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
    }
}

/// The connection-table key of a persistence template: the client (masked to the
/// persistence netmask), the VIP, the service's port (0 for a port-0 service, which
/// persists across every port, as ipvsadm -p with port 0 does) and, in the source-port
/// field, the service's protocol — so a TCP and a UDP service on one VIP:port keep
/// separate templates, as IPVS's templates carry their protocol.
pub fn template_key(svc: &ServiceRt, client: [u8; 16], vip: [u8; 16], v6: bool) -> FlowKey {
    FlowKey {
        proto: PROTO_TEMPLATE,
        v6,
        src: client,
        dst: vip,
        sport: u16::from(svc.key.proto),
        dport: svc.key.port,
    }
}

/// A persistence template entry for `key` (see [`template_key`]) naming real server `slot`.
pub fn template(svc: &ServiceRt, key: FlowKey, slot: u16) -> Conn {
    Conn {
        orig: key,
        reply: key.reversed(),
        service: svc.id,
        real: slot,
        method: 0,
        state: 0,
        flags: conn_flags::TEMPLATE,
    }
}

/// Whether a deadline `left` ticks away is within a second of a fresh one `timeout` ticks
/// away: an unchanged state then writes nothing ([`transition`]).
#[inline(always)]
pub fn deadline_fresh(left: u32, timeout: u32) -> bool {
    left.saturating_add(1000) >= timeout && left <= timeout.saturating_add(1000)
}

/// How many times a transition is re-derived after losing a race before giving up (each
/// retry means another worker moved the same flow in between; a flow has few states).
const TRANSITION_RETRIES: usize = 4;

/// Applies a state change to `hit`'s flow: `next` maps the current state to the new one,
/// `timeout` a state to its timeout (ms), `refresh` says whether an unchanged state still
/// extends the deadline. The write is a compare-and-set on the state the change was
/// derived from; on a lost race the change is derived again from the state that won.
/// The real server's active/inactive counters move only with a successful write that
/// crosses ESTABLISHED. Returns true when this call changed the state (the sync daemon
/// hears of it).
#[inline]
pub fn transition(
    conns: &uvs_conntrack::ConnTable,
    svc: &ServiceRt,
    hit: &Hit,
    now: u32,
    next: impl Fn(u8) -> u8,
    timeout: impl Fn(u8) -> u32,
    refresh: impl Fn(u8, u8) -> bool,
) -> bool {
    let mut old = hit.state();
    let mut left = hit.deadline.wrapping_sub(now);
    for _ in 0..TRANSITION_RETRIES {
        let new = next(old);
        let t = timeout(new);
        // Unchanged state: rewrite the deadline only when it moved by more than a second,
        // so a busy flow costs its shared cache line about one write a second.
        if new == old && (!refresh(old, new) || deadline_fresh(left, t)) {
            return false;
        }
        match conns.transition(hit.id, old, new, now.wrapping_add(t)) {
            Ok(()) => {
                let (was, is) = (is_active(hit.proto(), old), is_active(hit.proto(), new));
                // Only a flow still counted on its slot moves counters: its server's, or
                // the one reserved for it since its removal (a slot never holds another
                // server's flows' counts, [`ServiceRt::counts_flow_of`]).
                if was != is && svc.counts_flow_of(hit.real(), real_addr(hit)) {
                    svc.live[usize::from(hit.real())].conn_state_changed(is);
                }
                return new != old;
            }
            Err(Some(now_state)) => {
                old = now_state;
                // The winner just wrote a fresh deadline.
                left = t;
            }
            Err(None) => return false,
        }
    }
    false
}

/// How long a flow without a handshake (UDP, ICMP) must have been idle before the
/// `drop_entry` defence may drop it: IPVS's `todrop_entry` keeps every entry that saw a
/// packet within the last 60 s.
pub const DROP_IDLE_MS: u32 = 60_000;

/// IPVS's `drop_entry` defence for a bounded table: in each address family whose table is
/// at least 7/8 full, drops the TCP connections that never completed their handshake
/// (SYN_RECV, SYNACK) — what a SYN flood leaves behind — and the SCTP associations whose
/// INIT was never answered (INIT1, INIT: an INIT flood; with their tag records), oldest
/// first, until a quarter of
/// the table is free, and releases their counters, so legitimate clients find room as
/// soon as a flood ends instead of when its entries time out, and a handshake under way
/// during one survives while older half-open entries are there to drop (IPVS drops them at
/// random). Flows of a protocol without a handshake (UDP, ICMP), whose flood entries cannot be
/// told from real clients', go once idle for [`DROP_IDLE_MS`] (`now` is the table's
/// clock), as IPVS's `todrop_entry` lets them go: a UDP flood locks new clients out for a
/// minute, not for the UDP timeout (5 min). Established TCP and SCTP connections are
/// otherwise never dropped (IPVS drops idle ones at random; uvs keeps them).
///
/// A consistent-hash service (mh, sh) adopts a mid-flow segment it has no entry for, so a
/// spoofed ACK flood opens established entries (15 minutes each under DR, where uvs never
/// sees the server's RST): its TCP connections idle for [`DROP_IDLE_MS`] go too, as IPVS's
/// `todrop_entry` drops idle established ones; a real one is adopted again at its next
/// segment, by the same server while the servers stay the same.
///
/// A persistent service gives each flooding source a template too, which would hold the
/// table for the persistence timeout: a template goes when no connection that stays
/// refers to it and either a connection that referred to it was dropped here or — in a
/// table full to within 1/64, which refuses new flows — it has been idle for
/// [`DROP_IDLE_MS`] (IPVS skips templates, but its table grows instead). A client with a
/// connection keeps its server; an idle one may be scheduled afresh only when the table
/// is that full.
///
/// Returns how many entries went. For the control thread: it walks the whole family, and
/// only when the family is that full.
pub fn drop_half_open(conns: &uvs_conntrack::ConnTable, tables: &Tables, now: u32) -> usize {
    let mut n = 0;
    for v6 in [false, true] {
        let cap = conns.capacity_of(v6);
        if cap == 0 || conns.len_of(v6) < cap - cap / 8 {
            continue;
        }
        // Idle templates go only from a table that refuses new flows: below that, a client
        // coming back keeps its server, as under IPVS, whose defence never drops templates.
        let full = conns.len_of(v6) >= cap - cap / 64;
        let mut doomed = Vec::new();
        let mut half_open = Vec::new();
        let mut templates = Vec::new();
        conns.for_each_of(v6, |id, c, deadline| match EntryKind::of(c) {
            EntryKind::Flow => match droppable(tables, c, deadline, now) {
                Drop::Never => {}
                Drop::Now => doomed.push((id, *c)),
                Drop::Oldest(age) => half_open.push((age, id)),
            },
            EntryKind::Template => templates.push((id, *c, deadline)),
            EntryKind::SctpTag => {}
        });
        // Half-open entries go oldest first, until a quarter of the table is free: a
        // handshake under way survives while older ones are left to drop (every sweep
        // dropping them all would cut the handshakes of clients whose ACK is a round trip
        // away, a tenth of a second apart).
        let need = conns
            .len_of(v6)
            .saturating_sub(cap - cap / 4)
            .saturating_sub(doomed.len());
        if need < half_open.len() {
            half_open.select_nth_unstable_by(need, |a, b| b.0.cmp(&a.0));
            half_open.truncate(need);
        }
        // Only the chosen entries are read again, whole: a million half-open ones kept
        // whole cost a sixth of a second a sweep (2^20 entries), and an entry whose
        // handshake completed since the walk is left alone.
        doomed.extend(half_open.into_iter().filter_map(|(_, id)| {
            let (c, deadline) = conns.get(id)?;
            matches!(droppable(tables, &c, deadline, now), Drop::Oldest(_)).then_some((id, c))
        }));
        // Templates of the connections that go.
        let orphaned: std::collections::HashSet<FlowKey> = doomed
            .iter()
            .filter_map(|(_, c)| template_of(tables, c))
            .collect();
        // The templates that may go, unless a connection that stays refers to one: looked
        // for in a second walk, only when there are such templates (a busy table with
        // nothing to drop is walked once, without a key computed per connection).
        let mut candidates: std::collections::HashMap<FlowKey, (ConnId, Conn)> = templates
            .into_iter()
            .filter(|(_, c, deadline)| {
                let timeout = tables
                    .service(c.service)
                    .and_then(|s| s.persistence)
                    .map_or(0, |p| p.timeout_s.saturating_mul(1000));
                orphaned.contains(&c.orig)
                    || (full && idle(timeout, *deadline, now) >= DROP_IDLE_MS)
            })
            .map(|(id, c, _)| (c.orig, (id, c)))
            .collect();
        // The tag records of the SCTP associations that go (`sctp/tags.rs`: an INIT leaves
        // one): looked for in another walk, only when an association goes.
        let assocs: HashSet<(u16, [u8; 16], u16, u16)> = doomed
            .iter()
            .filter(|(_, c)| c.orig.proto == PROTO_SCTP)
            .map(|(_, c)| (c.service, c.orig.src, c.orig.sport, c.orig.dport))
            .collect();
        if !assocs.is_empty() {
            conns.for_each_of(v6, |id, c, _| {
                if EntryKind::of(c) == EntryKind::SctpTag
                    && assocs.contains(&(c.service, c.reply.src, c.reply.sport, c.reply.dport))
                {
                    doomed.push((id, *c));
                }
            });
        }
        if !candidates.is_empty() {
            let doomed_ids: std::collections::HashSet<ConnId> =
                doomed.iter().map(|(id, _)| *id).collect();
            conns.for_each_of(v6, |id, c, _| {
                if is_flow(c) && !doomed_ids.contains(&id) {
                    if let Some(key) = template_of(tables, c) {
                        candidates.remove(&key);
                    }
                }
            });
            doomed.extend(candidates.into_values());
        }
        for (id, c) in doomed {
            if conns.remove(id) {
                unbind(tables, &c);
                n += 1;
            }
        }
    }
    n
}

/// The key of the persistence template flow `c` was scheduled by, when its service has
/// persistence ([`client_template`], as the scheduling of a new flow makes it).
fn template_of(tables: &Tables, c: &Conn) -> Option<FlowKey> {
    let svc = tables.service(c.service)?;
    client_template(svc, c.orig.src, c.orig.v6).map(|(key, _)| key)
}

/// How long an entry with `timeout` and `deadline` has been idle at `now` (ticks): its
/// timeout less the time it has left (none once past its deadline).
fn idle(timeout: u32, deadline: u32, now: u32) -> u32 {
    let left = deadline.wrapping_sub(now);
    let left = if left as i32 > 0 { left } else { 0 };
    timeout.saturating_sub(left)
}

/// What the `drop_entry` defence does with a flow.
enum Drop {
    Never,
    Now,
    /// A half-open TCP entry, idle this long: the oldest go first.
    Oldest(u32),
}

/// Whether the `drop_entry` defence drops flow `c`, whose deadline is `deadline`.
fn droppable(tables: &Tables, c: &Conn, deadline: u32, now: u32) -> Drop {
    let timeouts = tables
        .service(c.service)
        .map_or_else(uvs_conntrack::Timeouts::default, |s| s.timeouts);
    let idle = idle(timeouts.for_state(c.orig.proto, c.state), deadline, now);
    match c.orig.proto {
        PROTO_TCP => {
            if matches!(
                TcpState::from_u8(c.state),
                Some(TcpState::SynRecv | TcpState::SynAck)
            ) {
                Drop::Oldest(idle)
            } else if tables.service(c.service).is_some_and(|svc| {
                // A service that adopts mid-flow segments (pipeline/tcp.rs) takes such a
                // connection back at its next segment, by the same hash.
                svc.sched.kind().takes_hash_flags() && !svc.syn_proxy && idle >= DROP_IDLE_MS
            }) {
                Drop::Now
            } else {
                Drop::Never
            }
        }
        // An association whose INIT the server has not answered (an INIT flood), as
        // IPVS's `ip_vs_random_dropentry` drops INIT1/INIT with TCP's SYN_RECV.
        PROTO_SCTP => match SctpState::from_u8(c.state) {
            SctpState::Init1 | SctpState::Init => Drop::Oldest(idle),
            _ => Drop::Never,
        },
        _ if idle >= DROP_IDLE_MS => Drop::Now,
        _ => Drop::Never,
    }
}

/// The control thread's expiry sweep ([`uvs_conntrack::ConnTable::sweep_step`]): a
/// reclaimed flow gives its place on its real server back ([`unbind`]), and a persistence
/// template outlives its timeout while flows it placed live, as IPVS keeps a template
/// while its `n_control` is not 0 (`ip_vs_conn_expire` re-arms its timer): a client stays
/// on its server for as long as any of its connections lasts, and `timeout` after the last.
///
/// The table holds no link from a flow to its template, so the sweep finds them itself: as
/// it walks the slab it notes, for every live flow of a persistent service, the template
/// that flow's client maps to, with the flow's real server (IPVS's `cp->control`). An
/// expired template is kept `timeout` more if a flow noted in the pass under way or in the
/// last whole one maps to it. Otherwise it goes once a whole pass that began after its last
/// use (its deadline less `timeout`) has ended: every flow it placed existed by then (a
/// flow placed by a template renews it), so a live one was noted; until such a pass has
/// ended it is kept a second more. Nothing of this runs on the packet path, nor without a
/// persistent service.
#[derive(Default)]
pub struct Expiry {
    families: [Placed; 2],
}

/// What one address family's walk found (templates and their flows share a family).
#[derive(Default)]
struct Placed {
    /// (template, real server) of each live flow of a persistent service seen in the pass
    /// under way, and when that pass began (None: it began before the sweep could see it).
    current: HashSet<u64>,
    began: Option<u32>,
    /// The same of the last whole pass.
    done: Option<(u32, HashSet<u64>)>,
}

impl Expiry {
    /// One round of expiry: at most `budget` slots of each family. Returns how many
    /// entries were reclaimed.
    pub fn round(
        &mut self,
        conns: &uvs_conntrack::ConnTable,
        tables: &Tables,
        now: u32,
        budget: usize,
    ) -> usize {
        let persistent = tables
            .services
            .iter()
            .flatten()
            .any(|s| s.persistence.is_some());
        if !persistent {
            self.families = Default::default();
        }
        let mut round = ExpiryRound {
            expiry: self,
            tables,
            now,
            persistent,
        };
        conns.sweep_step(now, budget, &mut round)
    }
}

struct ExpiryRound<'a> {
    expiry: &'a mut Expiry,
    tables: &'a Tables,
    now: u32,
    persistent: bool,
}

/// A flow's or a template's (template, real server) pair as the sweep notes it.
fn placed(service: u16, template: &FlowKey, real: u16) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (service, template, real).hash(&mut h);
    h.finish()
}

impl uvs_conntrack::Sweep for ExpiryRound<'_> {
    fn reads(&self) -> bool {
        self.persistent
    }

    fn live(&mut self, c: &Conn) {
        if !is_flow(c) {
            return;
        }
        let Some(svc) = self.tables.service(c.service) else {
            return;
        };
        if let Some((key, _)) = client_template(svc, c.orig.src, c.orig.v6) {
            let placed = placed(c.service, &key, c.real);
            self.expiry.families[usize::from(c.orig.v6)]
                .current
                .insert(placed);
        }
    }

    fn hold(&mut self, c: &Conn, deadline: u32) -> Option<u32> {
        if EntryKind::of(c) != EntryKind::Template {
            return None;
        }
        let timeout = self
            .tables
            .service(c.service)?
            .persistence?
            .timeout_s
            .saturating_mul(1000);
        let f = &self.expiry.families[usize::from(c.orig.v6)];
        let placed = placed(c.service, &c.orig, c.real);
        if f.current.contains(&placed) || f.done.as_ref().is_some_and(|(_, d)| d.contains(&placed))
        {
            return Some(self.now.wrapping_add(timeout));
        }
        let last_use = deadline.wrapping_sub(timeout);
        match &f.done {
            Some((began, _)) if began.wrapping_sub(last_use) as i32 >= 0 => None,
            _ => Some(self.now.wrapping_add(1000)),
        }
    }

    fn reclaimed(&mut self, c: &Conn) {
        unbind(self.tables, c);
    }

    fn pass_ended(&mut self, v6: bool) {
        if !self.persistent {
            return;
        }
        let f = &mut self.expiry.families[usize::from(v6)];
        let current = std::mem::take(&mut f.current);
        f.done = f.began.map(|began| (began, current));
        f.began = Some(self.now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uvs_conntrack::FlowKey;

    #[test]
    fn entry_kinds_are_told_apart() {
        let flow = Conn {
            orig: FlowKey::v4(PROTO_SCTP, [198, 18, 0, 2], 5000, [198, 18, 100, 1], 7),
            reply: FlowKey::v4(PROTO_SCTP, [198, 18, 1, 11], 7, [198, 18, 0, 2], 5000),
            service: 1,
            real: 0,
            method: 0,
            state: 0,
            flags: conn_flags::SYNCED,
        };
        assert_eq!(EntryKind::of(&flow), EntryKind::Flow);
        assert!(is_flow(&flow));
        let tag = crate::sctp::tags::record(&flow, crate::sctp::tags::Side::ToServer, 0xabcd);
        assert_eq!(EntryKind::of(&tag), EntryKind::SctpTag);
        assert!(!is_flow(&tag));
        let mut template = flow;
        template.orig.proto = PROTO_TEMPLATE;
        template.reply.proto = PROTO_TEMPLATE;
        template.flags = conn_flags::TEMPLATE;
        assert_eq!(EntryKind::of(&template), EntryKind::Template);
    }
}
