//! A strict reader for the safetensors files this program writes.
//!
//! The format is an 8-byte little-endian header length, a JSON header mapping each tensor name to its
//! dtype, shape and byte range, then the raw data. Reading it here (rather than through libtorch)
//! lets us say precisely what is wrong with a damaged file (truncated, corrupt header, wrong dtype)
//! and check every byte range before a tensor is built.

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
    let Some(len_bytes) = bytes.get(..8) else {
        return Err(truncated(format!(
            "{} bytes, shorter than the 8-byte header length",
            bytes.len()
        )));
    };
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(len_bytes);
    let header_len = u64::from_le_bytes(len8);
    if header_len > MAX_HEADER_BYTES {
        return Err(corrupt(format!(
            "header length {header_len} is implausible"
        )));
    }
    let header_end = 8 + header_len as usize;
    let Some(header) = bytes.get(8..header_end) else {
        return Err(truncated(format!(
            "the header needs {header_end} bytes but the file has {}",
            bytes.len()
        )));
    };
    let data = &bytes[header_end..];
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| corrupt(format!("header is not JSON: {e}")))?;

    let mut tensors = Vec::with_capacity(header.len());
    let mut data_end = 0usize;
    for (name, info) in &header {
        if name == "__metadata__" {
            continue;
        }
        let dtype = info.get("dtype").and_then(|v| v.as_str()).unwrap_or("");
        if dtype != "F32" {
            return Err(corrupt(format!(
                "tensor {name} has dtype {dtype:?}; only F32 is used"
            )));
        }
        let shape: Vec<i64> = info
            .get("shape")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().map(|d| d.as_i64().unwrap_or(-1)).collect())
            .ok_or_else(|| corrupt(format!("tensor {name} has no shape")))?;
        if shape.iter().any(|&d| d < 0) {
            return Err(corrupt(format!(
                "tensor {name} has an invalid shape {shape:?}"
            )));
        }
        let offsets: Vec<u64> = info
            .get("data_offsets")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
            .unwrap_or_default();
        let [start, end] = offsets[..] else {
            return Err(corrupt(format!("tensor {name} has no valid data_offsets")));
        };
        let numel = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
        let expected_bytes = numel.and_then(|n| n.checked_mul(4));
        if start > end || Some(end - start) != expected_bytes {
            return Err(corrupt(format!(
                "tensor {name}: byte range {start}..{end} does not fit shape {shape:?} of F32"
            )));
        }
        data_end = data_end.max(end as usize);
        let Some(raw) = data.get(start as usize..end as usize) else {
            return Err(truncated(format!(
                "tensor {name} needs data up to byte {} but the file has {}",
                header_end as u64 + end,
                bytes.len()
            )));
        };
        let values = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.push(RawTensor {
            name: name.clone(),
            shape,
            data: values,
        });
    }
    if data.len() > data_end {
        return Err(corrupt(format!(
            "{} bytes of data follow the last tensor",
            data.len() - data_end
        )));
    }
    Ok(tensors)
}
