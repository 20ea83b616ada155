//! Where the packet path tells the sync daemon about connections: a bounded lock-free
//! queue per worker of the ids of new connections, new persistence templates and state
//! changes (IPVS calls `ip_vs_sync_conn` from its packet path likewise). The control
//! thread drains the queues, reads each entry from the table and sends it to the peers.
//! Off (one relaxed load per event) unless a sync master runs; a full queue drops the
//! event and counts it — the periodic refresh sends the connection later anyway.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crossbeam::queue::ArrayQueue;
use uvs_conntrack::ConnId;

/// Events a worker may queue before the sender drains them.
pub const QUEUE_LEN: usize = 1 << 16;

pub struct SyncTap {
    enabled: AtomicBool,
    queues: Box<[ArrayQueue<ConnId>]>,
    dropped: AtomicU64,
}

impl SyncTap {
    pub fn new(workers: usize) -> Self {
        SyncTap {
            enabled: AtomicBool::new(false),
            queues: (0..workers.max(1))
                .map(|_| ArrayQueue::new(QUEUE_LEN))
                .collect(),
            dropped: AtomicU64::new(0),
        }
    }

    /// Turns event collection on (a sync master started) or off.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Relaxed);
        if !on {
            for q in self.queues.iter() {
                while q.pop().is_some() {}
            }
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }

    /// Queues `id` from `worker` (new connection, new template, state change).
    #[inline]
    pub fn note(&self, worker: usize, id: ConnId) {
        if !self.enabled.load(Relaxed) {
            return;
        }
        self.note_cold(worker, id);
    }

    #[cold]
    fn note_cold(&self, worker: usize, id: ConnId) {
        if let Some(q) = self.queues.get(worker) {
            if q.push(id).is_err() {
                self.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    /// Takes up to `max` queued ids (all workers) into `out`.
    pub fn drain(&self, out: &mut Vec<ConnId>, max: usize) {
        for q in self.queues.iter() {
            while out.len() < max {
                match q.pop() {
                    Some(id) => out.push(id),
                    None => break,
                }
            }
        }
    }

    /// Events lost to a full queue.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}
