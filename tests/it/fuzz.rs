//! Property tests: arbitrary bytes, and damaged copies of a real manifest, never panic the
//! validator and never change the database.

use mission_core::registry::manifest::ManifestInput;
use mission_core::registry::service::BUNDLED_LIBRARY;
use mission_core::registry::validate::validate;
use mission_core::{Catalog, RegistryError};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

use crate::helpers::{Kind, TestDb};

fn catalog() -> &'static Catalog {
    static C: std::sync::OnceLock<Catalog> = std::sync::OnceLock::new();
    C.get_or_init(|| Catalog::bundled().expect("catalog"))
}

fn small_manifest() -> Vec<u8> {
    let t = crate::helpers::template(
        "talent.fuzz",
        "Fuzz",
        "A template used as the seed for damaged copies.",
    );
    serde_json::to_vec_pretty(&crate::helpers::manifest(vec![t])).expect("json")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let v = validate(&[ManifestInput::new("fuzz.json", bytes)], catalog());
        prop_assert!(v.templates.is_empty() || v.problems.is_empty());
    }

    #[test]
    fn damaged_manifests_never_panic(
        cut in 0usize..2000,
        flips in proptest::collection::vec((0usize..2000, any::<u8>()), 0..6),
    ) {
        let mut bytes = small_manifest();
        for (at, b) in flips {
            let i = at % bytes.len();
            bytes[i] = b;
        }
        bytes.truncate(cut.min(bytes.len()));
        let v = validate(&[ManifestInput::new("damaged.json", bytes)], catalog());
        // Either the file still validates, or every problem is located in this file.
        prop_assert!(v.problems.iter().all(|p| p.file == "damaged.json"));
    }

    #[test]
    fn arbitrary_json_values_never_panic(value in arb_json()) {
        let bytes = serde_json::to_vec(&value).expect("json");
        let _ = validate(&[ManifestInput::new("value.json", bytes)], catalog());
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        "[a-z_]{0,12}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("templates")),
        Just(serde_json::Value::from(1)),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("manifest_version".to_owned()),
                    Just("templates".to_owned()),
                    Just("id".to_owned()),
                    Just("ruleset".to_owned()),
                    "[a-z_]{1,10}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Garbage handed to the real import path leaves a populated SQLite registry untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_of_garbage_changes_nothing() {
    let db = TestDb::new(Kind::Sqlite).await;
    let registry = db.registry().await;
    let before = registry.store().count_templates().await.expect("count");
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(200));
    let strategy = proptest::collection::vec(any::<u8>(), 0..256);
    for _ in 0..200 {
        let bytes = strategy.new_tree(&mut runner).expect("tree").current();
        let garbage = ManifestInput::new("garbage.json", bytes);
        let valid = ManifestInput::new("valid.json", small_manifest());
        match registry.import(&[valid, garbage]).await {
            Err(RegistryError::Invalid(problems)) => {
                assert!(problems.iter().all(|p| p.file == "garbage.json"));
            }
            other => panic!("garbage was accepted: {other:?}"),
        }
    }
    assert_eq!(
        registry.store().count_templates().await.expect("count"),
        before
    );
    // The real library, cut anywhere, is refused as a whole.
    for cut in [1, 100, BUNDLED_LIBRARY.len() / 2, BUNDLED_LIBRARY.len() - 3] {
        let input = ManifestInput::new("cut.json", &BUNDLED_LIBRARY.as_bytes()[..cut]);
        assert!(matches!(
            registry.import(&[input]).await,
            Err(RegistryError::Invalid(_))
        ));
    }
    assert_eq!(
        registry.store().count_templates().await.expect("count"),
        before
    );
}
