//! The bridge between a verification and the audit store: enrolled references with their cached
//! embeddings in, one audit row out.

use rayon::prelude::*;

use super::{ImageSource, ReferenceEmbedding, VerifyError, VerifyResult, prepare_reference};
use crate::store::{DecisionRecord, Operator, Source, Store};

/// The embeddings of an account's enrolled references under the verifier's model: taken from the
/// store's cache, or computed once (decoded and normalised in parallel, embedded together) and cached.
/// Every reference is checked against the audit chain first (its image re-hashed, its enrolment and
/// retirement read from the chain) and every cached vector against the digest chained with it, so
/// nothing edited outside Countersign reaches a decision.
pub fn account_references(
    store: &mut Store,
    verifier: &super::Verifier,
    account: &str,
) -> Result<Vec<ReferenceEmbedding>, VerifyError> {
    if store.account(account)?.is_none() {
        return Err(VerifyError::UnknownAccount(account.to_string()));
    }
    let checked = store.checked_references(account)?;
    let (refs, images): (Vec<_>, Vec<_>) = checked.into_iter().unzip();
    if refs.is_empty() {
        return Err(VerifyError::NoReferences {
            account: Some(account.to_string()),
        });
    }
    let model_id = verifier.model_id().to_string();
    let mut out: Vec<Option<ReferenceEmbedding>> = Vec::with_capacity(refs.len());
    let mut missing = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        match store.cached_embedding(r.id, &model_id)? {
            Some(embedding) => out.push(Some(ReferenceEmbedding {
                embedding,
                sha256: r.sha256.clone(),
            })),
            None => {
                out.push(None);
                missing.push(i);
            }
        }
    }
    if !missing.is_empty() {
        let params = verifier.params();
        let sources = missing
            .iter()
            .map(|&i| ImageSource::Bytes {
                name: format!("reference #{} of account {account}", refs[i].id),
                bytes: images[i].clone().into(),
            })
            .collect::<Vec<_>>();
        let prepared = sources
            .par_iter()
            .map(|source| prepare_reference(params, source))
            .collect::<Result<Vec<_>, _>>()?;
        let embs = verifier.embed_references(&prepared)?;
        for (&i, e) in missing.iter().zip(embs) {
            store.cache_embedding(refs[i].id, &model_id, &e.embedding)?;
            out[i] = Some(ReferenceEmbedding {
                embedding: e.embedding,
                sha256: refs[i].sha256.clone(),
            });
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// What the operator chose the questioned image to be and what it was taken as, for the audit row
/// (the same for the GUI, `verify` and `batch`).
pub fn image_kind(
    chosen: super::InputKind,
    resolved: super::QuestionedKind,
) -> crate::store::ImageKind {
    crate::store::ImageKind::new(chosen.as_str(), super::InputKind::from(resolved).as_str())
}

/// The audit row for a verification, as decided by the pipeline. The final action is pending: a
/// clerk's confirmation or override is recorded later, as its own row, by the GUI.
///
/// When no signature was found there is no score, and without a calibration no probability: the row
/// records NULL for them (never a stand-in 0), with the decision REFER and the reason saying why.
pub fn decision_record(
    result: &VerifyResult,
    operator: &Operator,
    source: Source,
) -> DecisionRecord {
    DecisionRecord {
        time: time::OffsetDateTime::now_utc(),
        operator: operator.name().to_string(),
        account: result.account.clone(),
        cheque_id: result.cheque_id.clone(),
        amount_cents: result.amount_cents,
        cheque_sha256: result.questioned_sha256.clone(),
        reference_sha256s: result.reference_sha256s.clone(),
        crop: result.crop.map(|c| crate::store::CropBox {
            x: c.x,
            y: c.y,
            w: c.width,
            h: c.height,
        }),
        raw_score: result.raw_score.filter(|s| s.is_finite()),
        probability: result.probability.filter(|p| p.is_finite()),
        t_accept: result.outcome.thresholds_used.accept,
        t_reject: result.outcome.thresholds_used.reject,
        decision: result.outcome.decision,
        final_action: crate::store::FinalAction::Pending,
        reason: Some(result.outcome.reason.clone()),
        final_decision: None,
        hand_drawn_box: false,
        image_kind: Some(image_kind(result.input_kind, result.questioned_kind)),
        model_id: result.model_id.clone(),
        device: result.device.clone(),
        latency_ms: result.latency_ms,
        source,
        signature_png: result
            .questioned
            .as_ref()
            .filter(|_| result.found)
            .and_then(|n| n.to_png()),
    }
}
