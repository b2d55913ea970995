//! `countersign batch`: the same decisions as `verify`, error rows, well-formed CSV, and resuming after
//! a kill or Ctrl-C without duplicates or gaps. Real files, a real SQLite store, real libtorch.

// Tests unwrap freely (clippy.toml allows it in #[test] functions; these helpers are test code too).
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use countersign::batch::bench::fixture::{self, Fixture, RefMode};
use countersign::batch::output::{ResultRow, RowStatus, read_results};
use countersign::batch::{BatchOptions, StopReason};
use countersign::imaging::cheque::ChequeLayout;
use countersign::model::SignatureModel;
use countersign::store::{DecisionFilter, Store};
use countersign::verify::{ImageSource, Questioned, References, Verifier, VerifyRequest};

const BIN: &str = env!("CARGO_BIN_EXE_countersign");

use crate::pipeline_fixture::setup;

fn verifier(model: &Path, store: &Store) -> Verifier {
    let m = SignatureModel::load(model, tch::Device::Cpu).unwrap();
    Verifier::from_store(
        countersign::verify::shared_model(m),
        ChequeLayout::default(),
        Some(store),
    )
    .unwrap()
}

fn run_batch(
    fx: &Fixture,
    model: &Path,
    manifest: &Path,
    out: &Path,
) -> countersign::batch::BatchSummary {
    let mut store = Store::open(&fx.db).unwrap();
    let op = fixture::operator(&mut store).unwrap();
    let v = verifier(model, &store);
    let mut opts = BatchOptions::new(manifest, out);
    opts.chunk_rows = 5;
    opts.workers = Some(2);
    // Progress comes through a callback (no progress bar in the library): every row is counted once.
    let progressed = std::cell::Cell::new(0u64);
    let summary = countersign::batch::run(
        &v,
        &mut store,
        &op,
        &opts,
        &AtomicBool::new(false),
        &|rows| progressed.set(progressed.get() + rows),
    )
    .unwrap();
    assert_eq!(progressed.get(), summary.rows, "progress reports every row");
    summary
}

fn decided_ids(db: &Path) -> Vec<String> {
    Store::open_read_only(db)
        .unwrap()
        .query_decisions(&DecisionFilter::default(), 0, 1_000_000)
        .unwrap()
        .into_iter()
        .filter_map(|r| r.record.cheque_id)
        .collect()
}

#[test]
fn batch_decides_exactly_as_verify_does() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, model) = setup(dir.path());
    for (mode, name) in [(RefMode::Paths, "paths"), (RefMode::Account, "account")] {
        let manifest = fx.dir.join(format!("{name}.csv"));
        // Every cheque once, plus a second round so reused reference images hit the in-memory cache.
        let rows = 2 * fx
            .writers
            .iter()
            .map(|w| w.cheques.len() as u64)
            .sum::<u64>();
        fixture::write_manifest(&fx, &manifest, rows, &format!("{name}-"), mode).unwrap();
        let out = dir.path().join(format!("{name}-results.csv"));
        let summary = run_batch(&fx, &model, &manifest, &out);
        assert_eq!(summary.errors, 0);
        assert_eq!(summary.decided(), rows);
        let results = read_results(&out).unwrap();
        assert_eq!(results.len() as u64, rows);

        let mut store = Store::open(&fx.db).unwrap();
        let v = verifier(&model, &store);
        let all: Vec<(&fixture::FixtureWriter, &PathBuf)> = fx
            .writers
            .iter()
            .flat_map(|w| w.cheques.iter().map(move |c| (w, c)))
            .collect();
        for (n, r) in results.iter().enumerate() {
            let (w, cheque) = all[n % all.len()];
            assert_eq!(r.cheque_id, format!("{name}-{n}"));
            assert_eq!(r.line, n as u64 + 2);
            let references = match mode {
                RefMode::Paths => References::Images(
                    w.references
                        .iter()
                        .map(|p| ImageSource::Path(p.clone()))
                        .collect(),
                ),
                RefMode::Account => References::Embeddings(
                    countersign::verify::account_references(&mut store, &v, &w.account)
                        .unwrap()
                        .into(),
                ),
            };
            let single = v
                .verify(&VerifyRequest {
                    references,
                    questioned: Questioned {
                        kind: countersign::verify::InputKind::Cheque,
                        image: ImageSource::Path(cheque.clone()),
                    },
                    manual_crop: None,
                    account: (mode == RefMode::Account).then(|| w.account.clone()),
                    amount_cents: None,
                    cheque_id: None,
                })
                .unwrap();
            assert_eq!(r.decision, RowStatus::from(single.decision()), "row {n}");
            let (a, b) = (r.score.unwrap(), single.raw_score.unwrap());
            assert!(
                (a - b).abs() < 1e-4,
                "row {n}: batch score {a} vs verify {b}"
            );
            // No probability when the model card carries no calibration (every cheque is REFERred).
            match (r.probability, single.probability) {
                (Some(a), Some(b)) => {
                    assert!((a - b).abs() < 1e-4, "row {n}: probability {a} vs {b}")
                }
                (a, b) => assert_eq!(a, b, "row {n}"),
            }
            let c = single.crop.unwrap();
            assert_eq!(
                (r.crop_x, r.crop_y, r.crop_width, r.crop_height),
                (Some(c.x), Some(c.y), Some(c.width), Some(c.height))
            );
        }
        // One audit row per decided cheque.
        let ids: Vec<String> = decided_ids(&fx.db)
            .into_iter()
            .filter(|i| i.starts_with(name))
            .collect();
        assert_eq!(ids.len() as u64, rows);
    }
}

#[test]
fn bad_rows_become_error_rows_and_the_csv_stays_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, model) = setup(dir.path());
    let w = &fx.writers[0];
    // Awkward but legal file names: a comma, a double quote and a space.
    let odd = fx.dir.join("odd, \"name\" cheque.png");
    std::fs::copy(&w.cheques[0], &odd).unwrap();
    let corrupt = fx.dir.join("corrupt.png");
    std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\nnot really a png").unwrap();
    let quote = |p: &Path| format!("\"{}\"", p.display().to_string().replace('"', "\"\""));
    let manifest = fx.dir.join("bad.csv");
    let lines = [
        "cheque_id,cheque_path,account_id,reference_paths,amount".to_string(),
        format!("ok-1,{},{},,10.00", quote(&w.cheques[0]), w.account),
        format!(
            "missing,{},{},,",
            quote(&fx.dir.join("no-such-file.png")),
            w.account
        ),
        format!("corrupt,{},{},,", quote(&corrupt), w.account),
        format!("unknown-account,{},NO-SUCH-ACCOUNT,,", quote(&w.cheques[0])),
        format!("bad-amount,{},{},,12.345", quote(&w.cheques[0]), w.account),
        format!(
            "missing-ref,{},,{},",
            quote(&w.cheques[0]),
            quote(&fx.dir.join("no-ref.png"))
        ),
        format!("odd-name,{},{},,", quote(&odd), w.account),
        format!("ok-1,{},{},,", quote(&w.cheques[1]), w.account),
        format!(
            "\"id, with \"\"quotes\"\"\",{},{},,",
            quote(&w.cheques[1]),
            w.account
        ),
    ];
    std::fs::write(&manifest, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("bad-results.csv");
    let summary = run_batch(&fx, &model, &manifest, &out);

    let results = read_results(&out).unwrap();
    let by_id: HashMap<(&str, u64), &ResultRow> = results
        .iter()
        .map(|r| ((r.cheque_id.as_str(), r.line), r))
        .collect();
    let get = |id: &str, line: u64| by_id[&(id, line)];
    assert_eq!(results.len(), 9);
    assert_ne!(get("ok-1", 2).decision, RowStatus::Error);
    for (id, line, needle) in [
        ("missing", 3, "no-such-file.png"),
        ("corrupt", 4, "corrupt.png"),
        ("unknown-account", 5, "unknown account NO-SUCH-ACCOUNT"),
        ("bad-amount", 6, "amount"),
        ("missing-ref", 7, "no-ref.png"),
        ("ok-1", 9, "duplicate cheque_id"),
    ] {
        let r = get(id, line);
        assert_eq!(r.decision, RowStatus::Error, "{id}");
        assert!(
            r.error.contains(needle),
            "{id}: {:?} should mention {needle:?}",
            r.error
        );
        assert!(r.probability.is_none() && r.score.is_none());
    }
    assert_ne!(
        get("odd-name", 8).decision,
        RowStatus::Error,
        "{:?}",
        get("odd-name", 8).error
    );
    assert_ne!(get("id, with \"quotes\"", 10).decision, RowStatus::Error);
    assert_eq!(summary.errors, 6);
    assert_eq!(summary.decided(), 3);
    // Only decided cheques reach the audit store; errors are retried by a rerun.
    let ids: HashSet<String> = decided_ids(&fx.db).into_iter().collect();
    assert_eq!(
        ids,
        HashSet::from([
            "ok-1".to_string(),
            "odd-name".to_string(),
            "id, with \"quotes\"".to_string()
        ])
    );

    // The raw file parses back with a strict reader: every record has the header's field count.
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(&out)
        .unwrap();
    assert_eq!(rdr.headers().unwrap().len(), 15);
    assert_eq!(
        rdr.records().collect::<Result<Vec<_>, _>>().unwrap().len(),
        9
    );
}

fn cli_batch(fx: &Fixture, model: &Path, manifest: &Path, out: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--db").arg(&fx.db).arg("--model").arg(model);
    c.args([
        "--device",
        "cpu",
        "--operator",
        fixture::OPERATOR,
        "--pin",
        fixture::PIN,
        "batch",
        "--manifest",
    ])
    .arg(manifest)
    .arg("--out")
    .arg(out);
    c
}

/// Asserts that the store holds each manifest id exactly once.
fn assert_complete_without_duplicates(db: &Path, rows: u64, prefix: &str) {
    let ids: Vec<String> = decided_ids(db)
        .into_iter()
        .filter(|i| i.starts_with(prefix))
        .collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "duplicate decisions in the store");
    let want: HashSet<String> = (0..rows).map(|n| format!("{prefix}{n}")).collect();
    assert_eq!(
        ids.into_iter().collect::<HashSet<_>>(),
        want,
        "decisions missing from the store"
    );
}

#[test]
fn a_limited_run_then_a_rerun_decides_every_cheque_once() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, model) = setup(dir.path());
    let manifest = fx.dir.join("m.csv");
    fixture::write_manifest(&fx, &manifest, 40, "lim-", RefMode::Account).unwrap();
    let out = dir.path().join("r.csv");
    let first = cli_batch(&fx, &model, &manifest, &out)
        .args(["--limit", "13", "--chunk-rows", "4"])
        .output()
        .unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("run the same command again"));
    assert_eq!(decided_ids(&fx.db).len(), 13);
    let summary = dir.path().join("s.json");
    let second = cli_batch(&fx, &model, &manifest, &out)
        .arg("--summary-json")
        .arg(&summary)
        .output()
        .unwrap();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["skipped"], 13);
    assert_eq!(
        s["accept"].as_u64().unwrap()
            + s["refer"].as_u64().unwrap()
            + s["reject"].as_u64().unwrap(),
        27
    );
    assert!(s["peak_rss_mb"].as_f64().unwrap() > 0.0);
    let results = read_results(&out).unwrap();
    assert_eq!(results.iter().filter(|r| r.run == "earlier").count(), 13);
    assert_complete_without_duplicates(&fx.db, 40, "lim-");
}

#[test]
fn two_batches_over_one_manifest_at_once_decide_each_cheque_once() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, model) = setup(dir.path());
    let manifest = fx.dir.join("two.csv");
    fixture::write_manifest(&fx, &manifest, 40, "two-", RefMode::Account).unwrap();
    let runs: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            let summary = dir.path().join(format!("{name}.json"));
            let child = cli_batch(
                &fx,
                &model,
                &manifest,
                &dir.path().join(format!("{name}.csv")),
            )
            .args(["--chunk-rows", "2"])
            .arg("--summary-json")
            .arg(&summary)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
            (child, summary)
        })
        .collect();
    let mut decided = 0;
    let mut skipped = 0;
    for (child, summary) in runs {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
        decided += ["accept", "refer", "reject"]
            .iter()
            .map(|k| s[k].as_u64().unwrap())
            .sum::<u64>();
        skipped += s["skipped"].as_u64().unwrap();
    }
    // Each cheque was decided by exactly one of the runs and skipped by the other.
    assert_complete_without_duplicates(&fx.db, 40, "two-");
    // Every scored cheque's signature is logged beside its row, and only those.
    let c = rusqlite::Connection::open(&fx.db).unwrap();
    let (scored, images): (i64, i64) = c
        .query_row(
            "SELECT (SELECT count(*) FROM ledger WHERE kind = 'decision' AND raw_score IS NOT NULL), \
             (SELECT count(*) FROM decision_signatures)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(scored > 0);
    assert_eq!(scored, images);
    assert_eq!((decided, skipped), (40, 40));
    assert!(
        Store::open_read_only(&fx.db)
            .unwrap()
            .verify_chain()
            .unwrap()
            .is_intact()
    );
}

/// Starts a CLI batch, waits until some decisions are committed, stops it with `signal`, and returns
/// the exit status and stderr.
fn interrupt_midway(
    mut cmd: Command,
    db: &Path,
    signal: &str,
) -> (std::process::ExitStatus, String) {
    let count = || {
        Store::open_read_only(db)
            .ok()
            .and_then(|s| s.count_decisions(&DecisionFilter::default()).ok())
            .unwrap_or(0)
    };
    let before = count();
    let mut child = cmd.stderr(std::process::Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if count() > before || Instant::now() > deadline {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if signal == "KILL" {
        // std's kill() sends SIGKILL on Unix: no handler runs, exactly like a crash.
        let _ = child.kill();
    } else {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_killed_or_interrupted_batch_resumes_without_duplicates_or_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, model) = setup(dir.path());
    for (signal, prefix) in [("KILL", "kill-"), ("INT", "int-")] {
        let rows = 150;
        let manifest = fx.dir.join(format!("{prefix}m.csv"));
        fixture::write_manifest(&fx, &manifest, rows, prefix, RefMode::Paths).unwrap();
        let out = dir.path().join(format!("{prefix}r.csv"));
        let mut cmd = cli_batch(&fx, &model, &manifest, &out);
        cmd.args(["--chunk-rows", "4", "--workers", "1"]);
        let (status, stderr) = interrupt_midway(cmd, &fx.db, signal);
        let before = decided_ids(&fx.db)
            .into_iter()
            .filter(|i| i.starts_with(prefix))
            .count();
        assert!(
            before > 0 && before < rows as usize,
            "{signal}: stopped after {before} of {rows} decisions"
        );
        if signal == "INT" && before < rows as usize {
            assert_eq!(status.code(), Some(130), "{stderr}");
            assert!(
                stderr.contains("Run the same command again to resume"),
                "{stderr}"
            );
        }
        // Whatever was committed is whole chunks of distinct cheques.
        let ids = decided_ids(&fx.db);
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
        let rerun = cli_batch(&fx, &model, &manifest, &out).output().unwrap();
        assert!(
            rerun.status.success(),
            "{}",
            String::from_utf8_lossy(&rerun.stderr)
        );
        assert_complete_without_duplicates(&fx.db, rows, prefix);
        let results = read_results(&out).unwrap();
        assert_eq!(
            results.iter().filter(|r| r.run == "earlier").count(),
            before
        );
    }
}

#[test]
fn the_stop_flag_stops_before_the_next_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, model) = setup(dir.path());
    let manifest = fx.dir.join("stop.csv");
    fixture::write_manifest(&fx, &manifest, 30, "stop-", RefMode::Account).unwrap();
    let mut store = Store::open(&fx.db).unwrap();
    let op = fixture::operator(&mut store).unwrap();
    let v = verifier(&model, &store);
    let opts = BatchOptions::new(&manifest, &dir.path().join("stop-results.csv"));
    let s = countersign::batch::run(&v, &mut store, &op, &opts, &AtomicBool::new(true), &|_| {})
        .unwrap();
    assert_eq!(s.stopped, Some(StopReason::Interrupted));
    assert_eq!(s.decided(), 0);
    assert!(decided_ids(&fx.db).is_empty());
}
