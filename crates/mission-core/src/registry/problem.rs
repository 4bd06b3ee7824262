//! A problem found in a manifest: where it is and what to do about it.

use serde::Serialize;

/// What kind of problem; a closed list the UI maps to wording and severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    /// The file could not be read.
    Unreadable,
    /// The file is larger than the import limit.
    FileTooLarge,
    /// The file is empty.
    Empty,
    /// The file starts with a byte-order mark.
    ByteOrderMark,
    /// The file is not UTF-8.
    NotUtf8,
    /// The JSON nests deeper than allowed.
    TooDeep,
    /// The JSON does not parse (includes truncated files and out-of-range numbers).
    Syntax,
    /// The top level is not a JSON object.
    NotAnObject,
    /// The file has more templates than allowed.
    TooManyTemplates,
    /// The JSON Schema rejects a value.
    Schema,
    /// A sector id is not in config/sectors.json.
    UnknownSector,
    /// A category is not under the template's sector.
    UnknownCategory,
    /// A department id is not in config/departments.json.
    UnknownDepartment,
    /// A tool id is not in config/tools.json.
    UnknownTool,
    /// A tool belongs to a sector the template neither owns nor connects.
    ToolOutsideSector,
    /// A sector is connected to itself.
    SelfConnection,
    /// Plan steps and required departments disagree.
    PlanMismatch,
    /// The logic_hash does not match the ruleset.
    LogicHashMismatch,
    /// Two templates share an id.
    DuplicateId,
    /// A perimeter value is above the global hard cap.
    CapExceeded,
}

/// One problem, located by file, template id and JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Problem {
    /// The manifest file, as the person named it.
    pub file: String,
    /// The template concerned, when known.
    pub template_id: Option<String>,
    /// RFC 6901 JSON pointer into the file; empty for the whole file.
    pub pointer: String,
    /// Kind of problem.
    pub code: ProblemCode,
    /// A plain sentence saying what is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(id) = &self.template_id {
            write!(f, " [{id}]")?;
        }
        if !self.pointer.is_empty() {
            write!(f, " at {}", self.pointer)?;
        }
        write!(f, ": {}", self.message)
    }
}
