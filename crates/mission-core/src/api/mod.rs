//! The agent API: HTTP on loopback by default. Agents call tools with their bearer token;
//! every call goes to [`Core::invoke`], the gateway function built-in agents use too. The
//! handlers only translate HTTP to the core and back; error codes come from the core's list.

use std::future::Future;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::units::Cents;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::{CoreError, ErrorCode};
use crate::gateway::{CallOutcome, ToolCall};
use crate::Core;

/// Body of an invoke request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvokeBody {
    /// The tool's arguments, a JSON object; `items` (a count or a list) prices per-item tools.
    #[schema(value_type = Object)]
    #[serde(default = "empty_object")]
    pub args: Value,
    /// The job this call belongs to.
    pub job_id: Option<String>,
    /// The mission the agent acts for; refused unless it is the token's mission.
    pub mission_id: Option<String>,
    /// Makes the call happen at most once: a repeat with the same key gets the first call's
    /// recorded outcome (`"replayed": true`) without running or charging again. The
    /// `Idempotency-Key` header does the same.
    pub idempotency_key: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// The answer to a call that ran (200) or waits for a human (202).
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum InvokeResponse {
    /// The tool ran.
    Executed {
        /// The tool's result.
        #[schema(value_type = Object)]
        output: Value,
        /// Cents charged.
        #[schema(value_type = i64)]
        cost_cents: Cents,
        /// Whether the result is simulated.
        simulated: bool,
        /// The mission step used.
        step: i64,
        /// What authorized the call.
        authorized_by: String,
        /// Deciding policy ids.
        policy_ids: Vec<String>,
        /// Audit record seq.
        audit_seq: i64,
        /// The recorded outcome of an earlier call with the same idempotency key: the tool
        /// did not run again and nothing was charged.
        replayed: bool,
    },
    /// The call waits in the approvals queue; send the same call again once approved.
    Waiting {
        /// Approval id.
        approval_id: String,
        /// When the request expires.
        expires_at: String,
        /// Why it waits.
        reason: String,
        /// Audit record seq.
        audit_seq: i64,
    },
}

/// Every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiError {
    /// Stable code, e.g. `sector_denied`.
    pub code: String,
    /// What happened and what to do next.
    pub message: String,
    /// The audit record of a refused call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_seq: Option<i64>,
}

fn error(status: StatusCode, code: ErrorCode, message: String, audit_seq: Option<i64>) -> Response {
    (
        status,
        Json(ApiError {
            code: code.as_str().to_owned(),
            message,
            audit_seq,
        }),
    )
        .into_response()
}

/// A request the handler cannot read; nothing reached the gateway.
fn bad_request(message: String) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidRequest,
        message,
        None,
    )
}

/// The HTTP status of each code an agent can meet.
pub fn status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::SectorDenied
        | ErrorCode::ToolNotInRuleset
        | ErrorCode::DeptNotInSquad
        | ErrorCode::HostNotAllowed
        | ErrorCode::ApprovalDenied => StatusCode::FORBIDDEN,
        ErrorCode::UnknownTool
        | ErrorCode::MissionNotFound
        | ErrorCode::TemplateNotFound
        | ErrorCode::VersionNotFound
        | ErrorCode::ApprovalNotFound
        | ErrorCode::ImportNotFound
        | ErrorCode::RouteNotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::InvalidArguments
        | ErrorCode::InvalidManifest
        | ErrorCode::PerimeterOutOfRange
        | ErrorCode::BudgetOutOfRange
        | ErrorCode::UnknownSector
        | ErrorCode::UnknownCategory
        | ErrorCode::UnknownConnection
        | ErrorCode::UnknownDepartment => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::MissionNotActive
        | ErrorCode::StepsExhausted
        | ErrorCode::BudgetExhausted
        | ErrorCode::BudgetReserved
        | ErrorCode::CallInProgress
        | ErrorCode::IdempotencyKeyReused
        | ErrorCode::TemplateChanged
        | ErrorCode::ApprovalDecided => StatusCode::CONFLICT,
        ErrorCode::MissionExpired | ErrorCode::ApprovalExpired => StatusCode::GONE,
        ErrorCode::ToolFailed => StatusCode::BAD_GATEWAY,
        ErrorCode::InvalidRequest | ErrorCode::MalformedCall | ErrorCode::Dialog => {
            StatusCode::BAD_REQUEST
        }
        ErrorCode::AuditUnavailable | ErrorCode::KafkaUnavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ErrorCode::Storage | ErrorCode::Config | ErrorCode::Internal => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

impl IntoResponse for CoreError {
    fn into_response(self) -> Response {
        error(
            status(self.code),
            self.code,
            self.message,
            self.details.audit_seq,
        )
    }
}

/// Calls a tool through the gateway.
#[utoipa::path(
    post,
    path = "/v1/tools/{tool_id}/invoke",
    params(("tool_id" = String, Path, description = "Tool id from the catalogue, e.g. security.alert_triage")),
    request_body = InvokeBody,
    responses(
        (status = 200, description = "The tool ran", body = InvokeResponse),
        (status = 202, description = "The call waits for a human", body = InvokeResponse),
        (status = 401, description = "Missing or unknown token", body = ApiError),
        (status = 403, description = "Department, ruleset, sector, policy, allowlist or reviewer refused", body = ApiError),
        (status = 404, description = "Unknown tool", body = ApiError),
        (status = 409, description = "Mission not running, or a step or budget cap reached", body = ApiError),
        (status = 410, description = "Mission or approval expired", body = ApiError),
        (status = 422, description = "Arguments cannot be priced", body = ApiError),
        (status = 502, description = "The tool failed", body = ApiError),
    ),
    security(("bearer" = []))
)]
async fn invoke(
    State(core): State<Core>,
    tool_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Json<InvokeBody>, JsonRejection>,
) -> Response {
    let tool_id = match tool_id {
        Ok(Path(tool_id)) => tool_id,
        Err(rejection) => {
            return bad_request(format!(
                "the tool id in the path cannot be read ({rejection}); send it as UTF-8"
            ))
        }
    };
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim()
        .to_owned();
    let body = match body {
        Ok(Json(body)) => body,
        Err(rejection) => {
            return bad_request(format!(
                "the body must be {{\"args\": {{…}}, \"job_id\": …}}: {rejection}"
            ))
        }
    };
    let header_key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(key)) => Some(key.to_owned()),
        Some(Err(_)) => {
            return bad_request(
                "the Idempotency-Key header must be printable ASCII text".to_owned(),
            )
        }
    };
    let idempotency_key = match (header_key, body.idempotency_key) {
        (Some(h), Some(b)) if h != b => {
            return bad_request(format!(
                "the Idempotency-Key header ({h}) and the body's idempotency_key ({b}) differ; \
                 send one key"
            ))
        }
        (h, b) => h.or(b),
    };
    let call = ToolCall {
        token,
        tool_id,
        args: body.args,
        job_id: body.job_id,
        mission_id: body.mission_id,
        idempotency_key,
    };
    match core.invoke(call).await {
        Ok(CallOutcome::Executed(e)) => (
            StatusCode::OK,
            Json(InvokeResponse::Executed {
                output: e.output,
                cost_cents: e.cost_cents,
                simulated: e.simulated,
                step: e.step,
                authorized_by: e.authorized_by,
                policy_ids: e.policy_ids,
                audit_seq: e.audit_seq,
                replayed: e.replayed,
            }),
        )
            .into_response(),
        Ok(CallOutcome::Waiting(w)) => (
            StatusCode::ACCEPTED,
            Json(InvokeResponse::Waiting {
                approval_id: w.approval_id,
                expires_at: w.expires_at,
                reason: w.reason,
                audit_seq: w.audit_seq,
            }),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Body of a token exchange.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeBody {
    /// The one-time code from the department's context (`credential.code`).
    pub code: String,
}

/// A department's bearer token, for the code that was exchanged.
#[derive(Serialize, ToSchema)]
pub struct ExchangeResponse {
    /// The bearer token for `Authorization: Bearer …` on tool calls.
    pub token: String,
    /// The mission it is bound to.
    pub mission_id: String,
    /// The department it is bound to.
    pub dept: i64,
}

/// Exchanges an external agent's one-time code for its department's bearer token.
#[utoipa::path(
    post,
    path = "/v1/tokens/exchange",
    request_body = ExchangeBody,
    responses(
        (status = 200, description = "The token; the code is used up", body = ExchangeResponse),
        (status = 400, description = "The body is not {\"code\": \"…\"}", body = ApiError),
        (status = 401, description = "Unknown, used or expired code", body = ApiError),
        (status = 409, description = "The mission is over", body = ApiError),
    )
)]
async fn exchange(
    State(core): State<Core>,
    body: Result<Json<ExchangeBody>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(body)) => body,
        Err(rejection) => {
            return bad_request(format!("the body must be {{\"code\": \"…\"}}: {rejection}"))
        }
    };
    match core.exchange_token_code(&body.code).await {
        Ok(t) => Json(ExchangeResponse {
            token: t.token,
            mission_id: t.mission_id,
            dept: t.dept,
        })
        .into_response(),
        Err(e) => e.into_response(),
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Mission Control agent API",
        description = "Tool calls for department agents. Every call passes the gateway: token, \
                       mission state and time to live, sector authorization, steps, budget, \
                       approval mode, execution and the signed audit log."
    ),
    paths(invoke, exchange),
    components(schemas(InvokeBody, InvokeResponse, ExchangeBody, ExchangeResponse, ApiError)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// What the API serves, for the errors of requests it cannot route.
const ENDPOINTS: &str =
    "POST /v1/tools/{tool_id}/invoke, POST /v1/tokens/exchange and GET /v1/openapi.json";

/// A path no route matches: the same JSON error as the gateway's own.
async fn unknown_route(uri: Uri) -> Response {
    let code = ErrorCode::RouteNotFound;
    let message = format!(
        "the agent API has no endpoint at {}; it serves {ENDPOINTS}",
        uri.path()
    );
    error(status(code), code, message, None)
}

/// A known path asked with the wrong method.
async fn wrong_method(method: Method, uri: Uri) -> Response {
    let code = ErrorCode::MethodNotAllowed;
    let message = format!(
        "{method} is not served at {}; the API serves {ENDPOINTS}",
        uri.path()
    );
    error(status(code), code, message, None)
}

/// The API's routes over the core. Requests the router itself turns away (unknown path, wrong
/// method) get the same `{code, message}` JSON as the gateway's errors.
pub fn router(core: Core) -> Router {
    Router::new()
        .route("/v1/tools/{tool_id}/invoke", post(invoke))
        .route("/v1/tokens/exchange", post(exchange))
        .route("/v1/openapi.json", get(openapi))
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(core)
}

/// Binds the core's agent API address (the settings', or `config/gateway.json`'s loopback).
pub async fn bind(core: &Core) -> Result<tokio::net::TcpListener, CoreError> {
    let addr = core.api_address();
    tokio::net::TcpListener::bind(&addr).await.map_err(|e| {
        CoreError::new(
            ErrorCode::Config,
            format!(
                "The agent API could not listen on {addr} ({e}); is `missionctl serve` or \
                 another Mission Control running? Set MISSION_CONTROL_API_LISTEN to another \
                 address."
            ),
        )
    })
}

/// Serves the API on a bound listener until `shutdown` resolves. The gateway starts first:
/// the API is useless without it, so a missing signing key fails here, before any request.
pub async fn serve(
    listener: tokio::net::TcpListener,
    core: Core,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CoreError> {
    core.gateway().await?;
    axum::serve(listener, router(core))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| CoreError::internal(&e))
}
