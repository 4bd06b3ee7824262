//! The one error shape that crosses into the UI: `{code, message, details}`. The UI keeps one
//! table from code to wording; storage details stay in the log, never on screen.

use mission_core::audit::AuditError;
use mission_core::gateway::{DecideError, GatewayError};
use mission_core::perimeter::PerimeterError;
use mission_core::registry::Problem;
use mission_core::squad::SquadError;
use mission_core::RegistryError;
use serde::Serialize;

/// The closed list of error codes the UI knows how to word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(rename_all = "snake_case")]
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
    /// The file picker could not be shown.
    Dialog,
    /// No approval has the id.
    ApprovalNotFound,
    /// Someone already decided the approval.
    ApprovalDecided,
    /// The approval expired before it was decided.
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
}

/// Structured facts behind an error, for the UI to point at.
#[derive(Debug, Clone, Default, PartialEq, Serialize, specta::Type)]
pub struct ErrorDetails {
    /// The request field at fault, when one is.
    pub field: Option<String>,
    /// The limit that was crossed, when one was.
    pub limit: Option<i64>,
    /// Every manifest problem, for `invalid_manifest`.
    pub problems: Vec<Problem>,
}

/// An error as the UI receives it.
#[derive(Debug, Clone, PartialEq, Serialize, specta::Type, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    /// What went wrong, from a closed list.
    pub code: ErrorCode,
    /// One plain sentence.
    pub message: String,
    /// Facts behind it.
    pub details: ErrorDetails,
}

impl AppError {
    /// An error with no details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: ErrorDetails::default(),
        }
    }
}

impl From<RegistryError> for AppError {
    fn from(e: RegistryError) -> Self {
        let code = match &e {
            RegistryError::Invalid(problems) => {
                return Self {
                    code: ErrorCode::InvalidManifest,
                    message: e.to_string(),
                    details: ErrorDetails {
                        problems: problems.clone(),
                        ..ErrorDetails::default()
                    },
                }
            }
            RegistryError::UnknownSector(_) => ErrorCode::UnknownSector,
            RegistryError::UnknownCategory(_) => ErrorCode::UnknownCategory,
            RegistryError::NotFound(_) => ErrorCode::TemplateNotFound,
            RegistryError::VersionNotFound { .. } => ErrorCode::VersionNotFound,
            RegistryError::ImportNotFound(_) => ErrorCode::ImportNotFound,
            RegistryError::Storage(inner) => {
                tracing::error!(error = %inner, "storage failed");
                return Self::new(
                    ErrorCode::Storage,
                    "The mission library database could not be read or written.",
                );
            }
            RegistryError::Catalog(_) => ErrorCode::Config,
            RegistryError::Internal(_) => ErrorCode::Internal,
        };
        Self::new(code, e.to_string())
    }
}

impl From<PerimeterError> for AppError {
    fn from(e: PerimeterError) -> Self {
        match e {
            PerimeterError::OutOfRange { field, max, .. } => Self {
                code: ErrorCode::PerimeterOutOfRange,
                message: e.to_string(),
                details: ErrorDetails {
                    field: Some(field.as_str().to_owned()),
                    limit: Some(max),
                    problems: Vec::new(),
                },
            },
            PerimeterError::TemplateNotFound(_) => {
                Self::new(ErrorCode::TemplateNotFound, e.to_string())
            }
            PerimeterError::TemplateChanged { .. } => {
                Self::new(ErrorCode::TemplateChanged, e.to_string())
            }
            PerimeterError::UnknownConnection(_) => {
                Self::new(ErrorCode::UnknownConnection, e.to_string())
            }
            PerimeterError::InvalidRequest(_) => {
                Self::new(ErrorCode::InvalidRequest, e.to_string())
            }
            PerimeterError::Registry(inner) => inner.into(),
        }
    }
}

impl From<GatewayError> for AppError {
    fn from(e: GatewayError) -> Self {
        let code = match &e {
            GatewayError::Approval(DecideError::NotFound(_)) => ErrorCode::ApprovalNotFound,
            GatewayError::Approval(DecideError::AlreadyDecided(_)) => ErrorCode::ApprovalDecided,
            GatewayError::Approval(DecideError::Expired(_)) => ErrorCode::ApprovalExpired,
            GatewayError::Approval(DecideError::BudgetOutOfRange { max, .. }) => {
                return Self {
                    code: ErrorCode::BudgetOutOfRange,
                    message: e.to_string(),
                    details: ErrorDetails {
                        field: Some("budget_cents".to_owned()),
                        limit: Some(*max),
                        problems: Vec::new(),
                    },
                }
            }
            GatewayError::MissionNotFound(_) => ErrorCode::MissionNotFound,
            GatewayError::Storage(inner) => {
                tracing::error!(error = %inner, "storage failed");
                return Self::new(
                    ErrorCode::Storage,
                    "The mission database could not be read or written.",
                );
            }
            GatewayError::Policy(_) => ErrorCode::Config,
            GatewayError::Approval(DecideError::Invalid(_))
            | GatewayError::MissionState { .. }
            | GatewayError::UnknownDepartment { .. }
            | GatewayError::Refused(_) => ErrorCode::InvalidRequest,
        };
        Self::new(code, e.to_string())
    }
}

impl From<AuditError> for AppError {
    fn from(e: AuditError) -> Self {
        tracing::error!(error = %e, "the audit log could not be read");
        Self::new(
            ErrorCode::AuditUnavailable,
            format!("The audit log could not be read: {e}."),
        )
    }
}

impl From<SquadError> for AppError {
    fn from(e: SquadError) -> Self {
        match e {
            SquadError::Gateway(inner) => inner.into(),
            SquadError::Perimeter(inner) => inner.into(),
            SquadError::MissionNotFound(_) => Self::new(ErrorCode::MissionNotFound, e.to_string()),
            SquadError::MissionState { .. } => {
                Self::new(ErrorCode::MissionNotActive, e.to_string())
            }
            SquadError::Bus(inner) => Self::new(
                ErrorCode::KafkaUnavailable,
                format!(
                    "Kafka could not be reached: {inner}. Check kafka.bootstrap_servers (or \
                     KAFKA_BOOTSTRAP_SERVERS); the mission waits and resumes when Kafka answers."
                ),
            ),
            SquadError::Storage(inner) => {
                tracing::error!(error = %inner, "storage failed");
                Self::new(
                    ErrorCode::Storage,
                    "The mission database could not be read or written.",
                )
            }
        }
    }
}
