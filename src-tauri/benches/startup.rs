//! Startup and memory of the desktop app, under a real (virtual) X display. Prints figures; it
//! does not pass or fail on them.
//!
//! Run: `xvfb-run -a -s "-screen 0 1280x800x24" cargo bench -p mission-control
//! --features custom-protocol --bench startup` (scripts/bench-desktop does exactly this).
//!
//! Startup is measured from spawning the process to the app's log line "library rendered",
//! which the window reports once its first page of templates is on screen. Memory is the
//! resident set (and the proportional set, which counts shared pages once) of the app and all
//! its child processes (the WebKit web and network processes) after 30 s idle.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WARM_RUNS: usize = 5;
const IDLE: Duration = Duration::from_secs(30);

fn main() {
    if std::env::var_os("DISPLAY").is_none() {
        eprintln!("no X display: run this benchmark under xvfb-run (see the file's header)");
        std::process::exit(2);
    }
    let app = env!("CARGO_BIN_EXE_mission-control");
    let home = tempfile::tempdir().expect("temp home");

    let (first, child) = launch(app, home.path());
    stop(child);
    println!("first start (creates the database, imports the bundled library): {first:>7.0} ms");

    let mut warm = Vec::new();
    for _ in 0..WARM_RUNS {
        let (ms, child) = launch(app, home.path());
        warm.push(ms);
        stop(child);
    }
    warm.sort_by(f64::total_cmp);
    println!(
        "warm start to rendered library, {WARM_RUNS} runs: median {:.0} ms, min {:.0} ms, max {:.0} ms (target <= 1000 ms)",
        warm[WARM_RUNS / 2],
        warm[0],
        warm[WARM_RUNS - 1]
    );

    let (_, child) = launch(app, home.path());
    std::thread::sleep(IDLE);
    let pids = family(child.id());
    let mut rss_total = 0;
    let mut pss_total = 0;
    for pid in &pids {
        let rss = kib(pid, "status", "VmRSS:");
        let pss = kib(pid, "smaps_rollup", "Pss:");
        rss_total += rss;
        pss_total += pss;
        println!(
            "  pid {pid:>7} {:<28} RSS {:>7.1} MB  PSS {:>7.1} MB",
            name(*pid),
            rss as f64 / 1024.0,
            pss as f64 / 1024.0
        );
    }
    println!(
        "memory after {} s idle, app + {} child process(es): RSS {:.1} MB, PSS {:.1} MB (target <= 150 MB)",
        IDLE.as_secs(),
        pids.len() - 1,
        rss_total as f64 / 1024.0,
        pss_total as f64 / 1024.0
    );
    stop(child);
}

/// Starts the app with its folders in `home`; returns the time to the rendered library.
fn launch(app: &str, home: &Path) -> (f64, Child) {
    let runtime = home.join("runtime");
    std::fs::create_dir_all(&runtime).expect("runtime dir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700))
            .expect("runtime dir permissions");
    }
    let started = Instant::now();
    let mut child = Command::new(app)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("MISSION_CONTROL_KEYSTORE", "ephemeral")
        .env("MISSION_CONTROL_API_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the app");
    let stderr = child.stderr.take().expect("stderr");
    let (found, rendered) = mpsc::channel();
    std::thread::spawn(move || {
        let mut signalled = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !signalled && line.contains("library rendered") {
                let _ = found.send(());
                signalled = true;
            }
        }
    });
    rendered
        .recv_timeout(Duration::from_secs(60))
        .expect("the library did not render within 60 s");
    (started.elapsed().as_secs_f64() * 1000.0, child)
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The process and all its descendants.
fn family(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|pid| {
                    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                    // The command name may hold spaces; the fields after its ')' are fixed.
                    let after = &stat[stat.rfind(')')? + 2..];
                    let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
                    Some((pid, ppid))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut family = vec![root];
    let mut i = 0;
    while i < family.len() {
        let parent = family[i];
        family.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    family
}

fn kib(pid: &u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}
