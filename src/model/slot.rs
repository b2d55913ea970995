//! The active model, and how to replace it without ever being left without one.
//!
//! A supervisor activates new weights while clerks keep verifying. [`ModelSlot::swap_from_path`] loads
//! the new weights completely (every check of [`SignatureModel::load`]) and runs one probe through the
//! network before it replaces anything; on any failure the slot keeps the model it had, so a bad file
//! costs an error message, never the service. Holders of the old model (a verification in flight)
//! keep their `Arc` until they finish.
//!
//! libtorch modules are `Send` but not `Sync`, so the `Arc` does not let the model cross threads: it
//! lets the one thread that owns the slot (the GUI's worker, a batch) hand the model to several users
//! (the verify service takes an `Arc<SignatureModel>`) and keep an old one alive while it is in use.
#![allow(clippy::arc_with_non_send_sync)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tch::Device;

use super::{ModelError, SignatureModel};
use crate::imaging::NormalisedSignature;

/// The model in use and where it came from.
#[derive(Debug)]
pub struct ModelSlot {
    active: Arc<SignatureModel>,
    path: Option<PathBuf>,
    device: Device,
}

impl ModelSlot {
    /// A slot holding an already loaded (or freshly built) model.
    pub fn new(model: SignatureModel, path: Option<PathBuf>) -> Self {
        let device = model.device();
        Self {
            active: Arc::new(model),
            path,
            device,
        }
    }

    /// Loads and probes the weights at `path` and holds them.
    pub fn load(path: &Path, device: Device) -> Result<Self, ModelError> {
        let model = load_checked(path, device)?;
        Ok(Self {
            active: Arc::new(model),
            path: Some(path.to_path_buf()),
            device,
        })
    }

    /// The model in use; cheap to clone and safe to keep while the slot changes.
    pub fn active(&self) -> Arc<SignatureModel> {
        Arc::clone(&self.active)
    }

    /// The id of the model in use.
    pub fn id(&self) -> String {
        self.active.id()
    }

    /// The weights file of the model in use, when it came from one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Replaces the model in use by the weights at `path`. Nothing changes unless they load, match
    /// their card, and give finite embeddings for a probe; the error says why they were refused.
    /// Returns the model that was replaced.
    pub fn swap_from_path(&mut self, path: &Path) -> Result<Arc<SignatureModel>, ModelError> {
        let model = load_checked(path, self.device)?;
        let old = std::mem::replace(&mut self.active, Arc::new(model));
        self.path = Some(path.to_path_buf());
        Ok(old)
    }
}

/// [`SignatureModel::load`], then one forward pass on a probe signature: weights that passed every
/// file check can still be useless (a training run that diverged saves NaN weights with a valid
/// card), and such a model must not replace a working one.
fn load_checked(path: &Path, device: Device) -> Result<SignatureModel, ModelError> {
    let model = SignatureModel::load(path, device)?;
    let params = model.normalise_params();
    let (w, h) = (params.width, params.height);
    // A diagonal stroke: any working network maps it to a finite unit vector.
    let pixels = (0..h)
        .flat_map(|y| (0..w).map(move |x| if x * h / w == y { 1.0 } else { 0.0 }))
        .collect();
    let probe = NormalisedSignature {
        width: w,
        height: h,
        pixels,
    };
    let emb = model.embed(std::slice::from_ref(&probe))?;
    let ok = emb
        .first()
        .is_some_and(|e| !e.is_empty() && e.iter().all(|v| v.is_finite()));
    if !ok {
        return Err(ModelError::Corrupt {
            path: path.display().to_string(),
            detail:
                "the weights give non-finite embeddings (NaN or infinite values); the model in use \
                     was kept"
                    .into(),
        });
    }
    Ok(model)
}
