//! The closed lists of codes, declared once: every error code a shell may see, and within it
//! the gateway's refusal codes, which the audit log also stores. A leaf module, so the gateway
//! can use the refusal list without depending on the error module that wraps its errors.

use serde::{Deserialize, Serialize};
use strum::{EnumString, IntoStaticStr};

/// Declares [`ErrorCode`] and [`RefusalCode`] from one list, so a refusal code is an error code
/// by construction and the two never disagree.
macro_rules! codes {
    (
        refusals { $( $(#[$rdoc:meta])* $refusal:ident, )* }
        others { $( $(#[$odoc:meta])* $other:ident, )* }
    ) => {
        /// The closed list of error codes. Each shell words or maps them; the UI's table from
        /// code to wording is checked against this list by the TypeScript compiler.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, IntoStaticStr, EnumString)]
        #[cfg_attr(feature = "specta", derive(specta::Type))]
        #[serde(rename_all = "snake_case")]
        #[strum(serialize_all = "snake_case")]
        pub enum ErrorCode {
            $( $(#[$odoc])* $other, )*
            $( $(#[$rdoc])* $refusal, )*
        }

        /// Why the gateway refused a call; the audit log stores the same code.
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr, EnumString,
        )]
        #[serde(rename_all = "snake_case")]
        #[strum(serialize_all = "snake_case")]
        pub enum RefusalCode {
            $( $(#[$rdoc])* $refusal, )*
        }

        impl From<RefusalCode> for ErrorCode {
            fn from(code: RefusalCode) -> Self {
                match code {
                    $( RefusalCode::$refusal => Self::$refusal, )*
                }
            }
        }
    };
}

codes! {
    refusals {
        /// A tool call without a valid token.
        Unauthenticated,
        /// The mission is not running (ready, paused, stopped, finished), or its state does not
        /// allow this (for example, stopping a finished mission).
        MissionNotActive,
        /// The mission's time to live has passed.
        MissionExpired,
        /// No tool has the id.
        UnknownTool,
        /// A tool call's arguments cannot be priced or are too large.
        InvalidArguments,
        /// A tool call names a tool, job or mission id with a control character (such as NUL)
        /// or longer than ids get.
        MalformedCall,
        /// The tool's sector is neither the mission's nor connected to it, or a policy forbids it.
        SectorDenied,
        /// The tool is not in the `allowed_tools` of the template version the mission pinned.
        ToolNotInRuleset,
        /// The calling department is not one of the mission's required departments.
        DeptNotInSquad,
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
        /// The approval expired before it was decided or used, or was already used.
        ApprovalExpired,
        /// The tool ran and failed.
        ToolFailed,
        /// A call with the same idempotency key is still running; ask again for its outcome.
        CallInProgress,
        /// The idempotency key was used for a call to another tool or with other arguments.
        IdempotencyKeyReused,
    }
    others {
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
        /// A raised budget is not above the current one or is beyond the global policy's cap.
        BudgetOutOfRange,
        /// No mission has the id.
        MissionNotFound,
        /// The signing key or the audit log cannot be read.
        AuditUnavailable,
        /// Kafka could not be started or reached.
        KafkaUnavailable,
        /// The department is not part of the mission's squad.
        UnknownDepartment,
        /// The agent API has no endpoint at the requested path.
        RouteNotFound,
        /// The endpoint exists but not for the request's method.
        MethodNotAllowed,
    }
}

impl RefusalCode {
    /// The code's text, as in API errors and audit records.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}
