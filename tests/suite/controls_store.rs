//! The store's rules behind the bank controls: the one override rule, the referral queue fed by a
//! real batch run, and the hand-drawn flag and final decision kept in the chained rows.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::AtomicBool;

use countersign::batch::BatchOptions;
use countersign::batch::bench::fixture::{self, RefMode};
use countersign::imaging::cheque::ChequeLayout;
use countersign::model::SignatureModel;
use countersign::scoring::{Decision, Thresholds};
use countersign::store::{
    DecisionFilter, FinalAction, Role, SettingsChange, Source, Store, override_rule,
    override_targets,
};
use countersign::verify::Verifier;

use crate::pipeline_fixture::setup;
use crate::store_common as common;

#[test]
fn one_override_rule_a_clerk_only_makes_a_decision_stricter() {
    use Decision::*;
    assert_eq!(override_targets(Role::Clerk, Accept), vec![Refer, Reject]);
    assert!(override_targets(Role::Clerk, Refer).is_empty());
    assert!(override_targets(Role::Clerk, Reject).is_empty());
    assert_eq!(
        override_targets(Role::Supervisor, Refer),
        vec![Accept, Reject]
    );
    assert_eq!(
        override_targets(Role::Supervisor, Reject),
        vec![Accept, Refer]
    );
    assert!(override_targets(Role::Auditor, Accept).is_empty());
    for d in [Accept, Refer, Reject] {
        assert!(override_rule(Role::Supervisor, d, d).is_err(), "no-op");
    }
}

#[test]
fn overrides_and_hand_drawn_boxes_are_chained_and_filterable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    let mut f = common::fixture(&path);
    let clerk = f.clerk.clone();
    let mut d = common::decision(&clerk, 0);
    assert_eq!(d.decision, Decision::Accept);
    d.final_action = FinalAction::Override;
    d.final_decision = Some(Decision::Refer);
    d.reason = Some("date looks altered".into());
    d.hand_drawn_box = true;
    let id = f.store.insert_decision(&clerk, &d).unwrap();
    // Upward is refused for a clerk, at insert too.
    let mut up = common::decision(&clerk, 2);
    up.final_action = FinalAction::Override;
    up.final_decision = Some(Decision::Accept);
    up.reason = Some("known customer".into());
    assert!(f.store.insert_decision(&clerk, &up).is_err());

    let row = f.store.decision(id).unwrap().unwrap();
    assert_eq!(row.final_decision, Decision::Refer);
    assert!(row.record.hand_drawn_box && row.in_referral());
    let by_final = DecisionFilter {
        final_decision: Some(Decision::Refer),
        ..Default::default()
    };
    assert_eq!(f.store.count_decisions(&by_final).unwrap(), 1);
    let by_hand = DecisionFilter {
        hand_drawn: true,
        ..Default::default()
    };
    assert_eq!(f.store.count_decisions(&by_hand).unwrap(), 1);
    // Editing the flag out of the payload breaks the chain at that row.
    drop(f);
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch("DROP TRIGGER ledger_no_update").unwrap();
    c.execute(
        "UPDATE ledger SET payload = replace(payload, '\"hand_drawn_box\":true', '\"hand_drawn_box\":false') WHERE id = ?1",
        [id],
    )
    .unwrap();
    drop(c);
    let store = common::open(&path);
    assert_eq!(
        store.verify_chain().unwrap().first_bad.map(|b| b.0),
        Some(id)
    );
}

#[test]
fn batch_rows_that_end_refer_go_into_the_referral_queue() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, model) = setup(dir.path());
    let mut store = Store::open(&fx.db).unwrap();
    let op = fixture::operator(&mut store).unwrap();
    // A calibration (p = 0.5 for every score) and thresholds that refer every scored cheque, each
    // asked for and approved (four eyes).
    for change in [
        SettingsChange::Calibration(countersign::scoring::Calibration { a: 0.0, b: 0.0 }),
        SettingsChange::Thresholds(Thresholds {
            accept: 0.9,
            reject: 0.1,
        }),
    ] {
        common::change_settings(&mut store, &op, &change, "refer everything for the test").unwrap();
    }
    let manifest = fx.dir.join("refer.csv");
    fixture::write_manifest(&fx, &manifest, 4, "Q-", RefMode::Paths).unwrap();
    let out = dir.path().join("results.csv");
    let m = SignatureModel::load(&model, tch::Device::Cpu).unwrap();
    let v = Verifier::from_store(
        countersign::verify::shared_model(m),
        ChequeLayout::default(),
        Some(&store),
    )
    .unwrap();
    let summary = countersign::batch::run(
        &v,
        &mut store,
        &op,
        &BatchOptions::new(&manifest, &out),
        &AtomicBool::new(false),
        &|_| {},
    )
    .unwrap();
    assert_eq!(summary.decided(), 4);
    let refer = DecisionFilter {
        decision: Some(Decision::Refer),
        ..Default::default()
    };
    assert_eq!(store.count_decisions(&refer).unwrap(), 4);
    let queue = store.referral_queue(100).unwrap();
    let mut ids: Vec<String> = queue
        .iter()
        .filter_map(|r| r.record.cheque_id.clone())
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["Q-0", "Q-1", "Q-2", "Q-3"]);
    assert!(queue.iter().all(|r| r.record.source == Source::Batch));
    // A supervisor resolves one; it leaves the queue.
    store
        .resolve_referral(
            &op,
            queue[0].id,
            Decision::Accept,
            "checked with the holder",
        )
        .unwrap();
    assert_eq!(store.referral_queue(100).unwrap().len(), 3);
}
