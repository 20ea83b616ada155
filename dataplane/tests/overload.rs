//! Overload: a worker that cannot keep up says so. Frames its port's kernel side had to
//! drop because the worker was not taking them (an AF_XDP socket's full receive ring or
//! empty fill ring; here an in-memory port out of buffers) are counted as drops with
//! their own reason, so `uvs_drops_total` shows what a flood cost before uvs saw it.

mod lab_worker;

use lab_worker::{client_tcp, Lab};
use uvs_dataplane::lab;
use uvs_dataplane::{DropReason, Method};
use uvs_sched::SchedulerKind;
use uvs_testkit as tk;

#[test]
fn frames_the_port_could_not_take_are_counted() {
    let mut lab = Lab::with_slots(lab::spec(Method::Nat, SchedulerKind::Rr, 1), 1024, 4);
    let lost = |lab: &Lab| lab.shared.counters[0].dropped(DropReason::RxRingFull);
    // Ten SYNs at a port with four buffers: six never reach the worker.
    let offered = |lab: &mut Lab, from: u16| {
        (from..from + 10)
            .filter(|&sport| lab.w.ports[0].push_rx(&client_tcp(sport, tk::SYN, b"")))
            .count()
    };
    assert_eq!(offered(&mut lab, 1000), 4);
    lab.w.poll();
    assert_eq!(lost(&lab), 6, "the port's losses are counted");
    lab.w.poll();
    assert_eq!(lost(&lab), 6, "and counted once");
    lab.w.ports[1].take_tx();
    assert_eq!(offered(&mut lab, 2000), 4);
    lab.shared.clock.advance(1);
    lab.w.poll();
    assert_eq!(lost(&lab), 12, "later losses are added");
}
