//! The hash chain: every kind of tampering is found and the first bad row is named.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use crate::store_common as common;

use common::{attacker, decision, fixture, open};
use countersign::store::{Checkpoint, Store};

/// A database with 20 decisions after the three set-up rows; returns the first decision's row id.
fn populated(path: &std::path::Path) -> i64 {
    let mut f = fixture(path);
    let ds: Vec<_> = (0..20).map(|i| decision(&f.clerk, i)).collect();
    let ids = f.store.insert_decisions(&f.clerk, &ds).unwrap();
    let r = f.store.verify_chain().unwrap();
    assert!(r.is_intact(), "{r:?}");
    assert_eq!(r.rows_checked, ids[19] as u64);
    ids[0]
}

fn first_bad(store: &Store) -> (i64, String) {
    store
        .verify_chain()
        .unwrap()
        .first_bad
        .expect("the chain should be broken")
}

#[test]
fn intact_chain_verifies_and_triggers_refuse_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    populated(&path);
    let c = rusqlite::Connection::open(&path).unwrap();
    let upd = c
        .execute("UPDATE ledger SET decision = 'ACCEPT' WHERE id = 5", [])
        .unwrap_err();
    assert!(upd.to_string().contains("append-only"), "{upd}");
    let del = c
        .execute("DELETE FROM ledger WHERE id = 5", [])
        .unwrap_err();
    assert!(del.to_string().contains("append-only"), "{del}");
}

#[test]
fn edited_field_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    let first = populated(&path);
    let target = first + 7;
    attacker(&path)
        .execute(
            "UPDATE ledger SET probability = 0.99, decision = 'ACCEPT' WHERE id = ?1",
            [target],
        )
        .unwrap();
    let (row, why) = first_bad(&open(&path));
    assert_eq!(row, target);
    assert!(why.contains("edited"), "{why}");
}

#[test]
fn overwritten_hash_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    let first = populated(&path);
    let target = first + 3;
    // The attacker overwrites the stored hash: it no longer matches the row.
    attacker(&path)
        .execute(
            "UPDATE ledger SET hash = ?2 WHERE id = ?1",
            rusqlite::params![target, "ab".repeat(32)],
        )
        .unwrap();
    let (row, _) = first_bad(&open(&path));
    assert_eq!(
        row, target,
        "the row whose hash no longer matches its contents"
    );
}

#[test]
fn deleted_row_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    let first = populated(&path);
    let target = first + 5;
    attacker(&path)
        .execute("DELETE FROM ledger WHERE id = ?1", [target])
        .unwrap();
    let (row, why) = first_bad(&open(&path));
    assert_eq!(row, target + 1);
    assert!(why.contains(&format!("row {target} is missing")), "{why}");
}

#[test]
fn deleted_row_with_renumbered_tail_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    let first = populated(&path);
    let target = first + 5;
    let c = attacker(&path);
    c.execute("DELETE FROM ledger WHERE id = ?1", [target])
        .unwrap();
    // Close the gap so no id is missing.
    c.execute("UPDATE ledger SET id = id - 1 WHERE id > ?1", [target])
        .unwrap();
    let (row, _) = first_bad(&open(&path));
    assert_eq!(row, target);
}

#[test]
fn swapped_pair_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    let first = populated(&path);
    let (a, b) = (first + 10, first + 11);
    let c = attacker(&path);
    c.execute_batch(&format!(
        "UPDATE ledger SET id = -1 WHERE id = {a}; UPDATE ledger SET id = {a} WHERE id = {b}; \
         UPDATE ledger SET id = {b} WHERE id = -1;"
    ))
    .unwrap();
    let (row, why) = first_bad(&open(&path));
    assert_eq!(row, a);
    assert!(why.contains("prev_hash"), "{why}");
}

#[test]
fn row_inserted_with_forged_hash_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    let first = populated(&path);
    let at = first + 8;
    let c = attacker(&path);
    // Make room by shifting the tail up (highest first), then insert a forged decision in the gap,
    // copying a real row's prev_hash and inventing its hash.
    let max: i64 = c
        .query_row("SELECT max(id) FROM ledger", [], |r| r.get(0))
        .unwrap();
    for id in (at..=max).rev() {
        c.execute("UPDATE ledger SET id = id + 1 WHERE id = ?1", [id])
            .unwrap();
    }
    c.execute(
        "INSERT INTO ledger SELECT ?1, kind, time, operator, account, 'FORGED-CHEQUE', amount_cents, cheque_sha256, \
         reference_sha256s, crop_x, crop_y, crop_w, crop_h, raw_score, 0.99, t_accept, t_reject, 'ACCEPT', final_action, \
         reason, model_id, device, latency_ms, source, ref_id, payload, prev_hash, ?2, final_decision \
         FROM ledger WHERE id = ?3",
        rusqlite::params![at, "f0".repeat(32), at + 1],
    )
    .unwrap();
    let (row, why) = first_bad(&open(&path));
    assert_eq!(row, at);
    assert!(why.contains("edited or forged"), "{why}");
}

#[test]
fn rewritten_chain_is_caught_by_the_checkpoint_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    let cp_path = dir.path().join("checkpoint.json");
    let first = populated(&path);
    let mut f_store = open(&path);
    let sup = f_store.authenticate("sam", "111100").unwrap();
    let cp = f_store.write_checkpoint(&sup, &cp_path).unwrap();
    assert_eq!(Checkpoint::read(&cp_path).unwrap(), cp);
    assert!(f_store.verify_checkpoint(&cp).unwrap().matches);
    drop(f_store);

    // The attacker edits an old decision and recomputes every hash from there on, the way this
    // program would: a fresh file built from the same rows but with the edit.
    let c = attacker(&path);
    let rows: Vec<Vec<rusqlite::types::Value>> = {
        let mut s = c
            .prepare(&format!(
                "SELECT {ALL_COLUMNS} FROM ledger WHERE id >= ?1 ORDER BY id"
            ))
            .unwrap();
        s.query_map([first + 2], |r| {
            (0..29)
                .map(|i| r.get::<_, rusqlite::types::Value>(i))
                .collect()
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    c.execute("DELETE FROM ledger WHERE id >= ?1", [first + 2])
        .unwrap();
    drop(c);
    // Append edited copies with plain SQL, recomputing every hash with the documented encoding.
    let c = rusqlite::Connection::open(&path).unwrap();
    let mut prev: String = c
        .query_row("SELECT hash FROM ledger WHERE id = ?1", [first + 1], |r| {
            r.get(0)
        })
        .unwrap();
    for mut row in rows {
        if let rusqlite::types::Value::Integer(id) = row[0]
            && id == first + 2
        {
            row[14] = rusqlite::types::Value::Real(0.99); // probability
            row[17] = rusqlite::types::Value::Text("ACCEPT".into());
        }
        let hash = recompute(&prev, &row[..27]);
        row[27] = rusqlite::types::Value::Text(prev.clone());
        row[28] = rusqlite::types::Value::Text(hash.clone());
        c.execute(
            &format!(
                "INSERT INTO ledger ({ALL_COLUMNS}) VALUES ({})",
                vec!["?"; 29].join(", ")
            ),
            rusqlite::params_from_iter(row.iter()),
        )
        .unwrap();
        prev = hash;
    }
    drop(c);
    let store = open(&path);
    let report = store.verify_chain().unwrap();
    assert!(
        report.is_intact(),
        "a full rewrite is internally consistent: {report:?}"
    );
    let cp_report = store
        .verify_checkpoint(&Checkpoint::read(&cp_path).unwrap())
        .unwrap();
    assert!(!cp_report.matches, "{cp_report:?}");
    assert!(
        cp_report.detail.contains("rewritten"),
        "{}",
        cp_report.detail
    );
}

/// Every column of `ledger`: the 26 of canonical version 1, `final_decision` (version 2), then the
/// hashes.
const ALL_COLUMNS: &str = "id, kind, time, operator, account, cheque_id, amount_cents, cheque_sha256, \
     reference_sha256s, crop_x, crop_y, crop_w, crop_h, raw_score, probability, t_accept, t_reject, decision, \
     final_action, reason, model_id, device, latency_ms, source, ref_id, payload, final_decision, prev_hash, hash";

/// The row hash as the documented encoding gives it, in hex (see `store_common::ledger_row_hash`).
fn recompute(prev_hex: &str, values: &[rusqlite::types::Value]) -> String {
    let prev: [u8; 32] = hex::decode(prev_hex).unwrap().try_into().unwrap();
    hex::encode(common::ledger_row_hash(&prev, values))
}

#[test]
fn appends_continue_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    populated(&path);
    let mut store = open(&path);
    let clerk = store.authenticate("carla", "222200").unwrap();
    store
        .insert_decision(&clerk, &decision(&clerk, 99))
        .unwrap();
    assert!(store.verify_chain().unwrap().is_intact());
}
