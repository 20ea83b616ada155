//! Connection synchronisation between uvs nodes (and with kernel IPVS), as IPVS's sync
//! daemon does it: `wire` is the protocol, `install` the mapping to connection entries,
//! and this module the two threads.
//!
//! - **Master** (sender): every [`SEND_PERIOD`] it drains the workers' sync tap (new
//!   connections, new persistence templates, state changes — queued by the packet path
//!   without a lock), reads each entry from the table and sends it; every
//!   `refresh_period`, and at once for a peer heard for the first time, it also resends
//!   every live connection and template, which keeps long-lived flows fresh on the peers
//!   and lets a restarted backup catch up. That dump goes out paced at [`DUMP_SHARE`] of
//!   `max_rate` (a peer with the same setting takes all of it), beside the changes. Messages are
//!   batched up to `maxlen` (IPVS: the interface MTU less IP and UDP headers) and sent off
//!   the packet path, from the kernel's UDP stack, to the multicast group (or each peer).
//! - **Backup** (receiver): parses each datagram as IPVS does, checks the HMAC and the
//!   sequence when a key is configured, rate-limits records (`max_rate` per second), and
//!   installs them. Every refusal is counted by reason. While it learns its peers'
//!   connections after it starts (`Shared::sync_learning`) its workers drop, rather than
//!   reset, segments they have no entry for; that ends once no record has come for
//!   [`LEARN_QUIET`], [`LEARN_FOR`] after the start at the earliest and [`LEARN_MAX`] at
//!   the latest.
//!
//! Unicast `peers` may be of either family or both: the master sends from a socket of
//! each family its peers use, the backup listens on one socket that hears both families
//! it has peers of (IPv6 with `IPV6_V6ONLY` off when it has IPv4 peers too). Without
//! peers both use the group's family.

pub use uvs_sync::{install, wire};

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use uvs_config::{SyncConfig, SyncMode};
use uvs_dataplane::pipeline::conn_flags;
use uvs_dataplane::Shared;

use install::Refused;
use wire::{MessageWriter, ReplayGuard, SyncError};

/// How often the master drains the sync tap.
pub const SEND_PERIOD: Duration = Duration::from_millis(20);
/// Authenticated messages older (or newer) than this are refused as replays.
const MAX_MESSAGE_AGE_US: u64 = 60_000_000;
/// The receive buffer a backup asks for. A master sends each tick's events at once: up to
/// one tap queue (65 536 records, ~1 640 full messages) in a burst. The kernel's default
/// (208 KiB, on the order of a hundred 1.5 KB datagrams) loses most of such a burst
/// whenever the receiving thread is off the CPU for a few milliseconds (`uvs-bench sync
/// --link`); 8 MiB holds a whole one. IPVS leaves this to its `sync_sock_size` sysctl.
pub const RECEIVE_BUFFER: usize = 8 << 20;
/// Peers remembered for `uvsadm cluster` and `uvs_sync_peers` (the least recently heard
/// gives way to a new one).
pub const MAX_PEERS: usize = 64;
/// A peer not heard for this long (or three of this node's refresh periods, if longer)
/// leaves the list: a master sends at least every refresh period while it has connections.
pub const PEER_FORGET: Duration = Duration::from_secs(300);

/// How long after it starts the receiver keeps the workers from resetting segments they
/// have no entry for (`Shared::sync_learning`) at least. Peers start sending every
/// connection they carry within a send period or two of hearing this node's hello (a
/// restarted uvsd's first message); the rest is margin for a busy host. A flow whose entry
/// does not come within the window is reset at its next segment, as before.
pub const LEARN_FOR: Duration = Duration::from_secs(2);

/// The window goes on while records keep coming: it ends once none has been installed
/// for this long (a peer's dump is paced, [`DUMP_SHARE`]: a large one takes seconds).
pub const LEARN_QUIET: Duration = Duration::from_secs(1);

/// ... and [`LEARN_MAX`] after the start at the latest (a busy peer sends its new
/// connections all the time): at the default `max_rate` a dump of a million connections.
/// A node whose table holds more than a peer configured alike can dump in that time waits
/// as long as such a dump takes ([`learn_max`]).
pub const LEARN_MAX: Duration = Duration::from_secs(15);

/// The learning window's longest: [`LEARN_MAX`], or as long as a peer configured alike
/// takes to dump as many connections as this node's table holds (`capacity`, at
/// [`DUMP_SHARE`] of `max_rate` a second) and [`LEARN_QUIET`] more, if longer. A node of
/// 4 194 304 entries at the default rate: 57 s. Longer waits cost little: only segments
/// without an entry go unanswered meanwhile (new connections are served).
pub fn learn_max(capacity: usize, max_rate: u32) -> Duration {
    let per_s = (f64::from(max_rate) * DUMP_SHARE).max(1.0);
    let dump = Duration::from_secs_f64((capacity as f64 / per_s).min(86_400.0));
    LEARN_MAX.max(dump + LEARN_QUIET)
}

/// A dump of every connection (for a peer heard for the first time, or the refresh) goes
/// out at this share of `max_rate` records per second: a peer configured alike (its
/// receiver takes `max_rate`) takes the whole dump and the changes sent beside it, where
/// an unpaced dump of more than its limit (or its socket buffer) lost the rest until the
/// next refresh.
pub const DUMP_SHARE: f64 = 0.75;

/// Whether a node with this sync configuration learns connections from peers when it
/// starts (it receives), so its workers start with `Shared::sync_learning` set.
pub fn learns_from_peers(cfg: Option<&SyncConfig>) -> bool {
    cfg.is_some_and(|c| matches!(c.mode, SyncMode::Backup | SyncMode::Both))
}

/// What the sync daemon did, for `uvsadm -L --daemon` and the metrics.
#[derive(Debug, Default)]
pub struct SyncStats {
    pub sent_messages: AtomicU64,
    pub sent_conns: AtomicU64,
    pub send_errors: AtomicU64,
    pub received_messages: AtomicU64,
    pub received_conns: AtomicU64,
    pub installed: AtomicU64,
    /// Datagrams refused whole, by [`SyncError`] (index in [`SYNC_ERRORS`]).
    pub bad_messages: [AtomicU64; SYNC_ERRORS.len()],
    /// Records refused, by [`Refused`] (index in [`Refused::ALL`]).
    pub refused: [AtomicU64; Refused::ALL.len()],
    /// Records dropped by the receive rate limit.
    pub rate_limited: AtomicU64,
    /// Last message accepted, as Unix milliseconds (0: none yet).
    pub last_received_ms: AtomicU64,
    /// Peers heard from, by address (a restarted sender has a new source port).
    pub peers: Mutex<Peers>,
    /// A new or restarted peer was heard: the sender sends every connection at once.
    pub refresh_wanted: AtomicBool,
}

/// The peers a backup heard from: each address once, with when it was last heard.
#[derive(Debug, Default)]
pub struct Peers {
    /// Address, the ports it sent from (the latest last), when last heard.
    heard: Vec<(IpAddr, Vec<u16>, Instant)>,
}

/// Source ports remembered per peer: a kernel IPVS master sends from one socket per sync
/// thread (`sync_ports`), a uvs node from one per family.
const PORTS_PER_PEER: usize = 8;

impl Peers {
    /// Notes a message from `from` at `at` (an IPv4 sender heard on a dual-stack socket, as
    /// `::ffff:a.b.c.d`, is its IPv4 address). True when the sender is new here: an address
    /// not heard before, or a known one sending from a port it never used (it restarted: a
    /// new socket), so it may lack every connection.
    pub fn heard(&mut self, from: SocketAddr, at: Instant) -> bool {
        let ip = from.ip().to_canonical();
        let port = from.port();
        if let Some(p) = self.heard.iter_mut().find(|p| p.0 == ip) {
            p.2 = at;
            if p.1.contains(&port) {
                return false;
            }
            if p.1.len() >= PORTS_PER_PEER {
                p.1.remove(0);
            }
            p.1.push(port);
            return true;
        }
        if self.heard.len() >= MAX_PEERS {
            if let Some(oldest) = (0..self.heard.len()).min_by_key(|&i| self.heard[i].2) {
                self.heard.swap_remove(oldest);
            }
        }
        self.heard.push((ip, vec![port], at));
        true
    }

    /// The peers heard within `forget` of `now`, in the order first heard.
    pub fn list(&self, now: Instant, forget: Duration) -> Vec<String> {
        self.heard
            .iter()
            .filter(|p| now.saturating_duration_since(p.2) <= forget)
            .map(|p| p.0.to_string())
            .collect()
    }
}

/// How long a peer stays listed after it was last heard, for a node refreshing every
/// `refresh_period` seconds.
fn peer_forget(refresh_period: u32) -> Duration {
    PEER_FORGET.max(Duration::from_secs(3 * u64::from(refresh_period)))
}

pub const SYNC_ERRORS: [SyncError; 8] = [
    SyncError::Truncated,
    SyncError::Version,
    SyncError::OtherSyncId,
    SyncError::BadRecord,
    SyncError::UnknownOption,
    SyncError::Family,
    SyncError::Auth,
    SyncError::Replay,
];

pub fn error_name(e: SyncError) -> &'static str {
    match e {
        SyncError::Truncated => "truncated",
        SyncError::Version => "version",
        SyncError::OtherSyncId => "other_syncid",
        SyncError::BadRecord => "bad_record",
        SyncError::UnknownOption => "unknown_option",
        SyncError::Family => "family",
        SyncError::Auth => "auth",
        SyncError::Replay => "replay",
    }
}

/// How often the log names the same peer and reason again.
const COMPLAIN_EVERY: Duration = Duration::from_secs(60);

/// The refusals of whole messages the log has named: a peer whose messages are all
/// refused (another sync id, another key) is told at once, with what differs, then at
/// most once a minute per peer and reason.
#[derive(Default)]
struct Complaints {
    said: Vec<(IpAddr, SyncError, Instant)>,
    /// At most [`MAX_PEERS`] lines a minute over all senders: refusals from ever new
    /// addresses (spoofed, or more foreign senders than `said` holds) are counted in
    /// `unsaid` instead, and the next line logged says how many.
    window: Option<Instant>,
    lines: usize,
    unsaid: u64,
}

impl Complaints {
    fn complain(
        &mut self,
        from: IpAddr,
        e: SyncError,
        msg: &[u8],
        cfg: &SyncConfig,
        now: Instant,
    ) -> Option<String> {
        match self
            .said
            .iter_mut()
            .find(|(ip, x, _)| *ip == from && *x == e)
        {
            Some((_, _, at)) if now.saturating_duration_since(*at) < COMPLAIN_EVERY => return None,
            Some((_, _, at)) => *at = now,
            None => {
                if self.said.len() >= MAX_PEERS {
                    self.said.remove(0);
                }
                self.said.push((from, e, now));
            }
        }
        if self
            .window
            .is_none_or(|w| now.saturating_duration_since(w) >= COMPLAIN_EVERY)
        {
            self.window = Some(now);
            self.lines = 0;
        }
        if self.lines >= MAX_PEERS {
            self.unsaid += 1;
            return None;
        }
        self.lines += 1;
        let why = match e {
            SyncError::OtherSyncId => format!(
                "sync id {}, this node's is {} (sync.syncid must be the same on every node)",
                msg.get(1).copied().unwrap_or(0),
                cfg.syncid
            ),
            SyncError::Auth if cfg.auth_key.is_some() => {
                "unsigned or signed with another key (sync.auth_key must be the same on every \
                 node)"
                    .to_string()
            }
            SyncError::Version => format!("{e} (a peer of another kind on port {})", cfg.port),
            _ => e.to_string(),
        };
        let unsaid = std::mem::take(&mut self.unsaid);
        let unsaid = if unsaid > 0 {
            format!(" ({unsaid} refused message(s) from other senders were not logged)")
        } else {
            String::new()
        };
        Some(format!(
            "connection sync: refusing messages from {from}: {why}{unsaid}"
        ))
    }
}

fn count_error(stats: &SyncStats, e: SyncError) {
    if let Some(i) = SYNC_ERRORS.iter().position(|x| *x == e) {
        stats.bad_messages[i].fetch_add(1, Relaxed);
    }
}

/// A running sync daemon (one or two threads). Stops on drop.
pub struct SyncDaemon {
    pub config: SyncConfig,
    pub stats: Arc<SyncStats>,
    /// The backup direction's thread, and the master's.
    receiver: Option<Direction>,
    sender: Option<Direction>,
    shared: Arc<Shared>,
}

/// One direction's thread and what stops it.
struct Direction {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Direction {
    fn stop(self) {
        self.stop.store(true, Relaxed);
        let _ = self.thread.join();
    }
}

fn receives(mode: SyncMode) -> bool {
    matches!(mode, SyncMode::Backup | SyncMode::Both)
}

fn sends(mode: SyncMode) -> bool {
    matches!(mode, SyncMode::Master | SyncMode::Both)
}

impl SyncDaemon {
    /// Starts the threads `cfg.mode` asks for, in the calling thread's network namespace.
    pub fn start(shared: Arc<Shared>, cfg: SyncConfig) -> Result<SyncDaemon> {
        let mut d = SyncDaemon {
            config: cfg.clone(),
            stats: Arc::new(SyncStats::default()),
            receiver: None,
            sender: None,
            shared,
        };
        if receives(cfg.mode) {
            d.receiver = Some(d.start_receiver()?);
        }
        if sends(cfg.mode) {
            d.sender = Some(d.start_sender()?);
        }
        d.log_started("");
        Ok(d)
    }

    fn start_receiver(&self) -> Result<Direction> {
        let cfg = self.config.clone();
        let sock = receiver_socket(&cfg)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stats, halt) = (self.shared.clone(), self.stats.clone(), stop.clone());
        let key = cfg.auth_key.clone().map(String::into_bytes);
        let thread = std::thread::Builder::new()
            .name("uvs-sync-backup".into())
            .spawn(move || receive_loop(&sock, &shared, &stats, &halt, &cfg, key))?;
        Ok(Direction { stop, thread })
    }

    fn start_sender(&self) -> Result<Direction> {
        let cfg = self.config.clone();
        let sock = Senders::open(&cfg)?;
        let maxlen = usize::from(maxlen(&cfg));
        self.shared.sync.set_enabled(true);
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stats, halt) = (self.shared.clone(), self.stats.clone(), stop.clone());
        let key = cfg.auth_key.clone().map(String::into_bytes);
        let thread = std::thread::Builder::new()
            .name("uvs-sync-master".into())
            .spawn(move || send_loop(&sock, &shared, &stats, &halt, &cfg, key, maxlen));
        match thread {
            Ok(thread) => Ok(Direction { stop, thread }),
            Err(e) => {
                self.shared.sync.set_enabled(false);
                Err(e.into())
            }
        }
    }

    fn log_started(&self, what: &str) {
        let cfg = &self.config;
        log::info!(
            "connection sync: {}{what} on {} (sync id {}, {}{})",
            cfg.mode,
            cfg.interface,
            cfg.syncid,
            if cfg.peers.is_empty() {
                format!("group {}:{}", cfg.group, cfg.port)
            } else {
                format!("{} unicast peer(s), port {}", cfg.peers.len(), cfg.port)
            },
            if cfg.auth_key.is_some() {
                ", authenticated"
            } else {
                ""
            }
        );
    }

    /// Follows a configuration that differs from the running one in its mode only (a
    /// direction started or stopped: `uvsadm --start-daemon backup` beside a master):
    /// starts or stops that direction's thread and leaves the other running, with its
    /// socket, its queue and its counters, as IPVS runs its master and backup daemons
    /// apart. False, nothing changed, for any other change (the caller restarts the
    /// daemon); an error when the direction added cannot start (the other keeps running).
    pub fn change_mode(&mut self, cfg: &SyncConfig) -> Result<bool> {
        let same_but_mode = SyncConfig {
            mode: self.config.mode,
            ..cfg.clone()
        } == self.config;
        if !same_but_mode {
            return Ok(false);
        }
        let was = self.config.mode;
        self.config.mode = cfg.mode;
        if !receives(cfg.mode) {
            if let Some(r) = self.receiver.take() {
                r.stop();
            }
        }
        if !sends(cfg.mode) {
            if let Some(t) = self.sender.take() {
                t.stop();
                self.shared.sync.set_enabled(false);
            }
        }
        let added = (|| -> Result<()> {
            if receives(cfg.mode) && self.receiver.is_none() {
                self.receiver = Some(self.start_receiver()?);
            }
            if sends(cfg.mode) && self.sender.is_none() {
                self.sender = Some(self.start_sender()?);
            }
            Ok(())
        })();
        if let Err(e) = added {
            // What runs is what the daemon now is.
            self.config.mode = match (self.receiver.is_some(), self.sender.is_some()) {
                (true, true) => SyncMode::Both,
                (true, false) => SyncMode::Backup,
                _ => SyncMode::Master,
            };
            return Err(e.context(format!("connection sync: {was} to {}", cfg.mode)));
        }
        self.log_started(&format!(" (was {was})"));
        Ok(true)
    }
}

impl SyncDaemon {
    /// The counters, for `uvsadm` and the metrics.
    pub fn snapshot(&self) -> crate::snapshot::SyncSnapshot {
        let s = &*self.stats;
        let last = s.last_received_ms.load(Relaxed);
        crate::snapshot::SyncSnapshot {
            mode: self.config.mode.name().to_string(),
            sent_messages: s.sent_messages.load(Relaxed),
            sent_conns: s.sent_conns.load(Relaxed),
            send_errors: s.send_errors.load(Relaxed),
            received_messages: s.received_messages.load(Relaxed),
            received_conns: s.received_conns.load(Relaxed),
            installed: s.installed.load(Relaxed),
            bad_messages: SYNC_ERRORS
                .iter()
                .zip(&s.bad_messages)
                .map(|(e, n)| (error_name(*e).to_string(), n.load(Relaxed)))
                .collect(),
            refused: Refused::ALL
                .iter()
                .zip(&s.refused)
                .map(|(r, n)| (r.name().to_string(), n.load(Relaxed)))
                .collect(),
            rate_limited: s.rate_limited.load(Relaxed),
            tap_dropped: self.shared.sync.dropped(),
            last_received_age_ms: (last > 0).then(|| (unix_us() / 1000).saturating_sub(last)),
            peers: s
                .peers
                .lock()
                .expect("peers lock")
                .list(Instant::now(), peer_forget(self.config.refresh_period)),
        }
    }
}

impl Drop for SyncDaemon {
    fn drop(&mut self) {
        let running: Vec<Direction> = [self.receiver.take(), self.sender.take()]
            .into_iter()
            .flatten()
            .collect();
        for d in &running {
            d.stop.store(true, Relaxed);
        }
        self.shared.sync.set_enabled(false);
        for d in running {
            let _ = d.thread.join();
        }
    }
}

/// The largest sync message sent: `maxlen`, or as IPVS, the interface's MTU less the IP and
/// UDP headers (at least what 576 bytes leave). `-L --daemon` lists it, as ipvsadm does.
pub fn maxlen(cfg: &SyncConfig) -> u16 {
    cfg.maxlen.unwrap_or_else(|| {
        let m = mtu(&cfg.interface).saturating_sub(28).max(576 - 28);
        u16::try_from(m).unwrap_or(u16::MAX)
    })
}

fn mtu(ifname: &str) -> usize {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/mtu"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1500)
}

fn bind_to_device(sock: &UdpSocket, ifname: &str) -> Result<()> {
    nix::sys::socket::setsockopt(
        sock,
        nix::sys::socket::sockopt::BindToDevice,
        &std::ffi::OsString::from(ifname),
    )
    .with_context(|| format!("binding the sync socket to {ifname}"))
}

/// The kernel's IPv4 address on `ifname` (multicast membership is per interface address).
fn ipv4_of(ifname: &str) -> Option<Ipv4Addr> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|i| {
        (i.interface_name == ifname)
            .then(|| i.address.and_then(|a| a.as_sockaddr_in().map(|s| s.ip())))
            .flatten()
    })
}

/// Where a master sends: the group, or each peer.
fn targets(cfg: &SyncConfig) -> Vec<SocketAddr> {
    if cfg.peers.is_empty() {
        vec![SocketAddr::new(cfg.group, cfg.port)]
    } else {
        cfg.peers
            .iter()
            .map(|p| SocketAddr::new(*p, cfg.port))
            .collect()
    }
}

/// A master's sockets: one for each address family it sends to.
struct Senders {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
}

impl Senders {
    fn open(cfg: &SyncConfig) -> Result<Senders> {
        let t = targets(cfg);
        let open = |v6: bool| -> Result<Option<UdpSocket>> {
            if t.iter().any(|a| a.is_ipv6() == v6) {
                sender_socket(cfg, v6).map(Some)
            } else {
                Ok(None)
            }
        };
        Ok(Senders {
            v4: open(false)?,
            v6: open(true)?,
        })
    }

    fn send_to(&self, msg: &[u8], to: &SocketAddr) -> std::io::Result<usize> {
        let sock = if to.is_ipv6() { &self.v6 } else { &self.v4 };
        match sock {
            Some(s) => s.send_to(msg, to),
            None => Err(std::io::ErrorKind::Unsupported.into()),
        }
    }
}

fn sender_socket(cfg: &SyncConfig, v6: bool) -> Result<UdpSocket> {
    use nix::sys::socket::{setsockopt, sockopt};
    let any: SocketAddr = if v6 {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(any).with_context(|| format!("sync sender socket on {any}"))?;
    bind_to_device(&sock, &cfg.interface)?;
    if v6 {
        sock.set_multicast_loop_v6(false)?;
        let hops = i32::from(cfg.ttl);
        setsockopt(&sock, sockopt::Ipv6MulticastHops, &hops).ok();
        setsockopt(&sock, sockopt::Ipv6Ttl, &hops).ok();
    } else {
        sock.set_multicast_ttl_v4(u32::from(cfg.ttl))?;
        sock.set_multicast_loop_v4(false)?;
        sock.set_ttl(u32::from(cfg.ttl)).ok();
    }
    Ok(sock)
}

/// A UDP socket on `port` of every address of the families asked for: IPv4 alone, or
/// IPv6 (then also IPv4, as `::ffff:a.b.c.d`, unless `v4` is false).
fn udp_any(port: u16, v4: bool, v6: bool) -> Result<UdpSocket> {
    use nix::sys::socket::{self as so, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn6};
    use std::os::fd::AsRawFd;
    if !v6 {
        let bind = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port);
        return UdpSocket::bind(bind).with_context(|| format!("sync receiver on {bind}"));
    }
    let bind = SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0);
    let fd = so::socket(
        AddressFamily::Inet6,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("sync receiver socket (IPv6)")?;
    so::setsockopt(&fd, sockopt::Ipv6V6Only, &!v4).context("sync receiver: IPV6_V6ONLY")?;
    so::bind(fd.as_raw_fd(), &SockaddrIn6::from(bind)).with_context(|| {
        format!(
            "sync receiver on {bind}{}",
            if v4 { " (and IPv4)" } else { "" }
        )
    })?;
    Ok(UdpSocket::from(fd))
}

fn receiver_socket(cfg: &SyncConfig) -> Result<UdpSocket> {
    // The families the backup hears: its peers', or the group's (what a master sends to).
    let t = targets(cfg);
    let (v4, v6) = (
        t.iter().any(SocketAddr::is_ipv4),
        t.iter().any(SocketAddr::is_ipv6),
    );
    let sock = udp_any(cfg.port, v4, v6)?;
    bind_to_device(&sock, &cfg.interface)?;
    if cfg.peers.is_empty() {
        match cfg.group {
            IpAddr::V4(g) => {
                let local = ipv4_of(&cfg.interface).ok_or_else(|| {
                    anyhow!(
                        "{} has no IPv4 address of the kernel's to join {g} on",
                        cfg.interface
                    )
                })?;
                sock.join_multicast_v4(&g, &local)
                    .with_context(|| format!("joining {g} on {}", cfg.interface))?;
            }
            IpAddr::V6(g) => {
                let idx = nix::net::if_::if_nametoindex(cfg.interface.as_str())
                    .with_context(|| format!("interface {}", cfg.interface))?;
                sock.join_multicast_v6(&g, idx)
                    .with_context(|| format!("joining {g} on {}", cfg.interface))?;
            }
        }
    }
    grow_receive_buffer(&sock, RECEIVE_BUFFER);
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(sock)
}

/// Asks for a receive buffer of `bytes`: past `net.core.rmem_max` when uvsd may
/// (CAP_NET_ADMIN, SO_RCVBUFFORCE), else up to it. A smaller buffer still works, it only
/// loses more of a burst, so a refusal is logged, not fatal.
pub fn grow_receive_buffer(sock: &UdpSocket, bytes: usize) {
    use nix::sys::socket::{setsockopt, sockopt};
    if setsockopt(sock, sockopt::RcvBufForce, &bytes).is_ok() {
        return;
    }
    if let Err(e) = setsockopt(sock, sockopt::RcvBuf, &bytes) {
        log::warn!("connection sync: receive buffer stays the kernel's default: {e}");
    }
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn send_loop(
    sock: &Senders,
    shared: &Shared,
    stats: &SyncStats,
    stop: &AtomicBool,
    cfg: &SyncConfig,
    key: Option<Vec<u8>>,
    maxlen: usize,
) {
    let targets = targets(cfg);
    let mut writer = MessageWriter::new(cfg.syncid, maxlen, key);
    let mut ids = Vec::with_capacity(4096);
    let mut last_seq = 0u64;
    let mut next_seq = || {
        last_seq = unix_us().max(last_seq + 1);
        last_seq
    };
    let mut last_refresh = Instant::now();
    let mut out: VecDeque<Vec<u8>> = VecDeque::new();
    // The dump in progress: the entries still to send, last first.
    let mut dump: Vec<uvs_conntrack::ConnId> = Vec::new();
    let per_tick = dump_per_tick(cfg.max_rate);
    // First a message of no connection: the peers hear this (re)started node at once, and
    // send it theirs without waiting for their next refresh.
    out.push_back(writer.hello(next_seq()));
    while !stop.load(Relaxed) {
        std::thread::sleep(SEND_PERIOD);
        let tables = shared.tables.load();
        let now = shared.clock.now_ticks();
        ids.clear();
        shared.sync.drain(&mut ids, 1 << 16);
        for id in &ids {
            if let Some((c, deadline)) = shared.conns.get(*id) {
                if let Some(r) = install::record(&tables, &c, deadline.wrapping_sub(now)) {
                    out.extend(writer.push(&r, next_seq()));
                }
            }
        }
        // A new or restarted peer (heard by this node's receiver) gets everything, starting
        // now (a dump in progress starts over); the refresh starts one `refresh_period`
        // after the last one ended.
        let wanted = stats.refresh_wanted.swap(false, Relaxed);
        if wanted
            || dump.is_empty()
                && cfg.refresh_period > 0
                && last_refresh.elapsed() >= Duration::from_secs(u64::from(cfg.refresh_period))
        {
            dump.clear();
            shared.conns.for_each(|id, _, _| dump.push(id));
            dump.reverse();
        }
        if !dump.is_empty() {
            last_refresh = Instant::now();
        }
        for id in dump.drain(dump.len().saturating_sub(per_tick)..).rev() {
            let Some((c, deadline)) = shared.conns.get(id) else {
                continue;
            };
            let left = deadline.wrapping_sub(now);
            // Entries a peer sent us are the peer's to refresh: sending them back (sync
            // mode both) would overwrite its newer state with our older copy. Once a
            // packet of such a flow passes here, the tap reports it as ours.
            if left < (1 << 31) && c.flags & conn_flags::SYNCED == 0 {
                if let Some(r) = install::record(&tables, &c, left) {
                    out.extend(writer.push(&r, next_seq()));
                }
            }
        }
        out.extend(writer.finish(next_seq()));
        // Counted as sent: what the kernel took, per target (a record sent to two peers
        // counts twice, as its message does).
        while let Some(m) = out.pop_front() {
            for t in &targets {
                match sock.send_to(&m, t) {
                    Ok(_) => {
                        stats.sent_messages.fetch_add(1, Relaxed);
                        stats
                            .sent_conns
                            .fetch_add(wire::conns_in(&m) as u64, Relaxed);
                    }
                    Err(e) => {
                        if stats.send_errors.fetch_add(1, Relaxed).is_multiple_of(1000) {
                            log::warn!("connection sync: sending to {t}: {e}");
                        }
                    }
                }
            }
        }
    }
}

/// Entries of a dump sent per [`SEND_PERIOD`]: [`DUMP_SHARE`] of `max_rate` a second.
fn dump_per_tick(max_rate: u32) -> usize {
    let per_s = f64::from(max_rate) * DUMP_SHARE;
    ((per_s * SEND_PERIOD.as_secs_f64()) as usize).max(1)
}

/// Records per second the receiver accepts: a token bucket refilled continuously.
struct RateLimit {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    fn take(&mut self, n: usize) -> usize {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.rate);
        self.at = now;
        let ok = (self.tokens.max(0.0) as usize).min(n);
        self.tokens -= ok as f64;
        ok
    }
}

/// A receive that only ended early: the read timeout that lets the loop see `stop`, or a
/// signal (a socket with a timeout returns EINTR even under SA_RESTART, and after
/// SIGSTOP/SIGCONT with no handler at all). Asked again at once, without a warning.
fn retry_at_once(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}

fn receive_loop(
    sock: &UdpSocket,
    shared: &Shared,
    stats: &SyncStats,
    stop: &AtomicBool,
    cfg: &SyncConfig,
    key: Option<Vec<u8>>,
) {
    let mut buf = vec![0u8; 65536];
    let mut replay = ReplayGuard::default();
    let mut complaints = Complaints::default();
    let mut limit = RateLimit {
        rate: f64::from(cfg.max_rate),
        tokens: f64::from(cfg.max_rate),
        at: Instant::now(),
    };
    let started = Instant::now();
    let mut learn_until = started + LEARN_FOR;
    let longest = learn_max(
        shared
            .conns
            .capacity_of(false)
            .max(shared.conns.capacity_of(true)),
        cfg.max_rate,
    );
    while !stop.load(Relaxed) {
        // The read timeout brings the loop here at least every 200 ms.
        if shared.sync_learning.load(Relaxed) && Instant::now() >= learn_until {
            shared.sync_learning.store(false, Relaxed);
        }
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if retry_at_once(&e) => continue,
            Err(e) => {
                log::warn!("connection sync: receiving: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        // An IPv4 peer heard on a dual-stack socket: its IPv4 address.
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        let msg = match wire::parse(&buf[..n], cfg.syncid, key.as_deref()) {
            Ok(m) => m,
            Err(e) => {
                count_error(stats, e);
                if let Some(said) =
                    complaints.complain(from.ip(), e, &buf[..n], cfg, Instant::now())
                {
                    log::warn!("{said}");
                }
                continue;
            }
        };
        if let Some(seq) = msg.seq {
            if !replay.accept(from, seq, unix_us(), MAX_MESSAGE_AGE_US) {
                count_error(stats, SyncError::Replay);
                continue;
            }
        }
        stats.received_messages.fetch_add(1, Relaxed);
        stats
            .received_conns
            .fetch_add(msg.conns.len() as u64, Relaxed);
        let unix_ms = unix_us() / 1000;
        stats.last_received_ms.store(unix_ms, Relaxed);
        if stats
            .peers
            .lock()
            .expect("peers lock")
            .heard(from, Instant::now())
        {
            stats.refresh_wanted.store(true, Relaxed);
        }
        let allowed = limit.take(msg.conns.len());
        stats
            .rate_limited
            .fetch_add((msg.conns.len() - allowed) as u64, Relaxed);
        let tables = shared.tables.load();
        let now = shared.clock.now_ticks();
        let mut learnt = false;
        for c in &msg.conns[..allowed] {
            match install::install(&tables, &shared.conns, c, now) {
                Ok(()) => {
                    stats.installed.fetch_add(1, Relaxed);
                    learnt = true;
                }
                Err(r) => {
                    let i = Refused::ALL.iter().position(|x| *x == r).unwrap_or(0);
                    stats.refused[i].fetch_add(1, Relaxed);
                }
            }
        }
        if learnt {
            // Still learning: the window lasts while records come (a dump in progress).
            let quiet = (Instant::now() + LEARN_QUIET).min(started + longest);
            learn_until = learn_until.max(quiet);
        }
    }
}

#[cfg(test)]
mod tests {
    /// The learning window's longest grows with the table a dump may fill: 15 s up to
    /// about a million entries at the default rate, then as long as a peer configured
    /// alike takes to send that many (and 1 s more); a higher `max_rate` shortens it.
    #[test]
    fn the_longest_learning_window_follows_the_table() {
        use super::*;
        assert_eq!(learn_max(1 << 16, 100_000), LEARN_MAX);
        assert_eq!(learn_max(1 << 20, 100_000), LEARN_MAX);
        let big = learn_max(1 << 22, 100_000);
        assert!(
            big > Duration::from_secs(56) && big < Duration::from_secs(58),
            "{big:?}"
        );
        assert!(learn_max(1 << 22, 400_000) < big / 3);
    }

    /// The kernel reports twice what was set (its bookkeeping overhead, socket(7)).
    #[test]
    fn the_receive_buffer_grows() {
        use nix::sys::socket::{getsockopt, sockopt};
        use std::os::unix::fs::MetadataExt;
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = getsockopt(&sock, sockopt::RcvBuf).unwrap();
        super::grow_receive_buffer(&sock, super::RECEIVE_BUFFER);
        let after = getsockopt(&sock, sockopt::RcvBuf).unwrap();
        let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // As root (CI) uvsd forces it; otherwise it grows up to rmem_max.
        let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
        let want = if root {
            super::RECEIVE_BUFFER
        } else {
            rmem_max.min(super::RECEIVE_BUFFER)
        };
        assert_eq!(after, 2 * want, "before: {before}");
    }

    use super::*;
    use std::net::{Ipv6Addr, UdpSocket};
    use uvs_conntrack::{tcp::TcpState, Conn, FlowKey};
    use uvs_dataplane::{lab, Method, TablesBuilder};

    fn lab_shared() -> Arc<Shared> {
        let spec = lab::spec(Method::Nat, uvs_sched::SchedulerKind::Rr, 1);
        let tables = TablesBuilder::build(&spec, None).unwrap();
        Arc::new(Shared::new(tables, 4096, 1))
    }

    /// A sync configuration on the loopback interface (the tests' only network).
    fn on_lo(mode: SyncMode, port: u16, peers: &[&str]) -> SyncConfig {
        SyncConfig {
            mode,
            interface: "lo".into(),
            syncid: 0,
            group: IpAddr::from(wire::DEFAULT_GROUP),
            port,
            ttl: 1,
            maxlen: Some(1400),
            peers: peers.iter().map(|p| p.parse().unwrap()).collect(),
            auth_key: None,
            refresh_period: 1,
            max_rate: 100_000,
        }
    }

    /// A UDP port free on both 127.0.0.1 and ::1 (at the time of asking).
    fn free_port() -> u16 {
        loop {
            let v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
            let port = v4.local_addr().unwrap().port();
            if UdpSocket::bind((Ipv6Addr::LOCALHOST, port)).is_ok() {
                return port;
            }
        }
    }

    /// `n` established NAT connections of the lab's web4 service, as the workers store them.
    fn connections(shared: &Shared, n: u16) {
        let client = lab::ipk(lab::CLIENT4).addr;
        established(shared, (0..n).map(|i| (client, 40000 + i)));
    }

    /// `n` established connections to the lab's first real server, from as many clients.
    fn many_connections(shared: &Shared, n: u32) {
        established(
            shared,
            (0..n).map(|i| {
                let client = [198, 19, (i >> 8) as u8, i as u8];
                let addr = uvs_dataplane::IpKey::from_ip(IpAddr::from(client)).addr;
                (addr, 1024 + (i >> 16) as u16)
            }),
        );
    }

    /// Established NAT connections of the lab's IPv4 TCP service to its first real server,
    /// one from each (client address, port).
    fn established(shared: &Shared, clients: impl Iterator<Item = ([u8; 16], u16)>) {
        let tables = shared.tables.load();
        let vip = lab::ipk(lab::VIP4);
        let svc = tables.service_for(vip, 6, 80).unwrap();
        let real = svc.real(0).unwrap();
        let now = shared.clock.now_ticks();
        for (client, sport) in clients {
            let orig = FlowKey {
                proto: 6,
                v6: false,
                src: client,
                dst: vip.addr,
                sport,
                dport: 80,
            };
            let reply = FlowKey {
                src: real.addr.addr,
                dst: client,
                sport: 80,
                dport: sport,
                ..orig
            };
            let c = Conn {
                orig,
                reply,
                service: svc.id,
                real: 0,
                method: Method::Nat as u8,
                state: TcpState::Established as u8,
                flags: 0,
            };
            shared
                .conns
                .insert(&c, now, now.wrapping_add(600_000))
                .unwrap();
        }
    }

    /// Every datagram waiting on `sock` (reads until none arrives for 300 ms).
    fn drain(sock: &UdpSocket) -> Vec<Vec<u8>> {
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = vec![0u8; 65536];
        let mut got = Vec::new();
        while let Ok(n) = sock.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
        got
    }

    fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
        let t0 = Instant::now();
        while !ok() {
            assert!(t0.elapsed() < Duration::from_secs(5), "{what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Unicast peers of both families (an IPv6 peer alone, or beside an IPv4 one): the
    /// master reaches each from a socket of its family, and counts as sent only the
    /// messages and records the kernel took (a peer it cannot reach is a send error).
    #[test]
    fn a_master_reaches_ipv6_and_mixed_peers_and_counts_what_it_sent() {
        for peers in [
            &["::1"][..],
            &["127.0.0.1", "::1"],
            &["::1", "2001:2::200", "127.0.0.1"],
        ] {
            let shared = lab_shared();
            connections(&shared, 3);
            let port = free_port();
            let v4 = UdpSocket::bind(("127.0.0.1", port)).unwrap();
            let v6 = UdpSocket::bind((Ipv6Addr::LOCALHOST, port)).unwrap();
            let d =
                SyncDaemon::start(shared.clone(), on_lo(SyncMode::Master, port, peers)).unwrap();
            // The first refresh (after refresh_period, 1 s) sends the three connections.
            wait_for(&format!("{peers:?}: a refresh sent"), || {
                d.stats.sent_conns.load(Relaxed) >= 3
            });
            std::thread::sleep(Duration::from_millis(100));
            let stats = d.stats.clone();
            drop(d);
            let (got4, got6) = (drain(&v4), drain(&v6));
            let want = |p: &str| peers.contains(&p);
            assert_eq!(!got4.is_empty(), want("127.0.0.1"), "{peers:?}: IPv4 peer");
            assert_eq!(!got6.is_empty(), want("::1"), "{peers:?}: IPv6 peer");
            let received: Vec<_> = got4.iter().chain(&got6).collect();
            let records: u64 = received
                .iter()
                .map(|m| wire::parse(m, 0, None).unwrap().conns.len() as u64)
                .sum();
            assert!(records >= 3, "{peers:?}: {records} records");
            assert_eq!(
                stats.sent_messages.load(Relaxed),
                received.len() as u64,
                "{peers:?}: messages sent = messages received"
            );
            assert_eq!(
                stats.sent_conns.load(Relaxed),
                records,
                "{peers:?}: records sent = records received"
            );
            let unreachable = u64::from(want("2001:2::200"));
            assert_eq!(
                stats.send_errors.load(Relaxed) > 0,
                unreachable > 0,
                "{peers:?}: send errors"
            );
        }
    }

    /// One sync message of one NAT record, as a master sends it.
    fn message() -> Vec<u8> {
        let rec = wire::SyncConn {
            protocol: 6,
            flags: wire::flags::MASQ,
            state: TcpState::Established as u16,
            caddr: lab::CLIENT4.parse().unwrap(),
            cport: 40000,
            vaddr: lab::VIP4.parse().unwrap(),
            vport: 80,
            daddr: lab::real(1, false).to_ip(),
            dport: 80,
            fwmark: 0,
            timeout: 60,
            fullnat: None,
        };
        let mut w = MessageWriter::new(0, 1400, None);
        assert!(w.push(&rec, 0).is_none());
        w.finish(0).unwrap()
    }

    /// A backup with unicast peers of both families hears both; a peer is listed once by
    /// its address, whatever port it sends from (a restarted sender has a new one).
    #[test]
    fn a_backup_hears_both_families_and_lists_each_peer_once() {
        for (peers, senders) in [
            (&["::1"][..], &["::1"][..]),
            (&["127.0.0.1", "::1"], &["127.0.0.1", "::1"]),
        ] {
            let port = free_port();
            let d = SyncDaemon::start(lab_shared(), on_lo(SyncMode::Backup, port, peers)).unwrap();
            let msg = message();
            // Each peer sends twice, from a new socket (a new port) each time.
            for _ in 0..2 {
                for s in senders {
                    let ip: IpAddr = s.parse().unwrap();
                    let local: SocketAddr = if ip.is_ipv6() {
                        "[::1]:0".parse().unwrap()
                    } else {
                        "127.0.0.1:0".parse().unwrap()
                    };
                    let sock = UdpSocket::bind(local).unwrap();
                    sock.send_to(&msg, (ip, port)).unwrap();
                }
            }
            let want = 2 * senders.len() as u64;
            wait_for(&format!("{peers:?}: every message received"), || {
                d.stats.received_messages.load(Relaxed) >= want
            });
            let mut heard = d.snapshot().peers;
            heard.sort();
            let mut expect: Vec<String> = senders.iter().map(|s| s.to_string()).collect();
            expect.sort();
            assert_eq!(heard, expect, "{peers:?}");
            assert_eq!(d.stats.installed.load(Relaxed), want, "{peers:?}");
        }
    }

    /// A peer whose messages this node refuses (another sync id, another key) is named in
    /// the log with what differs: at once, then at most once a minute per reason.
    #[test]
    fn refused_peers_are_logged_with_what_differs() {
        let cfg = SyncConfig {
            syncid: 9,
            ..on_lo(SyncMode::Backup, 8848, &[])
        };
        let mut w = MessageWriter::new(7, 1400, None);
        w.push(&wire::parse(&message(), 0, None).unwrap().conns[0], 0);
        let other = w.finish(0).unwrap();
        let from: IpAddr = "198.18.1.5".parse().unwrap();
        let mut c = Complaints::default();
        let t0 = Instant::now();
        let said = c.complain(from, SyncError::OtherSyncId, &other, &cfg, t0);
        assert_eq!(
            said.as_deref(),
            Some(
                "connection sync: refusing messages from 198.18.1.5: sync id 7, this node's \
                 is 9 (sync.syncid must be the same on every node)"
            )
        );
        let later = t0 + Duration::from_secs(30);
        assert_eq!(
            c.complain(from, SyncError::OtherSyncId, &other, &cfg, later),
            None
        );
        let other_peer: IpAddr = "198.18.1.7".parse().unwrap();
        assert!(c
            .complain(other_peer, SyncError::OtherSyncId, &other, &cfg, later)
            .is_some());
        let keyed = SyncConfig {
            auth_key: Some("secret".into()),
            ..cfg.clone()
        };
        let auth = c
            .complain(from, SyncError::Auth, &other, &keyed, later)
            .unwrap();
        assert!(auth.contains("sync.auth_key"), "{auth}");
        let again = t0 + Duration::from_secs(61);
        assert!(c
            .complain(from, SyncError::OtherSyncId, &other, &cfg, again)
            .is_some());
    }

    /// Garbage from ever new source addresses (a flood with spoofed sources, or more
    /// foreign senders on the group than the log remembers) is logged a bounded number
    /// of times a minute, not once per message; the next line says how many went unsaid.
    #[test]
    fn refusals_from_many_sources_are_logged_a_bounded_number_of_times() {
        let cfg = on_lo(SyncMode::Backup, 8848, &[]);
        let mut c = Complaints::default();
        let t0 = Instant::now();
        let mut said = 0;
        for i in 0..10_000u32 {
            let from = IpAddr::from([198, 18, (i >> 8) as u8 + 2, i as u8]);
            let at = t0 + Duration::from_millis(u64::from(i));
            if c.complain(from, SyncError::Version, b"x", &cfg, at)
                .is_some()
            {
                said += 1;
            }
        }
        assert!(said <= 2 * MAX_PEERS, "{said} lines in 10 s");
        let next = c
            .complain(
                "198.18.1.5".parse().unwrap(),
                SyncError::Version,
                b"x",
                &cfg,
                t0 + Duration::from_secs(71),
            )
            .expect("a new minute, a new line");
        assert!(next.contains("not logged"), "{next}");
    }

    /// A peer that (re)starts says so with an empty message from its new socket; a node
    /// that hears a sender new to it (a new address, or a known one from a new port: a
    /// restarted uvsd) sends all its connections at once rather than at its next refresh,
    /// so a restarted master knows them before VRRP hands it the group back. Another
    /// message from the same sender changes nothing.
    #[test]
    fn a_new_or_restarted_peer_gets_every_connection_at_once() {
        let shared = lab_shared();
        connections(&shared, 3);
        let port = free_port();
        let cfg = SyncConfig {
            refresh_period: 600,
            ..on_lo(SyncMode::Both, port, &["127.0.0.1"])
        };
        let d = SyncDaemon::start(shared.clone(), cfg).unwrap();
        // Its own start (it hears its own hello on the loopback) settles first.
        std::thread::sleep(Duration::from_millis(500));
        let sent = || d.stats.sent_conns.load(Relaxed);
        let before = sent();
        let hello = MessageWriter::new(0, 1400, None).hello(0);
        assert_eq!(wire::parse(&hello, 0, None).unwrap().conns.len(), 0);
        // Not 127.0.0.1: the daemon hears its own messages from there.
        let peer = UdpSocket::bind("127.0.0.2:0").unwrap();
        peer.send_to(&hello, ("127.0.0.1", port)).unwrap();
        wait_for("every connection sent to the new peer", || {
            sent() >= before + 3
        });
        std::thread::sleep(Duration::from_millis(200));
        let after = sent();
        peer.send_to(&message(), ("127.0.0.1", port)).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(sent(), after, "a peer heard before: no refresh");
        // The same address from a new port: restarted.
        let restarted = UdpSocket::bind("127.0.0.2:0").unwrap();
        restarted.send_to(&hello, ("127.0.0.1", port)).unwrap();
        wait_for("every connection sent to the restarted peer", || {
            sent() >= after + 3
        });
    }

    #[test]
    fn peers_not_heard_for_a_while_drop_out() {
        let mut p = Peers::default();
        let t0 = Instant::now();
        let a: SocketAddr = "198.18.1.5:40000".parse().unwrap();
        let b: SocketAddr = "[::ffff:198.18.1.6]:40000".parse().unwrap();
        assert!(p.heard(a, t0), "new");
        assert!(p.heard(b, t0), "new");
        assert!(!p.heard(a, t0 + Duration::from_secs(200)), "known");
        let forget = Duration::from_secs(300);
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(p.list(at(250), forget), vec!["198.18.1.5", "198.18.1.6"]);
        assert_eq!(p.list(at(400), forget), vec!["198.18.1.5"]);
        assert!(p.list(at(600), forget).is_empty());
        // Bounded: the least recently heard goes first.
        for i in 0..MAX_PEERS as u16 + 5 {
            p.heard(
                SocketAddr::new(IpAddr::from([198, 18, (i >> 8) as u8, i as u8]), 1),
                at(700 + u64::from(i)),
            );
        }
        assert_eq!(p.list(at(1000), forget).len(), MAX_PEERS);
    }

    /// A node whose sync receives starts with its workers dropping, not resetting, segments
    /// they have no entry for (`Shared::sync_learning`, set by the daemon before they
    /// start): its peers may be sending those flows' entries. The receiver ends that
    /// [`LEARN_FOR`] after it starts, not before; a node that only sends never learns.
    #[test]
    fn the_receiver_ends_the_learning_window() {
        for (mode, learns) in [
            (SyncMode::Both, true),
            (SyncMode::Backup, true),
            (SyncMode::Master, false),
        ] {
            assert_eq!(
                learns_from_peers(Some(&on_lo(mode, 1, &[]))),
                learns,
                "{mode}"
            );
        }
        assert!(!learns_from_peers(None));
        let shared = lab_shared();
        shared.sync_learning.store(true, Relaxed);
        let t0 = Instant::now();
        let cfg = on_lo(SyncMode::Backup, free_port(), &[]);
        let _d = SyncDaemon::start(shared.clone(), cfg).unwrap();
        while shared.sync_learning.load(Relaxed) {
            assert!(
                t0.elapsed() < LEARN_FOR + Duration::from_secs(5),
                "still learning after {:?}",
                t0.elapsed()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(t0.elapsed() >= LEARN_FOR, "learning ended early");
    }

    #[test]
    fn a_dump_goes_out_at_three_quarters_of_max_rate() {
        assert_eq!(dump_per_tick(100_000), 1500);
        assert_eq!(dump_per_tick(1), 1);
    }

    /// A backup (re)starting beside a master that carries 200 000 connections learns every
    /// one of them before its learning window ends, so none is reset when traffic comes
    /// back to it. The master's dump went out at once and the backup took what its
    /// `max_rate` (100 000 records a second) allowed, then closed its window 2 s after it
    /// started: about half the connections were not there, and their next segments got a
    /// RST. Now the dump is paced below the peer's limit and the window lasts while
    /// records come.
    #[test]
    fn a_large_dump_is_learnt_whole_before_the_window_ends() {
        let n = 200_000u32;
        let d = dump_to_a_learning_backup(n, 1 << 19, 100_000, Duration::from_secs(20));
        assert_eq!(d.learnt, n as usize, "learnt in {:?}", d.took);
        assert!(
            d.learning,
            "the window closed before the last came, {:?} in",
            d.took
        );
        // No more records: the window closes once they have stopped for a second.
        drop(d.master);
        let stopped = Instant::now();
        while d.backup.sync_learning.load(Relaxed) {
            assert!(
                stopped.elapsed() < LEARN_QUIET + Duration::from_secs(2),
                "still learning {:?} after the master stopped",
                stopped.elapsed()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What [`dump_to_a_learning_backup`] saw.
    struct Dump {
        backup: Arc<Shared>,
        master: SyncDaemon,
        _receiver: SyncDaemon,
        learnt: usize,
        took: Duration,
        /// The backup's window was still open when it had the last record.
        learning: bool,
    }

    /// A master carrying `n` connections and a backup that has just started (learning),
    /// both on tables of `capacity` entries and with `max_rate`, over the loopback: waits
    /// until the backup has them all, or `within`. The master's refresh (every second) is
    /// the dump.
    fn dump_to_a_learning_backup(n: u32, capacity: usize, max_rate: u32, within: Duration) -> Dump {
        let shared_at = || {
            let spec = lab::spec(Method::Nat, uvs_sched::SchedulerKind::Rr, 1);
            let tables = TablesBuilder::build(&spec, None).unwrap();
            Arc::new(Shared::new(tables, capacity, 1))
        };
        let cfg = |mode, port, peers: &[&str]| SyncConfig {
            max_rate,
            ..on_lo(mode, port, peers)
        };
        let master = shared_at();
        many_connections(&master, n);
        let backup = shared_at();
        backup.sync_learning.store(true, Relaxed);
        let port = free_port();
        let t0 = Instant::now();
        let receiver = SyncDaemon::start(backup.clone(), cfg(SyncMode::Backup, port, &[])).unwrap();
        let sender =
            SyncDaemon::start(master, cfg(SyncMode::Master, port, &["127.0.0.1"])).unwrap();
        let mut learning = true;
        while backup.conns.len() < n as usize && t0.elapsed() < within {
            learning = backup.sync_learning.load(Relaxed);
            std::thread::sleep(Duration::from_millis(10));
        }
        Dump {
            learnt: backup.conns.len(),
            took: t0.elapsed(),
            learning,
            backup,
            master: sender,
            _receiver: receiver,
        }
    }

    /// A node whose table holds more than a peer configured alike dumps in 15 s keeps its
    /// window open until the whole dump is in: here 12 000 connections at `max_rate` 1 000
    /// (750 a second: 16 s) on tables of 16 384 entries (window at most 22.8 s). With the
    /// fixed 15 s most, the window closed with about 11 250 learnt.
    #[test]
    fn a_dump_longer_than_15_s_is_learnt_whole_on_a_table_that_holds_it() {
        let n = 12_000u32;
        let d = dump_to_a_learning_backup(n, 16_384, 1_000, Duration::from_secs(30));
        assert_eq!(d.learnt, n as usize, "learnt in {:?}", d.took);
        assert!(d.took > LEARN_MAX, "the dump was paced: {:?}", d.took);
        assert!(
            d.learning,
            "the window closed before the last came, {:?} in",
            d.took
        );
    }

    /// Starting the backup direction beside a running master (`uvsadm --start-daemon
    /// backup`: master to both) starts only the receiver: the master's thread goes on, with
    /// its socket and its counters (a restarted sender says hello from a new port, and
    /// every peer then sends it all its connections). Stopping that direction again stops
    /// only the receiver. Any other change is the caller's to restart.
    #[test]
    fn a_direction_added_or_removed_leaves_the_other_running() {
        let shared = lab_shared();
        connections(&shared, 3);
        let port = free_port();
        let master = on_lo(SyncMode::Master, port, &["127.0.0.1"]);
        let mut d = SyncDaemon::start(shared.clone(), master.clone()).unwrap();
        let sender = |d: &SyncDaemon| d.sender.as_ref().map(|t| t.thread.thread().id());
        let first = sender(&d);
        wait_for("the master's first messages", || {
            d.stats.sent_messages.load(Relaxed) > 0
        });
        let sent = d.stats.sent_messages.load(Relaxed);

        let both = SyncConfig {
            mode: SyncMode::Both,
            ..master.clone()
        };
        assert!(d.change_mode(&both).unwrap());
        assert_eq!(d.config, both);
        assert_eq!(sender(&d), first, "the same master thread");
        assert!(
            d.stats.sent_messages.load(Relaxed) >= sent,
            "its counters kept"
        );
        let peer = UdpSocket::bind("127.0.0.2:0").unwrap();
        let stats = d.stats.clone();
        let received = || stats.received_messages.load(Relaxed);
        let before = received();
        peer.send_to(&message(), ("127.0.0.1", port)).unwrap();
        wait_for("the new backup direction receiving", || received() > before);

        assert!(d.change_mode(&master).unwrap());
        assert!(d.receiver.is_none());
        assert_eq!(sender(&d), first);
        let before = received();
        peer.send_to(&message(), ("127.0.0.1", port)).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(received(), before, "no backup direction any more");

        // Another port: not a change of mode.
        let moved = SyncConfig {
            port: free_port(),
            ..both
        };
        assert!(!d.change_mode(&moved).unwrap());
        assert_eq!(d.config, master, "nothing changed");
    }

    /// uvsd stopped and continued (SIGSTOP/SIGCONT: a socket with a read timeout then
    /// returns EINTR, with or without a signal handler) is not an error: the backup's
    /// receiver asks again at once. It used to log a warning and pause 100 ms each time,
    /// leaving messages in the socket buffer. The test stops and continues its own process.
    #[test]
    fn an_interrupted_receive_is_retried_at_once() {
        let port = free_port();
        let d = SyncDaemon::start(lab_shared(), on_lo(SyncMode::Backup, port, &[])).unwrap();
        let msg = message();
        let pid = std::process::id();
        let rounds = 10u64;
        let t0 = Instant::now();
        for i in 1..=rounds {
            // Another process continues this one.
            let stop_cont = format!("kill -STOP {pid}; sleep 0.02; kill -CONT {pid}");
            let ok = std::process::Command::new("sh")
                .args(["-c", &stop_cont])
                .status()
                .unwrap();
            assert!(ok.success());
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.send_to(&msg, ("127.0.0.1", port)).unwrap();
            wait_for("the message after SIGCONT", || {
                d.stats.received_messages.load(Relaxed) >= i
            });
        }
        // 10 × 20 ms stopped; a 100 ms pause per interruption would take 1.2 s at least.
        let took = t0.elapsed();
        assert!(
            took < Duration::from_millis(900),
            "{rounds} rounds took {took:?}"
        );
    }
}
