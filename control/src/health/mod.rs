//! Active health checks of real servers, as keepalived's checkers do them: `TCP_CHECK`,
//! `HTTP_GET`, `SSL_GET` and `MISC_CHECK`, with keepalived's rise/fall hysteresis — and HAProxy's
//! agent check, where an agent on the real server (`uvs-agent`, or any HAProxy agent)
//! answers with its weight and state.
//!
//! - [`HealthState`] is the sans-IO hysteresis: a server that is up goes down after `fall`
//!   consecutive failed checks, a server that is down comes up after `rise` consecutive
//!   successes. Like keepalived without `alpha`, every server **starts up**: a restarted
//!   balancer keeps sending traffic to servers that were fine, instead of blackholing a whole
//!   service for `rise * interval` while the first checks run.
//! - [`check_tcp`], [`check_http`], [`check_command`] and [`check_agent`] each run one
//!   blocking check bounded by the check's timeout. They are ordinary kernel sockets and processes on the balancer host;
//!   the XDP program passes replies addressed to the host's own addresses to the kernel.
//! - [`HealthMonitor`] runs a pool of checker threads, one per target up to
//!   [`MAX_CHECKER_THREADS`]: each takes the check due first from one queue, runs it, and
//!   puts the target back due again `interval` later, calling `on_change` when the
//!   hysteresis flips. A dead server whose checks wait out their timeout holds one thread,
//!   not the targets a thread was given (with a fixed share of the targets per thread, a
//!   dead server's timeouts delayed every check of its thread's other targets). When every
//!   thread is busy and checks fall [`LATE`] behind (more servers timing out at once than
//!   there are threads: a rack or a switch gone), the monitor adds threads, up to
//!   [`MAX_CHECKER_THREADS_BUSY`] in all, which leave again once they have had nothing to
//!   check for a while. Stopping
//!   interrupts a check in progress: connects poll in short slices, reads use short timeouts and
//!   a command is killed, so [`HealthMonitor::stop`] returns within about 100 ms.
//! - Agent checks (HAProxy's agent-check protocol, parsed by [`uvs_agent::proto`]): the
//!   agent's state is sticky (a `drain` lasts until a `ready`). A reply that says `down`,
//!   `stopped`, `fail` or `maint` takes the server out at once, and one that says `up` brings
//!   it back at once, as HAProxy does; other replies count as successful checks. Unlike
//!   HAProxy, where the agent only supplements a separate health check, the agent *is* the
//!   check here: an agent that cannot be reached, times out or sends a malformed reply fails
//!   the check (the reply is refused whole and changes nothing). The weight percentage and
//!   `maxconn` are handed to `on_agent` as soon as they change.

mod checks;

pub use checks::*;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use uvs_agent::proto::{AgentState, Health, Reply};
use uvs_config::{Config, HealthCheck, HealthCheckKind, ServiceKey};
use uvs_sched::LoadFilter;

/// keepalived's rise/fall hysteresis for one real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthState {
    /// Consecutive successes that bring a down server up (at least 1).
    pub rise: u32,
    /// Consecutive failures that bring an up server down (at least 1).
    pub fall: u32,
    pub up: bool,
    /// Consecutive successes so far (reset by a failure).
    pub successes: u32,
    /// Consecutive failures so far (reset by a success).
    pub failures: u32,
}

impl HealthState {
    /// A server that starts up (keepalived's default without `alpha`).
    pub fn new(rise: u32, fall: u32) -> HealthState {
        HealthState::starting(rise, fall, true)
    }

    /// A server that starts in the given state, e.g. the state it had before a reload.
    /// `rise` and `fall` of 0 are taken as 1: one check always counts.
    pub fn starting(rise: u32, fall: u32, up: bool) -> HealthState {
        HealthState {
            rise: rise.max(1),
            fall: fall.max(1),
            up,
            successes: 0,
            failures: 0,
        }
    }

    /// Sets the state at once, whatever the counts (an agent saying `down` or `up`);
    /// returns the new state when it flips.
    pub fn force(&mut self, up: bool) -> Option<bool> {
        self.successes = 0;
        self.failures = 0;
        if self.up == up {
            return None;
        }
        self.up = up;
        Some(up)
    }

    /// Records one check result; returns the new state when it flips.
    pub fn record(&mut self, ok: bool) -> Option<bool> {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if !self.up && self.successes >= self.rise.max(1) {
                self.up = true;
                return Some(true);
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.up && self.failures >= self.fall.max(1) {
                self.up = false;
                return Some(false);
            }
        }
        None
    }
}

/// One real server of one service, and how to check it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthTarget {
    pub service: ServiceKey,
    /// The real server as the configuration names it (address, port).
    pub real: SocketAddr,
    pub check: HealthCheck,
    /// Empty: the verdict is the real server's (every scheduler of the service sees it).
    /// Otherwise the `layer: 7` pools this check decides for: its verdict holds for them
    /// only (see [`targets`]).
    pub pools: Vec<String>,
}

impl HealthTarget {
    /// Where the check connects: the real server's address, on the check's own port if it
    /// names one, else the real server's port.
    pub fn check_addr(&self) -> SocketAddr {
        SocketAddr::new(self.real.ip(), self.check.port.unwrap_or(self.real.port()))
    }
}

/// Every (service, real server) pair of `config` whose service has a health check.
///
/// In a `layer: 7` service each pool decides with its own check when it has one, else with
/// the service's, so a real server in two pools may have two checks. When every pool the
/// server belongs to uses the same check (the usual case, and any server outside pools
/// with the service's), that check is the server's: one target with no `pools`, whose
/// verdict is the server's health as in a layer 4 service. Otherwise there is one target
/// per distinct check, naming the pools it decides for; a failure takes the server out of
/// those pools only, and the other pools keep using it.
pub fn targets(config: &Config) -> Vec<HealthTarget> {
    let mut out = Vec::new();
    for s in &config.services {
        for r in &s.real_servers {
            let target = |check: &HealthCheck, pools: Vec<String>| HealthTarget {
                service: s.key(),
                real: r.key(),
                check: check.clone(),
                pools,
            };
            let in_pools: Vec<&uvs_config::Pool> = s
                .layer7
                .iter()
                .flat_map(|l| &l.pools)
                .filter(|p| p.members.contains(&r.address))
                .collect();
            // The distinct checks of the server's pools, each with the pools that use it.
            let mut groups: Vec<(Option<&HealthCheck>, Vec<String>)> = Vec::new();
            for p in &in_pools {
                let check = p.check(s);
                match groups.iter_mut().find(|(c, _)| *c == check) {
                    Some((_, names)) => names.push(p.name.clone()),
                    None => groups.push((check, vec![p.name.clone()])),
                }
            }
            match groups.as_slice() {
                [] => out.extend(s.health_check.iter().map(|c| target(c, Vec::new()))),
                [(check, _)] => out.extend(check.iter().map(|c| target(c, Vec::new()))),
                _ => out.extend(
                    groups
                        .into_iter()
                        .filter_map(|(c, pools)| c.map(|c| target(c, pools))),
                ),
            }
        }
    }
    out
}

/// How long a blocking step may sleep before looking at the stop flag again.
pub(crate) const STOP_SLICE: Duration = Duration::from_millis(50);
/// Why a check was abandoned instead of failing: the monitor is stopping.
pub(crate) const STOPPED: &str = "stopped";

/// At most this many checker threads; with more targets, the threads share the checks,
/// each taking the one due first (keepalived checks every server from one event loop).
/// One thread per target runs into the process's limits (memory maps, threads) at some
/// tens of thousands.
pub const MAX_CHECKER_THREADS: usize = 512;

/// Checker threads in all while checks are late and every thread is busy (see
/// [`HealthMonitor`]): the monitor adds threads beyond [`MAX_CHECKER_THREADS`] up to this
/// many, so that a few thousand servers timing out at once do not hold up the checks of
/// the others; each added one leaves after [`EXTRA_IDLE`] with nothing to take.
pub const MAX_CHECKER_THREADS_BUSY: usize = 4096;

/// How late the first waiting check may be, with no thread free to take it, before the
/// monitor adds threads.
pub const LATE: Duration = Duration::from_millis(200);

/// An added checker thread leaves after this long with no check to take.
pub const EXTRA_IDLE: Duration = Duration::from_secs(10);

/// Threads added per look (every [`STOP_SLICE`]) at most, one per late check.
const EXTRA_PER_LOOK: usize = 64;

/// How many checker threads a monitor runs.
#[derive(Clone, Copy, Debug)]
struct Limits {
    /// Started with the monitor (one per target up to this many).
    base: usize,
    /// In all, added ones included, while checks are late.
    most: usize,
    /// An added thread leaves after this long with nothing to take.
    extra_idle: Duration,
    /// The `refuse_from`th thread and later fail to start (for tests; `usize::MAX`).
    refuse_from: usize,
}

impl Limits {
    const IN_USE: Limits = Limits {
        base: MAX_CHECKER_THREADS,
        most: MAX_CHECKER_THREADS_BUSY,
        extra_idle: EXTRA_IDLE,
        refuse_from: usize::MAX,
    };
}

/// Where the checking of one target starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Up or down, with no check counted yet; the first check runs at once.
    Fresh(bool),
    /// Where a previous monitor left the same check (see [`HealthMonitor::progress`]): its
    /// state and the checks counted towards `rise`/`fall` so far, and its next check due
    /// then. A new configuration (a reload, any `uvsadm` edit) restarts the monitor;
    /// resuming keeps edits made every few seconds from resetting the counts each time,
    /// which would keep a dead server up (or a recovered one down) for as long as they go
    /// on, and from running every check at once at each edit.
    Resume(HealthState, Instant),
}

impl Start {
    /// Whether the target starts up.
    pub fn up(&self) -> bool {
        match self {
            Start::Fresh(up) => *up,
            Start::Resume(s, _) => s.up,
        }
    }
}

/// Checker threads, one per target up to [`MAX_CHECKER_THREADS`], taking the checks due from
/// one queue. Dropping the monitor stops them (as [`HealthMonitor::stop`]).
pub struct HealthMonitor {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    on_agent: OnAgent,
}

struct Shared {
    targets: Vec<HealthTarget>,
    up: Vec<AtomicBool>,
    /// Each checker's hysteresis and the time its next check is due, as of its last check.
    progress: Vec<Mutex<(HealthState, Instant)>>,
    /// Smoothed duration of successful checks in microseconds (0 = none yet): the
    /// response time the `fastest` scheduler compares.
    rtt_us: Vec<AtomicU32>,
    /// Load reports of command checks, smoothed and aged (`None` until the first).
    load: Vec<Mutex<Option<LoadFilter>>>,
    /// What each agent check's agent has said so far.
    agent: Vec<Mutex<AgentState>>,
    /// The monitor's clock origin, for load reports' ages.
    started: Instant,
    schedule: Schedule,
    /// Checker threads running (added ones included).
    running: std::sync::atomic::AtomicUsize,
    limits: Limits,
}

/// The checks waiting for their time, and the stop flag that waiting threads wake up for
/// at once.
struct Schedule {
    /// Shared with the http checks' connections (see [`crate::webcheck`]).
    flag: Arc<AtomicBool>,
    lock: Mutex<Due>,
    /// Where the pool's own threads wait.
    cv: Condvar,
    /// Where the threads added while checks were late wait.
    cv_added: Condvar,
}

/// The targets not being checked right now, by the time their next check is due.
#[derive(Default)]
struct Due {
    /// (due, order put in, target): of checks due at the same time the one put back first
    /// goes first, so targets overdue together take turns.
    heap: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    order: u64,
    /// Whether a thread is waiting for the first check's time (the others wait untimed
    /// until it takes that check and wakes one of them to wait for the next: with hundreds
    /// of threads, a timed wait each would wake them all at every check's time).
    timer: bool,
    /// Threads waiting for a check: of the pool's own, and added ones (none of either:
    /// every thread is busy checking).
    waiting: (usize, usize),
}

impl Due {
    fn put(&mut self, at: Instant, target: usize) {
        self.heap.push(Reverse((at, self.order, target)));
        self.order += 1;
    }

    fn first(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// One more (`by` 1) or one fewer (-1) thread waiting, added or not.
    fn wait(&mut self, added: bool, by: isize) {
        let n = if added {
            &mut self.waiting.1
        } else {
            &mut self.waiting.0
        };
        *n = n.saturating_add_signed(by);
    }

    /// Checks waiting since `before` or earlier, while no thread waits to take one: how
    /// many threads to add.
    fn late(&self, before: Instant) -> usize {
        if self.waiting != (0, 0) || self.first().is_none_or(|at| at > before) {
            return 0;
        }
        self.heap
            .iter()
            .filter(|Reverse((at, _, _))| *at <= before)
            .count()
    }
}

impl Schedule {
    fn raise(&self) {
        // Taken so a thread between its flag check and its wait cannot miss the notification.
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.flag.store(true, Ordering::Relaxed);
        self.cv.notify_all();
        self.cv_added.notify_all();
    }

    /// Waits for the check due first and takes it (its target's index); `None` once the
    /// monitor is stopping, or for a thread the monitor added (`idle` is `Some`) once it
    /// has waited that long without a check to take.
    ///
    /// Added threads wait on their own condition variable and are woken to take a check
    /// only when no thread of the monitor's own pool waits: while the pool has threads to
    /// spare the added ones get nothing, and leave.
    fn next_due(&self, idle: Option<Duration>) -> Option<usize> {
        let added = idle.is_some();
        let mut due = lock(&self.lock);
        due.wait(added, 1);
        let since = Instant::now();
        let leave = idle.map(|d| since + d);
        let taken = loop {
            if self.flag.load(Ordering::Relaxed) {
                break None;
            }
            let now = Instant::now();
            if leave.is_some_and(|at| at <= now) {
                break None;
            }
            let cv = if added { &self.cv_added } else { &self.cv };
            match due.first() {
                Some(at) if at <= now => {
                    let Some(Reverse((_, _, i))) = due.heap.pop() else {
                        continue;
                    };
                    due.wait(added, -1);
                    // Another thread waits for the next one's time (or takes it if due).
                    self.wake_one(&due);
                    return Some(i);
                }
                Some(at) if !due.timer => {
                    due.timer = true;
                    let until = leave.map_or(at, |l| l.min(at));
                    due = match cv.wait_timeout(due, until - now) {
                        Ok((g, _)) => g,
                        Err(p) => p.into_inner().0,
                    };
                    due.timer = false;
                }
                // Every target is being checked, or another thread waits for the first
                // one's time: wait to be woken (an added thread, no longer than its time
                // to leave).
                _ => {
                    due = match leave {
                        None => match cv.wait(due) {
                            Ok(g) => g,
                            Err(p) => p.into_inner(),
                        },
                        Some(l) => match cv.wait_timeout(due, l - now) {
                            Ok((g, _)) => g,
                            Err(p) => p.into_inner().0,
                        },
                    };
                }
            }
        };
        due.wait(added, -1);
        // A thread leaving may have been the one waiting for the first check's time.
        self.wake_one(&due);
        taken
    }

    /// Wakes one waiting thread, of the pool's own if one waits.
    fn wake_one(&self, due: &Due) {
        if due.waiting.0 > 0 {
            self.cv.notify_one();
        } else {
            self.cv_added.notify_one();
        }
    }

    /// Puts `target` back, its next check due `at`.
    fn put_back(&self, at: Instant, target: usize) {
        let mut due = lock(&self.lock);
        let first = due.first().is_none_or(|f| at < f);
        due.put(at, target);
        // A new first check: the thread waiting for the old first one's time (if any)
        // must wait for this one's instead, and only a wake-up of all reaches it.
        if first {
            self.cv.notify_all();
            self.cv_added.notify_all();
        }
    }
}

impl HealthMonitor {
    /// Starts checking every target, each assumed up until `fall` checks fail.
    pub fn start(targets: Vec<HealthTarget>, on_change: OnChange) -> HealthMonitor {
        HealthMonitor::start_with(targets.into_iter().map(|t| (t, true)).collect(), on_change)
    }

    /// Starts checking every target from a known state (to carry states across a reload).
    pub fn start_with(targets: Vec<(HealthTarget, bool)>, on_change: OnChange) -> HealthMonitor {
        HealthMonitor::start_full(
            targets
                .into_iter()
                .map(|(t, up)| (t, up, AgentState::default()))
                .collect(),
            on_change,
            Arc::new(|_: &HealthTarget, _: &AgentState| {}),
        )
    }

    /// Starts checking every target from a known health and agent state (both carried
    /// across a reload, so a drained server stays drained). `on_agent` is called at once
    /// for every agent check with the state it starts from, then on every change.
    pub fn start_full(
        targets: Vec<(HealthTarget, bool, AgentState)>,
        on_change: OnChange,
        on_agent: OnAgent,
    ) -> HealthMonitor {
        HealthMonitor::start_resumed(
            targets
                .into_iter()
                .map(|(t, up, a)| (t, Start::Fresh(up), a))
                .collect(),
            on_change,
            on_agent,
        )
    }

    /// [`HealthMonitor::start_full`], each target starting as `Start` says: afresh, or
    /// where a previous monitor left the same check.
    pub fn start_resumed(
        targets: Vec<(HealthTarget, Start, AgentState)>,
        on_change: OnChange,
        on_agent: OnAgent,
    ) -> HealthMonitor {
        HealthMonitor::start_limited(targets, on_change, on_agent, Limits::IN_USE)
    }

    /// [`HealthMonitor::start_resumed`] with the threads `limits` allows.
    fn start_limited(
        targets: Vec<(HealthTarget, Start, AgentState)>,
        on_change: OnChange,
        on_agent: OnAgent,
        limits: Limits,
    ) -> HealthMonitor {
        let up = targets
            .iter()
            .map(|(_, s, _)| AtomicBool::new(s.up()))
            .collect();
        let now = Instant::now();
        let mut due = Due::default();
        let progress = targets
            .iter()
            .enumerate()
            .map(|(i, (t, s, _))| {
                let (state, next) = match *s {
                    Start::Fresh(up) => {
                        (HealthState::starting(t.check.rise, t.check.fall, up), now)
                    }
                    Start::Resume(state, next) => (state, next),
                };
                due.put(next, i);
                Mutex::new((state, next))
            })
            .collect();
        let rtt_us = targets.iter().map(|_| AtomicU32::new(0)).collect();
        let load = targets.iter().map(|_| Mutex::new(None)).collect();
        let agent = targets
            .iter()
            .map(|(_, _, a)| Mutex::new(a.clone()))
            .collect();
        let shared = Arc::new(Shared {
            targets: targets.into_iter().map(|(t, _, _)| t).collect(),
            up,
            progress,
            rtt_us,
            load,
            agent,
            started: Instant::now(),
            schedule: Schedule {
                flag: Arc::new(AtomicBool::new(false)),
                lock: Mutex::new(due),
                cv: Condvar::new(),
                cv_added: Condvar::new(),
            },
            running: Default::default(),
            limits,
        });
        for (i, t) in shared.targets.iter().enumerate() {
            if matches!(t.check.kind, HealthCheckKind::Agent { .. }) {
                on_agent(t, &lock(&shared.agent[i]));
            }
        }
        // At most `limits.base` threads, all taking their checks from the one queue: a
        // thread that cannot be started (the process is out of threads or memory maps)
        // leaves the checks to the threads that did start.
        let want = shared.targets.len().min(limits.base.max(1));
        let mut threads = Vec::with_capacity(want + 1);
        for k in 0..want {
            let started = if k >= limits.refuse_from {
                Err(std::io::Error::other("refused by the test"))
            } else {
                spawn_checker(&shared, &on_change, &on_agent, k, false)
            };
            match started {
                Ok(h) => threads.push(h),
                Err(e) => {
                    if !threads.is_empty() {
                        log::error!(
                            "cannot start more than {} of {want} health checker threads: {e}; \
                             they check the {} targets between them",
                            threads.len(),
                            shared.targets.len()
                        );
                    } else {
                        for (i, t) in shared.targets.iter().enumerate() {
                            log::error!(
                                "cannot start the health checker of {} {}: {e}; it stays {}",
                                t.service,
                                t.real,
                                if shared.up[i].load(Ordering::Relaxed) {
                                    "up"
                                } else {
                                    "down"
                                }
                            );
                        }
                    }
                    break;
                }
            }
        }
        // More targets than threads: threads are added while checks are late.
        if shared.targets.len() > threads.len() && limits.most > limits.base {
            let (sh, cb, ag) = (
                Arc::clone(&shared),
                Arc::clone(&on_change),
                Arc::clone(&on_agent),
            );
            let first = threads.len();
            match std::thread::Builder::new()
                .name("uvs-hc-more".into())
                .spawn(move || add_when_late(&sh, &cb, &ag, first))
            {
                Ok(h) => threads.push(h),
                Err(e) => log::error!(
                    "cannot start the thread that adds health checker threads when checks are \
                     late: {e}; the {} threads check the {} targets between them",
                    threads.len(),
                    shared.targets.len()
                ),
            }
        }
        HealthMonitor {
            shared,
            threads,
            on_agent,
        }
    }

    /// The targets it checks, in order.
    pub fn targets(&self) -> &[HealthTarget] {
        &self.shared.targets
    }

    /// Every target with its current state (true = up).
    pub fn current(&self) -> Vec<(HealthTarget, bool)> {
        self.shared
            .targets
            .iter()
            .zip(&self.shared.up)
            .map(|(t, u)| (t.clone(), u.load(Ordering::Relaxed)))
            .collect()
    }

    /// Every target with its hysteresis (state and counts) and when its next check is
    /// due, to resume it in the next monitor ([`Start::Resume`]).
    pub fn progress(&self) -> Vec<(HealthTarget, HealthState, Instant)> {
        self.shared
            .targets
            .iter()
            .zip(&self.shared.progress)
            .map(|(t, p)| {
                let (state, next) = *lock(p);
                (t.clone(), state, next)
            })
            .collect()
    }

    /// Calls `on_agent` again for every agent check with what its agent has said (for a
    /// new snapshot of the same servers), in the same order of locks as a checker does.
    pub fn reapply_agents(&self) {
        for (i, t) in self.shared.targets.iter().enumerate() {
            if matches!(t.check.kind, HealthCheckKind::Agent { .. }) {
                let st = lock(&self.shared.agent[i]);
                (self.on_agent)(t, &st);
            }
        }
    }

    /// What each agent check's agent has said so far (to carry it across a reload).
    pub fn agent_states(&self) -> Vec<(HealthTarget, AgentState)> {
        self.shared
            .targets
            .iter()
            .zip(&self.shared.agent)
            .filter(|(t, _)| matches!(t.check.kind, HealthCheckKind::Agent { .. }))
            .map(|(t, a)| (t.clone(), lock(a).clone()))
            .collect()
    }

    /// Feedback for the schedulers that use it: each target's smoothed check duration in
    /// microseconds (`fastest`) and the load its command check reports (`load`): smoothed
    /// and aged by [`LoadFilter`], 0 once reports stop; `None` before the first report.
    pub fn feedback(&self) -> Vec<(HealthTarget, u32, Option<u32>)> {
        let now = self.shared.started.elapsed();
        self.shared
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let load = lock(&self.shared.load[i]).map(|f| f.current(now));
                (
                    t.clone(),
                    self.shared.rtt_us[i].load(Ordering::Relaxed),
                    load,
                )
            })
            .collect()
    }

    /// Stops every checker (interrupting checks in progress) and waits for them.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.shared.schedule.raise();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for HealthMonitor {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A mutex that a panicked holder did not leave unusable (the data is plain state).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a check's outcome does to the hysteresis.
enum Verdict {
    /// An agent said the server is out (down, stopped, fail, maint): down at once.
    ForceDown(String),
    /// An agent said `up` (and not maint): up at once.
    ForceUp,
    /// An ordinary success or failure, counted towards rise/fall.
    Count(Result<(), String>),
}

/// Applies an agent's reply to its sticky state; returns the verdict for the health.
fn apply_agent(
    shared: &Shared,
    i: usize,
    reply: &Reply,
    on_agent: &(dyn Fn(&HealthTarget, &AgentState) + Send + Sync),
) -> Verdict {
    let target = &shared.targets[i];
    if !reply.unknown.is_empty() {
        log::debug!(
            "agent of {} {} sent words uvs does not know, ignored: {}",
            target.service,
            target.real,
            reply.unknown.join(" ")
        );
    }
    let state = {
        let mut st = lock(&shared.agent[i]);
        let before = st.clone();
        st.apply(reply);
        if *st != before {
            log::info!(
                "agent of {} {}: {}",
                target.service,
                target.real,
                st.summary()
            );
            on_agent(target, &st);
        }
        st.clone()
    };
    if state.is_out() {
        let why = if state.health.is_up() {
            "maint".to_string()
        } else {
            state.health.word().to_string()
        };
        let why = match &state.description {
            Some(d) => format!("{why} ({d})"),
            None => why,
        };
        Verdict::ForceDown(format!("the agent says {why}"))
    } else if reply.health == Some(Health::Up) {
        Verdict::ForceUp
    } else {
        Verdict::Count(Ok(()))
    }
}

/// One target while a thread checks it.
struct Checking {
    i: usize,
    state: HealthState,
    /// When its next check is due.
    next: Instant,
    interval: Duration,
}

/// Starts checker thread number `k`: of the monitor's own pool, or `added` while checks
/// are late (it leaves after `limits.extra_idle` with nothing to take).
fn spawn_checker(
    shared: &Arc<Shared>,
    on_change: &OnChange,
    on_agent: &OnAgent,
    k: usize,
    added: bool,
) -> std::io::Result<JoinHandle<()>> {
    let (sh, cb, ag) = (
        Arc::clone(shared),
        Arc::clone(on_change),
        Arc::clone(on_agent),
    );
    shared.running.fetch_add(1, Ordering::Relaxed);
    let idle = added.then_some(shared.limits.extra_idle);
    let started = std::thread::Builder::new()
        .name(format!("uvs-hc-{k}"))
        .spawn(move || {
            checker(&sh, &*cb, &*ag, idle);
            sh.running.fetch_sub(1, Ordering::Relaxed);
        });
    if started.is_err() {
        shared.running.fetch_sub(1, Ordering::Relaxed);
    }
    started
}

/// Every [`STOP_SLICE`], while the monitor runs: if checks have waited [`LATE`] with no
/// thread free to take them, adds a thread per late check (at most [`EXTRA_PER_LOOK`] at
/// a time, `limits.most` in all). Waits for the threads it added when the monitor stops.
fn add_when_late(shared: &Arc<Shared>, on_change: &OnChange, on_agent: &OnAgent, first: usize) {
    let mut added: Vec<JoinHandle<()>> = Vec::new();
    let mut k = first;
    let mut said: Option<Instant> = None;
    // After a thread failed to start (the process is out of threads or memory maps):
    // when to try again, and when the failure was last logged.
    let mut retry = None;
    let mut failed: Option<Instant> = None;
    while !shared.schedule.flag.load(Ordering::Relaxed) {
        std::thread::sleep(STOP_SLICE);
        let now = Instant::now();
        let Some(before) = now.checked_sub(LATE) else {
            continue;
        };
        if retry.is_some_and(|at| now < at) {
            continue;
        }
        let late = lock(&shared.schedule.lock).late(before);
        let running = shared.running.load(Ordering::Relaxed);
        let more = late
            .min(EXTRA_PER_LOOK)
            .min(shared.limits.most.saturating_sub(running));
        if more == 0 {
            continue;
        }
        added.retain(|h| !h.is_finished());
        if said.is_none_or(|t| now - t >= Duration::from_secs(10)) {
            said = Some(now);
            log::warn!(
                "health checks are late: {late} waiting over {LATE:?} with all {running} \
                 checker threads busy (servers timing out); adding threads, up to {}",
                shared.limits.most
            );
        }
        for _ in 0..more {
            match spawn_checker(shared, on_change, on_agent, k, true) {
                Ok(h) => added.push(h),
                Err(e) => {
                    if failed.is_none_or(|t| now - t >= Duration::from_secs(10)) {
                        failed = Some(now);
                        log::error!(
                            "cannot add a health checker thread: {e}; the {} running check \
                             the late ones as they finish",
                            shared.running.load(Ordering::Relaxed)
                        );
                    }
                    retry = Some(now + Duration::from_secs(1));
                    break;
                }
            }
            k += 1;
        }
    }
    for h in added {
        let _ = h.join();
    }
}

/// A checker thread: takes the check due first, runs it and puts its target back due
/// again, until the monitor stops (or, for a thread added while checks were late, until
/// it has waited `idle` with nothing to take).
fn checker(
    shared: &Shared,
    on_change: &(dyn Fn(&HealthTarget, bool) + Send + Sync),
    on_agent: &(dyn Fn(&HealthTarget, &AgentState) + Send + Sync),
    idle: Option<Duration>,
) {
    while let Some(i) = shared.schedule.next_due(idle) {
        // A fresh target's first check runs at once, a resumed one's when it was due;
        // later ones every `interval` from the previous start.
        let (state, next) = *lock(&shared.progress[i]);
        let interval = shared.targets[i]
            .check
            .interval
            .max(Duration::from_millis(1));
        let mut c = Checking {
            i,
            state,
            next,
            interval,
        };
        if !check_once(shared, &mut c, on_change, on_agent) {
            return;
        }
        shared.schedule.put_back(c.next, i);
    }
}

/// Runs one due check of a target and applies its result; false if the monitor stopped.
fn check_once(
    shared: &Shared,
    c: &mut Checking,
    on_change: &(dyn Fn(&HealthTarget, bool) + Send + Sync),
    on_agent: &(dyn Fn(&HealthTarget, &AgentState) + Send + Sync),
) -> bool {
    let (i, interval) = (c.i, c.interval);
    let (mut state, mut next) = (c.state, c.next);
    let target = &shared.targets[i];
    let check = &target.check;
    next += interval;
    let started = Instant::now();
    let result = run_check_until(check, target.real, &shared.schedule.flag);
    if shared.schedule.flag.load(Ordering::Relaxed) {
        return false;
    }
    // The response time `fastest` compares: what this check took, and for a check
    // that failed (timed out, refused, wrong answer) at least its timeout, so a server
    // that stops answering looks slow from its first failure instead of as fast as its
    // last success until `fall` takes it out. RFC 6298's SRTT smoothing (1/8 of each
    // new sample); the first sample, or a success while the server is down (it is
    // coming back), is taken as it is rather than averaged with the outage's.
    let took = match &result {
        Ok(_) => started.elapsed(),
        Err(_) => started.elapsed().max(check.timeout),
    };
    let sample = u32::try_from(took.as_micros()).unwrap_or(u32::MAX).max(1);
    let old = shared.rtt_us[i].load(Ordering::Relaxed);
    let srtt = if old == 0 || (result.is_ok() && !state.up) {
        sample
    } else {
        old - old / 8 + sample / 8
    };
    shared.rtt_us[i].store(srtt, Ordering::Relaxed);
    let verdict = match result {
        Ok(out) => {
            if let Some(l) = out.load {
                let now = shared.started.elapsed();
                lock(&shared.load[i])
                    .get_or_insert_with(|| LoadFilter::new(interval))
                    .report(l, now);
            }
            match &out.agent {
                Some(reply) => apply_agent(shared, i, reply, on_agent),
                None => Verdict::Count(Ok(())),
            }
        }
        Err(why) => Verdict::Count(Err(why)),
    };
    let (flip, why) = match verdict {
        Verdict::ForceDown(why) => (state.force(false), Err(why)),
        Verdict::ForceUp => (state.force(true), Ok(())),
        Verdict::Count(r) => (state.record(r.is_ok()), r),
    };
    if let Err(why) = &why {
        log::debug!("health check of {} {}: {why}", target.service, target.real);
    }
    if let Some(up) = flip {
        shared.up[i].store(up, Ordering::Relaxed);
        let for_pools = if target.pools.is_empty() {
            String::new()
        } else {
            format!(" for pool(s) {}", target.pools.join(", "))
        };
        match &why {
            Ok(()) => log::info!("{} {} is up{for_pools}", target.service, target.real),
            Err(why) => log::warn!(
                "{} {} is down{for_pools}: {why}",
                target.service,
                target.real
            ),
        }
        on_change(target, up);
    }
    // A check that overran its interval starts the next one at once, without a burst.
    let now = Instant::now();
    if next < now {
        next = now;
    }
    (c.state, c.next) = (state, next);
    *lock(&shared.progress[i]) = (state, next);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis_table() {
        // (rise, fall, start up, results, expected flips in order, final state)
        type Case = (u32, u32, bool, &'static str, &'static [bool], bool);
        let cases: &[Case] = &[
            (2, 3, true, "", &[], true),
            (2, 3, true, "xx", &[], true),
            (2, 3, true, "xxx", &[false], false),
            (2, 3, true, "xxoxx", &[], true),
            (2, 3, true, "xxxo", &[false], false),
            (2, 3, true, "xxxoo", &[false, true], true),
            (2, 3, true, "xxxoxoo", &[false, true], true),
            (2, 3, true, "xxxxxxxx", &[false], false),
            (1, 1, true, "xoxo", &[false, true, false, true], true),
            (3, 1, false, "oooo", &[true], true),
            (3, 1, false, "ooxoo", &[], false),
            (0, 0, true, "x", &[false], false),
            (2, 2, false, "ooxxoo", &[true, false, true], true),
        ];
        for &(rise, fall, up, seq, flips, end) in cases {
            let mut s = HealthState::starting(rise, fall, up);
            let got: Vec<bool> = seq.chars().filter_map(|c| s.record(c == 'o')).collect();
            assert_eq!(got, flips, "rise {rise} fall {fall} start {up} seq {seq}");
            assert_eq!(s.up, end, "rise {rise} fall {fall} start {up} seq {seq}");
        }
    }

    #[test]
    fn counters_reset_on_the_other_result() {
        let mut s = HealthState::new(2, 3);
        s.record(false);
        s.record(false);
        assert_eq!((s.failures, s.successes), (2, 0));
        s.record(true);
        assert_eq!((s.failures, s.successes), (0, 1));
        assert!(
            HealthState::new(2, 3).up,
            "servers start up, as keepalived without alpha"
        );
    }

    fn tcp_target(real: SocketAddr) -> HealthTarget {
        HealthTarget {
            service: ServiceKey::addr(
                "198.18.100.1".parse().unwrap(),
                uvs_config::Protocol::Tcp,
                80,
            ),
            real,
            check: HealthCheck {
                kind: HealthCheckKind::Tcp,
                interval: Duration::from_millis(100),
                timeout: Duration::from_millis(300),
                rise: 2,
                fall: 2,
                port: None,
                start_down: false,
            },
            pools: vec![],
        }
    }

    /// Checks `n` targets on at most `max_threads` threads, the `refuse_from`th and later
    /// failing to start: servers behind a closed port start up and must go down, servers
    /// behind a listener start down and must come up. Returns how many threads started and
    /// the names of the threads that saw each flip.
    fn check_all(n: u16, max_threads: usize, refuse_from: usize) -> (usize, Vec<String>) {
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let open_addr = open.local_addr().unwrap();
        let mut targets = Vec::new();
        for n in 0..n {
            // Distinct targets: the same address under distinct services.
            let mut t = tcp_target(if n % 2 == 0 { closed } else { open_addr });
            t.service = ServiceKey::addr(
                "198.18.100.1".parse().unwrap(),
                uvs_config::Protocol::Tcp,
                1000 + n,
            );
            targets.push((t, Start::Fresh(n % 2 == 0), AgentState::default()));
        }
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let s2 = Arc::clone(&seen);
        let on_change: OnChange = Arc::new(move |_: &HealthTarget, _: bool| {
            let name = std::thread::current().name().unwrap_or("").to_string();
            lock(&s2).push(name);
        });
        let m = HealthMonitor::start_limited(
            targets,
            on_change,
            Arc::new(|_: &HealthTarget, _: &AgentState| {}),
            Limits {
                base: max_threads,
                most: max_threads,
                extra_idle: EXTRA_IDLE,
                refuse_from,
            },
        );
        let threads = m.threads.len();
        let deadline = Instant::now() + Duration::from_secs(10);
        while threads > 0 && lock(&seen).len() < n.into() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let cur = m.current();
        m.stop();
        for (t, up) in &cur {
            // Every verdict reached; with no thread, every server stays as it started.
            assert_eq!(
                *up,
                (t.service.port % 2 == 1) == (threads > 0),
                "{}",
                t.service
            );
        }
        let seen = lock(&seen).clone();
        (threads, seen)
    }

    fn distinct(mut names: Vec<String>) -> usize {
        names.sort();
        names.dedup();
        names.len()
    }

    #[test]
    fn more_targets_than_threads_all_get_checked() {
        let (threads, seen) = check_all(11, 3, usize::MAX);
        assert_eq!(threads, 3);
        assert_eq!(seen.len(), 11, "{seen:?}");
        assert!(distinct(seen) <= 3);
        // Up to the limit, a thread per target.
        let (threads, seen) = check_all(4, MAX_CHECKER_THREADS, usize::MAX);
        assert_eq!(threads, 4);
        assert_eq!(seen.len(), 4, "{seen:?}");
    }

    /// `targets` checked on threads as `limits` says; the ports of the services that came
    /// up are collected in the returned list as they do.
    fn start_counting_ups(
        targets: Vec<(HealthTarget, Start, AgentState)>,
        limits: Limits,
    ) -> (HealthMonitor, Arc<Mutex<Vec<u16>>>) {
        let ups: Arc<Mutex<Vec<u16>>> = Arc::default();
        let u2 = Arc::clone(&ups);
        let on_change: OnChange = Arc::new(move |t: &HealthTarget, up: bool| {
            if up {
                lock(&u2).push(t.service.port);
            }
        });
        let m = HealthMonitor::start_limited(
            targets,
            on_change,
            Arc::new(|_: &HealthTarget, _: &AgentState| {}),
            limits,
        );
        (m, ups)
    }

    /// A server that accepts connections and never answers (a hung process behind a live
    /// kernel) holds the thread checking it for the whole timeout; the other targets are
    /// checked on time by the other threads. With a fixed share of the targets per thread,
    /// the two that shared the silent server's thread waited for its 5 s timeout.
    #[test]
    fn a_silent_server_does_not_delay_the_other_checks() {
        // The kernel completes the handshakes of its backlog; nothing ever reads.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut hung = tcp_target(silent.local_addr().unwrap());
        hung.check.kind = HealthCheckKind::Agent { send: None };
        hung.check.timeout = Duration::from_secs(5);
        let mut targets = vec![(hung, Start::Fresh(true), AgentState::default())];
        for n in 0..6 {
            let mut t = tcp_target(open.local_addr().unwrap());
            t.service = ServiceKey::addr(
                "198.18.100.1".parse().unwrap(),
                uvs_config::Protocol::Tcp,
                1000 + n,
            );
            targets.push((t, Start::Fresh(false), AgentState::default()));
        }
        let began = Instant::now();
        let limits = Limits {
            base: 3,
            most: 3,
            extra_idle: EXTRA_IDLE,
            refuse_from: usize::MAX,
        };
        let (m, ups) = start_counting_ups(targets, limits);
        let deadline = began + Duration::from_secs(4);
        while lock(&ups).len() < 6 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = began.elapsed();
        let agent_in_progress = m.current()[0].1;
        m.stop();
        let mut ups = lock(&ups).clone();
        ups.sort_unstable();
        assert_eq!(
            ups,
            (1000..1006).collect::<Vec<_>>(),
            "up within {took:?} while the silent server's check waited"
        );
        // Its first check has not timed out yet: still up (it started up).
        assert!(agent_in_progress);
        assert!(took < Duration::from_secs(4), "{took:?}");
    }

    /// Five servers that accept and never answer (2 s timeouts) on a pool of three threads
    /// that may grow to eight: the checks of six healthy servers fall behind the three
    /// busy threads, so threads are added and the six come up within a few intervals
    /// (without, after the first 2 s timeouts). Once the silent servers refuse instead
    /// (their checks fail at once), the added threads have nothing to take and leave.
    #[test]
    fn threads_are_added_while_checks_are_late_and_leave_after() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut targets = Vec::new();
        for n in 0..11u16 {
            let mut t = tcp_target(if n < 5 {
                silent.local_addr().unwrap()
            } else {
                open.local_addr().unwrap()
            });
            if n < 5 {
                t.check.kind = HealthCheckKind::Agent { send: None };
                t.check.timeout = Duration::from_secs(2);
            }
            t.service = ServiceKey::addr(
                "198.18.100.1".parse().unwrap(),
                uvs_config::Protocol::Tcp,
                1000 + n,
            );
            targets.push((t, Start::Fresh(n < 5), AgentState::default()));
        }
        let began = Instant::now();
        let limits = Limits {
            base: 3,
            most: 8,
            extra_idle: Duration::from_millis(300),
            refuse_from: usize::MAX,
        };
        let (m, ups) = start_counting_ups(targets, limits);
        let running = || m.shared.running.load(Ordering::Relaxed);
        while lock(&ups).len() < 6 && began.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let took = began.elapsed();
        let grown = running();
        let mut got = lock(&ups).clone();
        got.sort_unstable();
        assert_eq!(got, (1005..1011).collect::<Vec<_>>(), "after {took:?}");
        assert!(took < Duration::from_millis(1500), "{took:?}");
        assert!((4..=8).contains(&grown), "{grown} threads");
        // The silent servers now refuse: their checks take no time, three threads do.
        drop(silent);
        let deadline = Instant::now() + Duration::from_secs(5);
        while running() > 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let left = running();
        m.stop();
        assert_eq!(left, 3, "the added threads left");
    }

    #[test]
    fn threads_that_cannot_start_leave_their_targets_to_the_others() {
        // Only the first of 3 threads starts: it checks all 7 targets.
        let (threads, seen) = check_all(7, 3, 1);
        assert_eq!(threads, 1);
        assert_eq!(seen.len(), 7, "{seen:?}");
        assert_eq!(seen[0], "uvs-hc-0");
        assert_eq!(distinct(seen), 1);
        // None starts: every server stays as it was, and the monitor still stops.
        let (threads, seen) = check_all(3, 3, 0);
        assert_eq!((threads, seen.len()), (0, 0));
    }

    #[test]
    fn substitution() {
        let v4: SocketAddr = "198.18.1.11:8080".parse().unwrap();
        let v6: SocketAddr = "[2001:2:0:1::11]:80".parse().unwrap();
        assert_eq!(
            substitute("check %a %p", v4),
            "check 198.18.1.11 8080".to_string()
        );
        assert_eq!(substitute("x %a:%p", v6), "x 2001:2:0:1::11:80");
        assert_eq!(substitute("100%% %q %", v4), "100% %q %");
        assert_eq!(substitute("%%a", v4), "%a");
    }
}
