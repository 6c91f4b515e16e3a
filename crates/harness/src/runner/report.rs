//! The results of a run of scenarios: a table for people, JUnit XML for CI.

use super::*;

/// The results as a table, ending with `N passed, M failed`.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut out = String::from("\n result  time     scenario\n");
    for o in outcomes {
        out.push_str(&format!(
            " {}  {:6.1}s  {}  {}{}\n",
            match (o.passed, &o.skipped) {
                (_, Some(_)) => "SKIP",
                (true, None) => "PASS",
                (false, None) => "FAIL",
            },
            o.seconds,
            o.file,
            o.name,
            o.skipped
                .as_ref()
                .map(|why| format!("\n                 {why}"))
                .unwrap_or_default()
        ));
    }
    let skipped = outcomes.iter().filter(|o| o.skipped.is_some()).count();
    let passed = outcomes.iter().filter(|o| o.passed).count();
    out.push_str(&format!(
        "\n{passed} passed, {} failed{}\n",
        outcomes.iter().filter(|o| o.failed()).count(),
        if skipped > 0 {
            format!(", {skipped} skipped (they run on another target)")
        } else {
            String::new()
        }
    ));
    out
}

/// The results as JUnit XML.
pub fn junit(outcomes: &[Outcome]) -> String {
    let failures = outcomes.iter().filter(|o| o.failed()).count();
    let skipped = outcomes.iter().filter(|o| o.skipped.is_some()).count();
    let time: f64 = outcomes.iter().map(|o| o.seconds).sum();
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"failover-lab\" tests=\"{}\" failures=\"{failures}\" time=\"{time:.3}\">\n  <testsuite name=\"scenarios\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">\n",
        outcomes.len(),
        outcomes.len()
    );
    for o in outcomes {
        x.push_str(&format!(
            "    <testcase classname=\"scenarios\" name=\"{}\" file=\"{}\" time=\"{:.3}\">\n",
            crate::xml::escape(&format!("{}: {}", o.file, o.name)),
            crate::xml::escape(&o.file),
            o.seconds
        ));
        if let Some(why) = &o.skipped {
            x.push_str(&format!(
                "      <skipped message=\"{}\"/>\n",
                crate::xml::escape(why)
            ));
        }
        if let Some(f) = &o.failure {
            x.push_str(&format!(
                "      <failure message=\"{}\" type=\"ScenarioFailed\">{}</failure>\n",
                crate::xml::escape(&f.message),
                crate::xml::escape(&o.failure_text())
            ));
        }
        x.push_str("    </testcase>\n");
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_escapes_and_counts() {
        let o = Outcome {
            file: "a.toml".into(),
            name: "x <y> & \"z\"".into(),
            passed: false,
            skipped: None,
            seconds: 1.5,
            steps: 2,
            steps_passed: 1,
            seed: 1,
            audit: None,
            failure: Some(Failure {
                step: 2,
                line: 9,
                action: "expect".into(),
                note: None,
                message: "expected 0, got 5 <bad>".into(),
                timeline: vec!["1.00s a".into()],
            }),
        };
        let skipped = Outcome {
            file: "b.toml".into(),
            name: "b".into(),
            passed: false,
            skipped: Some("cannot run on --target sim: cluster.tls".into()),
            failure: None,
            ..o.clone()
        };
        assert!(o.failed() && !skipped.failed() && !skipped.passed);
        let x = junit(&[o.clone(), skipped.clone()]);
        assert!(x.contains("tests=\"2\" failures=\"1\""));
        assert!(x.contains("skipped=\"1\""));
        assert!(x.contains("<skipped message=\"cannot run on --target sim: cluster.tls\"/>"));
        assert!(x.contains("x &lt;y&gt; &amp; &quot;z&quot;"));
        assert!(x.contains("expected 0, got 5 &lt;bad&gt;"));
        assert!(!x.contains("<bad>"));
        let t = table(&[o, skipped]);
        assert!(t.contains(" SKIP "), "{t}");
        assert!(
            t.contains("0 passed, 1 failed, 1 skipped (they run on another target)"),
            "{t}"
        );
    }
}
