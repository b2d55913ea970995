//! Imaging: bounded decoding, signature normalisation, and finding the signature on a cheque scan.
//!
//! CONTRACT (other layers rely on these names; the imaging work fills in the bodies):
//! - `ImagingError`: typed errors naming the file and what was wrong.
//! - `NormalisedSignature { width, height, pixels: Vec<f32> }`: row-major, values in [0, 1], ink bright
//!   (inverted), exactly what the network takes.
//! - `PREPROCESSING_VERSION` (in [`normalise`]): recorded in the model card; bump it when any step or
//!   parameter changes.
//!
//! Modules: [`decode`] turns untrusted bytes into a bounded `GrayImage`; [`normalise`] turns a signature
//! image into the network's input.

pub mod bench;
pub mod cheque;
pub mod components;
pub mod decode;
pub mod g4;
pub mod normalise;
pub mod sample;

/// A signature ready for the network: `height` rows of `width` floats in [0, 1], ink bright.
#[derive(Clone, Debug, PartialEq)]
pub struct NormalisedSignature {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<f32>,
}

impl NormalisedSignature {
    /// The signature as people see it: 8-bit gray, ink dark on white.
    pub fn to_gray_pixels(&self) -> Vec<u8> {
        self.pixels
            .iter()
            .map(|&v| 255 - (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect()
    }

    /// [`Self::to_gray_pixels`] as a PNG file, for the audit log (a few kilobytes). `None` only if
    /// the pixel count does not match the size.
    pub fn to_png(&self) -> Option<Vec<u8>> {
        let img = image::GrayImage::from_raw(self.width, self.height, self.to_gray_pixels())?;
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).ok()?;
        Some(out.into_inner())
    }
}

/// Everything that can go wrong between untrusted bytes and a normalised signature.
#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    #[error("no signature found in {0}")]
    NoSignature(String),
    #[error("{name}: the file is empty (0 bytes)")]
    Empty { name: String },
    #[error("{name}: unsupported image format: {detail}")]
    UnsupportedFormat { name: String, detail: String },
    #[error("{name}: the image data is truncated: {detail}")]
    Truncated { name: String, detail: String },
    #[error("{name}: the image data is corrupt: {detail}")]
    Corrupt { name: String, detail: String },
    #[error("{name}: the file is {bytes} bytes, more than the limit of {max_bytes} bytes")]
    TooManyBytes {
        name: String,
        bytes: u64,
        max_bytes: u64,
    },
    #[error(
        "{name}: the image is {width}x{height} pixels, more than the limits of {max_side} per side and {max_pixels} pixels"
    )]
    TooManyPixels {
        name: String,
        width: u32,
        height: u32,
        max_side: u32,
        max_pixels: u64,
    },
    #[error("{name}: the decoder needed more memory than allowed: {detail}")]
    TooLarge { name: String, detail: String },
    #[error("{name}: the image has zero size ({width}x{height})")]
    ZeroSize {
        name: String,
        width: u32,
        height: u32,
    },
    #[error("{name}: {source}")]
    Io {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid normalisation parameters: {0}")]
    InvalidParams(String),
    #[error("invalid crop box: {0}")]
    InvalidCrop(String),
    #[error("invalid cheque layout: {0}")]
    InvalidLayout(String),
}
