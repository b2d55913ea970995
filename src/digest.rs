//! The one SHA-256 helper: image, model-weight, PIN-hash and logged-signature digests all use it, so
//! every hash the audit log records is written the same way (lowercase hex).

use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
