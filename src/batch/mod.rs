//! Batch verification of cheque manifests.
