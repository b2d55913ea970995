//! Operators, PINs and roles: bootstrap, refusals logged in the chain, lockout, no clear PINs.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use crate::store_common as common;

use common::{decision, fixture, open};
use countersign::scoring::{Decision, Thresholds};
use countersign::store::{FinalAction, Permission, Role, SettingsChange, StoreError};

fn security_events(store_path: &std::path::Path) -> Vec<(String, serde_json::Value)> {
    let c = rusqlite::Connection::open(store_path).unwrap();
    let mut s = c
        .prepare("SELECT operator, payload FROM ledger WHERE kind = 'security' ORDER BY id")
        .unwrap();
    s.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|r| {
            let (o, p) = r.unwrap();
            (o, serde_json::from_str(&p).unwrap())
        })
        .collect()
}

#[test]
fn bootstrap_needs_a_supervisor_then_only_supervisors_add() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    let mut store = open(&path);
    assert!(matches!(
        store.authenticate("sam", "111100").unwrap_err(),
        StoreError::NoOperators
    ));
    let err = store
        .add_operator(None, "carla", Role::Clerk, "222200")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("first operator must be a supervisor"),
        "{err}"
    );
    let sup = store
        .add_operator(None, "sam", Role::Supervisor, "111100")
        .unwrap();
    assert_eq!(sup.role(), Role::Supervisor);
    // Afterwards, no anonymous additions.
    assert!(matches!(
        store
            .add_operator(None, "eve", Role::Supervisor, "999900")
            .unwrap_err(),
        StoreError::MissingCredentials
    ));
    let clerk = store
        .add_operator(Some(&sup), "carla", Role::Clerk, "222200")
        .unwrap();
    let err = store
        .add_operator(Some(&clerk), "eve", Role::Supervisor, "999900")
        .unwrap_err();
    assert!(matches!(err, StoreError::PermissionDenied { .. }), "{err}");
    assert_eq!(
        countersign::cli::exit::for_store(&err),
        countersign::cli::exit::DENIED
    );
    assert!(matches!(
        store
            .add_operator(Some(&sup), "carla", Role::Clerk, "222200")
            .unwrap_err(),
        StoreError::AlreadyExists { .. }
    ));
    assert_eq!(store.operator_count().unwrap(), 2);
}

#[test]
fn every_supervisor_only_action_is_refused_for_a_clerk_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    let mut f = fixture(&path);
    f.store
        .add_account(&f.clerk, "ACC-1", "Ada Holder")
        .unwrap();
    let r = f
        .store
        .enrol_reference(&f.clerk, "ACC-1", &common::png(3))
        .unwrap();
    let mut reject = decision(&f.clerk, 2);
    assert_eq!(reject.decision, Decision::Reject);
    let reject_id = f.store.insert_decision(&f.clerk, &reject).unwrap();

    let clerk = f.clerk.clone();
    let s = &mut f.store;
    let refusals: Vec<(&str, StoreError)> = vec![
        (
            "change_settings",
            s.request_settings_change(
                &clerk,
                &SettingsChange::Thresholds(Thresholds {
                    accept: 0.5,
                    reject: 0.1,
                }),
                "x",
            )
            .unwrap_err(),
        ),
        (
            "change_model",
            s.request_settings_change(
                &clerk,
                &SettingsChange::Model {
                    id: "m2".into(),
                    path: None,
                },
                "x",
            )
            .unwrap_err(),
        ),
        (
            "override_reject",
            s.override_decision(&clerk, reject_id, Decision::Accept, "customer known")
                .unwrap_err(),
        ),
        (
            "retire_reference",
            s.retire_reference(&clerk, r.id, "bad scan").unwrap_err(),
        ),
        (
            "manage_operators",
            s.add_operator(Some(&clerk), "x", Role::Clerk, "123400")
                .unwrap_err(),
        ),
        (
            "manage_operators",
            s.unlock_operator(&clerk, "aude").unwrap_err(),
        ),
        (
            "export_audit",
            s.write_checkpoint(&clerk, &dir.path().join("cp.json"))
                .unwrap_err(),
        ),
    ];
    // An override of a REJECT recorded directly with the decision is refused too.
    reject.final_action = FinalAction::Override;
    reject.final_decision = Some(Decision::Accept);
    reject.reason = Some("known customer".into());
    let direct = s.insert_decision(&clerk, &reject).unwrap_err();
    for (what, err) in refusals
        .iter()
        .map(|(w, e)| (*w, e))
        .chain([("override_reject", &direct)])
    {
        match err {
            StoreError::PermissionDenied {
                operator, needed, ..
            } => {
                assert_eq!(operator, "carla", "{what}");
                assert!(needed.contains("supervisor"), "{what}: {needed}");
            }
            other => panic!("{what}: expected a refusal, got {other}"),
        }
    }
    let denied: Vec<_> = security_events(&path)
        .into_iter()
        .filter(|(_, p)| p["event"] == "permission_denied")
        .collect();
    assert_eq!(
        denied.len(),
        refusals.len() + 1,
        "every refusal is a chained row"
    );
    for (what, _) in &refusals {
        assert!(
            denied
                .iter()
                .any(|(o, p)| o == "carla" && p["action"] == *what),
            "{what} logged"
        );
    }
    assert!(f.store.verify_chain().unwrap().is_intact());

    // The supervisor may do all of it.
    let sup = f.sup.clone();
    f.store
        .override_decision(
            &sup,
            reject_id,
            Decision::Accept,
            "customer confirmed by phone",
        )
        .unwrap();
    f.store.retire_reference(&sup, r.id, "bad scan").unwrap();
    let st = common::change_settings(
        &mut f.store,
        &sup,
        &SettingsChange::Thresholds(Thresholds {
            accept: 0.9,
            reject: 0.2,
        }),
        "ROC review",
    )
    .unwrap();
    assert_eq!(f.store.current_settings().unwrap(), st);
    assert_eq!(
        f.store
            .decision(reject_id)
            .unwrap()
            .unwrap()
            .effective_action(),
        FinalAction::Override
    );
}

#[test]
fn auditor_reads_and_exports_but_cannot_verify_cheques() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = fixture(&dir.path().join("a.sqlite3"));
    let aud = f.auditor.clone();
    assert!(aud.can(Permission::ExportAudit) && aud.can(Permission::ReadAudit));
    let mut d = decision(&aud, 0);
    d.operator = "aude".into();
    assert!(matches!(
        f.store.insert_decision(&aud, &d).unwrap_err(),
        StoreError::PermissionDenied { .. }
    ));
    assert!(matches!(
        f.store.add_account(&aud, "A", "B").unwrap_err(),
        StoreError::PermissionDenied { .. }
    ));
    f.store
        .write_checkpoint(&aud, &dir.path().join("cp.json"))
        .unwrap();
}

#[test]
fn clerk_confirms_and_overrides_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = fixture(&dir.path().join("a.sqlite3"));
    let clerk = f.clerk.clone();
    let accept = decision(&clerk, 0);
    assert_eq!(accept.decision, Decision::Accept);
    let id = f.store.insert_decision(&clerk, &accept).unwrap();
    assert!(
        f.store
            .override_decision(&clerk, id, Decision::Reject, "  ")
            .unwrap_err()
            .to_string()
            .contains("reason")
    );
    // An override names its new decision: the bare action is refused.
    assert!(
        f.store
            .record_action(&clerk, id, FinalAction::Override, Some("x"))
            .is_err()
    );
    f.store
        .record_action(&clerk, id, FinalAction::Confirm, None)
        .unwrap();
    assert_eq!(
        f.store.decision(id).unwrap().unwrap().effective_action(),
        FinalAction::Confirm
    );
    f.store
        .override_decision(
            &clerk,
            id,
            Decision::Reject,
            "signature, yes; amount, \"odd\"",
        )
        .unwrap();
    let row = f.store.decision(id).unwrap().unwrap();
    assert_eq!(
        row.record.final_action,
        FinalAction::Pending,
        "the decision row itself never changes"
    );
    assert_eq!(row.final_decision, Decision::Reject);
    let act = row.action.unwrap();
    assert_eq!(
        (act.action, act.operator.as_str()),
        (FinalAction::Override, "carla")
    );
    assert!(matches!(
        f.store
            .record_action(&clerk, 999_999, FinalAction::Confirm, None)
            .unwrap_err(),
        StoreError::NotFound { .. }
    ));
}

#[test]
fn wrong_pins_are_logged_then_lock_out_until_a_supervisor_unlocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    let mut f = fixture(&path);
    let free = countersign::store::operators::FREE_FAILURES;
    for _ in 0..free - 1 {
        assert!(matches!(
            f.store.authenticate("carla", "000000").unwrap_err(),
            StoreError::AuthFailed
        ));
    }
    let err = f.store.authenticate("carla", "000000").unwrap_err();
    let StoreError::LockedOut {
        since, failures, ..
    } = &err
    else {
        panic!("expected a lockout, got {err}")
    };
    assert!(since.ends_with('Z') && *failures == free);
    assert!(
        err.to_string().contains("a supervisor must unlock"),
        "{err}"
    );
    assert_eq!(
        countersign::cli::exit::for_store(&err),
        countersign::cli::exit::DENIED
    );
    // Even the right PIN is refused during the window.
    assert!(matches!(
        f.store.authenticate("carla", "222200").unwrap_err(),
        StoreError::LockedOut { .. }
    ));
    // Unknown names fail the same way and are logged.
    assert!(matches!(
        f.store.authenticate("mallory", "222200").unwrap_err(),
        StoreError::AuthFailed
    ));
    let events = security_events(&path);
    let failed = events
        .iter()
        .filter(|(o, p)| o == "carla" && p["event"] == "sign_in_failed")
        .count();
    assert_eq!(failed as i64, free);
    assert!(
        events
            .iter()
            .any(|(o, p)| o == "carla" && p["event"] == "sign_in_refused")
    );
    assert!(
        events
            .iter()
            .any(|(o, p)| o == "mallory" && p["event"] == "sign_in_failed")
    );
    // A supervisor unlocks; the right PIN works again.
    let sup = f.sup.clone();
    f.store.unlock_operator(&sup, "carla").unwrap();
    f.store.authenticate("carla", "222200").unwrap();
    assert!(f.store.verify_chain().unwrap().is_intact());
}

#[test]
fn pins_are_never_stored_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    let mut f = fixture(&path);
    let pin = "739164825";
    f.store
        .add_operator(Some(&f.sup.clone()), "pat", Role::Clerk, pin)
        .unwrap();
    let _ = f.store.authenticate("pat", "739164826");
    f.store.set_pin(&f.sup.clone(), "pat", "58213479").unwrap();
    f.store.checkpoint_wal().unwrap();
    drop(f);
    let bytes = std::fs::read(&path).unwrap();
    for secret in [pin, "739164826", "58213479"] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} found in the file"
        );
    }
    let c = rusqlite::Connection::open(&path).unwrap();
    let h: String = c
        .query_row(
            "SELECT pin_hash FROM operators WHERE name = 'pat'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(h.starts_with("$argon2id$"), "{h}");
}
