//! Recordings: a run's timeline as JSON lines, written with `--report-dir` by every scenario
//! (on any stage) and by the demo, and read back for `failover-lab replay` and for the run's
//! SVG picture, which is drawn from the recording as read back.
//!
//! The first line is a header; each later line is one item, in time order:
//!
//! ```text
//! {"recording":1,"title":"...","adapters":["adapter-a","adapter-b"],"mode":"Hot","failover_timeout_ms":2000}
//! {"at_ms":40,"status":{"primary":"adapter-a","epoch":1,"adapters":[["adapter-a","Primary",100]], ...}}
//! {"at_ms":250,"sample":{"received":8,"epoch":1,"adapters":{"adapter-a":{"role":"Primary","score":100,"accepted":8}}, ...}}
//! {"at_ms":2100,"event":{"kind":"fault","text":"SIGKILL adapter-a"}}
//! ```
//!
//! The last line may hold the run's data coverage, read from the endpoint at its end:
//! `{"at_ms":9800,"coverage":[{"from_ms":120.0,"to_ms":2100.0,"first_seq":1,"last_seq":20,"adapter":"adapter-a","late":false}, ...]}`.
//!
//! `status` is the failover service's view at each change (roles, scores, epoch), `sample` the
//! pair every 250 ms (points received and accepted from each adapter), `event` a line of the
//! story (faults, recoveries, roles, scores, staleness, the service's notes). Times are
//! milliseconds since the observation began (simulated time on `--target sim`).

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::observe::{CoverageSpan, Event, Sample, StatusPoint, Timeline};

/// The format's version, in the header.
pub const VERSION: u32 = 1;

/// The first line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// The format's version ([`VERSION`]).
    pub recording: u32,
    /// What was run.
    pub title: String,
    /// The adapters, in configuration order.
    pub adapters: Vec<String>,
    /// Hot, Warm or Cold.
    pub mode: String,
    /// The group's failoverTimeout.
    pub failover_timeout_ms: u64,
}

/// One later line.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Item {
    at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    status: Option<StatusPoint>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    sample: Option<Sample>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    event: Option<EventItem>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    coverage: Option<Vec<CoverageSpan>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EventItem {
    kind: String,
    text: String,
}

/// The recording of `timeline` as text (JSON lines).
pub fn to_text(header: &Header, timeline: &Timeline) -> String {
    let mut items: Vec<(u64, u8, Item)> = Vec::new();
    for p in &timeline.history {
        items.push((
            p.at_ms,
            0,
            Item {
                at_ms: p.at_ms,
                status: Some(p.clone()),
                sample: None,
                event: None,
                coverage: None,
            },
        ));
    }
    for e in &timeline.events {
        items.push((
            e.at_ms,
            1,
            Item {
                at_ms: e.at_ms,
                status: None,
                sample: None,
                event: Some(EventItem {
                    kind: e.kind.clone(),
                    text: e.text.clone(),
                }),
                coverage: None,
            },
        ));
    }
    for s in &timeline.samples {
        items.push((
            s.at_ms,
            2,
            Item {
                at_ms: s.at_ms,
                status: None,
                sample: Some(s.clone()),
                event: None,
                coverage: None,
            },
        ));
    }
    // Time order; at one moment the view first, then the story, then the sample. The sort is
    // stable, so items of one kind keep their order.
    items.sort_by_key(|(at, kind, _)| (*at, *kind));
    let mut out = serde_json::to_string(header).unwrap_or_default();
    out.push('\n');
    let last = items.last().map_or(0, |(at, _, _)| *at);
    for (_, _, item) in items {
        out.push_str(&serde_json::to_string(&item).unwrap_or_default());
        out.push('\n');
    }
    if !timeline.coverage.is_empty() {
        let item = Item {
            at_ms: last,
            status: None,
            sample: None,
            event: None,
            coverage: Some(timeline.coverage.clone()),
        };
        out.push_str(&serde_json::to_string(&item).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// Reads a recording's text back: its header and the timeline it holds.
pub fn from_text(text: &str) -> anyhow::Result<(Header, Timeline)> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, first) = lines.next().context("an empty file: no recording header")?;
    let header: Header = serde_json::from_str(first)
        .context("line 1 is not a recording header ({\"recording\":1,...})")?;
    if header.recording != VERSION {
        anyhow::bail!(
            "recording format {} is not known; this failover-lab reads format {VERSION}",
            header.recording
        );
    }
    let mut t = Timeline::default();
    for (i, line) in lines {
        let item: Item = serde_json::from_str(line)
            .with_context(|| format!("line {}: not a recording item", i + 1))?;
        if let Some(p) = item.status {
            t.max_epoch = t.max_epoch.max(p.epoch);
            t.history.push(p);
        }
        if let Some(s) = item.sample {
            t.samples.push(s);
        }
        if let Some(c) = item.coverage {
            t.coverage = c;
        }
        if let Some(e) = item.event {
            t.events.push(Event {
                at_ms: item.at_ms,
                kind: e.kind,
                text: e.text,
            });
        }
    }
    t.connected = !t.history.is_empty();
    Ok((header, t))
}

/// Reads a recording file.
pub fn read(path: &Path) -> anyhow::Result<(Header, Timeline)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the recording {}", path.display()))?;
    from_text(&text).with_context(|| path.display().to_string())
}

/// The recording as one JSON document (the replay page's `/recording`): the header and every
/// item in time order.
pub fn to_json(header: &Header, timeline: &Timeline) -> serde_json::Value {
    let items: Vec<serde_json::Value> = to_text(header, timeline)
        .lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    serde_json::json!({ "header": header, "items": items })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::observe::AdapterSample;

    fn timeline() -> Timeline {
        let mut adapters = BTreeMap::new();
        adapters.insert(
            "adapter-a".to_string(),
            AdapterSample {
                role: "Primary".into(),
                score: 100,
                accepted: 8,
            },
        );
        Timeline {
            history: vec![StatusPoint {
                at_ms: 40,
                service_us: 7,
                primary: Some("adapter-a".into()),
                epoch: 1,
                adapters: vec![("adapter-a".into(), "Primary".into(), 100)],
                exists: true,
                promotions: 1,
                requested_promotions: 0,
            }],
            samples: vec![Sample {
                at_ms: 250,
                adapters,
                received: 8,
                epoch: 1,
                fences: 1,
                writes: 1,
                heartbeats: Some(3),
            }],
            events: vec![Event {
                at_ms: 2100,
                kind: "fault".into(),
                text: "SIGKILL adapter-a".into(),
            }],
            ..Timeline::default()
        }
    }

    fn header() -> Header {
        Header {
            recording: VERSION,
            title: "t".into(),
            adapters: vec!["adapter-a".into()],
            mode: "Hot".into(),
            failover_timeout_ms: 2000,
        }
    }

    #[test]
    fn a_recording_reads_back_as_the_timeline_it_was_written_from() {
        let text = to_text(&header(), &timeline());
        assert_eq!(text.lines().count(), 4, "{text}");
        let (h, t) = from_text(&text).expect("reads back");
        assert_eq!(h, header());
        let want = timeline();
        assert_eq!(t.history, want.history);
        assert_eq!(t.samples, want.samples);
        assert_eq!(t.events, want.events);
        // The same picture from the recording as from the run.
        assert_eq!(
            crate::timeline_svg::render("t", &h.adapters, &t, None),
            crate::timeline_svg::render("t", &h.adapters, &want, None)
        );
    }

    #[test]
    fn a_bad_recording_is_refused_naming_the_line() {
        let e = from_text("").expect_err("empty");
        assert!(e.to_string().contains("no recording header"), "{e:#}");
        let e = from_text("{\"recording\":9,\"title\":\"\",\"adapters\":[],\"mode\":\"Hot\",\"failover_timeout_ms\":1}")
            .expect_err("a later format");
        assert!(format!("{e:#}").contains("format 9 is not known"), "{e:#}");
        let text = format!(
            "{}\nnot json\n",
            serde_json::to_string(&header()).unwrap_or_default()
        );
        let e = from_text(&text).expect_err("bad item");
        assert!(format!("{e:#}").contains("line 2"), "{e:#}");
    }
}
