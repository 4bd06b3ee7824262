//! What the commands share: the core, opened once in the background so the window can load
//! while migrations and the first-start import run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use mission_core::{Core, CoreError, Settings};
use tokio::sync::OnceCell;

/// State managed by the app.
#[derive(Debug)]
pub struct AppState {
    settings: Result<Settings, CoreError>,
    core: OnceCell<Result<Core, CoreError>>,
    started: Instant,
    rendered: AtomicBool,
}

impl AppState {
    /// State for these settings; nothing is opened yet. A settings error (a wrong key store
    /// name) is kept and returned by every command, so the window can say what is wrong.
    pub fn new(settings: Result<Settings, CoreError>, started: Instant) -> Self {
        Self {
            settings,
            core: OnceCell::new(),
            started,
            rendered: AtomicBool::new(false),
        }
    }

    /// The core, opening the database on first use. A failure to open is kept and returned to
    /// every caller, so the UI can say what is wrong instead of hanging.
    pub async fn core(&self) -> Result<&Core, CoreError> {
        self.core
            .get_or_init(|| async {
                let core = Core::open(self.settings.clone()?).await?;
                tracing::info!(
                    ms = self.started.elapsed().as_millis() as u64,
                    "library database ready"
                );
                Ok(core)
            })
            .await
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Records the first time the window shows the library; later calls are ignored.
    pub fn library_rendered(&self, count: u32) {
        if !self.rendered.swap(true, Ordering::SeqCst) {
            tracing::info!(
                templates = count,
                ms = self.started.elapsed().as_millis() as u64,
                "library rendered"
            );
        }
    }
}
