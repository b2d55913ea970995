//! Which weights and card are in force for a store: the one rule every command and the GUI follow.
//!
//! Audited decisions (a recorded `verify`, a `batch`, the GUI) use the model a supervisor activated in
//! the store (`countersign settings model`, the Calibrate screen), else the bundled default. Its card's
//! calibration and thresholds apply when the supervisor saved none, so choosing the model is choosing
//! the policy: a clerk must not be able to pick it. `--model PATH` (or `COUNTERSIGN_MODEL`) naming
//! other weights is an [`ModelOrigin::Override`]: commands that record nothing (evaluate, calibrate's
//! measurements, a dry run) may use it; an audited command accepts it only from a supervisor, and
//! `verify` by anyone else becomes a dry run that records nothing.
//!
//! The activated model is recorded with its id (a hash of the weights). Weights at the activated path
//! that no longer have that id were replaced on disk outside Countersign and are refused.

use std::path::{Path, PathBuf};

use super::{ModelError, SignatureModel};
use crate::store::Store;

/// Where the model in force comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelOrigin {
    /// Activated by a supervisor in the store's settings.
    Activated,
    /// The bundled default (no model was ever activated).
    Bundled,
    /// Named by `--model` / `COUNTERSIGN_MODEL`, and not the active model.
    Override,
}

impl ModelOrigin {
    pub fn describe(self) -> &'static str {
        match self {
            ModelOrigin::Activated => "activated in the store",
            ModelOrigin::Bundled => "bundled default",
            ModelOrigin::Override => "--model (not the active model)",
        }
    }
}

/// The weights in force and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInForce {
    pub path: PathBuf,
    pub origin: ModelOrigin,
    /// The id the supervisor activated (checked against the weights when they load).
    pub activated_id: Option<String>,
}

impl ModelInForce {
    /// Whether decisions made with this model may be recorded by anyone allowed to verify (the
    /// store's own model) rather than only by a supervisor.
    pub fn is_active(&self) -> bool {
        self.origin != ModelOrigin::Override
    }

    /// Loads the weights and card (every check of [`SignatureModel::load`]) and, for an activated
    /// model, checks that the weights are still the ones activated.
    pub fn load(&self, device: tch::Device) -> Result<SignatureModel, ModelError> {
        let m = SignatureModel::load(&self.path, device)?;
        if let Some(expected) = &self.activated_id
            && self.origin == ModelOrigin::Activated
            && m.id() != *expected
        {
            return Err(ModelError::NotActivated {
                path: self.path.display().to_string(),
                expected: expected.clone(),
                found: m.id(),
            });
        }
        Ok(m)
    }
}

/// The model a store's audited decisions use: the activated one, else the bundled default.
pub fn active(store: Option<&Store>) -> Result<ModelInForce, ModelError> {
    if let Some(settings) = store.and_then(|s| s.current_settings().ok())
        && let Some(p) = settings.model_path
    {
        return Ok(ModelInForce {
            path: PathBuf::from(p),
            origin: ModelOrigin::Activated,
            activated_id: settings.model_id,
        });
    }
    crate::paths::default_model()
        .map(|path| ModelInForce {
            path,
            origin: ModelOrigin::Bundled,
            activated_id: None,
        })
        .ok_or_else(|| {
            ModelError::NotFound(format!(
                "models/{}.safetensors (the bundled default; a supervisor activates a model with \
                 `countersign settings model`, or pass --model PATH for a run that records nothing)",
                crate::paths::DEFAULT_MODEL_STEM
            ))
        })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The model in force for a store given an optional `--model`: the explicit path when given (an
/// [`ModelOrigin::Override`] unless it is the active model's file), else [`active`].
pub fn choose(store: Option<&Store>, explicit: Option<&Path>) -> Result<ModelInForce, ModelError> {
    let Some(p) = explicit else {
        return active(store);
    };
    if let Ok(a) = active(store)
        && same_file(&a.path, p)
    {
        return Ok(a);
    }
    Ok(ModelInForce {
        path: p.to_path_buf(),
        origin: ModelOrigin::Override,
        activated_id: None,
    })
}

/// [`choose`] for a database path that may not exist: the store is opened read-only just to read
/// its settings (a store that cannot be opened has no activated model).
pub fn choose_for_db(db: &Path, explicit: Option<&Path>) -> Result<ModelInForce, ModelError> {
    let store = db
        .is_file()
        .then(|| Store::open_read_only(db).ok())
        .flatten();
    choose(store.as_ref(), explicit)
}
