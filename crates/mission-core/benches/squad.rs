//! Squad bus benchmark on librdkafka's in-process mock cluster (the embedded default): prints
//! figures, asserts only that every event arrives intact.
//!
//! - events per second through produce → consume: envelopes with their mission, job and event
//!   headers, published by the bus's idempotent producer and read back by a mission consumer
//!   that checks every header against its envelope;
//! - end-to-end latency (publish called → event consumed and checked) at a steady 1,000
//!   events per second, p50 and p99;
//! - the CPU that consumers with nothing to read cost while they wait (Linux);
//! - the CPU the whole core costs (engine, gateway, agents, relay, SQLite and the embedded
//!   cluster) while five missions of four departments each wait on approvals, over 60 s
//!   (Linux: read from /proc).
//!
//! Run: `cargo bench -p mission-core --bench squad`. With `KAFKA_BOOTSTRAP_SERVERS` set the
//! same figures are taken against real brokers.

#[allow(dead_code, reason = "this benchmark needs only the percentile helper")]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mission_core::app::{DeployRequest, KafkaSetting, KeyStore};
use mission_core::audit::Sealer;
use mission_core::gateway::Actor;
use mission_core::registry::hash::logic_hash;
use mission_core::registry::manifest::ManifestInput;
use mission_core::registry::ApprovalMode;
use mission_core::squad::{Bus, Envelope, KafkaMode};
use mission_core::{Core, Settings};
use serde_json::json;
use support::percentile;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Events in the throughput run.
const THROUGHPUT_EVENTS: usize = 200_000;
/// Events handed to the producer before waiting for their deliveries.
const PUBLISH_WINDOW: usize = 20_000;
/// Rate and length of the latency run.
const LATENCY_RATE: u64 = 1_000;
const LATENCY_SECONDS: u64 = 10;

fn bus() -> Bus {
    let mode = match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(servers) if !servers.trim().is_empty() => KafkaMode::from_bootstrap_servers(&servers),
        _ => KafkaMode::Embedded,
    };
    Bus::start(mode).expect("start the bus")
}

fn event(mission: &str, n: usize, sent_ns: u128) -> Envelope {
    Envelope::new(
        mission,
        &format!("job-{}", n % 7),
        i64::try_from(n % 5).unwrap_or(0) + 1,
        "job.result",
        json!({ "step": n, "sent_ns": sent_ns.to_string(), "output": { "outcome": "completed", "value_cents": 42 } }),
    )
}

async fn throughput(bus: Arc<Bus>) {
    let mission = uuid::Uuid::now_v7().to_string();
    bus.ensure_mission_topic(&mission).await.expect("topic");
    let stream = bus.mission_stream(&mission, 1).expect("consumer");
    // Built first: a reader away longer than the idle window pauses its stream, and the
    // embedded cluster keeps only the newest few MB of a partition, which a stream paused at
    // the start of a 200,000-event run would fall behind.
    let events: Vec<(String, Envelope)> = (1..=THROUGHPUT_EVENTS)
        .map(|n| {
            (
                mission_core::squad::mission_topic(&mission),
                event(&mission, n, 0),
            )
        })
        .collect();
    // Warm the consumer's fetch session so the figure is the steady state, not its start-up.
    bus.publish(&event(&mission, 0, 0)).await.expect("warm-up");
    stream.next().await.expect("warm-up event");
    let started = Instant::now();
    let consumer = tokio::spawn(async move {
        let mut last = 0;
        for _ in 0..THROUGHPUT_EVENTS {
            let got = stream.next().await.expect("event");
            assert_eq!(got.header_mission_id, got.envelope.mission_id);
            assert_eq!(got.header_job_id, got.envelope.job_id);
            last = got.offset;
        }
        (Instant::now(), last)
    });
    for window in events.chunks(PUBLISH_WINDOW) {
        for outcome in bus.publish_all(window).await {
            outcome.expect("delivered");
        }
    }
    let produced = started.elapsed();
    let (done, last_offset) = consumer.await.expect("consumer");
    let total = done - started;
    assert_eq!(
        last_offset,
        i64::try_from(THROUGHPUT_EVENTS).expect("fits"),
        "every event, in order"
    );
    println!(
        "produce → consume with headers: {THROUGHPUT_EVENTS} events in {:.2} s = {:.0} events/s \
         (all delivered to the broker after {:.2} s)",
        total.as_secs_f64(),
        THROUGHPUT_EVENTS as f64 / total.as_secs_f64(),
        produced.as_secs_f64()
    );
}

async fn latency(bus: Arc<Bus>) {
    let mission = uuid::Uuid::now_v7().to_string();
    bus.ensure_mission_topic(&mission).await.expect("topic");
    let stream = bus.mission_stream(&mission, 1).expect("consumer");
    bus.publish(&event(&mission, 0, 0)).await.expect("warm-up");
    stream.next().await.expect("warm-up event");

    let origin = Instant::now();
    let count = usize::try_from(LATENCY_RATE * LATENCY_SECONDS).expect("fits");
    let consumer = tokio::spawn(async move {
        let mut samples = Vec::with_capacity(count);
        for _ in 0..count {
            let got = stream.next().await.expect("event");
            let sent: u128 = got.envelope.payload["sent_ns"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("sent_ns");
            let now = origin.elapsed().as_nanos();
            samples.push(Duration::from_nanos(
                u64::try_from(now.saturating_sub(sent)).unwrap_or(u64::MAX),
            ));
        }
        samples
    });
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / LATENCY_RATE));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut deliveries = tokio::task::JoinSet::new();
    for n in 1..=count {
        ticker.tick().await;
        let bus = Arc::clone(&bus);
        let e = event(&mission, n, origin.elapsed().as_nanos());
        deliveries.spawn(async move { bus.publish(&e).await.expect("delivered") });
    }
    while let Some(done) = deliveries.join_next().await {
        done.expect("publish task");
    }
    let mut samples = consumer.await.expect("consumer");
    samples.sort();
    println!(
        "end-to-end latency at {LATENCY_RATE} events/s for {LATENCY_SECONDS} s ({count} events): \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
}

/// Idle consumers this many, as a desktop with five missions of four departments has.
const IDLE_CONSUMERS: usize = 20;
const IDLE_SECONDS: u64 = 10;

/// This process's CPU time (user + system) in clock ticks, from /proc.
#[cfg(target_os = "linux")]
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(user + system)
}

/// What waiting costs: CPU used by consumers that have nothing to read (each polls its broker).
#[cfg(target_os = "linux")]
async fn idle(bus: Arc<Bus>) {
    let mut waiting = tokio::task::JoinSet::new();
    for _ in 0..IDLE_CONSUMERS {
        let mission = uuid::Uuid::now_v7().to_string();
        bus.ensure_mission_topic(&mission).await.expect("topic");
        let stream = bus.mission_stream(&mission, 1).expect("consumer");
        waiting.spawn(async move {
            let _ = stream.next().await;
        });
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (Some(before), started) = (cpu_ticks(), Instant::now()) else {
        return;
    };
    tokio::time::sleep(Duration::from_secs(IDLE_SECONDS)).await;
    let Some(after) = cpu_ticks() else { return };
    // Linux reports these in USER_HZ, 100 per second on every mainstream configuration.
    let cpu_seconds = (after - before) as f64 / 100.0;
    let share = cpu_seconds / started.elapsed().as_secs_f64() * 100.0;
    println!(
        "idle: {IDLE_CONSUMERS} consumers with nothing to read for {IDLE_SECONDS} s use {share:.1} % \
         of one core in all ({:.2} % each), broker included",
        share / IDLE_CONSUMERS as f64
    );
    waiting.abort_all();
}

/// Missions, and departments each, waiting on a human in the whole-core figure.
const WAITING_MISSIONS: usize = 5;
const WAITING_SECONDS: u64 = 60;

/// A four-department template whose first step posts to the ledger: in Strict mode every
/// mission waits there for a reviewer.
fn waiting_template() -> serde_json::Value {
    let ruleset = json!({
        "allowed_tools": ["finance.journal_entry_post", "finance.ledger_query", "finance.variance_report"],
        "plan": [
            {"dept": 4, "action": "Post the opening adjustment.", "tool": "finance.journal_entry_post"},
            {"dept": 3, "action": "Explain the movements.", "tool": "finance.variance_report"},
            {"dept": 2, "action": "Pull the balances.", "tool": "finance.ledger_query"},
            {"dept": 1, "action": "Record the close."}
        ],
        "forbidden_actions": ["Post to a closed period"]
    });
    let hash = logic_hash(&ruleset).expect("hash");
    json!({
        "id": "finance.bench-waiting-close",
        "name": "Bench close that waits",
        "sector": "finance",
        "category": "Treasury",
        "goal": "Close the month once a reviewer lets the adjustment through.",
        "required_depts": [1, 2, 3, 4],
        "ruleset": ruleset,
        "default_perimeter": {"budget_cents": 50000, "ttl_seconds": 86400, "max_steps": 50, "approval_mode": "Strict"},
        "risk_level": "Medium",
        "logic_hash": hash
    })
}

/// What a waiting desktop costs: the whole core with five Strict missions of four departments
/// waiting on their approvals, CPU over [`WAITING_SECONDS`] from /proc.
#[cfg(target_os = "linux")]
async fn waiting_squads(bus: Arc<Bus>) {
    let dir = tempfile::tempdir().expect("dir");
    let mut settings =
        Settings::bundled(Some(dir.path().join("bench.sqlite3").display().to_string()))
            .expect("settings");
    settings.keystore = KeyStore::key(Sealer::generate());
    settings.bundled_library = false;
    settings.kafka = KafkaSetting::Bus(bus);
    settings.api_listen = Some("127.0.0.1:0".to_owned());
    let core = Core::open(settings).await.expect("core");
    let manifest = json!({"manifest_version": 1, "templates": [waiting_template()]});
    core.registry()
        .import(&[ManifestInput {
            name: "bench.json".to_owned(),
            bytes: manifest.to_string().into_bytes(),
        }])
        .await
        .expect("import");
    core.start_squads().await.expect("engine");
    let operator = Actor::Operator("bench".to_owned());
    for _ in 0..WAITING_MISSIONS {
        core.deploy(
            &operator,
            &DeployRequest {
                template_id: "finance.bench-waiting-close".to_owned(),
                budget_cents: None,
                ttl_seconds: None,
                max_steps: None,
                approval_mode: Some(ApprovalMode::Strict),
                threshold_cents: None,
                connections: Vec::new(),
            },
        )
        .await
        .expect("deploy");
    }
    let started = Instant::now();
    while core.pending_approvals().await.expect("count") < WAITING_MISSIONS as u32 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the missions never waited"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let start-up work (assembly, the first relay passes) finish before measuring.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (Some(before), started) = (cpu_ticks(), Instant::now()) else {
        return;
    };
    tokio::time::sleep(Duration::from_secs(WAITING_SECONDS)).await;
    let Some(after) = cpu_ticks() else { return };
    let share = (after - before) as f64 / 100.0 / started.elapsed().as_secs_f64() * 100.0;
    println!(
        "waiting: the whole core with {WAITING_MISSIONS} missions of 4 departments waiting on \
         approvals uses {share:.2} % of one core over {WAITING_SECONDS} s"
    );
    core.close().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let bus = Arc::new(bus());
        println!("Kafka: {}", bus.mode().describe());
        throughput(Arc::clone(&bus)).await;
        latency(Arc::clone(&bus)).await;
        #[cfg(target_os = "linux")]
        idle(Arc::clone(&bus)).await;
        #[cfg(target_os = "linux")]
        waiting_squads(bus).await;
    });
}
