//! The desktop application driven headless with egui_kittest: the real app and worker thread, a real
//! SQLite database in a temporary folder, a real (freshly initialised) network through libtorch, and
//! synthetic signature images written as PNG files.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use countersign::device::DeviceChoice;
use countersign::gui::{CountersignApp, Screen, Slot};
use countersign::store::{FinalAction as StoreAction, KdfCost, Role, Source, Store};
use egui::accesskit;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

pub(crate) const PINS: [(&str, Role, &str); 4] = [
    ("sam", Role::Supervisor, "sam-pin-1"),
    ("clara", Role::Clerk, "clara-pin-1"),
    ("ada", Role::Auditor, "ada-pin-1"),
    // A second supervisor: settings changes need two (four eyes).
    ("sid", Role::Supervisor, "730214"),
];

/// A temporary database with one operator per role, a model file, and signature images.
pub(crate) struct Fixture {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) db: PathBuf,
    pub(crate) model: PathBuf,
}

impl Fixture {
    /// Runs the real binary on this fixture's database as supervisor `sam`, on the CPU, with nothing
    /// taken from the environment.
    pub(crate) fn cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
            .arg("--db")
            .arg(&self.db)
            .args(["--device", "cpu"])
            .env_remove("COUNTERSIGN_OPERATOR")
            .env_remove("COUNTERSIGN_PIN")
            .env_remove("COUNTERSIGN_MODEL")
            .args(["--operator", "sam", "--pin", "sam-pin-1"])
            .args(args)
            .output()
            .expect("run countersign")
    }

    pub(crate) fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("audit.sqlite3");
        let mut store = Store::open(&db).expect("open store");
        store.set_kdf_cost(KdfCost::Test);
        let sup = store
            .add_operator(None, PINS[0].0, PINS[0].1, PINS[0].2)
            .expect("supervisor");
        for (name, role, pin) in &PINS[1..] {
            store
                .add_operator(Some(&sup), name, *role, pin)
                .expect("operator");
        }
        let model = dir.path().join("model.safetensors");
        tch::manual_seed(11);
        let mut m = countersign::model::SignatureModel::new(
            countersign::imaging::normalise::NormaliseParams::default(),
            tch::Device::Cpu,
        );
        m.save(&model).expect("save model");
        // The store's active model: only the active model decides recorded decisions.
        // (Four eyes: "sam" asks, the second supervisor "sid" approves.)
        crate::store_common::change_settings(
            &mut store,
            &sup,
            &countersign::store::SettingsChange::Model {
                id: m.id(),
                path: Some(model.display().to_string()),
            },
            "the test model",
        )
        .expect("activate the test model");
        drop(store);
        Fixture { dir, db, model }
    }

    pub(crate) fn app(&self) -> CountersignApp {
        CountersignApp::new(self.db.clone(), Some(self.model.clone()), DeviceChoice::Cpu)
    }

    /// A genuine synthetic signature of writer `w`, sample `i`, as a PNG file.
    pub(crate) fn signature(&self, w: u32, i: u32) -> PathBuf {
        let p = self.dir.path().join(format!("w{w}-{i}.png"));
        countersign::synth::dataset::genuine_sample(2026, w, i)
            .save(&p)
            .expect("write png");
        p
    }

    /// A reference signature and a cheque of the same writer: from the shipped demo data when it is
    /// there, else from demo data generated here by the synthetic generator.
    pub(crate) fn demo_pair(&self) -> (PathBuf, PathBuf) {
        if let Some(pair) =
            countersign::paths::demo_assets().and_then(|d| countersign::gui::demo_pair(&d))
        {
            return pair;
        }
        let demo = self.path("demo");
        let opts = countersign::synth::dataset::DatasetOptions {
            writers: 2,
            genuine: 3,
            forgeries: 1,
            cheques: 1,
            seed: 2026,
            scan: false,
        };
        countersign::synth::dataset::generate_dataset(&demo, &opts).expect("demo data");
        countersign::gui::demo_pair(&demo).expect("a demo pair")
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

pub(crate) fn harness(app: CountersignApp) -> Harness<'static, CountersignApp> {
    Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .with_max_steps(20)
        .build_ui_state(|ui, app: &mut CountersignApp| app.show(ui), app)
}

/// Steps the UI until `done` holds; worker results arrive asynchronously. Fails after 60 s.
pub(crate) fn wait_for(
    h: &mut Harness<'static, CountersignApp>,
    what: &str,
    done: impl Fn(&CountersignApp) -> bool,
) {
    let errors = |h: &Harness<'static, CountersignApp>| -> Vec<String> {
        h.state()
            .shared
            .banners
            .iter()
            .filter(|b| b.is_error)
            .map(|b| b.error.what.clone())
            .collect()
    };
    let before = errors(h).len();
    let start = Instant::now();
    loop {
        h.step();
        if done(h.state()) {
            h.run_ok();
            return;
        }
        let now = errors(h);
        assert!(
            now.len() <= before,
            "an error appeared while waiting for {what}: {now:?}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out after 60 s waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Focuses a text field found by role and label, and types into it.
pub(crate) fn type_into(
    h: &mut Harness<'static, CountersignApp>,
    role: accesskit::Role,
    label: &str,
    text: &str,
) {
    h.get_by_role_and_label(role, label).focus();
    h.run_ok();
    h.get_by_role_and_label(role, label).type_text(text);
    h.run_ok();
}

pub(crate) fn sign_in(h: &mut Harness<'static, CountersignApp>, name: &str) {
    let pin = PINS
        .iter()
        .find(|p| p.0 == name)
        .map(|p| p.2)
        .expect("known operator");
    type_into(h, accesskit::Role::TextInput, "Operator", name);
    type_into(h, accesskit::Role::PasswordInput, "PIN", pin);
    h.get_by_label("Sign in").click();
    wait_for(h, &format!("{name} signed in"), |a| a.operator().is_some());
}

/// The real application on `f`'s database, signed in as `name`, on `screen`.
pub(crate) fn open_as(f: &Fixture, name: &str, screen: Screen) -> Harness<'static, CountersignApp> {
    let mut h = harness(f.app());
    sign_in(&mut h, name);
    assert!(h.state_mut().open(screen), "{name} may open {screen:?}");
    h.run_ok();
    h
}

pub(crate) fn load(h: &mut Harness<'static, CountersignApp>, slot: Slot, path: &Path) {
    h.state_mut().load_file(slot, path);
    wait_for(h, &format!("{slot:?} loaded"), |a| {
        !a.verify.loading.contains(&slot)
    });
}

/// Ctrl+Enter, as the keyboard sends it.
pub(crate) fn ctrl_enter(h: &mut Harness<'static, CountersignApp>) {
    for pressed in [true, false] {
        h.event(egui::Event::Key {
            key: egui::Key::Enter,
            physical_key: None,
            pressed,
            repeat: false,
            modifiers: egui::Modifiers::COMMAND,
        });
    }
    h.run_ok();
}

/// Confirms the shown result with the keyboard as a clerk does: after looking at it for a moment,
/// Ctrl+Enter. Waits until the row is logged.
pub(crate) fn confirm_by_keyboard(h: &mut Harness<'static, CountersignApp>) {
    // Each harness step advances egui's clock by its step time; look at the result for a second.
    for _ in 0..8 {
        h.step();
    }
    ctrl_enter(h);
    wait_for(h, "the decision to be logged", |a| {
        a.verify.recorded.is_some()
    });
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

#[test]
fn wrong_pin_is_refused_with_the_reason() {
    let f = Fixture::new();
    let mut h = harness(f.app());
    type_into(&mut h, accesskit::Role::TextInput, "Operator", "clara");
    type_into(&mut h, accesskit::Role::PasswordInput, "PIN", "not-her-pin");
    h.get_by_label("Sign in").click();
    wait_for(&mut h, "the refusal", |a| a.sign_in.error.is_some());
    assert!(h.state().operator().is_none());
    let shown = h
        .state()
        .sign_in
        .error
        .clone()
        .map(|e| e.what)
        .unwrap_or_default();
    assert!(has_text(&h, "wrong operator name or PIN"), "shown: {shown}");
}

#[test]
fn clerk_verifies_confirms_and_the_auditor_sees_the_row() {
    let f = Fixture::new();
    let mut h = harness(f.app());
    sign_in(&mut h, "clara");
    assert_eq!(h.state().screen, Screen::Verify);

    // The same function a file-dialog pick and a drag-and-drop call.
    let (reference, cheque) = f.demo_pair();
    load(&mut h, Slot::Reference(0), &reference);
    load(&mut h, Slot::Cheque, &cheque);
    let found = h
        .state()
        .verify
        .cheque
        .as_ref()
        .and_then(|c| c.info.detected);
    assert!(found.is_some(), "the signature is found on the demo cheque");
    wait_for(&mut h, "the verification result", |a| {
        a.verify.outcome.is_some()
    });
    let outcome = h
        .state()
        .verify
        .outcome
        .as_ref()
        .map(|o| o.outcome.clone())
        .expect("outcome");
    assert!(outcome.signature_found);
    // The fixture's fresh network has no calibration: the raw score is shown, no made-up probability,
    // and the cheque is referred.
    assert_eq!(outcome.probability, None);
    assert!(outcome.score.is_some_and(f64::is_finite));
    assert!(has_text(&h, "(no probability)"));
    assert_eq!(outcome.decision, countersign::scoring::Decision::Refer);
    assert!(
        h.query_by_label(outcome.decision.as_str()).is_some(),
        "the decision is shown in words"
    );

    // Ctrl+Enter confirms, once the result has been on screen.
    confirm_by_keyboard(&mut h);
    let row = h.state().verify.recorded.clone().expect("row");
    assert_eq!(row.record.decision, outcome.decision);
    assert_eq!(row.effective_action(), StoreAction::Confirm);
    assert_eq!(row.record.operator, "clara");
    wait_for(&mut h, "the recent list", |a| {
        a.verify.recent.iter().any(|r| r.id == row.id)
    });

    h.get_by_label("Sign out").click();
    h.run_ok();
    sign_in(&mut h, "ada");
    assert_eq!(h.state().screen, Screen::Audit);
    wait_for(&mut h, "the audit page", |a| {
        a.audit.count == Some(1)
            && a.audit
                .pages
                .get(&0)
                .is_some_and(|p| p.iter().any(|r| r.id == row.id))
    });
    assert!(
        h.query_by_label(&row.id.to_string()).is_some(),
        "the row's number is in the table"
    );
    assert!(
        h.query_by_label("clara").is_some(),
        "the clerk's name is in the table"
    );
    // The row's detail shows the signature as it was scored, read back from the store.
    h.get_by_label(&row.id.to_string()).click();
    wait_for(&mut h, "the decision's detail", |a| {
        a.audit.detail.as_ref().is_some_and(|d| d.row.id == row.id)
    });
    assert!(
        h.state()
            .audit
            .detail
            .as_ref()
            .is_some_and(|d| d.signature.is_some() && d.signature_note.is_none())
    );
    assert!(has_text(&h, "Signature as scored (logged)"));

    h.get_by_label("Verify chain").click();
    wait_for(&mut h, "the chain check", |a| a.audit.chain.is_some());
    assert!(h.state().audit.chain.as_ref().is_some_and(|c| c.ok));
    assert!(has_text(&h, "Chain intact"));
}

#[test]
fn the_amount_field_refuses_a_misread_figure_and_the_logged_row_keeps_the_amount() {
    let f = Fixture::new();
    let mut h = harness(f.app());
    sign_in(&mut h, "clara");
    let (reference, cheque) = f.demo_pair();
    load(&mut h, Slot::Reference(0), &reference);
    load(&mut h, Slot::Cheque, &cheque);
    wait_for(&mut h, "the first result", |a| a.verify.outcome.is_some());
    assert_eq!(
        h.state()
            .verify
            .outcome
            .as_ref()
            .map(|o| o.outcome.amount_cents),
        Some(None)
    );

    // A misread figure (groups that are not of three digits) is not an amount: the result is
    // withdrawn and nothing is decided.
    type_into(&mut h, accesskit::Role::TextInput, "Amount", "1,20.00");
    h.run_ok();
    assert!(
        h.state().verify.outcome.is_none(),
        "no decision on a misread amount"
    );
    assert!(has_text(&h, "is not an amount"));
    // The first Enter leaves the field, the second would confirm a shown decision.
    h.key_press(egui::Key::Enter);
    h.run_ok();
    h.key_press(egui::Key::Enter);
    h.run_ok();
    assert!(h.state().verify.recorded.is_none(), "Enter records nothing");

    // The amount as the cheque prints it, with a grouping separator: read, shown back, decided
    // again and logged with the row.
    h.state_mut().verify.amount.clear();
    type_into(&mut h, accesskit::Role::TextInput, "Amount", "1,200.00");
    wait_for(&mut h, "the result with the amount", |a| {
        a.verify
            .outcome
            .as_ref()
            .is_some_and(|o| o.outcome.amount_cents == Some(120_000))
    });
    assert!(has_text(&h, "Read as 1200.00"));
    assert!(has_text(&h, "Amount 1200.00"));
    h.key_press(egui::Key::Enter);
    h.run_ok();
    confirm_by_keyboard(&mut h);
    let id = h
        .state()
        .verify
        .recorded
        .as_ref()
        .map(|r| r.id)
        .expect("row");
    let row = Store::open_read_only(&f.db)
        .expect("open")
        .decision(id)
        .expect("read")
        .expect("the row");
    assert_eq!(row.record.amount_cents, Some(120_000));
    assert_eq!(row.record.source, Source::Gui);
}

#[test]
fn supervisor_trains_a_model_and_activates_it_from_the_train_screen() {
    let f = Fixture::new();
    let mut h = open_as(&f, "sam", Screen::Train);
    let data = f.path("archive");
    let opts = countersign::synth::dataset::DatasetOptions {
        writers: 8,
        genuine: 5,
        forgeries: 2,
        cheques: 0,
        seed: 5,
        scan: false,
    };
    countersign::synth::dataset::generate_dataset(&data, &opts).expect("training data");
    let out = f.path("trained.safetensors");
    {
        let t = &mut h.state_mut().train;
        t.data = data.display().to_string();
        t.out = out.display().to_string();
        t.epochs = 1;
        t.batch_size = 16;
    }
    h.get_by_label("Start training").click();
    wait_for(&mut h, "training to finish", |a| {
        !a.train.running && a.train.model_path.is_some()
    });
    let t = &h.state().train;
    assert_eq!(t.model_path.as_deref(), Some(out.as_path()));
    assert!(!t.losses.is_empty(), "the loss curve was drawn");
    assert!(t.card.iter().any(|(k, _)| k.contains("weights_sha256")));
    // The written model loads and matches its card.
    countersign::model::SignatureModel::load(&out, tch::Device::Cpu).expect("trained model loads");

    // A file that is not a model is refused with the reason, and the button is free again.
    let bogus = f.path("not-a-model.safetensors");
    std::fs::write(&bogus, b"not weights").expect("write");
    let trained = std::mem::replace(
        &mut h.state_mut().train.activate_path,
        bogus.display().to_string(),
    );
    h.state_mut().train.activate_reason = "wrong file".into();
    h.run_ok();
    h.get_by_label("Activate model").scroll_to_me();
    h.run_ok();
    h.get_by_label("Activate model").click();
    let start = Instant::now();
    while !h.state().shared.banners.iter().any(|b| b.is_error) {
        assert!(start.elapsed() < Duration::from_secs(60), "no error shown");
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    h.run_ok();
    assert!(!h.state().train.activating, "the button is usable again");
    assert!(has_text(&h, "was not activated"));
    h.state_mut().shared.banners.clear();
    h.state_mut().train.activate_path = trained;
    h.state_mut().train.activate_reason.clear();
    h.run_ok();

    // Activation needs a reason; with one, the store's settings name the new model.
    type_into(
        &mut h,
        accesskit::Role::TextInput,
        "Reason",
        "trained on the branch archive",
    );
    assert_eq!(
        h.state().train.activate_reason,
        "trained on the branch archive"
    );
    // The section sits below the plots: scroll to it as a supervisor would, then click.
    h.get_by_label("Activate model").scroll_to_me();
    h.run_ok();
    h.get_by_label("Activate model").click();
    h.step();
    assert!(h.state().train.activating, "the activation was sent");
    wait_for(&mut h, "the activation", |a| !a.train.activating);
    // Four eyes: the activation waits for a second supervisor; once approved it is in force.
    let mut store = Store::open(&f.db).expect("open");
    store.set_kdf_cost(KdfCost::Test);
    // Still the fixture's model until then.
    assert_eq!(
        store.current_settings().expect("settings").model_path,
        Some(f.model.display().to_string())
    );
    let pending = store.pending_settings_requests().expect("pending");
    assert_eq!(pending.len(), 1);
    let sid = store.authenticate("sid", "730214").expect("sid");
    store
        .approve_settings_change(&sid, pending[0].id, "checked the card")
        .expect("approve");
    let settings = store.current_settings().expect("settings");
    assert_eq!(
        settings.model_path.as_deref(),
        Some(out.display().to_string().as_str())
    );
}

#[test]
fn clerk_cannot_open_calibrate() {
    let f = Fixture::new();
    let mut h = harness(f.app());
    sign_in(&mut h, "clara");
    h.get_by_label("Calibrate").click();
    h.run_ok();
    assert_eq!(
        h.state().screen,
        Screen::Verify,
        "the disabled tab does nothing"
    );
    assert!(!h.state_mut().open(Screen::Calibrate));
    h.run_ok();
    assert_eq!(h.state().screen, Screen::Verify);
    assert!(has_text(&h, "Calibrate is for a supervisor"));
    assert!(!h.state_mut().open(Screen::Audit), "nor the audit log");
    assert!(
        h.state_mut().open(Screen::Batch),
        "but batches are a clerk's work"
    );
}

#[test]
fn a_corrupt_file_shows_what_is_wrong() {
    let f = Fixture::new();
    let mut h = harness(f.app());
    sign_in(&mut h, "clara");
    let bad = f.path("cheque.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nthis is not really a png").expect("write");
    load(&mut h, Slot::Cheque, &bad);
    assert!(h.state().verify.slot_errors.contains_key(&Slot::Cheque));
    assert!(has_text(&h, "The image could not be used"));
    let missing = f.path("nowhere.png");
    load(&mut h, Slot::Reference(0), &missing);
    assert!(has_text(&h, "Could not open"));
    assert!(h.state().verify.outcome.is_none());
}

/// Whether some widget's text contains `text`.
/// A finished command's stdout and stderr, for assertion messages.
pub(crate) fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub(crate) fn has_text(h: &Harness<'static, CountersignApp>, text: &str) -> bool {
    h.query_all_by_label_contains(text).next().is_some()
}

/// The text of the first label that starts with `prefix`.
fn label_starting(h: &Harness<'static, CountersignApp>, prefix: &str) -> String {
    h.query_all_by_label_contains(prefix)
        // A plain label keeps its text in the node's value.
        .filter_map(|n| {
            n.accesskit_node()
                .label()
                .or_else(|| n.accesskit_node().value())
        })
        .find(|l| l.starts_with(prefix))
        .unwrap_or_default()
}

#[test]
fn calibration_slider_changes_far_and_frr() {
    let f = Fixture::new();
    let data = f.path("labelled");
    countersign::synth::dataset::generate_dataset(
        &data,
        &countersign::synth::dataset::DatasetOptions {
            writers: 4,
            // The protocol's 5 references per writer (as `countersign calibrate`), and one to question.
            genuine: 6,
            forgeries: 3,
            cheques: 0,
            seed: 7,
            scan: false,
        },
    )
    .expect("labelled data");
    let mut h = open_as(&f, "sam", Screen::Calibrate);
    type_into(
        &mut h,
        accesskit::Role::TextInput,
        "Labelled folder",
        &data.display().to_string(),
    );
    h.get_by_label("Evaluate").click();
    wait_for(&mut h, "the evaluation", |a| a.calibrate.summary.is_some());
    let s = h.state().calibrate.summary.clone().expect("summary");
    assert_eq!(s.writers, 4);
    assert!(!s.genuine.is_empty() && !s.forgery.is_empty());
    assert!(has_text(&h, "EER"));

    h.get_by_role_and_label(accesskit::Role::Slider, "Accept threshold")
        .set_value_accesskit(0.0);
    h.run_ok();
    assert_eq!(h.state().calibrate.accept, 0.0);
    assert_eq!(
        label_starting(&h, "FAR "),
        "FAR 100.0%",
        "everything is accepted at threshold 0"
    );
    h.get_by_role_and_label(accesskit::Role::Slider, "Reject threshold")
        .set_value_accesskit(0.0);
    h.run_ok();
    assert_eq!(label_starting(&h, "FRR "), "FRR 0.0%");

    h.get_by_role_and_label(accesskit::Role::Slider, "Accept threshold")
        .set_value_accesskit(1.0);
    h.run_ok();
    assert_eq!(
        label_starting(&h, "FAR "),
        "FAR 0.0%",
        "nothing is accepted at threshold 1"
    );
    h.get_by_role_and_label(accesskit::Role::Slider, "Reject threshold")
        .set_value_accesskit(1.0);
    h.run_ok();
    assert_eq!(
        label_starting(&h, "FRR "),
        "FRR 100.0%",
        "every genuine signature is rejected below 1"
    );
}

#[test]
fn a_cheque_without_a_signature_is_referred() {
    let f = Fixture::new();
    let mut h = harness(f.app());
    sign_in(&mut h, "clara");
    let blank = f.path("blank-cheque.png");
    image::GrayImage::from_pixel(1600, 700, image::Luma([250]))
        .save(&blank)
        .expect("write");
    load(&mut h, Slot::Reference(0), &f.signature(3, 0));
    load(&mut h, Slot::Cheque, &blank);
    wait_for(&mut h, "the result", |a| a.verify.outcome.is_some());
    let o = h
        .state()
        .verify
        .outcome
        .as_ref()
        .map(|o| o.outcome.clone())
        .expect("outcome");
    assert!(!o.signature_found);
    // Nothing scored: no score and no probability (None, never NaN or a stand-in 0).
    assert_eq!((o.score, o.probability), (None, None));
    assert_eq!(o.decision, countersign::scoring::Decision::Refer);
    assert!(has_text(&h, "No signature was found"));
    assert!(has_text(&h, "REFER"));

    // Logged with no score and no probability (NULL), not a stand-in 0 an auditor could misread.
    confirm_by_keyboard(&mut h);
    let id = h
        .state()
        .verify
        .recorded
        .as_ref()
        .map(|r| r.id)
        .expect("row");
    let row = Store::open_read_only(&f.db)
        .expect("open")
        .decision(id)
        .expect("read")
        .expect("the row");
    assert_eq!((row.record.raw_score, row.record.probability), (None, None));
    assert_eq!(row.record.decision, countersign::scoring::Decision::Refer);
}

#[test]
fn a_bare_signature_in_the_cheque_slot_is_scored_whole() {
    let f = Fixture::new();
    let mut h = harness(f.app());
    sign_in(&mut h, "sam");
    load(&mut h, Slot::Reference(0), &f.signature(2, 0));
    load(&mut h, Slot::Cheque, &f.signature(2, 1));
    wait_for(&mut h, "the result", |a| a.verify.outcome.is_some());
    let o = h
        .state()
        .verify
        .outcome
        .as_ref()
        .map(|o| o.outcome.clone())
        .expect("outcome");
    assert!(o.signature_found);
    assert!(o.latency_ms >= 0.0 && o.score.is_some_and(f64::is_finite));
    assert_eq!(o.references.len(), 1);
    assert_eq!(o.overlay.width, o.questioned.width);
}

#[test]
fn audit_fetches_only_the_visible_page_of_many_rows() {
    use countersign::store::{DecisionRecord, FinalAction, Source};
    let f = Fixture::new();
    let rows = 5_000u64;
    {
        let mut store = Store::open(&f.db).expect("open");
        store.set_kdf_cost(KdfCost::Test);
        let clerk = store.authenticate("clara", "clara-pin-1").expect("clerk");
        let base = time::OffsetDateTime::now_utc() - time::Duration::days(10);
        let batch: Vec<DecisionRecord> = (0..rows)
            .map(|k| DecisionRecord {
                time: base + time::Duration::seconds(k as i64),
                operator: "clara".into(),
                account: Some(format!("ACC-{k:05}")),
                cheque_id: Some(format!("CHQ-{k:06}")),
                cheque_sha256: format!("{k:064x}"),
                reference_sha256s: vec![format!("{:064x}", k + 1)],
                raw_score: Some(0.5),
                probability: Some(0.5),
                t_accept: 0.8,
                t_reject: 0.3,
                decision: countersign::scoring::Decision::Refer,
                final_action: FinalAction::Confirm,
                model_id: "bench".into(),
                device: "CPU".into(),
                source: Source::Cli,
                ..Default::default()
            })
            .collect();
        store.insert_decisions(&clerk, &batch).expect("insert");
    }
    let mut h = harness(f.app());
    sign_in(&mut h, "ada");
    wait_for(&mut h, "the first page", |a| {
        a.audit.count == Some(rows) && a.audit.pages.contains_key(&0)
    });
    assert!(
        h.state().audit.fetches <= 2,
        "only the visible page is fetched, not {}",
        h.state().audit.fetches
    );
    assert!(has_text(&h, "ACC-04999"), "the newest row is on screen");

    // Scroll far down with the wheel over the table: only the pages that come into view are fetched.
    let table = h.get_by_label("ACC-04999").rect().center();
    h.hover_at(table);
    h.event(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Point,
        delta: egui::vec2(0.0, -22.0 * 28.0 * 2500.0 / 28.0),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Unknown,
        modifiers: egui::Modifiers::NONE,
    });
    h.run_ok();
    wait_for(&mut h, "a deep page", |a| {
        a.audit.pages.keys().any(|&p| p >= 10)
    });
    let fetched = h.state().audit.fetches;
    assert!(fetched <= 6, "scrolling 2,500 rows fetched {fetched} pages");
    assert!(h.state().audit.pages.len() <= 6);
}

/// A file dropped on the window, as the windowing layer hands it to egui.
#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn dropped_files_fill_the_slots_and_keys_drive_the_screen() {
    let f = Fixture::new();
    let mut h = harness(f.app());
    sign_in(&mut h, "clara");
    let (reference, cheque) = f.demo_pair();

    // Dropped with no aim (no pointer over a drop zone): the first empty reference slot.
    h.remove_cursor();
    h.run_ok();
    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(Dropped(reference.clone())));
    h.step();
    wait_for(&mut h, "the dropped reference", |a| {
        a.verify.references.contains_key(&0)
    });

    // Dropped over the cheque's drop zone: the cheque slot.
    let zone = h.get_by_label("Choose cheque...").rect().center();
    h.hover_at(zone);
    h.run_ok();
    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(Dropped(cheque.clone())));
    h.step();
    wait_for(&mut h, "the verification of the dropped cheque", |a| {
        a.verify.outcome.is_some()
    });
    assert_eq!(
        h.state().verify.references.len(),
        1,
        "the cheque did not replace the reference"
    );

    // Ctrl+Enter confirms, N clears the cheque for the next one and keeps the reference.
    h.remove_cursor();
    confirm_by_keyboard(&mut h);
    h.key_press(egui::Key::N);
    h.run_ok();
    assert!(h.state().verify.cheque.is_none());
    assert!(h.state().verify.outcome.is_none());
    assert!(h.state().verify.references.contains_key(&0));
    assert!(has_text(&h, "Drop the cheque scan here"));
}

#[test]
fn a_batch_runs_in_the_background_and_reports_each_cheque() {
    let f = Fixture::new();
    let (reference, cheque) = f.demo_pair();
    let manifest = f.path("night.csv");
    let missing = f.path("missing-cheque.png");
    std::fs::write(
        &manifest,
        format!(
            "cheque_id,cheque_path,reference_paths\nC-1,{},{}\nC-2,{},{}\n",
            cheque.display(),
            reference.display(),
            missing.display(),
            reference.display()
        ),
    )
    .expect("manifest");
    let mut h = open_as(&f, "clara", Screen::Batch);
    type_into(
        &mut h,
        accesskit::Role::TextInput,
        "Manifest",
        &manifest.display().to_string(),
    );
    h.get_by_label("Run batch").click();
    wait_for(&mut h, "the batch", |a| a.batch.finished);
    let rows = h.state().batch.rows.clone();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let by_id = |id: &str| {
        rows.iter()
            .find(|r| r.cheque_id == id)
            .cloned()
            .expect("row")
    };
    assert!(["ACCEPT", "REFER", "REJECT"].contains(&by_id("C-1").outcome.as_str()));
    assert_eq!(by_id("C-2").outcome, "ERROR");
    assert!(!by_id("C-2").error.is_empty());
    assert!(has_text(&h, "1 ERROR"));

    // The decided cheque is in the audit log, written by the batch layer.
    let store = Store::open(&f.db).expect("open");
    assert!(store.has_decision("C-1").expect("query"));
}

#[test]
fn the_batch_screen_accepts_an_x9_cash_letter_and_shows_the_account_rule() {
    let f = Fixture::new();
    let file = f.path("night.x937");
    let opts = countersign::x9::synth::X9SynthOptions {
        cheques: 2,
        writers: 1,
        references: 2,
        seed: 3,
        ..Default::default()
    };
    let s = countersign::x9::synth::generate(&file, &opts).expect("x9 file");
    let mut store = Store::open(&f.db).expect("open");
    let sam = store.authenticate(PINS[0].0, PINS[0].2).expect("sign in");
    for (account, refs) in &s.accounts {
        store
            .add_account(&sam, account, "X9 holder")
            .expect("account");
        for r in refs {
            store
                .enrol_reference(&sam, account, &std::fs::read(r).expect("ref"))
                .expect("enrol");
        }
    }
    // A supervisor's rule, which the screen must show as it is in force.
    let rule = r"^(?P<account>[0-9]+)/[0-9]+$";
    crate::store_common::change_settings(
        &mut store,
        &sam,
        &countersign::store::SettingsChange::X9AccountRule {
            pattern: Some(rule.into()),
        },
        "our cheques print account/serial",
    )
    .expect("rule");
    drop(store);

    let mut h = harness(f.app());
    sign_in(&mut h, "clara");
    assert!(h.state_mut().open(Screen::Batch));
    wait_for(&mut h, "the status", |a| {
        a.shared.status.x9_account_rule == rule
    });
    assert!(
        has_text(&h, rule),
        "the Batch screen does not show the rule"
    );
    type_into(
        &mut h,
        accesskit::Role::TextInput,
        "Manifest",
        &file.display().to_string(),
    );
    h.get_by_label("Run batch").click();
    wait_for(&mut h, "the X9 batch", |a| a.batch.finished);
    let rows = h.state().batch.rows.clone();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in &rows {
        assert!(r.cheque_id.starts_with("X9-"), "{r:?}");
        assert_eq!(r.account, s.accounts[0].0);
        assert!(
            ["ACCEPT", "REFER", "REJECT"].contains(&r.outcome.as_str()),
            "{r:?}"
        );
    }
    let store = Store::open(&f.db).expect("open");
    for r in &rows {
        assert!(store.has_decision(&r.cheque_id).expect("query"));
    }
    drop(store);

    // The same cheque on the Verify screen (its front image as a PNG, the account's references in
    // the reference slots) gets the same score and decision as in the X9 batch.
    let mut items = countersign::x9::open(&file).expect("open x9");
    let item = items.next_item().expect("read").expect("an item");
    let front = countersign::imaging::decode::decode_bytes(
        item.front.as_deref().expect("front"),
        "front",
        &Default::default(),
    )
    .expect("decode");
    let png = f.path("front.png");
    front.save(&png).expect("png");
    let batch_row = rows
        .iter()
        .find(|r| r.cheque_id.ends_with(&item.sequence))
        .cloned()
        .expect("row");
    assert!(h.state_mut().open(Screen::Verify));
    h.run_ok();
    for (i, r) in s.accounts[0].1.iter().enumerate() {
        load(&mut h, Slot::Reference(i), r);
    }
    load(&mut h, Slot::Cheque, &png);
    wait_for(&mut h, "the verification of the X9 item", |a| {
        a.verify.outcome.is_some()
    });
    let outcome = h
        .state()
        .verify
        .outcome
        .as_ref()
        .map(|o| o.outcome.clone())
        .expect("outcome");
    assert_eq!(outcome.decision.as_str(), batch_row.outcome);
    let batch_score = batch_row.score.expect("scored in the batch");
    assert!(
        outcome
            .score
            .is_some_and(|s| (s - batch_score).abs() < 1e-5),
        "GUI {:?} vs X9 batch {batch_score}",
        outcome.score
    );
}

#[test]
fn a_cheque_whose_signature_runs_out_of_the_zone_is_referred_as_box_uncertain() {
    use countersign::imaging::cheque::{ChequeLayout, find_signature};
    let f = Fixture::new();
    // A generated bitonal cheque whose signature is moved to straddle the left edge of the default
    // signature zone: the finder's box would hold only its right half.
    let opts = countersign::x9::synth::X9SynthOptions {
        writers: 2,
        seed: 5,
        scan: false,
        ..Default::default()
    };
    let (front, t) = countersign::x9::synth::render_item(&opts, 0);
    let mut img = countersign::x9::synth::bitonal(&front, 128);
    let sig = image::imageops::crop_imm(&img, t.sig_x, t.sig_y, t.sig_w, t.sig_h).to_image();
    for y in t.sig_y..t.sig_y + t.sig_h {
        for x in t.sig_x..t.sig_x + t.sig_w {
            img.put_pixel(x, y, image::Luma([255]));
        }
    }
    let zone = ChequeLayout::default().zone_box(img.width(), img.height());
    image::imageops::replace(
        &mut img,
        &sig,
        i64::from(zone.x) - i64::from(t.sig_w / 2),
        i64::from(t.sig_y),
    );
    let found = find_signature(&img, &ChequeLayout::default()).expect("find");
    assert!(found.box_uncertain && !found.found, "{found:?}");
    let cheque = f.path("straddling-cheque.png");
    img.save(&cheque).expect("write");

    let mut h = harness(f.app());
    sign_in(&mut h, "clara");
    load(&mut h, Slot::Reference(0), &f.signature(3, 0));
    load(&mut h, Slot::Cheque, &cheque);
    wait_for(&mut h, "the result", |a| a.verify.outcome.is_some());
    let o = h
        .state()
        .verify
        .outcome
        .as_ref()
        .map(|o| o.outcome.clone())
        .expect("outcome");
    assert!(!o.signature_found);
    // Nothing scored: no score and no probability (None, never NaN or a stand-in 0).
    assert_eq!((o.score, o.probability), (None, None));
    assert_eq!(o.decision, countersign::scoring::Decision::Refer);
    // The same reason as `countersign verify` and `batch` give, shown to the clerk.
    assert!(
        o.reason.starts_with(countersign::verify::BOX_UNCERTAIN),
        "{}",
        o.reason
    );
    assert!(has_text(&h, countersign::verify::BOX_UNCERTAIN));
}
