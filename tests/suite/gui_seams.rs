//! The GUI's seams (issue 15): the Calibrate screen's backend calls the same calibration as
//! `countersign calibrate` (a real synthetic labelled folder, a real seeded network, the real binary);
//! the Verify session reads files with `verify`'s reader; "no display" is the GUI's typed error that
//! the binary's edge maps to exit code 8.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use countersign::device::DeviceChoice;
use countersign::gui::backend::{self, BackendConfig};

use crate::assess_cli::{cs, fixture, text};

const BIN: &str = env!("CARGO_BIN_EXE_countersign");

/// `countersign calibrate --json` on `data`, with `extra` arguments.
fn cli_calibrate(dir: &Path, data: &Path, weights: &Path, extra: &[&str]) -> serde_json::Value {
    let json = dir.join(format!("cal{}.json", extra.len()));
    let mut args = vec!["calibrate", "--data", data.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--json", json.to_str().expect("utf-8 path")]);
    let o = cs(&dir.join("audit.sqlite3"), weights, &args, &[]);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse")
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn same(gui: f64, cli: f64, what: &str) {
    assert!(
        (gui - cli).abs() <= 1e-9 * cli.abs().max(1.0),
        "{what}: GUI {gui}, countersign calibrate {cli}"
    );
}

#[test]
fn the_calibrate_screen_calibrates_exactly_as_countersign_calibrate() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 5 synthetic writers x 8 genuine + 3 skilled forgeries (`countersign synth`), a seeded model.
    let (data, weights) = fixture(dir.path());
    let config = BackendConfig {
        db_path: dir.path().join("audit.sqlite3"),
        model_path: Some(weights.clone()),
        device: DeviceChoice::Cpu,
    };
    let stop = Arc::new(AtomicBool::new(false));
    // The screen's default: the protocol's 5 references per writer, as `calibrate` without options.
    let references = countersign::scoring::EvalConfig::default().references;
    let gui = backend::evaluate(&config, &data, references, &mut |_, _| {}, &stop)
        .expect("the GUI backend evaluates the folder");
    let calibration = gui.calibration.expect("a calibration");

    let cli = cli_calibrate(dir.path(), &data, &weights, &[]);
    same(calibration.a, f(&cli["calibration"]["a"]), "slope");
    same(calibration.b, f(&cli["calibration"]["b"]), "intercept");
    same(gui.eer, f(&cli["eer"]), "EER");
    // The same pairs: every forgery (skilled and random), not only the skilled ones.
    assert_eq!(gui.genuine.len() as f64, f(&cli["genuine_pairs"]));
    assert_eq!(gui.forgery.len() as f64, f(&cli["forgery_pairs"]));
    let proposed = gui.proposed.expect("proposed thresholds").thresholds;
    same(
        proposed.accept,
        f(&cli["choice"]["thresholds"]["accept"]),
        "accept threshold at the default target FAR",
    );
    same(
        proposed.reject,
        f(&cli["choice"]["thresholds"]["reject"]),
        "reject threshold at the default target FAR",
    );

    // The screen's "Set thresholds for target FAR" at 5 % gives what `--target-far 0.05` gives.
    let cli = cli_calibrate(dir.path(), &data, &weights, &["--target-far", "0.05"]);
    let at = gui.thresholds_for(0.05).expect("thresholds for 5 %");
    same(
        at.thresholds.accept,
        f(&cli["choice"]["thresholds"]["accept"]),
        "accept threshold at 5 %",
    );
    same(
        at.thresholds.reject,
        f(&cli["choice"]["thresholds"]["reject"]),
        "reject threshold at 5 %",
    );
    same(at.far, f(&cli["choice"]["far"]), "FAR at 5 %");
}

#[test]
fn a_folder_dropped_as_a_cheque_is_refused_by_the_reader_verify_uses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = backend::Backend::new(BackendConfig {
        db_path: dir.path().join("audit.sqlite3"),
        model_path: None,
        device: DeviceChoice::Cpu,
    });
    let folder = dir.path().join("scans");
    std::fs::create_dir(&folder).expect("folder");
    let e = b
        .load_image(countersign::gui::Slot::Cheque, &folder)
        .expect_err("a folder is not an image");
    // `verify::input::read_bounded`'s words: the GUI has no reader of its own.
    assert!(e.what.contains("is a folder, not an image file"), "{e}");
    assert!(e.todo.contains("not a folder"), "{e}");
}

/// The GUI says there is no display with its own typed error; the binary's edge maps it to exit code 8
/// and prints the message that explains the command line instead.
#[test]
fn without_a_display_the_binary_explains_the_command_line_and_exits_with_8() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [&[][..], &["gui"][..]] {
        let o = Command::new(BIN)
            .arg("--db")
            .arg(dir.path().join("audit.sqlite3"))
            .args(args)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("COUNTERSIGN_SCREENSHOT")
            .output()
            .expect("run countersign");
        assert_eq!(o.status.code(), Some(8), "{args:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("error: {}", countersign::gui::NO_DISPLAY_MESSAGE)),
            "{err}"
        );
        assert!(o.stdout.is_empty(), "nothing on stdout");
    }
    assert!(
        !dir.path().join("audit.sqlite3").exists(),
        "no database was made"
    );
}
