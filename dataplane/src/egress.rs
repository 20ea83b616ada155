//! A worker's cache of the link-layer header towards its connections' real servers.
//!
//! An established packet towards a real server needs the egress port and the two MACs:
//! the port and next hop from the real server's `RealRt` (service `Arc` → real server
//! slot), the source MAC from the port's interface, the destination MAC from the
//! neighbour map (a hash of the next hop). All of them follow from the tables snapshot,
//! the neighbour map and the connection's service, real server slot and address, so the
//! worker keeps the result per (service, slot, address): one direct-mapped line read
//! instead of that chain of dependent loads and the hash on every packet.
//!
//! Validity: a line is filled only from a packet whose real server is the snapshot's
//! server in that slot at that address and whose neighbour is resolved, and every line is
//! forgotten when the worker loads a different snapshot (`Tables::epoch`) or neighbour
//! map (a new map is published for every change: a new MAC, a re-confirmation, a
//! `clear`), checked once per poll ([`EgressCache::sync`]). Within one snapshot and one
//! map the same inputs give the same header, so a hit is exactly what the full path
//! would have computed. A server removed or moved to another slot by a reload, or a slot
//! holding another server now, misses and takes the full path (routed, as before).

use std::sync::Arc;

use crate::neigh::NeighMap;
use crate::tables::Tables;

/// Lines per worker: a power of two; a collision only costs the full path.
const LINES: usize = 256;

/// Where a packet leaves and the MACs it leaves with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct L2 {
    /// Destination ‖ source MAC: the frame's first 12 bytes.
    pub macs: [u8; 12],
    pub port: u8,
}

#[derive(Clone, Copy, Default)]
struct Line {
    /// 0: empty; otherwise [`key`].
    key: u64,
    /// The real server's address as the connection holds it (IPv4: its first 4 bytes).
    addr: [u8; 16],
    l2: L2,
}

/// The tables snapshot and neighbour map a worker's cache of derived forwarding state was
/// filled from (this module's lines, `crate::flowcache`'s records).
#[derive(Default)]
pub(crate) struct FilledFrom {
    /// `Tables::epoch` of the snapshot.
    tables: u64,
    /// The neighbour map (held, so its address is not reused while it is compared).
    neigh: Option<Arc<NeighMap>>,
}

impl FilledFrom {
    /// Whether `tables` or `neigh` is another publication than the one the cache was
    /// filled from; if so, they are remembered as the new source (the caller empties the
    /// cache).
    #[inline]
    pub(crate) fn changed(&mut self, tables: &Tables, neigh: &Arc<NeighMap>) -> bool {
        let same_neigh = self.neigh.as_ref().is_some_and(|n| Arc::ptr_eq(n, neigh));
        if self.tables == tables.epoch && same_neigh {
            return false;
        }
        self.renew(tables.epoch, neigh);
        true
    }

    #[cold]
    fn renew(&mut self, epoch: u64, neigh: &Arc<NeighMap>) {
        self.tables = epoch;
        self.neigh = Some(Arc::clone(neigh));
    }
}

/// The per-worker cache (see the module).
pub struct EgressCache {
    from: FilledFrom,
    lines: Box<[Line]>,
}

impl Default for EgressCache {
    fn default() -> Self {
        Self {
            from: FilledFrom::default(),
            lines: vec![Line::default(); LINES].into_boxed_slice(),
        }
    }
}

#[inline]
fn key(service: u16, real: u16, v6: bool) -> u64 {
    1 + ((u64::from(service) << 17) | (u64::from(v6) << 16) | u64::from(real))
}

#[inline]
fn line_of(service: u16, real: u16) -> usize {
    (usize::from(real) ^ usize::from(service).wrapping_mul(0x9e37)) % LINES
}

impl EgressCache {
    /// Forgets every line unless `tables` and `neigh` are the ones they were filled from.
    /// Once per poll, before its first packet.
    #[inline]
    pub fn sync(&mut self, tables: &Tables, neigh: &Arc<NeighMap>) {
        if self.from.changed(tables, neigh) {
            self.reset();
        }
    }

    #[cold]
    fn reset(&mut self) {
        for l in self.lines.iter_mut() {
            l.key = 0;
        }
    }

    /// The header towards real server `real` of service `service` at `addr`, if a packet
    /// of this snapshot and neighbour map already resolved it.
    #[inline]
    pub(crate) fn get(&self, service: u16, real: u16, v6: bool, addr: &[u8; 16]) -> Option<L2> {
        let l = &self.lines[line_of(service, real)];
        // IPv4 addresses compare whole too: a connection's have their other 12 bytes zero
        // (`ConnTable::insert` refuses any other).
        (l.key == key(service, real, v6) && l.addr == *addr).then_some(l.l2)
    }

    /// Remembers the header the full path resolved for a packet whose real server is the
    /// snapshot's server in slot `real` of `service`, at `addr`.
    #[inline]
    pub(crate) fn put(&mut self, service: u16, real: u16, v6: bool, addr: &[u8; 16], l2: L2) {
        self.lines[line_of(service, real)] = Line {
            key: key(service, real, v6),
            addr: *addr,
            l2,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab;
    use crate::tables::{Method, TablesBuilder};
    use uvs_sched::SchedulerKind;

    fn tables() -> Tables {
        TablesBuilder::build(&lab::spec(Method::Nat, SchedulerKind::Rr, 1), None).unwrap()
    }

    #[test]
    fn lines_keyed_by_service_slot_family_and_address() {
        let t = tables();
        let n = Arc::new(NeighMap::default());
        let mut c = EgressCache::default();
        c.sync(&t, &n);
        let a = lab::real(1, false).addr;
        let l2 = L2 {
            macs: [7; 12],
            port: 1,
        };
        assert_eq!(c.get(0, 0, false, &a), None);
        c.put(0, 0, false, &a, l2);
        assert_eq!(c.get(0, 0, false, &a), Some(l2));
        assert_eq!(c.get(1, 0, false, &a), None, "another service");
        assert_eq!(c.get(0, 1, false, &a), None, "another slot");
        assert_eq!(c.get(0, 0, true, &a), None, "another family");
        let b = lab::real(2, false).addr;
        assert_eq!(c.get(0, 0, false, &b), None, "another address");
        let a6 = lab::real(1, true).addr;
        c.put(3, 0, true, &a6, l2);
        let mut b6 = a6;
        b6[15] ^= 1;
        assert_eq!(c.get(3, 0, true, &a6), Some(l2));
        assert_eq!(c.get(3, 0, true, &b6), None, "IPv6 compares all 16 bytes");
    }

    #[test]
    fn a_new_snapshot_or_neighbour_map_forgets_every_line() {
        let t = tables();
        let n = Arc::new(NeighMap::default());
        let mut c = EgressCache::default();
        let a = lab::real(1, false).addr;
        let l2 = L2 {
            macs: [7; 12],
            port: 1,
        };
        c.sync(&t, &n);
        c.put(0, 0, false, &a, l2);
        c.sync(&t, &n);
        assert_eq!(c.get(0, 0, false, &a), Some(l2), "same snapshot and map");
        // An equal map that is another publication still forgets.
        let n2 = Arc::new(NeighMap::clone(&n));
        c.sync(&t, &n2);
        assert_eq!(c.get(0, 0, false, &a), None);
        c.put(0, 0, false, &a, l2);
        let t2 =
            TablesBuilder::build(&lab::spec(Method::Nat, SchedulerKind::Rr, 1), Some(&t)).unwrap();
        assert_ne!(t2.epoch, t.epoch);
        c.sync(&t2, &n2);
        assert_eq!(c.get(0, 0, false, &a), None);
        // A snapshot built afresh restarts `generation`, never `epoch`.
        let t3 = tables();
        assert_eq!(t3.generation, t.generation);
        assert_ne!(t3.epoch, t.epoch);
    }
}
