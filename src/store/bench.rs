//! Store benchmarks: insert rate, export rate, file size, verify rate, paged queries.
