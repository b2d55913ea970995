//! The Siamese embedding network, its model card, and loading/saving weights.

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model file {0} not found")]
    NotFound(String),
}
