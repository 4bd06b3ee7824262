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
        // Changes are signed into the audit log; the key must never come from the real keychain.
        .env("MISSION_CONTROL_KEYSTORE", "ephemeral")
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

/// The approvals queue and the audit log from the command line, on the database a gateway
/// wrote: list, approve as a named reviewer, verify, export, and catch an edited export.
#[tokio::test(flavor = "multi_thread")]
async fn approvals_and_audit_commands_decide_verify_and_export() {
    use crate::gateway::{call, executed, rig, running, waiting, Spec};
    use mission_core::registry::ApprovalMode;

    let home = tempfile::tempdir().expect("dir");
    let db = crate::helpers::TestDb::new(crate::helpers::Kind::Sqlite).await;
    let rig = rig(&db).await;
    // missionctl reads the system clock; the gateway here must agree with it.
    rig.clock
        .advance(chrono::Utc::now() - mission_core::gateway::Clock::now(rig.clock.as_ref()));
    let (_, token) = running(
        &rig,
        Spec {
            mode: ApprovalMode::Strict,
            ..Spec::auto("wealth")
        },
    )
    .await;
    let tool = "wealth.estate_document_draft";
    let args = json!({"estate": "E-7"});
    let held = waiting(rig.gateway.invoke(call(&token, tool, args.clone())).await);

    // Each missionctl process signs with its own throwaway key: never the real keychain.
    let run = |args: &[&str]| {
        let mut all = vec!["--database-url", db.url.as_str()];
        all.extend_from_slice(args);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_missionctl"));
        cmd.args(&all)
            .env("HOME", home.path())
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env_remove(mission_core::audit::ANCHOR_ENV)
            .env("MISSION_CONTROL_KEYSTORE", "ephemeral");
        cmd.output().expect("run missionctl")
    };
    // The records signed by the gateway here come from "another machine": pin its key in this
    // one's trust anchor, as an operator sharing one database would.
    let trusted = run(&[
        "audit",
        "trust",
        &crate::app::test_sealer().public_key_hex(),
    ]);
    assert!(trusted.status.success(), "{}", text(&trusted));

    let listed = run(&["approvals", "list", "--json"]);
    assert!(listed.status.success(), "{}", text(&listed));
    let items: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json list");
    assert_eq!(items.as_array().map(Vec::len), Some(1), "{items}");
    assert_eq!(items[0]["id"], held.approval_id.as_str());
    assert_eq!(items[0]["tool_id"], tool);
    assert_eq!(items[0]["status"], "Pending");

    let approved = run(&["approvals", "approve", &held.approval_id, "--as", "carol"]);
    assert!(approved.status.success(), "{}", text(&approved));
    assert!(text(&approved).contains("Approved") && text(&approved).contains("carol"));
    let again = run(&["approvals", "deny", &held.approval_id, "--as", "dave"]);
    assert!(
        !again.status.success(),
        "a decided request cannot be decided again"
    );
    assert!(text(&again).contains("already"), "{}", text(&again));
    executed(rig.gateway.invoke(call(&token, tool, args)).await);

    let verified = run(&["audit", "verify"]);
    assert!(verified.status.success(), "{}", text(&verified));
    // The mission's start and its token, the held call, the approval, the refused second
    // decision, and the call that ran.
    assert!(
        text(&verified).contains("6 record(s)"),
        "{}",
        text(&verified)
    );
    assert!(
        text(&verified).contains("audit-trust.json ("),
        "the anchor is named: {}",
        text(&verified)
    );

    let file = home.path().join("audit.jsonl");
    let exported = run(&["audit", "export", "-o", file.to_str().expect("path")]);
    assert!(exported.status.success(), "{}", text(&exported));
    let from_file = run(&["audit", "verify", "--file", file.to_str().expect("path")]);
    assert!(from_file.status.success(), "{}", text(&from_file));

    // Someone rewrites who approved the call in the exported copy: verify names that record.
    let original = std::fs::read_to_string(&file).expect("read export");
    assert!(original.contains("carol"));
    std::fs::write(&file, original.replacen("carol", "mallory", 1)).expect("write");
    let tampered = run(&[
        "audit",
        "verify",
        "--file",
        file.to_str().expect("path"),
        "--json",
    ]);
    assert_eq!(tampered.status.code(), Some(1), "{}", text(&tampered));
    let report: serde_json::Value = serde_json::from_slice(&tampered.stdout).expect("json report");
    assert_eq!(report["ok"], false);
    // #4: after the mission's start, its token and the held call.
    assert_eq!(report["first_bad"]["seq"], 4, "{report}");
}

/// `missionctl kafka status` names the mode and proves it answers; an unreachable broker is
/// reported as such, with a failing exit code.
#[test]
fn kafka_status_names_the_mode_and_checks_it_answers() {
    let home = tempfile::tempdir().expect("dir");
    let run = |servers: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_missionctl"));
        cmd.args(["kafka", "status"]).env("HOME", home.path());
        match servers {
            Some(s) => cmd.env("KAFKA_BOOTSTRAP_SERVERS", s),
            None => cmd.env_remove("KAFKA_BOOTSTRAP_SERVERS"),
        };
        cmd.output().expect("run missionctl")
    };
    let embedded = run(None);
    assert!(embedded.status.success(), "{}", text(&embedded));
    let said = text(&embedded);
    assert!(said.contains("Kafka: embedded"), "{said}");
    assert!(said.contains("Answers at"), "{said}");
    // A record went through, not only a topic.
    assert!(
        said.contains("wrote a record at offset 0 and read it back"),
        "{said}"
    );

    // Nothing listens on port 1.
    let unreachable = run(Some("127.0.0.1:1"));
    assert!(!unreachable.status.success(), "{}", text(&unreachable));
    assert!(
        text(&unreachable).contains("Kafka: brokers at 127.0.0.1:1"),
        "{}",
        text(&unreachable)
    );
}

/// A mission deployed from the command line runs its squad in that process; killed while a
/// call waits for a reviewer, it is picked up by the next `missions follow` once the dead
/// process's claim runs out, finishes, and its run record, jobs and events read back.
#[test]
fn deploy_killed_mid_mission_is_finished_by_the_next_process_and_reads_back() {
    let home = tempfile::tempdir().expect("dir");
    let db = home.path().join("missions.sqlite3");
    let db_url = db.to_str().expect("path").to_owned();
    let base = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_missionctl"));
        cmd.arg("--database-url")
            .arg(&db_url)
            .args(args)
            .env("HOME", home.path())
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("MISSION_CONTROL_KEYSTORE", "ephemeral")
            .env("MISSION_CONTROL_SQUAD_LEASE_SECONDS", "2");
        cmd
    };
    let run = |args: &[&str]| base(args).output().expect("run missionctl");

    let file = home.path().join("squad.json");
    std::fs::write(
        &file,
        serde_json::to_vec(&manifest(vec![crate::engine::squad_template()])).expect("json"),
    )
    .expect("write");
    let imported = run(&["import", file.to_str().expect("path")]);
    assert!(imported.status.success(), "{}", text(&imported));

    // Beyond the template's cap: refused, nothing saved.
    let refused = run(&[
        "deploy",
        "finance.squad-close",
        "--budget-cents",
        "99999999",
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("budget must be between"),
        "{}",
        text(&refused)
    );
    let none = run(&["missions", "list", "--json"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&none.stdout).expect("json"),
        json!([])
    );

    let mut deployed = base(&["deploy", "finance.squad-close", "--approval", "strict"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("deploy");
    // The deploying process prints its mission's events as they happen: the held call is
    // announced there, and only then is the queue read.
    let said = std::io::BufReader::new(deployed.stdout.take().expect("stdout"));
    let (lines, heard) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(said).map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    loop {
        let line = heard
            .recv_timeout(crate::app::PATIENCE)
            .expect("the deploying process announces a held call");
        if line.contains("job.waiting") {
            break;
        }
    }
    let listed = run(&["approvals", "list", "--json"]);
    let items: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    let approval = items[0]["id"].as_str().expect("a waiting call").to_owned();
    deployed.kill().expect("kill -9 the deploying process");
    let _ = deployed.wait();

    let listed = run(&["missions", "list", "--json"]);
    let missions: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    let id = missions[0]["mission"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(missions[0]["usage"]["status"], "Running");

    let approved = run(&["approvals", "approve", &approval, "--as", "carol"]);
    assert!(approved.status.success(), "{}", text(&approved));
    let followed = run(&["missions", "follow", &id]);
    let said = text(&followed);
    assert!(followed.status.success(), "{said}");
    assert!(said.contains("Run: Completed"), "{said}");
    assert!(said.contains("job.result"), "{said}");

    let shown = run(&["missions", "show", &id, "--json"]);
    let view: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");
    assert_eq!(view["mission"]["run"]["status"], "Completed", "{view}");
    assert_eq!(view["mission"]["run"]["steps"], 3);
    assert_eq!(view["mission"]["steps_done"], 5);
    assert_eq!(view["jobs"].as_array().map(Vec::len), Some(6));

    let events = run(&["missions", "events", &id, "--json"]);
    assert!(events.status.success(), "{}", text(&events));
    let events: serde_json::Value =
        serde_json::from_slice(&events.stdout).expect("one JSON document");
    let lines = events.as_array().expect("an array of events");
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|e| e["mission_id"] == id.as_str()));
    assert!(lines
        .iter()
        .all(|e| e["job_id"].as_str().is_some_and(|j| !j.is_empty())));
    assert!(
        lines.iter().all(|e| e["published"] == true),
        "the outbox drained"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|e| e["kind"] == "mission.started")
            .count(),
        1
    );

    let stopped = run(&["missions", "stop", &id]);
    assert!(!stopped.status.success());
    assert!(
        text(&stopped).contains("has not ended"),
        "{}",
        text(&stopped)
    );
}

/// `missionctl templates list | head` ends quietly when the reader goes away: exit 0, nothing
/// on stderr (no panic about a broken pipe).
#[test]
fn a_closed_pipe_ends_a_listing_quietly() {
    let home = tempfile::tempdir().expect("dir");
    let (reader, writer) = std::io::pipe().expect("pipe");
    // The reader is gone before the command writes a byte.
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_missionctl"))
        .args(["templates", "list", "--limit", "1000"])
        .env_remove("DATABASE_URL")
        .env("MISSION_CONTROL_KEYSTORE", "ephemeral")
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run missionctl");
    assert!(out.status.success(), "{}", text(&out));
    assert!(out.stderr.is_empty(), "{}", text(&out));
}

/// Reading commands never create or load the signing key (no key is registered with the log
/// afterwards), print nothing on stderr, and each `--json` answer is one JSON document.
#[test]
fn reading_commands_touch_no_key_and_answer_one_json_document() {
    let home = tempfile::tempdir().expect("dir");
    let db = home.path().join("read.sqlite3");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_missionctl"))
            .arg("--database-url")
            .arg(&db)
            .args(args)
            .env("HOME", home.path())
            .env("XDG_DATA_HOME", home.path().join("data"))
            // Were a key loaded, this store would make one, and the log would list it.
            .env("MISSION_CONTROL_KEYSTORE", "ephemeral")
            .output()
            .expect("run missionctl")
    };
    for args in [
        &["templates", "list", "--json"][..],
        &["templates", "search", "burn", "--json"],
        &["templates", "show", "talent.burnout-recruiter", "--json"],
        &["missions", "list", "--json"],
        &["approvals", "list", "--all", "--json"],
        &["audit", "verify", "--json"],
    ] {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        assert!(
            out.stderr.is_empty(),
            "{args:?} wrote to stderr: {}",
            text(&out)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?} is not one JSON document: {e}"));
    }
    // An error asked for as JSON is one JSON document too, with the core's code.
    let missing = run(&["missions", "show", "no-such-mission", "--json"]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    let error: serde_json::Value = serde_json::from_slice(&missing.stdout).expect("JSON error");
    assert_eq!(error["code"], "mission_not_found");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("is not a mission id")),
        "{error}"
    );

    let report = run(&["audit", "verify", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).expect("json");
    assert_eq!(
        report["keys"],
        json!([]),
        "a reading command loaded the key"
    );
    assert_eq!(report["records"], 0);
}
