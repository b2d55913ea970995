//! The audit store: accounts, references, operators, hash-chained decisions, settings, export.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl StoreError {
    /// The CLI exit code for this error (see `cli::exit`).
    pub fn exit_code(&self) -> u8 {
        crate::cli::exit::DATABASE
    }
}
