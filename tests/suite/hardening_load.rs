//! Load: two CLI processes at a time writing to one database while this process writes decisions
//! (as the GUI's worker would) and reads pages and verifies the chain (as the Audit screen would),
//! for a bounded time. No write may fail (the busy timeout absorbs every wait), every row must be
//! there exactly once, and the chain must verify over all of them.
//!
//! The run lasts `COUNTERSIGN_LOAD_SECS` seconds (default 20, to keep CI short; docs/HARDENING.md
//! gives the figures of a 60-second run).

use crate::store_common as common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{decision, fixture, open};
use countersign::store::DecisionFilter;

fn load_secs() -> u64 {
    std::env::var("COUNTERSIGN_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

/// One CLI writer: runs `countersign account add` (each a separate process that signs in, takes the
/// write lock and appends to the chain) until told to stop. Returns (accounts added, failures).
fn cli_writer(db: PathBuf, prefix: &'static str, stop: Arc<AtomicBool>) -> (u64, Vec<String>) {
    let mut added = 0u64;
    let mut failures = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let id = format!("{prefix}-{added:05}");
        let out = Command::new(env!("CARGO_BIN_EXE_countersign"))
            .arg("--db")
            .arg(&db)
            .args([
                "--operator",
                "carla",
                "--pin",
                "222200",
                "account",
                "add",
                &id,
                "--holder",
                "Load Holder",
            ])
            .env_remove("COUNTERSIGN_OPERATOR")
            .env_remove("COUNTERSIGN_PIN")
            .output()
            .expect("run countersign");
        if out.status.success() {
            added += 1;
        } else {
            failures.push(format!(
                "{id}: exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            // A failed add must not be counted, and the next attempt reuses the id.
            if failures.len() > 20 {
                break;
            }
        }
    }
    (added, failures)
}

fn ledger_count(db: &Path, kind: &str) -> i64 {
    rusqlite::Connection::open(db)
        .expect("open")
        .query_row("SELECT count(*) FROM ledger WHERE kind = ?1", [kind], |r| {
            r.get(0)
        })
        .expect("count")
}

#[test]
fn two_cli_processes_and_this_process_write_at_once_with_exact_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.sqlite3");
    drop(fixture(&db));
    let ledger_before = ledger_count(&db, "account");
    let secs = load_secs();
    let stop = Arc::new(AtomicBool::new(false));

    let writers: Vec<_> = ["cli-a", "cli-b"]
        .into_iter()
        .map(|prefix| {
            let (db, stop) = (db.clone(), Arc::clone(&stop));
            std::thread::spawn(move || cli_writer(db, prefix, stop))
        })
        .collect();

    // This process: a writer thread (batches of 10 decisions, as a GUI session or a small batch
    // would commit) and, on this thread, a reader paging and verifying as the Audit screen does.
    let gui_db = db.clone();
    let gui_stop = Arc::clone(&stop);
    let gui = std::thread::spawn(move || {
        let mut store = open(&gui_db);
        let clerk = store.authenticate("carla", "222200").expect("sign in");
        let mut n = 0usize;
        let mut errors = Vec::new();
        while !gui_stop.load(Ordering::Relaxed) {
            let ds: Vec<_> = (n..n + 10).map(|i| decision(&clerk, i)).collect();
            match store.insert_decisions(&clerk, &ds) {
                Ok(_) => n += 10,
                Err(e) => errors.push(e.to_string()),
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (n, errors)
    });

    let reader = open(&db);
    let t0 = Instant::now();
    let (mut pages, mut verifies, mut max_verified) = (0u64, 0u64, 0u64);
    while t0.elapsed() < Duration::from_secs(secs) {
        let page = reader
            .query_decisions(&DecisionFilter::default(), 0, 50)
            .expect("read a page while others write");
        assert!(page.len() <= 50);
        pages += 1;
        if pages.is_multiple_of(10) {
            let r = reader.verify_chain().expect("verify while others write");
            assert!(r.is_intact(), "{r:?}");
            max_verified = max_verified.max(r.rows_checked);
            verifies += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let (decisions, gui_errors) = gui.join().expect("gui writer");
    let mut accounts = 0u64;
    let mut cli_failures = Vec::new();
    for w in writers {
        let (n, f) = w.join().expect("cli writer");
        accounts += n;
        cli_failures.extend(f);
    }
    assert!(
        gui_errors.is_empty(),
        "in-process writer errors: {gui_errors:#?}"
    );
    assert!(
        cli_failures.is_empty(),
        "CLI writer failures: {cli_failures:#?}"
    );
    assert!(accounts > 0 && decisions > 0, "every writer made progress");

    let store = open(&db);
    assert_eq!(
        store.list_accounts().expect("accounts").len() as u64,
        accounts
    );
    assert_eq!(
        ledger_count(&db, "account") - ledger_before,
        accounts as i64
    );
    assert_eq!(
        store
            .count_decisions(&DecisionFilter::default())
            .expect("count") as usize,
        decisions
    );
    assert_eq!(store.decided_cheque_ids().expect("ids").len(), decisions);
    let report = store.verify_chain().expect("verify");
    assert!(report.is_intact(), "{report:?}");
    let total: i64 = rusqlite::Connection::open(&db)
        .expect("open")
        .query_row("SELECT count(*) FROM ledger", [], |r| r.get(0))
        .expect("count");
    assert_eq!(
        report.rows_checked as i64, total,
        "every ledger row verified"
    );
    println!(
        "{secs} s: {accounts} CLI processes each added an account, {decisions} decisions from this process, \
         {pages} pages read, {verifies} chain verifications during the run (up to {max_verified} rows); \
         final chain {} rows intact; 0 errors",
        report.rows_checked
    );
}
