//! End to end (as root), a balancer that is edited often: runtime edits (`uvsadm -e`, as
//! an automation adjusting weights sends them) more frequent than a health check's timeout
//! still let a real server that stopped answering be taken out, and do not say again
//! that it is down.

mod common;
use common::*;
use std::time::{Duration, Instant};

/// A server that stops answering (its link down: connects time out, nothing refuses
/// them) is taken out while `uvsadm -e` edits another service every ~0.5 s, more often
/// than the check's 1.5 s timeout. The checks of the unchanged service keep running
/// through the edits: before, every edit restarted them and abandoned the check in
/// progress, so not one of them ever failed and the server stayed in rotation.
#[test]
#[ignore = "needs root: network namespaces, veth, XDP"]
fn a_silent_server_is_taken_out_while_other_services_are_edited() {
    require_root("a_silent_server_is_taken_out_while_other_services_are_edited");
    let mut tb = Testbed::up("soakedit", "nat");
    let config = demo_config()
        .replace(
            "      interval: 2\n      timeout: 1\n",
            "      interval: 1.5\n      timeout: 1.5\n",
        )
        .replace(
            "      rise: 2\n      fall: 3\n",
            "      rise: 2\n      fall: 2\n",
        )
        .replace("\nservices:\n", "\nexpire_nodest_conn: true\n\nservices:\n");
    tb.start_uvsd(&config);
    let start = Instant::now();
    while real_up(&tb, "198.18.1.13:80") != Some(true) {
        assert!(start.elapsed() < Duration::from_secs(10), "rs3 never up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let down = tb.exec("rs3", &["ip", "link", "set", "uvs-r0", "down"]);
    assert!(down.status.success());
    let gone = Instant::now();
    let mut edits = 0;
    // fall 2 × 1.5 s (interval and timeout): down within ~3.5 s; 8 s leaves room.
    while gone.elapsed() < Duration::from_secs(8) {
        let w = (1 + edits % 2).to_string();
        let e = tb.uvsadm(&[
            "-e",
            "-u",
            "198.18.100.1:53",
            "-r",
            "198.18.1.11:53",
            "-m",
            "-w",
            &w,
        ]);
        assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
        edits += 1;
        if real_up(&tb, "198.18.1.13:80") == Some(false) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        real_up(&tb, "198.18.1.13:80"),
        Some(false),
        "rs3 still up {:?} after it went silent, through {edits} edits:\n{}",
        gone.elapsed(),
        tb.uvsd_log()
    );
    assert!(
        edits >= 2,
        "the edits came as often as the test meant: {edits}"
    );
    // Further edits leave the down server as it is: under expire_nodest_conn its
    // connections went when it went down, and the log said so once, not at every edit.
    for w in ["1", "2", "1", "2"] {
        let e = tb.uvsadm(&[
            "-e",
            "-u",
            "198.18.100.1:53",
            "-r",
            "198.18.1.11:53",
            "-m",
            "-w",
            w,
        ]);
        assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
        // Apart, so that each is its own configuration change (the control loop takes
        // those every 100 ms).
        std::thread::sleep(Duration::from_millis(300));
    }
    let log = tb.uvsd_log();
    let said = log.matches("198.18.1.13:80 is down: expired").count();
    assert_eq!(
        said, 1,
        "expiry of the down server logged {said} times:\n{log}"
    );
}
