//! Scenario files: the language ([`failover_scenario`], re-exported here) and reading the files
//! from disk.

use std::path::{Path, PathBuf};

pub use failover_scenario::*;

/// Reads and checks one scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: file.clone(),
        line: 0,
        field: "file".into(),
        message: format!("cannot read: {e}"),
    })?;
    parse(&file, &text, path)
}

/// Every `.toml` file under the given files and folders, sorted, or the first unreadable one.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ScenarioError> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let entries = std::fs::read_dir(p).map_err(|e| ScenarioError {
                file: p.display().to_string(),
                line: 0,
                field: "folder".into(),
                message: format!("cannot read: {e}"),
            })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x == "toml"))
                .collect();
            found.sort();
            files.extend(found);
        } else if p.exists() {
            files.push(p.clone());
        } else {
            return Err(ScenarioError {
                file: p.display().to_string(),
                line: 0,
                field: "file".into(),
                message: "no such file or folder".into(),
            });
        }
    }
    Ok(files)
}
