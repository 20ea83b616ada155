//! Ctrl-C, SIGTERM and SIGHUP in the middle of a run: what the run set up on the machine
//! (test networks in namespaces, and the processes in them) is taken down before uvs-bench
//! exits, as when a run finishes or fails. Drop guards alone do not run on a signal: the
//! process just ends, leaving the namespaces and their nginx servers behind.
//!
//! The handler only records the signal; a watcher thread runs the registered teardowns
//! (the newest first) and exits with 128 + the signal's number, as a shell reports it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

type Teardown = Box<dyn Fn() + Send>;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);
static TEARDOWNS: Mutex<Vec<(u64, Teardown)>> = Mutex::new(Vec::new());

/// Installs the handlers and the watcher thread (once, before anything is set up).
pub fn install() {
    let signal = Arc::new(AtomicUsize::new(0));
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // The handler stores the signal's number; a program's exec resets it to the default.
        let _ = signal_hook::flag::register_usize(sig, signal.clone(), sig as usize);
    }
    std::thread::spawn(move || loop {
        let sig = signal.load(Ordering::SeqCst);
        if sig != 0 {
            let list = TEARDOWNS.lock().unwrap_or_else(|e| e.into_inner());
            if !list.is_empty() {
                eprintln!("uvs-bench: interrupted, taking down what the run set up");
            }
            for (_, f) in list.iter().rev() {
                f();
            }
            std::process::exit(128 + sig as i32);
        }
        std::thread::sleep(Duration::from_millis(20));
    });
}

/// Runs `f` if uvs-bench is interrupted while the returned guard lives.
#[must_use = "the teardown is unregistered when the guard is dropped"]
pub fn on_interrupt(f: impl Fn() + Send + 'static) -> Guard {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    TEARDOWNS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((id, Box::new(f)));
    Guard(id)
}

/// Unregisters its teardown when dropped (the owner's own Drop then does the work).
pub struct Guard(u64);

impl Drop for Guard {
    fn drop(&mut self) {
        TEARDOWNS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, _)| *id != self.0);
    }
}
