//! Every relative link in the project's documents resolves: the file exists, and a `#fragment`
//! names one of its headings (GitHub's anchors); and nothing cites a document outside the
//! repository.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// README.md, BENCHMARKS.md, docs/*.md and scenarios/README.md.
fn documents() -> Vec<PathBuf> {
    let root = root();
    let mut docs = vec![
        root.join("README.md"),
        root.join("BENCHMARKS.md"),
        root.join("scenarios/README.md"),
    ];
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("a docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    docs.extend(pages);
    docs
}

/// The text outside fenced code blocks (links in code are examples, not links).
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// GitHub's anchor of a heading: lower case, spaces to '-', punctuation other than '-' and '_'
/// dropped; a repeated heading gets -1, -2, ...
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for line in prose(text).lines() {
        let Some(title) = line.strip_prefix('#') else {
            continue;
        };
        let title = title.trim_start_matches('#').trim();
        let base: String = title
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let mut anchor = base.clone();
        let mut n = 0;
        while !seen.insert(anchor.clone()) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
    }
    seen
}

/// The targets of `[text](target)` links in the prose, without inline code spans.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(text).lines() {
        // Drop `code` spans.
        let mut plain = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                plain.push_str(part);
            }
        }
        let mut rest = plain.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            if let Some(end) = rest.find(')') {
                out.push(rest[..end].trim().to_string());
                rest = &rest[end..];
            }
        }
    }
    out
}

#[test]
fn every_relative_link_in_the_docs_names_a_file_and_heading_that_exist() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).expect("readable");
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() {
                doc.clone()
            } else {
                doc.parent().expect("a folder").join(file)
            };
            if !target.exists() {
                broken.push(format!("{}: {link}: no such file", doc.display()));
                continue;
            }
            if !fragment.is_empty() {
                let Ok(target_text) = std::fs::read_to_string(&target) else {
                    broken.push(format!("{}: {link}: not a text file", doc.display()));
                    continue;
                };
                if !anchors(&target_text).contains(fragment) {
                    broken.push(format!("{}: {link}: no such heading", doc.display()));
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} links found: the parser is off"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_docs_cite_no_document_outside_the_repository() {
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).expect("readable");
        assert!(
            !text.contains("DOMAIN.md") && !text.contains("../shared"),
            "{} cites a document outside the repository",
            doc.display()
        );
    }
}

#[test]
fn the_readme_stays_short_and_starts_with_the_two_commands() {
    let text = std::fs::read_to_string(root().join("README.md")).expect("readable");
    let lines = text.lines().count();
    assert!(
        lines <= 300,
        "README.md has {lines} lines; the reference goes in docs/"
    );
    let first_block: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("```"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .collect();
    assert!(
        first_block[0].starts_with("cargo run --release -p failover-lab -- demo")
            && first_block[1].starts_with("cargo test --release --workspace"),
        "the README's first lines give the demo and the test command: {first_block:?}"
    );
}

#[test]
fn the_anchor_of_a_heading_is_githubs() {
    let a = anchors("# A tour: the crates\n## `failover-lab sim`\n## A tour: the crates\n");
    assert!(a.contains("a-tour-the-crates"), "{a:?}");
    assert!(a.contains("failover-lab-sim"), "{a:?}");
    assert!(a.contains("a-tour-the-crates-1"), "{a:?}");
}
