//! Issue 14's remaining screen controls through the real app with egui_kittest: a wrong PIN says how
//! many attempts are left, a stopped training run says it stopped and what it kept, fine-tuning
//! starts from an existing model, a corner drag never collapses the signature box, and at 1440 pixels
//! wide with three references the Override button and its reason field stay inside the window.
//! Real SQLite, real libtorch, PNG files.

#![allow(clippy::unwrap_used)]

use countersign::gui::{CountersignApp, Screen, Slot};
use egui::accesskit;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use crate::gui_app::{Fixture, harness, has_text, load, open_as, sign_in, type_into, wait_for};

fn wrong_pin(h: &mut Harness<'static, CountersignApp>, name: &str) {
    h.state_mut().sign_in.name.clear();
    h.state_mut().sign_in.pin.clear();
    type_into(h, accesskit::Role::TextInput, "Operator", name);
    type_into(h, accesskit::Role::PasswordInput, "PIN", "not-the-pin");
    h.get_by_label("Sign in").click();
    wait_for(h, "the refusal", |a| {
        !a.sign_in.busy && a.sign_in.error.is_some()
    });
}

#[test]
fn a_wrong_pin_says_how_many_attempts_are_left_and_clears_the_field() {
    let f = Fixture::new();
    let mut h = harness(f.app());
    for left in [4, 3, 2] {
        wrong_pin(&mut h, "clara");
        let what = h.state().sign_in.error.clone().unwrap().what;
        assert!(
            what.contains(&format!("{left} attempts left before clara is locked out")),
            "{what}"
        );
        assert!(has_text(&h, &format!("{left} attempts left")));
        assert!(h.state().sign_in.pin.is_empty(), "the PIN field is cleared");
    }
    wrong_pin(&mut h, "clara");
    assert!(has_text(&h, "1 attempt left before clara is locked out"));
    wrong_pin(&mut h, "clara");
    let what = h.state().sign_in.error.clone().unwrap().what;
    assert!(
        what.contains("clara is locked out after 5 wrong PINs (since 20"),
        "the lock and its time: {what}"
    );
    assert!(what.contains("No attempts are left"), "{what}");
    assert!(has_text(&h, "Ask a supervisor to unlock you"));
    // Even the right PIN is refused now.
    type_into(&mut h, accesskit::Role::PasswordInput, "PIN", "clara-pin-1");
    h.get_by_label("Sign in").click();
    wait_for(&mut h, "the refusal", |a| {
        !a.sign_in.busy && a.sign_in.error.is_some()
    });
    assert!(h.state().operator().is_none());
    // An unknown name gets no count (and no lock).
    wrong_pin(&mut h, "nobody");
    let what = h.state().sign_in.error.clone().unwrap().what;
    assert!(what.contains("wrong operator name or PIN"), "{what}");
    assert!(!what.contains("attempt"), "{what}");
}

/// A small synthetic training archive.
fn archive(f: &Fixture) -> std::path::PathBuf {
    let data = f.path("archive");
    countersign::synth::dataset::generate_dataset(
        &data,
        &countersign::synth::dataset::DatasetOptions {
            writers: 8,
            genuine: 5,
            forgeries: 2,
            cheques: 0,
            seed: 5,
            scan: false,
        },
    )
    .unwrap();
    data
}

#[test]
fn stopping_a_training_run_says_it_stopped_and_what_was_kept() {
    let f = Fixture::new();
    let mut h = open_as(&f, "sam", Screen::Train);
    let data = archive(&f);
    let out = f.path("stopped.safetensors");
    {
        let t = &mut h.state_mut().train;
        t.data = data.display().to_string();
        t.out = out.display().to_string();
        t.epochs = 200;
        t.batch_size = 16;
    }
    h.get_by_label("Start training").click();
    wait_for(&mut h, "the first training step", |a| {
        !a.train.losses.is_empty()
    });
    h.get_by_label("Stop").click();
    wait_for(&mut h, "the run to stop", |a| !a.train.running);
    let t = &h.state().train;
    assert!(
        t.status.starts_with("Stopped after ")
            && t.status.ends_with(" of 200 epochs: no model was written."),
        "{}",
        t.status
    );
    assert!(t.progress < 1.0, "the bar stays where the run stopped");
    assert!(t.model_path.is_none());
    assert!(!out.exists(), "no model was written");
    let checkpoint = countersign::train::checkpoint_path(&out);
    assert!(checkpoint.is_file(), "the checkpoint was kept");
    assert!(
        t.kept[0].contains(&checkpoint.display().to_string()),
        "{:?}",
        t.kept
    );
    assert!(has_text(&h, "Kept: the checkpoint"));
    assert!(has_text(&h, "no model was written"));
    assert!(!has_text(&h, "Model written"));
}

#[test]
fn the_train_screen_fine_tunes_an_existing_model() {
    let f = Fixture::new();
    let mut h = open_as(&f, "sam", Screen::Train);
    let data = archive(&f);
    let out = f.path("tuned.safetensors");
    {
        let t = &mut h.state_mut().train;
        t.data = data.display().to_string();
        t.out = out.display().to_string();
        t.epochs = 1;
        t.batch_size = 16;
    }
    h.run_ok();
    // Fine-tuning is a choice on the screen; the start button says which run it is.
    h.get_by_label("an existing model (fine-tune)").click();
    h.run_ok();
    type_into(
        &mut h,
        accesskit::Role::TextInput,
        "Fine-tune from",
        &f.model.display().to_string(),
    );
    let base = countersign::model::SignatureModel::load(&f.model, tch::Device::Cpu)
        .unwrap()
        .id();
    h.get_by_label("Start fine-tuning").click();
    wait_for(&mut h, "fine-tuning to finish", |a| {
        !a.train.running && a.train.model_path.is_some()
    });
    let t = &h.state().train;
    assert_eq!(t.model_path.as_deref(), Some(out.as_path()));
    let from = t
        .card
        .iter()
        .find(|(k, _)| k.ends_with("initialised_from"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(
        from.contains(&base),
        "the card names the model it started from: {:?}",
        t.card
    );
    let tuned = countersign::model::SignatureModel::load(&out, tch::Device::Cpu).unwrap();
    assert_ne!(tuned.id(), base, "the weights moved");
}

#[test]
fn a_corner_drag_never_collapses_the_signature_box() {
    let f = Fixture::new();
    let mut h = harness(f.app());
    sign_in(&mut h, "clara");
    let (reference, cheque) = f.demo_pair();
    load(&mut h, Slot::Reference(0), &reference);
    load(&mut h, Slot::Cheque, &cheque);
    wait_for(&mut h, "the result", |a| a.verify.outcome.is_some());
    let info = h.state().verify.cheque.as_ref().unwrap().info.clone();
    let (b, _) = info.detected.expect("the demo cheque's signature is found");
    let node = h.get_by_label("Cheque with the signature box");
    node.scroll_to_me();
    h.run_ok();
    let img = h.get_by_label("Cheque with the signature box").rect();
    let scale = img.width() / info.width as f32;
    let at = |x: u32, y: u32| img.min + egui::vec2(x as f32 * scale, y as f32 * scale);
    let top_left = at(b.x, b.y);
    let bottom_right = at(b.x + b.width, b.y + b.height);
    // Drag the bottom-right corner far past the top-left one, in small moves as a hand does.
    let end = top_left - egui::vec2(80.0, 50.0);
    h.hover_at(bottom_right);
    h.run_ok();
    h.drag_at(bottom_right);
    h.run_ok();
    for k in 1..=12 {
        let t = k as f32 / 12.0;
        h.hover_at(bottom_right + (end - bottom_right) * t);
        h.run_ok();
    }
    let crop = h
        .state()
        .verify
        .crop
        .expect("the dragged box is the hand-drawn box");
    h.drop_at(end);
    h.run_ok();
    let min = countersign::gui::verify::MIN_BOX;
    assert!(
        crop.width as f32 * scale >= min.x - 1.0 && crop.height as f32 * scale >= min.y - 1.0,
        "the box kept its smallest size: {crop:?} at scale {scale}"
    );
    assert!(
        crop.x.abs_diff(b.x) <= 2 && crop.y.abs_diff(b.y) <= 2,
        "the opposite corner stayed: {crop:?} vs {b:?}"
    );
    // Dragged back out, the corner follows the pointer again.
    let crop_screen = at(crop.x + crop.width, crop.y + crop.height);
    h.hover_at(crop_screen);
    h.run_ok();
    h.drag_at(crop_screen);
    h.run_ok();
    for k in 1..=8 {
        h.hover_at(crop_screen + egui::vec2(10.0, 6.0) * k as f32);
        h.run_ok();
    }
    h.drop_at(crop_screen + egui::vec2(80.0, 48.0));
    h.run_ok();
    let grown = h.state().verify.crop.unwrap();
    assert!(
        grown.width > crop.width && grown.height > crop.height,
        "{grown:?} grew from {crop:?}"
    );
    wait_for(&mut h, "the result with the hand-drawn box", |a| {
        a.verify.outcome.is_some()
    });
}

#[test]
fn at_1440_wide_with_three_references_the_override_controls_are_inside_the_window() {
    let f = Fixture::new();
    let size = egui::vec2(1440.0, 900.0);
    let mut h = Harness::builder()
        .with_size(size)
        .with_max_steps(20)
        .build_ui_state(|ui, app: &mut CountersignApp| app.show(ui), f.app());
    sign_in(&mut h, "sam");
    let (reference, cheque) = f.demo_pair();
    load(&mut h, Slot::Reference(0), &reference);
    load(&mut h, Slot::Reference(1), &f.signature(0, 1));
    load(&mut h, Slot::Reference(2), &f.signature(0, 2));
    load(&mut h, Slot::Cheque, &cheque);
    wait_for(&mut h, "the result", |a| a.verify.outcome.is_some());
    assert_eq!(
        h.state().verify.outcome.as_ref().unwrap().references.len(),
        3
    );
    h.get_by_label("Override...").click();
    h.run_ok();
    let screen = egui::Rect::from_min_size(egui::Pos2::ZERO, size);
    let inside = |r: egui::Rect| {
        r.min.x >= screen.min.x - 0.5
            && r.max.x <= screen.max.x + 0.5
            && r.min.y >= screen.min.y - 0.5
            && r.max.y <= screen.max.y + 0.5
    };
    h.get_by_label("Override...").scroll_to_me();
    h.run_ok();
    let button = h.get_by_label("Override...").rect();
    assert!(inside(button), "Override... at {button:?}");
    let overlay = h.get_by_label("Overlay").rect();
    assert!(inside(overlay), "the overlay's label at {overlay:?}");
    h.get_by_role_and_label(accesskit::Role::MultilineTextInput, "Reason (required)")
        .scroll_to_me();
    h.run_ok();
    let reason = h
        .get_by_role_and_label(accesskit::Role::MultilineTextInput, "Reason (required)")
        .rect();
    assert!(inside(reason), "the reason field at {reason:?}");
}

#[test]
fn calibrate_shows_the_calibration_before_and_after_and_requests_each_change_on_its_own() {
    use countersign::scoring::Thresholds;
    use countersign::store::SettingsChange;
    let f = Fixture::new();
    let in_force = Thresholds {
        accept: 0.8,
        reject: 0.3,
    };
    let model = countersign::model::SignatureModel::load(&f.model, tch::Device::Cpu).unwrap();
    {
        let mut s = countersign::store::Store::open(&f.db).unwrap();
        s.set_kdf_cost(countersign::store::KdfCost::Test);
        let sam = s.authenticate("sam", "sam-pin-1").unwrap();
        crate::store_common::change_settings(
            &mut s,
            &sam,
            &SettingsChange::Thresholds(in_force),
            "thresholds before any calibration",
        )
        .unwrap();
        // An approved threshold change applies on its own: the card (here without a calibration)
        // keeps the calibration until a calibration change is approved.
        let p = countersign::verify::Policy::resolve(Some(&s), &model).unwrap();
        assert_eq!(p.decision.thresholds, in_force);
        assert_eq!(p.source, countersign::verify::PolicySource::Settings);
        assert_eq!(p.calibration, None);
    }
    let data = f.path("labelled");
    countersign::synth::dataset::generate_dataset(
        &data,
        &countersign::synth::dataset::DatasetOptions {
            writers: 4,
            genuine: 6,
            forgeries: 3,
            cheques: 0,
            seed: 7,
            scan: false,
        },
    )
    .unwrap();
    let mut h = open_as(&f, "sam", Screen::Calibrate);
    type_into(
        &mut h,
        accesskit::Role::TextInput,
        "Labelled folder",
        &data.display().to_string(),
    );
    h.get_by_label("Evaluate").click();
    wait_for(&mut h, "the evaluation", |a| a.calibrate.summary.is_some());
    let s = h.state().calibrate.summary.clone().unwrap();
    let fitted = s.calibration.unwrap();
    assert_eq!(s.calibration_in_force, None);
    assert_eq!(s.genuine_scores().len(), s.genuine.len());
    assert_eq!(s.forgery_scores().len(), s.forgery.len());

    // Before and after, side by side, at the thresholds in force.
    assert!(has_text(
        &h,
        "Probability calibration: in force now and fitted here"
    ));
    assert!(has_text(&h, "none (every cheque is referred)"));
    assert!(has_text(
        &h,
        &format!("a {:.4}, b {:.4}", fitted.a, fitted.b)
    ));
    assert!(has_text(
        &h,
        "At the thresholds in force (ACCEPT 0.800, REJECT 0.300): FAR"
    ));
    let after =
        countersign::gui::calibrate::calibration_effect(Some(fitted), &s, in_force).unwrap();
    let top = s.genuine.iter().copied().fold(0.0, f64::max);
    assert!((after.max_genuine - top).abs() < 1e-12);
    assert_eq!(
        after.rates,
        countersign::gui::calibrate::rates(&s.genuine, &s.forgery, in_force)
    );
    assert!(countersign::gui::calibrate::calibration_effect(None, &s, in_force).is_none());

    // The calibration alone.
    h.get_by_label("Request calibration change...")
        .scroll_to_me();
    h.run_ok();
    h.get_by_label("Request calibration change...").click();
    h.run_ok();
    type_into(
        &mut h,
        accesskit::Role::TextInput,
        "Reason for the calibration change",
        "refitted on the branch archive",
    );
    // Below the plots' top on a laptop-sized window: scrolled into view, as a user does.
    h.get_by_label("Ask for approval of the calibration")
        .scroll_to_me();
    h.run_ok();
    h.get_by_label("Ask for approval of the calibration")
        .click();
    h.run_ok();
    wait_for(&mut h, "the calibration request", |a| {
        a.calibrate
            .saved
            .as_deref()
            .is_some_and(|m| m.contains("calibration change #"))
    });
    let pending = |f: &Fixture| {
        countersign::store::Store::open(&f.db)
            .unwrap()
            .pending_settings_requests()
            .unwrap()
    };
    let p = pending(&f);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].change, SettingsChange::Calibration(fitted));

    // The thresholds alone.
    h.get_by_label("Request threshold change...").scroll_to_me();
    h.run_ok();
    h.get_by_label("Request threshold change...").click();
    h.run_ok();
    assert!(has_text(
        &h,
        "With the calibration in force: no probability"
    ));
    type_into(
        &mut h,
        accesskit::Role::TextInput,
        "Reason for the threshold change",
        "stricter after the recalibration",
    );
    // Below the plots' top on a laptop-sized window: scrolled into view, as a user does.
    h.get_by_label("Ask for approval of the thresholds")
        .scroll_to_me();
    h.run_ok();
    h.get_by_label("Ask for approval of the thresholds").click();
    h.run_ok();
    wait_for(&mut h, "the threshold request", |a| {
        a.calibrate
            .saved
            .as_deref()
            .is_some_and(|m| m.contains("threshold change #"))
    });
    let p = pending(&f);
    assert_eq!(p.len(), 2, "{p:?}");
    let c = &h.state().calibrate;
    assert_eq!(
        p[1].change,
        SettingsChange::Thresholds(Thresholds {
            accept: c.accept,
            reject: c.reject
        })
    );
}

#[test]
fn in_force_now_is_an_approved_change_not_any_settings_version() {
    use countersign::scoring::Thresholds;
    use countersign::store::SettingsChange;
    // The fixture's only approved change activates the model: the settings have a version, but no
    // threshold was ever approved, so none of the settings' stored thresholds is in force.
    let f = Fixture::new();
    let mut h = harness(f.app());
    sign_in(&mut h, "sam");
    wait_for(&mut h, "the status", |a| !a.shared.status.model.is_empty());
    assert_eq!(h.state().shared.status.thresholds_in_force, None);
    assert_eq!(h.state().shared.status.calibration_in_force, None);
    let mut s = countersign::store::Store::open(&f.db).unwrap();
    s.set_kdf_cost(countersign::store::KdfCost::Test);
    let sam = s.authenticate("sam", "sam-pin-1").unwrap();
    let t = Thresholds {
        accept: 0.9,
        reject: 0.2,
    };
    crate::store_common::change_settings(&mut s, &sam, &SettingsChange::Thresholds(t), "stricter")
        .unwrap();
    let c = countersign::scoring::Calibration { a: 9.0, b: -7.0 };
    crate::store_common::change_settings(&mut s, &sam, &SettingsChange::Calibration(c), "refitted")
        .unwrap();
    drop(s);
    // A new sign-in reads the status again.
    h.state_mut().sign_out();
    h.run_ok();
    sign_in(&mut h, "sam");
    wait_for(&mut h, "the new status", |a| {
        a.shared.status.thresholds_in_force.is_some()
    });
    assert_eq!(h.state().shared.status.thresholds_in_force, Some(t));
    // The Calibrate screen's 'in force now' column reads the calibration from the status too.
    assert_eq!(h.state().shared.status.calibration_in_force, Some(c));
}
