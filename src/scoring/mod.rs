//! Scores, calibration, decisions and evaluation metrics.
//!
//! CONTRACT (shared with model cards, the store and the GUI): `Embedding`, `Calibration`, `Thresholds`,
//! `Decision`. The scoring work adds similarity, calibration fitting, metrics and the decision rules.

use serde::{Deserialize, Serialize};

/// An L2-normalised embedding of one signature.
pub type Embedding = Vec<f32>;

/// Platt scaling: `P(genuine | score s) = sigmoid(a * s + b)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub a: f64,
    pub b: f64,
}

/// Two thresholds on the calibrated probability: ACCEPT at or above `accept`, REJECT below `reject`,
/// REFER in between.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub accept: f64,
    pub reject: f64,
}

/// The outcome of one verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Decision {
    Accept,
    Refer,
    Reject,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Accept => "ACCEPT",
            Decision::Refer => "REFER",
            Decision::Reject => "REJECT",
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
