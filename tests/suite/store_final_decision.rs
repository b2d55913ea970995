//! The decision an override or a referral's resolution chooses is a column of its ledger row
//! (schema version 7), covered by the hash chain (canonical encoding version 2), not words in the
//! reason or a key in the payload. Rows written before the column existed still read and verify.

use crate::store_common as common;

use common::{attacker, decision, fixture, open};
use countersign::scoring::Decision;
use countersign::store::export::ExportRecord;
use countersign::store::{DecisionFilter, ExportFormat, FinalAction};
use rusqlite::types::Value;

/// `(final_decision, payload, reason)` of a ledger row, as the file holds them.
fn stored(path: &std::path::Path, id: i64) -> (Option<String>, Option<String>, Option<String>) {
    rusqlite::Connection::open(path)
        .expect("read the ledger row")
        .query_row(
            "SELECT final_decision, payload, reason FROM ledger WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("read the ledger row")
}

#[test]
fn an_override_keeps_its_decision_in_its_own_chained_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    let mut f = fixture(&path);
    // Overridden when recorded: the model said ACCEPT, the supervisor chose REJECT.
    let mut d = decision(&f.sup, 0);
    d.decision = Decision::Accept;
    d.final_action = FinalAction::Override;
    d.final_decision = Some(Decision::Reject);
    d.reason = Some("the loop of the g is wrong".into());
    let direct = f.store.insert_decision(&f.sup, &d).unwrap();
    // Overridden afterwards, as an action row on a pending decision.
    let mut p = decision(&f.clerk, 3);
    p.decision = Decision::Accept;
    let pending = f.store.insert_decision(&f.clerk, &p).unwrap();
    let action = f
        .store
        .override_decision(&f.sup, pending, Decision::Refer, "ask the branch")
        .unwrap();

    for (id, want, reason) in [
        (direct, "REJECT", "the loop of the g is wrong"),
        (action, "REFER", "ask the branch"),
    ] {
        let (column, payload, stored_reason) = stored(&path, id);
        assert_eq!(column.as_deref(), Some(want), "row {id}");
        assert_eq!(
            stored_reason.as_deref(),
            Some(reason),
            "the reason is the operator's words only"
        );
        assert!(
            !payload.unwrap_or_default().contains("final_decision"),
            "row {id}: the decision is not repeated in the payload"
        );
    }
    // A row that chose nothing keeps NULL.
    assert_eq!(stored(&path, pending).0, None);

    assert_eq!(
        f.store.decision(direct).unwrap().unwrap().final_decision,
        Decision::Reject
    );
    assert_eq!(
        f.store.decision(pending).unwrap().unwrap().final_decision,
        Decision::Refer
    );
    // The queries filter on it too.
    let refer = DecisionFilter {
        final_decision: Some(Decision::Refer),
        ..Default::default()
    };
    let rows = f.store.query_decisions(&refer, 0, 100).unwrap();
    assert!(rows.iter().any(|r| r.id == pending), "{rows:?}");
    assert!(f.store.verify_chain().unwrap().is_intact());

    // The export carries the decision in force beside the model's.
    let csv = dir.path().join("export.csv");
    f.store
        .export_decisions(
            &f.auditor,
            &DecisionFilter::default(),
            ExportFormat::Csv,
            &csv,
            &mut |_| {},
        )
        .unwrap();
    let mut reader = csv::Reader::from_path(&csv).unwrap();
    let records: Vec<ExportRecord> = reader.deserialize().map(Result::unwrap).collect();
    let exported = |id: i64| records.iter().find(|r| r.id == id).expect("exported");
    assert_eq!(
        (
            exported(direct).decision.as_str(),
            exported(direct).final_decision.as_str()
        ),
        ("ACCEPT", "REJECT")
    );
    assert_eq!(
        (
            exported(pending).decision.as_str(),
            exported(pending).final_decision.as_str()
        ),
        ("ACCEPT", "REFER")
    );

    // Reopened, the same.
    drop(f);
    let store = open(&path);
    assert_eq!(
        store.decision(pending).unwrap().unwrap().final_decision,
        Decision::Refer
    );
    assert!(store.verify_chain().unwrap().is_intact());
}

#[test]
fn changing_the_chosen_decision_outside_countersign_breaks_the_chain_at_that_row() {
    for (what, sql) in [
        (
            "changed",
            "UPDATE ledger SET final_decision = 'ACCEPT' WHERE id = ?1",
        ),
        (
            "cleared",
            "UPDATE ledger SET final_decision = NULL WHERE id = ?1",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sqlite3");
        let mut f = fixture(&path);
        let pending = f
            .store
            .insert_decision(&f.clerk, &decision(&f.clerk, 2))
            .unwrap();
        let action = f
            .store
            .override_decision(&f.sup, pending, Decision::Refer, "second look")
            .unwrap();
        f.store
            .insert_decision(&f.clerk, &decision(&f.clerk, 5))
            .unwrap();
        drop(f);
        let c = attacker(&path);
        c.execute(sql, [action]).unwrap();
        drop(c);
        let report = open(&path).verify_chain().unwrap();
        assert_eq!(
            report.first_bad.as_ref().map(|(id, _)| *id),
            Some(action),
            "{what}: {report:?}"
        );
    }
    // Setting one on a row that chose nothing is found as well.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    let mut f = fixture(&path);
    let id = f
        .store
        .insert_decision(&f.clerk, &decision(&f.clerk, 0))
        .unwrap();
    drop(f);
    attacker(&path)
        .execute(
            "UPDATE ledger SET final_decision = 'ACCEPT' WHERE id = ?1",
            [id],
        )
        .unwrap();
    let report = open(&path).verify_chain().unwrap();
    assert_eq!(report.first_bad.map(|(bad, _)| bad), Some(id));
}

#[test]
fn rows_written_before_the_column_still_read_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    let mut f = fixture(&path);
    f.store
        .insert_decision(&f.clerk, &decision(&f.clerk, 0))
        .unwrap();
    drop(f);
    // Two rows as older binaries wrote them, appended with plain SQL and the version 1 encoding:
    // an override with its decision in the payload, and a GUI override of the oldest kind with it
    // in the reason ("Changed to X: ...").
    let c = rusqlite::Connection::open(&path).unwrap();
    let template = common::last_decision_values(&c);
    let mut ids = Vec::new();
    for (n, (reason, payload)) in [
        (
            Some("payload override"),
            Some(r#"{"final_decision":"REJECT"}"#),
        ),
        (Some("Changed to REFER: smudged"), None),
    ]
    .into_iter()
    .enumerate()
    {
        let mut row = template.clone();
        row[5] = Value::Text(format!("OLD-{n}"));
        row[17] = Value::Text("ACCEPT".into());
        row[18] = Value::Text("override".into());
        row[19] = reason.map_or(Value::Null, |r| Value::Text(r.into()));
        row[25] = payload.map_or(Value::Null, |p| Value::Text(p.into()));
        ids.push(common::append_raw_row(&c, row));
    }
    drop(c);
    let store = open(&path);
    assert!(store.verify_chain().unwrap().is_intact());
    let read = |id| store.decision(id).unwrap().unwrap().final_decision;
    assert_eq!(read(ids[0]), Decision::Reject);
    assert_eq!(read(ids[1]), Decision::Refer);
    let reject = DecisionFilter {
        final_decision: Some(Decision::Reject),
        ..Default::default()
    };
    assert!(
        store
            .query_decisions(&reject, 0, 100)
            .unwrap()
            .iter()
            .any(|r| r.id == ids[0])
    );
}
