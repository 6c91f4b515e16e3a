//! The house stays easy to see (docs/architecture.md): no source file outside tests is over
//! 800 lines, and no module uses one that uses it back. A module's uses are the paths it names
//! from its own crate (`crate::…`, `super::…`, `self::…`, in `use` trees or inline), each
//! counted as a use of the longest module that path names. A module and the modules it
//! declares are one unit (a folder), so a parent and its child may name each other.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Most lines a source file may have (tests and generated code aside).
const MAX_LINES: usize = 800;

fn crates() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("crates/")
        .map(|e| e.expect("an entry").path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Every `.rs` file under `dir`, with its module path (`a::b`; the crate root is empty).
fn modules(src: &Path, dir: &Path, out: &mut BTreeMap<String, PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            modules(src, &path, out);
            continue;
        }
        if path.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let relative = path.strip_prefix(src).expect("under src");
        let mut parts: Vec<String> = relative
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        if matches!(
            parts.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            parts.pop();
        }
        out.insert(parts.join("::"), path);
    }
}

/// The paths a `use` tree names, its braces expanded: `a::{b, c::{d}}` gives `a::b`, `a::c::d`.
fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        out.push(format!("{prefix}{tree}"));
        return;
    };
    let head = &tree[..open];
    let close = tree.rfind('}').filter(|c| *c > open).unwrap_or(tree.len());
    let inner = &tree[open + 1..close];
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                expand(&format!("{prefix}{head}"), &inner[start..i], out);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !inner[start..].trim().is_empty() {
        expand(&format!("{prefix}{head}"), &inner[start..], out);
    }
}

/// The crate paths a file names, made absolute (`a::b::Thing`) from its module `me`.
fn named_paths(text: &str, me: &str) -> Vec<String> {
    // Comments name no module.
    let text: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = text.as_str();
    let parent = me.rsplit_once("::").map_or("", |(p, _)| p);
    let absolute = |path: &str| -> Option<String> {
        let (base, rest) = if let Some(r) = path.strip_prefix("crate::") {
            ("", r)
        } else if let Some(r) = path.strip_prefix("super::") {
            (parent, r)
        } else if let Some(r) = path.strip_prefix("self::") {
            (me, r)
        } else {
            return None;
        };
        Some(if base.is_empty() {
            rest.to_string()
        } else {
            format!("{base}::{rest}")
        })
    };
    let mut paths = Vec::new();
    // `use` items, braces and all, up to their semicolon.
    for (i, _) in text.match_indices("use ") {
        if i > 0 && !text[..i].ends_with(char::is_whitespace) {
            continue;
        }
        let Some(end) = text[i..].find(';') else {
            continue;
        };
        let mut trees = Vec::new();
        expand("", &text[i + 4..i + end], &mut trees);
        paths.extend(trees.iter().filter_map(|t| absolute(t.trim())));
    }
    // Inline paths: `crate::a::b(...)`.
    for start in ["crate::", "super::", "self::"] {
        for (i, _) in text.match_indices(start) {
            let path: String = text[i..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            paths.extend(absolute(&path));
        }
    }
    paths
}

/// The longest module of `known` that `path` names.
fn module_of<'a>(path: &str, known: &'a BTreeMap<String, PathBuf>) -> Option<&'a str> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find_map(|m| known.get_key_value(m.as_str()).map(|(k, _)| k.as_str()))
}

/// True when one of the two modules declares the other (directly or further down).
fn one_unit(a: &str, b: &str) -> bool {
    let inside =
        |outer: &str, inner: &str| outer.is_empty() || inner.starts_with(&format!("{outer}::"));
    inside(a, b) || inside(b, a)
}

#[test]
fn no_source_file_is_over_800_lines() {
    let mut long = Vec::new();
    for src in crates() {
        let mut files = BTreeMap::new();
        modules(&src, &src, &mut files);
        for path in files.values() {
            if path.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            let lines = std::fs::read_to_string(path)
                .expect("source")
                .lines()
                .count();
            if lines > MAX_LINES {
                long.push(format!("{} ({lines} lines)", path.display()));
            }
        }
    }
    assert!(long.is_empty(), "split along their seams: {long:?}");
}

#[test]
fn no_module_uses_one_that_uses_it_back() {
    let mut circles = Vec::new();
    for src in crates() {
        let mut files = BTreeMap::new();
        modules(&src, &src, &mut files);
        let mut uses: BTreeSet<(String, String)> = BTreeSet::new();
        for (me, path) in &files {
            let text = std::fs::read_to_string(path).expect("source");
            // A file's own tests may reach anywhere.
            let text = text
                .split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap_or_default();
            for named in named_paths(text, me) {
                if let Some(other) = module_of(&named, &files)
                    && other != me
                    && !one_unit(me, other)
                {
                    uses.insert((me.clone(), other.to_string()));
                }
            }
        }
        for (a, b) in &uses {
            if a < b && uses.contains(&(b.clone(), a.clone())) {
                circles.push(format!("{}: {a} <-> {b}", src.display()));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "modules that use each other: {circles:?}"
    );
}

/// The checker sees a circle where there is one (the adapter's session and its REST client,
/// before they were split).
#[test]
fn the_checker_finds_a_circle() {
    let files: BTreeMap<String, PathBuf> = ["session", "cfs_client"]
        .into_iter()
        .map(|m| (m.to_string(), PathBuf::new()))
        .collect();
    let session = "use crate::{cfs_client::protocol_of, state::Shared};";
    let client = "use crate::{\n    session::{End, heartbeat},\n    state::Shared,\n};";
    let of = |text: &str, me: &str| -> Vec<String> {
        let found: BTreeSet<String> = named_paths(text, me)
            .iter()
            .filter_map(|p| module_of(p, &files).map(str::to_string))
            .collect();
        found.into_iter().collect()
    };
    assert_eq!(of(session, "session"), ["cfs_client"]);
    assert_eq!(of(client, "cfs_client"), ["session"]);
    // From session::grpc, `super::member` is inside session: its own unit, never a circle.
    assert_eq!(
        of("use super::member::{End};", "session::grpc"),
        ["session"]
    );
    assert!(one_unit("session", "session::grpc") && !one_unit("session", "sessions"));
}
