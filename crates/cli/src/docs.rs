//! Reading SCS-API objects from multi-document YAML files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;

/// One YAML document of an input file.
#[derive(Debug, Clone)]
pub struct Doc {
    /// File it came from.
    pub file: PathBuf,
    /// Index of the document in the file (0-based).
    pub index: usize,
    /// The document, or why it is not YAML.
    pub value: Result<Value, String>,
}

impl Doc {
    /// `kind` of the document.
    pub fn kind(&self) -> &str {
        self.value
            .as_ref()
            .ok()
            .and_then(|v| v.get("kind"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// `namespace/name` or `name` for messages.
    pub fn name(&self) -> String {
        let meta = self.value.as_ref().ok().and_then(|v| v.get("metadata"));
        let get = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
        match (get("namespace"), get("name")) {
            (Some(ns), Some(n)) => format!("{ns}/{n}"),
            (None, Some(n)) => n.to_string(),
            _ => format!("#{}", self.index + 1),
        }
    }
}

/// Reads every document of every file (`-` is standard input). IO errors are errors; documents
/// that are not YAML come back as `Err` values so they can be reported as invalid.
pub fn read(files: &[PathBuf]) -> Result<Vec<Doc>> {
    let mut out = Vec::new();
    for file in files {
        let text = if file == Path::new("-") {
            std::io::read_to_string(std::io::stdin()).context("reading standard input")?
        } else {
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
        };
        out.extend(parse(file, &text));
    }
    Ok(out)
}

/// Splits a YAML stream into documents, skipping empty ones.
pub fn parse(file: &Path, text: &str) -> Vec<Doc> {
    let mut out = Vec::new();
    for (index, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(de).map_err(|e| format!("not valid YAML: {e}"));
        if matches!(value, Ok(Value::Null)) {
            continue;
        }
        let stop = value.is_err();
        out.push(Doc {
            file: file.to_path_buf(),
            index,
            value,
        });
        if stop {
            break; // the YAML stream cannot be resumed after a syntax error
        }
    }
    out
}
