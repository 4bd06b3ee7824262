//! The one error shape every shell hands on: `{code, message, details}`, with the code from a
//! closed list the core owns. The desktop passes it through unchanged, the agent API maps the
//! code to an HTTP status and the CLI to an exit code; none of them invents a code. Storage and
//! driver messages are logged here and never reach a person.

use serde::Serialize;

use crate::audit::AuditError;
pub use crate::codes::ErrorCode;
use crate::gateway::{AuditedError, DecideError, GatewayError};
use crate::ids::MalformedId;
use crate::perimeter::PerimeterError;
use crate::registry::Problem;
use crate::registry::RegistryError;
use crate::squad::{BusError, SquadError};
use crate::store::DbError;

impl ErrorCode {
    /// The code's text, as in JSON answers and audit records.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether the caller did something the core refused (as opposed to the core failing).
    pub fn is_refusal(self) -> bool {
        !matches!(
            self,
            Self::Storage
                | Self::Config
                | Self::Internal
                | Self::AuditUnavailable
                | Self::KafkaUnavailable
        )
    }
}

/// Structured facts behind an error, for a shell to point at.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ErrorDetails {
    /// The request field at fault, when one is.
    pub field: Option<String>,
    /// The limit that was crossed, when one was.
    pub limit: Option<i64>,
    /// Every manifest problem, for `invalid_manifest`.
    pub problems: Vec<Problem>,
    /// The audit record of a refused or failed operation, when one was written.
    pub audit_seq: Option<i64>,
}

/// An error as every shell receives it. (The window's code knows it as `AppError`.)
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
// The name the window's generated types use; JSON objects carry no type name.
#[serde(rename = "AppError")]
#[error("{message}")]
pub struct CoreError {
    /// What went wrong, from the closed list.
    pub code: ErrorCode,
    /// One plain sentence that says what to do next where it can.
    pub message: String,
    /// Facts behind it.
    pub details: ErrorDetails,
}

impl CoreError {
    /// An error with no details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: ErrorDetails::default(),
        }
    }

    /// The same error naming the field at fault and the limit it crossed.
    pub fn with_limit(mut self, field: &str, limit: i64) -> Self {
        self.details.field = Some(field.to_owned());
        self.details.limit = Some(limit);
        self
    }

    /// A storage failure: logged with its cause, worded without it.
    pub fn storage(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "storage failed");
        Self::new(
            ErrorCode::Storage,
            "The mission database could not be read or written; nothing was changed.",
        )
    }

    /// A fault inside the core: logged with its cause, worded without it.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal failure");
        Self::new(
            ErrorCode::Internal,
            "Something failed inside Mission Control; nothing was changed. Retry, and check the \
             log if it happens again.",
        )
    }
}

impl From<MalformedId> for CoreError {
    fn from(e: MalformedId) -> Self {
        // A malformed id names nothing: the answer is the kind's own "not found", worded so
        // the person sees what an id looks like.
        let code = match e.kind {
            "approval" => ErrorCode::ApprovalNotFound,
            "import" => ErrorCode::ImportNotFound,
            _ => ErrorCode::MissionNotFound,
        };
        Self::new(code, e.to_string())
    }
}

impl From<DbError> for CoreError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::UnsupportedUrl(_) | DbError::NoDataDir => {
                Self::new(ErrorCode::Config, e.to_string())
            }
            other => Self::storage(&other),
        }
    }
}

impl From<RegistryError> for CoreError {
    fn from(e: RegistryError) -> Self {
        match &e {
            RegistryError::Invalid(problems) => {
                let mut error = Self::new(e.code(), e.to_string());
                error.details.problems.clone_from(problems);
                error
            }
            RegistryError::Storage(inner) => Self::storage(inner),
            RegistryError::Internal(inner) => Self::internal(inner),
            _ => Self::new(e.code(), e.to_string()),
        }
    }
}

impl From<PerimeterError> for CoreError {
    fn from(e: PerimeterError) -> Self {
        match e {
            PerimeterError::Registry(inner) => inner.into(),
            PerimeterError::OutOfRange { ref field, max, .. } => {
                Self::new(e.code(), e.to_string()).with_limit(field.as_str(), max)
            }
            other => Self::new(other.code(), other.to_string()),
        }
    }
}

impl From<GatewayError> for CoreError {
    fn from(e: GatewayError) -> Self {
        match &e {
            GatewayError::Refused(refusal) => {
                let mut error = Self::new(e.code(), refusal.message.clone());
                error.details.audit_seq = Some(refusal.audit_seq);
                error
            }
            GatewayError::Approval(DecideError::BudgetOutOfRange { max, .. }) => {
                Self::new(e.code(), e.to_string()).with_limit("budget_cents", max.get())
            }
            GatewayError::Storage(inner) => Self::storage(inner),
            _ => Self::new(e.code(), e.to_string()),
        }
    }
}

impl From<AuditError> for CoreError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Storage(inner) => inner.into(),
            AuditError::Format(message) => Self::new(ErrorCode::InvalidRequest, message),
            AuditError::Io(inner) => Self::new(
                ErrorCode::AuditUnavailable,
                format!("The audit file could not be read or written: {inner}."),
            ),
        }
    }
}

impl From<BusError> for CoreError {
    fn from(e: BusError) -> Self {
        tracing::warn!(error = %e, "Kafka failed");
        Self::new(
            ErrorCode::KafkaUnavailable,
            format!(
                "Kafka could not be reached: {e}. Check kafka.bootstrap_servers (or \
                 KAFKA_BOOTSTRAP_SERVERS); missions wait and resume when Kafka answers."
            ),
        )
    }
}

impl From<SquadError> for CoreError {
    fn from(e: SquadError) -> Self {
        match e {
            SquadError::Gateway(inner) => inner.into(),
            SquadError::Perimeter(inner) => inner.into(),
            SquadError::Bus(inner) => inner.into(),
            SquadError::Storage(inner) => inner.into(),
            other => Self::new(other.code(), other.to_string()),
        }
    }
}

impl AuditedError for CoreError {
    fn code(&self) -> ErrorCode {
        self.code
    }

    fn is_refusal(&self) -> bool {
        self.code.is_refusal()
    }

    fn audit_seq(&self) -> Option<i64> {
        self.details.audit_seq
    }

    fn set_audit_seq(&mut self, seq: i64) {
        self.details.audit_seq = Some(seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::RefusalCode;

    #[test]
    fn every_refusal_keeps_its_own_code() {
        for code in [
            RefusalCode::Unauthenticated,
            RefusalCode::MissionNotActive,
            RefusalCode::MissionExpired,
            RefusalCode::UnknownTool,
            RefusalCode::InvalidArguments,
            RefusalCode::SectorDenied,
            RefusalCode::HostNotAllowed,
            RefusalCode::StepsExhausted,
            RefusalCode::BudgetExhausted,
            RefusalCode::BudgetReserved,
            RefusalCode::ApprovalDenied,
            RefusalCode::ApprovalExpired,
            RefusalCode::ToolFailed,
        ] {
            assert_eq!(ErrorCode::from(code).as_str(), code.as_str());
        }
    }

    #[test]
    fn a_storage_failure_never_shows_the_driver_message() {
        let error: CoreError = DbError::Corrupt("secret driver detail".into()).into();
        assert_eq!(error.code, ErrorCode::Storage);
        assert!(!error.message.contains("secret driver detail"));
    }

    #[test]
    fn the_code_text_matches_its_json() {
        let json = serde_json::to_value(ErrorCode::PerimeterOutOfRange).expect("json");
        assert_eq!(json, ErrorCode::PerimeterOutOfRange.as_str());
    }
}
