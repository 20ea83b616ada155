//! `uvs-bench synflood`'s figures: what one subject's run measured, and the Markdown
//! table of all of them.

use serde::Serialize;

use super::Subject;
use crate::http::wrk::WrkResult;

/// Counters of the subject's SYN defence over the flood phase (deltas).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Cookies {
    /// SYN-ACKs with a cookie sent (uvs), SYNs the kernel's synproxy answered (nft).
    pub sent: u64,
    /// ACKs whose cookie was valid: connections opened.
    pub accepted: u64,
    /// ACKs whose cookie was invalid or expired.
    pub refused: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Download {
    pub ok: bool,
    pub bytes: u64,
    pub seconds: f64,
    /// The sha256 matched one of the real servers' files.
    pub byte_exact: bool,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct FloodRun {
    pub subject: Option<Subject>,
    pub description: &'static str,
    /// SYNs the generator sent per second (its own count over its own time).
    pub flood_offered_pps: f64,
    pub flood_sent: u64,
    /// Most connection-table (uvs) or conntrack (nft) entries with a spoofed source seen
    /// at once, sampled every ~200 ms.
    pub max_spoofed_entries: u64,
    /// Most entries in all, same samples.
    pub max_entries: u64,
    pub samples: u64,
    /// (seconds since the flood started, spoofed entries, all entries) per sample.
    pub series: Vec<(f64, u64, u64)>,
    pub wrk_close: Option<WrkResult>,
    pub wrk_keepalive: Option<WrkResult>,
    /// Why a wrk run during the flood gave no figure (wrk prints no summary when not one
    /// connection was made).
    pub wrk_errors: Vec<String>,
    pub baseline_close: Option<WrkResult>,
    pub baseline_keepalive: Option<WrkResult>,
    pub download: Download,
    pub cookies: Cookies,
    /// Packets the dataplane dropped because the table was full (uvs).
    pub table_full_drops: u64,
    /// Packets to the spoofed sources that reached the client's link (the SYN-ACKs).
    pub to_spoofed: u64,
    pub loadavg: (String, String),
    pub error: Option<String>,
}

fn wrk_cell(w: &Option<WrkResult>) -> String {
    match w {
        Some(w) => format!(
            "{} requests, {:.0} req/s, {} failed",
            w.requests,
            w.requests_per_s,
            w.errors() + w.non_2xx_3xx
        ),
        None => "no connection made".into(),
    }
}

pub fn row(r: &FloodRun) -> String {
    let name = r.subject.map_or("?", |s| s.name());
    if let Some(e) = &r.error {
        return format!("| {name} | failed: {e} |||||||||");
    }
    let dl = if r.download.ok {
        format!(
            "{} B in {:.1} s, {}",
            r.download.bytes,
            r.download.seconds,
            if r.download.byte_exact {
                "byte-exact"
            } else {
                "**corrupt**"
            }
        )
    } else {
        format!(
            "failed after {:.1} s ({})",
            r.download.seconds,
            r.download.error.as_deref().unwrap_or("")
        )
    };
    format!(
        "| {name} | {:.3} | {} | {} | {} | {} | {} / {} | {} | {} / {} / {} | {} | {} |",
        r.flood_offered_pps / 1e6,
        r.max_spoofed_entries,
        r.max_entries,
        wrk_cell(&r.wrk_close),
        wrk_cell(&r.wrk_keepalive),
        r.baseline_close
            .as_ref()
            .map_or("-".into(), |w| format!("{:.0}", w.requests_per_s)),
        r.baseline_keepalive
            .as_ref()
            .map_or("-".into(), |w| format!("{:.0}", w.requests_per_s)),
        dl,
        r.cookies.sent,
        r.cookies.accepted,
        r.cookies.refused,
        r.table_full_drops,
        r.to_spoofed,
    )
}

pub fn markdown(runs: &[FloodRun]) -> String {
    let mut s = String::from(
        "| subject | flood Mpps offered | max spoofed entries | max entries | wrk close (flood) | wrk keep-alive (flood) | no-flood close / keep-alive req/s | download | cookies sent / accepted / refused | table-full drops | packets to spoofed sources |\n|---|---:|---:|---:|---|---|---|---|---|---:|---:|\n",
    );
    for r in runs {
        s.push_str(&row(r));
        s.push('\n');
    }
    s
}
