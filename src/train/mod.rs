//! Offline training: dataset layouts, pair/triplet sampling, losses, the training loop.
