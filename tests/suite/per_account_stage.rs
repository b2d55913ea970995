//! The per-account stage as a bank's account sees it (issue 13): reference z-norm fitted on the
//! account's own enrolled references, under one model. What the stage is fitted on is the account's
//! reference embeddings, cached in the audit store per model and chained to the ledger; these tests
//! check, end to end through the store and real libtorch, that a model never uses what another model
//! fitted, that enrolment and retirement refit the stage, and that the decision is the calibration of
//! exactly that fit. (That the GUI and the library decide identically with the stage is checked in
//! `accuracy_protocol`; an edited cached vector is refused in `audit_integrity`.)

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use countersign::batch::bench::fixture;
use countersign::imaging::cheque::ChequeLayout;
use countersign::imaging::normalise::NormaliseParams;
use countersign::model::SignatureModel;
use countersign::scoring::{
    Calibration, Embedding, ReferenceStats, ScoreNormalisation, Thresholds, normalise_score,
};
use countersign::verify::{
    ImageSource, InputKind, Questioned, References, Verifier, VerifyRequest, account_references,
    shared_model,
};

const CALIBRATION: Calibration = Calibration { a: 1.5, b: 0.5 };

/// A model with the per-account stage, a calibration and thresholds in its card; `seed` picks the weights.
fn staged_model(dir: &Path, seed: u64) -> PathBuf {
    let weights = dir.join(format!("staged-{seed}.safetensors"));
    let mut m =
        SignatureModel::new_seeded(NormaliseParams::default(), tch::Device::Cpu, seed).unwrap();
    m.card_mut()
        .set_score_normalisation(ScoreNormalisation::ReferenceZnorm);
    m.card_mut().calibration = Some(CALIBRATION);
    m.card_mut().thresholds = Some(Thresholds {
        accept: 0.9,
        reject: 0.3,
    });
    m.save(&weights).unwrap();
    weights
}

fn verifier(weights: &Path) -> Verifier {
    let model = SignatureModel::load(weights, tch::Device::Cpu).unwrap();
    Verifier::from_store(shared_model(model), ChequeLayout::default(), None).unwrap()
}

/// The probability the stage must give: the calibration of the raw score z-normalised by the
/// statistics of exactly these reference embeddings.
fn expected_probability(raw: f64, refs: &[Embedding]) -> f64 {
    CALIBRATION.probability(normalise_score(
        raw,
        &ReferenceStats::from_refs(refs).unwrap(),
    ))
}

fn verify_cheque(
    v: &Verifier,
    refs: &[countersign::verify::ReferenceEmbedding],
    cheque: &Path,
) -> (f64, f64) {
    let r = v
        .verify(&VerifyRequest {
            references: References::Embeddings(Arc::from(refs.to_vec())),
            questioned: Questioned {
                kind: InputKind::Cheque,
                image: ImageSource::Path(cheque.to_path_buf()),
            },
            manual_crop: None,
            account: None,
            amount_cents: None,
            cheque_id: None,
        })
        .unwrap();
    (r.raw_score.unwrap(), r.probability.unwrap())
}

fn vectors(refs: &[countersign::verify::ReferenceEmbedding]) -> Vec<Embedding> {
    refs.iter().map(|r| r.embedding.clone()).collect()
}

#[test]
fn the_stage_is_fitted_per_model_and_refitted_when_references_change() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, _) = crate::pipeline_fixture::setup(dir.path());
    let (a, b) = (
        verifier(&staged_model(dir.path(), 1)),
        verifier(&staged_model(dir.path(), 2)),
    );
    assert_ne!(a.model_id(), b.model_id());
    let mut store = fixture::open_store(&fx.db).unwrap();
    let supervisor = fixture::operator(&mut store).unwrap();
    let w = &fx.writers[0];
    let cheque = &w.cheques[0];

    // Model A: the stage is fitted on the account's three references as A embeds them, and those
    // vectors are what the store keeps for A.
    let refs_a = account_references(&mut store, &a, &w.account).unwrap();
    assert_eq!(refs_a.len(), 3);
    let (raw_a, p_a) = verify_cheque(&a, &refs_a, cheque);
    assert!((p_a - expected_probability(raw_a, &vectors(&refs_a))).abs() < 1e-12);
    let enrolled = store.references(&w.account, false).unwrap();
    assert_eq!(
        store
            .cached_embedding(enrolled[0].id, a.model_id())
            .unwrap(),
        Some(refs_a[0].embedding.clone())
    );

    // Model B never sees A's fit: it embeds the references itself, and its stage differs.
    assert_eq!(
        store
            .cached_embedding(enrolled[0].id, b.model_id())
            .unwrap(),
        None
    );
    let refs_b = account_references(&mut store, &b, &w.account).unwrap();
    assert_ne!(vectors(&refs_b), vectors(&refs_a));
    let (raw_b, p_b) = verify_cheque(&b, &refs_b, cheque);
    assert!((p_b - expected_probability(raw_b, &vectors(&refs_b))).abs() < 1e-12);
    assert!(
        (p_b - p_a).abs() > 1e-6,
        "two models gave the same probability"
    );
    // ... and A's fit is untouched by B's.
    assert_eq!(
        vectors(&account_references(&mut store, &a, &w.account).unwrap()),
        vectors(&refs_a)
    );

    // Enrolment refits the stage: a fourth reference joins the statistics.
    let extra = std::fs::read(&fx.writers[1].references[0]).unwrap();
    let added = store
        .enrol_reference(&supervisor, &w.account, &extra)
        .unwrap();
    let refs_4 = account_references(&mut store, &a, &w.account).unwrap();
    assert_eq!(refs_4.len(), 4);
    let (raw_4, p_4) = verify_cheque(&a, &refs_4, cheque);
    assert!((p_4 - expected_probability(raw_4, &vectors(&refs_4))).abs() < 1e-12);
    assert!(
        (p_4 - p_a).abs() > 1e-6,
        "enrolment did not change the stage"
    );

    // Retiring that reference refits it back to exactly the three-reference stage.
    store
        .retire_reference(&supervisor, added.id, "enrolled on the wrong account")
        .unwrap();
    let refs_3 = account_references(&mut store, &a, &w.account).unwrap();
    assert_eq!(vectors(&refs_3), vectors(&refs_a));
    assert_eq!(verify_cheque(&a, &refs_3, cheque), (raw_a, p_a));
}
