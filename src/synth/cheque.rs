//! Cheque scans with a signature in the signature zone, and their ground truth.

use std::path::Path;

use rand::Rng;

use super::SynthError;
use super::writer::SyntheticWriter;

/// Writes one cheque scan and its JSON ground truth (filled in by phase 2).
pub fn write_cheque<R: Rng>(
    _dir: &Path,
    _writer: &SyntheticWriter,
    _writer_id: &str,
    _index: u32,
    _rng: &mut R,
) -> Result<(), SynthError> {
    Ok(())
}
