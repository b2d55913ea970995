//! Scores, calibration, decisions and evaluation metrics.
