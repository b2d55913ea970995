//! Imaging: bounded decoding, signature normalisation, and finding the signature on a cheque scan.
//!
//! CONTRACT (other layers rely on these names; the imaging work fills in the bodies):
//! - `ImagingError`: typed errors naming the file and what was wrong.
//! - `NormalisedSignature { width, height, pixels: Vec<f32> }`: row-major, values in [0, 1], ink bright
//!   (inverted), exactly what the network takes.
//! - `PREPROCESSING_VERSION`: recorded in the model card; bump it when any step or parameter changes.

/// A signature ready for the network: `height` rows of `width` floats in [0, 1], ink bright.
#[derive(Clone, Debug, PartialEq)]
pub struct NormalisedSignature {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<f32>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    #[error("no signature found in {0}")]
    NoSignature(String),
}
