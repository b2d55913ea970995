//! Reading the safetensors files this program writes, through the `safetensors` crate (the one tch
//! itself uses), with this program's own limits and errors on top.
//!
//! The format is an 8-byte little-endian header length, a JSON header mapping each tensor name to its
//! dtype, shape and byte range, then the raw data. The crate checks every byte range against its
//! shape and that the ranges cover the data exactly; here the header length is capped far below the
//! crate's own limit before anything is parsed, only F32 tensors are accepted, and each failure is
//! sorted into "truncated" (a cut-off copy or download) or "corrupt" (anything else) so that the
//! error says what is wrong with the file.

use safetensors::{Dtype, SafeTensorError, SafeTensors};

use super::ModelError;

/// One float tensor read from the file.
pub(crate) struct RawTensor {
    pub name: String,
    pub shape: Vec<i64>,
    pub data: Vec<f32>,
}

/// Largest JSON header accepted; a header for a few dozen tensors is a few kilobytes.
const MAX_HEADER_BYTES: u64 = 1 << 20;

pub(crate) fn parse(bytes: &[u8], path: &str) -> Result<Vec<RawTensor>, ModelError> {
    let truncated = |detail: String| ModelError::Truncated {
        path: path.to_string(),
        detail,
    };
    let corrupt = |detail: String| ModelError::Corrupt {
        path: path.to_string(),
        detail,
    };
    let Some(len_bytes) = bytes.first_chunk::<8>() else {
        return Err(truncated(format!(
            "{} bytes, shorter than the 8-byte header length",
            bytes.len()
        )));
    };
    let header_len = u64::from_le_bytes(*len_bytes);
    if header_len > MAX_HEADER_BYTES {
        return Err(corrupt(format!(
            "header length {header_len} is implausible"
        )));
    }
    // Within the cap, `8 + header_len` fits any usize.
    let header_end = 8 + header_len as usize;
    let file = match SafeTensors::deserialize(bytes) {
        Ok(f) => f,
        Err(e) => return Err(classify(e, bytes, header_end, &truncated, &corrupt)),
    };
    let mut tensors = Vec::new();
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(corrupt(format!(
                "tensor {name} has dtype {:?}; only F32 is used",
                view.dtype()
            )));
        }
        let shape = view
            .shape()
            .iter()
            .map(|&d| i64::try_from(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| corrupt(format!("tensor {name} has an invalid shape")))?;
        let data = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.push(RawTensor { name, shape, data });
    }
    // The header is a JSON object: keep the order stable for error messages and loading.
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tensors)
}

/// Sorts the crate's error into truncated or corrupt, with a detail a person can act on.
fn classify(
    e: SafeTensorError,
    bytes: &[u8],
    header_end: usize,
    truncated: &dyn Fn(String) -> ModelError,
    corrupt: &dyn Fn(String) -> ModelError,
) -> ModelError {
    match e {
        SafeTensorError::HeaderTooSmall | SafeTensorError::InvalidHeaderLength => {
            truncated(format!(
                "the header needs {header_end} bytes but the file has {}",
                bytes.len()
            ))
        }
        SafeTensorError::MetadataIncompleteBuffer => {
            // The tensors' byte ranges do not end where the file ends: short of it is a cut-off
            // file, past it is extra data nobody wrote.
            match data_end(bytes, header_end) {
                Some(end) if end > bytes.len() => truncated(format!(
                    "the tensors need data up to byte {end} but the file has {}",
                    bytes.len()
                )),
                Some(end) => corrupt(format!(
                    "{} bytes of data follow the last tensor",
                    bytes.len() - end
                )),
                None => corrupt("the tensors' byte ranges do not cover the data".into()),
            }
        }
        SafeTensorError::InvalidHeader
        | SafeTensorError::InvalidHeaderStart
        | SafeTensorError::InvalidHeaderDeserialization
        | SafeTensorError::JsonError(_) => corrupt("the header is not valid JSON".into()),
        SafeTensorError::InvalidOffset(name) => {
            corrupt(format!("tensor {name} has invalid data_offsets"))
        }
        SafeTensorError::TensorInvalidInfo | SafeTensorError::ValidationOverflow => {
            corrupt("a tensor's byte range does not fit its shape and dtype".into())
        }
        other => corrupt(other.to_string()),
    }
}

/// Where the tensors' data ends according to the header (which the crate already validated), in
/// file bytes.
fn data_end(bytes: &[u8], header_end: usize) -> Option<usize> {
    let header = bytes.get(8..header_end)?;
    let metadata: safetensors::tensor::Metadata = serde_json::from_slice(header).ok()?;
    let end = metadata
        .tensors()
        .values()
        .map(|info| info.data_offsets.1)
        .max()
        .unwrap_or(0);
    header_end.checked_add(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file with one tensor `w` of `dtype` and the given shape, data of `data_len` bytes.
    fn file(dtype: &str, shape: &[usize], declared: usize, data_len: usize) -> Vec<u8> {
        let header = format!(
            r#"{{"w":{{"dtype":"{dtype}","shape":{shape:?},"data_offsets":[0,{declared}]}}}}"#
        );
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend(std::iter::repeat_n(0u8, data_len));
        out
    }

    #[test]
    fn reads_f32_tensors() {
        let t = parse(&file("F32", &[2, 3], 24, 24), "m").unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].shape, vec![2, 3]);
        assert_eq!(t[0].data, vec![0.0; 6]);
    }

    #[test]
    fn each_fault_has_its_own_error() {
        let is_truncated =
            |r: Result<Vec<RawTensor>, ModelError>| matches!(r, Err(ModelError::Truncated { .. }));
        let corrupt_detail = |r: Result<Vec<RawTensor>, ModelError>| match r {
            Err(ModelError::Corrupt { detail, .. }) => detail,
            Err(other) => panic!("expected Corrupt, got {other}"),
            Ok(_) => panic!("expected Corrupt, got tensors"),
        };
        assert!(is_truncated(parse(&[1, 2, 3], "m")));
        assert!(is_truncated(parse(&file("F32", &[2, 3], 24, 10), "m")));
        let mut huge = (u64::MAX / 2).to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        assert!(corrupt_detail(parse(&huge, "m")).contains("implausible"));
        assert!(corrupt_detail(parse(&file("F32", &[2, 3], 24, 30), "m")).contains("follow"));
        assert!(corrupt_detail(parse(&file("F64", &[2, 3], 48, 48), "m")).contains("F32"));
        assert!(corrupt_detail(parse(&file("F32", &[2, 3], 20, 20), "m")).contains("byte range"));
        let mut not_json = 4u64.to_le_bytes().to_vec();
        not_json.extend_from_slice(b"{x: ");
        assert!(corrupt_detail(parse(&not_json, "m")).contains("JSON"));
    }
}
