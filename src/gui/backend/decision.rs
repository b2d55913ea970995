//! Scoring the loaded cheque against the loaded references with the policy in force, and recording
//! what the clerk did with the result, through the same code as `countersign verify` and `batch`.

use std::path::Path;
use std::sync::Arc;

use super::Backend;
use super::advice::{UserError, imaging_error, model_error, store_error};
use super::raster::{normalised_gray, overlay};
use super::session::Decoded;
use super::view::{DecisionRow, FinalAction, Gray, PixelBox, Rgba, Slot, VerifyOutcome};

/// Why a cheque without a signature box is referred.
const NO_SIGNATURE_REASON: &str = "No signature was found on the cheque, so it is referred. Draw the box around the signature by hand to score it.";

/// Why a cheque without a found box is referred, from the shared step of `verify` and `batch`
/// ([`crate::verify::prepare_questioned`]), when that step says the box is uncertain
/// ([`crate::verify::BOX_UNCERTAIN`]); `None` for any other reason.
fn box_uncertain_reason(gray: &image::GrayImage, sha256: &str) -> Option<String> {
    let params = crate::verify::PrepareParams {
        limits: crate::imaging::decode::DecodeLimits::default(),
        layout: crate::imaging::cheque::ChequeLayout::default(),
        normalise: crate::imaging::normalise::NormaliseParams::default(),
    };
    let questioned = crate::verify::Questioned {
        kind: crate::verify::InputKind::Cheque,
        image: crate::verify::ImageSource::Decoded {
            name: "cheque".into(),
            image: Arc::new(gray.clone()),
            sha256: Some(sha256.to_string()),
        },
    };
    let reason = crate::verify::prepare_questioned(&params, &questioned, None)
        .ok()?
        .not_found_reason?;
    reason
        .starts_with(crate::verify::BOX_UNCERTAIN)
        .then(|| format!("{reason}. Draw the box around the whole signature by hand to score it."))
}

impl Backend {
    /// Normalises and embeds a slot's image with the current model, caching both by model id.
    fn embed_slot(
        &mut self,
        verifier: &crate::verify::Verifier,
        slot: Slot,
        crop: Option<PixelBox>,
    ) -> Result<Option<crate::scoring::Embedding>, UserError> {
        let model_id = verifier.model_id().to_string();
        let params = &verifier.params().normalise;
        let kind = self.cheque_kind;
        let Some(d) = self.images.get_mut(&slot) else {
            return Ok(None);
        };
        let cacheable = slot != Slot::Cheque;
        if cacheable
            && let Some((id, e)) = &d.embedding
            && *id == model_id
        {
            return Ok(Some(e.clone()));
        }
        // A cheque with a box (found, or drawn by hand) goes through the one decision path's step,
        // `verify::prepare_questioned` with the box as its crop: what `countersign verify --crop` does
        // with the same image, kind and box.
        let normalised = match (slot, crop.or(d.detected.map(|(b, _)| b))) {
            (Slot::Cheque, Some(b)) => {
                let questioned = crate::verify::Questioned {
                    kind,
                    image: crate::verify::ImageSource::Decoded {
                        name: d.source.clone(),
                        image: Arc::new(d.gray.clone()),
                        sha256: Some(d.sha256.clone()),
                    },
                };
                let bbox = crate::imaging::cheque::CropBox {
                    x: b.x,
                    y: b.y,
                    width: b.width,
                    height: b.height,
                };
                match crate::verify::prepare_questioned(verifier.params(), &questioned, Some(bbox))
                {
                    Ok(p) => match p.normalised {
                        Some(n) => Ok(n),
                        None => return Ok(None),
                    },
                    Err(crate::verify::VerifyError::Image { source, .. }) => Err(source),
                    Err(e) => {
                        return Err(UserError::new(
                            format!("The cheque could not be prepared: {e}"),
                            "Load the cheque again.",
                        ));
                    }
                }
            }
            // A cheque without a box is not scored: the decision is REFER until the clerk draws one.
            (Slot::Cheque, None) if !d.bare => return Ok(None),
            _ => crate::imaging::normalise::normalise(&d.gray, params),
        };
        let n = match normalised {
            Ok(n) => n,
            Err(crate::imaging::ImagingError::NoSignature(_)) if slot == Slot::Cheque => {
                return Ok(None);
            }
            Err(e) => {
                return Err(imaging_error(
                    &format!("{} could not be normalised", slot.label()),
                    &e,
                ));
            }
        };
        let e = verifier
            .embed(std::slice::from_ref(&n))
            .map_err(|e| match e {
                crate::verify::VerifyError::Model(e) => model_error("The network failed", &e),
                e => UserError::new(format!("The network failed: {e}"), "Try again."),
            })?
            .into_iter()
            .next()
            .ok_or_else(|| UserError::new("The network returned no embedding.", "Try again."))?;
        let d = self
            .images
            .get_mut(&slot)
            .ok_or_else(|| UserError::new("The image was unloaded.", "Load it again."))?;
        d.normalised = Some((model_id.clone(), n));
        d.embedding = Some((model_id, e.clone()));
        Ok(Some(e))
    }

    /// Scores the loaded cheque against the loaded references and decides, with the policy in force
    /// (calibration, thresholds, amount rule, per-account overrides) exactly as the CLI does.
    pub fn verify(
        &mut self,
        crop: Option<PixelBox>,
        account: Option<String>,
        amount_cents: Option<i64>,
    ) -> Result<VerifyOutcome, UserError> {
        if !self.images.contains_key(&Slot::Cheque) {
            return Err(UserError::new(
                "No cheque is loaded.",
                "Load the cheque scan.",
            ));
        }
        let mut ref_slots: Vec<Slot> = self
            .images
            .keys()
            .copied()
            .filter(|s| matches!(s, Slot::Reference(_)))
            .collect();
        ref_slots.sort_by_key(|s| match s {
            Slot::Reference(i) => *i,
            Slot::Cheque => usize::MAX,
        });
        if ref_slots.is_empty() {
            return Err(UserError::new(
                "No reference signature is loaded.",
                "Load a reference, or use an account's references.",
            ));
        }
        // The verification service and policy of `countersign verify` and `batch`.
        let verifier = self.verifier()?;
        let mut refs = Vec::new();
        for s in &ref_slots {
            if let Some(embedding) = self.embed_slot(&verifier, *s, None)? {
                let sha256 = self
                    .images
                    .get(s)
                    .map(|d| d.sha256.clone())
                    .unwrap_or_default();
                refs.push(crate::verify::ReferenceEmbedding { embedding, sha256 });
            }
        }
        let questioned = self.embed_slot(&verifier, Slot::Cheque, crop)?;
        let not_found = self.images.get(&Slot::Cheque).and_then(|d| {
            (questioned.is_none() && crop.is_none() && !d.bare)
                .then(|| box_uncertain_reason(&d.gray, &d.sha256))?
        });
        let scored = verifier
            .decide(
                questioned.as_ref(),
                Some(not_found.as_deref().unwrap_or(NO_SIGNATURE_REASON)),
                &refs,
                account.as_deref(),
                amount_cents,
            )
            .map_err(|e| {
                UserError::new(
                    format!("Scoring failed: {e}"),
                    "Load other references and try again.",
                )
            })?;
        // Missing values stay missing: never a NaN or a stand-in 0 that a screen or row could show.
        let score = scored.raw_score.filter(|s| s.is_finite());
        let probability = scored.probability.filter(|p| p.is_finite());
        let mut outcome = scored.outcome;
        // Only when there really is no calibration: a probability can also be missing because the
        // model's per-account stage needs more references, and the policy's reason says so.
        if questioned.is_some() && probability.is_none() && verifier.policy().calibration.is_none()
        {
            outcome.reason = "No calibration is configured (neither saved by a supervisor nor in the model card), so \
                              every cheque is referred. A supervisor can calibrate on the Calibrate screen."
                .into();
        }
        let model_id = verifier.model_id().to_string();
        let norm = |d: Option<&Decoded>| {
            d.and_then(|d| d.normalised.as_ref())
                .map(|(_, n)| n.clone())
        };
        let q_norm = if questioned.is_some() {
            norm(self.images.get(&Slot::Cheque))
        } else {
            None
        };
        let r_norms: Vec<_> = ref_slots
            .iter()
            .filter_map(|s| norm(self.images.get(s)))
            .collect();
        let blank = Gray {
            width: 0,
            height: 0,
            pixels: Vec::new(),
        };
        let overlay_img = match (&q_norm, r_norms.first()) {
            (Some(q), Some(r)) => overlay(q, r),
            _ => Rgba {
                width: 0,
                height: 0,
                pixels: Vec::new(),
            },
        };
        let cheque = self.images.get(&Slot::Cheque);
        Ok(VerifyOutcome {
            score,
            probability,
            amount_cents,
            decision: outcome.decision,
            thresholds: outcome.thresholds_used,
            model_id,
            account,
            crop: crop.or(cheque.and_then(|c| c.detected.map(|(b, _)| b))),
            signature_found: questioned.is_some(),
            questioned: q_norm.as_ref().map(normalised_gray).unwrap_or(blank),
            references: r_norms.iter().map(normalised_gray).collect(),
            overlay: overlay_img,
            latency_ms: 0.0,
            reason: outcome.reason.clone(),
            hand_drawn: crop.is_some(),
            input_kind: self.cheque_kind,
            taken_as: if cheque.is_some_and(|c| c.bare) {
                crate::verify::QuestionedKind::Signature
            } else {
                crate::verify::QuestionedKind::Cheque
            },
            cheque_sha256: cheque.map(|c| c.sha256.clone()).unwrap_or_default(),
            reference_sha256: ref_slots
                .iter()
                .filter_map(|s| self.images.get(s).map(|d| d.sha256.clone()))
                .collect(),
        })
    }

    pub fn record(
        &mut self,
        outcome: &VerifyOutcome,
        action: &FinalAction,
    ) -> Result<DecisionRow, UserError> {
        let op = self.require_operator()?;
        // Only the store's active model decides a recorded decision (its card carries the policy);
        // weights named with --model are a supervisor's exception.
        if self.model_choice().is_some_and(|c| !c.is_active())
            && op.role() != crate::store::Role::Supervisor
        {
            return Err(UserError::new(
                "This window was started with --model, which is not the store's active model: only a supervisor \
                 may record decisions made with it.",
                "Start Countersign without --model (the active model decides), or ask a supervisor to activate \
                 this model.",
            ));
        }
        let device = match self.config.device.resolve() {
            Ok(d) => crate::device::describe(d),
            Err(_) => "unknown".into(),
        };
        let (final_action, reason, final_decision) = match action {
            FinalAction::Confirm => (crate::store::FinalAction::Confirm, None, None),
            FinalAction::Abandoned => (crate::store::FinalAction::Abandoned, None, None),
            FinalAction::Override { decision, reason } => {
                if reason.trim().is_empty() {
                    return Err(UserError::new(
                        "An override needs a reason.",
                        "Write why the decision is changed.",
                    ));
                }
                // The one override rule, as the store applies it, said in the clerk's terms.
                crate::store::override_rule(op.role(), outcome.decision, *decision)
                    .map_err(|e| store_error("The override was not logged", e))?;
                (
                    crate::store::FinalAction::Override,
                    Some(reason.trim().to_string()),
                    Some(*decision),
                )
            }
        };
        let cheque_id = self.images.get(&Slot::Cheque).map(|d| d.source.clone());
        let nd = crate::store::DecisionRecord {
            time: time::OffsetDateTime::now_utc(),
            operator: op.name().to_string(),
            account: outcome.account.clone(),
            // The id names the file and its image, as `countersign verify` does: one id never names
            // two images, and every attempt on the same cheque (abandoned, redrawn) keeps its id.
            cheque_id: cheque_id.map(|p| {
                let name = Path::new(&p)
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or(p);
                crate::verify::default_cheque_id(&name, &outcome.cheque_sha256)
            }),
            amount_cents: outcome.amount_cents,
            cheque_sha256: outcome.cheque_sha256.clone(),
            reference_sha256s: outcome.reference_sha256.clone(),
            crop: outcome.crop.map(|b| crate::store::CropBox {
                x: b.x,
                y: b.y,
                w: b.width,
                h: b.height,
            }),
            raw_score: outcome.score,
            probability: outcome.probability,
            t_accept: outcome.thresholds.accept,
            t_reject: outcome.thresholds.reject,
            decision: outcome.decision,
            final_action,
            reason,
            final_decision,
            hand_drawn_box: outcome.hand_drawn,
            image_kind: Some(crate::verify::image_kind(
                outcome.input_kind,
                outcome.taken_as,
            )),
            model_id: outcome.model_id.clone(),
            device,
            latency_ms: outcome.latency_ms,
            source: crate::store::Source::Gui,
            signature_png: self
                .images
                .get(&Slot::Cheque)
                .and_then(|d| d.normalised.as_ref())
                .filter(|_| outcome.signature_found)
                .and_then(|(_, n)| n.to_png()),
        };
        let store = self.store()?;
        let id = store
            .insert_decision(&op, &nd)
            .map_err(|e| store_error("The decision was not logged", e))?;
        let row = store
            .decision(id)
            .map_err(|e| store_error("The logged decision could not be read back", e))?
            .ok_or_else(|| {
                UserError::new(
                    format!("Decision {id} was logged but cannot be found."),
                    "Check the Audit screen.",
                )
            })?;
        Ok(row)
    }
}
