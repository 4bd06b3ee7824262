//! Registry benchmark: prints figures, asserts nothing.
//!
//! - import of 10,000 templates (variants of the bundled library) into SQLite and Postgres;
//! - search latency p50/p99 over 100,000 templates on SQLite.
//!
//! Run: `cargo bench -p mission-core --bench registry`. Postgres is taken from
//! `TEST_POSTGRES_URL` (default postgres://postgres@127.0.0.1:5432/postgres); a throwaway
//! database is created and dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use mission_core::registry::manifest::ManifestInput;
use mission_core::registry::service::BUNDLED_LIBRARY;
use mission_core::registry::SearchRequest;
use mission_core::{Catalog, Registry};
use serde_json::Value;
use support::{percentile, ThrowawayPostgres};

// Imports allocate and free millions of small JSON values; mimalloc does that at a fraction
// of the system allocator's cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `count` templates derived from the bundled library, split into manifests of `per_file`.
fn variants(count: usize, per_file: usize, offset: usize) -> Vec<ManifestInput> {
    let library: Value = serde_json::from_str(BUNDLED_LIBRARY).expect("library");
    let base = library["templates"].as_array().expect("templates").clone();
    let all: Vec<Value> = (offset..offset + count)
        .map(|i| {
            let mut t = base[i % base.len()].clone();
            let id = format!("{}.v{i}", t["id"].as_str().expect("id"));
            let name = format!("{} {}", t["name"].as_str().expect("name"), variant_word(i));
            t["id"] = Value::String(id);
            t["name"] = Value::String(name);
            t
        })
        .collect();
    all.chunks(per_file)
        .enumerate()
        .map(|(n, chunk)| {
            let m = serde_json::json!({"manifest_version": 1, "templates": chunk});
            ManifestInput::new(
                format!("variants-{offset}-{n}.json"),
                serde_json::to_vec(&m).expect("json"),
            )
        })
        .collect()
}

/// A pronounceable word per variant so names stay searchable text, not numbers.
fn variant_word(mut i: usize) -> String {
    const SYL: [&str; 16] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "qu", "pa", "do", "fi", "gu", "ho",
        "je",
    ];
    let mut w = String::new();
    loop {
        w.push_str(SYL[i % 16]);
        i /= 16;
        if i == 0 {
            break;
        }
    }
    w
}

fn empty_registry(repo: Arc<dyn mission_core::db::Repository>) -> Registry {
    Registry::new(repo, Arc::new(Catalog::bundled().expect("catalog")))
}

/// Imports `inputs` into an empty registry, then again unchanged; returns templates per second.
async fn bench_import(
    label: &str,
    registry: &Registry,
    inputs: &[ManifestInput],
    count: usize,
) -> f64 {
    let t0 = Instant::now();
    let validation = registry.validate(inputs);
    let validate_time = t0.elapsed();
    assert!(
        validation.is_valid(),
        "variants must validate: {:?}",
        validation.problems.first()
    );
    let t1 = Instant::now();
    let report = registry.import(inputs).await.expect("import");
    let total = t1.elapsed();
    assert_eq!(report.new, count);
    println!(
        "import {count} templates into {label}: {:.0} ms total (validate+write), {:.0} templates/s; validation alone {:.0} ms",
        total.as_secs_f64() * 1e3,
        count as f64 / total.as_secs_f64(),
        validate_time.as_secs_f64() * 1e3
    );
    let t2 = Instant::now();
    let again = registry.import(inputs).await.expect("reimport");
    assert_eq!(again.unchanged, count);
    println!(
        "re-import of the same {count} (all unchanged) into {label}: {:.0} ms",
        t2.elapsed().as_secs_f64() * 1e3
    );
    count as f64 / total.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Cargo passes `--bench`; no filtering is offered.
    let dir = tempfile::tempdir().expect("dir");

    // Import: 10,000 into SQLite, into five fresh databases; the median is the figure.
    let inputs = variants(10_000, 2_500, 0);
    let mut rates = Vec::new();
    for run in 0..5 {
        let sqlite = mission_core::db::open(&format!(
            "sqlite://{}",
            dir.path().join(format!("import-{run}.sqlite3")).display()
        ))
        .await
        .expect("sqlite");
        rates.push(bench_import("SQLite", &empty_registry(sqlite.clone()), &inputs, 10_000).await);
        sqlite.close().await;
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "import into SQLite, median of {} runs: {:.0} templates/s (lowest {:.0})",
        rates.len(),
        rates[rates.len() / 2],
        rates[0]
    );

    // Import: 10,000 into Postgres.
    let pg = ThrowawayPostgres::create().await;
    bench_import(
        "Postgres",
        &empty_registry(pg.repo.clone()),
        &inputs,
        10_000,
    )
    .await;
    pg.drop_db().await;

    // Search: 100,000 templates on SQLite.
    let url = format!("sqlite://{}", dir.path().join("search.sqlite3").display());
    let repo = mission_core::db::open(&url).await.expect("sqlite");
    let registry = empty_registry(repo.clone());
    let t = Instant::now();
    for batch in 0..10 {
        registry
            .import(&variants(10_000, 2_500, batch * 10_000))
            .await
            .expect("load");
    }
    println!(
        "loaded 100,000 templates into SQLite in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let queries: &[(&str, Option<&str>)] = &[
        ("burn", None),
        ("burnout recruiter", None),
        ("Burnout", Some("talent")),
        ("cash", None),
        ("phishing", None),
        ("vendor score", None),
        ("patent", None),
        ("cloud cost", None),
        ("tax loss", None),
        ("ransomware", None),
        ("churn", Some("growth")),
        ("backfill", None),
        ("pipeline", None),
        ("kalo", None),
        ("hedge", Some("trading")),
        ("privacy", None),
        ("dark web", None),
        ("forecast", None),
        ("supplier", None),
        ("rev", None),
        // The first keystrokes of search-as-you-type.
        ("r", None),
        ("co", None),
    ];
    let mut samples = Vec::new();
    let mut per_query: Vec<Vec<Duration>> = vec![Vec::new(); queries.len()];
    for round in 0..60 {
        for (qi, (text, sector)) in queries.iter().enumerate() {
            let request = SearchRequest {
                text: Some((*text).to_owned()),
                sector: sector.map(str::to_owned),
                ..Default::default()
            };
            let t = Instant::now();
            let hits = registry.search(request).await.expect("search");
            let elapsed = t.elapsed();
            if round > 0 {
                samples.push(elapsed);
                per_query[qi].push(elapsed);
            }
            assert!(!hits.is_empty(), "query {text} found nothing");
        }
    }
    samples.sort();
    println!(
        "search over 100,000 templates on SQLite ({} queries, 50 results each): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    let mut slowest: Vec<(Duration, &str)> = per_query
        .iter_mut()
        .zip(queries)
        .map(|(times, (text, _))| {
            times.sort();
            (percentile(times, 0.5), *text)
        })
        .collect();
    slowest.sort();
    let top: Vec<String> = slowest
        .iter()
        .rev()
        .take(3)
        .map(|(d, q)| format!("\"{q}\" {:.2} ms", d.as_secs_f64() * 1e3))
        .collect();
    println!("slowest queries by median: {}", top.join(", "));
    repo.close().await;
}
