//! X9.100-187 / X9.37 image cash letters: the files in which banks exchange cheques.
//!
//! ```text
//!  01 file header
//!    10 cash letter header
//!      20 bundle header
//!        25 check detail (routing, on-us with the account, amount, item sequence number)
//!          26/27/28 addenda, 50 image view detail + 52 image view data (front, then back), 54
//!        ... more items
//!      70 bundle control (items, amount, images)
//!    90 cash letter control
//!  99 file control (cash letters, records, items, amount)
//! ```
//!
//! - [`reader`]: streams a file record by record (4-byte big-endian length prefixes, or one record per
//!   line without them; ASCII or EBCDIC cp037, detected from the file header) and turns it into
//!   [`X9Item`]s, checking the structure and every control total on the way. Memory is bounded by
//!   one record.
//! - [`records`]: the record layouts, with the standard's positions.
//! - [`writer`]: writes valid files (for the synthetic generator and for tests).
//! - [`synth`]: `countersign synth --x9`: synthetic cheques as a file, with their ground truth.
//! - [`AccountRule`]: which part of the on-us field is the account number (a supervisor's setting).
//!
//! Lenient where real files differ (trailing spaces stripped, unknown record types such as 68
//! skipped with a note, little-endian prefixes, X9.37 vs X9.100-187 header levels); strict where money
//! or the cheque's identity is at stake: a non-digit amount or a control total that does not add up
//! rejects the whole file before anything is decided; an image whose length fields disagree, or which
//! belongs to another item, makes that item an ERROR.

pub mod batch;
pub mod bench;
pub mod ebcdic;
pub mod reader;
pub mod records;
pub mod synth;
pub mod writer;

use std::io::{BufReader, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

pub use ebcdic::Encoding;
pub use reader::{Framing, ItemReader};

/// What makes a file unusable as a whole.
#[derive(Debug, thiserror::Error)]
pub enum X9Error {
    #[error("cannot read the X9 file: {source}")]
    Io { source: std::io::Error },
    #[error("not an X9.37 / X9.100-187 file: {detail}")]
    NotX9 { detail: String },
    #[error("the X9 file is truncated at record {record} (byte {offset}): {detail}")]
    Truncated {
        record: u64,
        offset: u64,
        detail: String,
    },
    #[error(
        "record {record} (byte {offset}) claims {length} bytes, more than the largest record the standard allows ({max}); the file is corrupt"
    )]
    RecordTooLong {
        record: u64,
        offset: u64,
        length: u64,
        max: u64,
    },
    #[error("record {record} (byte {offset}): {detail}")]
    Structure {
        record: u64,
        offset: u64,
        detail: String,
    },
    #[error(
        "record {record} (type {rtype:02}): the {field} (positions {positions}) is {value:?}: {detail}"
    )]
    Field {
        record: u64,
        rtype: u8,
        field: &'static str,
        positions: String,
        value: String,
        detail: String,
    },
    #[error(
        "record {record} (type {rtype:02}): the {what} says {declared} but the records before it add up to {counted}; the file is rejected"
    )]
    Control {
        record: u64,
        rtype: u8,
        what: &'static str,
        declared: String,
        counted: String,
    },
}

/// One cheque of a file: its check detail and its front image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct X9Item {
    /// Record number of its check detail (25).
    pub record: u64,
    /// ECE institution item sequence number (25, positions 58-72), spaces trimmed.
    pub sequence: String,
    /// Payor bank routing number with its check digit (9 digits).
    pub routing: String,
    /// The on-us field (25, positions 28-47).
    pub on_us: String,
    pub aux_on_us: String,
    pub amount_cents: i64,
    /// The front image's bytes (usually a TIFF), when usable.
    pub front: Option<Vec<u8>>,
    /// The declared format of the front image (from its type 50), e.g. "TIFF CCITT G4".
    pub front_format: Option<String>,
    /// A front view was announced by a type 50.
    pub front_declared: bool,
    /// A back view is present.
    pub back: bool,
    pub addendum_count: Option<u32>,
    /// Why the item cannot be verified (its image), when it cannot.
    pub problem: Option<String>,
}

/// What a file holds, as read (complete once the whole file was read).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct X9Summary {
    /// SHA-256 of the whole file, lowercase hex (set by [`scan`]).
    pub sha256: String,
    pub bytes: u64,
    pub encoding: Encoding,
    pub framing: Framing,
    pub header: Option<records::FileHeader>,
    pub records: u64,
    pub cash_letters: u64,
    pub bundles: u64,
    pub items: u64,
    pub images: u64,
    pub total_cents: u64,
    /// Things a reader should know but which do not stop the file (unknown records skipped, ...).
    pub notes: Vec<String>,
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    sha: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

fn open_file(path: &Path) -> Result<std::fs::File, X9Error> {
    let f = std::fs::File::open(path).map_err(|source| X9Error::Io { source })?;
    if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(X9Error::Io {
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "is a folder"),
        });
    }
    Ok(f)
}

/// Reads the whole file once, without keeping images: checks its structure and control totals and
/// hashes it. A file that passes can then be read item by item with [`open`].
pub fn scan(path: &Path) -> Result<X9Summary, X9Error> {
    scan_reader(open_file(path)?, None)
}

/// [`scan`] over any reader; `force` reads the text as that encoding whatever the header says.
pub fn scan_reader<R: Read>(r: R, force: Option<Encoding>) -> Result<X9Summary, X9Error> {
    let mut hashing = Hashing {
        inner: r,
        sha: Sha256::new(),
        bytes: 0,
    };
    let summary = {
        let mut items = ItemReader::new(
            BufReader::with_capacity(1 << 16, &mut hashing),
            false,
            force,
        )?;
        while items.next_item()?.is_some() {}
        items.summary().clone()
    };
    // Whatever the buffered reader had not consumed still counts towards the file's hash.
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|source| X9Error::Io { source })?;
    Ok(X9Summary {
        sha256: hex::encode(hashing.sha.finalize()),
        bytes: hashing.bytes,
        ..summary
    })
}

/// Whether a file starts like an X9 file (a file header record, with or without a length prefix,
/// in ASCII or EBCDIC). Front ends use it to accept an X9 file where a manifest is expected.
pub fn looks_like_x9(path: &Path) -> bool {
    let mut head = [0u8; 6];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    if f.read_exact(&mut head).is_err() {
        return false;
    }
    let at = |i: usize| Encoding::detect_file_header([head[i], head[i + 1]]).is_some();
    // A file header's length prefix is small: its two high bytes are zero (big- or little-endian).
    at(0) || (at(4) && ((head[0] == 0 && head[1] == 0) || (head[2] == 0 && head[3] == 0)))
}

/// Opens a file for reading item by item, with front images.
pub fn open(path: &Path) -> Result<ItemReader<BufReader<std::fs::File>>, X9Error> {
    ItemReader::new(
        BufReader::with_capacity(1 << 16, open_file(path)?),
        true,
        None,
    )
}

/// Which part of the on-us field is the account number: a regular expression whose group named
/// `account` (else its first group, else the whole match) is the account id. Set by a supervisor
/// (`countersign settings x9-account-rule`), stored with the settings, shown on the Batch screen.
#[derive(Clone, Debug)]
pub struct AccountRule {
    pattern: String,
    regex: regex::Regex,
}

impl AccountRule {
    /// The default: the digits (and dashes) before the first `/` (the MICR on-us symbol), as in
    /// `1234567890/0123` (account 1234567890, serial 0123); spaces inside are ignored.
    pub const DEFAULT: &'static str = r"^\s*(?P<account>[0-9][0-9 -]*?)\s*(?:/|$)";

    pub fn new(pattern: &str) -> Result<Self, String> {
        if pattern.len() > 500 {
            return Err("the account rule is longer than 500 characters".into());
        }
        let regex = regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| format!("the account rule is not a valid regular expression: {e}"))?;
        Ok(Self {
            pattern: pattern.to_string(),
            regex,
        })
    }

    /// The rule in force: the stored one, else the default.
    pub fn from_settings(settings: &crate::store::Settings) -> Result<Self, String> {
        Self::new(settings.x9_account_rule.as_deref().unwrap_or(Self::DEFAULT))
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The account id in an on-us field, with spaces removed; an error names the field and the rule.
    pub fn account(&self, on_us: &str) -> Result<String, String> {
        let no_match = || {
            format!(
                "the on-us field {on_us:?} does not match the account rule {:?}",
                self.pattern
            )
        };
        let caps = self.regex.captures(on_us).ok_or_else(no_match)?;
        let m = caps
            .name("account")
            .or_else(|| caps.get(1))
            .or_else(|| caps.get(0))
            .ok_or_else(no_match)?;
        let account: String = m.as_str().chars().filter(|c| !c.is_whitespace()).collect();
        if account.is_empty() {
            return Err(format!(
                "the account rule {:?} finds an empty account number in the on-us field {on_us:?}",
                self.pattern
            ));
        }
        Ok(account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rule_takes_the_digits_before_the_on_us_symbol() {
        let r = AccountRule::new(AccountRule::DEFAULT).unwrap();
        assert_eq!(r.account("1234567890/0123").unwrap(), "1234567890");
        assert_eq!(r.account("  12-345 67/88").unwrap(), "12-34567");
        assert_eq!(r.account("5555").unwrap(), "5555");
        assert!(r.account("/0123").is_err());
        assert!(r.account("ABC/1").is_err());
        let custom = AccountRule::new(r"/(?P<account>\d+)$").unwrap();
        assert_eq!(custom.account("0123/99887766").unwrap(), "99887766");
        assert!(AccountRule::new("(").is_err());
    }
}
