//! Database faults and migrations: from empty and every older version, a newer schema, a corrupted
//! page, a read-only file, a write lock held by another connection.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use crate::store_common as common;

use std::time::{Duration, Instant};

use common::{decision, fixture, open, opts};
use countersign::store::migrations::{MIGRATIONS, apply_up_to, latest_version};
use countersign::store::{OpenOptions, Store, StoreError};

#[test]
fn migrates_from_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/a.sqlite3");
    let store = open(&path);
    assert_eq!(store.schema_version().unwrap(), latest_version());
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    let mode: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
}

#[test]
fn migrates_from_each_older_version_keeping_data() {
    for v in 1..MIGRATIONS.len() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite3");
        // Build a file the way an older binary would have: its migrations, then data in its schema.
        {
            let mut c = rusqlite::Connection::open(&path).unwrap();
            apply_up_to(&mut c, v).unwrap();
            let got: i64 = c
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(got, v as i64);
        }
        // Data an older binary wrote: plain SQL valid in every version.
        {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute(
                "INSERT INTO accounts (id, holder, created_at, created_by) VALUES ('OLD-1', 'Old Holder', \
                 '2025-01-01T00:00:00.000Z', 'legacy')",
                [],
            )
            .unwrap();
        }
        let mut f = {
            let store = open(&path);
            assert_eq!(
                store.schema_version().unwrap(),
                latest_version(),
                "from v{v}"
            );
            assert_eq!(
                store.account("OLD-1").unwrap().unwrap().holder,
                "Old Holder"
            );
            drop(store);
            fixture(&path)
        };
        let id = f
            .store
            .insert_decision(&f.clerk, &decision(&f.clerk, 1))
            .unwrap();
        assert!(f.store.decision(id).unwrap().is_some());
        assert!(f.store.verify_chain().unwrap().is_intact());
    }
}

#[test]
fn newer_schema_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    drop(open(&path));
    let future = latest_version() + 1;
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", future)
        .unwrap();
    let before = std::fs::read(&path).unwrap();
    let err = Store::open_with(&path, &opts()).unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found, .. } if found == future),
        "{err}"
    );
    assert_eq!(
        countersign::cli::exit::for_store(&err),
        countersign::cli::exit::DATABASE
    );
    assert!(err.to_string().contains("newer Countersign"), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file was not changed"
    );
    assert!(matches!(
        Store::open_read_only(&path).unwrap_err(),
        StoreError::NewerSchema { .. }
    ));
}

#[test]
fn corrupted_page_is_detected_at_open_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    {
        let mut f = fixture(&path);
        let ds: Vec<_> = (0..400).map(|i| decision(&f.clerk, i)).collect();
        f.store.insert_decisions(&f.clerk, &ds).unwrap();
        // Fold the WAL into the main file so the damage below hits committed pages.
        f.store.checkpoint_wal().unwrap();
    }
    let len = std::fs::metadata(&path).unwrap().len();
    let page = 4096u64;
    let pages = len / page;
    assert!(pages > 8, "the file should have many pages, has {pages}");
    // Overwrite one whole page in the middle with garbage.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.seek(SeekFrom::Start((pages / 2) * page)).unwrap();
        file.write_all(&vec![0xA5u8; page as usize]).unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = Store::open_with(&path, &opts()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("will not write") && msg.contains(".recover"),
        "{msg}"
    );
    assert_eq!(
        countersign::cli::exit::for_store(&err),
        countersign::cli::exit::DATABASE
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn read_only_file_is_refused_for_writing_and_readable_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    {
        let mut f = fixture(&path);
        f.store
            .insert_decision(&f.clerk, &decision(&f.clerk, 0))
            .unwrap();
        f.store.checkpoint_wal().unwrap();
    }
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&path, perms).unwrap();
    let err = Store::open_with(&path, &opts()).unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err}");
    assert_eq!(
        countersign::cli::exit::for_store(&err),
        countersign::cli::exit::DATABASE
    );

    let mut ro = Store::open_read_only_with(&path, &opts()).unwrap();
    assert!(ro.verify_chain().unwrap().is_intact());
    let clerk = ro.authenticate("carla", "222200").unwrap();
    let err = ro
        .insert_decision(&clerk, &decision(&clerk, 1))
        .unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err}");
}

#[test]
fn held_write_lock_waits_then_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    drop(fixture(&path));
    let wait = Duration::from_millis(300);
    let mut store = Store::open_with(
        &path,
        &OpenOptions {
            busy_timeout: wait,
            ..opts()
        },
    )
    .unwrap();
    let clerk = store.authenticate("carla", "222200").unwrap();

    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch("BEGIN EXCLUSIVE; INSERT INTO accounts VALUES ('X', 'x', 't', 'y');")
        .unwrap();
    let t0 = Instant::now();
    let err = store
        .insert_decision(&clerk, &decision(&clerk, 0))
        .unwrap_err();
    let waited = t0.elapsed();
    assert!(matches!(err, StoreError::Busy { .. }), "{err}");
    assert!(err.to_string().contains("try again"), "{err}");
    assert_eq!(
        countersign::cli::exit::for_store(&err),
        countersign::cli::exit::DATABASE
    );
    assert!(waited >= wait, "it waited for the lock ({waited:?})");
    // Readers are not blocked by the writer (WAL).
    assert!(store.verify_chain().unwrap().is_intact());
    other.execute_batch("ROLLBACK").unwrap();
    store.insert_decision(&clerk, &decision(&clerk, 0)).unwrap();
    assert!(store.verify_chain().unwrap().is_intact());
}

#[test]
fn a_non_database_file_is_refused_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    let err = Store::open_with(&path, &opts()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

#[test]
fn embedding_cache_round_trips_per_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = fixture(&dir.path().join("a.sqlite3"));
    f.store
        .add_account(&f.clerk, "ACC-1", "Ada Holder")
        .unwrap();
    let r = f
        .store
        .enrol_reference(&f.clerk, "ACC-1", &common::png(1))
        .unwrap();
    let v: Vec<f32> = (0..128).map(|i| i as f32 / 7.0 - 3.0).collect();
    assert_eq!(f.store.cached_embedding(r.id, "m1").unwrap(), None);
    f.store.cache_embedding(r.id, "m1", &v).unwrap();
    assert_eq!(
        f.store.cached_embedding(r.id, "m1").unwrap(),
        Some(v.clone())
    );
    assert_eq!(
        f.store.cached_embedding(r.id, "m2").unwrap(),
        None,
        "a new model needs recomputing"
    );
    let w: Vec<f32> = v.iter().map(|x| -x).collect();
    f.store.cache_embedding(r.id, "m1", &w).unwrap();
    assert_eq!(f.store.cached_embedding(r.id, "m1").unwrap(), Some(w));
}

#[test]
fn full_disk_refuses_the_batch_and_keeps_every_committed_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    drop(fixture(&path));
    let pages: u32 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    // A size cap a few dozen pages above the current size stands in for a full disk.
    let capped = OpenOptions {
        max_pages: Some(pages + 40),
        ..opts()
    };
    let mut store = Store::open_with(&path, &capped).unwrap();
    let clerk = store.authenticate("carla", "222200").unwrap();
    let mut committed = 0usize;
    let err = loop {
        let ds: Vec<_> = (committed..committed + 25)
            .map(|i| decision(&clerk, i))
            .collect();
        match store.insert_decisions(&clerk, &ds) {
            Ok(_) => committed += 25,
            Err(e) => break e,
        }
        assert!(committed < 100_000, "the cap never bit");
    };
    assert!(matches!(err, StoreError::DiskFull { .. }), "{err}");
    assert!(err.to_string().contains("full"), "{err}");
    assert_eq!(
        countersign::cli::exit::for_store(&err),
        countersign::cli::exit::DATABASE
    );
    assert!(committed > 0);
    drop(store);
    let mut store = open(&path);
    let filter = countersign::store::DecisionFilter::default();
    assert_eq!(
        store.count_decisions(&filter).unwrap() as usize,
        committed,
        "no partial batch, nothing lost"
    );
    assert!(store.verify_chain().unwrap().is_intact());
    let clerk = store.authenticate("carla", "222200").unwrap();
    store
        .insert_decision(&clerk, &decision(&clerk, committed))
        .unwrap();
    assert!(store.verify_chain().unwrap().is_intact());
}
