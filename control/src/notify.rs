//! systemd's readiness protocol (sd_notify(3)), for `Type=notify` units: READY=1 once the
//! dataplane serves and the admin socket answers, RELOADING=1 with MONOTONIC_USEC while a
//! configuration is reloaded and READY=1 after it (systemd ≥ 253 keys `systemctl reload`'s
//! completion on that pair), STOPPING=1 when uvsd starts to shut down, and WATCHDOG=1 from
//! the control loop every half of WATCHDOG_USEC (the interval sd_watchdog_enabled(3)
//! recommends), so a control loop that hangs gets uvsd restarted. Without NOTIFY_SOCKET
//! (not started by systemd) every call does nothing.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// The variables a child process must not inherit: a command health check is not the
/// service, and the manager would take its messages for uvsd's.
pub const ENV: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// uvsd's side of the protocol.
pub struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
    last_ping: Instant,
    warned: bool,
}

impl Notifier {
    /// Reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID as systemd set them.
    pub fn from_env() -> Notifier {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some();
        let watchdog = sd_notify::watchdog_enabled().filter(|_| enabled);
        if let Some(w) = watchdog {
            log::info!(
                "systemd watchdog: pinging every {:?} (WatchdogSec={w:?})",
                w / 2
            );
        }
        Notifier {
            enabled,
            watchdog,
            last_ping: Instant::now(),
            warned: false,
        }
    }

    fn send(&mut self, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            // Once: a manager that went away would otherwise fill the log every 100 ms.
            if !self.warned {
                self.warned = true;
                log::warn!("cannot notify systemd (NOTIFY_SOCKET): {e}");
            }
        }
    }

    /// The service is up: workers serve, the admin socket answers.
    pub fn ready(&mut self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// A reload starts. MONOTONIC_USEC lets the manager tell this reload from an earlier one.
    pub fn reloading(&mut self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    /// Shutdown begins.
    pub fn stopping(&mut self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// Called every round of the control loop: pings the watchdog when half its period has
    /// passed since the last ping.
    pub fn tick(&mut self) {
        self.tick_at(Instant::now());
    }

    /// [`tick`](Self::tick) at `now` (the tests pass their own clock).
    fn tick_at(&mut self, now: Instant) {
        let Some(w) = self.watchdog else {
            return;
        };
        if now.saturating_duration_since(self.last_ping) >= w / 2 {
            self.last_ping = now;
            self.send(&[NotifyState::Watchdog]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;
    use std::process::Command;

    const CHILD: &str = "UVS_NOTIFY_TEST_CHILD";

    /// The notifier reads its socket from the environment, as systemd hands it over, so
    /// the sequence runs in a child copy of this test binary with NOTIFY_SOCKET set, and
    /// this test reads what arrives on a real Unix datagram socket.
    #[test]
    fn messages_reach_the_notify_socket() {
        if std::env::var_os(CHILD).is_some() {
            let mut n = Notifier::from_env();
            assert!(
                n.watchdog.is_some(),
                "WATCHDOG_USEC was set for this process"
            );
            n.ready("serving 1 service(s)");
            n.reloading();
            n.ready("reloaded");
            // 200 ms of WATCHDOG_USEC: a ping is due every 100 ms. The clock is the test's,
            // so a stalled machine cannot add a ping.
            let start = n.last_ping;
            n.tick_at(start + Duration::from_millis(99));
            n.tick_at(start + Duration::from_millis(150));
            n.tick_at(start + Duration::from_millis(249));
            n.stopping();
            return;
        }
        let dir = std::env::temp_dir().join(format!("uvs-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "notify::tests::messages_reach_the_notify_socket",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", "200000")
            .env_remove("WATCHDOG_PID")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "child failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut got = Vec::new();
        sock.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got[0], "READY=1\nSTATUS=serving 1 service(s)\n");
        let mut reload = got[1].lines();
        assert_eq!(reload.next(), Some("RELOADING=1"));
        let usec: u64 = reload
            .next()
            .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {:?}", got[1]));
        assert!(usec > 0);
        assert_eq!(got[2], "READY=1\nSTATUS=reloaded\n");
        // The first tick came too early (99 ms of 100); of the two after it only the first
        // pings (the second is 99 ms after that ping).
        assert_eq!(got[3], "WATCHDOG=1\n");
        assert_eq!(got[4], "STOPPING=1\nSTATUS=stopping\n");
    }

    #[test]
    fn without_a_socket_nothing_is_sent_and_nothing_fails() {
        if std::env::var_os("NOTIFY_SOCKET").is_some() {
            return; // run under a service manager: this case is not the one to test
        }
        let mut n = Notifier::from_env();
        assert!(!n.enabled && n.watchdog.is_none());
        n.ready("x");
        n.reloading();
        n.tick();
        n.stopping();
        assert!(!n.warned);
    }
}
