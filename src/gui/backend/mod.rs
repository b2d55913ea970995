//! The only place where the GUI touches the other layers (imaging, model, scoring, store, train, batch).
//!
//! Everything here runs on the worker thread or on a background task thread, never on the UI thread.
//! The types in `view` are the GUI's own view of the data, so the screens do not depend on how other
//! layers spell their structs; when a layer changes, only the backend follows it.
//!
//! It is split along what it does:
//! - [`view`]: the view types the screens draw, and [`advice`]: failures with what to do;
//! - [`session`] and [`decision`]: the Verify screen's images, its verification and its record;
//! - [`audit_log`]: audit queries, the chain check and the export;
//! - [`settings_changes`]: a supervisor's requested changes, and [`queue_actions`]: the Queue screen's
//!   jobs (referrals resolved, changes approved or declined by a second supervisor);
//! - [`tasks`]: long tasks on their own threads (calibration, training, batches);
//! - [`raster`]: images for the screen.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::device::DeviceChoice;

mod advice;
mod audit_log;
mod decision;
mod queue_actions;
mod raster;
mod session;
mod settings_changes;
mod tasks;
mod view;

pub use advice::UserError;
use advice::model_error;
use advice::store_error;
pub use audit_log::{export_audit, store_filter, verify_chain};
pub use raster::{normalised_gray, overlay, preview};
pub use tasks::{card_fields, evaluate, export_batch, run_batch, train};
use view::role_of;
pub use view::{
    AuditFilter, BatchRow, ChainReport, DecisionDetail, DecisionRow, EvalSummary, FinalAction,
    Gray, LoadedImage, Operator, PixelBox, Rgba, Role, Slot, StatusInfo, TrainOptions, TrainUpdate,
    VerifyOutcome, action_label, shown_time,
};

/// Where the worker finds its database and model, and which device it runs the network on.
#[derive(Clone, Debug)]
pub struct BackendConfig {
    pub db_path: PathBuf,
    pub model_path: Option<PathBuf>,
    pub device: DeviceChoice,
}

/// A flag a long task polls to stop early.
pub type StopFlag = Arc<AtomicBool>;

pub fn stopped(flag: &StopFlag) -> bool {
    flag.load(Ordering::Relaxed)
}

/// The state the worker thread owns: the open store, the loaded model, the decoded images.
pub struct Backend {
    pub config: BackendConfig,
    operator: Option<crate::store::Operator>,
    store: Option<crate::store::Store>,
    model: Option<Arc<crate::model::SignatureModel>>,
    model_error: Option<String>,
    images: HashMap<Slot, session::Decoded>,
    /// Reference ids of the account whose references are loaded, in slot order.
    account_refs: Vec<i64>,
    /// What the clerk says the cheque slot's image is (the Verify screen's choice).
    cheque_kind: crate::verify::InputKind,
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
                    self.model = Some(crate::verify::shared_model(m));
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
            .as_deref()
            .ok_or_else(|| UserError::new("The model is not loaded.", "Try again."))
    }

    /// The verification service of `countersign verify` and `batch` for the model in force, with the
    /// policy in force now (store settings over the model card; no probability, so REFER, when
    /// nothing was calibrated). Made for each verification, so an approved change applies at once.
    fn verifier(&mut self) -> Result<crate::verify::Verifier, UserError> {
        self.model()?;
        let model = self
            .model
            .clone()
            .ok_or_else(|| UserError::new("The model is not loaded.", "Try again."))?;
        crate::verify::Verifier::from_store(
            model,
            crate::imaging::cheque::ChequeLayout::default(),
            self.store.as_ref(),
        )
        .map_err(|e| {
            UserError::new(
                format!("The decision settings could not be read: {e}"),
                "Ask a supervisor to check the thresholds.",
            )
        })
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
        if let Ok(v) = self.verifier() {
            let _ = v.warm_up();
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
        // One read, by the rule `verify::Policy::resolve` applies.
        let approved = self
            .store()
            .ok()
            .and_then(|s| s.approved_overrides().ok())
            .unwrap_or_default();
        StatusInfo {
            device,
            model,
            database: self.config.db_path.display().to_string(),
            x9_account_rule,
            thresholds_in_force: approved.thresholds,
            calibration_in_force: approved.calibration,
        }
    }

    pub fn sign_in(&mut self, name: &str, pin: &str) -> Result<Operator, UserError> {
        let store = self.store()?;
        let op = store
            .authenticate(name, pin)
            .map_err(|e| advice::sign_in_refused(store, name, e))?;
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
}
