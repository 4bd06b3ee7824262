//! Turning the bytes of a manifest file into JSON, refusing anything malformed with a clear
//! problem instead of a panic or a partial read.

use std::io::Read;
use std::path::Path;

use serde_json::value::RawValue;
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

/// A manifest split into its envelope and the raw JSON of each template, so templates can be
/// parsed and checked independently (in parallel, each freed when done) rather than as one tree.
#[derive(Debug)]
pub struct SplitManifest<'a> {
    /// The top-level object; an array of templates is replaced by as many nulls.
    pub envelope: Value,
    /// Each template's JSON text, in file order, when `templates` is an array.
    pub templates: Vec<&'a RawValue>,
    text: &'a str,
}

impl SplitManifest<'_> {
    /// Byte offset in the file just past a raw part of it.
    pub fn end_of(&self, raw: &RawValue) -> usize {
        let part = raw.get();
        (part.as_ptr() as usize).saturating_sub(self.text.as_ptr() as usize) + part.len()
    }

    /// Parses one raw part of this manifest; errors carry the line and column in the file.
    pub fn parse_part(&self, file: &str, raw: &RawValue) -> Result<Value, Problem> {
        serde_json::from_str(raw.get()).map_err(|e| {
            let (line, column) = position_in(self.text, raw.get(), e.line(), e.column());
            syntax_problem(file, &e, line, column)
        })
    }
}

/// Checks the bytes of a manifest (size, BOM, UTF-8, emptiness, depth, JSON syntax, an object
/// at the top) and splits it into envelope and templates.
pub fn split(input: &ManifestInput, max_bytes: u64) -> Result<SplitManifest<'_>, Problem> {
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
    let mut split = SplitManifest {
        envelope: Value::Null,
        templates: Vec::new(),
        text,
    };
    // Reading the members as raw JSON checks the syntax of the whole file without building it.
    let top = match serde_json::from_str::<TopLevel<'_>>(text) {
        Ok(top) => top.0,
        Err(e) if e.is_data() => {
            // Valid JSON, but not an object: say what it is instead.
            let value: Value = serde_json::from_str(text)
                .map_err(|e| syntax_problem(&input.name, &e, e.line(), e.column()))?;
            return Err(problem(
                ProblemCode::NotAnObject,
                format!(
                    "The file holds a JSON {}, but a manifest is an object with \"manifest_version\" and \"templates\".",
                    json_kind(&value)
                ),
            ));
        }
        Err(e) => return Err(syntax_problem(&input.name, &e, e.line(), e.column())),
    };
    let mut envelope = serde_json::Map::new();
    for (key, raw) in top {
        let value = if key == "templates" && raw.get().starts_with('[') {
            split.templates = serde_json::from_str(raw.get()).map_err(|e| {
                let (line, column) = position_in(text, raw.get(), e.line(), e.column());
                syntax_problem(&input.name, &e, line, column)
            })?;
            Value::Array(vec![Value::Null; split.templates.len()])
        } else {
            split.parse_part(&input.name, raw)?
        };
        // A repeated key keeps its last value, as a JSON parser does.
        envelope.insert(key, value);
    }
    split.envelope = Value::Object(envelope);
    Ok(split)
}

/// The top-level members in file order, values left as raw JSON.
struct TopLevel<'a>(Vec<(String, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(entry);
                }
                Ok(TopLevel(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// Line and column in `text` of a position given relative to `part`, a slice of `text`.
fn position_in(text: &str, part: &str, line: usize, column: usize) -> (usize, usize) {
    let offset = (part.as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
    let before = text.get(..offset).unwrap_or_default();
    let part_line = before.matches('\n').count() + 1;
    let part_column = before.len() - before.rfind('\n').map_or(0, |i| i + 1);
    if line <= 1 {
        (part_line, part_column + column)
    } else {
        (part_line + line - 1, column)
    }
}

/// One clean problem for a JSON syntax error at a file position.
fn syntax_problem(file: &str, e: &serde_json::Error, line: usize, column: usize) -> Problem {
    let at = format!("line {line}, column {column}");
    let message = if e.is_eof() {
        format!("The JSON ends early ({at}): the file looks truncated. Check that it was copied completely.")
    } else if e.to_string().contains("number out of range") {
        format!(
            "A number is too large to represent ({at}). Use a value within the documented limits."
        )
    } else {
        format!(
            "The file is not valid JSON ({at}): {}.",
            strip_position(&e.to_string())
        )
    };
    Problem {
        file: file.to_owned(),
        template_id: None,
        pointer: String::new(),
        code: ProblemCode::Syntax,
        message,
    }
}

/// The offset of the first bracket that opens a level deeper than `limit`, outside strings.
/// Most of a manifest is string content, which is skipped with memchr rather than byte by byte.
fn depth_exceeded(bytes: &[u8], limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => {
                // Jump to the closing quote, stepping over escaped characters.
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', bytes.get(i..)?) {
                        Some(at) if bytes.get(i + at) == Some(&b'\\') => i += at + 2,
                        Some(at) => {
                            i += at;
                            break;
                        }
                        None => return None,
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
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
