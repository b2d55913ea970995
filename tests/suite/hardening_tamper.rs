//! An attacker with write access to the database file: what the hash chain alone detects, what only
//! an anchor kept elsewhere (a checkpoint file, an export's `.anchor.json`) detects, and what nothing
//! in the file can detect. `tests/store_chain.rs` covers single edits, deletions, insertions,
//! reorderings and a rewrite caught by a checkpoint; this file adds an in-place rewrite caught by an
//! export's anchor (library and CLI, exit code 7), tail truncation, forged appends, a swapped-in
//! database, and a role changed outside the ledger, each with what the audit log can and cannot
//! prove about it (see docs/HARDENING.md).

use crate::store_common as common;

use std::path::Path;
use std::process::Command;

use common::{attacker, decision, fixture, open};
use countersign::store::{Checkpoint, DecisionFilter, ExportFormat, Store, StoreError};
use rusqlite::types::Value;

const COLUMNS: &str = "id, kind, time, operator, account, cheque_id, amount_cents, cheque_sha256, \
     reference_sha256s, crop_x, crop_y, crop_w, crop_h, raw_score, probability, t_accept, t_reject, decision, \
     final_action, reason, model_id, device, latency_ms, source, ref_id, payload";

/// [`COLUMNS`] and the column the canonical encoding version 2 adds.
const HASHED_COLUMNS: &str = "id, kind, time, operator, account, cheque_id, amount_cents, cheque_sha256, \
     reference_sha256s, crop_x, crop_y, crop_w, crop_h, raw_score, probability, t_accept, t_reject, decision, \
     final_action, reason, model_id, device, latency_ms, source, ref_id, payload, final_decision";

/// Recomputes `prev_hash` and `hash` of every row from `from` on, in place, with plain SQL.
fn rehash_from(c: &rusqlite::Connection, from: i64) -> usize {
    let mut prev = [0u8; 32];
    if from > 1 {
        let h: String = c
            .query_row("SELECT hash FROM ledger WHERE id = ?1", [from - 1], |r| {
                r.get(0)
            })
            .expect("previous hash");
        hex::decode_to_slice(h, &mut prev).expect("hex");
    }
    let rows: Vec<Vec<Value>> = c
        .prepare(&format!(
            "SELECT {HASHED_COLUMNS} FROM ledger WHERE id >= ?1 ORDER BY id"
        ))
        .expect("prepare")
        .query_map([from], |r| (0..27).map(|i| r.get::<_, Value>(i)).collect())
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    for row in &rows {
        let h = common::ledger_row_hash(&prev, row);
        c.execute(
            "UPDATE ledger SET prev_hash = ?1, hash = ?2 WHERE id = ?3",
            rusqlite::params![hex::encode(prev), hex::encode(h), row[0]],
        )
        .expect("rewrite hashes");
        prev = h;
    }
    rows.len()
}

/// A database with 60 decisions and an export (with its anchor) taken after the first 40.
fn populated(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, i64) {
    let db = dir.join("audit.sqlite3");
    let mut f = fixture(&db);
    let first: Vec<_> = (0..40).map(|i| decision(&f.clerk, i)).collect();
    let ids = f
        .store
        .insert_decisions(&f.clerk, &first)
        .expect("decisions");
    let out = dir.join("export.csv");
    let summary = f
        .store
        .export_decisions(
            &f.auditor,
            &DecisionFilter::default(),
            ExportFormat::Csv,
            &out,
            &mut |_| {},
        )
        .expect("export");
    assert_eq!(summary.rows, 40);
    let more: Vec<_> = (40..60).map(|i| decision(&f.clerk, i)).collect();
    f.store
        .insert_decisions(&f.clerk, &more)
        .expect("more decisions");
    (db, summary.anchor_path, ids[5])
}

fn audit_verify(db: &Path, checkpoint: Option<&Path>) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_countersign"));
    c.arg("--db").arg(db).args(["audit", "verify"]);
    if let Some(cp) = checkpoint {
        c.arg("--checkpoint").arg(cp);
    }
    c.output().expect("run countersign")
}

#[test]
fn a_rewrite_from_a_row_on_passes_the_chain_but_not_the_export_anchor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, anchor, victim) = populated(dir.path());
    assert!(
        open(&db)
            .verify_checkpoint(&Checkpoint::read(&anchor).expect("anchor"))
            .expect("check")
            .matches
    );

    // The attacker turns a REJECT into an ACCEPT with a high probability, then recomputes every
    // hash from that row to the end in place.
    let c = attacker(&db);
    let n = c
        .execute(
            "UPDATE ledger SET decision = 'ACCEPT', probability = 0.97 WHERE id = ?1",
            [victim],
        )
        .expect("edit");
    assert_eq!(n, 1);
    let rewritten = rehash_from(&c, victim);
    // A careful attacker puts the triggers back: `audit verify` reports a missing one.
    c.execute_batch(
        "CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger \
         BEGIN SELECT RAISE(ABORT, 'the audit ledger is append-only: UPDATE refused'); END; \
         CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger \
         BEGIN SELECT RAISE(ABORT, 'the audit ledger is append-only: DELETE refused'); END;",
    )
    .expect("restore triggers");
    drop(c);

    // The chain alone cannot tell: it is internally consistent (this is the documented limit).
    let store = open(&db);
    let report = store.verify_chain().expect("verify");
    assert!(report.is_intact(), "{report:?}");
    let o = audit_verify(&db, None);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // The export's anchor, kept by the auditor, does.
    let r = store
        .verify_checkpoint(&Checkpoint::read(&anchor).expect("anchor"))
        .expect("check");
    assert!(!r.matches, "{r:?}");
    assert!(r.detail.contains("rewritten"), "{}", r.detail);
    let o = audit_verify(&db, Some(&anchor));
    assert_eq!(
        o.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("checkpoint mismatch"));
    println!("{rewritten} rows rewritten from row {victim}: chain intact, anchor mismatch found");
}

#[test]
fn truncating_or_appending_after_the_last_anchor_is_not_detectable_by_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, anchor, _) = populated(dir.path());
    let cp = Checkpoint::read(&anchor).expect("anchor");
    let head_before = open(&db).chain_head().expect("head").expect("rows");
    assert!(head_before.row_id > cp.row_id);

    // Cut the tail after the anchored row: the chain and the old anchor both still pass. Only an
    // anchor taken later (or the count in a later export) shows the rows went missing.
    let later = Checkpoint {
        row_id: head_before.row_id,
        hash: head_before.hash.clone(),
        time: head_before.time.clone(),
    };
    let c = attacker(&db);
    c.execute("DELETE FROM ledger WHERE id > ?1", [cp.row_id + 3])
        .expect("truncate");
    drop(c);
    let store = open(&db);
    assert!(store.verify_chain().expect("verify").is_intact());
    assert!(
        store.verify_checkpoint(&cp).expect("check").matches,
        "an older anchor cannot see it"
    );
    let r = store.verify_checkpoint(&later).expect("check");
    assert!(
        !r.matches && r.detail.contains("no longer in the chain"),
        "{r:?}"
    );
    drop(store);

    // Forge new rows at the end with correct hashes: again consistent, and the anchor still matches.
    // (The triggers are already gone.)
    let c = rusqlite::Connection::open(&db).expect("attacker reopens");
    let last: i64 = c
        .query_row("SELECT max(id) FROM ledger", [], |r| r.get(0))
        .expect("max");
    c.execute(
        &format!(
            "INSERT INTO ledger ({COLUMNS}, prev_hash, hash) SELECT ?1 + 1, kind, time, operator, account, \
             'FORGED-1', amount_cents, cheque_sha256, reference_sha256s, crop_x, crop_y, crop_w, crop_h, raw_score, \
             0.99, t_accept, t_reject, 'ACCEPT', final_action, reason, model_id, device, latency_ms, source, ref_id, \
             payload, '', '' FROM ledger WHERE id = (SELECT max(id) FROM ledger WHERE kind = 'decision')"
        ),
        [last],
    )
    .expect("forge");
    rehash_from(&c, last + 1);
    drop(c);
    let store = open(&db);
    assert!(store.verify_chain().expect("verify").is_intact());
    assert!(store.verify_checkpoint(&cp).expect("check").matches);
    assert!(
        store.has_decision("FORGED-1").expect("query"),
        "the forged row is read as real"
    );
}

#[test]
fn a_swapped_in_database_fails_every_anchor_taken_from_the_real_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, anchor, _) = populated(dir.path());
    // A look-alike built from scratch by the same program: same operators and PINs, other history.
    let fake_dir = dir.path().join("fake");
    let fake = fake_dir.join("audit.sqlite3");
    {
        let mut f = fixture(&fake);
        let ds: Vec<_> = (100..160).map(|i| decision(&f.clerk, i)).collect();
        f.store
            .insert_decisions(&f.clerk, &ds)
            .expect("fake decisions");
    }
    std::fs::copy(&fake, &db).expect("swap");
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let store = open(&db);
    assert!(store.verify_chain().expect("verify").is_intact());
    let r = store
        .verify_checkpoint(&Checkpoint::read(&anchor).expect("anchor"))
        .expect("check");
    assert!(!r.matches, "{r:?}");
}

#[test]
fn roles_and_pins_changed_outside_countersign_are_refused_at_sign_in_and_reported_by_audit_verify()
{
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.sqlite3");
    {
        let mut f = fixture(&db);
        // A PIN changed the proper way stays valid: its digest is in the chain.
        let sam = f.sup.clone();
        f.store.set_pin(&sam, "aude", "343400").expect("new PIN");
    }
    let refused = |name: &str, pin: &str| {
        let mut store = Store::open_with(&db, &common::opts()).expect("open");
        match store.authenticate(name, pin) {
            Err(e @ StoreError::CredentialsTampered { .. }) => e.to_string(),
            other => panic!("{name} should be refused, got {other:?}"),
        }
    };
    {
        let mut store = Store::open_with(&db, &common::opts()).expect("open");
        store
            .authenticate("aude", "343400")
            .expect("a proper PIN change works");
        assert!(
            store
                .operators_differing_from_chain()
                .expect("check")
                .is_empty()
        );
    }
    let verify = audit_verify(&db, None);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // Plain SQL on the file: promote the clerk, give the supervisor the clerk's PIN hash (so the
    // clerk's PIN opens the supervisor), and slip in an operator nobody added.
    let c = rusqlite::Connection::open(&db).expect("open");
    c.execute_batch(
        "UPDATE operators SET role = 'supervisor' WHERE name = 'carla';
         UPDATE operators SET pin_hash = (SELECT pin_hash FROM operators WHERE name = 'carla') WHERE name = 'sam';
         INSERT INTO operators (name, role, pin_hash, created_at, created_by)
           SELECT 'mallory', 'supervisor', pin_hash, created_at, 'sam' FROM operators WHERE name = 'carla';",
    )
    .expect("edit the operators table");
    drop(c);

    let why = refused("carla", "222200");
    assert!(
        why.contains("role supervisor") && why.contains("as clerk"),
        "{why}"
    );
    let why = refused("sam", "222200");
    assert!(why.contains("PIN hash of sam"), "{why}");
    let why = refused("mallory", "222200");
    assert!(why.contains("no record of operator mallory"), "{why}");
    // The untouched auditor still signs in, and each refusal is in the chain, which stays intact.
    let mut store = Store::open_with(&db, &common::opts()).expect("open");
    store
        .authenticate("aude", "343400")
        .expect("untouched operator");
    assert!(store.verify_chain().expect("verify").is_intact());
    let refusals: i64 = rusqlite::Connection::open(&db)
        .expect("open")
        .query_row(
            "SELECT count(*) FROM ledger WHERE kind = 'security' \
             AND json_extract(payload, '$.cause') = 'credentials differ from the chain'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(refusals, 3);
    let differing: Vec<String> = store
        .operators_differing_from_chain()
        .expect("check")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(differing, ["carla", "mallory", "sam"]);

    // `audit verify` fails with the chain-broken exit code and names each operator.
    let verify = audit_verify(&db, None);
    assert_eq!(verify.status.code(), Some(7));
    let stderr = String::from_utf8_lossy(&verify.stderr);
    for name in ["carla", "sam", "mallory"] {
        assert!(stderr.contains(name), "{stderr}");
    }
    // Through the CLI, the promoted clerk gets the same refusal and exit code.
    let out = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .arg("--db")
        .arg(&db)
        .args(["--operator", "carla", "--pin", "222200", "account", "list"])
        .env_remove("COUNTERSIGN_OPERATOR")
        .env_remove("COUNTERSIGN_PIN")
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("changed outside Countersign"));
}

#[test]
fn a_logged_signature_image_swapped_outside_countersign_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.sqlite3");
    let mut f = fixture(&db);
    let png = |shade: u8| {
        let img = image::GrayImage::from_pixel(192, 96, image::Luma([shade]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png)
            .expect("png");
        out.into_inner()
    };
    let mut d = decision(&f.clerk, 1);
    d.signature_png = Some(png(40));
    let id = f.store.insert_decision(&f.clerk, &d).expect("insert");
    assert_eq!(f.store.decision_signature(id).expect("read"), Some(png(40)));
    // Not a PNG, or far too large: refused before anything is written.
    for bad in [b"GIF89a".to_vec(), {
        let mut v = png(1);
        v.resize(countersign::store::MAX_SIGNATURE_PNG + 1, 0);
        v
    }] {
        let mut d = decision(&f.clerk, 2);
        d.signature_png = Some(bad);
        assert!(matches!(
            f.store.insert_decision(&f.clerk, &d),
            Err(StoreError::Invalid(_))
        ));
    }
    // The table is append-only; an attacker who drops its trigger and swaps the image is caught
    // by the hash in the chained row, which the chain itself still verifies.
    let c = rusqlite::Connection::open(&db).expect("open");
    assert!(
        c.execute("UPDATE decision_signatures SET png = x'00'", [])
            .is_err()
    );
    c.execute_batch("DROP TRIGGER decision_signatures_no_update")
        .expect("drop trigger");
    c.execute(
        "UPDATE decision_signatures SET png = ?1 WHERE decision_id = ?2",
        rusqlite::params![png(200), id],
    )
    .expect("swap");
    assert!(matches!(
        f.store.decision_signature(id),
        Err(StoreError::SignatureTampered { decision }) if decision == id
    ));
    assert!(f.store.verify_chain().expect("verify").is_intact());
}
