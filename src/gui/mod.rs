//! The desktop application (eframe/egui 0.37, glow backend).
//!
//! - [`app::CountersignApp`]: the frame loop, the operator and the routing of events to the screens;
//!   testable headless with egui_kittest. Each screen owns its state ([`screen::ScreenState`]).
//! - [`worker`]: one thread owns the model and the database; the UI sends jobs and draws events.
//! - [`backend`]: the only module that calls the other layers.
//! - One module per screen: [`sign_in`], [`verify`], [`calibrate`], [`audit`], [`train`], [`batch`].
//!
//! Screenshot mode (used by `scripts/screenshots.sh`) lives in [`autopilot`].

use std::path::{Path, PathBuf};

use crate::device::DeviceChoice;

pub mod app;
pub mod audit;
pub mod audit_events;
pub mod autopilot;
pub mod backend;
pub mod batch;
pub mod bench;
pub mod calibrate;
pub mod queue;
pub mod screen;
pub mod sign_in;
pub mod train;
pub mod verify;
pub mod widgets;
pub mod worker;

pub use app::{CountersignApp, Screen};
pub use backend::{Role, Slot};

pub use autopilot::{SCREENSHOT_ENV, SCREENSHOT_READY_ENV};

/// What the binary's edge passes the GUI from its command line (the GUI does not read the CLI's
/// options itself).
#[derive(Clone, Debug)]
pub struct Options {
    /// The audit database.
    pub db_path: PathBuf,
    /// Weights named with `--model`; without them the backend uses the model in force for the store
    /// (the one a supervisor activated, else the bundled one; see [`crate::model::in_force`]).
    pub model_path: Option<PathBuf>,
    pub device: DeviceChoice,
    /// The operator's name, filled in on the sign-in screen.
    pub operator: Option<String>,
    /// The operator's PIN: used only by the screenshot mode to sign in by itself.
    pub pin: Option<String>,
}

impl Options {
    /// What the GUI's worker opens.
    pub fn backend_config(&self) -> backend::BackendConfig {
        backend::BackendConfig {
            db_path: self.db_path.clone(),
            model_path: self.model_path.clone(),
            device: self.device,
        }
    }
}

/// There is no display to open a window on; the message says how to use the command line instead.
/// The binary's edge maps it to its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{}", NO_DISPLAY_MESSAGE)]
pub struct NoDisplay;

/// Starts the GUI, or explains how to use the CLI when there is no display ([`NoDisplay`]).
pub fn run(options: &Options) -> anyhow::Result<()> {
    if !has_display() {
        return Err(NoDisplay.into());
    }
    let config = options.backend_config();
    let mut app = CountersignApp::new(config.db_path, config.model_path, config.device);
    if let Some(name) = &options.operator {
        app.sign_in.name = name.clone();
    }
    if let Some(mode) = autopilot::ScreenshotMode::from_env().map_err(anyhow::Error::msg)? {
        app.sign_in.pin = options.pin.clone().unwrap_or_default();
        app.screenshot = mode;
    }
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Countersign")
            .with_inner_size([1440.0, 900.0])
            .with_min_inner_size([900.0, 600.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "Countersign",
        options,
        Box::new(move |_cc| Ok(Box::new(app))),
    )
    .map_err(|e| anyhow::anyhow!("the window could not be opened: {e}"))
}

/// Shown when no X11 or Wayland display is available.
pub const NO_DISPLAY_MESSAGE: &str = "No display found (neither DISPLAY nor WAYLAND_DISPLAY is set), so the \
desktop application cannot open a window. Everything it does is also available from the command line: \
`countersign verify --reference REF.png --cheque CHEQUE.png` checks one cheque, `countersign batch \
--manifest cheques.csv` checks many, `countersign evaluate` and `countersign calibrate` measure and set \
thresholds, `countersign audit verify|export` inspect the audit log, `countersign train` trains a model \
and `countersign info` shows the set-up. Run `countersign --help` for the full list, or start the \
application under a display (for example `xvfb-run countersign`).";

/// True when an X11 or Wayland display is configured.
pub fn has_display() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// Seconds since this process started, from /proc (Linux only; 10 ms resolution).
pub fn seconds_since_process_start() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name is in parentheses and may contain spaces; fields after it are space-separated.
    let after = stat.rsplit_once(')')?.1;
    let start_ticks: f64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // Linux reports start time in USER_HZ, which is 100 on every mainstream kernel configuration.
    Some((uptime - start_ticks / 100.0).max(0.0))
}

/// The demo data folder: `COUNTERSIGN_DEMO` when set (the screenshot script sets it), else `assets/demo`.
pub fn demo_dir() -> Option<PathBuf> {
    std::env::var_os("COUNTERSIGN_DEMO")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .or_else(crate::paths::demo_assets)
}

pub(crate) fn image_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        matches!(
                            e.to_ascii_lowercase().as_str(),
                            "png" | "jpg" | "jpeg" | "tif" | "tiff" | "bmp"
                        )
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// The labelled writer folders of the demo data (the folder holding `NNN/` and `NNN_forg/`).
pub fn demo_labelled_folder(demo: &Path) -> PathBuf {
    // The synthetic generator writes a manifest beside the writer folders; it names exactly the
    // labelled signatures (the cheques folder beside them is not a writer).
    let manifest = demo.join("manifest.csv");
    if manifest.is_file() {
        return manifest;
    }
    for candidate in [
        demo.join("writers"),
        demo.join("signatures"),
        demo.to_path_buf(),
    ] {
        if subdirs(&candidate).iter().any(|d| {
            d.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("_forg"))
        }) {
            return candidate;
        }
    }
    demo.to_path_buf()
}

/// Every demo cheque with a reference signature of its writer (the writer whose folder name the
/// cheque's file name contains), for the screenshot mode's seeding.
pub fn demo_pairs(demo: &Path) -> Vec<(PathBuf, PathBuf)> {
    // Every image in `cheques/` is a cheque; in the folder itself, those named so.
    let mut cheques = image_files(&demo.join("cheques"));
    cheques.extend(image_files(demo).into_iter().filter(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.to_lowercase().contains("cheque"))
    }));
    let writers: Vec<(String, PathBuf)> = subdirs(demo)
        .into_iter()
        .filter_map(|d| {
            let name = d.file_name()?.to_str()?.to_string();
            let is_writer = !name.ends_with("_forg") && name != "cheques";
            let first = image_files(&d).into_iter().next()?;
            is_writer.then_some((name, first))
        })
        .collect();
    cheques
        .into_iter()
        .filter_map(|c| {
            let name = c.file_name()?.to_str()?.to_string();
            let (_, reference) = writers.iter().find(|(w, _)| name.contains(w.as_str()))?;
            Some((reference.clone(), c))
        })
        .collect()
}

/// A reference signature and a genuine cheque of the same writer from the demo data.
pub fn demo_pair(demo: &Path) -> Option<(PathBuf, PathBuf)> {
    demo_pairs(demo).into_iter().next()
}

/// Writes a batch manifest of every demo cheque against its writer's reference into the temporary
/// folder (the screenshot mode's Batch screen, when the demo data has no manifest of its own).
pub fn write_demo_manifest(demo: &Path) -> Option<PathBuf> {
    let pairs = demo_pairs(demo);
    if pairs.is_empty() {
        return None;
    }
    let path =
        std::env::temp_dir().join(format!("countersign-demo-batch-{}.csv", std::process::id()));
    let mut w = csv::Writer::from_path(&path).ok()?;
    w.write_record(["cheque_id", "cheque_path", "reference_paths"])
        .ok()?;
    for (reference, cheque) in &pairs {
        let id = cheque.file_stem()?.to_string_lossy().to_string();
        w.write_record([
            id,
            cheque.display().to_string(),
            reference.display().to_string(),
        ])
        .ok()?;
    }
    w.flush().ok()?;
    Some(path)
}

/// The demo batch manifest, if there is one.
pub fn demo_manifest(demo: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(demo)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("csv"))
        .collect();
    // The labelled-signature manifest is not a batch manifest.
    found.retain(|p| p.file_name().is_some_and(|n| n != "manifest.csv"));
    found.sort_by_key(|p| !p.to_string_lossy().contains("batch"));
    found.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_pairs_match_cheques_to_their_writers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = crate::synth::dataset::DatasetOptions {
            writers: 2,
            genuine: 2,
            forgeries: 1,
            cheques: 1,
            seed: 3,
            scan: false,
        };
        crate::synth::dataset::generate_dataset(dir.path(), &opts).expect("demo data");
        let pairs = demo_pairs(dir.path());
        assert_eq!(pairs.len(), 2, "{pairs:?}");
        for (reference, cheque) in &pairs {
            let writer = reference
                .parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .expect("writer");
            assert!(!writer.ends_with("_forg"));
            let cname = cheque
                .file_name()
                .and_then(|n| n.to_str())
                .expect("cheque name");
            assert!(cname.contains(writer), "{cname} belongs to {writer}");
        }
        assert_eq!(
            demo_labelled_folder(dir.path()),
            dir.path().join("manifest.csv")
        );
        assert_eq!(
            demo_manifest(dir.path()),
            None,
            "the labelled manifest is not a batch manifest"
        );
    }
}
