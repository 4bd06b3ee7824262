//! Turning the bytes of a manifest file into JSON, refusing anything malformed with a clear
//! problem instead of a panic or a partial read.

use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::problem::{Problem, ProblemCode};

/// Deepest nesting of arrays and objects accepted; real manifests need six levels.
pub const MAX_DEPTH: usize = 32;

/// The raw contents of one manifest, named as the person knows it.
#[derive(Debug, Clone)]
pub struct ManifestInput {
    /// File name or path shown in problems.
    pub name: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

impl ManifestInput {
    /// Wraps bytes already in memory.
    pub fn new(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            bytes: bytes.into(),
        }
    }

    /// Reads a manifest file, refusing files over `max_bytes` without reading them whole.
    pub fn read(path: &Path, max_bytes: u64) -> Result<Self, Problem> {
        let name = path.display().to_string();
        let problem = |code, message: String| Problem {
            file: name.clone(),
            template_id: None,
            pointer: String::new(),
            code,
            message,
        };
        let file = std::fs::File::open(path).map_err(|e| {
            problem(
                ProblemCode::Unreadable,
                format!("The file could not be opened ({e}). Check the path and permissions."),
            )
        })?;
        let mut bytes = Vec::new();
        file.take(max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| {
                problem(
                    ProblemCode::Unreadable,
                    format!("The file could not be read ({e})."),
                )
            })?;
        Ok(Self { name, bytes })
    }
}

/// Parses a manifest's bytes into a JSON object, or says precisely why not.
pub fn parse(input: &ManifestInput, max_bytes: u64) -> Result<Value, Problem> {
    let problem = |code, message: String| Problem {
        file: input.name.clone(),
        template_id: None,
        pointer: String::new(),
        code,
        message,
    };
    let bytes = input.bytes.as_slice();
    if bytes.len() as u64 > max_bytes {
        return Err(problem(
            ProblemCode::FileTooLarge,
            format!(
                "The file is larger than the import limit of {} MiB. Split it into several manifests.",
                max_bytes / (1024 * 1024)
            ),
        ));
    }
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err(problem(
            ProblemCode::ByteOrderMark,
            "The file starts with a UTF-8 byte-order mark. Save it as UTF-8 without BOM.".into(),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        problem(
            ProblemCode::NotUtf8,
            format!(
                "The file is not valid UTF-8 (first bad byte at offset {}). Save it as UTF-8.",
                e.valid_up_to()
            ),
        )
    })?;
    if text.trim().is_empty() {
        return Err(problem(
            ProblemCode::Empty,
            "The file is empty. A manifest is a JSON object with \"manifest_version\" and \"templates\".".into(),
        ));
    }
    if let Some(offset) = depth_exceeded(bytes, MAX_DEPTH) {
        return Err(problem(
            ProblemCode::TooDeep,
            format!(
                "The JSON nests deeper than {MAX_DEPTH} levels (at byte {offset}); a manifest never needs that."
            ),
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let at = format!("line {}, column {}", e.line(), e.column());
        let message = if e.is_eof() {
            format!("The JSON ends early ({at}): the file looks truncated. Check that it was copied completely.")
        } else if e.to_string().contains("number out of range") {
            format!("A number is too large to represent ({at}). Use a value within the documented limits.")
        } else {
            format!("The file is not valid JSON ({at}): {}.", strip_position(&e.to_string()))
        };
        problem(ProblemCode::Syntax, message)
    })?;
    if !value.is_object() {
        return Err(problem(
            ProblemCode::NotAnObject,
            format!(
                "The file holds a JSON {}, but a manifest is an object with \"manifest_version\" and \"templates\".",
                json_kind(&value)
            ),
        ));
    }
    Ok(value)
}

/// The offset of the first bracket that opens a level deeper than `limit`, outside strings.
fn depth_exceeded(bytes: &[u8], limit: usize) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

fn strip_position(message: &str) -> &str {
    message
        .rsplit_once(" at line ")
        .map_or(message, |(head, _)| head)
}

/// "object", "array", … for messages.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
