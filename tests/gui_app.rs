//! The desktop application driven headless with egui_kittest: the real app, the real worker thread,
//! a temporary database.

use std::time::{Duration, Instant};

use countersign::device::DeviceChoice;
use countersign::gui::{CountersignApp, Screen};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

fn harness(app: CountersignApp) -> Harness<'static, CountersignApp> {
    Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .with_max_steps(20)
        .build_ui_state(|ui, app: &mut CountersignApp| app.show(ui), app)
}

/// Steps the UI until `done` holds, failing with `what` after 60 s (worker results arrive asynchronously).
fn wait_for(
    h: &mut Harness<'static, CountersignApp>,
    what: &str,
    done: impl Fn(&CountersignApp) -> bool,
) {
    let start = Instant::now();
    loop {
        h.step();
        if done(h.state()) {
            h.run_ok();
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out after 60 s waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sign_in_asks_for_both_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = CountersignApp::new(dir.path().join("audit.sqlite3"), None, DeviceChoice::Cpu);
    let mut h = harness(app);
    h.run_ok();
    assert_eq!(h.state().screen, Screen::SignIn);
    h.get_by_label("Sign in").click();
    h.run_ok();
    h.get_by_label("Enter your operator name and PIN.");
    assert!(h.state().operator().is_none());
}
