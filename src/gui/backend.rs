//! The only place where the GUI touches the other layers (imaging, model, scoring, store, train, batch).
//!
//! Everything here runs on the worker thread or on a background task thread, never on the UI thread.
//! The types in this file are the GUI's own view of the data, so the screens do not depend on how
//! other layers spell their structs; when a layer changes, only this file follows it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::device::DeviceChoice;
use crate::scoring::{Decision, Thresholds};

/// Where the worker finds its database and model, and which device it runs the network on.
#[derive(Clone, Debug)]
pub struct BackendConfig {
    pub db_path: PathBuf,
    pub model_path: Option<PathBuf>,
    pub device: DeviceChoice,
}

/// A failure shown to the operator: what went wrong, and what to do about it.
#[derive(Clone, Debug, PartialEq)]
pub struct UserError {
    pub what: String,
    pub todo: String,
}

impl UserError {
    pub fn new(what: impl Into<String>, todo: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            todo: todo.into(),
        }
    }

    /// The message a layer that has not reached this build gives.
    pub fn unavailable(layer: &str) -> Self {
        Self::new(
            format!("The {layer} layer is not available in this build."),
            "Use a complete build of Countersign (make build).",
        )
    }

    /// Turns any library error into a message with advice, by looking at the error kinds in its cause
    /// chain (the same kinds the CLI maps to exit codes).
    pub fn from_anyhow(context: &str, err: &anyhow::Error) -> Self {
        let mut todo =
            "Try again; if it keeps failing, note the message and call support.".to_string();
        for cause in err.chain() {
            if let Some(e) = cause.downcast_ref::<crate::imaging::ImagingError>() {
                todo = imaging_advice(e);
                break;
            }
            if cause.downcast_ref::<crate::model::ModelError>().is_some() {
                todo = "The model could not be used. Check the model file and its .json card beside it, \
                        or start with the bundled model (omit --model)."
                    .to_string();
                break;
            }
            if cause.downcast_ref::<crate::store::StoreError>().is_some() {
                todo =
                    "The database could not be used. If another program holds it, wait and retry; \
                        if it is read-only or damaged, tell your supervisor."
                        .to_string();
                break;
            }
            if cause.downcast_ref::<std::io::Error>().is_some() {
                todo = "Check that the file exists and that you may read it.".to_string();
                break;
            }
        }
        let mut what = format!("{context}: {err}");
        for cause in err.chain().skip(1) {
            what.push_str(&format!(" ({cause})"));
        }
        Self { what, todo }
    }
}

fn imaging_advice(e: &crate::imaging::ImagingError) -> String {
    let text = e.to_string().to_lowercase();
    if text.contains("no signature") {
        "No signature was found. Drag the box over the signature on the cheque, or load a clearer scan.".into()
    } else {
        "Use a PNG, JPEG, TIFF or BMP scan of the cheque or signature (not a PDF or a photo of a screen), \
         and check that the file is complete."
            .into()
    }
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.what, self.todo)
    }
}

/// Operator roles, as the store defines them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Clerk,
    Supervisor,
    Auditor,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::Clerk => "clerk",
            Role::Supervisor => "supervisor",
            Role::Auditor => "auditor",
        }
    }
}

/// The signed-in operator.
#[derive(Clone, Debug, PartialEq)]
pub struct Operator {
    pub name: String,
    pub role: Role,
}

/// Which image a file is loaded into on the Verify screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// One of the account holder's reference signatures (0-based).
    Reference(usize),
    /// The cheque scan (or a bare questioned signature).
    Cheque,
}

impl Slot {
    pub fn label(self) -> String {
        match self {
            Slot::Reference(i) => format!("Reference {}", i + 1),
            Slot::Cheque => "Cheque".to_string(),
        }
    }
}

/// An 8-bit grayscale raster for display (0 black, 255 white).
#[derive(Clone, Debug, PartialEq)]
pub struct Gray {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// An RGBA raster for display (the overlay view).
#[derive(Clone, Debug, PartialEq)]
pub struct Rgba {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// A rectangle in the original image's pixel coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PixelBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// What the worker sends back after loading a file into a slot.
#[derive(Clone, Debug)]
pub struct LoadedImage {
    pub slot: Slot,
    /// Where the image came from: a file path, or "account NNN reference k".
    pub source: String,
    /// The original size in pixels.
    pub width: u32,
    pub height: u32,
    /// A downscaled copy for the screen; `preview_scale` preview pixels per original pixel.
    pub preview: Gray,
    pub preview_scale: f32,
    /// For a cheque: the signature box the imaging layer found, and its confidence in [0, 1].
    pub detected: Option<(PixelBox, f32)>,
    /// Why no box was found, when none was.
    pub detection_note: Option<String>,
    /// SHA-256 of the file bytes (hex), as written to the audit row.
    pub sha256: String,
}

/// The outcome of one verification, before the clerk confirms or overrides it.
#[derive(Clone, Debug)]
pub struct VerifyOutcome {
    /// The raw similarity; NaN when no signature was scored.
    pub score: f64,
    /// The calibrated probability of a genuine signature; 0 when `calibrated` is false.
    pub probability: f64,
    pub calibrated: bool,
    /// The cheque's amount in cents as the clerk typed it, when given (amount rules use it).
    pub amount_cents: Option<i64>,
    pub decision: Decision,
    pub thresholds: Thresholds,
    pub model_id: String,
    pub account: Option<String>,
    pub crop: Option<PixelBox>,
    pub signature_found: bool,
    /// The normalised questioned signature and references, as the network saw them.
    pub questioned: Gray,
    pub references: Vec<Gray>,
    /// The questioned signature in red over the first reference in blue.
    pub overlay: Rgba,
    /// Time spent in the worker from request to result, in milliseconds.
    pub latency_ms: f64,
    pub cheque_sha256: String,
    pub reference_sha256: Vec<String>,
    /// Why this decision: the thresholds that applied, or why the cheque was referred.
    pub reason: String,
    /// The clerk drew or moved the signature box (logged with the row, shown on the Audit screen).
    pub hand_drawn: bool,
}

/// What the clerk did with a verification.
#[derive(Clone, Debug, PartialEq)]
pub enum FinalAction {
    Confirm,
    Override {
        decision: Decision,
        reason: String,
    },
    /// Shown, then left undecided (next cheque, a redrawn box): logged so no shown result vanishes.
    Abandoned,
}

/// One row of the audit log as the GUI shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionRow {
    pub id: i64,
    pub time: String,
    pub operator: String,
    pub account: String,
    pub decision: Decision,
    pub final_decision: Decision,
    pub action: String,
    pub reason: String,
    /// `None` when nothing was scored or calibrated (the row holds NULL).
    pub score: Option<f64>,
    pub probability: Option<f64>,
    pub model_id: String,
    pub cheque_sha256: String,
    pub reference_sha256: String,
    /// The signature box was drawn by hand.
    pub hand_drawn: bool,
    pub cheque_id: String,
    pub amount_cents: Option<i64>,
    /// The cheque waits in the referral queue.
    pub in_referral: bool,
}

/// Filters of the Audit screen; empty fields match everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditFilter {
    /// Inclusive dates, `YYYY-MM-DD`.
    pub from: String,
    pub to: String,
    pub operator: String,
    pub account: String,
    /// The model's decision.
    pub decision: Option<Decision>,
    /// The decision in force (after overrides and resolutions).
    pub final_decision: Option<Decision>,
    /// The action in force (confirm, override, pending, resolve, abandoned).
    pub action: Option<crate::store::FinalAction>,
    /// Only cheques waiting in the referral queue.
    pub open_referrals: bool,
    /// Only decisions whose signature box was drawn by hand.
    pub hand_drawn: bool,
}

/// Detail of one decision, with the images where the store has them.
#[derive(Clone, Debug)]
pub struct DecisionDetail {
    pub row: DecisionRow,
    /// The questioned signature as the network saw it, logged with the decision.
    pub signature: Option<Gray>,
    /// Why there is no logged signature, or why it cannot be trusted.
    pub signature_note: Option<String>,
    pub cheque: Option<Gray>,
    pub reference: Option<Gray>,
    pub fields: Vec<(String, String)>,
}

/// The result of walking the hash chain.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainReport {
    pub ok: bool,
    pub rows_checked: u64,
    pub message: String,
}

/// An evaluation of the active model on a labelled folder, as the Calibrate screen needs it.
#[derive(Clone, Debug, Default)]
pub struct EvalSummary {
    /// Calibrated probabilities of genuine pairs and of skilled-forgery pairs.
    pub genuine: Vec<f64>,
    pub forgery: Vec<f64>,
    /// ROC points (FAR, TPR) and DET points (FAR, FRR), each in [0, 1].
    pub roc: Vec<(f64, f64)>,
    pub det: Vec<(f64, f64)>,
    pub eer: f64,
    pub eer_threshold: f64,
    pub model_id: String,
    pub writers: usize,
    pub current: Option<Thresholds>,
    /// The calibration fitted on this data (a change of its own, requested apart from thresholds).
    pub calibration: Option<crate::scoring::Calibration>,
    /// The calibration in force now (store settings, else the model card; `None`: none, so every
    /// cheque is referred), to show before and after.
    pub calibration_in_force: Option<crate::scoring::Calibration>,
    /// The raw scores behind `genuine` and `forgery`, to see them through either calibration.
    pub genuine_scores: Vec<f64>,
    pub forgery_scores: Vec<f64>,
    /// The highest score the model's scoring stage can give (cosine: 1), when it is bounded.
    pub score_ceiling: Option<f64>,
}

/// Options of the Train screen.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    pub data: PathBuf,
    pub out: PathBuf,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub synthetic_writers: usize,
    pub triplet: bool,
    pub seed: u64,
    /// Fine-tune: start from these weights (with their card) instead of a fresh network.
    pub init: Option<PathBuf>,
}

/// Progress of a training run.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainUpdate {
    /// One step: `x` is the position in epochs (for the loss plot), `fraction` the share of the run done.
    Step {
        x: f64,
        fraction: f32,
        loss: f64,
    },
    Epoch {
        epoch: usize,
        train_loss: f64,
        val_eer: f64,
    },
    Message(String),
    Finished {
        model_path: PathBuf,
        card: Vec<(String, String)>,
    },
    /// The run was stopped before its last epoch: no model was written; what was kept is named.
    Stopped {
        epochs_completed: u32,
        epochs: u32,
        /// The checkpoint (the last full epoch plus the partial one); starting again with the same
        /// output continues from it.
        checkpoint: PathBuf,
        /// The best epoch's weights so far, when validation ran.
        best: Option<PathBuf>,
    },
}

/// One result row of a batch run.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchRow {
    pub cheque_id: String,
    pub account: String,
    /// `ACCEPT`, `REFER`, `REJECT` or `ERROR`.
    pub outcome: String,
    pub probability: Option<f64>,
    pub score: Option<f64>,
    pub error: String,
    /// Why the decision was taken (thresholds used, or why it was referred).
    pub reason: String,
}

/// What the status bar shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusInfo {
    pub device: String,
    pub model: String,
    pub database: String,
    /// The X9 account rule in force (the Batch screen shows it).
    pub x9_account_rule: String,
    /// The thresholds a supervisor's approved settings put in force (`None` while none were ever
    /// approved: the model card's apply). Read again after every approval, so screens never show a
    /// stale "in force now".
    pub thresholds_in_force: Option<Thresholds>,
    /// The probability calibration an approved calibration change put in force (`None` while none
    /// was approved: the model card's applies). Read again with the thresholds.
    pub calibration_in_force: Option<crate::scoring::Calibration>,
}

/// A flag a long task polls to stop early.
pub type StopFlag = Arc<AtomicBool>;

pub fn stopped(flag: &StopFlag) -> bool {
    flag.load(Ordering::Relaxed)
}

/// A decoded image held by the worker, with what has been derived from it.
struct Decoded {
    gray: image::GrayImage,
    sha256: String,
    source: String,
    detected: Option<(PixelBox, f32)>,
    /// A cheque-slot image that is a bare signature (scored whole).
    bare: bool,
    /// Normalised signature and its embedding, tagged with the model id they were made with.
    normalised: Option<(String, crate::imaging::NormalisedSignature)>,
    embedding: Option<(String, crate::scoring::Embedding)>,
}

/// Largest preview sizes sent to the UI (the UI scales further; the worker keeps full resolution).
const CHEQUE_PREVIEW: (u32, u32) = (1600, 900);
const REFERENCE_PREVIEW: (u32, u32) = (700, 350);

/// The state the worker thread owns: the open store, the loaded model, the decoded images.
pub struct Backend {
    pub config: BackendConfig,
    operator: Option<crate::store::Operator>,
    store: Option<crate::store::Store>,
    model: Option<crate::model::SignatureModel>,
    model_error: Option<String>,
    images: HashMap<Slot, Decoded>,
    /// Reference ids of the account whose references are loaded, in slot order.
    account_refs: Vec<i64>,
    /// What the clerk says the cheque slot's image is (the Verify screen's choice).
    cheque_kind: crate::verify::InputKind,
}

pub(super) fn store_error(context: &str, e: crate::store::StoreError) -> UserError {
    use crate::store::StoreError as E;
    let todo = match &e {
        E::AuthFailed => {
            "Check your operator name and PIN. Repeated wrong PINs lock the operator for a while."
        }
        E::LockedOut { .. } => {
            "Ask a supervisor to unlock you (the lock does not expire by itself)."
        }
        E::PermissionDenied { .. } => {
            "Ask a colleague with that role. The refusal has been logged."
        }
        E::NoOperators => {
            "Create the first supervisor from a terminal: countersign operator add NAME --role supervisor"
        }
        E::Busy { .. } => {
            "Another program is writing to the database. Wait a moment and try again."
        }
        E::Corrupt { .. } | E::NewerSchema { .. } | E::ReadOnly { .. } => {
            "Do not use this database for decisions. Tell your supervisor; the message says how to recover."
        }
        E::DiskFull { .. } => "Free disk space, then try again. Nothing was written.",
        E::CredentialsTampered { .. } => {
            "Do not use this database. Keep it as evidence and tell your supervisor and the auditors."
        }
        E::Invalid(_) | E::NotFound { .. } | E::AlreadyExists { .. } => {
            "Correct the input and try again."
        }
        _ => "Try again; if it keeps failing, tell your supervisor.",
    };
    UserError::new(format!("{context}: {e}"), todo)
}

/// Why a sign-in was refused, with how many wrong PINs are left before the operator is locked out
/// (and, once locked, since when and who can unlock).
fn sign_in_refused(
    store: &crate::store::Store,
    name: &str,
    e: crate::store::StoreError,
) -> UserError {
    use crate::store::StoreError as E;
    match (&e, store.pin_attempts_left(name)) {
        (E::AuthFailed, Ok(Some(left))) if left > 0 => UserError::new(
            format!(
                "Sign-in refused: wrong operator name or PIN. {left} attempt{} left before {name} is locked out.",
                if left == 1 { "" } else { "s" }
            ),
            "Check the PIN and type it again. After a lockout only a supervisor can unlock the operator.",
        ),
        (E::LockedOut { since, .. }, _) => UserError::new(
            format!(
                "Sign-in refused: {name} is locked out after {} wrong PINs (since {since}). No attempts are left.",
                crate::store::operators::FREE_FAILURES
            ),
            "Ask a supervisor to unlock you (Operators, or `countersign operator unlock`); the lock does not expire by itself.",
        ),
        _ => store_error("Sign-in refused", e),
    }
}

fn model_error(context: &str, e: &crate::model::ModelError) -> UserError {
    UserError::new(
        format!("{context}: {e}"),
        "The model could not be used. Check the model file and the .json card beside it, or ask a supervisor \
         to activate a working model.",
    )
}

fn imaging_error(context: &str, e: &crate::imaging::ImagingError) -> UserError {
    UserError::new(format!("{context}: {e}"), imaging_advice(e))
}

fn role_of(r: crate::store::Role) -> Role {
    match r {
        crate::store::Role::Clerk => Role::Clerk,
        crate::store::Role::Supervisor => Role::Supervisor,
        crate::store::Role::Auditor => Role::Auditor,
    }
}

/// A number with four decimals, or what its absence means.
fn fmt_opt(v: Option<f64>, none: &str) -> String {
    v.map_or_else(|| none.to_string(), |v| format!("{v:.4}"))
}

pub(crate) fn to_row(r: &crate::store::DecisionRow) -> DecisionRow {
    let (action, reason) = match &r.action {
        Some(a) => (a.action, a.reason.clone().unwrap_or_default()),
        None => (r.final_action, r.reason.clone().unwrap_or_default()),
    };
    let final_decision = r.final_decision;
    DecisionRow {
        id: r.id,
        time: r
            .time
            .replace('T', " ")
            .trim_end_matches('Z')
            .chars()
            .take(19)
            .collect(),
        operator: r.operator.clone(),
        account: r.account.clone().unwrap_or_default(),
        decision: r.decision,
        final_decision,
        action: action.as_str().to_string(),
        reason,
        score: r.raw_score,
        probability: r.probability,
        model_id: r.model_id.clone(),
        cheque_sha256: r.cheque_sha256.clone(),
        reference_sha256: r.reference_sha256s.join(", "),
        hand_drawn: r.hand_drawn_box,
        cheque_id: r.cheque_id.clone().unwrap_or_default(),
        amount_cents: r.amount_cents,
        in_referral: r.in_referral(),
    }
}

fn parse_day(s: &str, what: &str) -> Result<Option<time::OffsetDateTime>, UserError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, format)
        .map(|d| Some(d.midnight().assume_utc()))
        .map_err(|_| {
            UserError::new(
                format!("{what} date \"{s}\" is not a date."),
                "Write dates as YYYY-MM-DD, e.g. 2026-11-28.",
            )
        })
}

/// The store's filter for the Audit screen's fields (`to` is inclusive: the whole day).
pub fn store_filter(f: &AuditFilter) -> Result<crate::store::DecisionFilter, UserError> {
    let text = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    Ok(crate::store::DecisionFilter {
        from: parse_day(&f.from, "From")?,
        to: parse_day(&f.to, "To")?.map(|d| d + time::Duration::days(1)),
        decision: f.decision,
        operator: text(&f.operator),
        account: text(&f.account),
        cheque_id: None,
        final_decision: f.final_decision,
        action: f.action,
        open_referrals: f.open_referrals,
        hand_drawn: f.hand_drawn,
    })
}

fn open_store(config: &BackendConfig) -> Result<crate::store::Store, UserError> {
    if let Some(dir) = config.db_path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            UserError::new(
                format!(
                    "Could not create the folder {} for the database: {e}",
                    dir.display()
                ),
                "Choose another database with --db, or fix the folder's permissions.",
            )
        })?;
    }
    crate::store::Store::open(&config.db_path).map_err(|e| {
        store_error(
            &format!("Could not open the database {}", config.db_path.display()),
            e,
        )
    })
}

/// Reads a file with the decoder's byte limit and decodes it (bounded).
fn read_image(path: &Path) -> Result<(image::GrayImage, String), UserError> {
    use crate::imaging::decode::{DecodeLimits, decode_bytes};
    let limits = DecodeLimits::default();
    let name = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| {
        UserError::new(
            format!("Could not open {name}: {e}"),
            "Check that the file exists and that you may read it.",
        )
    })?;
    if meta.len() > limits.max_bytes {
        return Err(UserError::new(
            format!(
                "{name} is {} MB, more than the {} MB limit.",
                meta.len() / 1_000_000,
                limits.max_bytes / 1_000_000
            ),
            "Scan the cheque at 200-300 dpi, or save it as PNG or JPEG.",
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        UserError::new(
            format!("Could not read {name}: {e}"),
            "Check that the file exists and that you may read it.",
        )
    })?;
    let gray = decode_bytes(&bytes, &name, &limits)
        .map_err(|e| imaging_error("The image could not be used", &e))?;
    Ok((gray, crate::store::accounts::sha256_hex(&bytes)))
}

impl Backend {
    /// Creates the backend; the database opens and the model loads on first use so the window
    /// appears at once even when either fails.
    pub fn new(config: BackendConfig) -> Self {
        Self {
            config,
            operator: None,
            store: None,
            model: None,
            model_error: None,
            images: HashMap::new(),
            account_refs: Vec::new(),
            cheque_kind: crate::verify::InputKind::Auto,
        }
    }

    pub(super) fn store(&mut self) -> Result<&mut crate::store::Store, UserError> {
        if self.store.is_none() {
            self.store = Some(open_store(&self.config)?);
        }
        self.store
            .as_mut()
            .ok_or_else(|| UserError::new("The database is not open.", "Try again."))
    }

    /// The signed-in operator as the store knows it (for long tasks that act in their name).
    pub fn store_operator(&self) -> Option<crate::store::Operator> {
        self.operator.clone()
    }

    pub(super) fn require_operator(&self) -> Result<crate::store::Operator, UserError> {
        self.operator
            .clone()
            .ok_or_else(|| UserError::new("Nobody is signed in.", "Sign in first."))
    }

    /// The model in force (see [`crate::model::in_force`]).
    fn model_choice(&mut self) -> Option<crate::model::ModelInForce> {
        let config = self.config.clone();
        let store = self.store().ok().map(|s| &*s);
        resolve_model(&config, store)
    }

    /// The model path in force.
    fn model_path(&mut self) -> Option<PathBuf> {
        self.model_choice().map(|c| c.path)
    }

    fn model(&mut self) -> Result<&crate::model::SignatureModel, UserError> {
        if self.model.is_none() {
            let device = self.config.device.resolve().map_err(|e| {
                UserError::new(
                    format!("{e}"),
                    "Start Countersign with --device cpu, or check the GPU driver.",
                )
            })?;
            let Some(choice) = self.model_choice() else {
                let e = UserError::new(
                    "No model was found (models/countersign-default.safetensors is missing).",
                    "Reinstall Countersign, or start it with --model PATH to a trained model.",
                );
                self.model_error = Some(e.what.clone());
                return Err(e);
            };
            let path = choice.path.clone();
            match choice.load(device) {
                Ok(m) => {
                    self.model = Some(m);
                    self.model_error = None;
                }
                Err(e) => {
                    let e = model_error(
                        &format!("The model {} could not be loaded", path.display()),
                        &e,
                    );
                    self.model_error = Some(e.what.clone());
                    return Err(e);
                }
            }
        }
        self.model
            .as_ref()
            .ok_or_else(|| UserError::new("The model is not loaded.", "Try again."))
    }

    /// Loads the model and runs one forward pass (libtorch allocates and picks kernels on the first).
    /// Drops the loaded model and every cached embedding, so the next verification loads the model
    /// in force (after an approved model change).
    pub(super) fn forget_model(&mut self) {
        if self.config.model_path.is_none() {
            self.model = None;
        }
        for d in self.images.values_mut() {
            d.normalised = None;
            d.embedding = None;
        }
    }

    pub fn warmup(&mut self) {
        if let Ok(m) = self.model() {
            let p = m.normalise_params();
            let mut pixels = vec![0.0f32; (p.width * p.height) as usize];
            for (i, v) in pixels.iter_mut().enumerate() {
                *v = if i % 7 == 0 { 1.0 } else { 0.0 };
            }
            let dummy = crate::imaging::NormalisedSignature {
                width: p.width,
                height: p.height,
                pixels,
            };
            let _ = m.embed(std::slice::from_ref(&dummy));
        }
    }

    pub fn status(&mut self) -> StatusInfo {
        let device = match self.config.device.resolve() {
            Ok(d) => crate::device::describe(d),
            Err(e) => format!("unavailable ({e})"),
        };
        let model = match (&self.model, &self.model_error) {
            (Some(m), _) => m.id(),
            (None, Some(e)) => format!("not loaded: {e}"),
            (None, None) => match self.model_path() {
                Some(p) => format!(
                    "{} (loads on first use)",
                    p.file_name()
                        .map(|n| n.to_string_lossy().to_string())
                        .unwrap_or_default()
                ),
                None => "no model found".into(),
            },
        };
        let x9_account_rule = self
            .store()
            .ok()
            .and_then(|s| s.current_settings().ok())
            .and_then(|s| s.x9_account_rule)
            .unwrap_or_else(|| crate::x9::AccountRule::DEFAULT.to_string());
        let thresholds_in_force = self.store().ok().and_then(approved_thresholds);
        let calibration_in_force = self.store().ok().and_then(approved_calibration);
        StatusInfo {
            device,
            model,
            database: self.config.db_path.display().to_string(),
            x9_account_rule,
            thresholds_in_force,
            calibration_in_force,
        }
    }

    pub fn sign_in(&mut self, name: &str, pin: &str) -> Result<Operator, UserError> {
        let store = self.store()?;
        let op = store
            .authenticate(name, pin)
            .map_err(|e| sign_in_refused(store, name, e))?;
        store
            .log_session(&op, true, "gui")
            .map_err(|e| store_error("The sign-in could not be logged", e))?;
        let gui = Operator {
            name: op.name().to_string(),
            role: role_of(op.role()),
        };
        self.operator = Some(op);
        Ok(gui)
    }

    pub fn sign_out(&mut self) {
        if let Some(op) = self.operator.take()
            && let Ok(store) = self.store()
        {
            // The session's end is evidence too; a failure to log it does not keep anyone signed in.
            let _ = store.log_session(&op, false, "gui");
        }
        self.images.clear();
        self.account_refs.clear();
    }

    pub fn load_image(&mut self, slot: Slot, path: &Path) -> Result<LoadedImage, UserError> {
        self.images.remove(&slot);
        let (gray, sha256) = read_image(path)?;
        let source = path.display().to_string();
        // References never mix people: a file in a reference slot replaces an account's references.
        if matches!(slot, Slot::Reference(_)) && !self.account_refs.is_empty() {
            self.images.retain(|s, _| *s == Slot::Cheque);
            self.account_refs.clear();
        }
        self.insert_image(slot, gray, sha256, source)
    }

    /// Keeps a decoded image in a slot and prepares what the screen shows. A reference is normalised
    /// at once, so a reference without a signature is refused when it is loaded, not at verification.
    fn insert_image(
        &mut self,
        slot: Slot,
        gray: image::GrayImage,
        sha256: String,
        source: String,
    ) -> Result<LoadedImage, UserError> {
        let (max_w, max_h) = match slot {
            Slot::Cheque => CHEQUE_PREVIEW,
            Slot::Reference(_) => REFERENCE_PREVIEW,
        };
        let (preview_img, preview_scale) = preview(&gray, max_w, max_h);
        let mut detected = None;
        let mut detection_note = None;
        let mut bare = false;
        match slot {
            Slot::Reference(_) => {
                let params = self
                    .model()
                    .map(|m| m.normalise_params().clone())
                    .unwrap_or_default();
                crate::imaging::normalise::normalise(&gray, &params).map_err(|e| {
                    imaging_error(&format!("{} has no usable signature", slot.label()), &e)
                })?;
            }
            Slot::Cheque => match classify_cheque(&gray, self.cheque_kind) {
                ChequeKind::Found(b, c) => detected = Some((b, c)),
                ChequeKind::NotFound(note) => detection_note = Some(note),
                ChequeKind::BareSignature(note) => {
                    bare = true;
                    detection_note = Some(note);
                }
            },
        }
        let (width, height) = gray.dimensions();
        self.images.insert(
            slot,
            Decoded {
                gray,
                sha256: sha256.clone(),
                source: source.clone(),
                detected,
                bare,
                normalised: None,
                embedding: None,
            },
        );
        Ok(LoadedImage {
            slot,
            source,
            width,
            height,
            preview: preview_img,
            preview_scale,
            detected,
            detection_note,
            sha256,
        })
    }

    pub fn clear_slot(&mut self, slot: Slot) {
        self.images.remove(&slot);
    }

    /// Loads an account's enrolled references from the store into the reference slots.
    pub fn load_account(&mut self, account: &str) -> Result<(String, Vec<LoadedImage>), UserError> {
        let store = self.store()?;
        let Some(holder) = store
            .account(account)
            .map_err(|e| store_error("Could not read the account", e))?
            .map(|a| a.holder)
        else {
            return Err(UserError::new(
                format!("There is no account {account}."),
                "Check the account number, or load reference images from files.",
            ));
        };
        // Each reference is checked against the audit chain (image re-hashed) before it is shown
        // or compared, as in `verify` and `batch`.
        let checked = store
            .checked_references(account)
            .map_err(|e| store_error("Could not read the references", e))?;
        if checked.is_empty() {
            return Err(UserError::new(
                format!("Account {account} has no reference signatures."),
                "Enrol references (countersign account enrol), or load reference images from files.",
            ));
        }
        let mut images = Vec::new();
        let blobs: Vec<(i64, Vec<u8>)> = checked.into_iter().map(|(r, b)| (r.id, b)).collect();
        self.images.retain(|s, _| *s == Slot::Cheque);
        self.account_refs.clear();
        for (i, (id, bytes)) in blobs.into_iter().enumerate() {
            let name = format!("account {account} reference {}", i + 1);
            let gray = crate::imaging::decode::decode_bytes(
                &bytes,
                &name,
                &crate::imaging::decode::DecodeLimits::default(),
            )
            .map_err(|e| imaging_error("A stored reference could not be decoded", &e))?;
            let sha = crate::store::accounts::sha256_hex(&bytes);
            images.push(self.insert_image(Slot::Reference(i), gray, sha, name)?);
            self.account_refs.push(id);
        }
        Ok((holder, images))
    }

    /// Normalises and embeds a slot's image with the current model, caching both by model id.
    fn embed_slot(
        &mut self,
        slot: Slot,
        crop: Option<PixelBox>,
    ) -> Result<Option<crate::scoring::Embedding>, UserError> {
        let (model_id, params) = {
            let m = self.model()?;
            (m.id(), m.normalise_params().clone())
        };
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
        // The cheque goes through the same crop-and-normalise step as `verify` and `batch`.
        let normalised = match (slot, crop.or(d.detected.map(|(b, _)| b))) {
            (Slot::Cheque, Some(b)) => crate::imaging::cheque::prepare_questioned(
                &d.gray,
                &crate::imaging::cheque::ChequeLayout::default(),
                Some(crate::imaging::cheque::CropBox {
                    x: b.x,
                    y: b.y,
                    width: b.width,
                    height: b.height,
                }),
                &params,
            )
            .map(|p| p.normalised),
            // A cheque without a box is not scored: the decision is REFER until the clerk draws one.
            (Slot::Cheque, None) if !d.bare => return Ok(None),
            _ => crate::imaging::normalise::normalise(&d.gray, &params),
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
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| UserError::new("The model is not loaded.", "Try again."))?;
        let e = model
            .embed(std::slice::from_ref(&n))
            .map_err(|e| model_error("The network failed", &e))?
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
        let mut refs = Vec::new();
        for s in &ref_slots {
            if let Some(e) = self.embed_slot(*s, None)? {
                refs.push(e);
            }
        }
        let questioned = self.embed_slot(Slot::Cheque, crop)?;
        // The same policy as `countersign verify` and `batch`: store settings over the model card,
        // and no probability at all (REFER) when nothing was calibrated.
        let policy = {
            let model = self
                .model
                .as_ref()
                .ok_or_else(|| UserError::new("The model is not loaded.", "Try again."))?;
            let store = self.store.as_ref();
            crate::verify::Policy::resolve(store, model).map_err(|e| {
                UserError::new(
                    format!("The decision settings could not be read: {e}"),
                    "Ask a supervisor to check the thresholds.",
                )
            })?
        };
        // The same scoring and decision code as `countersign verify` and `batch`.
        let ref_embeddings: Vec<&crate::scoring::Embedding> = refs.iter().collect();
        let not_found = self.images.get(&Slot::Cheque).and_then(|d| {
            (questioned.is_none() && crop.is_none() && !d.bare)
                .then(|| box_uncertain_reason(&d.gray, &d.sha256))?
        });
        let scored = policy
            .decide(
                questioned.as_ref(),
                Some(not_found.as_deref().unwrap_or(NO_SIGNATURE_REASON)),
                &ref_embeddings,
                account.as_deref(),
                amount_cents,
            )
            .map_err(|e| {
                UserError::new(
                    format!("Scoring failed: {e}"),
                    "Load other references and try again.",
                )
            })?;
        let score = scored.raw_score.unwrap_or(f64::NAN);
        let probability = scored.probability;
        let mut outcome = scored.outcome;
        // Only when there really is no calibration: a probability can also be missing because the
        // model's per-account stage needs more references, and the policy's reason says so.
        if questioned.is_some() && probability.is_none() && policy.calibration.is_none() {
            outcome.reason = "No calibration is configured (neither saved by a supervisor nor in the model card), so \
                              every cheque is referred. A supervisor can calibrate on the Calibrate screen."
                .into();
        }
        let model_id = self.model()?.id();
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
            probability: probability.unwrap_or(0.0),
            calibrated: probability.is_some(),
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
        let nd = crate::store::NewDecision {
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
            raw_score: outcome.score.is_finite().then_some(outcome.score),
            probability: outcome.calibrated.then_some(outcome.probability),
            t_accept: outcome.thresholds.accept,
            t_reject: outcome.thresholds.reject,
            decision: outcome.decision,
            final_action,
            reason,
            final_decision,
            hand_drawn_box: outcome.hand_drawn,
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
        Ok(to_row(&row))
    }

    /// The signed-in operator's latest decisions.
    pub fn recent(&mut self, limit: usize) -> Result<Vec<DecisionRow>, UserError> {
        let Some(op) = self.operator.clone() else {
            return Ok(Vec::new());
        };
        let filter = crate::store::DecisionFilter {
            operator: Some(op.name().to_string()),
            ..Default::default()
        };
        let rows = self
            .store()?
            .query_decisions(&filter, 0, limit as u64)
            .map_err(|e| store_error("Could not read recent decisions", e))?;
        Ok(rows.iter().map(to_row).collect())
    }

    fn require_audit(&self) -> Result<(), UserError> {
        let op = self.require_operator()?;
        op.require(crate::store::Permission::ReadAudit)
            .map_err(|e| store_error("The audit log is closed to you", e))
    }

    pub fn count_decisions(&mut self, filter: &AuditFilter) -> Result<u64, UserError> {
        self.require_audit()?;
        let f = store_filter(filter)?;
        self.store()?
            .count_decisions(&f)
            .map_err(|e| store_error("Could not count decisions", e))
    }

    pub fn query_decisions(
        &mut self,
        filter: &AuditFilter,
        offset: u64,
        limit: usize,
    ) -> Result<Vec<DecisionRow>, UserError> {
        self.require_audit()?;
        let f = store_filter(filter)?;
        let rows = self
            .store()?
            .query_decisions(&f, offset, limit as u64)
            .map_err(|e| store_error("Could not read decisions", e))?;
        Ok(rows.iter().map(to_row).collect())
    }

    pub fn decision_detail(&mut self, id: i64) -> Result<DecisionDetail, UserError> {
        self.require_audit()?;
        let store = self.store()?;
        let r = store
            .decision(id)
            .map_err(|e| store_error("Could not read the decision", e))?
            .ok_or_else(|| {
                UserError::new(
                    format!("Decision {id} does not exist."),
                    "Refresh the list.",
                )
            })?;
        // The store keeps reference images (not cheques); find the compared one by its hash.
        let mut reference = None;
        if let Some(acct) = &r.account
            && let Ok(refs) = store.references(acct, true)
            && let Some(found) = refs
                .iter()
                .find(|x| r.reference_sha256s.contains(&x.sha256))
            && let Ok(bytes) = store.reference_image(found.id)
            && let Ok(g) = crate::imaging::decode::decode_bytes(
                &bytes,
                "reference",
                &crate::imaging::decode::DecodeLimits::default(),
            )
        {
            reference = Some(preview(&g, REFERENCE_PREVIEW.0, REFERENCE_PREVIEW.1).0);
        }
        // The signature as scored, from the store, checked against the hash in the chained row.
        let (signature, signature_note) = match store.decision_signature(id) {
            Ok(Some(png)) => match crate::imaging::decode::decode_bytes(
                &png,
                "logged signature",
                &crate::imaging::decode::DecodeLimits::default(),
            ) {
                Ok(g) => (
                    Some(Gray {
                        width: g.width() as usize,
                        height: g.height() as usize,
                        pixels: g.into_raw(),
                    }),
                    None,
                ),
                Err(e) => (None, Some(format!("The logged signature could not be read: {e}"))),
            },
            Ok(None) => (
                None,
                Some("No signature image is logged with this decision (none was found on the cheque).".into()),
            ),
            Err(e) => (None, Some(e.to_string())),
        };
        // A cheque still loaded on the Verify screen with the same hash can be shown too.
        let cheque = self
            .images
            .get(&Slot::Cheque)
            .filter(|d| d.sha256 == r.cheque_sha256)
            .map(|d| preview(&d.gray, REFERENCE_PREVIEW.0, REFERENCE_PREVIEW.1).0);
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let mut fields = vec![
            ("Time (UTC)".to_string(), r.time.clone()),
            ("Operator".into(), r.operator.clone()),
            ("Account".into(), opt(&r.account)),
            ("Cheque id".into(), opt(&r.cheque_id)),
            ("Model decision".into(), r.decision.as_str().into()),
            (
                "Score".into(),
                fmt_opt(r.raw_score, "none (no signature scored)"),
            ),
            (
                "Probability".into(),
                fmt_opt(r.probability, "none (not calibrated)"),
            ),
            (
                "Thresholds".into(),
                format!("accept {:.3}, reject {:.3}", r.t_accept, r.t_reject),
            ),
            ("Final decision".into(), r.final_decision.as_str().into()),
            ("Action".into(), r.effective_action().as_str().into()),
            (
                "Signature box".into(),
                if r.hand_drawn_box {
                    "drawn by hand by the operator".into()
                } else {
                    "as found".into()
                },
            ),
        ];
        if r.in_referral() {
            fields.push((
                "Referral".into(),
                "waiting for a supervisor (Queue screen)".into(),
            ));
        }
        if let Some(a) = &r.action {
            fields.push(("Action by".into(), format!("{} at {}", a.operator, a.time)));
        }
        let row = to_row(&r);
        if !row.reason.is_empty() {
            fields.push(("Reason".into(), row.reason.clone()));
        }
        fields.extend([
            (
                "Crop box".into(),
                r.crop
                    .map(|c| format!("x {} y {} w {} h {}", c.x, c.y, c.w, c.h))
                    .unwrap_or_else(|| "-".into()),
            ),
            ("Model".into(), r.model_id.clone()),
            ("Device".into(), r.device.clone()),
            ("Latency".into(), format!("{:.1} ms", r.latency_ms)),
            ("Source".into(), r.source.clone()),
            ("Cheque SHA-256".into(), r.cheque_sha256.clone()),
            ("Reference SHA-256".into(), r.reference_sha256s.join("\n")),
            ("Row hash".into(), r.hash.clone()),
        ]);
        Ok(DecisionDetail {
            row,
            signature,
            signature_note,
            cheque,
            reference,
            fields,
        })
    }

    pub fn save_thresholds(
        &mut self,
        thresholds: Thresholds,
        calibration: Option<crate::scoring::Calibration>,
        reason: &str,
    ) -> Result<String, UserError> {
        use crate::store::SettingsChange;
        let op = self.require_operator()?;
        let store = self.store()?;
        // Two named changes, each waiting for a second supervisor (four eyes).
        let mut asked = Vec::new();
        if let Some(c) = calibration {
            let r = store
                .request_settings_change(&op, &SettingsChange::Calibration(c), reason)
                .map_err(|e| store_error("The calibration change was not requested", e))?;
            asked.push(format!(
                "calibration change #{} (a {:.4} -> {:.4}, b {:.4} -> {:.4})",
                r.id, r.old.calibration.a, c.a, r.old.calibration.b, c.b
            ));
        }
        let r = store
            .request_settings_change(&op, &SettingsChange::Thresholds(thresholds), reason)
            .map_err(|e| store_error("The threshold change was not requested", e))?;
        asked.push(format!(
            "threshold change #{} (ACCEPT {:.3} -> {:.3}, REJECT {:.3} -> {:.3})",
            r.id,
            r.old.thresholds.accept,
            thresholds.accept,
            r.old.thresholds.reject,
            thresholds.reject
        ));
        Ok(format!(
            "Requested and logged: {}. Nothing changes until a second supervisor approves on the Queue screen.",
            asked.join(" and ")
        ))
    }

    pub fn activate_model(&mut self, path: &Path, reason: &str) -> Result<String, UserError> {
        let op = self.require_operator()?;
        let device = self
            .config
            .device
            .resolve()
            .map_err(|e| UserError::new(format!("{e}"), "Use --device cpu."))?;
        // Load it first: a model that does not load is never activated, and the current one stays.
        let m = crate::model::SignatureModel::load(path, device)
            .map_err(|e| model_error(&format!("{} was not activated", path.display()), &e))?;
        let id = m.id();
        let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        drop(m);
        let r = self
            .store()?
            .request_settings_change(
                &op,
                &crate::store::SettingsChange::Model {
                    id: id.clone(),
                    path: Some(abs.display().to_string()),
                },
                reason,
            )
            .map_err(|e| store_error("The model change was not requested", e))?;
        Ok(format!(
            "Activation of model {id} requested (change #{}): it takes effect when a second supervisor approves it on the Queue screen.",
            r.id
        ))
    }
}

/// What the cheque slot holds: a full cheque scan, or a bare signature image (a clerk may scan just
/// the signature), as [`crate::verify::InputKind::resolve`] decides for `verify` and `batch` too. Bare
/// signatures are scored whole; a cheque's signature is found by the imaging layer's finder, and when
/// it finds nothing convincing the clerk draws the box or the cheque is REFERRED.
enum ChequeKind {
    Found(PixelBox, f32),
    NotFound(String),
    /// With the note that says why it was taken as a bare signature.
    BareSignature(String),
}

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
    /// Sets what the cheque slot's image is taken to be (the Verify screen's choice, the same
    /// [`crate::verify::InputKind`] as `verify --kind` and the manifest's `kind` column). A loaded
    /// cheque is classified again at once; the new view comes back (`None` when nothing changed).
    pub fn set_cheque_kind(
        &mut self,
        kind: crate::verify::InputKind,
    ) -> Result<Option<LoadedImage>, UserError> {
        if kind == self.cheque_kind {
            return Ok(None);
        }
        self.cheque_kind = kind;
        let Some(d) = self.images.remove(&Slot::Cheque) else {
            return Ok(None);
        };
        self.insert_image(Slot::Cheque, d.gray, d.sha256, d.source)
            .map(Some)
    }
}

fn classify_cheque(gray: &image::GrayImage, kind: crate::verify::InputKind) -> ChequeKind {
    use crate::imaging::cheque::{ChequeLayout, find_signature};
    let (w, h) = gray.dimensions();
    if kind.resolve(w, h) == crate::verify::QuestionedKind::Signature {
        return ChequeKind::BareSignature(kind.explain(w, h));
    }
    match find_signature(gray, &ChequeLayout::default()) {
        Ok(f) if f.found => ChequeKind::Found(
            PixelBox {
                x: f.bbox.x,
                y: f.bbox.y,
                width: f.bbox.width,
                height: f.bbox.height,
            },
            f.confidence,
        ),
        Ok(f) if f.box_uncertain => ChequeKind::NotFound(format!(
            "The signature box is uncertain: the box found holds only part of the ink. {}",
            kind.explain(w, h)
        )),
        Ok(f) => ChequeKind::NotFound(format!(
            "No convincing signature was found on the cheque (confidence {:.0}%).",
            f.confidence * 100.0
        )),
        Err(e) => ChequeKind::NotFound(format!("The signature could not be searched for: {e}.")),
    }
}

/// Long tasks run on their own threads with their own database connection, so the worker stays free
/// for the clerk's verifications.
pub fn verify_chain(config: &BackendConfig) -> Result<ChainReport, UserError> {
    let store = open_store(config)?;
    let r = store
        .verify_chain()
        .map_err(|e| store_error("The chain could not be checked", e))?;
    let message = match &r.first_bad {
        None => match &r.head {
            Some(h) => format!(
                "Head row {} hash {}...",
                h.row_id,
                h.hash.chars().take(16).collect::<String>()
            ),
            None => "The log is empty.".into(),
        },
        Some((id, why)) => format!(
            "First bad row {id}: {why}. Keep this database as evidence and tell your supervisor."
        ),
    };
    let differing = store
        .operators_differing_from_chain()
        .map_err(|e| store_error("The operators could not be checked", e))?;
    if r.is_intact() && !differing.is_empty() {
        let list: Vec<String> = differing.into_iter().map(|(_, why)| why).collect();
        return Ok(ChainReport {
            ok: false,
            rows_checked: r.rows_checked,
            message: format!(
                "The chain is intact, but the operators table was changed outside Countersign: {}. \
                 Keep this database as evidence and tell your supervisor.",
                list.join("; ")
            ),
        });
    }
    // The same checks as `audit verify` beside the chain: reference images, cached embeddings,
    // logged signatures and the protecting triggers.
    let side = store
        .side_table_problems()
        .map_err(|e| store_error("The stored images could not be checked", e))?;
    if r.is_intact() && !side.is_empty() {
        return Ok(ChainReport {
            ok: false,
            rows_checked: r.rows_checked,
            message: format!(
                "The chain is intact, but {} problem(s) were found beside it: {}. Keep this database as evidence \
                 and tell your supervisor.",
                side.len(),
                side.join("; ")
            ),
        });
    }
    Ok(ChainReport {
        ok: r.is_intact(),
        rows_checked: r.rows_checked,
        message,
    })
}

/// Exports the filtered decisions: CSV, or JSON Lines when the file name ends in `.jsonl`/`.json`.
pub fn export_audit(
    config: &BackendConfig,
    operator: &crate::store::Operator,
    filter: &AuditFilter,
    out: &Path,
) -> Result<String, UserError> {
    let f = store_filter(filter)?;
    let format = match out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("jsonl" | "json" | "ndjson") => crate::store::ExportFormat::Jsonl,
        _ => crate::store::ExportFormat::Csv,
    };
    let mut store = open_store(config)?;
    let summary = store
        .export_decisions(operator, &f, format, out, &mut |_| {})
        .map_err(|e| store_error("The export failed", e))?;
    Ok(format!(
        "Exported {} decisions to {} (SHA-256 in {}; the export is logged).",
        summary.rows,
        out.display(),
        summary.sha256_path.display()
    ))
}

/// The model in force: the one rule of [`crate::model::in_force`] (`--model`, else the model a
/// supervisor activated, else the bundled one).
fn resolve_model(
    config: &BackendConfig,
    store: Option<&crate::store::Store>,
) -> Option<crate::model::ModelInForce> {
    crate::model::in_force::choose(store, config.model_path.as_deref()).ok()
}

fn load_model(
    config: &BackendConfig,
    store: Option<&crate::store::Store>,
) -> Result<crate::model::SignatureModel, UserError> {
    let device = config.device.resolve().map_err(|e| {
        UserError::new(
            format!("{e}"),
            "Start Countersign with --device cpu, or check the GPU driver.",
        )
    })?;
    let choice = resolve_model(config, store).ok_or_else(|| {
        UserError::new(
            "No model was found (models/countersign-default.safetensors is missing).",
            "Reinstall Countersign, or start it with --model PATH to a trained model.",
        )
    })?;
    let path = choice.path.clone();
    choice.load(device).map_err(|e| {
        model_error(
            &format!("The model {} could not be loaded", path.display()),
            &e,
        )
    })
}

fn stopped_error() -> UserError {
    UserError::new("Stopped.", "")
}

/// Evaluates the active model on a labelled folder (writer folders, CEDAR layout or a manifest) with
/// the scoring layer's protocol, fits the calibration on it, and returns the calibrated probabilities
/// the Calibrate screen plots and thresholds.
pub fn evaluate(
    config: &BackendConfig,
    folder: &Path,
    progress: &mut dyn FnMut(f32, &str),
    stop: &StopFlag,
) -> Result<EvalSummary, UserError> {
    use crate::scoring::{
        EvalConfig, Forgeries, eer, evaluation_scores, fit_platt, labelled_scores, roc_points,
    };
    let store = open_store(config).ok();
    let model = load_model(config, store.as_ref())?;
    progress(0.0, "Reading the folder");
    let ds = crate::train::dataset::scan(folder, crate::train::dataset::Layout::Auto).map_err(|e| {
        UserError::new(
            format!("{} is not a labelled signature folder: {e}", folder.display()),
            "Choose a folder with one folder per writer (NNN/ genuine, NNN_forg/ forgeries), a CEDAR folder, or a manifest.",
        )
    })?;
    // The same decoding, normalisation and embedding as `countersign evaluate` and `calibrate`.
    let set = crate::assess::embed_dataset(&model, &ds, &mut |done, total| {
        progress(
            0.9 * done as f32 / total.max(1) as f32,
            &format!("Embedded {done} of {total} signatures"),
        );
        if stopped(stop) {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    })
    .map_err(|e| match e {
        crate::assess::AssessError::Stopped => stopped_error(),
        e => UserError::new(
            format!("The folder could not be embedded: {e}"),
            "Check that the folder holds signature images the application can read.",
        ),
    })?;
    let skipped = set.failures.len();
    let samples = set.samples;
    // K references per writer: 5 as in the model card's protocol, fewer for small folders so every
    // writer keeps at least one questioned genuine signature.
    let mut genuine_per_writer: HashMap<&str, usize> = HashMap::new();
    for s in &samples {
        if s.genuine {
            *genuine_per_writer.entry(s.writer.as_str()).or_default() += 1;
        }
    }
    let fewest = genuine_per_writer.values().copied().min().unwrap_or(0);
    let k = fewest.saturating_sub(1).clamp(1, 5);
    // The model's per-account stage applies, as in `countersign calibrate`.
    let cfg = crate::assess::protocol_for(
        &model,
        EvalConfig {
            references: k.max(model.card().score_normalisation.min_references()),
            ..EvalConfig::default()
        },
    );
    let bad = |e: crate::scoring::ScoringError| {
        UserError::new(
            format!("The folder cannot be evaluated: {e}"),
            "Each writer needs at least two genuine signatures, and the folder needs forgeries (NNN_forg/).",
        )
    };
    let pairs = evaluation_scores(&samples, &cfg).map_err(bad)?;
    let kind = if pairs.iter().any(|p| p.skilled) {
        Forgeries::Skilled
    } else {
        Forgeries::Random
    };
    let (scores, labels) = labelled_scores(&pairs, kind);
    let calibration = fit_platt(&scores, &labels).map_err(bad)?;
    let probs: Vec<f64> = scores.iter().map(|&s| calibration.probability(s)).collect();
    let genuine: Vec<f64> = probs
        .iter()
        .zip(&labels)
        .filter(|(_, l)| **l)
        .map(|(p, _)| *p)
        .collect();
    let forgery: Vec<f64> = probs
        .iter()
        .zip(&labels)
        .filter(|(_, l)| !**l)
        .map(|(p, _)| *p)
        .collect();
    let roc = roc_points(&probs, &labels).map_err(bad)?;
    let roc = crate::scoring::downsample(&roc, 400);
    let e = eer(&probs, &labels).map_err(bad)?;
    // The operating point in force, by the policy's own rule (store, else card; `None` under the
    // built-in default that refers everything).
    let current = crate::verify::Policy::resolve(store.as_ref(), &model)
        .ok()
        .filter(|p| p.source != crate::verify::PolicySource::BuiltInDefault)
        .map(|p| p.decision.thresholds);
    progress(1.0, "Done");
    let writers = genuine_per_writer.len();
    let skipped_note = if skipped > 0 {
        format!(" ({skipped} unreadable images left out)")
    } else {
        String::new()
    };
    Ok(EvalSummary {
        genuine,
        forgery,
        roc: roc.iter().map(|p| (p.far(), p.tpr)).collect(),
        det: roc.iter().map(|p| (p.far(), p.frr())).collect(),
        eer: e.eer,
        eer_threshold: e.threshold.clamp(0.0, 1.0),
        model_id: format!("{}{skipped_note}", model.id()),
        writers,
        current,
        calibration: Some(calibration),
        calibration_in_force: crate::verify::Policy::resolve(store.as_ref(), &model)
            .ok()
            .and_then(|p| p.calibration),
        genuine_scores: split_scores(&scores, &labels, true),
        forgery_scores: split_scores(&scores, &labels, false),
        score_ceiling: (model.card().score_normalisation
            == crate::scoring::ScoreNormalisation::None)
            .then_some(1.0),
    })
}

/// The thresholds a supervisor's approved threshold change put in force; `None` while none was
/// approved (then the model card's apply, as [`crate::verify::Policy::resolve`] decides). Another
/// approved change (a model, an amount rule) does not make the settings' stored default thresholds
/// the ones in force.
fn approved_thresholds(store: &mut crate::store::Store) -> Option<Thresholds> {
    let approved = store
        .settings_history()
        .ok()?
        .iter()
        .any(|h| matches!(h.change, crate::store::SettingsChange::Thresholds(_)));
    approved
        .then(|| store.current_settings().ok().map(|s| s.thresholds))
        .flatten()
}

/// The calibration a supervisor's approved calibration change put in force; `None` while none was
/// approved (then the model card's applies, as [`crate::verify::Policy::resolve`] decides).
fn approved_calibration(store: &mut crate::store::Store) -> Option<crate::scoring::Calibration> {
    let approved = store
        .settings_history()
        .ok()?
        .iter()
        .any(|h| matches!(h.change, crate::store::SettingsChange::Calibration(_)));
    approved
        .then(|| store.current_settings().ok().map(|s| s.calibration))
        .flatten()
}

/// The scores whose label is `genuine`.
fn split_scores(scores: &[f64], labels: &[bool], genuine: bool) -> Vec<f64> {
    scores
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l == genuine)
        .map(|(s, _)| *s)
        .collect()
}

impl Backend {
    /// Requests a new probability calibration alone (four eyes: it takes effect when a second
    /// supervisor approves). Thresholds are a change of their own ([`Backend::save_thresholds`]).
    pub fn request_calibration(
        &mut self,
        calibration: crate::scoring::Calibration,
        reason: &str,
    ) -> Result<String, UserError> {
        let op = self.require_operator()?;
        let r = self
            .store()?
            .request_settings_change(
                &op,
                &crate::store::SettingsChange::Calibration(calibration),
                reason,
            )
            .map_err(|e| store_error("The calibration change was not requested", e))?;
        Ok(format!(
            "Requested and logged: calibration change #{} (a {:.4} -> {:.4}, b {:.4} -> {:.4}). Nothing changes \
             until a second supervisor approves on the Queue screen.",
            r.id, r.old.calibration.a, calibration.a, r.old.calibration.b, calibration.b
        ))
    }
}

/// Trains a model with the training layer's loop on this thread, reporting every step.
pub fn train(
    config: &BackendConfig,
    options: &TrainOptions,
    on_update: &mut dyn FnMut(TrainUpdate),
    stop: &StopFlag,
) -> Result<Option<PathBuf>, UserError> {
    use crate::train::{LossKind, SourceSpec, TrainConfig};
    let device = config
        .device
        .resolve()
        .map_err(|e| UserError::new(format!("{e}"), "Train with --device cpu."))?;
    let mut sources = Vec::new();
    if !options.data.as_os_str().is_empty() {
        let name = options
            .data
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "data".into());
        sources.push(SourceSpec::Data {
            name,
            path: options.data.clone(),
            layout: crate::train::Layout::Auto,
            weight: 1.0,
            licence: "the bank's own data".into(),
        });
    }
    if options.synthetic_writers > 0 {
        sources.push(SourceSpec::Synthetic {
            writers: options.synthetic_writers,
            genuine: 12,
            forgeries: 6,
            weight: 1.0,
        });
    }
    let defaults = TrainConfig::default();
    // A batch is P writers x (K genuine + F forgeries); the screen asks for the batch size.
    let per_writer = defaults.genuine_per_writer + defaults.forgeries_per_writer;
    let cfg = TrainConfig {
        sources,
        out: options.out.clone(),
        epochs: options.epochs.max(1) as u32,
        writers_per_batch: (options.batch_size / per_writer.max(1)).max(2),
        loss: if options.triplet {
            LossKind::Triplet
        } else {
            LossKind::Contrastive
        },
        lr: options.learning_rate,
        seed: options.seed,
        init: options.init.clone(),
        device,
        command_line: format!(
            "countersign gui (Train screen): data {} synthetic {} epochs {} batch {} lr {} loss {} seed {} init {}",
            options.data.display(),
            options.synthetic_writers,
            options.epochs,
            options.batch_size,
            options.learning_rate,
            if options.triplet {
                "triplet"
            } else {
                "contrastive"
            },
            options.seed,
            options
                .init
                .as_ref()
                .map_or_else(|| "none".into(), |p| p.display().to_string())
        ),
        ..defaults
    };
    let epochs = f64::from(cfg.epochs);
    let outcome = crate::train::run(
        &cfg,
        |e| {
            if let Some(m) = &e.message {
                on_update(TrainUpdate::Message(m.clone()));
            }
            if let Some(v) = e.val_eer {
                on_update(TrainUpdate::Epoch { epoch: e.epoch as usize, train_loss: e.loss, val_eer: v });
            } else if e.step > 0 && e.loss.is_finite() {
                let x = e.step as f64 / e.total_steps.max(1) as f64 * epochs;
                on_update(TrainUpdate::Step { x, fraction: e.step as f32 / e.total_steps.max(1) as f32, loss: e.loss });
            }
        },
        stop.clone(),
    )
    .map_err(|e| {
        UserError::new(
            format!("Training failed: {e}"),
            "Check the dataset folder (one folder per writer with genuine signatures) and the options.",
        )
    })?;
    // Whether the run stopped is the training loop's answer, not the flag's: a stop pressed after
    // the last step still ends with a written model.
    let Some(weights) = outcome.weights.clone().filter(|_| !outcome.stopped) else {
        on_update(TrainUpdate::Stopped {
            epochs_completed: outcome.epochs_completed,
            epochs: cfg.epochs,
            checkpoint: outcome.checkpoint.clone(),
            best: outcome.best.clone(),
        });
        return Ok(None);
    };
    let card = card_fields(&crate::model::card_path(&weights));
    on_update(TrainUpdate::Finished {
        model_path: weights.clone(),
        card,
    });
    Ok(Some(weights))
}

/// The model card as (field, value) lines for display, nested objects flattened with dots.
pub fn card_fields(card: &Path) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            serde_json::Value::Array(a) if a.len() > 6 => {
                out.push((prefix.to_string(), format!("[{} items]", a.len())))
            }
            serde_json::Value::Null => {}
            other => out.push((
                prefix.to_string(),
                other.to_string().trim_matches('"').to_string(),
            )),
        }
    }
    let mut out = Vec::new();
    match std::fs::read_to_string(card).map(|t| serde_json::from_str::<serde_json::Value>(&t)) {
        Ok(Ok(v)) => walk("", &v, &mut out),
        _ => out.push((
            "card".into(),
            format!("{} could not be read", card.display()),
        )),
    }
    out
}

/// Runs a batch with the batch layer (the same code as `countersign batch`), reporting progress from
/// its counter; the results are written to a temporary CSV and read back for the table.
pub fn run_batch(
    config: &BackendConfig,
    operator: &crate::store::Operator,
    manifest: &Path,
    progress: &(dyn Fn(u64, u64, &[BatchRow]) + Sync),
    stop: &StopFlag,
) -> Result<Vec<BatchRow>, UserError> {
    let mut store = open_store(config)?;
    let model = load_model(config, Some(&store))?;
    let verifier = crate::verify::Verifier::from_store(
        crate::verify::shared_model(model),
        crate::imaging::cheque::ChequeLayout::default(),
        Some(&store),
    )
    .map_err(|e| {
        UserError::new(
            format!("The batch cannot start: {e}"),
            "Ask a supervisor to check the thresholds and the model.",
        )
    })?;
    let out = std::env::temp_dir().join(format!(
        "countersign-batch-{}-{}.csv",
        std::process::id(),
        time::OffsetDateTime::now_utc().unix_timestamp_nanos()
    ));
    // An X9 image cash letter is recognised by its content, whatever its name.
    let is_x9 = crate::x9::looks_like_x9(manifest);
    let opts = if is_x9 {
        crate::batch::BatchOptions::x9(manifest, &out)
    } else {
        crate::batch::BatchOptions::new(manifest, &out)
    };
    let total = if is_x9 {
        // The batch checks the whole file again before it starts; this pass only counts the items.
        crate::x9::scan(manifest).map(|s| s.items).unwrap_or(0)
    } else {
        crate::batch::manifest::count_rows(manifest).unwrap_or(0)
    };
    let bar = indicatif::ProgressBar::hidden();
    bar.set_length(total);
    let finished = AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        let poll_bar = bar.clone();
        let finished = &finished;
        scope.spawn(move || {
            while !finished.load(Ordering::Relaxed) {
                progress(poll_bar.position(), total, &[]);
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        });
        let r = crate::batch::run(&verifier, &mut store, operator, &opts, stop, &bar);
        finished.store(true, Ordering::Relaxed);
        r
    });
    let summary = result.map_err(|e| {
        UserError::new(
            format!("The batch failed: {e}"),
            if is_x9 {
                "The X9 file was refused as a whole (nothing in it was decided): ask the sending bank for a corrected file."
            } else {
                "Check the manifest (columns cheque_id, cheque path, account or reference). Rows already decided are kept; run it again to continue."
            },
        )
    })?;
    let mut rows = Vec::new();
    let mut reader = csv::Reader::from_path(&out).map_err(|e| {
        UserError::new(
            format!("The results could not be read: {e}"),
            "Run the batch again.",
        )
    })?;
    for r in reader.deserialize::<crate::batch::output::ResultRow>() {
        let r = r.map_err(|e| {
            UserError::new(
                format!("The results could not be read: {e}"),
                "Run the batch again.",
            )
        })?;
        rows.push(BatchRow {
            cheque_id: r.cheque_id,
            account: r.account_id.unwrap_or_default(),
            outcome: r.decision.as_str().to_string(),
            probability: r.probability,
            score: r.score,
            error: r.error,
            reason: r.reason,
        });
    }
    let _ = std::fs::remove_file(&out);
    progress(summary.rows, total.max(summary.rows), &[]);
    if summary.stopped.is_some() && stopped(stop) {
        return Err(stopped_error());
    }
    Ok(rows)
}

/// Writes batch results as CSV (this is the GUI's own export of what it shows).
pub fn export_batch(rows: &[BatchRow], out: &Path) -> Result<String, UserError> {
    let write = || -> anyhow::Result<()> {
        let mut w = csv::Writer::from_path(out)?;
        w.write_record([
            "cheque_id",
            "account",
            "outcome",
            "probability",
            "score",
            "error",
        ])?;
        for r in rows {
            w.write_record([
                r.cheque_id.as_str(),
                r.account.as_str(),
                r.outcome.as_str(),
                &r.probability.map(|p| format!("{p:.6}")).unwrap_or_default(),
                &r.score.map(|s| format!("{s:.6}")).unwrap_or_default(),
                r.error.as_str(),
            ])?;
        }
        w.flush()?;
        Ok(())
    };
    write()
        .map_err(|e| UserError::from_anyhow(&format!("Could not write {}", out.display()), &e))?;
    Ok(format!("Wrote {} rows to {}", rows.len(), out.display()))
}

/// A display copy of a decoded image no larger than `max_w` x `max_h`, and its scale (preview pixels
/// per original pixel). Small images are kept at full size.
pub fn preview(img: &image::GrayImage, max_w: u32, max_h: u32) -> (Gray, f32) {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return (
            Gray {
                width: 0,
                height: 0,
                pixels: Vec::new(),
            },
            1.0,
        );
    }
    let scale = (max_w as f32 / w as f32)
        .min(max_h as f32 / h as f32)
        .min(1.0);
    let (pw, ph) = (
        ((w as f32 * scale).round() as u32).max(1),
        ((h as f32 * scale).round() as u32).max(1),
    );
    let small = if (pw, ph) == (w, h) {
        img.clone()
    } else {
        image::imageops::resize(img, pw, ph, image::imageops::FilterType::Triangle)
    };
    let scale = pw as f32 / w as f32;
    (
        Gray {
            width: pw as usize,
            height: ph as usize,
            pixels: small.into_raw(),
        },
        scale,
    )
}

/// A normalised signature (ink bright) as dark ink on white paper, the way people read it.
pub fn normalised_gray(n: &crate::imaging::NormalisedSignature) -> Gray {
    Gray {
        width: n.width as usize,
        height: n.height as usize,
        pixels: n.to_gray_pixels(),
    }
}

/// The questioned signature in red over the reference in blue on white; where both have ink the
/// result is dark, so matching strokes read as black and differences stand out in colour. The two
/// must have the same size (both are the network's input); otherwise the questioned one is shown alone.
pub fn overlay(
    questioned: &crate::imaging::NormalisedSignature,
    reference: &crate::imaging::NormalisedSignature,
) -> Rgba {
    let (w, h) = (questioned.width as usize, questioned.height as usize);
    let same = reference.width == questioned.width && reference.height == questioned.height;
    let mut pixels = Vec::with_capacity(w * h * 4);
    for i in 0..w * h {
        let q = questioned
            .pixels
            .get(i)
            .copied()
            .unwrap_or(0.0)
            .clamp(0.0, 1.0);
        let r = if same {
            reference
                .pixels
                .get(i)
                .copied()
                .unwrap_or(0.0)
                .clamp(0.0, 1.0)
        } else {
            0.0
        };
        let red = 255.0 * (1.0 - r);
        let green = 255.0 * (1.0 - q.max(r));
        let blue = 255.0 * (1.0 - q);
        pixels.extend_from_slice(&[
            red.round() as u8,
            green.round() as u8,
            blue.round() as u8,
            255,
        ]);
    }
    Rgba {
        width: w,
        height: h,
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::NormalisedSignature;

    fn sig(w: u32, h: u32, ink: &[usize]) -> NormalisedSignature {
        let mut pixels = vec![0.0; (w * h) as usize];
        for &i in ink {
            pixels[i] = 1.0;
        }
        NormalisedSignature {
            width: w,
            height: h,
            pixels,
        }
    }

    #[test]
    fn overlay_colours_questioned_red_reference_blue_both_black() {
        let q = sig(3, 1, &[0, 2]);
        let r = sig(3, 1, &[1, 2]);
        let o = overlay(&q, &r);
        assert_eq!(&o.pixels[0..4], &[255, 0, 0, 255], "questioned only: red");
        assert_eq!(&o.pixels[4..8], &[0, 0, 255, 255], "reference only: blue");
        assert_eq!(&o.pixels[8..12], &[0, 0, 0, 255], "both: black");
    }

    #[test]
    fn preview_keeps_aspect_and_reports_scale() {
        let img = image::GrayImage::from_pixel(1700, 800, image::Luma([200]));
        let (p, scale) = preview(&img, 850, 850);
        assert_eq!((p.width, p.height), (850, 400));
        assert!((scale - 0.5).abs() < 1e-6);
        assert_eq!(p.pixels.len(), 850 * 400);
        let small = image::GrayImage::from_pixel(100, 50, image::Luma([7]));
        let (p, scale) = preview(&small, 850, 850);
        assert_eq!((p.width, p.height, scale), (100, 50, 1.0));
    }

    #[test]
    fn normalised_gray_shows_ink_dark() {
        let g = normalised_gray(&sig(2, 1, &[1]));
        assert_eq!(g.pixels, vec![255, 0]);
    }
}
