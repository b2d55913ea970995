//! The verification pipeline end to end, through the library and through the `countersign verify`
//! command: real PNG files, a real SQLite audit store, a real libtorch network.

// Tests unwrap freely (clippy.toml allows it in #[test] functions; these helpers are test code too).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use countersign::batch::bench::fixture::{self, Fixture};
use countersign::imaging::cheque::ChequeLayout;
use countersign::model::SignatureModel;
use countersign::scoring::{Calibration, Decision, Thresholds};
use countersign::store::{DecisionFilter, SettingsChange, Source, Store};
use countersign::verify::{
    ImageSource, NO_POLICY_REASON, PolicySource, Questioned, References, Verifier, VerifyError,
    VerifyRequest, account_references, decision_record, sha256_hex,
};

const BIN: &str = env!("CARGO_BIN_EXE_countersign");

use crate::pipeline_fixture::setup;

fn verifier(model: &Path, store: Option<&Store>) -> Verifier {
    let m = SignatureModel::load(model, tch::Device::Cpu).unwrap();
    Verifier::from_store(
        countersign::verify::shared_model(m),
        ChequeLayout::default(),
        store,
    )
    .unwrap()
}

fn cheque_request(cheque: &Path, references: References, account: Option<&str>) -> VerifyRequest {
    VerifyRequest {
        references,
        questioned: Questioned {
            kind: countersign::verify::InputKind::Cheque,
            image: ImageSource::Path(cheque.to_path_buf()),
        },
        manual_crop: None,
        account: account.map(str::to_string),
        amount_cents: Some(10_000),
        cheque_id: Some("Q-1".into()),
    }
}

#[test]
fn references_as_paths_bytes_or_cached_embeddings_give_the_same_decision() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, model) = setup(dir.path());
    let mut store = Store::open(&fx.db).unwrap();
    let v = verifier(&model, Some(&store));
    let w = &fx.writers[0];
    let cheque = &w.cheques[0];

    let by_path = v
        .verify(&cheque_request(
            cheque,
            References::Images(
                w.references
                    .iter()
                    .map(|p| ImageSource::Path(p.clone()))
                    .collect(),
            ),
            Some(&w.account),
        ))
        .unwrap();
    let by_bytes = v
        .verify(&cheque_request(
            cheque,
            References::Images(
                w.references
                    .iter()
                    .map(|p| ImageSource::Bytes {
                        name: "ref".into(),
                        bytes: std::fs::read(p).unwrap().into(),
                    })
                    .collect(),
            ),
            Some(&w.account),
        ))
        .unwrap();
    // First call computes and caches the embeddings in the store, the second reads the cache.
    let computed = account_references(&mut store, &v, &w.account).unwrap();
    let cached = account_references(&mut store, &v, &w.account).unwrap();
    assert_eq!(
        computed, cached,
        "the store's cache returns what was computed"
    );
    let by_cache = v
        .verify(&cheque_request(
            cheque,
            References::Embeddings(cached.into()),
            Some(&w.account),
        ))
        .unwrap();

    let file_sha = sha256_hex(&std::fs::read(cheque).unwrap());
    let ref_shas: Vec<String> = w
        .references
        .iter()
        .map(|p| sha256_hex(&std::fs::read(p).unwrap()))
        .collect();
    for r in [&by_path, &by_bytes, &by_cache] {
        assert!(r.found, "the fixture's cheques carry a signature");
        assert!(r.crop.is_some());
        assert_eq!(r.questioned_sha256, file_sha);
        assert_eq!(r.reference_sha256s, ref_shas);
        assert_eq!(r.decision(), by_path.decision());
        let (a, b) = (r.raw_score.unwrap(), by_path.raw_score.unwrap());
        assert!((a - b).abs() < 1e-4, "scores differ: {a} vs {b}");
        assert_eq!(
            r.probability.is_some(),
            r.policy_source != PolicySource::BuiltInDefault
        );
        assert!(r.latency_ms >= r.timings.decode_ms + r.timings.embed_ms);
        assert!(
            r.questioned.is_some(),
            "the GUI gets the normalised signature"
        );
    }
    let card = SignatureModel::load(&model, tch::Device::Cpu)
        .unwrap()
        .card()
        .clone();
    let expected = if card.calibration.is_some() && card.thresholds.is_some() {
        PolicySource::ModelCard
    } else {
        PolicySource::BuiltInDefault
    };
    assert_eq!(by_path.policy_source, expected);
}

#[test]
fn a_cheque_without_a_signature_is_referred_and_bad_inputs_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, model) = setup(dir.path());
    let mut store = Store::open(&fx.db).unwrap();
    let v = verifier(&model, Some(&store));
    let w = &fx.writers[0];
    let refs = || {
        References::Images(
            w.references
                .iter()
                .map(|p| ImageSource::Path(p.clone()))
                .collect(),
        )
    };

    let blank = dir.path().join("blank.png");
    image::GrayImage::from_pixel(1200, 540, image::Luma([255]))
        .save(&blank)
        .unwrap();
    let r = v.verify(&cheque_request(&blank, refs(), None)).unwrap();
    assert_eq!(r.decision(), Decision::Refer);
    assert!(!r.found);
    assert!(r.raw_score.is_none() && r.probability.is_none());
    assert!(
        r.outcome.reason.contains("no signature"),
        "{}",
        r.outcome.reason
    );
    // Such a decision is still recorded (as REFER, with its reason).
    let op = fixture::operator(&mut store).unwrap();
    let id = store
        .insert_decision(&op, &decision_record(&r, &op, Source::Cli))
        .unwrap();
    let row = store.decision(id).unwrap().unwrap();
    assert_eq!(row.record.decision, Decision::Refer);
    assert!(row.record.reason.unwrap().contains("no signature"));

    let corrupt = dir.path().join("corrupt.png");
    let mut bytes = std::fs::read(&w.cheques[0]).unwrap();
    bytes.truncate(bytes.len() / 3);
    std::fs::write(&corrupt, bytes).unwrap();
    assert!(matches!(
        v.verify(&cheque_request(&corrupt, refs(), None)),
        Err(VerifyError::Image { .. })
    ));
    let missing = dir.path().join("missing.png");
    assert!(matches!(
        v.verify(&cheque_request(&missing, refs(), None)),
        Err(VerifyError::Image { .. })
    ));
    let blank_ref = References::Images(vec![ImageSource::Path(blank.clone())]);
    assert!(matches!(
        v.verify(&cheque_request(&w.cheques[0], blank_ref, None)),
        Err(VerifyError::ReferenceWithoutSignature { .. })
    ));
    assert!(matches!(
        v.verify(&cheque_request(
            &w.cheques[0],
            References::Images(vec![]),
            None
        )),
        Err(VerifyError::NoReferences { .. })
    ));
    assert!(matches!(
        account_references(&mut store, &v, "NO-SUCH"),
        Err(VerifyError::UnknownAccount(_))
    ));
}

#[test]
fn the_policy_comes_from_settings_then_the_model_card_then_a_refer_everything_default() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, model) = setup(dir.path());
    let w = &fx.writers[0];
    let refs = || {
        References::Images(
            w.references
                .iter()
                .map(|p| ImageSource::Path(p.clone()))
                .collect(),
        )
    };

    // No calibration anywhere: every cheque is referred, and the reason says why.
    tch::manual_seed(3);
    let bare = SignatureModel::new(Default::default(), tch::Device::Cpu);
    let v = Verifier::from_store(
        countersign::verify::shared_model(bare),
        ChequeLayout::default(),
        None,
    )
    .unwrap();
    assert_eq!(v.policy().source, PolicySource::BuiltInDefault);
    let r = v
        .verify(&cheque_request(&w.cheques[0], refs(), None))
        .unwrap();
    assert_eq!(r.decision(), Decision::Refer);
    assert_eq!(r.outcome.reason, NO_POLICY_REASON);
    assert!(r.raw_score.is_some());

    // A supervisor's settings win over the card: accept everything at probability >= 0.
    let mut store = Store::open(&fx.db).unwrap();
    let op = fixture::operator(&mut store).unwrap();
    crate::store_common::change_settings(
        &mut store,
        &op,
        &SettingsChange::Calibration(Calibration { a: 0.0, b: 0.0 }),
        "test: p = 0.5",
    )
    .unwrap();
    crate::store_common::change_settings(
        &mut store,
        &op,
        &SettingsChange::Thresholds(Thresholds {
            accept: 0.4,
            reject: 0.1,
        }),
        "test",
    )
    .unwrap();
    let v = verifier(&model, Some(&store));
    assert_eq!(v.policy().source, PolicySource::Settings);
    let r = v
        .verify(&cheque_request(&w.cheques[1], refs(), None))
        .unwrap();
    assert_eq!(r.probability, Some(0.5));
    assert_eq!(r.decision(), Decision::Accept);
    assert_eq!(
        r.outcome.thresholds_used,
        Thresholds {
            accept: 0.4,
            reject: 0.1
        }
    );
    // An amount rule from the settings applies on top.
    crate::store_common::change_settings(
        &mut store,
        &op,
        &SettingsChange::AmountRule {
            rule: Some(countersign::store::AmountRule {
                above_cents: 5_000,
                t_accept: 0.9,
            }),
        },
        "test",
    )
    .unwrap();
    let v = verifier(&model, Some(&store));
    let r = v
        .verify(&cheque_request(&w.cheques[1], refs(), None))
        .unwrap();
    assert_eq!(
        r.decision(),
        Decision::Refer,
        "10000 cents is above the rule's limit"
    );
    assert_eq!(r.outcome.thresholds_used.accept, 0.9);
}

fn cli(db: &Path, model: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--db")
        .arg(db)
        .arg("--model")
        .arg(model)
        .args(["--device", "cpu"]);
    c.env_remove("COUNTERSIGN_OPERATOR")
        .env_remove("COUNTERSIGN_PIN")
        .env("NO_COLOR", "1");
    c
}

fn decisions(db: &Path) -> Vec<countersign::store::DecisionRow> {
    Store::open_read_only(db)
        .unwrap()
        .query_decisions(&DecisionFilter::default(), 0, 100_000)
        .unwrap()
}

/// The demo assets when present (`make demo`: `assets/demo/w0001/01.png..` genuine references and
/// `assets/demo/cheques/w0001_c01.png` a cheque with a genuine signature), else the fixture's first
/// writer.
fn demo_inputs(fx: &Fixture) -> (Vec<PathBuf>, PathBuf) {
    if let Some(demo) = countersign::paths::demo_assets() {
        let refs: Vec<PathBuf> = ["01.png", "02.png"]
            .iter()
            .map(|n| demo.join("w0001").join(n))
            .filter(|p| p.is_file())
            .collect();
        let cheque = demo.join("cheques").join("w0001_c01.png");
        if !refs.is_empty() && cheque.is_file() {
            return (refs, cheque);
        }
    }
    (
        fx.writers[0].references.clone(),
        fx.writers[0].cheques[0].clone(),
    )
}

#[test]
fn cli_verify_end_to_end_records_one_audit_row_and_dry_run_records_none() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, model) = setup(dir.path());
    let (refs, cheque) = demo_inputs(&fx);
    let mut cmd = cli(&fx.db, &model);
    cmd.args([
        "--operator",
        fixture::OPERATOR,
        "--pin",
        fixture::PIN,
        "verify",
        "--json",
        "--amount",
        "123.45",
    ]);
    for r in &refs {
        cmd.arg("--reference").arg(r);
    }
    let out = cmd
        .arg("--cheque")
        .arg(&cheque)
        .args(["--cheque-id", "CLI-1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let decision = v["decision"].as_str().unwrap().to_string();
    assert!(["ACCEPT", "REFER", "REJECT"].contains(&decision.as_str()));
    assert_eq!(v["recorded"], true);
    assert_eq!(v["amount_cents"], 12_345);
    assert_eq!(
        v["questioned_sha256"].as_str().unwrap(),
        sha256_hex(&std::fs::read(&cheque).unwrap())
    );
    let rows = decisions(&fx.db);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].record.cheque_id.as_deref(), Some("CLI-1"));
    assert_eq!(rows[0].record.decision.as_str(), decision);
    assert_eq!(rows[0].record.operator, fixture::OPERATOR);
    assert_eq!(rows[0].record.source, Source::Cli);

    // The text report, as a dry run: the same decision, and nothing recorded.
    let mut cmd = cli(&fx.db, &model);
    cmd.args(["verify", "--dry-run"]);
    for r in &refs {
        cmd.arg("--reference").arg(r);
    }
    let out = cmd.arg("--cheque").arg(&cheque).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("decision     {decision}")), "{text}");
    assert!(text.contains("DRY RUN: nothing was recorded"), "{text}");
    assert!(!text.contains('\x1b'), "no colour when not a terminal");
    assert_eq!(decisions(&fx.db).len(), 1);
}

#[test]
fn cli_verify_with_an_account_uses_its_enrolled_references() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, model) = setup(dir.path());
    let w = &fx.writers[1];
    let out = cli(&fx.db, &model)
        .args([
            "--operator",
            fixture::OPERATOR,
            "--pin",
            fixture::PIN,
            "verify",
            "--json",
            "--account",
            &w.account,
        ])
        .arg("--cheque")
        .arg(&w.cheques[0])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<String> = v["reference_sha256s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = w
        .references
        .iter()
        .map(|p| sha256_hex(&std::fs::read(p).unwrap()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        decisions(&fx.db)[0].record.account.as_deref(),
        Some(w.account.as_str())
    );

    // An unknown account is a clear error, and nothing is recorded.
    let out = cli(&fx.db, &model)
        .args([
            "--operator",
            fixture::OPERATOR,
            "--pin",
            fixture::PIN,
            "verify",
            "--account",
            "NOPE",
        ])
        .arg("--cheque")
        .arg(&w.cheques[0])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown account NOPE"));
    assert_eq!(decisions(&fx.db).len(), 1);
}

#[test]
fn cli_verify_needs_an_operator_and_says_how_to_create_one() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, model) = setup(dir.path());
    let w = &fx.writers[0];
    let empty_db = dir.path().join("empty.sqlite3");
    let out = cli(&empty_db, &model)
        .args(["verify", "--reference"])
        .arg(&w.references[0])
        .arg("--cheque")
        .arg(&w.cheques[0])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("countersign operator add"));
    // With operators but no credentials, the message names the options.
    let out = cli(&fx.db, &model)
        .args(["verify", "--reference"])
        .arg(&w.references[0])
        .arg("--cheque")
        .arg(&w.cheques[0])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--operator"));
    // A wrong PIN is refused before any work.
    let out = cli(&fx.db, &model)
        .args([
            "--operator",
            fixture::OPERATOR,
            "--pin",
            "wrong-pin",
            "verify",
            "--reference",
        ])
        .arg(&w.references[0])
        .arg("--cheque")
        .arg(&w.cheques[0])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(decisions(&fx.db).is_empty());
}

/// The clerk's screen and the command line are two front ends of one decision: for the same cheque,
/// references, account and amount, the GUI's backend and `countersign verify` log the same score,
/// probability, thresholds and decision, and an amount rule applies in both.
#[test]
fn the_gui_decides_exactly_as_the_cli_with_and_without_an_amount_rule() {
    use countersign::gui::backend::{Backend, BackendConfig, FinalAction};

    let dir = tempfile::tempdir().unwrap();
    let (fx, model) = setup(dir.path());
    let w = &fx.writers[0];
    let cheque = &w.cheques[0];

    // Calibration and thresholds a supervisor set, and an amount rule: above 500.00, accept only at
    // probability >= 0.9999, which this match cannot reach. sigmoid(2 s + 2) accepts at 0.05 any raw
    // cosine score and any z-normalised score above -2.5 (the bundled model's stage), so the genuine
    // cheque is accepted either way.
    {
        let mut store = Store::open(&fx.db).unwrap();
        let op = fixture::operator(&mut store).unwrap();
        let changes = [
            SettingsChange::Calibration(Calibration { a: 2.0, b: 2.0 }),
            SettingsChange::Thresholds(Thresholds {
                accept: 0.05,
                reject: 0.01,
            }),
            SettingsChange::AmountRule {
                rule: Some(countersign::store::AmountRule {
                    above_cents: 50_000,
                    t_accept: 0.9999,
                }),
            },
        ];
        for c in &changes {
            crate::store_common::change_settings(&mut store, &op, c, "test").unwrap();
        }
    }

    let mut gui = Backend::new(BackendConfig {
        db_path: fx.db.clone(),
        model_path: Some(model.clone()),
        device: countersign::device::DeviceChoice::Cpu,
    });
    gui.sign_in(fixture::OPERATOR, fixture::PIN).unwrap();
    for (i, r) in w.references.iter().enumerate() {
        gui.load_image(countersign::gui::Slot::Reference(i), r)
            .unwrap();
    }
    gui.load_image(countersign::gui::Slot::Cheque, cheque)
        .unwrap();

    for amount in [None, Some("1200.00")] {
        let cents = amount.map(|a| countersign::verify::parse_amount(a).unwrap());
        let outcome = gui.verify(None, Some(w.account.clone()), cents).unwrap();
        let gui_row = gui.record(&outcome, &FinalAction::Confirm).unwrap();

        let mut cmd = cli(&fx.db, &model);
        cmd.args([
            "--operator",
            fixture::OPERATOR,
            "--pin",
            fixture::PIN,
            "verify",
            "--account",
            &w.account,
            "--cheque",
        ])
        .arg(cheque);
        // Its own cheque id: the GUI's row already decided this image under the file's name, and a
        // repeat would show that decision instead of recording a new one.
        cmd.args(["--cheque-id", &format!("cli-{}", amount.unwrap_or("none"))]);
        for r in &w.references {
            cmd.arg("--reference").arg(r);
        }
        if let Some(a) = amount {
            cmd.args(["--amount", a]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let rows = decisions(&fx.db);
        let gui_logged = rows.iter().find(|r| r.id == gui_row.id).unwrap();
        let cli_logged = rows.iter().max_by_key(|r| r.id).unwrap();
        assert_eq!(gui_logged.record.source, Source::Gui);
        assert_eq!(cli_logged.record.source, Source::Cli);
        let (g, c) = (
            gui_logged.record.raw_score.unwrap(),
            cli_logged.record.raw_score.unwrap(),
        );
        assert!(
            (g - c).abs() < 1e-6,
            "GUI score {g} and CLI score {c} differ"
        );
        let (g, c) = (
            gui_logged.record.probability.unwrap(),
            cli_logged.record.probability.unwrap(),
        );
        assert!(
            (g - c).abs() < 1e-6,
            "GUI probability {g} and CLI {c} differ"
        );
        assert_eq!(
            (gui_logged.record.t_accept, gui_logged.record.t_reject),
            (cli_logged.record.t_accept, cli_logged.record.t_reject)
        );
        assert_eq!(gui_logged.record.decision, cli_logged.record.decision);
        assert_eq!(gui_logged.record.amount_cents, cents);
        assert_eq!(cli_logged.record.amount_cents, cents);
        assert_eq!(
            gui_logged.record.account.as_deref(),
            Some(w.account.as_str())
        );
        assert_eq!(
            gui_logged.record.cheque_sha256,
            cli_logged.record.cheque_sha256
        );
        // Both logged the signature they scored, and it is the same image to the byte.
        let store = Store::open_read_only(&fx.db).unwrap();
        let gui_png = store.decision_signature(gui_logged.id).unwrap().unwrap();
        let cli_png = store.decision_signature(cli_logged.id).unwrap().unwrap();
        assert_eq!(gui_png, cli_png);
        let img = image::load_from_memory(&cli_png).unwrap();
        // The normalised signature at the model's own input size.
        let card = SignatureModel::load(&model, tch::Device::Cpu).unwrap();
        let card = card.card();
        assert_eq!(
            (img.width(), img.height()),
            (card.input_width, card.input_height)
        );

        match cents {
            None => {
                assert_eq!(gui_logged.record.t_accept, 0.05);
                assert!(
                    outcome.probability.is_some_and(|p| p >= 0.05),
                    "the calibration above accepts this match (probability {:?})",
                    outcome.probability
                );
                assert_eq!(outcome.decision, Decision::Accept);
            }
            Some(_) => {
                assert_eq!(
                    gui_logged.record.t_accept, 0.9999,
                    "the amount rule applies"
                );
                assert_eq!(outcome.decision, Decision::Refer);
            }
        }
    }
}
