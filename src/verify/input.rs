//! Images as they arrive (a file, bytes, an already decoded picture), read once, hashed and decoded.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::GrayImage;
use sha2::{Digest, Sha256};

use crate::imaging::ImagingError;
use crate::imaging::decode::{DecodeLimits, decode_bytes};

/// Where an image comes from.
#[derive(Clone, Debug)]
pub enum ImageSource {
    /// A file on disk; it is read once, hashed and decoded.
    Path(PathBuf),
    /// Encoded bytes (a dropped file, a database blob). `name` is only used in messages.
    Bytes { name: String, bytes: Arc<[u8]> },
    /// An image already decoded by the caller. Its hash is taken over the width, the height and the
    /// pixels (there are no file bytes to hash); pass `sha256` when the caller knows the file's hash.
    Decoded {
        name: String,
        image: Arc<GrayImage>,
        sha256: Option<String>,
    },
}

impl ImageSource {
    /// A short name for messages: the path, or the name given with the bytes.
    pub fn name(&self) -> String {
        match self {
            ImageSource::Path(p) => p.display().to_string(),
            ImageSource::Bytes { name, .. } | ImageSource::Decoded { name, .. } => name.clone(),
        }
    }
}

impl From<PathBuf> for ImageSource {
    fn from(p: PathBuf) -> Self {
        ImageSource::Path(p)
    }
}

impl From<&Path> for ImageSource {
    fn from(p: &Path) -> Self {
        ImageSource::Path(p.to_path_buf())
    }
}

/// An image decoded to grayscale, with the SHA-256 (lowercase hex) of what was given.
pub struct Loaded {
    pub image: Arc<GrayImage>,
    pub sha256: String,
}

/// Reads (bounded by `limits.max_bytes`), hashes and decodes an image.
pub fn load(source: &ImageSource, limits: &DecodeLimits) -> Result<Loaded, ImagingError> {
    match source {
        ImageSource::Path(path) => {
            let bytes = read_bounded(path, limits)?;
            let sha256 = sha256_hex(&bytes);
            let image = decode_bytes(&bytes, &path.display().to_string(), limits)?;
            Ok(Loaded {
                image: Arc::new(image),
                sha256,
            })
        }
        ImageSource::Bytes { name, bytes } => {
            let sha256 = sha256_hex(bytes);
            let image = decode_bytes(bytes, name, limits)?;
            Ok(Loaded {
                image: Arc::new(image),
                sha256,
            })
        }
        ImageSource::Decoded { image, sha256, .. } => {
            let sha256 = sha256.clone().unwrap_or_else(|| pixels_sha256(image));
            Ok(Loaded {
                image: Arc::clone(image),
                sha256,
            })
        }
    }
}

/// Reads a whole file, refusing it before reading when it is larger than the decode limit, and
/// reading at most one byte past the limit so that a file growing while it is read cannot exhaust
/// memory.
pub fn read_bounded(path: &Path, limits: &DecodeLimits) -> Result<Vec<u8>, ImagingError> {
    let name = || path.display().to_string();
    let io_err = |source: std::io::Error| ImagingError::Io {
        name: name(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_dir() {
        return Err(ImagingError::Io {
            name: name(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "is a folder, not an image file",
            ),
        });
    }
    if meta.len() > limits.max_bytes {
        return Err(ImagingError::TooManyBytes {
            name: name(),
            bytes: meta.len(),
            max_bytes: limits.max_bytes,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limits.max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    Ok(bytes)
}

pub use crate::digest::sha256_hex;

/// SHA-256 over `width`, `height` (little-endian u32) and the pixels of a decoded image.
pub fn pixels_sha256(image: &GrayImage) -> String {
    let mut h = Sha256::new();
    h.update(image.width().to_le_bytes());
    h.update(image.height().to_le_bytes());
    h.update(image.as_raw());
    hex::encode(h.finalize())
}
