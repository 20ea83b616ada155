//! Waking threads that sleep in `poll(2)`: uvsd's stop signal and a worker's doorbell.
//!
//! An idle worker sleeps on its AF_XDP sockets, and the admin and metrics servers on their
//! listeners; without a way to wake them they would have to wake on a short timer to look
//! at a stop flag or at work control handed them, which is most of what an idle uvsd
//! costs. Both are eventfds: [`Stop`] is raised once and stays readable, so every thread
//! sleeping on it wakes (now and later); a [`Doorbell`] belongs to one worker, which
//! empties it when it wakes.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::eventfd::{EfdFlags, EventFd};

/// A stop flag that also wakes every thread sleeping on [`fd`](Self::fd): a
/// [`Doorbell`] rung once and never emptied.
pub struct Stop {
    flag: AtomicBool,
    bell: Doorbell,
}

impl Default for Stop {
    fn default() -> Self {
        Self::new()
    }
}

impl Stop {
    pub fn new() -> Self {
        Stop {
            flag: AtomicBool::new(false),
            bell: Doorbell::default(),
        }
    }

    /// Sets the flag and wakes the sleepers; the fd stays readable from now on.
    pub fn raise(&self) {
        self.flag.store(true, Ordering::Release);
        self.bell.ring();
    }

    pub fn is_raised(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Readable once the flag is raised (None if no eventfd could be made: sleepers then
    /// rely on their timeouts).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.bell.fd()
    }
}

/// Wakes one sleeping worker: control rings it when it hands the worker something to send
/// (a cluster announcement); the worker empties it when it wakes.
pub struct Doorbell {
    fd: Option<EventFd>,
}

impl Default for Doorbell {
    fn default() -> Self {
        let fd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| log::warn!("eventfd: {e}; sleeping threads fall back to their timeouts"))
            .ok();
        Doorbell { fd }
    }
}

impl Doorbell {
    pub fn ring(&self) {
        if let Some(fd) = &self.fd {
            let _ = fd.write(1);
        }
    }

    /// Empties it (a worker that woke). Never blocks.
    pub fn clear(&self) {
        if let Some(fd) = &self.fd {
            let _ = fd.read();
        }
    }

    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|f| f.as_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::time::{Duration, Instant};

    fn readable(fd: BorrowedFd<'_>, ms: u16) -> bool {
        let mut set = [PollFd::new(fd, PollFlags::POLLIN)];
        poll(&mut set, PollTimeout::from(ms)).unwrap() == 1
    }

    #[test]
    fn a_raised_stop_wakes_a_sleeper_and_stays_readable() {
        let stop = std::sync::Arc::new(Stop::new());
        assert!(!stop.is_raised());
        assert!(!readable(stop.fd().unwrap(), 0));
        let s = stop.clone();
        let t0 = Instant::now();
        let sleeper = std::thread::spawn(move || readable(s.fd().unwrap(), 10_000));
        std::thread::sleep(Duration::from_millis(50));
        stop.raise();
        assert!(sleeper.join().unwrap(), "the sleeper woke on the fd");
        assert!(t0.elapsed() < Duration::from_secs(5), "not by its timeout");
        assert!(stop.is_raised());
        assert!(
            readable(stop.fd().unwrap(), 0),
            "still readable for later sleepers"
        );
    }

    #[test]
    fn a_doorbell_wakes_once_per_ring() {
        let bell = Doorbell::default();
        assert!(!readable(bell.fd().unwrap(), 0));
        bell.ring();
        bell.ring();
        assert!(readable(bell.fd().unwrap(), 0));
        bell.clear();
        assert!(!readable(bell.fd().unwrap(), 0), "one clear empties it");
        bell.clear();
    }
}
