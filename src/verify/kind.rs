//! What a questioned image shows, decided by one rule for the GUI, `countersign verify` and
//! `countersign batch`.
//!
//! A clerk may scan a whole cheque or only its signature. Scoring a bare signature as a cheque runs the
//! finder on a corner of the signature and scores a fragment; scoring a cheque as a bare signature
//! compares the whole cheque with a signature. So the choice is made once, here: the operator says
//! what the image is ([`InputKind::Cheque`], [`InputKind::Signature`]), or leaves it to
//! [`InputKind::resolve`] ([`InputKind::Auto`], the default everywhere), which goes by the image's
//! height: a cheque scanned at 200 dpi is 550 to 800 pixels tall, a bare signature rarely more than
//! 400. When a cheque's finder boxes only part of the ink, the cheque is referred whatever the kind
//! ([`super::BOX_UNCERTAIN`]).

use serde::{Deserialize, Serialize};

use super::QuestionedKind;

/// Images no taller than this (in pixels) are taken as a bare signature by [`InputKind::Auto`].
pub const BARE_SIGNATURE_MAX_HEIGHT: u32 = 420;

/// What the operator says the questioned image is.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    /// Decide from the image ([`InputKind::resolve`]).
    #[default]
    Auto,
    /// A whole cheque scan: the signature is searched for in the layout's signature zone.
    Cheque,
    /// The signature alone: scored whole.
    Signature,
}

impl InputKind {
    /// The lower-case name used by `--kind`, the manifest's `kind` column and the GUI.
    pub fn as_str(self) -> &'static str {
        match self {
            InputKind::Auto => "auto",
            InputKind::Cheque => "cheque",
            InputKind::Signature => "signature",
        }
    }

    /// Parses `auto`, `cheque` (or `check`) or `signature`, any case; an empty text is `auto`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(InputKind::Auto),
            "cheque" | "check" => Ok(InputKind::Cheque),
            "signature" => Ok(InputKind::Signature),
            other => Err(format!(
                "the kind {other:?} is not one of auto, cheque, signature"
            )),
        }
    }

    /// The one rule: what an image of `width x height` pixels is taken to be.
    pub fn resolve(self, _width: u32, height: u32) -> QuestionedKind {
        match self {
            InputKind::Cheque => QuestionedKind::Cheque,
            InputKind::Signature => QuestionedKind::Signature,
            InputKind::Auto if height <= BARE_SIGNATURE_MAX_HEIGHT => QuestionedKind::Signature,
            InputKind::Auto => QuestionedKind::Cheque,
        }
    }

    /// Why [`InputKind::resolve`] chose what it chose, for the screen and the reason text.
    pub fn explain(self, width: u32, height: u32) -> String {
        let resolved = self.resolve(width, height);
        let what = match resolved {
            QuestionedKind::Cheque => "a cheque (the signature is searched for)",
            QuestionedKind::Signature => "a bare signature (scored whole)",
        };
        match self {
            InputKind::Auto => format!(
                "Taken as {what}: the image is {height} pixels tall (bare signatures are at most \
                 {BARE_SIGNATURE_MAX_HEIGHT}). Choose the kind if this is wrong."
            ),
            _ => format!("Taken as {what}, as chosen."),
        }
    }
}

impl From<QuestionedKind> for InputKind {
    fn from(k: QuestionedKind) -> Self {
        match k {
            QuestionedKind::Cheque => InputKind::Cheque,
            QuestionedKind::Signature => InputKind::Signature,
        }
    }
}

impl std::fmt::Display for InputKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_goes_by_height_and_a_choice_wins() {
        assert_eq!(InputKind::Auto.resolve(580, 400), QuestionedKind::Signature);
        assert_eq!(InputKind::Auto.resolve(1600, 700), QuestionedKind::Cheque);
        assert_eq!(InputKind::Cheque.resolve(580, 400), QuestionedKind::Cheque);
        assert_eq!(
            InputKind::Signature.resolve(1600, 700),
            QuestionedKind::Signature
        );
        assert_eq!(InputKind::parse(" Cheque "), Ok(InputKind::Cheque));
        assert_eq!(InputKind::parse(""), Ok(InputKind::Auto));
        assert!(InputKind::parse("photo").is_err());
    }
}
