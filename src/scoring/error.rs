//! The typed errors of the scoring layer.

/// Everything that can go wrong while scoring, calibrating or evaluating. Each message says what was
/// wrong with the input so that a supervisor reading it on the command line can fix the data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoringError {
    /// A function that needs both genuine and forgery scores got none of one class.
    #[error("no {class} scores were given; {what} needs both genuine and forgery scores")]
    EmptyClass {
        class: &'static str,
        what: &'static str,
    },
    /// An input list was empty where at least one element is required.
    #[error("{what} is empty")]
    Empty { what: &'static str },
    /// A score, probability or embedding component was NaN or infinite.
    #[error("{what} at index {index} is not a finite number ({value})")]
    NonFinite {
        what: &'static str,
        index: usize,
        value: f64,
    },
    /// Two lists that must pair up element by element have different lengths.
    #[error("{what}: {left} scores but {right} labels")]
    LengthMismatch {
        what: &'static str,
        left: usize,
        right: usize,
    },
    /// Two embeddings have different dimensions.
    #[error("embedding dimension mismatch: expected {expected}, found {found}")]
    DimensionMismatch { expected: usize, found: usize },
    /// An embedding has zero length, so its direction (and cosine similarity) is undefined.
    #[error("embedding has zero length; cosine similarity is undefined")]
    ZeroEmbedding,
    /// Thresholds are outside [0, 1] or `reject > accept`.
    #[error("invalid thresholds: {0}")]
    InvalidThresholds(String),
    /// A parameter (target FAR, number of references, top-k, bins, ...) is out of range.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// One sample of an evaluation set is unusable (its embedding is empty, zero, non-finite or of
    /// the wrong dimension).
    #[error("sample '{sample_id}' of writer '{writer}': {source}")]
    Sample {
        writer: String,
        sample_id: String,
        source: Box<ScoringError>,
    },
    /// There is not enough data for the requested computation.
    #[error("not enough data: {0}")]
    NotEnoughData(String),
}

/// Checks that every value is finite, naming the first offender.
pub(crate) fn check_finite(values: &[f64], what: &'static str) -> Result<(), ScoringError> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(ScoringError::NonFinite {
            what,
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

/// Checks a (scores, labels) pair of lists: same length, finite scores, both classes present.
pub(crate) fn check_labelled(
    scores: &[f64],
    labels: &[bool],
    what: &'static str,
) -> Result<(usize, usize), ScoringError> {
    if scores.len() != labels.len() {
        return Err(ScoringError::LengthMismatch {
            what,
            left: scores.len(),
            right: labels.len(),
        });
    }
    check_finite(scores, "score")?;
    let genuine = labels.iter().filter(|&&l| l).count();
    let forgery = labels.len() - genuine;
    if genuine == 0 {
        return Err(ScoringError::EmptyClass {
            class: "genuine",
            what,
        });
    }
    if forgery == 0 {
        return Err(ScoringError::EmptyClass {
            class: "forgery",
            what,
        });
    }
    Ok((genuine, forgery))
}
