//! One rule for "bare signature or cheque" ([`countersign::verify::InputKind`]), shared by the GUI,
//! `countersign verify` and `countersign batch`: the same bare-signature scan gets the same score and
//! decision in all three, and, taken as a cheque, the same REFER saying the box is uncertain.
//! Real SQLite, real libtorch, PNG files, the real binary.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use countersign::gui::Slot;
use countersign::scoring::Decision;
use countersign::verify::{InputKind, QuestionedKind};
use egui_kittest::kittest::Queryable;

use crate::gui_app::{Fixture, harness, load, output_text as text, sign_in, wait_for};

/// (decision, raw score, reason) of `countersign verify --json --dry-run` with `args`.
pub(crate) fn cli_verify(f: &Fixture, args: &[&str]) -> (Decision, Option<f64>, String) {
    let mut all = vec!["verify", "--json", "--dry-run"];
    all.extend_from_slice(args);
    let o = f.cli(&all);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let decision = match v["outcome"]["decision"].as_str().unwrap() {
        "ACCEPT" => Decision::Accept,
        "REJECT" => Decision::Reject,
        _ => Decision::Refer,
    };
    (
        decision,
        v["raw_score"].as_f64(),
        v["outcome"]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// (decision, score, reason) of each row of `countersign batch` on a manifest.
fn cli_batch(f: &Fixture, manifest: &Path) -> Vec<(String, Option<f64>, String)> {
    let out = f.path(&format!(
        "{}-results.csv",
        manifest.file_stem().unwrap().to_string_lossy()
    ));
    let o = f.cli(&[
        "batch",
        "--manifest",
        manifest.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    // A batch with an ERROR row ends with its own exit code; the results file says which row.
    assert!(out.is_file(), "{}", text(&o));
    let mut r = csv::Reader::from_path(&out).unwrap();
    let headers = r.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (d, s, why) = (col("decision"), col("score"), col("reason"));
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (
                rec[d].to_string(),
                rec[s].parse::<f64>().ok(),
                rec[why].to_string(),
            )
        })
        .collect()
}

/// A bare signature of 580x400 pixels (as scanned at a counter), and a reference of the same writer.
fn bare_pair(f: &Fixture) -> (PathBuf, PathBuf) {
    let reference = f.signature(4, 0);
    let sig = countersign::synth::dataset::genuine_sample(2026, 4, 1);
    let bare = image::imageops::resize(&sig, 580, 400, image::imageops::FilterType::Triangle);
    let path = f.path("bare-signature.png");
    bare.save(&path).unwrap();
    (reference, path)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-4
}

#[test]
fn a_bare_signature_gets_the_same_decision_in_the_gui_the_cli_and_a_batch() {
    let f = Fixture::new();
    let (reference, bare) = bare_pair(&f);
    let (r, q) = (reference.to_str().unwrap(), bare.to_str().unwrap());
    assert_eq!(InputKind::Auto.resolve(580, 400), QuestionedKind::Signature);

    // The CLI: --image with the default kind (auto), and --kind signature.
    let (cli_decision, cli_score, _) = cli_verify(&f, &["--reference", r, "--image", q]);
    let cli_score = cli_score.expect("a bare signature is scored whole");
    let (d2, s2, _) = cli_verify(&f, &["--reference", r, "--image", q, "--kind", "signature"]);
    assert_eq!((d2, s2), (cli_decision, Some(cli_score)));

    // A batch with no kind column (auto), and one that says `signature`.
    let manifest = f.path("bare.csv");
    std::fs::write(
        &manifest,
        format!("cheque_id,cheque_path,reference_paths\nbare-1,{q},{r}\n"),
    )
    .unwrap();
    let rows = cli_batch(&f, &manifest);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, cli_decision.as_str(), "{rows:?}");
    assert!(
        close(rows[0].1.unwrap(), cli_score),
        "{rows:?} vs {cli_score}"
    );

    // The GUI, with the Verify screen's default choice (auto).
    let mut h = harness(f.app());
    sign_in(&mut h, "sam");
    load(&mut h, Slot::Reference(0), &reference);
    load(&mut h, Slot::Cheque, &bare);
    wait_for(&mut h, "the result", |a| a.verify.outcome.is_some());
    let o = h.state().verify.outcome.as_ref().unwrap().outcome.clone();
    assert_eq!(o.decision, cli_decision);
    assert!(
        o.score.is_some_and(|s| close(s, cli_score)),
        "GUI {:?} vs CLI {cli_score}",
        o.score
    );
    assert!(crate::gui_app::has_text(&h, "Taken as a bare signature"));

    // Taken as a cheque (`--cheque` keeps working, as `--kind cheque`), the finder boxes part of
    // the signature: all three refer and say the box is uncertain.
    let (cd, _, why) = cli_verify(&f, &["--reference", r, "--cheque", q]);
    assert_eq!(cd, Decision::Refer, "{why}");
    assert!(why.contains(countersign::verify::BOX_UNCERTAIN), "{why}");
    let (cd2, _, why2) = cli_verify(&f, &["--reference", r, "--image", q, "--kind", "cheque"]);
    assert_eq!((cd2, &why2), (cd, &why));
    let manifest = f.path("as-cheque.csv");
    std::fs::write(
        &manifest,
        format!("cheque_id,cheque_path,reference_paths,kind\nbare-2,{q},{r},cheque\n"),
    )
    .unwrap();
    let rows = cli_batch(&f, &manifest);
    assert_eq!(rows[0].0, "REFER", "{rows:?}");
    assert!(
        rows[0].2.contains(countersign::verify::BOX_UNCERTAIN),
        "{rows:?}"
    );
    h.get_by_label("a cheque").click();
    h.run_ok();
    assert_eq!(h.state().verify.cheque_kind, InputKind::Cheque);
    wait_for(&mut h, "the result as a cheque", |a| {
        a.verify.outcome.is_some() && a.verify.loading.is_empty()
    });
    let o = h.state().verify.outcome.as_ref().unwrap().outcome.clone();
    assert_eq!(o.decision, Decision::Refer);
    assert!(
        o.reason.contains(countersign::verify::BOX_UNCERTAIN),
        "{}",
        o.reason
    );

    // A contradiction is refused rather than guessed.
    let o = f.cli(&[
        "verify",
        "--dry-run",
        "--reference",
        r,
        "--cheque",
        q,
        "--kind",
        "signature",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("contradicts"), "{}", text(&o));
    // A manifest's unknown kind is that row's error, not a guess.
    let manifest = f.path("bad-kind.csv");
    std::fs::write(
        &manifest,
        format!("cheque_id,cheque_path,reference_paths,kind\nbare-3,{q},{r},photo\n"),
    )
    .unwrap();
    let rows = cli_batch(&f, &manifest);
    assert_eq!(rows[0].0, "ERROR", "{rows:?}");
}
