//! The only place where the GUI touches the other layers (imaging, model, scoring, store, train, batch).
//!
//! Everything here runs on the worker thread or on a background task thread, never on the UI thread.
//! The types in this file are the GUI's own view of the data, so the screens do not depend on how
//! other layers spell their structs; when a layer changes, only this file follows it.

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
    pub score: f64,
    pub probability: f64,
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
}

/// What the clerk did with a verification.
#[derive(Clone, Debug, PartialEq)]
pub enum FinalAction {
    Confirm,
    Override { decision: Decision, reason: String },
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
    pub score: f64,
    pub probability: f64,
    pub model_id: String,
    pub cheque_sha256: String,
    pub reference_sha256: String,
}

/// Filters of the Audit screen; empty fields match everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditFilter {
    /// Inclusive dates, `YYYY-MM-DD`.
    pub from: String,
    pub to: String,
    pub operator: String,
    pub account: String,
    pub decision: Option<Decision>,
}

/// Detail of one decision, with the images where the store has them.
#[derive(Clone, Debug)]
pub struct DecisionDetail {
    pub row: DecisionRow,
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
    /// The calibration fitted on this data, saved with the thresholds.
    pub calibration: Option<crate::scoring::Calibration>,
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
}

/// Progress of a training run.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainUpdate {
    Step {
        epoch: usize,
        step: usize,
        steps_per_epoch: usize,
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
}

/// What the status bar shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusInfo {
    pub device: String,
    pub model: String,
    pub database: String,
}

/// A flag a long task polls to stop early.
pub type StopFlag = Arc<AtomicBool>;

pub fn stopped(flag: &StopFlag) -> bool {
    flag.load(Ordering::Relaxed)
}

/// Decides whether the layers this build needs are present (until each lands, its functions say so).
pub const LAYERS_PRESENT: bool = false;

/// The state the worker thread owns: the open store, the loaded model, the decoded images.
pub struct Backend {
    pub config: BackendConfig,
    operator: Option<Operator>,
}

impl Backend {
    /// Creates the backend; opening the database and loading the model happen lazily so the window
    /// appears at once even when either fails.
    pub fn new(config: BackendConfig) -> Self {
        Self {
            config,
            operator: None,
        }
    }

    pub fn status(&mut self) -> StatusInfo {
        StatusInfo {
            device: self.config.device.to_string(),
            model: match &self.config.model_path {
                Some(p) => p.display().to_string(),
                None => "no model".into(),
            },
            database: self.config.db_path.display().to_string(),
        }
    }

    pub fn sign_in(&mut self, _name: &str, _pin: &str) -> Result<Operator, UserError> {
        Err(UserError::unavailable("store"))
    }

    pub fn sign_out(&mut self) {
        self.operator = None;
    }

    pub fn load_image(&mut self, _slot: Slot, _path: &Path) -> Result<LoadedImage, UserError> {
        Err(UserError::unavailable("imaging"))
    }

    pub fn clear_slot(&mut self, _slot: Slot) {}

    pub fn load_account(&mut self, _account: &str) -> Result<Vec<LoadedImage>, UserError> {
        Err(UserError::unavailable("store"))
    }

    pub fn verify(
        &mut self,
        _crop: Option<PixelBox>,
        _account: Option<String>,
    ) -> Result<VerifyOutcome, UserError> {
        Err(UserError::unavailable("model"))
    }

    pub fn record(
        &mut self,
        _outcome: &VerifyOutcome,
        _action: &FinalAction,
    ) -> Result<DecisionRow, UserError> {
        Err(UserError::unavailable("store"))
    }

    pub fn recent(&mut self, _limit: usize) -> Result<Vec<DecisionRow>, UserError> {
        Err(UserError::unavailable("store"))
    }

    pub fn count_decisions(&mut self, _filter: &AuditFilter) -> Result<u64, UserError> {
        Err(UserError::unavailable("store"))
    }

    pub fn query_decisions(
        &mut self,
        _filter: &AuditFilter,
        _offset: u64,
        _limit: usize,
    ) -> Result<Vec<DecisionRow>, UserError> {
        Err(UserError::unavailable("store"))
    }

    pub fn decision_detail(&mut self, _id: i64) -> Result<DecisionDetail, UserError> {
        Err(UserError::unavailable("store"))
    }

    pub fn save_thresholds(
        &mut self,
        _thresholds: Thresholds,
        _calibration: Option<crate::scoring::Calibration>,
        _reason: &str,
    ) -> Result<String, UserError> {
        Err(UserError::unavailable("store"))
    }

    pub fn activate_model(&mut self, _path: &Path, _reason: &str) -> Result<String, UserError> {
        Err(UserError::unavailable("store"))
    }
}

/// Long tasks run on their own threads with their own database connection, so the worker stays free
/// for the clerk's verifications.
pub fn verify_chain(_config: &BackendConfig) -> Result<ChainReport, UserError> {
    Err(UserError::unavailable("store"))
}

pub fn export_audit(
    _config: &BackendConfig,
    _operator: &Operator,
    _filter: &AuditFilter,
    _out: &Path,
) -> Result<String, UserError> {
    Err(UserError::unavailable("store"))
}

pub fn evaluate(
    _config: &BackendConfig,
    _folder: &Path,
    _progress: &mut dyn FnMut(f32, &str),
    _stop: &StopFlag,
) -> Result<EvalSummary, UserError> {
    Err(UserError::unavailable("scoring"))
}

pub fn train(
    _config: &BackendConfig,
    _options: &TrainOptions,
    _on_update: &mut dyn FnMut(TrainUpdate),
    _stop: &StopFlag,
) -> Result<PathBuf, UserError> {
    Err(UserError::unavailable("train"))
}

pub fn run_batch(
    _config: &BackendConfig,
    _operator: &Operator,
    _manifest: &Path,
    _progress: &mut dyn FnMut(u64, u64, &[BatchRow]),
    _stop: &StopFlag,
) -> Result<Vec<BatchRow>, UserError> {
    Err(UserError::unavailable("batch"))
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
        pixels: n
            .pixels
            .iter()
            .map(|&v| 255 - (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect(),
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
