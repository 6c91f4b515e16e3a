//! A run's [`Timeline`] as one SVG picture (`--report-dir`): per adapter a role band, its score
//! line and its egress rate; fault markers; the data gap shaded; the takeover annotated. Axis in
//! seconds since the observation started. Plain SVG, no scripts, readable in any browser.

use std::fmt::Write as _;

use crate::observe::Timeline;

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 110.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 50.0;
const BAND: f64 = 16.0;
const SCORE_H: f64 = 60.0;
const RATE_H: f64 = 34.0;
const PANEL_GAP: f64 = 26.0;

/// A takeover to annotate: from the fault to the first point from the new Primary.
#[derive(Debug, Clone)]
pub struct TakeoverMark {
    /// Milliseconds since the observation started, at the fault.
    pub from_ms: f64,
    /// At the first point accepted from the new Primary.
    pub to_ms: f64,
}

/// Colour of a role band.
fn role_colour(role: &str) -> &'static str {
    match role {
        "Primary" => "#2e7d32",
        "Secondary" => "#1565c0",
        "Stale" => "#c62828",
        _ => "#9e9e9e",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the picture.
pub fn render(
    title: &str,
    adapters: &[String],
    timeline: &Timeline,
    takeover: Option<&TakeoverMark>,
) -> String {
    let samples = &timeline.samples;
    let end_ms = samples
        .last()
        .map(|s| s.at_ms)
        .into_iter()
        .chain(timeline.events.iter().map(|e| e.at_ms))
        .max()
        .unwrap_or(1000)
        .max(1000) as f64;
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |ms: f64| LEFT + ms.clamp(0.0, end_ms) / end_ms * plot_w;
    let panel_h = BAND + 4.0 + SCORE_H + 4.0 + RATE_H;
    let panels_h = adapters.len() as f64 * (panel_h + PANEL_GAP);
    let axis_y = TOP + panels_h;
    let faults: Vec<_> = timeline
        .events
        .iter()
        .filter(|e| e.kind == "fault")
        .collect();
    let height = axis_y + 40.0 + 16.0 * faults.len() as f64 + 10.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/><text x="{LEFT}" y="22" font-size="15" font-weight="bold">{}</text>"##,
        esc(title)
    );
    let _ = writeln!(
        out,
        r##"<text x="{LEFT}" y="38" fill="#555">role: <tspan fill="#2e7d32">■ Primary</tspan> <tspan fill="#1565c0">■ Secondary</tspan> <tspan fill="#c62828">■ Stale</tspan> <tspan fill="#9e9e9e">■ none</tspan> · line: score 0–100 · bars: points/s accepted from it · shaded: no data reaching the endpoint</text>"##
    );

    // The data gap: sample intervals in which the endpoint received nothing, after data began.
    let mut started = false;
    for w in samples.windows(2) {
        let grew = w[1].received > w[0].received;
        started |= w[0].received > 0;
        if started && !grew {
            let _ = writeln!(
                out,
                r##"<rect x="{:.1}" y="{TOP}" width="{:.1}" height="{panels_h:.1}" fill="#ffcdd2" opacity="0.55"/>"##,
                x(w[0].at_ms as f64),
                (x(w[1].at_ms as f64) - x(w[0].at_ms as f64)).max(0.5)
            );
        }
    }

    for (i, adapter) in adapters.iter().enumerate() {
        let y0 = TOP + i as f64 * (panel_h + PANEL_GAP);
        let _ = writeln!(
            out,
            r#"<text x="8" y="{:.1}" font-weight="bold">{}</text>"#,
            y0 + BAND - 3.0,
            esc(adapter)
        );
        // Role band.
        for w in samples.windows(2) {
            let role = w[0]
                .adapters
                .get(adapter)
                .map_or("None", |a| a.role.as_str());
            let _ = writeln!(
                out,
                r#"<rect x="{:.1}" y="{y0:.1}" width="{:.1}" height="{BAND}" fill="{}"><title>{} at {:.2} s</title></rect>"#,
                x(w[0].at_ms as f64),
                (x(w[1].at_ms as f64) - x(w[0].at_ms as f64)).max(0.5),
                role_colour(role),
                esc(role),
                w[0].at_ms as f64 / 1000.0
            );
        }
        // Score line.
        let sy0 = y0 + BAND + 4.0;
        let score_y = |score: u32| sy0 + SCORE_H - f64::from(score.min(100)) / 100.0 * SCORE_H;
        let _ = writeln!(
            out,
            r##"<rect x="{LEFT}" y="{sy0:.1}" width="{plot_w:.1}" height="{SCORE_H}" fill="none" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">score 100</text><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">0</text>"##,
            LEFT - 4.0,
            sy0 + 9.0,
            LEFT - 4.0,
            sy0 + SCORE_H
        );
        let points: Vec<String> = samples
            .iter()
            .filter_map(|s| {
                s.adapters
                    .get(adapter)
                    .map(|a| format!("{:.1},{:.1}", x(s.at_ms as f64), score_y(a.score)))
            })
            .collect();
        if !points.is_empty() {
            let _ = writeln!(
                out,
                r##"<polyline points="{}" fill="none" stroke="#6a1b9a" stroke-width="2"/>"##,
                points.join(" ")
            );
        }
        // Egress rate bars.
        let ry0 = sy0 + SCORE_H + 4.0;
        let rates: Vec<(f64, f64, f64)> = samples
            .windows(2)
            .filter_map(|w| {
                let a = w[0].adapters.get(adapter)?;
                let b = w[1].adapters.get(adapter)?;
                let dt = (w[1].at_ms - w[0].at_ms) as f64 / 1000.0;
                (dt > 0.0).then(|| {
                    (
                        w[0].at_ms as f64,
                        w[1].at_ms as f64,
                        b.accepted.saturating_sub(a.accepted) as f64 / dt,
                    )
                })
            })
            .collect();
        let max_rate = rates.iter().map(|r| r.2).fold(0.0, f64::max);
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">{:.0} pts/s</text>"##,
            LEFT - 4.0,
            ry0 + 10.0,
            max_rate
        );
        if max_rate > 0.0 {
            for (from, to, rate) in rates.iter().filter(|r| r.2 > 0.0) {
                let h = rate / max_rate * RATE_H;
                let _ = writeln!(
                    out,
                    r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#ef6c00" opacity="0.8"/>"##,
                    x(*from),
                    ry0 + RATE_H - h,
                    (x(*to) - x(*from)).max(0.5)
                );
            }
        }
    }

    // Axis, in seconds.
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT}" y1="{axis_y:.1}" x2="{:.1}" y2="{axis_y:.1}" stroke="#333"/>"##,
        WIDTH - RIGHT
    );
    let span_s = end_ms / 1000.0;
    let step = [1.0, 2.0, 5.0, 10.0, 30.0, 60.0]
        .into_iter()
        .find(|s| span_s / s <= 20.0)
        .unwrap_or(120.0);
    let mut t = 0.0;
    while t <= span_s + 1e-9 {
        let tx = x(t * 1000.0);
        let _ = writeln!(
            out,
            r##"<line x1="{tx:.1}" y1="{axis_y:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#333"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle">{t:.0} s</text>"##,
            axis_y + 4.0,
            axis_y + 16.0
        );
        t += step;
    }

    // Faults: a dashed line across every panel, numbered, with the words below the axis.
    for (n, f) in faults.iter().enumerate() {
        let fx = x(f.at_ms as f64);
        let _ = writeln!(
            out,
            r##"<line x1="{fx:.1}" y1="{TOP}" x2="{fx:.1}" y2="{axis_y:.1}" stroke="#b71c1c" stroke-dasharray="4 3"/><text x="{fx:.1}" y="{:.1}" fill="#b71c1c" text-anchor="middle" font-weight="bold">{}</text><text x="{LEFT}" y="{:.1}" fill="#b71c1c">{} at {:.2} s: {}</text>"##,
            TOP - 3.0,
            n + 1,
            axis_y + 34.0 + 16.0 * n as f64,
            n + 1,
            f.at_ms as f64 / 1000.0,
            esc(&f.text)
        );
    }

    if let Some(t) = takeover {
        let (x1, x2) = (x(t.from_ms), x(t.to_ms));
        let y = TOP + panels_h - 8.0;
        let _ = writeln!(
            out,
            r##"<line x1="{x1:.1}" y1="{y:.1}" x2="{x2:.1}" y2="{y:.1}" stroke="#000" stroke-width="2"/><line x1="{x2:.1}" y1="{:.1}" x2="{x2:.1}" y2="{:.1}" stroke="#000" stroke-width="2"/><text x="{:.1}" y="{:.1}" font-weight="bold">takeover {:.0} ms</text>"##,
            y - 5.0,
            y + 5.0,
            x2 + 4.0,
            y + 4.0,
            t.to_ms - t.from_ms
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::observe::{AdapterSample, Event, Sample};

    fn sample(at_ms: u64, a: (&str, u32, u64), b: (&str, u32, u64), received: u64) -> Sample {
        let mut adapters = BTreeMap::new();
        for (name, (role, score, accepted)) in [("adapter-a", a), ("adapter-b", b)] {
            adapters.insert(
                name.to_string(),
                AdapterSample {
                    role: role.into(),
                    score,
                    accepted,
                },
            );
        }
        Sample {
            at_ms,
            adapters,
            received,
            epoch: 1,
            fences: 1,
            writes: received,
            heartbeats: None,
        }
    }

    #[test]
    fn draws_roles_scores_faults_gap_and_takeover() {
        let t = Timeline {
            samples: vec![
                sample(0, ("Primary", 100, 0), ("Secondary", 100, 0), 0),
                sample(1000, ("Primary", 100, 80), ("Secondary", 100, 0), 80),
                sample(2000, ("Stale", 100, 80), ("Secondary", 100, 0), 80),
                sample(3000, ("Stale", 100, 80), ("Primary", 100, 90), 170),
                sample(4000, ("Stale", 100, 80), ("Primary", 100, 170), 250),
            ],
            events: vec![Event {
                at_ms: 1500,
                kind: "fault".into(),
                text: "SIGKILL adapter-a <the Primary>".into(),
            }],
            ..Timeline::default()
        };
        let adapters = vec!["adapter-a".to_string(), "adapter-b".to_string()];
        let svg = render(
            "Hot & failover",
            &adapters,
            &t,
            Some(&TakeoverMark {
                from_ms: 1500.0,
                to_ms: 2750.0,
            }),
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("Hot &amp; failover"));
        assert!(svg.contains("SIGKILL adapter-a &lt;the Primary&gt;"));
        assert!(svg.contains("takeover 1250 ms"));
        // Both adapters' role bands, in the role colours.
        assert!(svg.contains(role_colour("Stale")) && svg.contains(role_colour("Primary")));
        assert_eq!(svg.matches("<polyline").count(), 2);
        // One shaded interval: from 1 s to 2 s nothing reached the endpoint.
        assert_eq!(svg.matches("#ffcdd2").count(), 1);
        // Axis labels in seconds.
        assert!(svg.contains(">0 s<") && svg.contains(">4 s<"));
        // Well-formed enough for an XML reader: every tag closed.
        assert_eq!(svg.matches("<svg").count(), svg.matches("</svg>").count());
    }
}
