//! Batch manifests: a CSV file with one cheque per row, read as a stream.
//!
//! # Format
//!
//! A header row is required. Columns are found by name (any order, names are case-insensitive):
//!
//! | column            | required | meaning                                                              |
//! |-------------------|----------|----------------------------------------------------------------------|
//! | `cheque_id`       | yes      | unique id of the cheque; a cheque id already decided is skipped       |
//! | `cheque_path`     | yes      | the cheque scan (PNG, JPEG, TIFF, BMP)                               |
//! | `account_id`      | one of   | the account whose enrolled references are used (from the store)      |
//! | `reference_paths` | one of   | reference signature image(s), separated by `;`                      |
//! | `amount`          | no       | the cheque amount in currency units, e.g. `1234.56` (for amount rules) |
//! | `kind`            | no       | `cheque`, `signature` or `auto` (the default): what the image shows   |
//!
//! Each row names either `account_id` or `reference_paths`. With both, the row is an ERROR unless a
//! supervisor runs the batch: an account is verified against its enrolled references only, and a
//! supervisor's exception is flagged in the decision's reason. Relative paths are
//! relative to the folder holding the manifest. Other columns are refused, so that a misspelt column
//! name (`ammount`) is not silently ignored. The `kind` follows the same rule as `countersign verify
//! --kind` and the GUI ([`crate::verify::InputKind`]): `auto` takes an image at most 420 pixels tall as
//! a bare signature and anything taller as a cheque.
//!
//! ```text
//! cheque_id,cheque_path,account_id,reference_paths,amount
//! 000123,scans/000123.png,ACC-001,,250.00
//! 000124,scans/000124.png,,refs/jane-1.png;refs/jane-2.png,
//! ```
//!
//! A row that cannot be used (too few or too many fields, an empty cheque id, a bad amount, text that
//! is not UTF-8) is not fatal: it becomes a [`ManifestRow`] whose `problem` says why, and the batch
//! reports it as an ERROR result. A row with more fields than the header is refused rather than read
//! by position: an unquoted `1,200.00` would otherwise be read as the amount 1.00. Line numbers are the
//! file's own (counted in the bytes, so CRLF line ends and blank lines do not shift them), and a cheque
//! id that is not UTF-8 is kept visible with its odd bytes escaped (`CHQ-\xff`).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// A problem with the manifest as a whole (the batch cannot start).
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot open the manifest {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the manifest {path} cannot be read as CSV: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("the manifest {path} is empty: it needs a header row `{}`", COLUMNS.join(","))]
    Empty { path: PathBuf },
    #[error(
        "the manifest {path} has no `{column}` column; the header must name the columns `{}` \
         (account_id or reference_paths, amount optional)",
        COLUMNS.join(",")
    )]
    MissingColumn { path: PathBuf, column: &'static str },
    #[error(
        "the manifest {path} has an unknown column `{column}`; the known columns are `{}`",
        COLUMNS.join(",")
    )]
    UnknownColumn { path: PathBuf, column: String },
    #[error("the manifest {path} names the column `{column}` twice")]
    DuplicateColumn { path: PathBuf, column: String },
}

/// The column names a manifest may use, in the documented order.
pub const COLUMNS: [&str; 6] = [
    "cheque_id",
    "cheque_path",
    "account_id",
    "reference_paths",
    "amount",
    "kind",
];

/// Where a row's references come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowReferences {
    /// The account's enrolled references in the store.
    Account,
    /// Reference image files given in the row (absolute paths).
    Paths(Vec<PathBuf>),
}

/// One manifest row, resolved (paths made absolute, amount parsed) as far as it could be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestRow {
    /// The 1-based line of the row in the manifest file (the header is line 1).
    pub line: u64,
    pub cheque_id: String,
    pub cheque_path: PathBuf,
    pub account_id: Option<String>,
    pub references: RowReferences,
    pub amount_cents: Option<i64>,
    /// What the image shows (the `kind` column; `auto` when absent or empty).
    pub kind: crate::verify::InputKind,
    /// Why the row cannot be verified; `None` for a usable row.
    pub problem: Option<String>,
}

/// A streaming reader of manifest rows.
pub struct ManifestReader {
    path: PathBuf,
    base: PathBuf,
    reader: csv::Reader<BufReader<File>>,
    record: csv::ByteRecord,
    idx: [Option<usize>; 6],
    /// Fields in the header.
    columns: usize,
    lines: LineCounter,
}

/// Turns a byte offset into the file's 1-based line number, reading the file once, forward.
struct LineCounter {
    reader: BufReader<File>,
    /// Bytes consumed so far.
    pos: u64,
    /// Line ends seen before `pos`.
    ends: u64,
    /// The last byte consumed was a CR (a CRLF counts once).
    after_cr: bool,
}

impl LineCounter {
    fn line_at(&mut self, byte: u64) -> u64 {
        use std::io::BufRead;
        while self.pos < byte {
            let Ok(buf) = self.reader.fill_buf() else {
                break;
            };
            if buf.is_empty() {
                break;
            }
            let take = usize::try_from(byte - self.pos)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            for &b in &buf[..take] {
                match b {
                    b'\n' if self.after_cr => {}
                    b'\n' | b'\r' => self.ends += 1,
                    _ => {}
                }
                self.after_cr = b == b'\r';
            }
            self.reader.consume(take);
            self.pos += take as u64;
        }
        // The csv reader's position is where it began reading the record, before the blank lines
        // it skipped; a record itself never starts with a line end, so skip those too.
        loop {
            let next = match self.reader.fill_buf() {
                Ok(buf) => buf.first().copied(),
                Err(_) => None,
            };
            match next {
                Some(b @ (b'\r' | b'\n')) => {
                    if !(b == b'\n' && self.after_cr) {
                        self.ends += 1;
                    }
                    self.after_cr = b == b'\r';
                    self.reader.consume(1);
                    self.pos += 1;
                }
                _ => break,
            }
        }
        self.ends + 1
    }
}

impl std::fmt::Debug for ManifestReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManifestReader")
            .field("path", &self.path)
            .finish()
    }
}

impl ManifestReader {
    /// Opens a manifest and checks its header.
    pub fn open(path: &Path) -> Result<Self, ManifestError> {
        let file = File::open(path).map_err(|source| ManifestError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            // Rows with the wrong number of fields become per-row errors instead of stopping the batch.
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(BufReader::with_capacity(1 << 16, file));
        let headers = reader
            .headers()
            .map_err(|source| ManifestError::Csv {
                path: path.to_path_buf(),
                source,
            })?
            .clone();
        if headers.is_empty() || headers.iter().all(str::is_empty) {
            return Err(ManifestError::Empty {
                path: path.to_path_buf(),
            });
        }
        let mut idx = [None; 6];
        for (i, name) in headers.iter().enumerate() {
            // A UTF-8 byte order mark (spreadsheet exports add one) is not part of the first name.
            let name = name
                .trim_start_matches('\u{feff}')
                .trim()
                .to_ascii_lowercase();
            let Some(col) = COLUMNS.iter().position(|c| *c == name) else {
                return Err(ManifestError::UnknownColumn {
                    path: path.to_path_buf(),
                    column: name,
                });
            };
            if idx[col].is_some() {
                return Err(ManifestError::DuplicateColumn {
                    path: path.to_path_buf(),
                    column: name,
                });
            }
            idx[col] = Some(i);
        }
        for (col, name) in COLUMNS.iter().enumerate().take(2) {
            if idx[col].is_none() {
                return Err(ManifestError::MissingColumn {
                    path: path.to_path_buf(),
                    column: name,
                });
            }
        }
        if idx[2].is_none() && idx[3].is_none() {
            return Err(ManifestError::MissingColumn {
                path: path.to_path_buf(),
                column: "account_id",
            });
        }
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let lines = LineCounter {
            reader: BufReader::new(File::open(path).map_err(|source| ManifestError::Open {
                path: path.to_path_buf(),
                source,
            })?),
            pos: 0,
            ends: 0,
            after_cr: false,
        };
        Ok(Self {
            path: path.to_path_buf(),
            base,
            reader,
            record: csv::ByteRecord::new(),
            columns: headers.len(),
            idx,
            lines,
        })
    }

    /// The manifest file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next row, `None` at the end. An I/O error reading the file is fatal (the rest of the file
    /// cannot be trusted); a malformed row is returned with its `problem` set.
    pub fn next_row(&mut self) -> Result<Option<ManifestRow>, ManifestError> {
        loop {
            match self.reader.read_byte_record(&mut self.record) {
                Ok(false) => return Ok(None),
                Ok(true) => {
                    // Blank lines are skipped by the csv crate; a row of only commas is skipped here.
                    if self.record.iter().all(<[u8]>::is_empty) {
                        continue;
                    }
                    let byte = self.record.position().map_or(0, csv::Position::byte);
                    let line = self.lines.line_at(byte);
                    return Ok(Some(self.resolve(line)));
                }
                Err(e) => {
                    return Err(ManifestError::Csv {
                        path: self.path.clone(),
                        source: e,
                    });
                }
            }
        }
    }

    /// A field as text; a field that is not UTF-8 comes back escaped (`\xff`) as the error.
    fn field(&self, col: usize) -> Option<Result<&str, String>> {
        let bytes = self.idx[col].and_then(|i| self.record.get(i))?;
        Some(std::str::from_utf8(bytes).map_err(|_| bytes.escape_ascii().to_string()))
    }

    fn text(&self, col: usize, problems: &mut Vec<String>) -> Option<String> {
        match self.field(col)? {
            Ok(s) => Some(s.to_string()),
            Err(escaped) => {
                problems.push(format!("the {} {escaped} is not UTF-8 text", COLUMNS[col]));
                None
            }
        }
    }

    fn resolve(&self, line: u64) -> ManifestRow {
        let mut row = ManifestRow::broken(line, "");
        row.problem = None;
        let mut problems = Vec::new();
        // The cheque id stays visible even when it is not UTF-8: escaped.
        row.cheque_id = match self.field(0) {
            Some(Ok(s)) => s.to_string(),
            Some(Err(escaped)) => {
                problems.push(format!("the cheque_id {escaped} is not UTF-8 text"));
                escaped
            }
            None => String::new(),
        };
        let needed = self.idx.iter().flatten().max().map_or(0, |m| m + 1);
        if self.record.len() < needed {
            problems.push(format!(
                "the row has {} fields but the header has {}; quote fields that contain commas",
                self.record.len(),
                self.columns
            ));
        } else if self.record.len() > self.columns {
            problems.push(format!(
                "the row has {} fields but the header has {}: a field holds an unquoted comma (an amount such as \
                 1,200.00 must be written 1200.00, a path with a comma must be quoted), so no field can be trusted",
                self.record.len(),
                self.columns
            ));
            row.problem = Some(problems.join("; "));
            return row;
        }
        if row.cheque_id.is_empty() {
            problems.push("the cheque_id is empty".to_string());
        }
        match self.text(1, &mut problems).filter(|s| !s.is_empty()) {
            Some(p) => row.cheque_path = self.base.join(p),
            None => problems.push("the cheque_path is empty".to_string()),
        }
        row.account_id = self.text(2, &mut problems).filter(|s| !s.is_empty());
        let refs: Vec<PathBuf> = self
            .text(3, &mut problems)
            .unwrap_or_default()
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|p| self.base.join(p))
            .collect();
        if refs.is_empty() {
            row.references = RowReferences::Account;
            if row.account_id.is_none() {
                problems
                    .push("the row names neither an account_id nor reference_paths".to_string());
            }
        } else {
            row.references = RowReferences::Paths(refs);
        }
        if let Some(a) = self.text(4, &mut problems).filter(|s| !s.is_empty()) {
            match crate::verify::parse_amount(&a) {
                Ok(c) => row.amount_cents = Some(c),
                Err(e) => problems.push(e),
            }
        }
        if let Some(k) = self.text(5, &mut problems) {
            match crate::verify::InputKind::parse(&k) {
                Ok(k) => row.kind = k,
                Err(e) => problems.push(e),
            }
        }
        if !problems.is_empty() {
            problems.dedup();
            row.problem = Some(problems.join("; "));
        }
        row
    }
}

impl ManifestRow {
    fn broken(line: u64, problem: &str) -> Self {
        Self {
            line,
            cheque_id: String::new(),
            cheque_path: PathBuf::new(),
            account_id: None,
            references: RowReferences::Account,
            amount_cents: None,
            kind: crate::verify::InputKind::Auto,
            problem: Some(problem.to_string()),
        }
    }
}

/// Counts the data rows of a manifest quickly (for the progress bar's length); a failure gives `None`
/// and the bar simply shows no total.
pub fn count_rows(path: &Path) -> Option<u64> {
    let file = File::open(path).ok()?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(BufReader::with_capacity(1 << 16, file));
    let mut record = csv::ByteRecord::new();
    let mut n = 0;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {
                if !record.iter().all(<[u8]>::is_empty) {
                    n += 1;
                }
            }
            Ok(false) => return Some(n),
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("m.csv");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn rows(path: &Path) -> Vec<ManifestRow> {
        let mut r = ManifestReader::open(path).unwrap();
        let mut out = Vec::new();
        while let Some(row) = r.next_row().unwrap() {
            out.push(row);
        }
        out
    }

    #[test]
    fn the_kind_column_is_optional_and_defaults_to_auto() {
        use crate::verify::InputKind;
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "cheque_id,cheque_path,account_id,kind\n\
             C1,c/1.png,ACC,cheque\n\
             C2,c/2.png,ACC,Signature\n\
             C3,c/3.png,ACC,\n\
             C4,c/4.png,ACC,photo\n",
        );
        let rows = rows(&p);
        let kinds: Vec<InputKind> = rows.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                InputKind::Cheque,
                InputKind::Signature,
                InputKind::Auto,
                InputKind::Auto
            ]
        );
        assert!(rows[..3].iter().all(|r| r.problem.is_none()));
        assert!(rows[3].problem.as_deref().unwrap().contains("photo"));
        let p = write(
            dir.path(),
            "cheque_id,cheque_path,account_id\nC1,c/1.png,ACC\n",
        );
        assert_eq!(self::rows(&p)[0].kind, InputKind::Auto);
    }

    #[test]
    fn parses_rows_in_any_column_order_relative_to_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "amount,reference_paths,cheque_path,cheque_id,account_id\n\
             12.5,,c/1.png,C1,ACC\n\
             ,r/a.png; /abs/b.png,\"c/with, comma.png\",C2,\n",
        );
        let rows = rows(&p);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].cheque_id, "C1");
        assert_eq!(rows[0].cheque_path, dir.path().join("c/1.png"));
        assert_eq!(rows[0].account_id.as_deref(), Some("ACC"));
        assert_eq!(rows[0].references, RowReferences::Account);
        assert_eq!(rows[0].amount_cents, Some(1250));
        assert_eq!(rows[0].problem, None);
        assert_eq!(rows[1].cheque_path, dir.path().join("c/with, comma.png"));
        assert_eq!(
            rows[1].references,
            RowReferences::Paths(vec![
                dir.path().join("r/a.png"),
                PathBuf::from("/abs/b.png")
            ])
        );
        assert_eq!(rows[1].problem, None);
        assert_eq!(count_rows(&p), Some(2));
    }

    #[test]
    fn bad_rows_carry_their_problem_and_reading_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "cheque_id,cheque_path,account_id,reference_paths,amount\n\
             ,c.png,A,,\n\
             C2,c.png,,,\n\
             C3,c.png,A,,12,34\n\
             C4,c.png,A,,-5\n\
             C5\n\
             C6,c.png,A,,1.5\n",
        );
        let rows = rows(&p);
        assert_eq!(rows.len(), 6);
        assert!(
            rows[0]
                .problem
                .as_deref()
                .unwrap()
                .contains("cheque_id is empty")
        );
        assert!(
            rows[1]
                .problem
                .as_deref()
                .unwrap()
                .contains("neither an account_id")
        );
        // A sixth field in a five-column file is refused: "12,34" was an unquoted amount.
        assert!(
            rows[2]
                .problem
                .as_deref()
                .unwrap()
                .contains("unquoted comma")
        );
        assert!(rows[3].problem.as_deref().unwrap().contains("amount"));
        assert!(rows[4].problem.as_deref().unwrap().contains("fields"));
        assert_eq!(rows[5].amount_cents, Some(150));
        assert_eq!(rows[5].problem, None);
        assert_eq!(rows[5].line, 7);
    }

    #[test]
    fn line_numbers_survive_crlf_and_blank_lines_and_odd_bytes_stay_visible() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        let mut bytes = b"cheque_id,cheque_path,account_id,reference_paths,amount\r\n\r\nC1,c.png,A,,1\r\n\r\n\r\n".to_vec();
        bytes.extend_from_slice(b"C\xff2,c.png,A,,2\r\nC3,c.png,A,,1,200.00\r\n");
        std::fs::write(&p, bytes).unwrap();
        let rows = rows(&p);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].line, 3);
        assert_eq!(rows[0].problem, None);
        assert_eq!(rows[1].line, 6);
        assert_eq!(rows[1].cheque_id, "C\\xff2");
        assert!(rows[1].problem.as_deref().unwrap().contains("not UTF-8"));
        assert_eq!(rows[2].line, 7);
        assert_eq!(rows[2].amount_cents, None);
        assert!(
            rows[2]
                .problem
                .as_deref()
                .unwrap()
                .contains("unquoted comma")
        );
    }

    #[test]
    fn header_problems_are_fatal_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "cheque_id,cheque_path,account_id,ammount\n");
        let e = ManifestReader::open(&p).unwrap_err();
        assert!(
            matches!(e, ManifestError::UnknownColumn { ref column, .. } if column == "ammount"),
            "{e}"
        );
        let p = write(dir.path(), "cheque_id,account_id\n");
        assert!(matches!(
            ManifestReader::open(&p).unwrap_err(),
            ManifestError::MissingColumn {
                column: "cheque_path",
                ..
            }
        ));
        let p = write(dir.path(), "cheque_id,cheque_path\n");
        assert!(matches!(
            ManifestReader::open(&p).unwrap_err(),
            ManifestError::MissingColumn {
                column: "account_id",
                ..
            }
        ));
        let p = write(dir.path(), "");
        assert!(matches!(
            ManifestReader::open(&p).unwrap_err(),
            ManifestError::Empty { .. }
        ));
        let e = ManifestReader::open(&dir.path().join("missing.csv")).unwrap_err();
        assert!(matches!(e, ManifestError::Open { .. }));
    }
}
