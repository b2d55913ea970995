//! Issue 14's bank controls driven through the real app with egui_kittest: a clerk cannot turn a
//! REFER into an ACCEPT, a supervisor resolves the referral queue, N logs an abandoned result, a
//! double Enter confirms nothing, reference slots never mix accounts, a settings change waits for a
//! second supervisor, and the audit filters find final decisions. Real SQLite, real libtorch, PNGs.

#![allow(clippy::unwrap_used)]

use countersign::gui::{Screen, Slot};
use countersign::scoring::{Decision, Thresholds};
use countersign::store::{
    DecisionFilter, DecisionRecord, FinalAction, KdfCost, SettingsChange, Source, Store,
};
use egui::accesskit;
use egui_kittest::kittest::Queryable;

use crate::gui_app::{
    Fixture, confirm_by_keyboard, harness, has_text, load, open_as, sign_in, type_into, wait_for,
};

fn store(f: &Fixture) -> Store {
    let mut s = Store::open(&f.db).unwrap();
    s.set_kdf_cost(KdfCost::Test);
    s
}

/// A decision row as the batch layer writes it (pending), for seeding queues and filters.
fn seeded(operator: &str, k: u64, decision: Decision) -> DecisionRecord {
    DecisionRecord {
        operator: operator.into(),
        account: Some(format!("ACC-{k}")),
        cheque_id: Some(format!("CHQ-{k}")),
        amount_cents: Some(1_026_938),
        cheque_sha256: format!("{k:064x}"),
        reference_sha256s: vec![format!("{:064x}", k + 100)],
        raw_score: Some(0.5),
        probability: Some(0.5),
        t_accept: 0.8,
        t_reject: 0.3,
        decision,
        final_action: FinalAction::Pending,
        model_id: "test".into(),
        device: "cpu".into(),
        source: Source::Batch,
        ..Default::default()
    }
}

#[test]
fn a_clerk_cannot_turn_refer_into_accept_and_confirms_it_as_referred() {
    let f = Fixture::new();
    let mut h = harness(f.app());
    sign_in(&mut h, "clara");
    let (reference, cheque) = f.demo_pair();
    load(&mut h, Slot::Reference(0), &reference);
    load(&mut h, Slot::Cheque, &cheque);
    wait_for(&mut h, "the result", |a| a.verify.outcome.is_some());
    // The fixture's network has no calibration: REFER.
    let decision = h.state().verify.outcome.as_ref().unwrap().outcome.decision;
    assert_eq!(decision, Decision::Refer);

    h.get_by_label("Override...").click();
    h.run_ok();
    assert!(has_text(&h, "A clerk confirms a REFER as referred"));
    assert!(
        h.query_by_label("Log override").is_none(),
        "no override form for a clerk on a REFER"
    );
    // The store refuses it too, whatever the screen offers.
    let mut s = store(&f);
    let clara = s.authenticate("clara", "clara-pin-1").unwrap();
    let mut d = seeded("clara", 1, Decision::Refer);
    d.final_action = FinalAction::Override;
    d.final_decision = Some(Decision::Accept);
    d.reason = Some("looks fine to me".into());
    d.source = Source::Gui;
    assert!(s.insert_decision(&clara, &d).is_err());
    drop(s);

    h.get_by_label("Confirm REFER: send to a supervisor (Ctrl+Enter)")
        .click();
    wait_for(&mut h, "the referral to be logged", |a| {
        a.verify.recorded.is_some()
    });
    let row = h.state().verify.recorded.clone().unwrap();
    assert_eq!(row.final_decision, Decision::Refer);
    assert!(row.in_referral(), "the cheque waits for a supervisor");
    let s = store(&f);
    let queue = s.referral_queue(10).unwrap();
    assert_eq!(queue.iter().map(|r| r.id).collect::<Vec<_>>(), vec![row.id]);
    // A clerk's override of an ACCEPT may only make it stricter.
    assert!(
        countersign::store::override_rule(
            countersign::store::Role::Clerk,
            Decision::Accept,
            Decision::Reject
        )
        .is_ok()
    );
    assert!(
        countersign::store::override_rule(
            countersign::store::Role::Clerk,
            Decision::Reject,
            Decision::Accept
        )
        .is_err()
    );
}

#[test]
fn a_supervisor_resolves_the_referral_queue() {
    let f = Fixture::new();
    let id = {
        let mut s = store(&f);
        let clara = s.authenticate("clara", "clara-pin-1").unwrap();
        // A batch row that ended REFER, and one that ended ACCEPT (not referred).
        let ids = s
            .insert_decisions(
                &clara,
                &[
                    seeded("clara", 1, Decision::Refer),
                    seeded("clara", 2, Decision::Accept),
                ],
            )
            .unwrap();
        ids[0]
    };
    let mut h = harness(f.app());
    sign_in(&mut h, "sam");
    assert!(h.state_mut().open(Screen::Queue));
    wait_for(&mut h, "the referral queue", |a| {
        !a.queue.loading && a.queue.referrals.len() == 1
    });
    assert!(has_text(&h, "CHQ-1"));
    assert!(!has_text(&h, "CHQ-2"), "an ACCEPT is not referred");
    h.get_by_label(&id.to_string()).click();
    h.run_ok();
    type_into(
        &mut h,
        accesskit::Role::MultilineTextInput,
        "Resolution reason",
        "holder confirmed by phone; signature matches the 2019 card",
    );
    h.get_by_label("Resolve to REJECT").click();
    wait_for(&mut h, "the resolution", |a| {
        !a.queue.busy && a.queue.referrals.is_empty()
    });
    assert!(has_text(&h, "No cheque waits for a supervisor."));
    let row = store(&f).decision(id).unwrap().unwrap();
    assert_eq!(row.final_decision, Decision::Reject);
    assert_eq!(row.effective_action(), FinalAction::Resolve);
    assert_eq!(row.action.unwrap().operator, "sam");
    assert!(store(&f).verify_chain().unwrap().is_intact());
}

#[test]
fn n_logs_a_shown_result_as_abandoned() {
    let f = Fixture::new();
    let mut h = harness(f.app());
    sign_in(&mut h, "clara");
    let (reference, cheque) = f.demo_pair();
    load(&mut h, Slot::Reference(0), &reference);
    load(&mut h, Slot::Cheque, &cheque);
    wait_for(&mut h, "the result", |a| a.verify.outcome.is_some());
    let sha = h
        .state()
        .verify
        .outcome
        .as_ref()
        .unwrap()
        .outcome
        .cheque_sha256
        .clone();
    h.remove_cursor();
    h.key_press(egui::Key::N);
    h.run_ok();
    assert!(h.state().verify.outcome.is_none());
    let abandoned = DecisionFilter {
        action: Some(FinalAction::Abandoned),
        ..Default::default()
    };
    let start = std::time::Instant::now();
    while store(&f).count_decisions(&abandoned).unwrap() == 0 {
        assert!(
            start.elapsed().as_secs() < 60,
            "no abandoned row was logged"
        );
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let rows = store(&f).query_decisions(&abandoned, 0, 10).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].record.cheque_sha256, sha);
    assert_eq!(rows[0].record.operator, "clara");
    assert!(
        !rows[0].in_referral(),
        "an abandoned result is not a referral"
    );
    assert!(h.state().verify.recorded.is_none(), "nothing was decided");
}

#[test]
fn a_double_enter_does_not_confirm() {
    let f = Fixture::new();
    let mut h = harness(f.app());
    sign_in(&mut h, "clara");
    let (reference, cheque) = f.demo_pair();
    load(&mut h, Slot::Reference(0), &reference);
    load(&mut h, Slot::Cheque, &cheque);
    wait_for(&mut h, "the result", |a| a.verify.outcome.is_some());
    // A double key press, or a scanner's carriage returns, right after the result appears.
    h.remove_cursor();
    for _ in 0..3 {
        h.key_press(egui::Key::Enter);
        h.step();
    }
    h.run_ok();
    assert!(h.state().verify.recorded.is_none(), "Enter confirmed");
    assert!(!h.state().verify.recording);
    assert_eq!(
        store(&f)
            .count_decisions(&DecisionFilter::default())
            .unwrap(),
        0
    );
    // The deliberate key, after looking at the result, does.
    confirm_by_keyboard(&mut h);
    assert_eq!(
        h.state()
            .verify
            .recorded
            .as_ref()
            .unwrap()
            .effective_action(),
        countersign::store::FinalAction::Confirm
    );
}

#[test]
fn the_reference_slots_never_mix_accounts() {
    let f = Fixture::new();
    {
        let mut s = store(&f);
        let clara = s.authenticate("clara", "clara-pin-1").unwrap();
        s.add_account(&clara, "1001", "Ada Lovelace").unwrap();
        // Four references: more than the three file slots.
        for i in 0..4 {
            let bytes = std::fs::read(f.signature(1, i)).unwrap();
            s.enrol_reference(&clara, "1001", &bytes).unwrap();
        }
    }
    let mut h = harness(f.app());
    sign_in(&mut h, "clara");
    type_into(&mut h, accesskit::Role::TextInput, "Account", "1001");
    h.get_by_label("Use enrolled references").click();
    wait_for(&mut h, "the account's references", |a| {
        a.verify.account_loaded.is_some() && !a.verify.account_loading
    });
    assert_eq!(h.state().verify.references.len(), 4);
    assert!(has_text(&h, "Account 1001: Ada Lovelace"));
    assert!(has_text(&h, "4 reference(s) of account 1001"));

    // A file in reference slot 1 replaces all of the account's references.
    load(&mut h, Slot::Reference(0), &f.signature(2, 0));
    assert_eq!(h.state().verify.references.len(), 1);
    assert!(h.state().verify.account_loaded.is_none());
    assert!(!has_text(&h, "of account 1001"));
    assert!(!has_text(&h, "Ada Lovelace"));
    // The worker compared the cheque with that one reference only.
    load(&mut h, Slot::Cheque, &f.signature(2, 1));
    wait_for(&mut h, "the result", |a| a.verify.outcome.is_some());
    assert_eq!(
        h.state()
            .verify
            .outcome
            .as_ref()
            .unwrap()
            .outcome
            .references
            .len(),
        1
    );

    // The account again, then editing the account number drops its references; Clear all empties.
    h.get_by_label("Use enrolled references").click();
    wait_for(&mut h, "the account's references", |a| {
        a.verify.references.len() == 4 && !a.verify.account_loading
    });
    type_into(&mut h, accesskit::Role::TextInput, "Account", "2");
    assert_eq!(h.state().verify.account, "10012");
    wait_for(&mut h, "1001's references to stay with 1001", |a| {
        a.verify.references.is_empty() && a.verify.account_loaded.is_none()
    });
    h.get_by_label("Clear all").click();
    h.run_ok();
    assert!(h.state().verify.cheque.is_none() && h.state().verify.account.is_empty());
}

#[test]
fn a_settings_change_waits_for_a_second_supervisor() {
    let f = Fixture::new();
    let (id, version_before) = {
        let mut s = store(&f);
        let sam = s.authenticate("sam", "sam-pin-1").unwrap();
        // The fixture's own model activation is already in force.
        let before = s.current_settings().unwrap().version;
        let id = s
            .request_settings_change(
                &sam,
                &SettingsChange::Thresholds(Thresholds {
                    accept: 0.9,
                    reject: 0.2,
                }),
                "quarterly review",
            )
            .unwrap()
            .id;
        (id, before)
    };
    let mut h = harness(f.app());
    sign_in(&mut h, "sam");
    assert!(h.state_mut().open(Screen::Queue));
    wait_for(&mut h, "the pending change", |a| {
        a.queue.requests.len() == 1
    });
    assert!(has_text(&h, "ACCEPT 0.800 -> 0.900"));
    h.get_by_label(&format!("Review change #{id}")).click();
    h.run_ok();
    assert!(has_text(&h, "You asked for this change"));
    // The asker's Approve button is disabled; the store refuses it as well.
    let mut s = store(&f);
    let sam = s.authenticate("sam", "sam-pin-1").unwrap();
    assert!(s.approve_settings_change(&sam, id, "").is_err());
    assert_eq!(
        s.current_settings().unwrap().version,
        version_before,
        "nothing changed"
    );
    drop(s);

    h.get_by_label("Sign out").click();
    h.run_ok();
    sign_in(&mut h, "sid");
    assert!(h.state_mut().open(Screen::Queue));
    wait_for(&mut h, "the pending change", |a| {
        a.queue.requests.len() == 1
    });
    h.get_by_label(&format!("Review change #{id}")).click();
    h.run_ok();
    h.get_by_label("Approve change").click();
    wait_for(&mut h, "the approval", |a| {
        !a.queue.busy && a.queue.requests.is_empty()
    });
    // "In force now" is read again after the approval, not left stale.
    wait_for(&mut h, "the thresholds in force", |a| {
        a.shared.status.thresholds_in_force
            == Some(Thresholds {
                accept: 0.9,
                reject: 0.2,
            })
    });
    let s = store(&f);
    let now = s.current_settings().unwrap();
    assert_eq!(
        now.thresholds,
        Thresholds {
            accept: 0.9,
            reject: 0.2
        }
    );
    // Both the request and the approval are chained rows, naming who asked and who approved.
    // (The fixture's own model activation is the first settings row.)
    let history = s.settings_history().unwrap();
    assert_eq!(history.len(), 2);
    let last = history.last().unwrap();
    assert_eq!(last.operator, "sid");
    assert_eq!(last.reason, "quarterly review");
    assert!(s.pending_settings_requests().unwrap().is_empty());
    assert!(s.verify_chain().unwrap().is_intact());
}

#[test]
fn the_audit_filters_find_final_decisions() {
    let f = Fixture::new();
    {
        let mut s = store(&f);
        let clara = s.authenticate("clara", "clara-pin-1").unwrap();
        let sam = s.authenticate("sam", "sam-pin-1").unwrap();
        let mut by_hand = seeded("clara", 4, Decision::Refer);
        by_hand.hand_drawn_box = true;
        by_hand.source = Source::Gui;
        let mut abandoned = seeded("clara", 5, Decision::Accept);
        abandoned.final_action = FinalAction::Abandoned;
        let ids = s
            .insert_decisions(
                &clara,
                &[
                    seeded("clara", 1, Decision::Accept),
                    seeded("clara", 2, Decision::Reject),
                    seeded("clara", 3, Decision::Accept),
                    by_hand,
                    abandoned,
                ],
            )
            .unwrap();
        // ACCEPT overridden to REJECT by the clerk; REJECT confirmed; ACCEPT confirmed.
        s.override_decision(&clara, ids[0], Decision::Reject, "amount altered")
            .unwrap();
        s.record_action(&clara, ids[1], FinalAction::Confirm, None)
            .unwrap();
        s.record_action(&sam, ids[2], FinalAction::Confirm, None)
            .unwrap();
    }
    let mut h = harness(f.app());
    sign_in(&mut h, "ada");
    wait_for(&mut h, "the log", |a| a.audit.count == Some(5));
    let count_with =
        |h: &mut egui_kittest::Harness<'static, countersign::gui::CountersignApp>,
         set: &dyn Fn(&mut countersign::gui::backend::AuditFilter)| {
            let mut filter = countersign::gui::backend::AuditFilter::default();
            set(&mut filter);
            h.state_mut().audit.filter = filter;
            h.run_ok();
            h.get_by_label("Apply filter").click();
            wait_for(h, "the filtered rows", |a| {
                a.audit
                    .count
                    .is_some_and(|n| n == 0 || a.audit.pages.contains_key(&0))
            });
            h.state().audit.count.unwrap()
        };
    assert_eq!(
        count_with(&mut h, &|f| f.decision = Some(Decision::Reject)),
        1,
        "the model said REJECT once"
    );
    assert_eq!(
        count_with(&mut h, &|f| f.final_decision = Some(Decision::Reject)),
        2,
        "the final decision is REJECT twice: one by override"
    );
    assert!(has_text(&h, "override"));
    assert_eq!(
        count_with(&mut h, &|f| f.action = Some(FinalAction::Override)),
        1
    );
    assert_eq!(count_with(&mut h, &|f| f.open_referrals = true), 1);
    assert_eq!(count_with(&mut h, &|f| f.hand_drawn = true), 1);
    assert!(has_text(&h, "(box by hand)"));
    assert_eq!(
        count_with(&mut h, &|f| f.action = Some(FinalAction::Abandoned)),
        1
    );
    // A bad date says what is wrong instead of counting forever.
    h.state_mut().audit.filter = countersign::gui::backend::AuditFilter {
        from: "2026-13-45".into(),
        ..Default::default()
    };
    h.run_ok();
    h.get_by_label("Apply filter").click();
    h.run_ok();
    assert!(has_text(&h, "is not a date"));
    assert!(!has_text(&h, "Counting..."));
}

#[test]
fn the_demo_batch_manifest_runs_and_a_row_shows_its_detail_and_exports_to_a_typed_path() {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/batch.csv");
    let f = Fixture::new();
    let mut h = open_as(&f, "clara", Screen::Batch);
    type_into(
        &mut h,
        accesskit::Role::TextInput,
        "Manifest",
        &manifest.display().to_string(),
    );
    h.get_by_label("Run batch").click();
    wait_for(&mut h, "the demo batch", |a| a.batch.finished);
    let rows = h.state().batch.rows.clone();
    assert_eq!(rows.len(), 8, "{rows:?}");
    assert!(
        rows.iter().all(|r| r.outcome != "ERROR"),
        "every demo cheque is decided: {rows:?}"
    );
    // The amounts as the cheques print them ("22,509.14") were read.
    let s = store(&f);
    let row = s
        .query_decisions(
            &DecisionFilter {
                cheque_id: Some("w0001_c01".into()),
                ..Default::default()
            },
            0,
            1,
        )
        .unwrap();
    assert_eq!(row[0].record.amount_cents, Some(2_250_914));
    drop(s);

    h.get_by_label("w0002_c01").click();
    h.run_ok();
    let selected = h
        .state()
        .batch
        .selected
        .map(|i| h.state().batch.rows[i].cheque_id.clone());
    assert_eq!(selected.as_deref(), Some("w0002_c01"));
    assert!(has_text(&h, "Cheque w0002_c01"));

    let out = f.path("night-results.csv");
    type_into(
        &mut h,
        accesskit::Role::TextInput,
        "Export to",
        &out.display().to_string(),
    );
    h.get_by_label("Export").click();
    wait_for(&mut h, "the export", |a| !a.batch.exporting);
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.contains("w0004_c02"), "{written}");
}

#[test]
fn sign_in_and_sign_out_are_in_the_chain_and_a_wrong_pin_is_cleared() {
    let f = Fixture::new();
    let mut h = harness(f.app());
    type_into(&mut h, accesskit::Role::TextInput, "Operator", "clara");
    type_into(&mut h, accesskit::Role::PasswordInput, "PIN", "not-her-pin");
    h.get_by_label("Sign in").click();
    wait_for(&mut h, "the refusal", |a| a.sign_in.error.is_some());
    assert!(h.state().sign_in.pin.is_empty(), "the wrong PIN is cleared");
    h.state_mut().sign_in.error = None;
    h.state_mut().sign_in.name.clear();
    sign_in(&mut h, "clara");
    h.get_by_label("Sign out").click();
    h.run_ok();
    let start = std::time::Instant::now();
    let events = || {
        let c = rusqlite::Connection::open(&f.db).unwrap();
        let mut st = c
            .prepare("SELECT operator, json_extract(payload, '$.event') FROM ledger WHERE kind = 'security' ORDER BY id")
            .unwrap();
        st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    };
    while !events().iter().any(|e| e.1 == "signed_out") {
        assert!(
            start.elapsed().as_secs() < 60,
            "no sign-out row: {:?}",
            events()
        );
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let ev = events();
    let clara: Vec<&str> = ev
        .iter()
        .filter(|e| e.0 == "clara")
        .map(|e| e.1.as_str())
        .collect();
    assert_eq!(
        clara,
        vec!["sign_in_failed", "signed_in", "signed_out"],
        "{ev:?}"
    );
}

#[test]
fn the_audit_screen_shows_every_other_ledger_row_by_kind() {
    let f = Fixture::new();
    {
        let mut s = store(&f);
        let sam = s.authenticate("sam", "sam-pin-1").unwrap();
        s.request_settings_change(
            &sam,
            &SettingsChange::Thresholds(Thresholds {
                accept: 0.9,
                reject: 0.2,
            }),
            "quarterly review",
        )
        .unwrap();
    }
    let mut h = harness(f.app());
    sign_in(&mut h, "ada");
    h.get_by_label("Other ledger rows: settings, approvals, sign-ins, refusals, actions")
        .click();
    wait_for(&mut h, "the ledger rows", |a| {
        !a.audit.events.loading && !a.audit.events.rows.is_empty()
    });
    let kinds = h.state().audit.events.kinds.clone();
    for k in ["settings_request", "security"] {
        assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
    }
    assert!(
        has_text(&h, "signed_in"),
        "the auditor's own sign-in is listed"
    );
    h.state_mut().audit.events.kind = Some("settings_request".into());
    h.get_by_label("Refresh rows").click();
    wait_for(&mut h, "the filtered rows", |a| {
        !a.audit.events.loading
            && a.audit
                .events
                .rows
                .iter()
                .all(|r| r.kind == "settings_request")
    });
    // The fixture's own model activation was asked for too (four eyes), then this change.
    assert_eq!(h.state().audit.events.rows.len(), 2);
    assert!(has_text(&h, "quarterly review"));
}
