//! Running wrk and reading its output: the summary lines wrk always prints and the
//! percentile lines our `done()` hook prints (wrk's own `--latency` shows only four).

use serde::Serialize;

/// Percentiles the Lua hook prints (enough points for a latency CDF).
pub const PERCENTILES: [f64; 16] = [
    1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99,
];

/// wrk's `done(summary, latency, requests)` hook: one `pct P MICROS` line per percentile,
/// plus totals, on stdout after wrk's own report.
pub fn lua_script() -> String {
    let list: Vec<String> = PERCENTILES.iter().map(|p| p.to_string()).collect();
    format!(
        "done = function(summary, latency, requests)\n  for _, p in ipairs({{{}}}) do\n    io.write(string.format(\"pct %g %d\\n\", p, latency:percentile(p)))\n  end\n  io.write(string.format(\"lat_min %d\\nlat_max %d\\nlat_mean %f\\n\", latency.min, latency.max, latency.mean))\n  io.write(string.format(\"total_requests %d\\n\", summary.requests))\nend\n",
        list.join(", ")
    )
}

/// What one wrk run measured.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct WrkResult {
    pub requests: u64,
    pub requests_per_s: f64,
    pub latency_mean_us: f64,
    pub latency_max_us: f64,
    /// (percentile, microseconds), from the Lua hook.
    pub percentiles: Vec<(f64, f64)>,
    pub errors_connect: u64,
    pub errors_read: u64,
    pub errors_write: u64,
    pub errors_timeout: u64,
    pub non_2xx_3xx: u64,
}

impl WrkResult {
    /// Latency at percentile `p` (exact match among the printed ones).
    pub fn pct(&self, p: f64) -> Option<f64> {
        self.percentiles
            .iter()
            .find(|(q, _)| (q - p).abs() < 1e-9)
            .map(|&(_, v)| v)
    }

    pub fn errors(&self) -> u64 {
        self.errors_connect + self.errors_read + self.errors_write + self.errors_timeout
    }
}

/// `1.5ms` / `357.21us` / `2.00s` → microseconds.
fn duration_us(s: &str) -> Option<f64> {
    let (num, mult) = if let Some(v) = s.strip_suffix("us") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1e3)
    } else if let Some(v) = s.strip_suffix("m") {
        (v, 60e6)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * mult)
}

/// Parses wrk's report plus the hook's lines; fails if the rate line is missing.
pub fn parse(out: &str) -> anyhow::Result<WrkResult> {
    let mut r = WrkResult::default();
    let mut have_rate = false;
    for line in out.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["Requests/sec:", v] => {
                r.requests_per_s = v.parse()?;
                have_rate = true;
            }
            ["pct", p, v] => r.percentiles.push((p.parse()?, v.parse()?)),
            ["lat_max", v] => r.latency_max_us = v.parse()?,
            ["lat_mean", v] => r.latency_mean_us = v.parse()?,
            ["total_requests", v] => r.requests = v.parse()?,
            ["Latency", avg, _, max, ..] if r.latency_mean_us == 0.0 => {
                r.latency_mean_us = duration_us(avg).unwrap_or(0.0);
                r.latency_max_us = duration_us(max).unwrap_or(0.0);
            }
            ["Socket", "errors:", rest @ ..] => {
                // connect 0, read 0, write 0, timeout 0
                for pair in rest.chunks(2) {
                    if let [k, v] = pair {
                        let v: u64 = v.trim_end_matches(',').parse()?;
                        match *k {
                            "connect" => r.errors_connect = v,
                            "read" => r.errors_read = v,
                            "write" => r.errors_write = v,
                            "timeout" => r.errors_timeout = v,
                            _ => {}
                        }
                    }
                }
            }
            ["Non-2xx", "or", "3xx", "responses:", v] => r.non_2xx_3xx = v.parse()?,
            _ => {}
        }
    }
    if !have_rate {
        anyhow::bail!("wrk printed no Requests/sec line:\n{out}");
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "Running 5s test @ http://198.18.100.1/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   357.21us  120.50us   5.43ms   90.00%
    Req/Sec    136.35k     5.21k  143.95k    82.00%
  678512 requests in 5.00s, 100.36MB read
  Socket errors: connect 3, read 7, write 0, timeout 2
  Non-2xx or 3xx responses: 12
Requests/sec: 135673.43
Transfer/sec:     20.07MB
pct 50 340
pct 99 763
pct 99.9 1500
lat_min 40
lat_max 5430
lat_mean 357.210000
total_requests 678512
";

    #[test]
    fn parses_report_and_hook_lines() {
        let r = parse(OUT).unwrap();
        assert_eq!(r.requests_per_s, 135673.43);
        assert_eq!(r.requests, 678512);
        assert_eq!(r.pct(99.0), Some(763.0));
        assert_eq!(r.pct(99.9), Some(1500.0));
        assert_eq!(r.pct(75.0), None);
        assert_eq!(r.errors_connect, 3);
        assert_eq!(r.errors_read, 7);
        assert_eq!(r.errors_timeout, 2);
        assert_eq!(r.errors(), 12);
        assert_eq!(r.non_2xx_3xx, 12);
        assert_eq!(r.latency_max_us, 5430.0);
        assert!((r.latency_mean_us - 357.21).abs() < 1e-9);
    }

    #[test]
    fn latency_line_used_without_hook() {
        let r = parse("    Latency   1.50ms  1ms  2.00s  90%\nRequests/sec: 10\n").unwrap();
        assert_eq!(r.latency_mean_us, 1500.0);
        assert_eq!(r.latency_max_us, 2e6);
    }

    #[test]
    fn missing_rate_is_an_error() {
        assert!(parse("unable to connect to 198.18.100.1:80 Connection refused").is_err());
    }

    #[test]
    fn hook_lists_every_percentile() {
        let s = lua_script();
        assert!(s.contains("99.99") && s.contains("latency:percentile(p)"));
    }
}
