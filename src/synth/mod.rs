//! Synthetic writers, genuine signatures, skilled forgeries and cheque scans (sigma-lognormal model).
//!
//! Following Ferrer et al. (TPAMI 2015) and Plamondon's kinematic theory, a writer is an action plan
//! (target points forming a name-like word or initials, maybe a flourish or an underline) plus a motor
//! style; a signature is the plan executed as overlapping strokes with lognormal speed profiles, and ink
//! deposited along the trajectory with pen-width and pressure variation.
//!
//! - [`SyntheticWriter::genuine`]: the writer's own plan with natural, stability-controlled variation.
//! - [`SyntheticWriter::forgery`]: another person copying the plan (slower, tremor, hesitations).
//! - Random forgeries are simply other writers.
//!
//! Everything is deterministic given the random generator passed in, so a seeded `ChaCha8Rng` per
//! sample makes generation reproducible and order-independent.

pub mod lognormal;
pub mod plan;
pub mod render;
pub mod scan;
pub mod sheet;
pub mod writer;

pub use cheque::{ChequeOptions, ChequeTruth, PixelBox, render_cheque};
pub use scan::{ScanEffects, apply_scan};
pub use sheet::contact_sheet;
pub use writer::{SyntheticWriter, WriterParams};

pub mod bench;
pub mod cheque;
pub mod dataset;

use std::path::PathBuf;

/// Errors of the synthetic data generator.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode {path}")]
    Image {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    #[error("cannot encode JSON for {path}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}
