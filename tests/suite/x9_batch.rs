//! `countersign batch --x9`: synthetic image cash letters (ASCII and EBCDIC) verified end to end
//! against a real audit database and real libtorch, matched with the generator's truth; the same
//! cheque decided the same way from an X9 file and from a PNG; item errors, resuming, the return
//! list and a rejected file through the real binary.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;

use countersign::batch::bench::fixture;
use countersign::batch::output::{RowStatus, read_results};
use countersign::batch::{BatchOptions, BatchSummary};
use countersign::imaging::cheque::ChequeLayout;
use countersign::model::SignatureModel;
use countersign::store::{DecisionFilter, Source, Store};
use countersign::verify::{ImageSource, Questioned, References, Verifier, VerifyRequest};
use countersign::x9::synth::{X9SynthOptions, X9Truth, generate, read_truth};

const BIN: &str = env!("CARGO_BIN_EXE_countersign");

struct Files {
    ascii: PathBuf,
    ebcdic: PathBuf,
    model: PathBuf,
    accounts: Vec<(String, Vec<PathBuf>)>,
}

/// Two synthetic cash letters of the same 8 cheques (ASCII with length prefixes; EBCDIC one record
/// per line), generated once per test run.
fn files() -> &'static Files {
    static FILES: OnceLock<Files> = OnceLock::new();
    FILES.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("x9-batch");
        let _ = std::fs::remove_dir_all(&root);
        let opts = X9SynthOptions {
            cheques: 8,
            writers: 2,
            references: 3,
            seed: 7,
            ..X9SynthOptions::default()
        };
        let ascii = root.join("ascii.x937");
        let s = generate(&ascii, &opts).unwrap();
        let ebcdic = root.join("ebcdic.x937");
        generate(
            &ebcdic,
            &X9SynthOptions {
                encoding: countersign::x9::Encoding::Ebcdic,
                length_prefixed: false,
                ..opts
            },
        )
        .unwrap();
        let model = countersign::paths::default_model().unwrap_or_else(|| {
            countersign::batch::bench::random_model(&root.join("model")).unwrap()
        });
        Files {
            ascii,
            ebcdic,
            model,
            accounts: s.accounts,
        }
    })
}

/// A fresh audit database with the generated accounts enrolled.
fn store_in(dir: &Path) -> PathBuf {
    let db = dir.join("audit.sqlite3");
    let mut store = fixture::open_store(&db).unwrap();
    let op = fixture::operator(&mut store).unwrap();
    for (account, refs) in &files().accounts {
        fixture::enrol(&mut store, &op, account, refs).unwrap();
    }
    db
}

fn verifier(store: &Store) -> Verifier {
    let m = SignatureModel::load(&files().model, tch::Device::Cpu).unwrap();
    Verifier::from_store(
        countersign::verify::shared_model(m),
        ChequeLayout::default(),
        Some(store),
    )
    .unwrap()
}

fn run(db: &Path, file: &Path, out: &Path, limit: Option<u64>) -> BatchSummary {
    let mut store = Store::open(db).unwrap();
    let op = fixture::operator(&mut store).unwrap();
    let v = verifier(&store);
    let mut opts = BatchOptions::x9(file, out);
    opts.chunk_rows = 3;
    opts.workers = Some(2);
    opts.limit = limit;
    countersign::batch::run(&v, &mut store, &op, &opts, &AtomicBool::new(false), &|_| {}).unwrap()
}

fn truth(file: &Path) -> Vec<X9Truth> {
    read_truth(&countersign::x9::synth::truth_path(file)).unwrap()
}

#[test]
fn ascii_and_ebcdic_files_round_trip_to_audit_rows_matching_the_truth() {
    let f = files();
    let mut scores: HashMap<(String, String), Option<f64>> = HashMap::new();
    for file in [&f.ascii, &f.ebcdic] {
        let dir = tempfile::tempdir().unwrap();
        let db = store_in(dir.path());
        let out = dir.path().join("results.csv");
        let summary = run(&db, file, &out, None);
        let x9 = summary.x9.clone().unwrap();
        let truth = truth(file);
        assert_eq!(x9.items, truth.len() as u64);
        assert_eq!(
            x9.total_cents,
            truth.iter().map(|t| t.amount_cents).sum::<u64>()
        );
        assert_eq!(summary.errors, 0, "{:?}", read_results(&out).unwrap());
        assert_eq!(summary.decided(), truth.len() as u64);

        let store = Store::open(&db).unwrap();
        let rows = store
            .query_decisions(&DecisionFilter::default(), 0, 1000)
            .unwrap();
        assert_eq!(rows.len(), truth.len());
        for t in &truth {
            let id = countersign::x9::batch::cheque_id(&x9.sha256, &t.sequence);
            let row = rows
                .iter()
                .find(|r| r.record.cheque_id.as_deref() == Some(id.as_str()))
                .unwrap_or_else(|| panic!("no audit row for item {}", t.sequence));
            assert_eq!(
                countersign::x9::batch::sequence_of(&id),
                Some(t.sequence.as_str())
            );
            assert_eq!(row.record.account.as_deref(), Some(t.account.as_str()));
            assert_eq!(row.record.amount_cents, Some(t.amount_cents as i64));
            assert_eq!(row.record.source, Source::Batch);
            scores.insert(
                (
                    file.display().to_string(),
                    format!("{}:{}", t.sequence, t.genuine),
                ),
                row.record.raw_score,
            );
        }
        // The file itself is in the audit chain, with its SHA-256, before its items.
        let conn = rusqlite::Connection::open(&db).unwrap();
        let (id, payload): (i64, String) = conn
            .query_row(
                "SELECT id, payload FROM ledger WHERE kind = 'x9_file'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(v["sha256"], x9.sha256.as_str());
        assert_eq!(v["items"], truth.len() as u64);
        assert!(rows.iter().all(|r| r.id > id));
        assert!(store.verify_chain().unwrap().is_intact());

        // Genuine cheques score above the forged ones of the same accounts, on average.
        let mean = |genuine: bool| {
            let v: Vec<f64> = truth
                .iter()
                .filter(|t| t.genuine == genuine)
                .filter_map(|t| {
                    scores[&(
                        file.display().to_string(),
                        format!("{}:{}", t.sequence, t.genuine),
                    )]
                })
                .collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        // The truth labels travel with the items: half genuine, half skilled forgeries, and every
        // item's signature was found and scored (no REFER for want of a signature).
        assert_eq!(truth.iter().filter(|t| t.genuine).count(), truth.len() / 2);
        assert!(
            rows.iter().all(|r| r.record.raw_score.is_some()),
            "{rows:?}"
        );
        // How well the model separates them on 4 + 4 bitonal cheques is a figure, not a property.
        eprintln!(
            "{}: mean score genuine {:.3}, forged {:.3}",
            file.display(),
            mean(true),
            mean(false)
        );
    }
    // Both encodings carry the same cheques: the same scores, item by item.
    let a: Vec<_> = truth(&f.ascii)
        .iter()
        .map(|t| {
            scores[&(
                f.ascii.display().to_string(),
                format!("{}:{}", t.sequence, t.genuine),
            )]
        })
        .collect();
    let e: Vec<_> = truth(&f.ebcdic)
        .iter()
        .map(|t| {
            scores[&(
                f.ebcdic.display().to_string(),
                format!("{}:{}", t.sequence, t.genuine),
            )]
        })
        .collect();
    assert_eq!(a, e);
}

#[test]
fn the_same_cheque_decides_the_same_from_an_x9_file_and_from_a_png() {
    let f = files();
    let dir = tempfile::tempdir().unwrap();
    let db = store_in(dir.path());
    let out = dir.path().join("results.csv");
    let summary = run(&db, &f.ascii, &out, None);
    let sha = summary.x9.unwrap().sha256;
    let results = read_results(&out).unwrap();

    // Each item's front image, taken out of the file and written as a PNG, verified one by one.
    let mut items = countersign::x9::open(&f.ascii).unwrap();
    let mut store = Store::open(&db).unwrap();
    let v = verifier(&store);
    let mut n = 0;
    while let Some(item) = items.next_item().unwrap() {
        let img = countersign::imaging::decode::decode_bytes(
            item.front.as_deref().unwrap(),
            "front",
            &Default::default(),
        )
        .unwrap();
        let png = dir.path().join(format!("{}.png", item.sequence));
        img.save(&png).unwrap();
        let account = item.on_us.split('/').next().unwrap().to_string();
        let refs = countersign::verify::account_references(&mut store, &v, &account).unwrap();
        let single = v
            .verify(&VerifyRequest {
                references: References::Embeddings(refs.into()),
                questioned: Questioned {
                    kind: countersign::verify::InputKind::Cheque,
                    image: ImageSource::Path(png),
                },
                manual_crop: None,
                account: Some(account.clone()),
                amount_cents: Some(item.amount_cents),
                cheque_id: None,
            })
            .unwrap();
        let id = countersign::x9::batch::cheque_id(&sha, &item.sequence);
        let row = results.iter().find(|r| r.cheque_id == id).unwrap();
        assert_eq!(row.decision, RowStatus::from(single.decision()), "{id}");
        assert_eq!(row.reason, single.outcome.reason);
        match (row.score, single.raw_score) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-5, "{id}: {a} vs {b}"),
            (a, b) => assert_eq!(a, b),
        }
        assert_eq!(row.crop_x.zip(row.crop_y), single.crop.map(|c| (c.x, c.y)));
        n += 1;
    }
    assert_eq!(n, 8);
}

#[test]
fn a_bad_item_is_an_error_with_its_sequence_number_and_a_rerun_resumes() {
    let f = files();
    let dir = tempfile::tempdir().unwrap();
    let db = store_in(dir.path());
    // Corrupt the second item's front image (its TIFF header, not the lengths): that item is an
    // ERROR; the file still adds up, so the others are decided.
    let mut bytes = std::fs::read(&f.ascii).unwrap();
    let mut p = 0;
    let mut fronts = 0;
    while p + 6 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[p..p + 4].try_into().unwrap()) as usize;
        if &bytes[p + 4..p + 6] == b"52" {
            fronts += 1;
            if fronts == 3 {
                bytes[p + 4 + 117..p + 4 + 117 + 4].copy_from_slice(b"XXXX");
            }
        }
        p += 4 + len;
    }
    let file = dir.path().join("bad-image.x937");
    std::fs::write(&file, &bytes).unwrap();
    let out = dir.path().join("results.csv");
    let first = run(&db, &file, &out, Some(4));
    assert_eq!(first.decided() + first.errors, 4);
    let results = read_results(&out).unwrap();
    let bad = results
        .iter()
        .find(|r| r.decision == RowStatus::Error)
        .unwrap();
    assert!(bad.cheque_id.ends_with("000000000001001"), "{bad:?}");
    assert!(bad.error.contains("000000000001001"), "{}", bad.error);

    // The rerun skips what was decided and decides the rest; the ERROR item is tried again.
    let second = run(&db, &file, &out, None);
    assert_eq!(second.skipped, 3);
    assert_eq!(second.errors, 1);
    assert_eq!(second.decided(), 4);
    let store = Store::open(&db).unwrap();
    let ids: Vec<String> = store
        .query_decisions(&DecisionFilter::default(), 0, 100)
        .unwrap()
        .into_iter()
        .filter_map(|r| r.record.cheque_id)
        .collect();
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(ids.len(), 7);
    assert_eq!(unique.len(), 7);
}

#[test]
fn the_cli_writes_results_and_a_return_list_and_refuses_a_file_that_does_not_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("night.x937");
    let synth = assert_cmd::Command::new(BIN)
        .args(["synth", "--x9"])
        .arg(&file)
        .args([
            "--cheques",
            "4",
            "--writers",
            "2",
            "--references",
            "2",
            "--ebcdic",
        ])
        .output()
        .unwrap();
    assert!(synth.status.success(), "{synth:?}");
    assert!(String::from_utf8_lossy(&synth.stdout).contains("EBCDIC"));
    let truth = truth(&file);
    assert_eq!(truth.len(), 4);

    let db = dir.path().join("audit.sqlite3");
    let mut store = fixture::open_store(&db).unwrap();
    let op = fixture::operator(&mut store).unwrap();
    let refs = countersign::x9::synth::refs_dir(&file);
    for t in &truth {
        let mine: Vec<PathBuf> = std::fs::read_dir(&refs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&t.account)
            })
            .collect();
        fixture::enrol(&mut store, &op, &t.account, &mine).unwrap();
    }
    drop(store);
    let out = dir.path().join("results.csv");
    let model = files().model.clone();
    let batch = |file: &Path| {
        assert_cmd::Command::new(BIN)
            .args(["--device", "cpu", "--db"])
            .arg(&db)
            .arg("--model")
            .arg(&model)
            .args(["--operator", fixture::OPERATOR, "--pin", fixture::PIN])
            .args(["batch", "--x9"])
            .arg(file)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    let ok = batch(&file);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{ok:?}");
    assert!(
        stdout.contains("X9 file") && stdout.contains("EBCDIC"),
        "{stdout}"
    );
    let results = read_results(&out).unwrap();
    assert_eq!(results.len(), 4);
    let returns_path = countersign::x9::batch::default_returns(&out);
    let mut r = csv::Reader::from_path(&returns_path).unwrap();
    let returns: Vec<countersign::x9::batch::ReturnRow> =
        r.deserialize().collect::<Result<_, _>>().unwrap();
    let to_return: Vec<&String> = results
        .iter()
        .filter(|r| matches!(r.decision, RowStatus::Refer | RowStatus::Reject))
        .map(|r| &r.cheque_id)
        .collect();
    assert_eq!(
        returns.iter().map(|r| &r.cheque_id).collect::<Vec<_>>(),
        to_return
    );
    for r in &returns {
        let t = truth.iter().find(|t| t.sequence == r.sequence).unwrap();
        assert_eq!(r.amount_cents, t.amount_cents as i64);
        assert!(!r.reason.is_empty());
    }

    // A file whose control total is wrong: exit status 3, named reason, nothing decided.
    let mut bytes = std::fs::read(&file).unwrap();
    // EBCDIC with length prefixes: the file control (99, EBCDIC F9 F9) is the last 80 bytes.
    let pos = bytes.len() - 80;
    assert_eq!(&bytes[pos..pos + 2], &[0xF9, 0xF9]);
    // Its file total amount, positions 25-40: make the last digit wrong.
    let last = pos + 39;
    bytes[last] = if bytes[last] == 0xF1 { 0xF2 } else { 0xF1 };
    let bad = dir.path().join("bad-total.x937");
    std::fs::write(&bad, &bytes).unwrap();
    let before = Store::open(&db)
        .unwrap()
        .count_decisions(&DecisionFilter::default())
        .unwrap();
    let refused = batch(&bad);
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("file total amount") && stderr.contains("nothing in it was verified"),
        "{stderr}"
    );
    let after = Store::open(&db)
        .unwrap()
        .count_decisions(&DecisionFilter::default())
        .unwrap();
    assert_eq!(before, after);
}

/// A larger measurement (run with `--ignored --nocapture`): how the model separates genuine from
/// forged items of generated cash letters, 48 items, 4 accounts.
#[test]
#[ignore = "a measurement, not a property; about a minute"]
fn measure_genuine_forged_separation_on_bitonal_items() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.x937");
    let opts = X9SynthOptions {
        cheques: 48,
        writers: 4,
        references: 5,
        seed: 21,
        ..X9SynthOptions::default()
    };
    let s = generate(&file, &opts).unwrap();
    let db = dir.path().join("audit.sqlite3");
    let mut store = fixture::open_store(&db).unwrap();
    let op = fixture::operator(&mut store).unwrap();
    for (account, refs) in &s.accounts {
        fixture::enrol(&mut store, &op, account, refs).unwrap();
    }
    drop(store);
    let out = dir.path().join("r.csv");
    let summary = run(&db, &file, &out, None);
    let sha = summary.x9.clone().unwrap().sha256;
    let results = read_results(&out).unwrap();
    let (mut g, mut f) = (Vec::new(), Vec::new());
    for t in truth(&file) {
        let id = countersign::x9::batch::cheque_id(&sha, &t.sequence);
        let r = results.iter().find(|r| r.cheque_id == id).unwrap();
        if let Some(sc) = r.score {
            if t.genuine { g.push(sc) } else { f.push(sc) }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let wins = g
        .iter()
        .map(|a| f.iter().filter(|b| a > *b).count())
        .sum::<usize>() as f64
        / (g.len() * f.len()).max(1) as f64;
    eprintln!(
        "48 bitonal items: genuine mean {:.3} (n {}), forged mean {:.3} (n {}), AUC {:.3}; {} referred unscored",
        mean(&g),
        g.len(),
        mean(&f),
        f.len(),
        wins,
        48 - g.len() - f.len()
    );
    assert_eq!(results.len(), 48);
    assert_eq!(summary.errors, 0);
}
