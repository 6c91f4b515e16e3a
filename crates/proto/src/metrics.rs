//! Prometheus text exposition (format 0.0.4), written by hand: every server's `/metrics` is a
//! few gauges and counters taken from its state at the moment of the scrape.

use std::fmt::Write as _;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metrics page being written.
#[derive(Debug, Default)]
pub struct Metrics {
    out: String,
    declared: Vec<String>,
}

/// A metric's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Goes up and down.
    Gauge,
    /// Only goes up (a `_total`).
    Counter,
}

impl Metrics {
    /// An empty page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sample; the `# HELP` and `# TYPE` lines come before a metric's first sample.
    pub fn sample(
        &mut self,
        kind: Kind,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        if !self.declared.iter().any(|d| d == name) {
            self.declared.push(name.to_string());
            let kind = match kind {
                Kind::Gauge => "gauge",
                Kind::Counter => "counter",
            };
            let _ = writeln!(self.out, "# HELP {name} {help}");
            let _ = writeln!(self.out, "# TYPE {name} {kind}");
        }
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", format_value(value));
    }

    /// A gauge sample.
    pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.sample(Kind::Gauge, name, help, labels, value);
    }

    /// A counter sample.
    pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: u64) {
        self.sample(Kind::Counter, name, help, labels, value as f64);
    }

    /// The page.
    pub fn finish(self) -> String {
        self.out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_text_format() {
        let mut m = Metrics::new();
        m.gauge("x_score", "The score.", &[("adapter", "a\"b")], 75.0);
        m.gauge("x_score", "The score.", &[("adapter", "c")], 0.5);
        m.counter("x_total", "Things.", &[], 3);
        assert_eq!(
            m.finish(),
            "# HELP x_score The score.\n# TYPE x_score gauge\nx_score{adapter=\"a\\\"b\"} 75\n\
             x_score{adapter=\"c\"} 0.5\n# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\n"
        );
    }
}
