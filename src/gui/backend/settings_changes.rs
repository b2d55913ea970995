//! Changes a supervisor asks for from the GUI (thresholds, calibration, the active model): each is a
//! named request that waits for a second supervisor's approval.

use std::path::Path;

use super::Backend;
use super::advice::{UserError, model_error, store_error};
use crate::scoring::Thresholds;

impl Backend {
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
