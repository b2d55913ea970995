//! Screenshot mode (used by `scripts/screenshots.sh`): with `COUNTERSIGN_SCREENSHOT=<screen>` and the
//! operator's name and PIN given, the app signs in, opens that screen with the demo data from
//! `assets/demo`, and touches the file named by `COUNTERSIGN_SCREENSHOT_READY` once the screen has
//! settled. `COUNTERSIGN_SCREENSHOT=seed` verifies and confirms every demo cheque instead.

use std::path::PathBuf;

use super::app::{CountersignApp, Screen};
use super::backend::Slot;

/// Environment variable naming the screen the screenshot mode opens.
pub const SCREENSHOT_ENV: &str = "COUNTERSIGN_SCREENSHOT";
/// Environment variable naming the file the screenshot mode touches when the screen is ready.
pub const SCREENSHOT_READY_ENV: &str = "COUNTERSIGN_SCREENSHOT_READY";

/// Drives the app to a given screen with demo data.
#[derive(Clone, Debug)]
pub struct Autopilot {
    pub screen: Screen,
    pub started: bool,
    /// Seed mode: verify and confirm every demo cheque through the Verify screen, then stop.
    pub seed: bool,
}

/// The screenshot mode's state; empty (and inert) in normal use.
#[derive(Debug, Default)]
pub struct ScreenshotMode {
    /// The screen to open after signing in, and demo actions to run; `None` once done.
    pub pilot: Option<Autopilot>,
    /// A file to touch once the screen has settled.
    pub ready_file: Option<PathBuf>,
    pub(super) seed_queue: Vec<(PathBuf, PathBuf)>,
    pub(super) seeding: bool,
    pub(super) settled_frames: u64,
}

impl ScreenshotMode {
    /// The mode the environment asks for (`None` when it asks for none).
    pub fn from_env() -> Result<Option<ScreenshotMode>, String> {
        let Ok(screen) = std::env::var(SCREENSHOT_ENV) else {
            return Ok(None);
        };
        let seed = screen.eq_ignore_ascii_case("seed");
        let screen = if seed { "verify".to_string() } else { screen };
        let screen = Screen::from_name(&screen).ok_or_else(|| {
            format!(
                "{SCREENSHOT_ENV}={screen} names no screen (verify, batch, calibrate, audit, train, signin)"
            )
        })?;
        Ok(Some(ScreenshotMode {
            pilot: Some(Autopilot {
                screen,
                started: false,
                seed,
            }),
            ready_file: std::env::var_os(SCREENSHOT_READY_ENV).map(PathBuf::from),
            ..ScreenshotMode::default()
        }))
    }
}

impl CountersignApp {
    /// Screenshot mode: sign in from the environment, open the screen, and start its demo action once.
    pub(super) fn run_autopilot(&mut self) {
        let Some(pilot) = self.screenshot.pilot.as_mut() else {
            return;
        };
        if pilot.screen == Screen::SignIn {
            // The sign-in screenshot shows the empty form with the operator's name filled in.
            self.screenshot.pilot = None;
            return;
        }
        if self.shared.operator.is_none() {
            if !pilot.started && !self.sign_in.busy {
                pilot.started = true;
                if !self.sign_in.name.is_empty() && !self.sign_in.pin.is_empty() {
                    self.sign_in.submit(&mut self.shared);
                }
            }
            return;
        }
        let screen = pilot.screen;
        if pilot.seed {
            self.screenshot.pilot = None;
            self.screenshot.seed_queue = crate::gui::demo_dir()
                .map(|d| crate::gui::demo_pairs(&d))
                .unwrap_or_default();
            self.screenshot.seeding = true;
            return;
        }
        self.screenshot.pilot = None;
        let demo = crate::gui::demo_dir();
        match (screen, demo) {
            (Screen::Verify, Some(dir)) => {
                if let Some((reference, cheque)) = crate::gui::demo_pair(&dir) {
                    // Up to three of the writer's signatures, as an enrolled account has: the
                    // bundled model's per-account stage needs at least two.
                    let mut refs: Vec<std::path::PathBuf> = reference
                        .parent()
                        .map(crate::gui::image_files)
                        .unwrap_or_default();
                    refs.retain(|p| p != &reference);
                    refs.insert(0, reference);
                    for (i, r) in refs.iter().take(3).enumerate() {
                        self.load_file(Slot::Reference(i), r);
                    }
                    self.load_file(Slot::Cheque, &cheque);
                }
            }
            (Screen::Calibrate, Some(dir)) => {
                self.calibrate.folder =
                    crate::gui::demo_labelled_folder(&dir).display().to_string();
                // The demo writers have four genuine signatures each: three are references.
                self.calibrate.references = 3;
                self.calibrate.start(&mut self.shared);
            }
            (Screen::Batch, Some(dir)) => {
                if let Some(m) =
                    crate::gui::demo_manifest(&dir).or_else(|| super::write_demo_manifest(&dir))
                {
                    self.batch.manifest = m.display().to_string();
                    self.batch.start(&mut self.shared);
                }
            }
            (Screen::Audit, _) => self.audit.select_first = true,
            (Screen::Queue, _) => self.queue.select_first = true,
            (Screen::Train, Some(dir)) => {
                self.train.data = crate::gui::demo_labelled_folder(&dir).display().to_string();
            }
            _ => {}
        }
    }

    /// Seed mode: one demo cheque at a time, load, wait for the result, confirm, next.
    pub(super) fn run_seed(&mut self) {
        if !self.screenshot.seeding || self.verify.busy() {
            return;
        }
        if self.verify.outcome.is_some() && self.verify.recorded.is_none() {
            self.verify.confirm(&mut self.shared);
            return;
        }
        let stuck = self.verify.verify_error.is_some() || !self.verify.slot_errors.is_empty();
        let fresh = self.verify.cheque.is_none() && self.verify.references.is_empty();
        if self.verify.recorded.is_some() || stuck || fresh {
            match self.screenshot.seed_queue.pop() {
                Some((reference, cheque)) => {
                    self.verify.slot_errors.clear();
                    self.load_file(Slot::Reference(0), &reference);
                    self.load_file(Slot::Cheque, &cheque);
                }
                None => self.screenshot.seeding = false,
            }
        }
    }

    /// Screenshot mode: once signed in, the autopilot done and nothing running for a while, touch the
    /// ready file so the script can capture the window.
    pub(super) fn signal_screenshot_ready(&mut self, ctx: &egui::Context) {
        let Some(path) = &self.screenshot.ready_file else {
            return;
        };
        let settled = self.screenshot.pilot.is_none()
            && !self.screenshot.seeding
            && !self.busy()
            && (self.shared.operator.is_some() || self.screen == Screen::SignIn);
        self.screenshot.settled_frames = if settled {
            self.screenshot.settled_frames + 1
        } else {
            0
        };
        if self.screenshot.settled_frames >= 10 {
            if let Err(e) =
                crate::output::write(path, &crate::output::Protected::none(), b"ready\n")
            {
                eprintln!("countersign: could not write {}: {e}", path.display());
            }
            self.screenshot.ready_file = None;
        } else {
            ctx.request_repaint_after(std::time::Duration::from_millis(50));
        }
    }
}
