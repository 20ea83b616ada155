//! Hand-written SVG charts (grouped bars, lines) — small, dependency-free and
//! deterministic, so a report's files diff cleanly between runs.

use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 360.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 70.0;
const COLORS: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// A named series of values, one per category (`None` = missing).
pub struct BarSeries {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// A named series of (x, y) points.
pub struct LineSeries {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" upper bound and tick step for `max`.
fn nice_axis(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 0.2);
    }
    let mag = 10f64.powf(max.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if max <= m * mag {
            let top = m * mag;
            return (top, top / 5.0);
        }
    }
    (10.0 * mag, 2.0 * mag)
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn header(out: &mut String, title: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11"><rect width="{W}" height="{H}" fill="white"/><text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        W / 2.0,
        esc(title)
    );
}

fn legend(out: &mut String, names: &[&str]) {
    for (i, n) in names.iter().enumerate() {
        let y = TOP + 14.0 * i as f64;
        let _ = write!(
            out,
            r#"<rect x="{}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            W - RIGHT + 10.0,
            y,
            COLORS[i % COLORS.len()],
            W - RIGHT + 24.0,
            y + 9.0,
            esc(n)
        );
    }
}

/// Grouped vertical bars: one group per category, one bar per series.
pub fn bars(title: &str, y_label: &str, categories: &[String], series: &[BarSeries]) -> String {
    let mut out = String::new();
    header(&mut out, title);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b));
    let (top, step) = nice_axis(max);
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let y = |v: f64| TOP + ph * (1.0 - v / top);
    let mut t = 0.0;
    while t <= top + step / 2.0 {
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y0}" y2="{y0}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 4.0,
            y(t) + 4.0,
            fmt_num(t),
            y0 = y(t)
        );
        t += step;
    }
    let _ = write!(
        out,
        r#"<text transform="translate(16,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + ph / 2.0,
        esc(y_label)
    );
    let groups = categories.len().max(1) as f64;
    let gw = pw / groups;
    let bw = gw * 0.8 / series.len().max(1) as f64;
    for (c, cat) in categories.iter().enumerate() {
        let gx = LEFT + gw * c as f64 + gw * 0.1;
        for (k, s) in series.iter().enumerate() {
            if let Some(Some(v)) = s.values.get(c) {
                let _ = write!(
                    out,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                    gx + bw * k as f64,
                    y(*v),
                    bw * 0.95,
                    (TOP + ph - y(*v)).max(0.0),
                    COLORS[k % COLORS.len()],
                    esc(&s.name),
                    fmt_num(*v)
                );
            }
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="end" transform="rotate(-30 {:.1} {})">{}</text>"#,
            gx + gw * 0.4,
            TOP + ph + 14.0,
            gx + gw * 0.4,
            TOP + ph + 14.0,
            esc(cat)
        );
    }
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    legend(&mut out, &names);
    out.push_str("</svg>\n");
    out
}

/// Lines over a linear y axis and a linear or log10 x axis.
pub fn lines(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[LineSeries],
    x_log: bool,
) -> String {
    let mut out = String::new();
    header(&mut out, title);
    let pts = series.iter().flat_map(|s| s.points.iter());
    let fx = |x: f64| if x_log { x.max(1e-12).log10() } else { x };
    let (mut xmin, mut xmax, mut ymax) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for &(x, y) in pts {
        xmin = xmin.min(fx(x));
        xmax = xmax.max(fx(x));
        ymax = ymax.max(y);
    }
    if !xmin.is_finite() {
        (xmin, xmax) = (0.0, 1.0);
    }
    if x_log {
        xmin = xmin.floor();
        xmax = xmax.ceil().max(xmin + 1.0);
    } else if xmax <= xmin {
        xmax = xmin + 1.0;
    }
    let (top, step) = nice_axis(ymax);
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let px = |x: f64| LEFT + pw * (fx(x) - xmin) / (xmax - xmin);
    let py = |v: f64| TOP + ph * (1.0 - v / top);
    let mut t = 0.0;
    while t <= top + step / 2.0 {
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y0}" y2="{y0}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 4.0,
            py(t) + 4.0,
            fmt_num(t),
            y0 = py(t)
        );
        t += step;
    }
    let ticks: Vec<f64> = if x_log {
        (xmin as i32..=xmax as i32).map(|e| 10f64.powi(e)).collect()
    } else {
        (0..=5)
            .map(|i| xmin + (xmax - xmin) * i as f64 / 5.0)
            .collect()
    };
    for x in ticks {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            px(x),
            TOP + ph + 14.0,
            fmt_num(x)
        );
    }
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text><text transform="translate(16,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
        LEFT + pw / 2.0,
        H - 30.0,
        esc(x_label),
        TOP + ph / 2.0,
        esc(y_label)
    );
    for (k, s) in series.iter().enumerate() {
        let d: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            COLORS[k % COLORS.len()],
            d.join(" ")
        );
    }
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    legend(&mut out, &names);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axis_covers_the_maximum() {
        for m in [0.3, 1.0, 7.3, 12.0, 999.0, 135_000.0] {
            let (top, step) = nice_axis(m);
            assert!(top >= m && top < m * 10.0 + 1e-9, "{m} -> {top}");
            assert!((top / step - 5.0).abs() < 1e-9);
        }
    }

    #[test]
    fn bars_draw_one_rect_per_present_value_and_escape_names() {
        let s = bars(
            "t<1>",
            "Mpps",
            &["a".into(), "b".into()],
            &[
                BarSeries {
                    name: "x&y".into(),
                    values: vec![Some(1.0), None],
                },
                BarSeries {
                    name: "z".into(),
                    values: vec![Some(2.0), Some(0.5)],
                },
            ],
        );
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        assert_eq!(
            s.matches("<rect x=").count(),
            3 + 2,
            "3 bars + 2 legend swatches"
        );
        assert!(s.contains("t&lt;1&gt;") && s.contains("x&amp;y"));
    }

    #[test]
    fn log_lines_place_points_inside_the_plot() {
        let s = lines(
            "cdf",
            "us",
            "%",
            &[LineSeries {
                name: "a".into(),
                points: vec![(100.0, 1.0), (1000.0, 50.0), (20_000.0, 99.9)],
            }],
            true,
        );
        let pts = s
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        for p in pts.split(' ') {
            let (x, y): (f64, f64) = {
                let mut it = p.split(',').map(|v| v.parse::<f64>().unwrap());
                (it.next().unwrap(), it.next().unwrap())
            };
            assert!((LEFT..=W - RIGHT).contains(&x), "{x}");
            assert!((TOP..=H - BOTTOM).contains(&y), "{y}");
        }
    }
}
