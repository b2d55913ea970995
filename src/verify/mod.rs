//! One verification pipeline, shared by `countersign verify`, `countersign batch` and the GUI.
//!
//! ```text
//! questioned image --load+hash+decode--> find the signature on the cheque, crop, normalise
//!                  --embed--> score against the references' embeddings (cached with the references)
//!                  --calibrate--> probability --policy--> ACCEPT / REFER / REJECT (+ reason)
//! ```
//!
//! The stages are public functions so that a batch can run the same code in a different shape
//! (decoding many cheques in parallel, embedding 64 at a time) and still reach exactly the result that
//! [`Verifier::verify`] gives for one cheque:
//!
//! - [`prepare_questioned`] and [`prepare_reference`] are pure CPU work over [`PrepareParams`] (plain
//!   data, `Send + Sync`), safe to run on many threads;
//! - [`Verifier::embed`] runs the network (libtorch tensors are not `Sync`, so the model stays on the
//!   thread that owns the verifier);
//! - [`Verifier::decide`] turns embeddings into a score, a probability and a decision.
//!
//! A cheque on which no signature is found is not an error: it is REFERred with that reason. Errors
//! ([`VerifyError`]) are inputs that cannot be used at all: an unreadable or corrupt file, a reference
//! image without a signature, a model failure.
//!
//! Where the policy comes from, in order: the store's current settings (set by a supervisor with
//! `countersign calibrate`), else the model card's calibration and thresholds, else a conservative
//! built-in default that REFERs every cheque and says so in the reason ([`PolicySource`]).

pub mod audit;
pub mod input;
pub mod kind;

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::imaging::cheque::{ChequeLayout, CropBox};
use crate::imaging::decode::DecodeLimits;
use crate::imaging::normalise::NormaliseParams;
use crate::imaging::{ImagingError, NormalisedSignature};
use crate::model::{ModelError, SignatureModel};
use crate::scoring::{
    Aggregation, Calibration, Decision, DecisionOutcome, DecisionPolicy, Embedding,
    ScoreNormalisation, ScoringError, Thresholds,
};

pub use audit::{account_references, decision_record, image_kind};
pub use input::{ImageSource, load, sha256_hex};
pub use kind::InputKind;

/// The reason's opening words when the finder's box covers only part of the ink (see
/// [`crate::imaging::cheque::SignatureFind::box_uncertain`]); the cheque is referred.
pub const BOX_UNCERTAIN: &str = "signature box uncertain";

/// The largest number of signatures given to the network in one forward pass. Larger batches gain
/// little on a CPU and cost memory on a GPU.
pub const EMBED_BATCH: usize = 64;

/// The flag put at the start of a decision's reason when a supervisor verified an enrolled account
/// against reference images given by hand (on the command line, in a batch manifest) instead of its
/// enrolled references.
pub const ADHOC_REFERENCES_FLAG: &str = "AD-HOC REFERENCES";

/// Everything that stops a verification from producing a decision.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the {what} image cannot be used: {source}")]
    Image {
        what: String,
        #[source]
        source: ImagingError,
    },
    #[error("the {what} has no usable signature: {source}")]
    ReferenceWithoutSignature {
        what: String,
        #[source]
        source: ImagingError,
    },
    #[error("no reference signatures were given{}", account.as_ref().map(|a| format!(" (account {a} has none enrolled)")).unwrap_or_default())]
    NoReferences { account: Option<String> },
    #[error(
        "unknown account {0}: it is not in the audit database (enrol it with its reference signatures first)"
    )]
    UnknownAccount(String),
    #[error("the network failed: {0}")]
    Model(#[from] ModelError),
    #[error("scoring failed: {0}")]
    Scoring(#[from] ScoringError),
    #[error("the audit store failed: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("the network returned {got} embeddings for {expected} signatures")]
    EmbeddingCount { expected: usize, got: usize },
}

/// What the questioned image shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QuestionedKind {
    /// A whole cheque scan: the signature is found on it (or cut out by the manual crop box).
    Cheque,
    /// An image of the signature alone.
    Signature,
}

/// The questioned image and what the operator says it shows ([`InputKind::resolve`] decides
/// `Auto` once the image is decoded).
#[derive(Clone, Debug)]
pub struct Questioned {
    pub kind: InputKind,
    pub image: ImageSource,
}

/// A reference signature already embedded by the current model, with the hash of its image.
#[derive(Clone, Debug, PartialEq)]
pub struct ReferenceEmbedding {
    pub embedding: Embedding,
    pub sha256: String,
}

/// Where the references of a request come from.
#[derive(Clone, Debug)]
pub enum References {
    /// Reference signature images, normalised and embedded during the verification.
    Images(Vec<ImageSource>),
    /// Embeddings computed before (the store's cache, the GUI's, a batch's).
    Embeddings(Arc<[ReferenceEmbedding]>),
}

/// One verification request.
#[derive(Clone, Debug)]
pub struct VerifyRequest {
    pub references: References,
    pub questioned: Questioned,
    /// A crop box drawn by the clerk; replaces the automatic search on a cheque.
    pub manual_crop: Option<CropBox>,
    pub account: Option<String>,
    pub amount_cents: Option<i64>,
    pub cheque_id: Option<String>,
}

/// Milliseconds spent in each stage of one verification.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct StageTimings {
    /// Reading, hashing and decoding every image.
    pub decode_ms: f64,
    /// Finding the signature on the cheque, cropping and normalising (references too).
    pub find_normalise_ms: f64,
    /// The network's forward pass(es).
    pub embed_ms: f64,
    /// Similarity, calibration and the decision rule.
    pub score_ms: f64,
}

impl StageTimings {
    /// Adds another verification's timings (for batch totals).
    pub fn add(&mut self, other: &StageTimings) {
        self.decode_ms += other.decode_ms;
        self.find_normalise_ms += other.find_normalise_ms;
        self.embed_ms += other.embed_ms;
        self.score_ms += other.score_ms;
    }
}

/// Where the decision policy and the calibration came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicySource {
    /// The store's current settings, set by a supervisor.
    Settings,
    /// The model card's calibration and thresholds.
    ModelCard,
    /// Nothing was configured: every cheque is REFERred.
    BuiltInDefault,
}

impl PolicySource {
    pub fn describe(self) -> &'static str {
        match self {
            PolicySource::Settings => "the supervisor's settings in the audit store",
            PolicySource::ModelCard => "the model card",
            PolicySource::BuiltInDefault => "the built-in default (refer everything)",
        }
    }
}

/// The reason given for every decision under the built-in default policy.
pub const NO_POLICY_REASON: &str = "no calibration and thresholds are configured (neither in the audit store's \
settings nor in the model card), so every cheque is referred to a supervisor; a supervisor sets them with \
`countersign calibrate`";

/// The result of one verification: everything the clerk sees and the audit row records.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyResult {
    pub cheque_id: Option<String>,
    pub account: Option<String>,
    pub amount_cents: Option<i64>,
    /// The aggregated similarity to the references; `None` when no signature was found.
    pub raw_score: Option<f64>,
    /// The calibrated probability that the signature is genuine; `None` when no signature was found
    /// or no calibration is configured.
    pub probability: Option<f64>,
    pub outcome: DecisionOutcome,
    /// Where the signature was found (or the manual crop), in cheque pixels; `None` for a bare
    /// signature image or when nothing was found.
    pub crop: Option<CropBox>,
    /// How sure the signature finder was, in [0, 1] (1 for a manual crop or a bare signature).
    pub find_confidence: f64,
    /// Whether a signature was found.
    pub found: bool,
    /// The questioned signature as the network saw it (for the GUI); `None` when nothing was found.
    #[serde(skip)]
    pub questioned: Option<NormalisedSignature>,
    pub questioned_kind: QuestionedKind,
    /// What the operator said the questioned image is (`auto` unless chosen).
    pub input_kind: InputKind,
    pub questioned_sha256: String,
    pub reference_sha256s: Vec<String>,
    pub policy_source: PolicySource,
    pub model_id: String,
    pub device: String,
    pub timings: StageTimings,
    /// Wall time of the whole verification, in milliseconds.
    pub latency_ms: f64,
}

impl VerifyResult {
    pub fn decision(&self) -> Decision {
        self.outcome.decision
    }
}

/// The CPU side of the pipeline: decode limits, the cheque layout and the model's normalisation.
/// Plain data, so batches share it across threads.
#[derive(Clone, Debug)]
pub struct PrepareParams {
    pub limits: DecodeLimits,
    pub layout: ChequeLayout,
    pub normalise: NormaliseParams,
}

/// A questioned image, decoded and normalised, ready for the network.
#[derive(Clone, Debug)]
pub struct PreparedQuestioned {
    /// What the image was taken as, by [`InputKind::resolve`] from `input_kind`.
    pub kind: QuestionedKind,
    /// What the operator said the image is (recorded with the decision).
    pub input_kind: InputKind,
    pub sha256: String,
    /// `None` when no signature was found (or after a batch moved the pixels to the network).
    pub normalised: Option<NormalisedSignature>,
    /// Whether a signature was found.
    pub found: bool,
    pub crop: Option<CropBox>,
    pub find_confidence: f64,
    /// Why nothing was found, when nothing was.
    pub not_found_reason: Option<String>,
    pub decode_ms: f64,
    pub find_normalise_ms: f64,
}

/// A reference image, decoded and normalised.
#[derive(Clone, Debug)]
pub struct PreparedReference {
    pub sha256: String,
    pub normalised: NormalisedSignature,
    pub decode_ms: f64,
    pub find_normalise_ms: f64,
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Decodes the questioned image and finds, crops and normalises its signature. A missing signature
/// is not an error (the result says why); an unusable image is.
pub fn prepare_questioned(
    params: &PrepareParams,
    questioned: &Questioned,
    manual_crop: Option<CropBox>,
) -> Result<PreparedQuestioned, VerifyError> {
    let what = match questioned.kind {
        InputKind::Cheque => "cheque",
        InputKind::Signature => "questioned signature",
        InputKind::Auto => "questioned",
    };
    let t0 = Instant::now();
    let loaded = load(&questioned.image, &params.limits).map_err(|source| VerifyError::Image {
        what: what.to_string(),
        source,
    })?;
    let (width, height) = loaded.image.dimensions();
    let kind = questioned.kind.resolve(width, height);
    let what = match kind {
        QuestionedKind::Cheque => "cheque",
        QuestionedKind::Signature => "questioned signature",
    };
    let decode_ms = ms_since(t0);
    let t1 = Instant::now();
    let mut out = PreparedQuestioned {
        kind,
        input_kind: questioned.kind,
        sha256: loaded.sha256,
        normalised: None,
        found: false,
        crop: None,
        find_confidence: 0.0,
        not_found_reason: None,
        decode_ms,
        find_normalise_ms: 0.0,
    };
    match kind {
        QuestionedKind::Cheque => {
            match crate::imaging::cheque::prepare_questioned(
                &loaded.image,
                &params.layout,
                manual_crop,
                &params.normalise,
            ) {
                Ok(p) => {
                    out.crop = Some(p.bbox);
                    out.find_confidence = f64::from(p.confidence);
                    if p.found {
                        out.normalised = Some(p.normalised);
                    } else if p.box_uncertain {
                        out.not_found_reason = Some(format!(
                            "{BOX_UNCERTAIN}: the signature's ink runs over the edge of the cheque's signature zone, \
                             so the box at ({}, {}) {}x{} holds only part of it; a supervisor can mark the \
                             signature by hand (--crop)",
                            p.bbox.x, p.bbox.y, p.bbox.width, p.bbox.height
                        ));
                    } else {
                        out.not_found_reason = Some(format!(
                            "no signature was found on the cheque: the best candidate's confidence {:.2} is below \
                             the layout's minimum {:.2}; a supervisor can mark the signature by hand (--crop)",
                            p.confidence, params.layout.min_confidence
                        ));
                    }
                }
                Err(ImagingError::NoSignature(detail)) => {
                    out.not_found_reason =
                        Some(format!("no signature was found on the cheque ({detail})"));
                }
                Err(source) => {
                    return Err(VerifyError::Image {
                        what: what.to_string(),
                        source,
                    });
                }
            }
        }
        QuestionedKind::Signature => {
            let image = match manual_crop {
                Some(b) => Arc::new(crate::imaging::cheque::crop(&loaded.image, b).map_err(
                    |source| VerifyError::Image {
                        what: what.to_string(),
                        source,
                    },
                )?),
                None => Arc::clone(&loaded.image),
            };
            out.crop = manual_crop;
            match crate::imaging::normalise::normalise(&image, &params.normalise) {
                Ok(n) => {
                    out.normalised = Some(n);
                    out.find_confidence = 1.0;
                }
                Err(ImagingError::NoSignature(detail)) => {
                    out.not_found_reason =
                        Some(format!("no signature was found in the image ({detail})"));
                }
                Err(source) => {
                    return Err(VerifyError::Image {
                        what: what.to_string(),
                        source,
                    });
                }
            }
        }
    }
    out.found = out.normalised.is_some();
    out.find_normalise_ms = ms_since(t1);
    Ok(out)
}

/// Decodes and normalises one reference signature. A reference without a signature is an error:
/// comparing against it would be meaningless.
pub fn prepare_reference(
    params: &PrepareParams,
    source: &ImageSource,
) -> Result<PreparedReference, VerifyError> {
    let what = || format!("reference {}", source.name());
    let t0 = Instant::now();
    let loaded = load(source, &params.limits).map_err(|source| VerifyError::Image {
        what: what(),
        source,
    })?;
    let decode_ms = ms_since(t0);
    let t1 = Instant::now();
    let normalised = crate::imaging::normalise::normalise(&loaded.image, &params.normalise)
        .map_err(|e| match e {
            e @ ImagingError::NoSignature(_) => VerifyError::ReferenceWithoutSignature {
                what: what(),
                source: e,
            },
            e => VerifyError::Image {
                what: what(),
                source: e,
            },
        })?;
    Ok(PreparedReference {
        sha256: loaded.sha256,
        normalised,
        decode_ms,
        find_normalise_ms: ms_since(t1),
    })
}

/// The decision policy in force and where it came from.
#[derive(Clone, Debug)]
pub struct Policy {
    pub decision: DecisionPolicy,
    /// The per-account stage the calibration was fitted with: always the model card's.
    pub normalisation: ScoreNormalisation,
    /// `None` means no probability can be computed: every cheque is REFERred.
    pub calibration: Option<Calibration>,
    pub aggregation: Aggregation,
    pub source: PolicySource,
}

impl Policy {
    /// The conservative default: nothing accepted, nothing rejected, every cheque REFERred.
    pub fn built_in_default() -> Self {
        Self {
            decision: DecisionPolicy {
                thresholds: Thresholds {
                    accept: 1.0,
                    reject: 0.0,
                },
                amount_rule: None,
                per_account: Default::default(),
            },
            normalisation: ScoreNormalisation::None,
            calibration: None,
            aggregation: Aggregation::default(),
            source: PolicySource::BuiltInDefault,
        }
    }

    /// The model card's calibration and thresholds, when it has both.
    pub fn from_model(model: &SignatureModel) -> Option<Self> {
        let card = model.card();
        let calibration = card.calibration?;
        let thresholds = card.thresholds?;
        let decision = DecisionPolicy::new(thresholds).ok()?;
        Some(Self {
            decision,
            normalisation: card.score_normalisation,
            calibration: Some(calibration),
            aggregation: Aggregation::default(),
            source: PolicySource::ModelCard,
        })
    }

    /// The policy in force. Calibration and thresholds each come from the store's settings once a
    /// supervisor's change of it was approved (`countersign calibrate`, the Calibrate screen), else
    /// from the model card, else the built-in default; the supervisor's amount rule and per-account
    /// overrides apply in every case.
    pub fn resolve(
        store: Option<&crate::store::Store>,
        model: &SignatureModel,
    ) -> Result<Self, VerifyError> {
        let mut policy = Self::from_model(model).unwrap_or_else(Self::built_in_default);
        // The stage belongs to the model: a supervisor's calibration is fitted through the same
        // `assess` path, which applies the model's stage too.
        policy.normalisation = model.card().score_normalisation;
        let Some(store) = store else {
            return Ok(policy);
        };
        let settings = store.current_settings()?;
        if settings.version == 0 {
            return Ok(policy);
        }
        // Thresholds and calibration are two changes, each approved on its own: each applies once
        // approved, over the model card's (the Calibrate screen shows what a new calibration does at
        // the thresholds in force before it is requested).
        let approved = store.approved_overrides()?;
        if let Some(t) = approved.thresholds {
            policy.decision.thresholds = t;
            policy.source = PolicySource::Settings;
        }
        if let Some(c) = approved.calibration {
            policy.calibration = Some(c);
            policy.source = PolicySource::Settings;
        }
        let from_settings = settings.decision_policy()?;
        policy.decision.amount_rule = from_settings.amount_rule;
        policy.decision.per_account = from_settings.per_account;
        policy.decision.validate()?;
        Ok(policy)
    }

    /// Scores a questioned embedding against the references and decides, as every front end does
    /// (`verify`, `batch` and the GUI): `questioned` is `None` when no signature was found
    /// (`not_found_reason` says why) and the cheque is referred; without a calibration, or under the
    /// built-in default, every cheque is referred too.
    pub fn decide(
        &self,
        questioned: Option<&Embedding>,
        not_found_reason: Option<&str>,
        references: &[&Embedding],
        account: Option<&str>,
        amount_cents: Option<i64>,
    ) -> Result<Scored, VerifyError> {
        let t0 = Instant::now();
        // The scoring layer takes the references as one slice: copied once, for both stages.
        let owned: Vec<Embedding> = references.iter().map(|r| (*r).clone()).collect();
        let raw_score = match questioned {
            Some(q) => {
                if references.is_empty() {
                    return Err(VerifyError::NoReferences {
                        account: account.map(str::to_string),
                    });
                }
                Some(crate::scoring::score_against_references(
                    q,
                    &owned,
                    self.aggregation,
                )?)
            }
            None => None,
        };
        // The per-account stage: too few references for it means no probability, so REFER.
        let too_few_references = references.len() < self.normalisation.min_references();
        let normalised_score = match raw_score {
            Some(s) if !too_few_references => Some(self.normalisation.apply(s, &owned)?),
            _ => None,
        };
        let probability = match (normalised_score, &self.calibration) {
            (Some(s), Some(c)) => Some(c.probability(s)),
            _ => None,
        };
        let mut outcome =
            crate::scoring::decide(probability, account, amount_cents, &self.decision);
        if questioned.is_none() {
            if let Some(reason) = not_found_reason {
                outcome.reason = reason.to_string();
            }
            outcome.decision = Decision::Refer;
        } else if self.calibration.is_none() || self.source == PolicySource::BuiltInDefault {
            outcome.decision = Decision::Refer;
            outcome.reason = NO_POLICY_REASON.to_string();
        } else if too_few_references {
            outcome.decision = Decision::Refer;
            outcome.reason = format!(
                "The model scores against at least {} references ({}); this account has {}. \
                 Enrol more references.",
                self.normalisation.min_references(),
                self.normalisation.label(),
                references.len()
            );
        }
        Ok(Scored {
            raw_score,
            normalised_score,
            probability,
            outcome,
            score_ms: ms_since(t0),
        })
    }
}

/// Score, probability and decision for one questioned embedding.
#[derive(Clone, Debug)]
pub struct Scored {
    pub raw_score: Option<f64>,
    /// The score after the per-account stage, the calibration's input (equal to `raw_score` when
    /// the model has no such stage).
    pub normalised_score: Option<f64>,
    pub probability: Option<f64>,
    pub outcome: DecisionOutcome,
    pub score_ms: f64,
}

/// Wraps a loaded model for [`Verifier::new`].
///
/// libtorch modules are `Send` but not `Sync`, so the `Arc` does not let the model cross threads: it
/// lets one thread (the GUI's worker, a batch) hand the same loaded weights to several users (the
/// verifier, an evaluation) without loading them twice. Should the model become `Sync`, nothing here
/// changes.
#[allow(clippy::arc_with_non_send_sync)]
pub fn shared_model(model: SignatureModel) -> Arc<SignatureModel> {
    Arc::new(model)
}

/// The verification service: a model, the CPU parameters and the policy.
pub struct Verifier {
    model: Arc<SignatureModel>,
    params: PrepareParams,
    policy: Policy,
    model_id: String,
    device: String,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("model_id", &self.model_id)
            .field("device", &self.device)
            .field("policy_source", &self.policy.source)
            .finish()
    }
}

impl Verifier {
    /// A verifier with an explicit policy and cheque layout.
    pub fn new(model: Arc<SignatureModel>, layout: ChequeLayout, policy: Policy) -> Self {
        let params = PrepareParams {
            limits: DecodeLimits::default(),
            layout,
            normalise: model.normalise_params().clone(),
        };
        let model_id = model.id().to_string();
        let device = crate::device::describe(model.device());
        Self {
            model,
            params,
            policy,
            model_id,
            device,
        }
    }

    /// A verifier whose policy comes from the store's settings, else the model card, else the
    /// built-in default (see [`Policy::resolve`]).
    pub fn from_store(
        model: Arc<SignatureModel>,
        layout: ChequeLayout,
        store: Option<&crate::store::Store>,
    ) -> Result<Self, VerifyError> {
        let policy = Policy::resolve(store, &model)?;
        Ok(Self::new(model, layout, policy))
    }

    pub fn params(&self) -> &PrepareParams {
        &self.params
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn model(&self) -> &Arc<SignatureModel> {
        &self.model
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The device the network runs on.
    pub fn device(&self) -> tch::Device {
        self.model.device()
    }

    /// The device the network runs on, in words.
    pub fn device_name(&self) -> &str {
        &self.device
    }

    /// Runs one forward pass on a synthetic input so that libtorch's one-time set-up (thread pool,
    /// allocator, kernel selection: hundreds of milliseconds on a CPU) happens now rather than in the
    /// first verification a clerk waits for.
    pub fn warm_up(&self) -> Result<(), VerifyError> {
        let p = &self.params.normalise;
        // A few diagonal strokes rather than a blank: an all-zero input has no direction to normalise.
        let pixels = (0..p.height)
            .flat_map(|y| (0..p.width).map(move |x| if (x + y) % 11 == 0 { 1.0 } else { 0.0 }))
            .collect();
        let probe = NormalisedSignature {
            width: p.width,
            height: p.height,
            pixels,
        };
        self.embed(std::slice::from_ref(&probe)).map(|_| ())
    }

    /// Embeds signatures, [`EMBED_BATCH`] per forward pass.
    pub fn embed(&self, signatures: &[NormalisedSignature]) -> Result<Vec<Embedding>, VerifyError> {
        let mut out = Vec::with_capacity(signatures.len());
        for chunk in signatures.chunks(EMBED_BATCH) {
            let e = self.model.embed(chunk)?;
            if e.len() != chunk.len() {
                return Err(VerifyError::EmbeddingCount {
                    expected: chunk.len(),
                    got: e.len(),
                });
            }
            out.extend(e);
        }
        Ok(out)
    }

    /// Embeds prepared references.
    pub fn embed_references(
        &self,
        refs: &[PreparedReference],
    ) -> Result<Vec<ReferenceEmbedding>, VerifyError> {
        let sigs: Vec<NormalisedSignature> = refs.iter().map(|r| r.normalised.clone()).collect();
        let embs = self.embed(&sigs)?;
        Ok(embs
            .into_iter()
            .zip(refs)
            .map(|(embedding, r)| ReferenceEmbedding {
                embedding,
                sha256: r.sha256.clone(),
            })
            .collect())
    }

    /// Scores a questioned embedding against the references and decides. `questioned` is `None` when
    /// no signature was found (`not_found_reason` then says why).
    pub fn decide(
        &self,
        questioned: Option<&Embedding>,
        not_found_reason: Option<&str>,
        references: &[ReferenceEmbedding],
        account: Option<&str>,
        amount_cents: Option<i64>,
    ) -> Result<Scored, VerifyError> {
        let refs: Vec<&Embedding> = references.iter().map(|r| &r.embedding).collect();
        self.policy
            .decide(questioned, not_found_reason, &refs, account, amount_cents)
    }

    /// Verifies one questioned image against its references, from the input to the decision.
    pub fn verify(&self, req: &VerifyRequest) -> Result<VerifyResult, VerifyError> {
        let t0 = Instant::now();
        let mut timings = StageTimings::default();
        let prepared_refs = match &req.references {
            References::Images(images) => {
                if images.is_empty() {
                    return Err(VerifyError::NoReferences {
                        account: req.account.clone(),
                    });
                }
                let refs = images
                    .iter()
                    .map(|s| prepare_reference(&self.params, s))
                    .collect::<Result<Vec<_>, _>>()?;
                for r in &refs {
                    timings.decode_ms += r.decode_ms;
                    timings.find_normalise_ms += r.find_normalise_ms;
                }
                refs
            }
            References::Embeddings(e) => {
                if e.is_empty() {
                    return Err(VerifyError::NoReferences {
                        account: req.account.clone(),
                    });
                }
                Vec::new()
            }
        };
        let q = prepare_questioned(&self.params, &req.questioned, req.manual_crop)?;
        timings.decode_ms += q.decode_ms;
        timings.find_normalise_ms += q.find_normalise_ms;

        // One forward pass for the questioned signature and any reference images together.
        let t_embed = Instant::now();
        let mut sigs: Vec<NormalisedSignature> = Vec::with_capacity(prepared_refs.len() + 1);
        sigs.extend(q.normalised.iter().cloned());
        sigs.extend(prepared_refs.iter().map(|r| r.normalised.clone()));
        let mut embs = if sigs.is_empty() {
            Vec::new()
        } else {
            self.embed(&sigs)?
        };
        timings.embed_ms = ms_since(t_embed);
        let ref_embs_from_images: Vec<ReferenceEmbedding>;
        let q_emb = if q.normalised.is_some() && !embs.is_empty() {
            Some(embs.remove(0))
        } else {
            None
        };
        let references: &[ReferenceEmbedding] = match &req.references {
            References::Embeddings(e) => e,
            References::Images(_) => {
                ref_embs_from_images = embs
                    .into_iter()
                    .zip(&prepared_refs)
                    .map(|(embedding, r)| ReferenceEmbedding {
                        embedding,
                        sha256: r.sha256.clone(),
                    })
                    .collect();
                &ref_embs_from_images
            }
        };
        let scored = self.decide(
            q_emb.as_ref(),
            q.not_found_reason.as_deref(),
            references,
            req.account.as_deref(),
            req.amount_cents,
        )?;
        timings.score_ms = scored.score_ms;
        Ok(self.assemble(
            req.cheque_id.clone(),
            req.account.clone(),
            req.amount_cents,
            q,
            references,
            scored,
            timings,
            ms_since(t0),
        ))
    }

    /// Builds the result from its parts (shared with the batch, which runs the stages itself).
    #[allow(clippy::too_many_arguments)]
    pub fn assemble(
        &self,
        cheque_id: Option<String>,
        account: Option<String>,
        amount_cents: Option<i64>,
        q: PreparedQuestioned,
        references: &[ReferenceEmbedding],
        scored: Scored,
        timings: StageTimings,
        latency_ms: f64,
    ) -> VerifyResult {
        VerifyResult {
            cheque_id,
            account,
            amount_cents,
            raw_score: scored.raw_score,
            probability: scored.probability,
            outcome: scored.outcome,
            crop: q.crop,
            find_confidence: q.find_confidence,
            found: q.found,
            questioned: q.normalised,
            questioned_kind: q.kind,
            input_kind: q.input_kind,
            questioned_sha256: q.sha256,
            reference_sha256s: references.iter().map(|r| r.sha256.clone()).collect(),
            policy_source: self.policy.source,
            model_id: self.model_id.clone(),
            device: self.device.clone(),
            timings,
            latency_ms,
        }
    }
}

/// The cheque id a decision is recorded under when none was given: the file's name and the start of
/// the image's SHA-256 (`04.png@sha256:1a2b3c4d5e6f`). Two cheques that share a file name in
/// different folders are two ids, and one id can never name two images; the same image verified
/// again keeps its id. `verify` and the GUI both name cheques this way.
pub fn default_cheque_id(file_name: &str, image_sha256: &str) -> String {
    format!(
        "{file_name}@sha256:{}",
        image_sha256.get(..12).unwrap_or(image_sha256)
    )
}

/// Parses an amount in currency units into cents, as clerks type what the cheque prints: `1234.56`,
/// `1234.5`, `1234`, and with grouping separators in the usual forms: `1,234.56`, `1 234.56`,
/// `1'234.56`, `1.234,56` and `1234,56` (a comma followed by one or two digits is the decimal
/// separator). Groups must be of three digits, so a misread figure such as `1,23.4` or `1.234` (a
/// thousand, or one and a quarter?) is refused rather than guessed; negative amounts, more than two
/// decimals and anything that is not a number are refused too, so that an amount rule is never
/// applied to a misread figure. Show the parsed figure ([`format_amount`]) back to the clerk.
pub fn parse_amount(s: &str) -> Result<i64, String> {
    let plain = ungroup_amount(s.trim()).ok_or_else(|| {
        format!(
            "amount {s:?} is not an amount: write it as 1234.56 or 1,234.56 (groups of three digits, at most two decimals)"
        )
    })?;
    parse_plain_amount(&plain).map_err(|_| {
        format!(
            "amount {s:?} is not a non-negative amount with at most two decimals, such as 1234.56 or 1,234.56"
        )
    })
}

/// Turns a grouped amount into a plain one (`1,234.56` -> `1234.56`), or `None` when its groups are
/// not the usual three digits.
fn ungroup_amount(t: &str) -> Option<String> {
    // Spaces (also the no-break and narrow no-break ones) and apostrophes only ever group digits.
    let t: String = t
        .chars()
        .map(|c| match c {
            ' ' | '\u{a0}' | '\u{202f}' | '\'' | '\u{2019}' => '_',
            c => c,
        })
        .collect();
    let last_dot = t.rfind('.');
    let last_comma = t.rfind(',');
    // The decimal separator: the last of '.' and ',' when both occur; a lone ',' followed by one or
    // two digits (1234,56); else '.'.
    let (units, frac) = match (last_dot, last_comma) {
        (Some(d), Some(c)) => {
            let at = d.max(c);
            (&t[..at], Some(&t[at + 1..]))
        }
        (None, Some(c)) if t.matches(',').count() == 1 && (1..=2).contains(&(t.len() - c - 1)) => {
            (&t[..c], Some(&t[c + 1..]))
        }
        (Some(d), None) if t.matches('.').count() == 1 => (&t[..d], Some(&t[d + 1..])),
        _ => (t.as_str(), None),
    };
    if frac.is_some_and(|f| !f.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let groups: Vec<&str> = units.split([',', '.', '_']).collect();
    if groups.len() > 1 {
        let first_ok = (1..=3).contains(&groups[0].len());
        if !first_ok || groups[1..].iter().any(|g| g.len() != 3) {
            return None;
        }
        // One kind of grouping separator per amount.
        let seps: std::collections::HashSet<char> = units
            .chars()
            .filter(|c| matches!(c, ',' | '.' | '_'))
            .collect();
        if seps.len() > 1 {
            return None;
        }
    }
    let mut plain: String = groups.concat();
    if let Some(f) = frac {
        plain.push('.');
        plain.push_str(f);
    }
    Some(plain)
}

/// Parses a plain amount (`1234.56`, `1234.5`, `1234`, `.5`, `12.`) into cents.
fn parse_plain_amount(s: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "amount {s:?} is not a non-negative amount with at most two decimals, such as 1234.56"
        )
    };
    let t = s.trim();
    let (units, frac) = match t.split_once('.') {
        Some((u, f)) => (u, f),
        None => (t, ""),
    };
    if units.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    if !units.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
    {
        return Err(bad());
    }
    if units.len() > 15 {
        return Err(format!("amount {s:?} is too large"));
    }
    let units: i64 = if units.is_empty() {
        0
    } else {
        units.parse().map_err(|_| bad())?
    };
    let frac_cents: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().map_err(|_| bad())? * 10,
        _ => frac.parse().map_err(|_| bad())?,
    };
    Ok(units * 100 + frac_cents)
}

/// Formats cents as `1234.56`.
pub fn format_amount(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Parses a crop box `x,y,width,height` in pixels.
pub fn parse_crop(s: &str) -> Result<CropBox, String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let nums: Option<Vec<u32>> = parts.iter().map(|p| p.parse::<u32>().ok()).collect();
    match nums.as_deref() {
        Some([x, y, w, h]) if *w > 0 && *h > 0 => Ok(CropBox {
            x: *x,
            y: *y,
            width: *w,
            height: *h,
        }),
        _ => Err(format!(
            "crop box {s:?} must be four non-negative whole numbers x,y,width,height with width and height above 0"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_exactly_or_are_refused() {
        assert_eq!(parse_amount("1234.56"), Ok(123_456));
        assert_eq!(parse_amount("1234.5"), Ok(123_450));
        assert_eq!(parse_amount("1234"), Ok(123_400));
        assert_eq!(parse_amount(" 0.07 "), Ok(7));
        assert_eq!(parse_amount(".5"), Ok(50));
        assert_eq!(parse_amount("12."), Ok(1200));
        // Grouping separators as cheques print them.
        assert_eq!(parse_amount("1,200.00"), Ok(120_000));
        assert_eq!(parse_amount("22,509.14"), Ok(2_250_914));
        assert_eq!(parse_amount("1 234 567.8"), Ok(123_456_780));
        assert_eq!(parse_amount("1'234.56"), Ok(123_456));
        assert_eq!(parse_amount("1.234,56"), Ok(123_456));
        assert_eq!(parse_amount("1234,5"), Ok(123_450));
        assert_eq!(parse_amount("10,269.38"), Ok(1_026_938));
        assert_eq!(parse_amount("1,000,000"), Ok(100_000_000));
        for bad in [
            "",
            ".",
            "-1",
            "+1",
            "1,23.00",
            "12,34,567.00",
            "1,234 567.00",
            "1.234",
            "1.234.56",
            "1,2345",
            "abc",
            "1e3",
            "NaN",
            "9999999999999999",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(format_amount(123_456), "1234.56");
        assert_eq!(format_amount(7), "0.07");
    }

    #[test]
    fn crop_boxes_parse_or_are_refused() {
        let b = parse_crop("10, 20,300,40").unwrap();
        assert_eq!((b.x, b.y, b.width, b.height), (10, 20, 300, 40));
        for bad in ["", "1,2,3", "1,2,3,4,5", "1,2,0,4", "-1,2,3,4", "a,b,c,d"] {
            assert!(parse_crop(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
