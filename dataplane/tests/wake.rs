//! A sleeping worker wakes for what control hands it and for uvsd's stop, not on a timer:
//! here its idle sleep is 60 s, so anything that took the timer would miss the 20 s bounds
//! by far (the bounds are not timings: the wake-ups themselves take microseconds).

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::eventfd::{EfdFlags, EventFd};
use uvs_dataplane::cluster::{AnnounceTarget, Announcement};
use uvs_dataplane::lab::{self, ipk};
use uvs_dataplane::wake::Stop;
use uvs_dataplane::{Method, Shared, TablesBuilder, Worker};
use uvs_port::{Frame, MemPort, Port};
use uvs_sched::SchedulerKind;

/// An in-memory port a worker can sleep on, as on an AF_XDP socket: its fd never becomes
/// readable (no frame comes).
struct Sleepy {
    mem: MemPort,
    fd: EventFd,
}

impl Sleepy {
    fn new(name: &str) -> Sleepy {
        Sleepy {
            mem: MemPort::new(name, 64),
            fd: EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
                .unwrap(),
        }
    }
}

impl Port for Sleepy {
    fn rx_burst(&mut self, out: &mut [Frame]) -> usize {
        self.mem.rx_burst(out)
    }
    fn buf_mut(&mut self, frame: &Frame) -> &mut [u8] {
        self.mem.buf_mut(frame)
    }
    fn tx_burst(&mut self, frames: &[Frame]) -> usize {
        self.mem.tx_burst(frames)
    }
    fn tx_copy(&mut self, data: &[u8]) -> bool {
        self.mem.tx_copy(data)
    }
    fn free(&mut self, frames: &[Frame]) {
        self.mem.free(frames)
    }
    fn flush(&mut self) {
        self.mem.flush()
    }
    fn name(&self) -> &str {
        self.mem.name()
    }
    fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd.as_fd())
    }
}

const BOUND: Duration = Duration::from_secs(20);

fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < BOUND, "{what}: not within {BOUND:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
    t0.elapsed()
}

#[test]
fn a_sleeping_worker_wakes_for_an_announcement_and_for_stop() {
    let spec = lab::spec(Method::Nat, SchedulerKind::Rr, 1);
    let shared = Arc::new(Shared::new(
        TablesBuilder::build(&spec, None).unwrap(),
        1024,
        1,
    ));
    let mut w = Worker::new(
        0,
        vec![Sleepy::new("client"), Sleepy::new("server")],
        shared.clone(),
    );
    w.spin = Duration::ZERO;
    w.idle_sleep_ms = 60_000;
    let stop = Arc::new(Stop::new());
    let s = stop.clone();
    let worker = std::thread::spawn(move || w.run(&s));
    let counters = &shared.counters[0];

    wait_for("the worker sleeps", || counters.sleeps.get() >= 1);
    // Let it settle into the sleep (it is not woken by anything else).
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(counters.announcements.get(), 0);
    let asleep = counters.sleeps.get();
    shared.announce(Announcement {
        targets: vec![AnnounceTarget {
            addr: ipk(lab::VIP4),
            ports: vec![0],
        }],
        count: 1,
        interval: Duration::from_millis(100),
    });
    let took = wait_for("the announcement goes out", || {
        counters.announcements.get() >= 1
    });
    eprintln!("announcement sent {took:?} after control handed it over");
    // Asleep again (one round only: nothing left on a timer).
    wait_for("the worker sleeps again", || counters.sleeps.get() > asleep);
    std::thread::sleep(Duration::from_millis(50));

    let t0 = Instant::now();
    stop.raise();
    wait_for("the worker stops", || worker.is_finished());
    worker.join().unwrap();
    eprintln!("stopped {:?} after stop was raised", t0.elapsed());
}
