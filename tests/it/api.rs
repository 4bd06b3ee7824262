//! The agent API over real HTTP on loopback: status codes and JSON errors, the OpenAPI
//! document, `http` tools limited to the allowlist, and an admin policy overriding a permit.

use axum::routing::post;
use axum::{Json, Router};
use mission_core::audit::AuditDecision;
use mission_core::gateway::GatewayConfig;
use mission_core::registry::ApprovalMode;
use mission_core::Catalog;
use serde_json::{json, Value};

use crate::gateway::{rig_with, running, Rig, Spec};
use crate::helpers::TestDb;
use mission_core::units::Cents;

crate::on_both_backends!(
    the_api_runs_waits_and_refuses_calls_with_json_errors,
    requests_the_router_turns_away_get_the_same_json_errors,
);

const SECTORS: &str = include_str!("../../config/sectors.json");
const DEPARTMENTS: &str = include_str!("../../config/departments.json");
const TOOLS: &str = include_str!("../../config/tools.json");
const POLICY: &str = include_str!("../../config/policy.json");

/// The bundled catalogue plus three `http` tools: one read-only on loopback, one with side
/// effects on loopback, one on a host the allowlist does not name.
pub(crate) fn catalog_with_http_tools(port: u16) -> Catalog {
    let mut tools: Value = serde_json::from_str(TOOLS).expect("tools");
    let list = tools["tools"].as_array_mut().expect("tools array");
    for (id, side_effects, endpoint) in [
        (
            "intelligence.loopback_fetch",
            false,
            format!("http://127.0.0.1:{port}/fetch"),
        ),
        (
            "intelligence.loopback_push",
            true,
            format!("http://127.0.0.1:{port}/push"),
        ),
        (
            "intelligence.outside_fetch",
            false,
            "http://203.0.113.7/fetch".to_owned(),
        ),
    ] {
        list.push(json!({
            "id": id, "name": id, "sector": "intelligence", "side_effects": side_effects,
            "cost": {"model": "flat", "cents": 7}, "risk": "Low", "kind": "http",
            "endpoint": endpoint
        }));
    }
    Catalog::from_json(SECTORS, DEPARTMENTS, &tools.to_string(), POLICY).expect("catalog")
}

async fn the_api_runs_waits_and_refuses_calls_with_json_errors(db: TestDb) {
    // The endpoint an `http` tool calls: echoes what it got.
    let tool_server = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = tool_server.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let app = Router::new().route(
            "/fetch",
            post(|Json(body): Json<Value>| async move { Json(json!({"echo": body})) }),
        );
        axum::serve(tool_server, app).await.expect("tool server");
    });
    let rig: Rig = rig_with(
        &db,
        catalog_with_http_tools(port),
        GatewayConfig::bundled().expect("config"),
    )
    .await;
    // The test app serves the agent API on a free port.
    let base = rig.app.api.clone();
    let client = reqwest::Client::new();
    let post = |tool: &str, token: &str, body: Value| {
        client
            .post(format!("{base}/v1/tools/{tool}/invoke"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };

    let (mission, token) = running(&rig, Spec::auto("intelligence")).await;
    // A built-in tool runs: 200 with a simulated result.
    let ok = post(
        "intelligence.news_scan",
        &token,
        json!({"args": {"items": 3}, "job_id": "j1"}),
    )
    .await
    .expect("send");
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.expect("json");
    assert_eq!(body["status"], "executed");
    assert_eq!(body["simulated"], true);
    assert_eq!(body["output"]["simulated"], true);
    assert_eq!(body["cost_cents"], 3);

    // An allowlisted `http` tool is really called; its answer comes back unsimulated.
    let http = post(
        "intelligence.loopback_fetch",
        &token,
        json!({"args": {"q": "rates"}}),
    )
    .await
    .expect("send");
    assert_eq!(http.status(), 200);
    let body: Value = http.json().await.expect("json");
    assert_eq!(body["simulated"], false);
    assert_eq!(body["output"]["echo"]["q"], "rates");

    // A host off the allowlist is refused before any request leaves.
    let outside = post("intelligence.outside_fetch", &token, json!({"args": {}}))
        .await
        .expect("send");
    assert_eq!(outside.status(), 403);
    let body: Value = outside.json().await.expect("json");
    assert_eq!(body["code"], "host_not_allowed");
    assert!(body["message"]
        .as_str()
        .expect("message")
        .contains("203.0.113.7"));

    // The admin policy forbids an Auto mission's outbound side effects, whatever permits it.
    let pushed = post("intelligence.loopback_push", &token, json!({"args": {}}))
        .await
        .expect("send");
    assert_eq!(pushed.status(), 403);
    let body: Value = pushed.json().await.expect("json");
    assert_eq!(body["code"], "sector_denied");
    let seq = body["audit_seq"].as_i64().expect("seq");
    let entry = mission_core::audit::AuditLog::new(rig.core.repository().clone())
        .page(&mission_core::audit::AuditQuery {
            before_seq: Some(seq + 1),
            limit: 1,
            ..Default::default()
        })
        .await
        .expect("page")
        .entries
        .remove(0);
    assert_eq!(entry.record.decision, AuditDecision::Denied);
    assert_eq!(
        entry.record.policy_ids,
        ["admin/no-unattended-outbound-side-effects"]
    );

    // No token, a forged token, another sector: JSON errors with codes.
    let anonymous = client
        .post(format!("{base}/v1/tools/intelligence.news_scan/invoke"))
        .json(&json!({"args": {}}))
        .send()
        .await
        .expect("send");
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.expect("json");
    assert_eq!(body["code"], "unauthenticated");
    let cross = post("trading.market_data_fetch", &token, json!({"args": {}}))
        .await
        .expect("send");
    assert_eq!(cross.status(), 403);
    assert_eq!(
        cross.json::<Value>().await.expect("json")["code"],
        "sector_denied"
    );
    let unknown = post("intelligence.nothing", &token, json!({"args": {}}))
        .await
        .expect("send");
    assert_eq!(unknown.status(), 404);
    let malformed = client
        .post(format!("{base}/v1/tools/intelligence.news_scan/invoke"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(malformed.status(), 400);
    assert_eq!(
        malformed.json::<Value>().await.expect("json")["code"],
        "invalid_request"
    );

    // A Strict mission's side-effecting call waits: 202 with the approval to wait for.
    let (_, strict) = running(
        &rig,
        Spec {
            mode: ApprovalMode::Strict,
            ..Spec::auto("intelligence")
        },
    )
    .await;
    let side_effect = rig
        .catalog
        .tools()
        .iter()
        .find(|t| t.sector == "intelligence" && t.side_effects && t.kind == "builtin")
        .expect("a side-effecting intelligence tool");
    let held = post(&side_effect.id, &strict, json!({"args": {}}))
        .await
        .expect("send");
    assert_eq!(held.status(), 202);
    let body: Value = held.json().await.expect("json");
    assert_eq!(body["status"], "waiting");
    assert!(body["approval_id"].as_str().is_some());

    // The OpenAPI document describes the invoke path and the bearer scheme.
    let doc: Value = client
        .get(format!("{base}/v1/openapi.json"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(doc["paths"]["/v1/tools/{tool_id}/invoke"]["post"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let usage = rig.gateway.usage(&mission).await.expect("usage");
    assert_eq!(usage.spent_cents, Cents(3 + 7));
}

/// Sends one request exactly as written (no client normalises its path) and returns the status
/// and the body as JSON.
async fn raw_request(base: &str, request_line: &str, token: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let request = format!(
        "{request_line} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 12\r\nConnection: close\r\n\r\n\
         {{\"args\": {{}}}}"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{request_line}: not JSON:\n{head}"
    );
    (status, serde_json::from_str(body).expect("a JSON body"))
}

async fn requests_the_router_turns_away_get_the_same_json_errors(db: TestDb) {
    let rig = crate::gateway::rig(&db).await;
    let (mission, token) = running(&rig, Spec::auto("intelligence")).await;
    let base = rig.app.api.clone();
    let records = |rig: &Rig| {
        let core = rig.core.clone();
        async move {
            core.audit_page(&mission_core::audit::AuditQuery {
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("audit")
            .entries
            .len()
        }
    };
    let before = records(&rig).await;

    for (request_line, status, code) in [
        // A path that only a client's normalisation would turn into a tool.
        ("POST /v1/tools/../x", 404, "route_not_found"),
        (
            "POST /v1/tools/intelligence.news_scan/../../x",
            404,
            "route_not_found",
        ),
        ("POST /v1/nothing", 404, "route_not_found"),
        // A tool id that is not UTF-8 once decoded.
        ("POST /v1/tools/%FF%FE/invoke", 400, "invalid_request"),
        // A known endpoint with the wrong method.
        (
            "GET /v1/tools/intelligence.news_scan/invoke",
            405,
            "method_not_allowed",
        ),
        ("DELETE /v1/openapi.json", 405, "method_not_allowed"),
    ] {
        let (got, body) = raw_request(&base, request_line, &token).await;
        assert_eq!(got, status, "{request_line}: {body}");
        assert_eq!(body["code"], code, "{request_line}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{request_line}: {body}"
        );
    }

    // None of them reached the gateway: nothing ran, nothing was counted or recorded.
    let view = rig.core.mission_view(&mission).await.expect("view");
    assert_eq!(view.usage.steps_used, 0);
    assert_eq!(view.usage.spent_cents, Cents::ZERO);
    assert_eq!(records(&rig).await, before);
}
