//! The squad bus on librdkafka's in-process mock cluster (the embedded default), or on real
//! brokers when `KAFKA_BOOTSTRAP_SERVERS` is set: every consumed event carries its mission and
//! job in both the headers and the envelope, and one mission never sees another's events.

use std::time::Duration;

use mission_core::squad::{
    mission_topic, Bus, Envelope, KafkaMode, KafkaSecurity, MissionStream, Received,
};
use serde_json::json;

fn mode() -> KafkaMode {
    match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(servers) if !servers.trim().is_empty() => KafkaMode::Brokers {
            bootstrap_servers: servers,
        },
        _ => KafkaMode::Embedded,
    }
}

pub(crate) fn bus() -> Bus {
    Bus::start(mode()).expect("start the bus")
}

/// A bus whose publishes give up after `message_timeout` (outage tests).
pub(crate) fn bus_with_timeout(message_timeout: Duration) -> Bus {
    Bus::start_with(mode(), &KafkaSecurity::default(), message_timeout).expect("start the bus")
}

async fn take(stream: &MissionStream, count: usize) -> Vec<Received> {
    let mut got = Vec::with_capacity(count);
    while got.len() < count {
        let next = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} events arrived", got.len()));
        got.push(next.expect("a well-formed event"));
    }
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn each_mission_reads_only_its_own_events_with_mission_and_job_in_headers_and_envelope() {
    let bus = bus();
    if std::env::var_os("KAFKA_BOOTSTRAP_SERVERS").is_none() {
        assert_eq!(bus.mode(), &KafkaMode::Embedded);
        assert!(bus.mock_cluster().is_some());
    }
    let (a, b) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    bus.ensure_mission_topic(&a).await.expect("topic a");
    bus.ensure_mission_topic(&b).await.expect("topic b");

    let mut sent_a = Vec::new();
    let mut sent_b = Vec::new();
    for n in 0..6 {
        let (mission, sent) = if n % 3 == 0 {
            (&b, &mut sent_b)
        } else {
            (&a, &mut sent_a)
        };
        let job = format!("job-{}-{n}", &mission[..8]);
        let event = Envelope::new(mission, &job, 1 + n % 3, "step.result", json!({ "n": n }));
        bus.publish(&event).await.expect("publish");
        sent.push(event);
    }

    let stream_a = bus.mission_stream(&a, 3).expect("consumer a");
    let stream_b = bus.mission_stream(&b, 3).expect("consumer b");
    let got_a = take(&stream_a, sent_a.len()).await;
    let got_b = take(&stream_b, sent_b.len()).await;
    for (got, sent, mission) in [(&got_a, &sent_a, &a), (&got_b, &sent_b, &b)] {
        let envelopes: Vec<&Envelope> = got.iter().map(|r| &r.envelope).collect();
        assert_eq!(
            envelopes,
            sent.iter().collect::<Vec<_>>(),
            "in order, complete"
        );
        for r in got {
            assert_eq!(&r.header_mission_id, mission);
            assert_eq!(&r.envelope.mission_id, mission);
            assert_eq!(&r.key, mission);
            assert_eq!(r.header_job_id, r.envelope.job_id);
            assert!(r
                .envelope
                .job_id
                .starts_with(&format!("job-{}", &mission[..8])));
        }
    }
    // Nothing else is on either topic: the other mission's events never arrive.
    for stream in [&stream_a, &stream_b] {
        let extra = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
        assert!(
            extra.is_err(),
            "unexpected event on {}: {extra:?}",
            stream.topic()
        );
    }
}

/// The mock cluster's broker goes down while events are being published: they wait in the
/// idempotent producer and all arrive once it is back, each exactly once and in order.
#[tokio::test(flavor = "multi_thread")]
async fn events_published_while_the_broker_is_down_arrive_once_it_is_back() {
    let bus = std::sync::Arc::new(Bus::start(KafkaMode::Embedded).expect("start the bus"));
    let mission = uuid::Uuid::now_v7().to_string();
    bus.ensure_mission_topic(&mission).await.expect("topic");
    let before = Envelope::new(&mission, "job-1", 1, "step.result", json!({"n": 0}));
    bus.publish(&before)
        .await
        .expect("publish before the outage");

    bus.mock_cluster()
        .expect("embedded")
        .broker_down(1)
        .expect("broker down");
    let during: Vec<Envelope> = (1..=5)
        .map(|n| Envelope::new(&mission, "job-2", 2, "step.result", json!({ "n": n })))
        .collect();
    // One batch, queued in order at once, as the outbox relay sends it.
    let batch: Vec<(String, Envelope)> = during
        .iter()
        .map(|e| (mission_topic(&mission), e.clone()))
        .collect();
    let sender = std::sync::Arc::clone(&bus);
    let mut sending = tokio::spawn(async move { sender.publish_all(&batch).await });
    // Nothing settles while the broker is down: the batch is still pending after a window in
    // which a live broker would long have answered.
    assert!(
        tokio::time::timeout(Duration::from_millis(800), &mut sending)
            .await
            .is_err(),
        "an event was settled while the broker was down"
    );
    bus.mock_cluster()
        .expect("embedded")
        .broker_up(1)
        .expect("broker up");
    let outcomes = tokio::time::timeout(Duration::from_secs(30), sending)
        .await
        .expect("delivered after recovery")
        .expect("task");
    assert!(
        outcomes.iter().all(Result::is_ok),
        "each event delivered: {outcomes:?}"
    );

    let stream = bus.mission_stream(&mission, 1).expect("consumer");
    let got = take(&stream, 1 + during.len()).await;
    let mut expected = vec![before];
    expected.extend(during);
    let envelopes: Vec<Envelope> = got.into_iter().map(|r| r.envelope).collect();
    assert_eq!(envelopes, expected, "every event once, in order");
    let extra = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
    assert!(extra.is_err(), "a duplicate arrived: {extra:?}");
}

/// The embedded cluster answers a produce request in a way that leaves it uncertain (nothing
/// written, though it may have been) while the next event is already on its way: the event is
/// sent again and reported delivered only once it is in the topic, before the next one. The
/// cluster does not check an idempotent producer's sequence numbers, so a later request it
/// accepted would otherwise make librdkafka take the earlier one for written, and the event
/// would be reported delivered yet be missing.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_whose_write_is_uncertain_is_in_the_topic_before_the_next_one() {
    let bus = std::sync::Arc::new(Bus::start(KafkaMode::Embedded).expect("start the bus"));
    let mission = uuid::Uuid::now_v7().to_string();
    bus.ensure_mission_topic(&mission).await.expect("topic");
    let event = |n: i64| Envelope::new(&mission, "job-1", 1, "step.result", json!({ "n": n }));
    let events: Vec<Envelope> = (0..3).map(event).collect();
    // The producer knows the topic and has its producer id before the fault.
    bus.publish(&events[0]).await.expect("publish");
    let mock = bus.mock_cluster().expect("embedded");
    mock.slow_broker(1, Duration::from_millis(300))
        .expect("slow broker");
    mock.fail_next_produce_uncertainly().expect("inject");
    let sender = std::sync::Arc::clone(&bus);
    let uncertain = events[1].clone();
    let first = tokio::spawn(async move { sender.publish(&uncertain).await });
    // Its request is on its way (its answer takes 300 ms) when the next event is published.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = bus.publish(&events[2]).await;
    let first = first.await.expect("task");
    assert!(first.is_ok() && second.is_ok(), "{first:?} {second:?}");
    mock.slow_broker(1, Duration::ZERO).expect("fast broker");

    let stream = bus.mission_stream(&mission, 1).expect("consumer");
    let got: Vec<Envelope> = take(&stream, events.len())
        .await
        .into_iter()
        .map(|r| r.envelope)
        .collect();
    assert_eq!(got, events, "every event once, in order");
    let extra = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
    assert!(extra.is_err(), "a duplicate arrived: {extra:?}");
}

#[test]
fn no_bootstrap_servers_means_the_embedded_cluster() {
    assert_eq!(KafkaMode::from_bootstrap_servers(""), KafkaMode::Embedded);
    assert_eq!(KafkaMode::from_bootstrap_servers("  "), KafkaMode::Embedded);
    assert_eq!(
        KafkaMode::from_bootstrap_servers(" k1:9092,k2:9092 "),
        KafkaMode::Brokers {
            bootstrap_servers: "k1:9092,k2:9092".to_owned()
        }
    );
}

/// A department's consumer joins before anything is published (as a squad starts) and still
/// gets every later event, in order.
#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_waiting_at_the_end_sees_new_events() {
    let bus = Bus::start(KafkaMode::Embedded).expect("start the bus");
    let mission = uuid::Uuid::now_v7().to_string();
    bus.ensure_mission_topic(&mission).await.expect("topic");
    let stream = bus.mission_stream(&mission, 1).expect("consumer");
    let events: Vec<Envelope> = (0..3)
        .map(|n| Envelope::new(&mission, "job-1", 1, "step.result", json!({ "n": n })))
        .collect();
    for e in &events {
        bus.publish(e).await.expect("publish");
    }
    let got = take(&stream, 3).await;
    assert_eq!(
        got.into_iter().map(|r| r.envelope).collect::<Vec<_>>(),
        events
    );
}

/// A stream whose reader went away for longer than the idle window (an agent busy with a
/// reviewer) stops fetching, and when read again it picks up every event published meanwhile
/// and after, in order, none twice, whether they were published before or while it reads.
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_left_unread_resumes_where_its_reader_stopped() {
    let bus = std::sync::Arc::new(Bus::start(KafkaMode::Embedded).expect("start the bus"));
    let mission = uuid::Uuid::now_v7().to_string();
    bus.ensure_mission_topic(&mission).await.expect("topic");
    let stream = bus.mission_stream(&mission, 1).expect("consumer");
    let event = |n: usize| Envelope::new(&mission, "job-1", 1, "step.result", json!({ "n": n }));
    bus.publish(&event(0)).await.expect("publish");
    assert_eq!(take(&stream, 1).await[0].offset, 0);
    // The reader is away: the stream stops fetching behind its back.
    tokio::time::sleep(Duration::from_millis(600)).await;
    bus.publish(&event(1)).await.expect("publish");
    assert_eq!(take(&stream, 1).await[0].offset, 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Many events, published while the reader reads them.
    let events: Vec<(String, Envelope)> = (2..2002)
        .map(|n| (mission_topic(&mission), event(n)))
        .collect();
    let reader = tokio::spawn(async move { take(&stream, 2000).await });
    for outcome in bus.publish_all(&events).await {
        outcome.expect("delivered");
    }
    let got = reader.await.expect("reader");
    let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (2..2002).collect::<Vec<i64>>());
}

/// Real brokers with SASL: the password comes from the OS keychain (an isolated one here),
/// never from a file; a missing one is named with the command that stores it, and librdkafka
/// accepts the resulting TLS and SASL settings.
#[test]
fn sasl_credentials_come_from_the_keychain() {
    use mission_core::squad::{store_sasl_password, BusError, CredentialError, KafkaSecurity};

    crate::app::isolated_keychain();
    let user = format!("svc-{}", uuid::Uuid::now_v7().simple());
    let security = KafkaSecurity {
        protocol: "sasl_ssl".to_owned(),
        sasl_mechanism: Some("SCRAM-SHA-512".to_owned()),
        sasl_username: Some(user.clone()),
        ssl_ca_location: None,
    };
    let missing = security.client_settings().expect_err("no password yet");
    assert!(matches!(missing, CredentialError::NoPassword(ref u) if u == &user));
    assert!(missing
        .to_string()
        .contains("missionctl kafka set-password"));

    store_sasl_password(&user, "s3cret-from-keychain").expect("store");
    let settings = security.client_settings().expect("settings");
    let get = |key: &str| {
        settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("security.protocol"), Some("sasl_ssl"));
    assert_eq!(get("sasl.mechanism"), Some("SCRAM-SHA-512"));
    assert_eq!(get("sasl.username"), Some(user.as_str()));
    assert_eq!(get("sasl.password"), Some("s3cret-from-keychain"));

    // The clients are created with them (nothing listens on port 1; nothing is sent yet).
    let bus = Bus::start_secured(KafkaMode::from_bootstrap_servers("127.0.0.1:1"), &security)
        .expect("librdkafka takes TLS and SASL settings");
    assert!(bus.mock_cluster().is_none());

    let wrong = KafkaSecurity {
        protocol: "carrier_pigeon".to_owned(),
        ..KafkaSecurity::default()
    };
    let refused = Bus::start_secured(KafkaMode::from_bootstrap_servers("127.0.0.1:1"), &wrong)
        .expect_err("unknown protocol");
    assert!(matches!(
        refused,
        BusError::Credentials(CredentialError::Settings(_))
    ));
    let nameless = KafkaSecurity {
        protocol: "sasl_plaintext".to_owned(),
        ..KafkaSecurity::default()
    };
    assert!(nameless
        .client_settings()
        .expect_err("SASL needs a user")
        .to_string()
        .contains("sasl_username"));
}
