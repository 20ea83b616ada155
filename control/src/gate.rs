//! Serving short request/answer clients (the admin socket, the metrics endpoint) so that no
//! client can hold the others up.
//!
//! ```text
//! listener ─accept─► waiting: ≤ max_waiting, one thread, poll ─whole request─► queue ─► workers
//!                     ├ no whole request in request_time: refusal(Slow)     (≤ queue)  answer(),
//!                     ├ one too many: the longest-waiting gets refusal(Crowded)        written in
//!                     └ queue full: refusal(Busy)                                      answer_time
//! ```
//!
//! One thread accepts and reads every connection without blocking until it holds a whole
//! request, so idle clients cost a file descriptor and a buffer, never a thread. A client
//! has `request_time` from connecting to send its whole request (a deadline for the request,
//! not per read, so dripping a byte at a time does not extend it). When a new client arrives
//! and `max_waiting` are already waiting, the one that has waited longest is refused: a
//! client that sends its request at once (uvsadm, a Prometheus scrape) gets through even
//! while someone holds many idle connections. Answers are computed and written by `workers`
//! threads, each answer within `answer_time`. Every refusal is a short answer in the
//! protocol's own terms, written without blocking, then the connection is closed.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::mpsc::{self, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use uvs_dataplane::wake::Stop;

/// How often the serving thread looks at its stop flag when the flag has no fd to wake it.
const STOP_CHECK: Duration = Duration::from_millis(50);
/// The longest the serving thread sleeps with nothing due when the stop flag can wake it
/// (an idle uvsd's admin and metrics servers wake once a second, not twenty times).
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// How long accepting pauses after an error such as running out of file descriptors
/// (the listener stays readable, so retrying at once would spin).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Least time between two warnings about failing accepts.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// Connections accepted per wake-up, so reading the waiting ones is never starved.
const ACCEPT_BATCH: usize = 64;

/// A listening socket the gate accepts on.
pub(crate) trait Listener: AsFd + Send + 'static {
    type Stream: Stream;
    fn accept_stream(&self) -> io::Result<Self::Stream>;
    fn set_nonblocking(&self, on: bool) -> io::Result<()>;
}

/// A connected client.
pub(crate) trait Stream: Read + Write + AsFd + Send + 'static {
    fn set_nonblocking(&self, on: bool) -> io::Result<()>;
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()>;
}

impl Listener for UnixListener {
    type Stream = UnixStream;
    fn accept_stream(&self) -> io::Result<UnixStream> {
        self.accept().map(|(s, _)| s)
    }
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        UnixListener::set_nonblocking(self, on)
    }
}

impl Listener for TcpListener {
    type Stream = TcpStream;
    fn accept_stream(&self) -> io::Result<TcpStream> {
        self.accept().map(|(s, _)| s)
    }
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        TcpListener::set_nonblocking(self, on)
    }
}

impl Stream for UnixStream {
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        UnixStream::set_nonblocking(self, on)
    }
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        UnixStream::set_write_timeout(self, t)
    }
}

impl Stream for TcpStream {
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        TcpStream::set_nonblocking(self, on)
    }
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, t)
    }
}

/// How a request came to be handed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// `Protocol::complete` said so.
    Complete,
    /// The client closed its side first; the bytes are all there is.
    Closed,
    /// More than `max_request` bytes without a complete request.
    TooLong,
}

/// Why a client is turned away without an answer to its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No whole request within `request_time`.
    Slow,
    /// It had waited longest when one client too many was waiting.
    Crowded,
    /// Its request was whole but every worker was busy and the queue full.
    Busy,
}

/// What is served.
pub(crate) trait Protocol: Send + Sync + 'static {
    /// Whether `request` (everything read so far) is a whole request.
    fn complete(&self, request: &[u8]) -> bool;
    /// The bytes to send back.
    fn answer(&self, request: &[u8], ending: Ending) -> Vec<u8>;
    /// The short answer telling a client why it is closed.
    fn refusal(&self, why: Refusal) -> Vec<u8>;
}

/// The bounds of one server.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Clients connected and still sending their request.
    pub max_waiting: usize,
    /// From connecting to a whole request.
    pub request_time: Duration,
    /// Longest request.
    pub max_request: usize,
    /// Threads computing and writing answers.
    pub workers: usize,
    /// Whole requests waiting for a worker.
    pub queue: usize,
    /// To write one answer.
    pub answer_time: Duration,
}

struct Waiting<S> {
    stream: S,
    request: Vec<u8>,
    since: Instant,
}

enum Progress {
    More,
    Done(Ending),
    Gone,
}

type Job<S> = (S, Vec<u8>, Ending);

/// Serves `listener` until `stop` is set. Blocks; returns once every worker has finished.
pub(crate) fn run<L: Listener, P: Protocol>(
    name: &str,
    listener: L,
    limits: Limits,
    protocol: Arc<P>,
    stop: &Stop,
) {
    if let Err(e) = listener.set_nonblocking(true) {
        log::error!("{name}: cannot make the listener non-blocking: {e}");
        return;
    }
    let (tx, rx) = mpsc::sync_channel::<Job<L::Stream>>(limits.queue);
    let rx = Arc::new(Mutex::new(rx));
    let workers: Vec<_> = (0..limits.workers.max(1))
        .filter_map(|i| {
            let rx = Arc::clone(&rx);
            let protocol = Arc::clone(&protocol);
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || work(&rx, &*protocol, limits.answer_time))
                .map_err(|e| log::error!("{name}: cannot start a worker thread: {e}"))
                .ok()
        })
        .collect();

    let mut waiting: Vec<Waiting<L::Stream>> = Vec::new();
    let mut accept_paused_until: Option<Instant> = None;
    let mut last_accept_warning: Option<Instant> = None;
    let dispatch = |w: Waiting<L::Stream>, ending: Ending| {
        if let Err(TrySendError::Full((stream, _, _))) = tx.try_send((w.stream, w.request, ending))
        {
            log::debug!("{name}: every worker busy, a request refused");
            refuse(stream, &*protocol, Refusal::Busy);
        }
    };
    let idle_wait = if stop.fd().is_some() {
        IDLE_WAIT
    } else {
        STOP_CHECK
    };
    while !stop.is_raised() {
        let now = Instant::now();
        if accept_paused_until.is_some_and(|t| now >= t) {
            accept_paused_until = None;
        }
        let accepting = accept_paused_until.is_none();
        let wait = waiting
            .iter()
            .map(|w| (w.since + limits.request_time).saturating_duration_since(now))
            .chain(accept_paused_until.map(|t| t.saturating_duration_since(now)))
            .fold(idle_wait, Duration::min);
        let (listener_ready, ready) = {
            // The listener, the waiting connections, the stop flag.
            let mut fds = Vec::with_capacity(waiting.len() + 2);
            fds.push(PollFd::new(
                listener.as_fd(),
                if accepting {
                    PollFlags::POLLIN
                } else {
                    PollFlags::empty()
                },
            ));
            fds.extend(
                waiting
                    .iter()
                    .map(|w| PollFd::new(w.stream.as_fd(), PollFlags::POLLIN)),
            );
            // Last, so the waiting connections keep indexes 1..=len.
            fds.extend(stop.fd().map(|fd| PollFd::new(fd, PollFlags::POLLIN)));
            // Rounded up so a deadline a fraction of a millisecond away does not spin.
            let ms = u16::try_from(wait.as_millis() + 1).unwrap_or(u16::MAX);
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    log::warn!("{name}: poll failed: {e}");
                    std::thread::sleep(STOP_CHECK);
                    continue;
                }
            }
            let is_ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
            let ready: Vec<bool> = fds[1..=waiting.len()].iter().map(is_ready).collect();
            (is_ready(&fds[0]), ready)
        };

        // Read what arrived; hand over whole requests.
        for i in (0..waiting.len()).rev() {
            if !ready[i] {
                continue;
            }
            match read_available(&mut waiting[i], &*protocol, limits.max_request) {
                Progress::More => {}
                Progress::Done(ending) => dispatch(waiting.remove(i), ending),
                Progress::Gone => drop(waiting.remove(i)),
            }
        }

        // Out of time: told so and closed.
        let now = Instant::now();
        let mut i = 0;
        while i < waiting.len() {
            if now.duration_since(waiting[i].since) >= limits.request_time {
                refuse(waiting.remove(i).stream, &*protocol, Refusal::Slow);
            } else {
                i += 1;
            }
        }

        if !(accepting && listener_ready) {
            continue;
        }
        for _ in 0..ACCEPT_BATCH {
            let stream = match listener.accept_stream() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Such as EMFILE, which lasts: say it once in a while, not every pause.
                    if last_accept_warning.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                        log::warn!("{name}: accept failed: {e}");
                        last_accept_warning = Some(Instant::now());
                    }
                    accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                    break;
                }
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            if waiting.len() >= limits.max_waiting.max(1) {
                log::debug!("{name}: too many clients waiting, the longest-waiting refused");
                refuse(waiting.remove(0).stream, &*protocol, Refusal::Crowded);
            }
            let mut w = Waiting {
                stream,
                request: Vec::new(),
                since: Instant::now(),
            };
            // The request is often there already.
            match read_available(&mut w, &*protocol, limits.max_request) {
                Progress::More => waiting.push(w),
                Progress::Done(ending) => dispatch(w, ending),
                Progress::Gone => {}
            }
        }
    }
    drop(waiting);
    drop(tx);
    for w in workers {
        let _ = w.join();
    }
}

/// Reads everything the client has sent so far, without blocking.
fn read_available<S: Stream, P: Protocol>(
    w: &mut Waiting<S>,
    protocol: &P,
    max: usize,
) -> Progress {
    let mut chunk = [0u8; 4096];
    loop {
        // One byte past the limit tells "too long" from "exactly full".
        let room = (max + 1).saturating_sub(w.request.len()).min(chunk.len());
        match w.stream.read(&mut chunk[..room]) {
            Ok(0) if w.request.is_empty() => return Progress::Gone,
            Ok(0) => return Progress::Done(Ending::Closed),
            Ok(n) => {
                w.request.extend_from_slice(&chunk[..n]);
                if protocol.complete(&w.request) {
                    return Progress::Done(Ending::Complete);
                }
                if w.request.len() > max {
                    return Progress::Done(Ending::TooLong);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::More,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Progress::Gone,
        }
    }
}

/// Tells the client why, as far as its socket buffer takes it without waiting, and closes.
fn refuse<S: Stream, P: Protocol>(mut stream: S, protocol: &P, why: Refusal) {
    let _ = stream.write(&protocol.refusal(why));
}

/// A worker: answers handed-over requests until the serving thread goes away.
fn work<S: Stream, P: Protocol>(rx: &Mutex<mpsc::Receiver<Job<S>>>, protocol: &P, limit: Duration) {
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((mut stream, request, ending)) = job else {
            return;
        };
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            protocol.answer(&request, ending)
        }));
        match answer {
            Ok(bytes) => {
                if let Err(e) = write_within(&mut stream, &bytes, limit) {
                    log::debug!("answer not delivered: {e}");
                }
            }
            Err(_) => log::error!("internal error while answering a request"),
        }
    }
}

/// Writes all of `bytes` within `limit` in total, however slowly the client reads.
fn write_within<S: Stream>(stream: &mut S, bytes: &[u8], limit: Duration) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    let end = Instant::now() + limit;
    let mut rest = bytes;
    while !rest.is_empty() {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("client did not take the answer within {limit:?}"),
            ));
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    stream.flush()
}
