//! `uvsadm top`: one screenful of the balancer — workers' load, per service and real server
//! rates, health and connections, drops. The client redraws it every second.

use crate::snapshot::{Rates, Snapshot};
use std::fmt::Write as _;
use std::net::SocketAddr;

/// One frame (no screen control codes; the client adds them).
pub fn format_top(s: &Snapshot) -> String {
    let mut out = String::new();
    let fill = if s.conn_capacity > 0 {
        s.conn_count as f64 * 100.0 / s.conn_capacity as f64
    } else {
        0.0
    };
    let _ = writeln!(
        out,
        "uvs {}  generation {}  connections {}/{} ({fill:.1}%)",
        s.version, s.generation, s.conn_count, s.conn_capacity
    );
    out.push('\n');

    let _ = writeln!(
        out,
        "{:>6} {:>4} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "WORKER", "CORE", "BUSY", "RX PKTS", "TX PKTS", "SLOW PATH", "NEW CONNS"
    );
    for w in &s.workers {
        let core = w.core.map_or_else(|| "-".to_string(), |c| c.to_string());
        let _ = writeln!(
            out,
            "{:>6} {:>4} {:>5.1}% {:>10} {:>10} {:>10} {:>10}",
            w.id,
            core,
            w.busy_ratio * 100.0,
            human(w.rx_packets as f64),
            human(w.tx_packets as f64),
            human(w.slow_path as f64),
            human(w.new_conns as f64)
        );
    }
    out.push('\n');

    let _ = writeln!(
        out,
        "{:<40} {:<9} {:>6} {:<6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "SERVICE / REAL SERVER",
        "SCHED/FWD",
        "WEIGHT",
        "HEALTH",
        "CONN/s",
        "INPKT/s",
        "OUTPK/s",
        "IN B/s",
        "OUT B/s",
        "ACTIVE",
        "INACT"
    );
    let mut services: Vec<_> = s.services.iter().collect();
    services.sort_by(|a, b| super::list::cmp_services(a, b));
    for svc in services {
        let key = if svc.fwmark != 0 {
            let v6 = if svc.vip.is_ipv6() { " IPv6" } else { "" };
            format!("FWM {}{v6} {}", svc.fwmark, svc.name)
        } else {
            format!(
                "{} {} {}",
                svc.protocol,
                SocketAddr::new(svc.vip, svc.port),
                svc.name
            )
        };
        let up = svc.reals.iter().filter(|r| r.health_up).count();
        let active: u64 = svc.reals.iter().map(|r| u64::from(r.active)).sum();
        let inactive: u64 = svc.reals.iter().map(|r| u64::from(r.inactive)).sum();
        let _ = writeln!(
            out,
            "{:<40} {:<9} {:>6} {:<6} {} {:>7} {:>7}",
            clip(&key, 40),
            svc.scheduler,
            "",
            format!("{up}/{}", svc.reals.len()),
            rates(&svc.rates),
            human(active as f64),
            human(inactive as f64)
        );
        let mut reals: Vec<_> = svc.reals.iter().collect();
        reals.sort_by_key(|r| (r.address, r.port));
        for r in reals {
            let health = match (r.health_up, r.overloaded) {
                (false, _) => "DOWN",
                (true, true) => "OVERLD",
                (true, false) => "up",
            };
            let name = format!("  -> {}", SocketAddr::new(r.address, r.port));
            let _ = writeln!(
                out,
                "{:<40} {:<9} {:>6} {:<6} {} {:>7} {:>7}",
                clip(&name, 40),
                r.forward,
                r.weight,
                health,
                rates(&r.rates),
                human(f64::from(r.active)),
                human(f64::from(r.inactive))
            );
        }
    }
    out.push('\n');
    if s.drops.is_empty() {
        out.push_str("DROPS  none\n");
    } else {
        out.push_str("DROPS ");
        for (reason, n) in &s.drops {
            let _ = write!(out, " {reason} {}", human(*n as f64));
        }
        out.push('\n');
    }
    out
}

fn rates(r: &Rates) -> String {
    format!(
        "{:>7} {:>7} {:>7} {:>7} {:>7}",
        human(r.cps),
        human(r.inpps),
        human(r.outpps),
        human(r.inbps),
        human(r.outbps)
    )
}

/// 999, 1.2K, 34.5M, 1.0G: at most 6 characters.
pub fn human(v: f64) -> String {
    if !v.is_finite() || v <= 0.0 {
        return "0".into();
    }
    const UNITS: [(f64, &str); 4] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")];
    for (scale, unit) in UNITS {
        if v >= scale {
            return format!("{:.1}{unit}", v / scale);
        }
    }
    if v.fract() == 0.0 || v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Cuts to `n` characters, marking the cut.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_numbers() {
        assert_eq!(human(0.0), "0");
        assert_eq!(human(-3.0), "0");
        assert_eq!(human(f64::NAN), "0");
        assert_eq!(human(7.0), "7");
        assert_eq!(human(2.5), "2.5");
        assert_eq!(human(999.0), "999");
        assert_eq!(human(1234.0), "1.2K");
        assert_eq!(human(34_500_000.0), "34.5M");
        assert_eq!(human(1e9), "1.0G");
        assert_eq!(human(2.5e12), "2.5T");
    }

    #[test]
    fn clipping() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "ab…");
    }
}
