//! A writer killed with SIGKILL in the middle of a batch loses nothing it committed, leaves no
//! partial batch, keeps the chain intact, and the next run continues where it stopped.
//!
//! The test re-runs its own binary as the child: the ignored `crash_child` test is the writer.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use crate::store_common as common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::{decision, fixture, open};
use countersign::store::DecisionFilter;

const DB_ENV: &str = "COUNTERSIGN_CRASH_DB";
const BATCHES_ENV: &str = "COUNTERSIGN_CRASH_BATCHES";
const BATCH: usize = 500;

/// The child: appends batches of decisions for cheques not yet decided, printing a line after each
/// commit, until killed or until `COUNTERSIGN_CRASH_BATCHES` batches are done.
#[test]
#[ignore = "helper run by the crash test in a child process"]
fn crash_child() {
    // Run directly (without the parent test) it has nothing to do.
    let Ok(db) = std::env::var(DB_ENV) else {
        return;
    };
    let batches: usize = std::env::var(BATCHES_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(usize::MAX);
    let mut store = open(std::path::Path::new(&db));
    let clerk = store.authenticate("carla", "222200").unwrap();
    let done = store.decided_cheque_ids().unwrap();
    let mut next = done.len();
    assert!(
        (0..next).all(|i| done.contains(&format!("CHQ-{i:06}"))),
        "resumes after a contiguous prefix"
    );
    let stdout = std::io::stdout();
    for _ in 0..batches {
        let ds: Vec<_> = (next..next + BATCH).map(|i| decision(&clerk, i)).collect();
        writeln!(stdout.lock(), "begin {next}").unwrap();
        store.insert_decisions(&clerk, &ds).unwrap();
        next += BATCH;
        writeln!(stdout.lock(), "committed {next}").unwrap();
        stdout.lock().flush().unwrap();
    }
}

const LOAD_PREFIX_ENV: &str = "COUNTERSIGN_LOAD_PREFIX";
const LOAD_BATCHES: usize = 40;
const LOAD_BATCH: usize = 25;

/// A concurrent writer for the load test: fixed batches with its own cheque-id prefix.
#[test]
#[ignore = "helper run by the load test in a child process"]
fn load_child() {
    let (Ok(db), Ok(prefix)) = (std::env::var(DB_ENV), std::env::var(LOAD_PREFIX_ENV)) else {
        return;
    };
    write_load(std::path::Path::new(&db), &prefix);
}

fn write_load(db: &std::path::Path, prefix: &str) {
    let mut store = open(db);
    let clerk = store.authenticate("carla", "222200").unwrap();
    for b in 0..LOAD_BATCHES {
        let ds: Vec<_> = (0..LOAD_BATCH)
            .map(|k| {
                let mut d = decision(&clerk, b * LOAD_BATCH + k);
                d.cheque_id = Some(format!("{prefix}-{b:03}-{k:03}"));
                d
            })
            .collect();
        store.insert_decisions(&clerk, &ds).unwrap();
    }
}

#[test]
fn two_processes_and_a_thread_write_at_once_with_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.sqlite3");
    drop(fixture(&db));
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ["p1", "p2"]
        .iter()
        .map(|prefix| {
            Command::new(&exe)
                .arg(crate::test_name(module_path!(), "load_child"))
                .args(["--exact", "--include-ignored", "--test-threads=1"])
                .env(DB_ENV, &db)
                .env(LOAD_PREFIX_ENV, prefix)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // This process writes too, and reads pages meanwhile as the GUI would.
    let db2 = db.clone();
    let writer = std::thread::spawn(move || write_load(&db2, "gui"));
    let reader = open(&db);
    for _ in 0..20 {
        let page = reader
            .query_decisions(&DecisionFilter::default(), 0, 50)
            .unwrap();
        assert!(page.len() <= 50);
    }
    writer.join().unwrap();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a writer failed");
    }
    let store = open(&db);
    let expected = 3 * LOAD_BATCHES * LOAD_BATCH;
    assert_eq!(
        store.count_decisions(&DecisionFilter::default()).unwrap() as usize,
        expected
    );
    assert_eq!(store.decided_cheque_ids().unwrap().len(), expected);
    let report = store.verify_chain().unwrap();
    assert!(report.is_intact(), "{report:?}");
}

fn spawn_child(db: &std::path::Path, batches: Option<usize>) -> std::process::Child {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.arg(crate::test_name(module_path!(), "crash_child"));
    cmd.args([
        "--exact",
        "--include-ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(DB_ENV, db)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if let Some(b) = batches {
        cmd.env(BATCHES_ENV, b.to_string());
    }
    cmd.spawn().unwrap()
}

#[test]
fn sigkill_mid_batch_loses_no_committed_row_and_the_next_run_continues() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.sqlite3");
    drop(fixture(&db));

    for round in 0..3 {
        let before = open(&db)
            .count_decisions(&DecisionFilter::default())
            .unwrap();
        let mut child = spawn_child(&db, None);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut reported = before as usize;
        // Let a few batches commit, then kill during the next one (after its "begin" line).
        let mut begins = 0;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("committed ") {
                reported = n.parse().unwrap();
            } else if line.starts_with("begin ") {
                begins += 1;
                if begins == 3 + round {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();

        let store = open(&db);
        let n = store.count_decisions(&DecisionFilter::default()).unwrap() as usize;
        assert!(
            n >= reported,
            "round {round}: {n} rows, but {reported} were reported committed"
        );
        assert_eq!(
            n % BATCH,
            0,
            "round {round}: a partial batch survived ({n} rows)"
        );
        let ids = store.decided_cheque_ids().unwrap();
        assert_eq!(ids.len(), n, "no duplicates");
        assert!(
            (0..n).all(|i| ids.contains(&format!("CHQ-{i:06}"))),
            "every committed cheque is there"
        );
        let report = store.verify_chain().unwrap();
        assert!(report.is_intact(), "round {round}: {report:?}");
    }

    // A final run continues and finishes normally.
    let before = open(&db)
        .count_decisions(&DecisionFilter::default())
        .unwrap() as usize;
    let status = spawn_child(&db, Some(2)).wait().unwrap();
    assert!(status.success());
    let store = open(&db);
    assert_eq!(
        store.count_decisions(&DecisionFilter::default()).unwrap() as usize,
        before + 2 * BATCH
    );
    assert!(store.verify_chain().unwrap().is_intact());
}
