//! `evaluate` and `calibrate` end to end: the real binary, a synthetic labelled dataset written by
//! `countersign synth`, a real (seeded, untrained) network, and a real audit database.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use countersign::imaging::normalise::NormaliseParams;
use countersign::model::SignatureModel;

const BIN: &str = env!("CARGO_BIN_EXE_countersign");

pub(crate) fn cs(db: &Path, model: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--db")
        .arg(db)
        .arg("--model")
        .arg(model)
        .arg("--device")
        .arg("cpu")
        .args(args);
    for var in [
        "COUNTERSIGN_OPERATOR",
        "COUNTERSIGN_PIN",
        "COUNTERSIGN_DB",
        "COUNTERSIGN_MODEL",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run countersign")
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A JSON report written by the binary.
pub(crate) fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report written")).expect("JSON")
}

/// `countersign evaluate` on `data` with `extra` options; it must succeed; its JSON report.
pub(crate) fn evaluate(
    db: &Path,
    model: &Path,
    data: &Path,
    out: &Path,
    extra: &[&str],
) -> serde_json::Value {
    let mut args = vec![
        "evaluate",
        "--data",
        data.to_str().expect("UTF-8 path"),
        "--json",
        out.to_str().expect("UTF-8 path"),
    ];
    args.extend_from_slice(extra);
    let o = cs(db, model, &args, &[]);
    assert!(o.status.success(), "{}", text(&o));
    json(out)
}

/// 5 synthetic writers x 8 genuine + 3 skilled forgeries, and a seeded random model.
pub(crate) fn fixture(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    let o = Command::new(BIN)
        .args([
            "synth",
            "--writers",
            "5",
            "--genuine",
            "8",
            "--forgeries",
            "3",
            "--seed",
            "7",
            "--out",
        ])
        .arg(&data)
        .output()
        .expect("synth");
    assert!(o.status.success(), "{}", text(&o));
    let weights = dir.join("model").join("m.safetensors");
    let mut model =
        SignatureModel::new_seeded(NormaliseParams::default(), tch::Device::Cpu, 3).expect("model");
    model.save(&weights).expect("save");
    (data, weights)
}

#[test]
fn evaluate_reports_the_protocol_counts_and_records_them_in_the_card() {
    let dir = tempfile::tempdir().unwrap();
    let (data, weights) = fixture(dir.path());
    let db = dir.path().join("audit.sqlite3");
    let json = dir.path().join("report.json");
    let o = cs(
        &db,
        &weights,
        &[
            "evaluate",
            "--data",
            data.to_str().unwrap(),
            "--references",
            "5",
            "--json",
            json.to_str().unwrap(),
            "--write-card",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("EER"), "{out}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // Protocol: 5 references per writer, the other 3 genuine and all 3 forgeries questioned.
    assert_eq!(report["counts"]["writers"], 5);
    assert_eq!(report["counts"]["genuine"], 5 * 3);
    assert_eq!(report["counts"]["skilled"], 5 * 3);
    let eer = report["skilled"]["eer"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&eer));
    // The card now carries exactly the report's figures, and the weights still load (hash intact).
    let model =
        SignatureModel::load(&weights, tch::Device::Cpu).expect("card still matches weights");
    let v = model
        .card()
        .validation
        .clone()
        .expect("validation recorded");
    assert_eq!(v.eer_skilled_5ref, Some(eer));
    assert_eq!(v.auc_skilled_5ref, report["skilled"]["auc"].as_f64());
    assert_eq!(v.writers, 5);
    // The same command again prints the same figures: the protocol is deterministic.
    let again = cs(
        &db,
        &weights,
        &["evaluate", "--data", data.to_str().unwrap()],
        &[],
    );
    let line = |s: &str| {
        s.lines()
            .find(|l| l.trim_start().starts_with("skilled"))
            .map(str::to_string)
    };
    assert_eq!(line(&out), line(&text(&again)));
}

#[test]
fn calibrate_chooses_thresholds_and_saves_them_only_for_a_supervisor_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (data, weights) = fixture(dir.path());
    let db = dir.path().join("audit.sqlite3");
    let d = data.to_str().unwrap();
    let result = dir.path().join("cal.json");

    // Without --save nothing is written to the store.
    let o = cs(
        &db,
        &weights,
        &[
            "calibrate",
            "--data",
            d,
            "--target-far",
            "0.05",
            "--json",
            result.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("not saved"));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    let accept = r["choice"]["thresholds"]["accept"].as_f64().unwrap();
    let reject = r["choice"]["thresholds"]["reject"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accept) && reject <= accept, "{r}");
    assert!(
        r["choice"]["far"].as_f64().unwrap() <= 0.05 + 1e-12,
        "FAR on the calibration data exceeds the target"
    );

    // --save needs a reason.
    let o = cs(&db, &weights, &["calibrate", "--data", d, "--save"], &[]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--reason"), "{}", text(&o));

    // Operators: a supervisor and a clerk.
    let o = cs(
        &db,
        &weights,
        &["operator", "add", "sue", "--role", "supervisor"],
        &[("COUNTERSIGN_NEW_PIN", "482100")],
    );
    assert!(o.status.success(), "{}", text(&o));
    let sup = [
        ("COUNTERSIGN_OPERATOR", "sue"),
        ("COUNTERSIGN_PIN", "482100"),
    ];
    let o = cs(
        &db,
        &weights,
        &["operator", "add", "carl", "--role", "clerk"],
        &[sup[0], sup[1], ("COUNTERSIGN_NEW_PIN", "159300")],
    );
    assert!(o.status.success(), "{}", text(&o));

    // A clerk is refused with the documented exit code.
    let clerk = [
        ("COUNTERSIGN_OPERATOR", "carl"),
        ("COUNTERSIGN_PIN", "159300"),
    ];
    let o = cs(
        &db,
        &weights,
        &["calibrate", "--data", d, "--save", "--reason", "try"],
        &clerk,
    );
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));

    // A supervisor saves; the store then holds exactly the chosen thresholds.
    let o = cs(
        &db,
        &weights,
        &[
            "calibrate",
            "--data",
            d,
            "--target-far",
            "0.05",
            "--save",
            "--reason",
            "quarterly calibration",
        ],
        &sup,
    );
    assert!(o.status.success(), "{}", text(&o));
    // Four eyes: calibration and thresholds are two named changes waiting for a second supervisor.
    let store = countersign::store::Store::open_read_only(&db).unwrap();
    assert_eq!(
        store.current_settings().unwrap().version,
        0,
        "nothing changed yet"
    );
    let pending = store.pending_settings_requests().unwrap();
    assert_eq!(pending.len(), 2, "{pending:?}");
    drop(store);
    let o = cs(
        &db,
        &weights,
        &["operator", "add", "sid", "--role", "supervisor"],
        &[sup[0], sup[1], ("COUNTERSIGN_NEW_PIN", "730214")],
    );
    assert!(o.status.success(), "{}", text(&o));
    let sid = [
        ("COUNTERSIGN_OPERATOR", "sid"),
        ("COUNTERSIGN_PIN", "730214"),
    ];
    for r in &pending {
        // The supervisor who asked cannot approve; the second one can.
        let o = cs(
            &db,
            &weights,
            &["settings", "approve", &r.id.to_string()],
            &sup,
        );
        assert_eq!(o.status.code(), Some(6), "{}", text(&o));
        let o = cs(
            &db,
            &weights,
            &["settings", "approve", &r.id.to_string()],
            &sid,
        );
        assert!(o.status.success(), "{}", text(&o));
    }
    let store = countersign::store::Store::open_read_only(&db).unwrap();
    let s = store.current_settings().unwrap();
    assert!(s.version > 0);
    assert_eq!(s.thresholds.accept, accept);
    assert_eq!(s.thresholds.reject, reject);
    assert!(store.verify_chain().unwrap().first_bad.is_none());
    drop(store);

    // Writing the card changes the fallback policy: it needs a reason and a supervisor, and it is
    // recorded in the chain; a refused attempt leaves the card as it was.
    let card_file = countersign::model::card_path(&weights);
    let card_before = std::fs::read(&card_file).unwrap();
    let write_card = |env: &[(&str, &str)], reason: Option<&str>| {
        let mut args = vec![
            "calibrate",
            "--data",
            d,
            "--target-far",
            "0.05",
            "--write-card",
        ];
        if let Some(r) = reason {
            args.extend(["--reason", r]);
        }
        cs(&db, &weights, &args, env)
    };
    let o = write_card(&sup, None);
    assert!(!o.status.success());
    assert!(text(&o).contains("--reason"), "{}", text(&o));
    let o = write_card(&clerk, Some("try"));
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    assert!(text(&o).contains("not changed"), "{}", text(&o));
    assert_eq!(std::fs::read(&card_file).unwrap(), card_before);
    let o = write_card(&sup, Some("card for the new branch"));
    assert!(o.status.success(), "{}", text(&o));
    let card = SignatureModel::load(&weights, tch::Device::Cpu)
        .expect("the card still matches the weights")
        .card()
        .clone();
    assert_eq!(
        card.thresholds.map(|t| (t.accept, t.reject)),
        Some((accept, reject))
    );
    let (operator, reason, payload): (String, String, String) = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT operator, reason, payload FROM ledger WHERE kind = 'model_card'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (operator.as_str(), reason.as_str()),
        ("sue", "card for the new branch")
    );
    let payload: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload["old"]["thresholds"], serde_json::Value::Null);
    assert_eq!(payload["new"]["thresholds"]["accept"], accept);
    let store = countersign::store::Store::open_read_only(&db).unwrap();
    assert!(store.verify_chain().unwrap().is_intact());
}

#[test]
fn evaluate_refuses_unknown_writers_and_unlabelled_folders() {
    let dir = tempfile::tempdir().unwrap();
    let (data, weights) = fixture(dir.path());
    let db = dir.path().join("audit.sqlite3");
    let o = cs(
        &db,
        &weights,
        &[
            "evaluate",
            "--data",
            data.to_str().unwrap(),
            "--writers",
            "nobody",
        ],
        &[],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("nobody"), "{}", text(&o));
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = cs(
        &db,
        &weights,
        &["evaluate", "--data", empty.to_str().unwrap()],
        &[],
    );
    assert!(!o.status.success());
    assert!(!text(&o).contains("panicked"), "{}", text(&o));
}

/// The bundled model's card records what `evaluate` prints on the writers held out of training in
/// every collection (`models/holdout-writers.txt`), per collection and pooled. The collections sit
/// beside the repository (research licence, never copied in), so this variant is ignored unless run
/// with `--ignored` where they are, and fails there if they are missing.
#[test]
#[ignore = "needs the research collections (sigcomp2011-dutch, bhsig260) beside the repository; \
            the same check runs on synthetic collections in a_card_written_by_evaluate_matches_evaluate_per_collection"]
fn default_model_card_matches_evaluate_on_the_held_out_writers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let datasets = root.join("../shared/datasets");
    let data = [
        datasets.join("sigcomp2011-dutch"),
        datasets.join("bhsig260/bengali"),
        datasets.join("bhsig260/hindi"),
    ];
    let missing: Vec<_> = data.iter().filter(|d| !d.is_dir()).collect();
    assert!(
        missing.is_empty(),
        "this check needs the research collections, and these are missing: {missing:?}"
    );
    let weights = root.join("models/countersign-default.safetensors");
    let writers = root.join("models/holdout-writers.txt");
    let dir = tempfile::tempdir().unwrap();
    assert_card_matches_evaluate(dir.path(), &weights, &data, &writers, 4);
}

/// The check above on data CI has: three synthetic collections, the bundled default model (copied,
/// so its card can be written), held-out writers named `COLLECTION:WRITER`. `evaluate --write-card`
/// records the per-collection figures; the same `evaluate` afterwards prints exactly those figures.
#[test]
fn a_card_written_by_evaluate_matches_evaluate_per_collection() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let mut data = Vec::new();
    let mut held_out = String::from("# synthetic held-out writers\n");
    for (name, seed) in [("alpha", "11"), ("beta", "12"), ("gamma", "13")] {
        let out = dir.path().join(name);
        let o = Command::new(BIN)
            .args([
                "synth",
                "--writers",
                "4",
                "--genuine",
                "7",
                "--forgeries",
                "2",
                "--seed",
                seed,
                "--out",
            ])
            .arg(&out)
            .output()
            .expect("synth");
        assert!(o.status.success(), "{}", text(&o));
        let mut writers: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .filter_map(|e| {
                let e = e.unwrap();
                e.path()
                    .is_dir()
                    .then(|| e.file_name().to_string_lossy().into_owned())
            })
            .filter(|w| !w.contains("forg") && !w.starts_with('.'))
            .collect();
        writers.sort();
        assert!(
            writers.len() >= 3,
            "synth wrote writer folders: {writers:?}"
        );
        // Three of the four writers are held out, as the real lists hold out a share of each.
        for w in writers.iter().take(3) {
            held_out.push_str(&format!("{name}:{w}\n"));
        }
        data.push(out);
    }
    let writers = dir.path().join("holdout.txt");
    std::fs::write(&writers, held_out).unwrap();
    let model_dir = dir.path().join("model");
    std::fs::create_dir_all(&model_dir).unwrap();
    let weights = model_dir.join("countersign-default.safetensors");
    std::fs::copy(
        root.join("models/countersign-default.safetensors"),
        &weights,
    )
    .unwrap();
    std::fs::copy(
        root.join("models/countersign-default.json"),
        model_dir.join("countersign-default.json"),
    )
    .unwrap();
    let mut args: Vec<String> = vec!["evaluate".into()];
    for d in &data {
        args.extend(["--data".into(), d.display().to_string()]);
    }
    args.extend([
        "--writers".into(),
        format!("@{}", writers.display()),
        "--write-card".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = cs(&dir.path().join("card.sqlite3"), &weights, &args, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_card_matches_evaluate(dir.path(), &weights, &data, &writers, 4);
}

/// Runs `evaluate` on `data` restricted to the writers in `writers` and checks that the model card
/// beside `weights` records exactly its figures: `rows` rows (each collection and the pool).
fn assert_card_matches_evaluate(
    dir: &Path,
    weights: &Path,
    data: &[PathBuf],
    writers: &Path,
    rows: usize,
) {
    let model = SignatureModel::load(weights, tch::Device::Cpu).expect("the model loads");
    let Some(v) = model.card().validation.clone() else {
        panic!("the model card has no validation figures")
    };
    assert_eq!(
        v.collections.len(),
        rows,
        "the card records each collection and the pool"
    );
    let json = dir.join("r.json");
    let writers = format!("@{}", writers.display());
    let mut args: Vec<&str> = vec!["evaluate"];
    for d in data {
        args.extend(["--data", d.to_str().expect("UTF-8 path")]);
    }
    args.extend([
        "--writers",
        &writers,
        "--json",
        json.to_str().expect("UTF-8 path"),
    ]);
    let o = cs(&dir.join("db.sqlite3"), weights, &args, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report written"))
            .expect("report is JSON");
    let got: Vec<countersign::scoring::CollectionFigures> =
        serde_json::from_value(report["collections"].clone()).expect("collection rows");
    assert_eq!(got.len(), rows);
    // The operating-point columns depend on the store in force; the EERs and counts do not.
    for (card_row, row) in v.collections.iter().zip(&got) {
        assert_eq!(card_row.collection, row.collection);
        assert_eq!(card_row.writers, row.writers);
        assert_eq!(card_row.eer_skilled_5ref, row.eer_skilled_5ref);
        assert_eq!(card_row.eer_skilled_1ref, row.eer_skilled_1ref);
        assert_eq!(card_row.eer_random_5ref, row.eer_random_5ref);
    }
    assert_eq!(report["skilled"]["eer"].as_f64(), v.eer_skilled_5ref);
}
