//! Failures as the operator reads them: what went wrong, and what to do about it.

/// A failure shown to the operator: what went wrong, and what to do about it.
#[derive(Clone, Debug, PartialEq)]
pub struct UserError {
    pub what: String,
    pub todo: String,
}

impl UserError {
    pub fn new(what: impl Into<String>, todo: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            todo: todo.into(),
        }
    }

    /// The message a layer that has not reached this build gives.
    pub fn unavailable(layer: &str) -> Self {
        Self::new(
            format!("The {layer} layer is not available in this build."),
            "Use a complete build of Countersign (make build).",
        )
    }

    /// Turns any library error into a message with advice, by looking at the error kinds in its cause
    /// chain (the same kinds the CLI maps to exit codes).
    pub fn from_anyhow(context: &str, err: &anyhow::Error) -> Self {
        let mut todo =
            "Try again; if it keeps failing, note the message and call support.".to_string();
        for cause in err.chain() {
            if let Some(e) = cause.downcast_ref::<crate::imaging::ImagingError>() {
                todo = imaging_advice(e);
                break;
            }
            if cause.downcast_ref::<crate::model::ModelError>().is_some() {
                todo = "The model could not be used. Check the model file and its .json card beside it, \
                        or start with the bundled model (omit --model)."
                    .to_string();
                break;
            }
            if cause.downcast_ref::<crate::store::StoreError>().is_some() {
                todo =
                    "The database could not be used. If another program holds it, wait and retry; \
                        if it is read-only or damaged, tell your supervisor."
                        .to_string();
                break;
            }
            if cause.downcast_ref::<std::io::Error>().is_some() {
                todo = "Check that the file exists and that you may read it.".to_string();
                break;
            }
        }
        let mut what = format!("{context}: {err}");
        for cause in err.chain().skip(1) {
            what.push_str(&format!(" ({cause})"));
        }
        Self { what, todo }
    }
}

fn imaging_advice(e: &crate::imaging::ImagingError) -> String {
    let text = e.to_string().to_lowercase();
    if text.contains("no signature") {
        "No signature was found. Drag the box over the signature on the cheque, or load a clearer scan.".into()
    } else {
        "Use a PNG, JPEG, TIFF or BMP scan of the cheque or signature (not a PDF or a photo of a screen), \
         and check that the file is complete."
            .into()
    }
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.what, self.todo)
    }
}

pub(super) fn store_error(context: &str, e: crate::store::StoreError) -> UserError {
    use crate::store::StoreError as E;
    let todo = match &e {
        E::AuthFailed => {
            "Check your operator name and PIN. Repeated wrong PINs lock the operator for a while."
        }
        E::LockedOut { .. } => {
            "Ask a supervisor to unlock you (the lock does not expire by itself)."
        }
        E::PermissionDenied { .. } => {
            "Ask a colleague with that role. The refusal has been logged."
        }
        E::NoOperators => {
            "Create the first supervisor from a terminal: countersign operator add NAME --role supervisor"
        }
        E::Busy { .. } => {
            "Another program is writing to the database. Wait a moment and try again."
        }
        E::Corrupt { .. } | E::NewerSchema { .. } | E::ReadOnly { .. } => {
            "Do not use this database for decisions. Tell your supervisor; the message says how to recover."
        }
        E::DiskFull { .. } => "Free disk space, then try again. Nothing was written.",
        E::CredentialsTampered { .. } => {
            "Do not use this database. Keep it as evidence and tell your supervisor and the auditors."
        }
        E::Invalid(_) | E::NotFound { .. } | E::AlreadyExists { .. } => {
            "Correct the input and try again."
        }
        _ => "Try again; if it keeps failing, tell your supervisor.",
    };
    UserError::new(format!("{context}: {e}"), todo)
}

/// Why a sign-in was refused, with how many wrong PINs are left before the operator is locked out
/// (and, once locked, since when and who can unlock).
pub(super) fn sign_in_refused(
    store: &crate::store::Store,
    name: &str,
    e: crate::store::StoreError,
) -> UserError {
    use crate::store::StoreError as E;
    match (&e, store.pin_attempts_left(name)) {
        (E::AuthFailed, Ok(Some(left))) if left > 0 => UserError::new(
            format!(
                "Sign-in refused: wrong operator name or PIN. {left} attempt{} left before {name} is locked out.",
                if left == 1 { "" } else { "s" }
            ),
            "Check the PIN and type it again. After a lockout only a supervisor can unlock the operator.",
        ),
        (E::LockedOut { since, .. }, _) => UserError::new(
            format!(
                "Sign-in refused: {name} is locked out after {} wrong PINs (since {since}). No attempts are left.",
                crate::store::operators::FREE_FAILURES
            ),
            "Ask a supervisor to unlock you (Operators, or `countersign operator unlock`); the lock does not expire by itself.",
        ),
        _ => store_error("Sign-in refused", e),
    }
}

pub(super) fn model_error(context: &str, e: &crate::model::ModelError) -> UserError {
    UserError::new(
        format!("{context}: {e}"),
        "The model could not be used. Check the model file and the .json card beside it, or ask a supervisor \
         to activate a working model.",
    )
}

pub(super) fn imaging_error(context: &str, e: &crate::imaging::ImagingError) -> UserError {
    UserError::new(format!("{context}: {e}"), imaging_advice(e))
}
