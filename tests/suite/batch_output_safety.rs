//! `countersign batch --out` must never name the audit database: creating the results file truncates
//! it, which would destroy every committed decision (found by the hardening tests).

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_countersign");

#[test]
fn batch_refuses_to_write_its_results_over_the_audit_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.sqlite3");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = Command::new(BIN);
        c.arg("--db").arg(&db).args(["--device", "cpu"]).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let o = run(
        &["operator", "add", "sue", "--role", "supervisor"],
        &[("COUNTERSIGN_NEW_PIN", "739100")],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let before = std::fs::read(&db).unwrap();
    let manifest = dir.path().join("cheques.csv");
    std::fs::write(
        &manifest,
        "cheque_id,cheque_path,account_id,reference_paths,amount\nc1,missing.png,,ref.png,\n",
    )
    .unwrap();
    for out in [db.clone(), dir.path().join("audit.sqlite3-wal")] {
        let o = run(
            &[
                "--operator",
                "sue",
                "--pin",
                "739100",
                "batch",
                "--manifest",
                manifest.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            &[],
        );
        assert!(
            !o.status.success(),
            "batch accepted --out {}",
            out.display()
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("audit") || err.contains("database"), "{err}");
    }
    // The database is intact: same operator, chain verifies.
    let store = countersign::store::Store::open_read_only(&db).unwrap();
    assert_eq!(store.operator_count().unwrap(), 1);
    assert!(store.verify_chain().unwrap().first_bad.is_none());
    assert!(std::fs::metadata(&db).unwrap().len() >= before.len() as u64 / 2);
}
