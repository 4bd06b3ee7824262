//! What the end-to-end test needs around the window: tauri-driver and its WebDriver session,
//! waits, screenshots, the window's commands and the app's own database and agent API.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::ConnectOptions;

use super::WAIT;

/// tauri-driver, stopped with SIGTERM so it also stops WebKitWebDriver.
pub(crate) struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// Starts tauri-driver with the app's environment pointed into `home`; the app's agent API
/// listens on `api_port`.
pub(crate) fn start_driver(home: &Path, api_port: u16) -> Driver {
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "no X display: run this test under xvfb-run (scripts/test does)"
    );
    let runtime = home.join("runtime");
    for dir in ["data", "config", "cache"] {
        std::fs::create_dir_all(home.join(dir)).expect("xdg dir");
    }
    std::fs::create_dir_all(&runtime).expect("runtime dir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700))
            .expect("runtime dir permissions");
    }
    let port = free_port();
    let native_port = free_port();
    let driver = std::env::var("TAURI_DRIVER").unwrap_or_else(|_| "tauri-driver".into());
    let child = Command::new(&driver)
        .args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native_port.to_string(),
        ])
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_RUNTIME_DIR", &runtime)
        .env_remove("DATABASE_URL")
        // The audit signing key goes to a store that dies with the app, never the machine's
        // keychain; the agent API gets a free port so a running instance cannot clash.
        .env("MISSION_CONTROL_KEYSTORE", "ephemeral")
        .env(
            "MISSION_CONTROL_API_LISTEN",
            format!("127.0.0.1:{api_port}"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {driver} ({e}); scripts/setup installs it"));
    Driver { child, port }
}

pub(crate) async fn connect(driver: &Driver) -> Client {
    let app = PathBuf::from(env!("CARGO_BIN_EXE_mission-control"));
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("wry"));
    caps.insert("tauri:options".into(), json!({ "application": app }));
    let url = format!("http://127.0.0.1:{}", driver.port);
    let deadline = Instant::now() + WAIT;
    loop {
        let attempt = ClientBuilder::rustls()
            .expect("rustls")
            .capabilities(caps.clone())
            .connect(&url)
            .await;
        match attempt {
            Ok(client) => return client,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no WebDriver session with the app: {e}"),
        }
    }
}

/// Polls until `check` returns Some, or fails naming what it waited for.
pub(crate) async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn first_row_id(client: &Client) -> Option<String> {
    let row = client
        .find(Locator::Css("[data-testid='template-row']"))
        .await
        .ok()?;
    row.attr("data-template-id").await.ok()?
}

pub(crate) async fn value_of(client: &Client, css: &str) -> Option<String> {
    client
        .find(Locator::Css(css))
        .await
        .ok()?
        .prop("value")
        .await
        .ok()?
}

pub(crate) fn screenshot_dir() -> PathBuf {
    // The app binary is in <target>/<profile>/; screenshots go next to the profile folders.
    let app = PathBuf::from(env!("CARGO_BIN_EXE_mission-control"));
    let dir = app.parent().and_then(Path::parent).map_or_else(
        || PathBuf::from("e2e-screenshots"),
        |t| t.join("e2e-screenshots"),
    );
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// Saves a picture of the window for people to look at; it asserts nothing about the content.
/// WebKitWebDriver captures the next painted frame, and under Xvfb a page that does not change
/// paints none (the capture then waits forever and blocks the session), so the page is nudged
/// to repaint while the picture is taken.
pub(crate) async fn screenshot(client: &Client, name: &str) -> PathBuf {
    client
        .execute(
            "let flip = false; window.__e2ePaint = setInterval(() => { flip = !flip; \
             document.body.style.opacity = flip ? '0.999' : ''; }, 50);",
            vec![],
        )
        .await
        .expect("start repainting");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = match tokio::time::timeout(WAIT, client.screenshot()).await {
        Ok(shot) => shot.expect("screenshot"),
        Err(_) => panic!("no frame painted for {name} within {WAIT:?}"),
    };
    client
        .execute(
            "clearInterval(window.__e2ePaint); document.body.style.opacity = '';",
            vec![],
        )
        .await
        .expect("stop repainting");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
    let path = screenshot_dir().join(name);
    std::fs::write(&path, png).expect("write screenshot");
    eprintln!("screenshot: {}", path.display());
    path
}

/// Calls a command the way the window does, returning `Ok(value)` or `Err(error object)`.
pub(crate) async fn invoke(client: &Client, command: &str, args: Value) -> Result<Value, Value> {
    let script = r#"
        const [command, args, done] = arguments;
        window.__TAURI_INTERNALS__.invoke(command, args)
            .then((data) => done({ ok: data }), (error) => done({ err: error }));
    "#;
    let answer = client
        .execute_async(script, vec![json!(command), args])
        .await
        .expect("execute_async");
    match answer.get("ok") {
        Some(ok) => Ok(ok.clone()),
        None => Err(answer.get("err").cloned().unwrap_or(Value::Null)),
    }
}

pub(crate) fn database_path(home: &Path) -> PathBuf {
    home.join("data")
        .join("app.missioncontrol.desktop")
        .join("mission-control.sqlite3")
}

pub(crate) async fn database(home: &Path) -> sqlx::SqliteConnection {
    let path = database_path(home);
    SqliteConnectOptions::new()
        .filename(&path)
        .read_only(true)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot open the app's database {}: {e}", path.display()))
}

/// Gives one department of a running mission an extra agent token straight through the core's
/// storage (what `missionctl missions token` does); returns the token.
pub(crate) async fn token_for(home: &Path, mission_id: &str, dept: i64) -> String {
    let url = database_path(home).to_string_lossy().into_owned();
    let repo = mission_core::db::open(&url)
        .await
        .expect("open the app's database");
    let token = format!("mct_e2e-agent-token-of-department-{dept}");
    let hash = mission_core::gateway::hash_token(&token);
    let issued_at = mission_core::gateway::timestamp(chrono::Utc::now());
    repo.insert_token(&mission_core::gateway::store::NewToken {
        hash: &hash,
        mission_id,
        dept,
        issued_by: "e2e",
        issued_at: &issued_at,
    })
    .await
    .expect("store the token");
    token
}

pub(crate) async fn call_tool(api_port: u16, token: &str, tool: &str, args: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{api_port}/v1/tools/{tool}/invoke"
        ))
        .bearer_auth(token)
        .json(&json!({ "args": args }))
        .send()
        .await
        .expect("the app's agent API answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON answer"))
}

pub(crate) async fn text_of(client: &Client, css: &str) -> Option<String> {
    client.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

pub(crate) async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
}

/// The row of one mission in the Active Missions table.
pub(crate) fn row(mission_id: &str) -> String {
    format!("[data-testid='mission-row'][data-mission-id='{mission_id}']")
}

pub(crate) async fn status_of(client: &Client, mission_id: &str) -> Option<String> {
    client
        .find(Locator::Css(&row(mission_id)))
        .await
        .ok()?
        .attr("data-status")
        .await
        .ok()?
}

/// Waits until the Approvals tab counts exactly one waiting call.
pub(crate) async fn one_waiting(client: &Client, what: &str) {
    until(what, || async {
        (text_of(client, "[data-testid='approvals-badge']")
            .await
            .as_deref()
            == Some("1"))
        .then_some(())
    })
    .await;
}

/// Waits for a call of the mission (other than `after`) to be held, approves it in the
/// Approvals tab and waits for it to leave the queue; returns its id.
pub(crate) async fn approve_next(client: &Client, mission_id: &str, after: Option<&str>) -> String {
    let approval = until("a held call of the mission", || async {
        let pending = invoke(
            client,
            "list_approvals",
            json!({ "pendingOnly": true, "after": null, "limit": 200 }),
        )
        .await
        .ok()?;
        pending["items"]
            .as_array()?
            .iter()
            .filter(|i| i["mission_id"] == mission_id && i["status"] == "Pending")
            .filter_map(|i| i["id"].as_str())
            .find(|id| Some(*id) != after)
            .map(str::to_owned)
    })
    .await;
    one_waiting(client, "the Approvals tab to count the waiting call").await;
    click(client, "[data-testid='tab-approvals']").await;
    let card = format!("[data-approval-id='{approval}']");
    until("the held call in the queue", || async {
        client.find(Locator::Css(&card)).await.ok()
    })
    .await;
    screenshot(client, "approvals.png").await;
    click(client, &format!("{card} [data-testid='approve']")).await;
    until("the approved call to leave the queue", || async {
        client
            .find(Locator::Css(&card))
            .await
            .is_err()
            .then_some(())
    })
    .await;
    approval
}

/// The event rows of the selected mission: (kind, job id).
pub(crate) async fn event_rows(client: &Client) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in client
        .find_all(Locator::Css("[data-testid='event-row']"))
        .await
        .unwrap_or_default()
    {
        let kind = e.attr("data-kind").await.ok().flatten().unwrap_or_default();
        let job = e
            .attr("data-job-id")
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        out.push((kind, job));
    }
    out
}
