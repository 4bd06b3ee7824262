//! The error that crosses into the UI is the core's own `{code, message, details}`
//! ([`mission_core::CoreError`]), passed through unchanged; the UI keeps one table from code
//! to wording. Only the shell's own failures (the file picker) are made here.

pub use mission_core::{CoreError, ErrorCode};

/// A chosen file that is not on this computer.
pub fn not_a_local_file(e: &dyn std::fmt::Display) -> CoreError {
    CoreError::new(
        ErrorCode::Dialog,
        format!("The chosen file is not a local file ({e}); copy it to this computer first."),
    )
}
