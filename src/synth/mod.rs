//! Synthetic writers, genuine signatures, skilled forgeries and cheque scans (sigma-lognormal model).
