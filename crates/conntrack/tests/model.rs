//! Property test: random single-threaded op sequences against a plain model (a list of
//! stored entries with deadlines and a "retired" mark), including a full table, expiry
//! across the u32 clock wrap, retirement of expired twins and reply-tuple clashes.

use proptest::prelude::*;
use uvs_conntrack::ConnView;
use uvs_conntrack::{Conn, ConnId, ConnTable, Dir, FlowKey, Hit, InsertError};

const CAP: usize = 6;
const FLOWS: u8 = 16;

/// Flows 0..12 are distinct; flow 12+k has its own original tuple but flow k's reply tuple,
/// so the two can never both be live (a NAT reply ambiguity).
fn flow(f: u8, state: u8) -> Conn {
    let client = [198, 18, 0, f + 1];
    let reply_of = if f >= 12 { f - 12 } else { f };
    let rclient = [198, 18, 0, reply_of + 1];
    let rport = 1000 + reply_of as u16;
    Conn {
        orig: FlowKey::v4(6, client, 1000 + f as u16, [198, 18, 100, 1], 80),
        reply: FlowKey::v4(6, [198, 18, 1, 11], 8080, rclient, rport),
        service: 1,
        real: f as u16,
        method: 0,
        state,
        flags: f,
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, u8, u32),
    Lookup(u8, bool),
    Update(u8, u8, u32),
    Remove(u8),
    Advance(u32),
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..FLOWS, 0u8..11, 1u32..200).prop_map(|(f, s, t)| Op::Insert(f, s, t)),
        4 => (0..FLOWS, any::<bool>()).prop_map(|(f, r)| Op::Lookup(f, r)),
        2 => (0..FLOWS, 0u8..11, 1u32..200).prop_map(|(f, s, t)| Op::Update(f, s, t)),
        1 => (0..FLOWS).prop_map(Op::Remove),
        2 => (0u32..120).prop_map(Op::Advance),
        1 => Just(Op::Expire),
    ]
}

#[derive(Debug, Clone)]
struct Entry {
    id: ConnId,
    conn: Conn,
    deadline: u32,
    dead: bool,
}

fn expired(deadline: u32, now: u32) -> bool {
    (now.wrapping_sub(deadline) as i32) >= 0
}

struct Model {
    stored: Vec<Entry>,
    /// Last id handed out per flow (what a worker would hold).
    handle: [Option<ConnId>; FLOWS as usize],
    now: u32,
}

impl Model {
    fn live_holder(&self, key: &FlowKey) -> Option<(usize, Dir)> {
        self.stored.iter().enumerate().find_map(|(i, e)| {
            if e.dead || expired(e.deadline, self.now) {
                None
            } else if e.conn.orig == *key {
                Some((i, Dir::Original))
            } else if e.conn.reply == *key {
                Some((i, Dir::Reply))
            } else {
                None
            }
        })
    }

    fn insert(&mut self, c: &Conn) -> Result<(), InsertError> {
        if let Some((i, dir)) = self.live_holder(&c.orig) {
            let id = self.stored[i].id;
            return Err(if dir == Dir::Original {
                InsertError::Exists(id)
            } else {
                InsertError::Clash(id)
            });
        }
        if let Some((i, dir)) = self.live_holder(&c.reply) {
            let e = &self.stored[i];
            return Err(if dir == Dir::Reply && e.conn.orig == c.orig {
                InsertError::Exists(e.id)
            } else {
                InsertError::Clash(e.id)
            });
        }
        if self.stored.len() == CAP {
            return Err(InsertError::Full);
        }
        let now = self.now;
        for e in &mut self.stored {
            let holds = [e.conn.orig, e.conn.reply]
                .iter()
                .any(|k| *k == c.orig || *k == c.reply);
            if holds && expired(e.deadline, now) {
                e.dead = true;
            }
        }
        Ok(())
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let t = ConnTable::with_capacities(CAP, 0);
    let mut m = Model {
        stored: Vec::new(),
        handle: [None; FLOWS as usize],
        now: u32::MAX - 700,
    };
    for op in ops {
        match op {
            Op::Insert(f, s, ttl) => {
                let c = flow(f, s);
                let dl = m.now.wrapping_add(ttl);
                let want = m.insert(&c);
                let got = t.insert(&c, m.now, dl);
                match (want, got) {
                    (Ok(()), Ok(id)) => {
                        m.stored.push(Entry {
                            id,
                            conn: c,
                            deadline: dl,
                            dead: false,
                        });
                        m.handle[f as usize] = Some(id);
                    }
                    (w, g) => prop_assert_eq!(w.map(|_| ()), g.map(|_| ()), "insert {:?}", c),
                }
            }
            Op::Lookup(f, reply) => {
                let c = flow(f, 0);
                let key = if reply { c.reply } else { c.orig };
                let want = m.live_holder(&key).map(|(i, dir)| {
                    let e = &m.stored[i];
                    (e.id, dir, e.conn, e.deadline)
                });
                let got = t
                    .lookup(&key, m.now)
                    .map(|h: Hit| (h.id, h.dir, h.conn(), h.deadline));
                prop_assert_eq!(got, want);
                // The prepared lookup's quick answer: none, or the live holder's fields.
                let mut p = t.prepare(&key);
                t.prefetch_entry(&mut p);
                if let Some(e) = t.finish_lane(&p, m.now) {
                    let Some((_, dir, c, deadline)) = want else {
                        return Err(TestCaseError::fail(format!("finish_lane found {key:?}")));
                    };
                    prop_assert_eq!(
                        (e.dir, e.state(), e.deadline(), e.service(), e.real()),
                        (dir, c.state, deadline, c.service, c.real)
                    );
                    prop_assert_eq!(
                        (
                            e.method(),
                            e.flags(),
                            e.proto(),
                            e.orig_dport(),
                            e.reply_sport()
                        ),
                        (c.method, c.flags, c.orig.proto, c.orig.dport, c.reply.sport)
                    );
                    prop_assert_eq!(&e.orig_dst_v4()[..], &c.orig.dst[..4]);
                    prop_assert_eq!(&e.reply_src_v4()[..], &c.reply.src[..4]);
                }
            }
            Op::Update(f, s, ttl) => {
                let Some(id) = m.handle[f as usize] else {
                    continue;
                };
                let dl = m.now.wrapping_add(ttl);
                let e = m.stored.iter_mut().find(|e| e.id == id && !e.dead);
                let want = e.is_some();
                if let Some(e) = e {
                    e.conn.state = s;
                    e.deadline = dl;
                }
                prop_assert_eq!(t.update(id, s, dl), want);
            }
            Op::Remove(f) => {
                let Some(id) = m.handle[f as usize] else {
                    continue;
                };
                let pos = m.stored.iter().position(|e| e.id == id && !e.dead);
                if let Some(p) = pos {
                    m.stored.remove(p);
                }
                prop_assert_eq!(t.remove(id), pos.is_some());
            }
            Op::Advance(dt) => m.now = m.now.wrapping_add(dt),
            Op::Expire => {
                let now = m.now;
                let mut want: Vec<Conn> = m
                    .stored
                    .iter()
                    .filter(|e| e.dead || expired(e.deadline, now))
                    .map(|e| e.conn)
                    .collect();
                m.stored.retain(|e| !(e.dead || expired(e.deadline, now)));
                let mut got = Vec::new();
                let n = t.expire_step(now, CAP, |c| got.push(*c));
                prop_assert_eq!(n, got.len());
                let sort = |v: &mut Vec<Conn>| v.sort_by_key(|c| (c.real, c.state, c.orig.sport));
                sort(&mut want);
                sort(&mut got);
                prop_assert_eq!(got, want);
            }
        }
        prop_assert_eq!(t.len(), m.stored.len());
    }
    let mut listed = Vec::new();
    t.for_each(|id, c, dl| listed.push((id, *c, dl)));
    let mut want: Vec<_> = m
        .stored
        .iter()
        .filter(|e| !e.dead)
        .map(|e| (e.id, e.conn, e.deadline))
        .collect();
    listed.sort_by_key(|x| x.0);
    want.sort_by_key(|x| x.0);
    prop_assert_eq!(listed, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn table_matches_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}

/// `clear_flags` clears the bits the hit saw set, once, through either tuple's hit; a hit
/// on an entry that was removed (its slot free or reused) clears nothing.
#[test]
fn clear_flags_clears_once_and_never_in_a_recycled_slot() {
    let t = ConnTable::new(CAP);
    let mut c = flow(1, 3);
    c.flags = 0x05;
    t.insert(&c, 0, 1000).unwrap();
    let hit = t.lookup(&c.reply, 0).unwrap();
    assert!(t.clear_flags(&hit, 0x04));
    assert!(!t.clear_flags(&hit, 0x04), "cleared already");
    let (now, _) = t.get(hit.id).unwrap();
    assert_eq!(now.flags, 0x01, "the other bits stay");
    assert_eq!((now.orig, now.reply, now.state), (c.orig, c.reply, c.state));

    let again = t.lookup(&c.orig, 0).unwrap();
    assert!(t.remove(again.id));
    let mut d = flow(2, 3);
    d.flags = 0x05;
    t.insert(&d, 0, 1000).unwrap();
    assert!(!t.clear_flags(&again, 0x01), "a removed entry");
    let h = t.lookup(&d.orig, 0).unwrap();
    assert_eq!(h.flags(), 0x05);
}
