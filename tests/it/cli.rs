//! `missionctl` as a person runs it: exit codes and what it says. HOME and the XDG folders point
//! into a temp folder so the real user's app-data folder is never touched.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::json;

use crate::helpers::{manifest, template};

fn missionctl(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_missionctl"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .output()
        .expect("run missionctl")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn validate_touches_no_database_and_sets_the_exit_code() {
    let home = tempfile::tempdir().expect("dir");
    let good = home.path().join("good.json");
    std::fs::write(
        &good,
        serde_json::to_vec(&manifest(vec![template(
            "talent.cli",
            "Cli",
            "A template checked from the command line.",
        )]))
        .expect("json"),
    )
    .expect("write");
    let mut bad_t = template(
        "talent.cli-bad",
        "Cli Bad",
        "A template the command line must refuse.",
    );
    bad_t["ruleset"]["allowed_tools"] =
        json!(["talent.candidate_search", "shadow.honeytoken_plant"]);
    let bad = home.path().join("bad.json");
    std::fs::write(
        &bad,
        serde_json::to_vec(&manifest(vec![bad_t])).expect("json"),
    )
    .expect("write");

    let ok = missionctl(home.path(), &["validate", good.to_str().expect("path")]);
    assert!(ok.status.success(), "{}", text(&ok));
    let fail = missionctl(
        home.path(),
        &[
            "validate",
            good.to_str().expect("path"),
            bad.to_str().expect("path"),
        ],
    );
    assert!(!fail.status.success());
    let out = text(&fail);
    assert!(
        out.contains("bad.json")
            && out.contains("talent.cli-bad")
            && out.contains("/templates/0/ruleset/allowed_tools/1"),
        "{out}"
    );
    assert!(
        !home.path().join("data").exists(),
        "validate created an app-data folder"
    );
}

#[test]
fn import_search_show_round_trip_on_a_sqlite_file() {
    let home = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}", home.path().join("cli.sqlite3").display());
    let file = home.path().join("m.json");
    std::fs::write(
        &file,
        serde_json::to_vec(&manifest(vec![template(
            "talent.cli-import",
            "Quasar Finder",
            "Finds quasar engineers for the astronomy platform team.",
        )]))
        .expect("json"),
    )
    .expect("write");
    let path = file.to_str().expect("path");

    let first = missionctl(home.path(), &["--database-url", &db, "import", path]);
    assert!(first.status.success(), "{}", text(&first));
    assert!(text(&first).contains("1 new"), "{}", text(&first));
    let second = missionctl(home.path(), &["--database-url", &db, "import", path]);
    assert!(
        text(&second).contains("Nothing to change"),
        "{}",
        text(&second)
    );

    let search = missionctl(
        home.path(),
        &[
            "--database-url",
            &db,
            "templates",
            "search",
            "quas",
            "--json",
        ],
    );
    let hits: serde_json::Value = serde_json::from_slice(&search.stdout).expect("json");
    assert_eq!(hits[0]["id"], "talent.cli-import");
    assert!(hits[0]["est_roi"].is_null());

    let burn = missionctl(
        home.path(),
        &[
            "--database-url",
            &db,
            "templates",
            "search",
            "burn",
            "--sector",
            "Talent",
        ],
    );
    assert!(
        text(&burn).contains("Burnout Recruiter") && text(&burn).contains("no history yet"),
        "{}",
        text(&burn)
    );

    let show = missionctl(
        home.path(),
        &[
            "--database-url",
            &db,
            "templates",
            "show",
            "talent.burnout-recruiter",
            "--json",
        ],
    );
    let detail: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
    assert_eq!(detail["sector_name"], "Talent");
    assert_eq!(detail["content"]["logic_hash"], detail["logic_hash"]);

    let missing = missionctl(
        home.path(),
        &["--database-url", &db, "templates", "show", "nope.nothing"],
    );
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("no template has the id"),
        "{}",
        text(&missing)
    );
    assert!(
        !home.path().join("data").exists(),
        "an explicit URL must not create the default database"
    );
}

#[test]
fn the_default_database_lives_in_the_app_data_folder() {
    let home = tempfile::tempdir().expect("dir");
    let out = missionctl(home.path(), &["templates", "list", "--limit", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let file = home
        .path()
        .join("data")
        .join(mission_core::db::APP_IDENTIFIER)
        .join("mission-control.sqlite3");
    assert!(file.exists(), "expected {}", file.display());
}
