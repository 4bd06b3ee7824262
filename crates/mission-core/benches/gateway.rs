//! Gateway benchmark: prints figures, asserts only that the calls succeed.
//!
//! - the sector authorization decision alone (Cedar), p50/p99 in-process, over a mix of
//!   same-sector, connected and refused tools;
//! - audited tool calls per second end to end: HTTP on loopback into the agent API, through
//!   every gateway check, the simulated executor and the signed audit log, on SQLite and on
//!   Postgres.
//!
//! Run: `cargo bench -p mission-core --bench gateway`. Postgres is taken from
//! `TEST_POSTGRES_URL` (default postgres://postgres@127.0.0.1:5432/postgres); a throwaway
//! database is created and dropped. The signing key is generated in memory: a benchmark never
//! touches the keychain.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mission_core::app::KeyStore;
use mission_core::audit::Sealer;
use mission_core::gateway::{Actor, Gateway, GatewayError};
use mission_core::perimeter::{Missions, SaveMissionRequest};
use mission_core::registry::hash::logic_hash;
use mission_core::registry::manifest::ManifestInput;
use mission_core::registry::ApprovalMode;
use mission_core::{Core, Registry, Settings};
use serde_json::json;
use support::{percentile, ThrowawayPostgres};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Audited calls per run of the HTTP figure.
const HTTP_CALLS: usize = 20_000;
/// Calls in flight at once (agents of many missions calling together): the HTTP figure is
/// printed for each.
const IN_FLIGHT: [usize; 2] = [64, 256];
/// The most in flight, for the in-process figure and connection pool.
const CONCURRENCY: usize = 256;

fn sealer() -> Sealer {
    Sealer::generate()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A running Auto mission of `template_id` at its caps, with the first `grants` of its declared
/// connections granted; returns (mission id, department-1 token, the tool to call).
async fn running_mission(
    core: &Core,
    gateway: &Gateway,
    template_id: &str,
    grants: usize,
) -> (String, String, String) {
    let registry = core.registry();
    let missions = Missions::new(registry.clone(), core.repository().clone());
    let draft = missions.draft(template_id).await.expect("draft");
    let saved = missions
        .save(
            &SaveMissionRequest {
                request_id: uuid::Uuid::now_v7().to_string(),
                template_id: template_id.to_owned(),
                template_version: draft.template.version,
                budget_cents: draft.hard_caps.budget_cents,
                ttl_seconds: draft.hard_caps.ttl_seconds,
                max_steps: draft.hard_caps.max_steps,
                approval_mode: ApprovalMode::Auto,
                threshold_cents: None,
                connections: draft
                    .connections
                    .iter()
                    .take(grants)
                    .map(|c| c.sector.clone())
                    .collect(),
            },
            "bench",
        )
        .await
        .expect("save");
    let id = saved.mission.id;
    let bench = Actor::Operator("bench".to_owned());
    gateway
        .start_mission::<GatewayError>(&bench, &id)
        .await
        .expect("start");
    let token = gateway
        .issue_token::<GatewayError>(&bench, &id, 1)
        .await
        .expect("token");
    // The cheapest tool of the mission's own sector without outside effects.
    let tool = registry
        .catalog()
        .tools()
        .iter()
        .filter(|t| {
            t.sector == draft.template.heading.sector && !t.side_effects && t.endpoint.is_none()
        })
        .min_by_key(|t| t.cost.cents)
        .map(|t| t.id.clone())
        .expect("a tool of the mission's sector");
    (id, token, tool)
}

/// The core over a database, signing with a key held in memory.
async fn core_over(url: &str) -> (Core, Registry, Gateway) {
    let mut settings = Settings::bundled(Some(url.to_owned())).expect("settings");
    settings.keystore = KeyStore::key(sealer());
    settings.bundled_library = false;
    let core = Core::open(settings).await.expect("core");
    let gateway = core.gateway().await.expect("gateway").clone();
    (core.clone(), core.registry().clone(), gateway)
}

/// One template per sector whose perimeter allows the global caps (so a handful of missions
/// hold every measured call), connectable to every other sector; returns their ids.
async fn bench_templates(registry: &Registry) -> Vec<String> {
    let catalog = registry.catalog();
    let templates: Vec<serde_json::Value> = catalog
        .sectors()
        .iter()
        .map(|sector| {
            let others: Vec<&str> = catalog
                .sectors()
                .iter()
                .filter(|s| s.id != sector.id)
                .map(|s| s.id.as_str())
                .collect();
            let tool = catalog
                .tools()
                .iter()
                .find(|t| t.sector == sector.id)
                .expect("every sector has a tool");
            // Every tool of its own sector, so the calls measured pass the ruleset.
            let own_tools: Vec<&str> = catalog
                .tools()
                .iter()
                .filter(|t| t.sector == sector.id)
                .map(|t| t.id.as_str())
                .collect();
            let ruleset = json!({
                "allowed_tools": own_tools,
                "plan": [{"dept": 1, "action": "Call the sector's tool.", "tool": tool.id}],
                "forbidden_actions": ["Anything outside the perimeter"]
            });
            json!({
                "id": format!("{}.gateway-bench", sector.id),
                "name": format!("{} gateway benchmark", sector.name),
                "sector": sector.id,
                "category": sector.categories[0],
                "goal": format!("Drive the gateway from the {} sector.", sector.name),
                "required_depts": [1],
                "connected_sectors": others,
                "logic_hash": logic_hash(&ruleset).expect("hash"),
                "ruleset": ruleset,
                "default_perimeter": {
                    "budget_cents": catalog.policy().hard_caps.budget_cents,
                    "ttl_seconds": 86400,
                    "max_steps": catalog.policy().hard_caps.max_steps,
                    "approval_mode": "Auto"
                },
                "risk_level": "Low"
            })
        })
        .collect();
    let ids = templates
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .collect();
    let manifest = json!({"manifest_version": 1, "templates": templates});
    registry
        .import(&[ManifestInput::new(
            "gateway-bench.json",
            serde_json::to_vec(&manifest).expect("json"),
        )])
        .await
        .expect("import the benchmark's templates");
    ids
}

async fn bench_authorization(core: &Core, gateway: &Gateway) {
    let registry = core.registry();
    let templates = bench_templates(registry).await;
    let mut rows = Vec::new();
    // Missions with none, some and all of their connections granted.
    for (n, t) in templates.iter().enumerate() {
        let (id, _, _) = running_mission(core, gateway, t, [0, 3, usize::MAX][n % 3]).await;
        rows.push(
            core.repository()
                .mission_row(&id)
                .await
                .expect("row")
                .expect("mission"),
        );
    }
    let tools = registry.catalog().tools();
    let authz = gateway.authorizer();
    // Warm the per-mission policy cache, as the first call of each mission does.
    for row in &rows {
        authz.decide(row, &tools[0]).expect("decide");
    }
    let mut samples = Vec::with_capacity(rows.len() * tools.len() * 40);
    let (mut allowed, mut denied) = (0usize, 0usize);
    for _ in 0..40 {
        for row in &rows {
            for tool in tools {
                let t = Instant::now();
                let decision = authz.decide(row, tool).expect("decide");
                samples.push(t.elapsed());
                if decision.allowed {
                    allowed += 1;
                } else {
                    denied += 1;
                }
            }
        }
    }
    samples.sort();
    println!(
        "authorization decision (Cedar, in-process; {} decisions over {} missions x {} tools, \
         {allowed} allowed / {denied} refused): p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        samples.len(),
        rows.len(),
        tools.len(),
        micros(percentile(&samples, 0.50)),
        micros(percentile(&samples, 0.99)),
        micros(samples[samples.len() - 1]),
    );
}

/// Calls per second through the agent API on loopback; every call is audited and signed.
async fn bench_http(label: &str, url: &str) {
    let (core, registry, gateway) = core_over(url).await;
    let templates = bench_templates(&registry).await;
    let mut agents = Vec::new();
    let mut capacity = 0i64;
    for t in &templates {
        let (id, token, tool) = running_mission(&core, &gateway, t, 0).await;
        capacity += gateway.usage(&id).await.expect("usage").max_steps;
        agents.push((token, tool));
    }
    assert!(
        capacity >= (HTTP_CALLS * IN_FLIGHT.len() + HTTP_CALLS / 4 + CONCURRENCY * 4) as i64,
        "the chosen missions allow only {capacity} steps"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mission_core::api::serve(listener, core.clone(), async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .expect("client");
    let agents = Arc::new(agents);
    let next = Arc::new(AtomicUsize::new(0));
    let run = |calls: usize, in_flight: usize| {
        let next = Arc::clone(&next);
        let agents = Arc::clone(&agents);
        let client = client.clone();
        async move {
            next.store(0, Ordering::SeqCst);
            let started = Instant::now();
            let workers: Vec<_> = (0..in_flight)
                .map(|_| {
                    let next = Arc::clone(&next);
                    let agents = Arc::clone(&agents);
                    let client = client.clone();
                    tokio::spawn(async move {
                        let mut latencies = Vec::new();
                        loop {
                            let n = next.fetch_add(1, Ordering::Relaxed);
                            if n >= calls {
                                return latencies;
                            }
                            let (token, tool) = &agents[n % agents.len()];
                            let t = Instant::now();
                            let response = client
                                .post(format!("http://{addr}/v1/tools/{tool}/invoke"))
                                .bearer_auth(token)
                                .json(&json!({ "args": { "n": n }, "job_id": "bench" }))
                                .send()
                                .await
                                .expect("send");
                            let status = response.status();
                            let body = response.bytes().await.expect("body");
                            assert!(
                                status.is_success(),
                                "call {n} failed: {status} {}",
                                String::from_utf8_lossy(&body)
                            );
                            latencies.push(t.elapsed());
                        }
                    })
                })
                .collect();
            let mut latencies = Vec::with_capacity(calls);
            for w in workers {
                latencies.extend(w.await.expect("worker"));
            }
            (started.elapsed(), latencies)
        }
    };
    // The same calls straight into the gateway, without HTTP: what the transport costs.
    let direct = {
        let started = Instant::now();
        let next = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..CONCURRENCY)
            .map(|_| {
                let next = Arc::clone(&next);
                let agents = Arc::clone(&agents);
                let gateway = gateway.clone();
                tokio::spawn(async move {
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= HTTP_CALLS / 4 {
                            return;
                        }
                        let (token, tool) = &agents[n % agents.len()];
                        gateway
                            .invoke(mission_core::gateway::ToolCall {
                                token: token.clone(),
                                tool_id: tool.clone(),
                                args: json!({ "n": n }),
                                job_id: Some("bench".to_owned()),
                                mission_id: None,
                                idempotency_key: None,
                            })
                            .await
                            .expect("direct call");
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.expect("worker");
        }
        (HTTP_CALLS / 4) as f64 / started.elapsed().as_secs_f64()
    };
    println!("audited tool calls in-process (no HTTP), {label}: {direct:.0} calls/s");
    // Warm connections and caches, then measure.
    run(CONCURRENCY * 4, CONCURRENCY).await;
    for in_flight in IN_FLIGHT {
        let (elapsed, mut latencies) = run(HTTP_CALLS, in_flight).await;
        latencies.sort();
        println!(
            "audited tool calls over HTTP on loopback, {label}: {:.0} calls/s ({HTTP_CALLS} \
             calls, {in_flight} in flight, {} missions; latency p50 {:.2} ms, p99 {:.2} ms)",
            HTTP_CALLS as f64 / elapsed.as_secs_f64(),
            agents.len(),
            micros(percentile(&latencies, 0.50)) / 1e3,
            micros(percentile(&latencies, 0.99)) / 1e3,
        );
    }
    let _ = stop.send(());
    server.await.expect("server task").expect("server");
    // Checked against this run's own key, given explicitly (the benchmark has no anchor file).
    let key = core.audit_public_key().await.expect("key");
    let report = core.verify_audit(&[key.public_key]).await.expect("verify");
    assert!(
        report.ok,
        "the benchmark's audit chain must verify: {report:?}"
    );
    println!(
        "  audit chain after the run, {label}: {} records, verified intact",
        report.records
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().expect("dir");

    let url = format!("sqlite://{}", dir.path().join("authz.sqlite3").display());
    let (core, _registry, gateway) = core_over(&url).await;
    bench_authorization(&core, &gateway).await;

    let url = format!("sqlite://{}", dir.path().join("http.sqlite3").display());
    bench_http("SQLite", &url).await;

    let pg = ThrowawayPostgres::create().await;
    bench_http("Postgres", &pg.url).await;
    pg.drop_db().await;
}
