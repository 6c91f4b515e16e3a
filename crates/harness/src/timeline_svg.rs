//! A run's [`Timeline`] as one SVG picture (`--report-dir`): per adapter a role band (drawn at
//! the moments the failover service reported each change, with the epoch of each promotion), its
//! score line and its egress rate (one scale for every adapter, a flush spike clipped and
//! labelled); faults in red and recoveries and other steps in green; the data gap shaded; the
//! takeover annotated. Axis in seconds since the observation started. Plain SVG, no scripts,
//! readable in any browser.

use std::fmt::Write as _;

use crate::{observe::Timeline, xml};

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 110.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 64.0;
/// Characters of a title line before it wraps.
const TITLE_CHARS: usize = 100;
const BAND: f64 = 16.0;
const SCORE_H: f64 = 60.0;
const RATE_H: f64 = 34.0;
const PANEL_GAP: f64 = 26.0;
/// Height of the data coverage strip.
const COVER_H: f64 = 22.0;
/// Each adapter's colour in the coverage strip, in configuration order.
const ADAPTER_COLOURS: [&str; 4] = ["#6a1b9a", "#00838f", "#5d4037", "#ef6c00"];

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

/// `text` in lines of at most `width` characters, broken between words.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
}

/// The middle of the non-zero values (0 when there is none).
fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| *v > 0.0);
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// One adapter's role from `from_ms` until the next change, as the failover service reported it.
struct RoleSpan<'a> {
    from_ms: f64,
    to_ms: f64,
    role: &'a str,
    score: u32,
    epoch: u64,
}

/// An adapter's roles over the run: from the service's reported changes (the exact moments), or
/// from the samples when the timeline holds no changes.
fn role_spans<'a>(timeline: &'a Timeline, adapter: &str, end_ms: f64) -> Vec<RoleSpan<'a>> {
    let h = &timeline.history;
    if !h.is_empty() {
        return h
            .iter()
            .enumerate()
            .map(|(k, p)| {
                let found = p.adapters.iter().find(|(a, _, _)| a == adapter);
                RoleSpan {
                    from_ms: p.at_ms as f64,
                    to_ms: h.get(k + 1).map_or(end_ms, |n| n.at_ms as f64),
                    role: found.map_or("None", |(_, r, _)| r.as_str()),
                    score: found.map_or(0, |(_, _, s)| *s),
                    epoch: p.epoch,
                }
            })
            .collect();
    }
    let s = &timeline.samples;
    s.iter()
        .enumerate()
        .filter_map(|(k, p)| {
            let a = p.adapters.get(adapter)?;
            Some(RoleSpan {
                from_ms: p.at_ms as f64,
                to_ms: s.get(k + 1).map_or(end_ms, |n| n.at_ms as f64),
                role: a.role.as_str(),
                score: a.score,
                epoch: p.epoch,
            })
        })
        .collect()
}

/// The data coverage strip: each source tick placed at its data time, coloured by the adapter
/// whose point reached the endpoint first (pale when it arrived a second or more late: flushed
/// after a takeover), and the ticks nobody delivered boxed in red with their number.
fn draw_coverage(
    out: &mut String,
    timeline: &Timeline,
    adapters: &[String],
    y0: f64,
    x: &dyn Fn(f64) -> f64,
) {
    let colour = |adapter: &str| {
        adapters
            .iter()
            .position(|a| a == adapter)
            .map_or("#9e9e9e", |i| ADAPTER_COLOURS[i % ADAPTER_COLOURS.len()])
    };
    let names: Vec<String> = adapters
        .iter()
        .map(|a| {
            format!(
                r#"<tspan fill="{}">■ {}</tspan>"#,
                colour(a),
                xml::escape(a)
            )
        })
        .collect();
    let _ = writeln!(
        out,
        r##"<text x="8" y="{:.1}" font-weight="bold">data coverage</text><text x="{LEFT}" y="{:.1}" fill="#555">each source tick at its data time, by who delivered it: {} · pale: arrived late (flushed) · <tspan fill="#c62828">red box: delivered by nobody (lost)</tspan></text>"##,
        y0 + 12.0 + 16.0,
        y0 + 12.0,
        names.join(" ")
    );
    let strip = y0 + 16.0;
    let mut spans: Vec<&crate::observe::CoverageSpan> = timeline.coverage.iter().collect();
    spans.sort_by_key(|s| s.first_seq);
    for s in &spans {
        let (x1, x2) = (x(s.from_ms), x(s.to_ms));
        let _ = writeln!(
            out,
            r#"<rect x="{x1:.1}" y="{strip:.1}" width="{:.1}" height="{COVER_H}" fill="{}" opacity="{}"><title>ticks {}-{} from {}{}</title></rect>"#,
            (x2 - x1).max(1.0),
            colour(&s.adapter),
            if s.late { 0.35 } else { 0.9 },
            s.first_seq,
            s.last_seq,
            xml::escape(&s.adapter),
            if s.late { ", late" } else { "" }
        );
        if s.late && x2 - x1 > 30.0 {
            let _ = writeln!(
                out,
                r##"<text x="{:.1}" y="{:.1}" fill="#000" text-anchor="middle">late</text>"##,
                (x1 + x2) / 2.0,
                strip + COVER_H - 7.0
            );
        }
    }
    for w in spans.windows(2) {
        let missing = w[1].first_seq.saturating_sub(w[0].last_seq + 1);
        if missing == 0 {
            continue;
        }
        let (x1, x2) = (x(w[0].to_ms), x(w[1].from_ms));
        let _ = writeln!(
            out,
            r##"<rect x="{x1:.1}" y="{strip:.1}" width="{:.1}" height="{COVER_H}" fill="none" stroke="#c62828" stroke-width="1.5"/><text x="{:.1}" y="{:.1}" fill="#c62828" text-anchor="middle" font-weight="bold">hole: {missing} ticks</text>"##,
            (x2 - x1).max(1.0),
            (x1 + x2) / 2.0,
            strip + COVER_H - 7.0
        );
    }
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
    let title_lines = wrap(title, TITLE_CHARS);
    let extra = 18.0 * (title_lines.len() as f64 - 1.0);
    let top = TOP + extra;
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |ms: f64| LEFT + ms.clamp(0.0, end_ms) / end_ms * plot_w;
    let panel_h = BAND + 4.0 + SCORE_H + 4.0 + RATE_H;
    let panels_h = adapters.len() as f64 * (panel_h + PANEL_GAP);
    // The data coverage strip, when the run has one, between the panels and the axis.
    let cover_y = top + panels_h;
    let has_coverage = !timeline.coverage.is_empty();
    let axis_y = if has_coverage {
        cover_y + 16.0 + COVER_H + 6.0
    } else {
        cover_y
    };
    // Faults (red) and the steps that heal or change things (green), numbered in time order.
    let marks: Vec<_> = timeline
        .events
        .iter()
        .filter(|e| e.kind == "fault" || e.kind == "step")
        .collect();
    let faults = &marks;
    let height = axis_y + 40.0 + 16.0 * faults.len() as f64 + 10.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    for (k, line) in title_lines.iter().enumerate() {
        let _ = writeln!(
            out,
            r##"<text x="8" y="{:.0}" font-size="15" font-weight="bold">{}</text>"##,
            22.0 + 18.0 * k as f64,
            xml::escape(line)
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="8" y="{:.0}" fill="#555">role: <tspan fill="#2e7d32">■ Primary</tspan> (e2: promoted at epoch 2) <tspan fill="#1565c0">■ Secondary</tspan> <tspan fill="#c62828">■ Stale</tspan> <tspan fill="#9e9e9e">■ none</tspan> · line: score 0–100 · bars: points/s accepted from it (▲ a spike above the scale)</text><text x="8" y="{:.0}" fill="#555">shaded: no data reaching the endpoint · <tspan fill="#b71c1c">- - faults</tspan> · <tspan fill="#2e7d32">- - recoveries and other steps</tspan></text>"##,
        38.0 + extra,
        52.0 + extra
    );

    // The data gap: sample intervals in which the endpoint received nothing, after data began.
    let mut started = false;
    for w in samples.windows(2) {
        let grew = w[1].received > w[0].received;
        started |= w[0].received > 0;
        if started && !grew {
            let _ = writeln!(
                out,
                r##"<rect x="{:.1}" y="{top}" width="{:.1}" height="{panels_h:.1}" fill="#ffcdd2" opacity="0.55"/>"##,
                x(w[0].at_ms as f64),
                (x(w[1].at_ms as f64) - x(w[0].at_ms as f64)).max(0.5)
            );
        }
    }

    // Egress rates, one scale for every adapter: twice the usual rate, so a flush spike does not
    // flatten normal egress (the spike is clipped and labelled).
    let rates_of = |adapter: &str| -> Vec<(f64, f64, f64)> {
        samples
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
            .collect()
    };
    let rate_scale = 2.0
        * median(
            adapters
                .iter()
                .flat_map(|a| rates_of(a))
                .map(|r| r.2)
                .collect(),
        );
    for (i, adapter) in adapters.iter().enumerate() {
        let y0 = top + i as f64 * (panel_h + PANEL_GAP);
        let _ = writeln!(
            out,
            r#"<text x="8" y="{:.1}" font-weight="bold">{}</text>"#,
            y0 + BAND - 3.0,
            xml::escape(adapter)
        );
        // Role band, at the moments the service reported each change; a promotion's epoch on it.
        let spans = role_spans(timeline, adapter, end_ms);
        let mut was_primary_at = None;
        // Drawn after the band, so no later piece of it covers them.
        let mut epoch_labels = Vec::new();
        for span in &spans {
            let _ = writeln!(
                out,
                r#"<rect x="{:.1}" y="{y0:.1}" width="{:.1}" height="{BAND}" fill="{}"><title>{} at {:.2} s (epoch {})</title></rect>"#,
                x(span.from_ms),
                (x(span.to_ms) - x(span.from_ms)).max(0.5),
                role_colour(span.role),
                xml::escape(span.role),
                span.from_ms / 1000.0,
                span.epoch
            );
            let primary_at = (span.role == "Primary").then_some(span.epoch);
            if primary_at.is_some() && primary_at != was_primary_at {
                epoch_labels.push(format!(
                    r##"<text x="{:.1}" y="{:.1}" fill="#ffffff" font-weight="bold">e{}</text>"##,
                    x(span.from_ms) + 2.0,
                    y0 + BAND - 4.0,
                    span.epoch
                ));
            }
            was_primary_at = primary_at;
        }
        for label in epoch_labels {
            let _ = writeln!(out, "{label}");
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
        // A step line: each score holds until the next change.
        let points: Vec<String> = spans
            .iter()
            .filter(|s| s.role != "None")
            .flat_map(|s| {
                [
                    format!("{:.1},{:.1}", x(s.from_ms), score_y(s.score)),
                    format!("{:.1},{:.1}", x(s.to_ms), score_y(s.score)),
                ]
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
        let rates = rates_of(adapter);
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">{:.0} pts/s</text>"##,
            LEFT - 4.0,
            ry0 + 10.0,
            rate_scale
        );
        if rate_scale > 0.0 {
            for (from, to, rate) in rates.iter().filter(|r| r.2 > 0.0) {
                let h = (rate / rate_scale).min(1.0) * RATE_H;
                let _ = writeln!(
                    out,
                    r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#ef6c00" opacity="0.8"><title>{rate:.0} points/s</title></rect>"##,
                    x(*from),
                    ry0 + RATE_H - h,
                    (x(*to) - x(*from)).max(0.5)
                );
                // A spike above the scale (a flush) is clipped, and says how high it went.
                if *rate > rate_scale {
                    let _ = writeln!(
                        out,
                        r##"<text x="{:.1}" y="{:.1}" fill="#ef6c00" font-weight="bold">▲ {rate:.0}</text>"##,
                        x(*from),
                        ry0 - 1.0
                    );
                }
            }
        }
    }

    if has_coverage {
        draw_coverage(&mut out, timeline, adapters, cover_y, &x);
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

    // Faults (red) and recoveries and other steps (green): a dashed line across every panel,
    // numbered, with the words below the axis.
    for (n, f) in faults.iter().enumerate() {
        let fx = x(f.at_ms as f64);
        let colour = if f.kind == "fault" {
            "#b71c1c"
        } else {
            "#2e7d32"
        };
        let _ = writeln!(
            out,
            r##"<line x1="{fx:.1}" y1="{top}" x2="{fx:.1}" y2="{axis_y:.1}" stroke="{colour}" stroke-dasharray="4 3"/><text x="{fx:.1}" y="{:.1}" fill="{colour}" text-anchor="middle" font-weight="bold">{}</text><text x="{LEFT}" y="{:.1}" fill="{colour}">{} at {:.2} s: {}</text>"##,
            top - 3.0,
            n + 1,
            axis_y + 34.0 + 16.0 * n as f64,
            n + 1,
            f.at_ms as f64 / 1000.0,
            xml::escape(&f.text)
        );
    }

    if let Some(t) = takeover {
        let (x1, x2) = (x(t.from_ms), x(t.to_ms));
        let y = top + panels_h - 8.0;
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

    fn point(at_ms: u64, epoch: u64, a: &str, b: &str) -> crate::observe::StatusPoint {
        crate::observe::StatusPoint {
            at_ms,
            service_us: 0,
            primary: [("adapter-a", a), ("adapter-b", b)]
                .iter()
                .find(|(_, r)| *r == "Primary")
                .map(|(n, _)| (*n).to_string()),
            epoch,
            adapters: vec![
                ("adapter-a".into(), a.into(), 100),
                ("adapter-b".into(), b.into(), 100),
            ],
            exists: true,
            promotions: epoch,
            requested_promotions: 0,
        }
    }

    /// The defects a learner was misled by: the role band lagging the flush by a sample, no
    /// epochs, recoveries not marked, a flush spike flattening normal egress, a long title cut.
    #[test]
    fn roles_at_their_moments_epochs_recoveries_one_scale_and_a_wrapped_title() {
        let t = Timeline {
            samples: vec![
                sample(0, ("Primary", 100, 0), ("Secondary", 100, 0), 0),
                sample(1000, ("Primary", 100, 80), ("Secondary", 100, 0), 80),
                sample(2000, ("Primary", 100, 160), ("Secondary", 100, 0), 160),
                // adapter-b's flush: 2000 points in a second, then 80 a second.
                sample(3000, ("Stale", 100, 160), ("Primary", 100, 2000), 2160),
                sample(4000, ("Stale", 100, 160), ("Primary", 100, 2080), 2240),
                sample(5000, ("Secondary", 100, 160), ("Primary", 100, 2160), 2320),
            ],
            history: vec![
                point(0, 1, "Primary", "Secondary"),
                // Promoted at 2.40 s: between two samples.
                point(2400, 2, "Stale", "Primary"),
                point(4600, 2, "Secondary", "Primary"),
            ],
            events: vec![
                Event {
                    at_ms: 2100,
                    kind: "fault".into(),
                    text: "pause (SIGSTOP) adapter-a".into(),
                },
                Event {
                    at_ms: 4500,
                    kind: "step".into(),
                    text: "resume (SIGCONT) adapter-a".into(),
                },
            ],
            ..Timeline::default()
        };
        let adapters = vec!["adapter-a".to_string(), "adapter-b".to_string()];
        let title = "Hot: the Primary is paused, and resumed after the takeover: the old Primary is fenced and rejoins as Secondary (Hot mode, failoverTimeout 00:00:02): passed";
        let svg = render(title, &adapters, &t, None);
        // The title is wrapped, not cut: every word is there, over two lines.
        assert!(
            svg.contains(">(Hot mode, failoverTimeout 00:00:02): passed<")
                || svg.contains("passed</text>"),
            "{svg}"
        );
        assert_eq!(svg.matches("font-size=\"15\"").count(), 2, "{svg}");
        // adapter-b's Primary band starts at 2.40 s, where the service promoted it.
        let x = LEFT + 2400.0 / 5000.0 * (WIDTH - LEFT - RIGHT);
        assert!(
            svg.contains(&format!("<rect x=\"{x:.1}\""))
                && svg.contains("Primary at 2.40 s (epoch 2)"),
            "{svg}"
        );
        // Each promotion's epoch on the band.
        assert!(svg.contains(">e1<") && svg.contains(">e2<"), "{svg}");
        // The resume is marked, in the recoveries' green.
        assert!(svg.contains("resume (SIGCONT) adapter-a"), "{svg}");
        assert!(svg.contains("stroke=\"#2e7d32\" stroke-dasharray"), "{svg}");
        // One scale for both adapters, twice the usual 80 points/s: the flush is clipped and
        // labelled, and normal egress keeps half the bar height.
        assert!(svg.contains(">160 pts/s<"), "{svg}");
        assert!(svg.contains("▲ 2000"), "{svg}");
        assert!(
            svg.contains(&format!("height=\"{:.1}\" fill=\"#ef6c00\"", RATE_H / 2.0)),
            "{svg}"
        );
    }

    #[test]
    fn coverage_shows_who_delivered_late_flushes_and_holes() {
        let span = |from: f64, to: f64, first: u64, last: u64, who: &str, late: bool| {
            crate::observe::CoverageSpan {
                from_ms: from,
                to_ms: to,
                first_seq: first,
                last_seq: last,
                adapter: who.into(),
                late,
            }
        };
        let t = Timeline {
            samples: vec![
                sample(0, ("Primary", 100, 0), ("Secondary", 100, 0), 0),
                sample(5000, ("Stale", 100, 20), ("Primary", 100, 30), 50),
            ],
            coverage: vec![
                span(0.0, 1900.0, 0, 19, "adapter-a", false),
                // Hot: the Secondary's buffer fills what the Primary had not written, late.
                span(2000.0, 2900.0, 20, 29, "adapter-b", true),
                span(3000.0, 3900.0, 30, 39, "adapter-b", false),
                // Warm or Cold: a hole nobody filled.
                span(4500.0, 4900.0, 45, 49, "adapter-b", false),
            ],
            ..Timeline::default()
        };
        let adapters = vec!["adapter-a".to_string(), "adapter-b".to_string()];
        let svg = render("coverage", &adapters, &t, None);
        assert!(svg.contains(">data coverage<"), "{svg}");
        assert!(svg.contains("ticks 20-29 from adapter-b, late"), "{svg}");
        assert!(svg.contains(">late<"), "{svg}");
        assert_eq!(svg.matches("hole: ").count(), 1, "{svg}");
        assert!(svg.contains("hole: 5 ticks"), "{svg}");
        // Without coverage, no strip.
        let plain = render(
            "x",
            &adapters,
            &Timeline {
                coverage: vec![],
                ..t
            },
            None,
        );
        assert!(!plain.contains("data coverage"));
    }

    #[test]
    fn titles_wrap_between_words() {
        assert_eq!(wrap("a bb ccc", 4), vec!["a bb", "ccc"]);
        assert_eq!(wrap("", 10), vec![String::new()]);
        assert_eq!(
            wrap("averyveryverylongword x", 5),
            vec!["averyveryverylongword", "x"]
        );
    }
}
