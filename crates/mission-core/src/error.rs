//! The one error shape every shell hands on: `{code, message, details}`, with the code from a
//! closed list the core owns. The desktop passes it through unchanged, the agent API maps the
//! code to an HTTP status and the CLI to an exit code; none of them invents a code. Storage and
//! driver messages are logged here and never reach a person.

use serde::Serialize;

use crate::audit::AuditError;
use crate::gateway::{AuditedError, DecideError, GatewayError, RefusalCode};
use crate::ids::MalformedId;
use crate::perimeter::PerimeterError;
use crate::registry::Problem;
use crate::registry::RegistryError;
use crate::squad::{BusError, SquadError};
use crate::store::DbError;

/// The closed list of error codes. Each shell words or maps them; the UI's table from code to
/// wording is checked against this list by the TypeScript compiler.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, strum::IntoStaticStr, strum::EnumString,
)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    /// A manifest has problems; `details.problems` lists them.
    InvalidManifest,
    /// A sector filter names no sector.
    UnknownSector,
    /// A category filter names no category.
    UnknownCategory,
    /// No template has the id.
    TemplateNotFound,
    /// The template has no such version.
    VersionNotFound,
    /// The template changed while the configurator was open.
    TemplateChanged,
    /// A perimeter value is beyond a cap or below the minimum.
    PerimeterOutOfRange,
    /// A sector connection the template does not declare.
    UnknownConnection,
    /// A request no control of the UI can produce.
    InvalidRequest,
    /// No staged import has the id.
    ImportNotFound,
    /// The database could not be read or written.
    Storage,
    /// The bundled configuration is broken.
    Config,
    /// A fault inside the app.
    Internal,
    /// The file picker could not be shown, or a chosen file is not a local file.
    Dialog,
    /// No approval has the id.
    ApprovalNotFound,
    /// Someone already decided the approval.
    ApprovalDecided,
    /// The approval expired before it was decided or used.
    ApprovalExpired,
    /// A raised budget is not above the current one or is beyond the global policy's cap.
    BudgetOutOfRange,
    /// No mission has the id.
    MissionNotFound,
    /// The signing key or the audit log cannot be read.
    AuditUnavailable,
    /// The mission's state does not allow this (for example, stopping a finished mission).
    MissionNotActive,
    /// Kafka could not be started or reached.
    KafkaUnavailable,
    /// The department is not part of the mission's squad.
    UnknownDepartment,
    /// A tool call without a valid token.
    Unauthenticated,
    /// The mission's time to live has passed.
    MissionExpired,
    /// No tool has the id.
    UnknownTool,
    /// A tool call's arguments cannot be priced or are too large.
    InvalidArguments,
    /// The tool's sector is neither the mission's nor connected to it, or a policy forbids it.
    SectorDenied,
    /// An `http` tool's host is not on the allowlist.
    HostNotAllowed,
    /// The mission used all its steps.
    StepsExhausted,
    /// The mission reached its budget cap.
    BudgetExhausted,
    /// Calls in flight hold the rest of the budget.
    BudgetReserved,
    /// A reviewer denied the call.
    ApprovalDenied,
    /// The tool ran and failed.
    ToolFailed,
}

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

impl From<RefusalCode> for ErrorCode {
    fn from(code: RefusalCode) -> Self {
        match code {
            RefusalCode::Unauthenticated => Self::Unauthenticated,
            RefusalCode::MissionNotActive => Self::MissionNotActive,
            RefusalCode::MissionExpired => Self::MissionExpired,
            RefusalCode::UnknownTool => Self::UnknownTool,
            RefusalCode::InvalidArguments => Self::InvalidArguments,
            RefusalCode::SectorDenied => Self::SectorDenied,
            RefusalCode::HostNotAllowed => Self::HostNotAllowed,
            RefusalCode::StepsExhausted => Self::StepsExhausted,
            RefusalCode::BudgetExhausted => Self::BudgetExhausted,
            RefusalCode::BudgetReserved => Self::BudgetReserved,
            RefusalCode::ApprovalDenied => Self::ApprovalDenied,
            RefusalCode::ApprovalExpired => Self::ApprovalExpired,
            RefusalCode::ToolFailed => Self::ToolFailed,
        }
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
        let code = match &e {
            RegistryError::Invalid(problems) => {
                let mut error = Self::new(ErrorCode::InvalidManifest, e.to_string());
                error.details.problems.clone_from(problems);
                return error;
            }
            RegistryError::UnknownSector(_) => ErrorCode::UnknownSector,
            RegistryError::UnknownCategory(_) => ErrorCode::UnknownCategory,
            RegistryError::NotFound(_) => ErrorCode::TemplateNotFound,
            RegistryError::VersionNotFound { .. } => ErrorCode::VersionNotFound,
            RegistryError::ImportNotFound(_) => ErrorCode::ImportNotFound,
            RegistryError::Storage(inner) => return Self::storage(inner),
            RegistryError::Catalog(_) => ErrorCode::Config,
            RegistryError::Internal(inner) => return Self::internal(inner),
        };
        Self::new(code, e.to_string())
    }
}

impl From<PerimeterError> for CoreError {
    fn from(e: PerimeterError) -> Self {
        let e = match e {
            PerimeterError::Registry(inner) => return inner.into(),
            other => other,
        };
        let code = match &e {
            PerimeterError::OutOfRange { field, max, .. } => {
                return Self::new(ErrorCode::PerimeterOutOfRange, e.to_string())
                    .with_limit(field.as_str(), *max)
            }
            PerimeterError::TemplateNotFound(_) => ErrorCode::TemplateNotFound,
            PerimeterError::TemplateChanged { .. } => ErrorCode::TemplateChanged,
            PerimeterError::UnknownConnection(_) => ErrorCode::UnknownConnection,
            PerimeterError::InvalidRequest(_) | PerimeterError::Registry(_) => {
                ErrorCode::InvalidRequest
            }
        };
        Self::new(code, e.to_string())
    }
}

impl From<GatewayError> for CoreError {
    fn from(e: GatewayError) -> Self {
        let code = match &e {
            GatewayError::Refused(refusal) => {
                let mut error = Self::new(refusal.code.into(), refusal.message.clone());
                error.details.audit_seq = Some(refusal.audit_seq);
                return error;
            }
            GatewayError::Approval(DecideError::BudgetOutOfRange { max, .. }) => {
                return Self::new(ErrorCode::BudgetOutOfRange, e.to_string())
                    .with_limit("budget_cents", *max)
            }
            GatewayError::Approval(DecideError::NotFound(_)) => ErrorCode::ApprovalNotFound,
            GatewayError::Approval(DecideError::AlreadyDecided(_)) => ErrorCode::ApprovalDecided,
            GatewayError::Approval(DecideError::Expired(_)) => ErrorCode::ApprovalExpired,
            GatewayError::Approval(DecideError::Invalid(_)) => ErrorCode::InvalidRequest,
            GatewayError::MissionNotFound(_) => ErrorCode::MissionNotFound,
            GatewayError::MissionState { .. } => ErrorCode::MissionNotActive,
            GatewayError::UnknownDepartment { .. } => ErrorCode::UnknownDepartment,
            GatewayError::Storage(inner) => return Self::storage(inner),
            GatewayError::Policy(_) => ErrorCode::Config,
        };
        Self::new(code, e.to_string())
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
            SquadError::MissionNotFound(_) => Self::new(ErrorCode::MissionNotFound, e.to_string()),
            SquadError::MissionState { .. } => {
                Self::new(ErrorCode::MissionNotActive, e.to_string())
            }
        }
    }
}

impl AuditedError for CoreError {
    fn code(&self) -> &str {
        self.code.as_str()
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
