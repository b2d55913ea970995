//! Streaming reader: bytes -> records -> items, with the structure and control totals checked.
//!
//! Memory is bounded by one record: a record's length is checked against [`MAX_RECORD_BYTES`]
//! (the largest type 52 the standard's length fields allow) before anything is allocated for it,
//! so a length prefix of 2 GB is an error, not an allocation. Only the front image of the item in
//! hand is kept.

use std::io::{BufRead, Read};

use super::ebcdic::Encoding;
use super::records::{
    BundleControl, CashLetterControl, CheckDetail, Fields, FileControl, FileHeader,
    ImageViewDetail, kind,
};
use super::{X9Error, X9Item, X9Summary};

/// The largest record the standard allows: a type 52 with a 9,999-byte image reference key, a
/// 99,999-byte digital signature and a 9,999,999-byte image (117 fixed bytes).
pub const MAX_RECORD_BYTES: u64 = 117 + 9_999 + 99_999 + 9_999_999;

/// Largest text (non-image) record accepted in the unprefixed, one-record-per-line variant.
const MAX_LINE_BYTES: usize = 32 * 1024;

/// At most this many notes are kept (a file with a million unknown records gets one line a type).
const MAX_NOTES: usize = 50;

/// How records are delimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// Each record is preceded by its length, 4 bytes big-endian (the standard's form).
    #[default]
    LengthPrefixed,
    /// As above, little-endian (seen from some producers; accepted with a note).
    LengthPrefixedLittleEndian,
    /// No prefixes: one record per line (CR LF or LF); a type 52 is read by its length fields.
    Lines,
}

/// One record as read: its type, its text (decoded to ASCII; for a type 52 the fixed part only)
/// and, for a type 52, the image data.
#[derive(Debug)]
pub struct Record {
    /// 1-based record number.
    pub number: u64,
    /// Byte offset of the record (of its length prefix, when there is one).
    pub offset: u64,
    pub rtype: u8,
    pub text: String,
    /// Type 52 only.
    pub image: Option<ImageData>,
}

/// The variable part of a type 52 record.
#[derive(Debug)]
pub struct ImageData {
    /// 22-36, the item sequence number the image belongs to.
    pub sequence: String,
    /// The image bytes; empty when the reader was told not to keep images.
    pub bytes: Vec<u8>,
    /// The declared image length (the 7-digit length field).
    pub declared_len: u64,
    /// Set when the record's own length disagrees with its length fields; the item is unusable.
    pub problem: Option<String>,
}

/// Reads records one at a time.
pub struct RecordReader<R> {
    r: R,
    framing: Framing,
    encoding: Encoding,
    offset: u64,
    number: u64,
    keep_images: bool,
    /// Bytes read ahead during detection, consumed before `r`.
    pending: Vec<u8>,
    notes: Vec<String>,
}

impl<R: BufRead> RecordReader<R> {
    /// Detects the framing and the encoding from the first record, which must be a file header (01).
    /// `force` reads the text as the given encoding whatever the first record says.
    pub fn new(mut r: R, keep_images: bool, force: Option<Encoding>) -> Result<Self, X9Error> {
        let mut head = Vec::with_capacity(6);
        (&mut r)
            .take(6)
            .read_to_end(&mut head)
            .map_err(|source| X9Error::Io { source })?;
        if head.is_empty() {
            return Err(X9Error::NotX9 {
                detail: "the file is empty".into(),
            });
        }
        let enc_at = |i: usize| -> Option<Encoding> {
            let b = head.get(i..i + 2)?;
            Encoding::detect_file_header([b[0], b[1]])
        };
        let mut notes = Vec::new();
        let (framing, detected) = if let Some(e) = enc_at(4) {
            let be = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            let le = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            if (2..=4096).contains(&be) {
                (Framing::LengthPrefixed, e)
            } else if (2..=4096).contains(&le) {
                notes.push(
                    "record lengths are little-endian (the standard says big-endian); read as little-endian"
                        .to_string(),
                );
                (Framing::LengthPrefixedLittleEndian, e)
            } else {
                return Err(X9Error::NotX9 {
                    detail: format!(
                        "the first record's length prefix {be} is not a plausible file header length"
                    ),
                });
            }
        } else if let Some(e) = enc_at(0) {
            (Framing::Lines, e)
        } else {
            return Err(X9Error::NotX9 {
                detail: format!(
                    "the first record is not a file header (type 01) in ASCII or EBCDIC, with or without a \
                     4-byte length prefix (the file starts with {})",
                    hex::encode(&head)
                ),
            });
        };
        Ok(Self {
            r,
            framing,
            encoding: force.unwrap_or(detected),
            offset: 0,
            number: 0,
            keep_images,
            pending: head,
            notes,
        })
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads exactly `n` bytes (after any read-ahead), or reports how many there were.
    fn read_exact_counted(&mut self, buf: &mut [u8]) -> Result<usize, X9Error> {
        let mut got = 0;
        if !self.pending.is_empty() {
            let n = self.pending.len().min(buf.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            got = n;
        }
        while got < buf.len() {
            match self.r.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => return Err(X9Error::Io { source }),
            }
        }
        self.offset += got as u64;
        Ok(got)
    }

    /// Skips `n` bytes without keeping them.
    fn skip(&mut self, mut n: u64) -> Result<u64, X9Error> {
        let mut buf = [0u8; 8192];
        let mut skipped = 0;
        while n > 0 {
            let want = usize::try_from(n.min(buf.len() as u64)).unwrap_or(buf.len());
            let got = self.read_exact_counted(&mut buf[..want])?;
            skipped += got as u64;
            if got < want {
                break;
            }
            n -= got as u64;
        }
        Ok(skipped)
    }

    fn truncated(&self, start: u64, detail: String) -> X9Error {
        X9Error::Truncated {
            record: self.number,
            offset: start,
            detail,
        }
    }

    /// The next record, or `None` at a clean end of file.
    pub fn next_record(&mut self) -> Result<Option<Record>, X9Error> {
        match self.framing {
            Framing::LengthPrefixed | Framing::LengthPrefixedLittleEndian => self.next_prefixed(),
            Framing::Lines => self.next_line(),
        }
    }

    fn next_prefixed(&mut self) -> Result<Option<Record>, X9Error> {
        let start = self.offset;
        let mut p = [0u8; 4];
        let got = self.read_exact_counted(&mut p)?;
        if got == 0 {
            return Ok(None);
        }
        self.number += 1;
        if got < 4 {
            return Err(self.truncated(
                start,
                format!("the file ends inside a record's 4-byte length prefix ({got} bytes)"),
            ));
        }
        let len = u64::from(if self.framing == Framing::LengthPrefixed {
            u32::from_be_bytes(p)
        } else {
            u32::from_le_bytes(p)
        });
        if len > MAX_RECORD_BYTES {
            return Err(X9Error::RecordTooLong {
                record: self.number,
                offset: start,
                length: len,
                max: MAX_RECORD_BYTES,
            });
        }
        if len < 2 {
            return Err(X9Error::Structure {
                record: self.number,
                offset: start,
                detail: format!("a record length of {len} bytes cannot hold a record type"),
            });
        }
        let mut t = [0u8; 2];
        if self.read_exact_counted(&mut t)? < 2 {
            return Err(self.truncated(start, format!("the file ends inside a {len}-byte record")));
        }
        let rtype = self.record_type(t, start)?;
        if rtype == kind::IMAGE_VIEW_DATA {
            return self.read_52(start, t, Some(len)).map(Some);
        }
        // Text records: keep the first 4 KB (every field Countersign reads is in the first 80
        // bytes; user records may be longer) and skip the rest.
        let keep = (len - 2).min(4096);
        let mut body = vec![0u8; usize::try_from(keep).unwrap_or(0)];
        let got = self.read_exact_counted(&mut body)?;
        if (got as u64) < keep {
            return Err(self.truncated(
                start,
                format!("the file ends inside a {len}-byte record (type {rtype:02})"),
            ));
        }
        let rest = len - 2 - keep;
        if rest > 0 && self.skip(rest)? < rest {
            return Err(self.truncated(
                start,
                format!("the file ends inside a {len}-byte record (type {rtype:02})"),
            ));
        }
        let mut text = String::with_capacity(body.len() + 2);
        self.encoding.decode_into(&t, &mut text);
        self.encoding.decode_into(&body, &mut text);
        Ok(Some(Record {
            number: self.number,
            offset: start,
            rtype,
            text,
            image: None,
        }))
    }

    fn record_type(&self, t: [u8; 2], start: u64) -> Result<u8, X9Error> {
        let s = self.encoding.decode(&t);
        s.parse::<u8>()
            .ok()
            .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| X9Error::Structure {
                record: self.number,
                offset: start,
                detail: format!(
                    "the record type {s:?} (bytes {}) is not two {} digits; the file is not {} or its framing is lost",
                    hex::encode(t),
                    self.encoding.as_str(),
                    self.encoding.as_str()
                ),
            })
    }

    /// Reads a type 52 after its two type bytes. `len` is the whole record's length when the file
    /// has length prefixes; without them the record ends where its length fields say.
    fn read_52(&mut self, start: u64, t: [u8; 2], len: Option<u64>) -> Result<Record, X9Error> {
        let short = |s: &Self, what: &str| {
            s.truncated(
                start,
                format!("the file ends inside an image view data record (type 52), in its {what}"),
            )
        };
        // 3-105: fixed fields.
        let mut fixed = [0u8; 103];
        if self.read_exact_counted(&mut fixed)? < fixed.len() {
            return Err(short(self, "fixed fields"));
        }
        let mut text = String::with_capacity(105);
        self.encoding.decode_into(&t, &mut text);
        self.encoding.decode_into(&fixed, &mut text);
        let number = self.number;
        let field_err = |field: &'static str, positions: String, value: String| X9Error::Field {
            record: number,
            rtype: kind::IMAGE_VIEW_DATA,
            field,
            positions,
            value,
            detail: "must be digits".into(),
        };
        let digits = |s: &str| -> Option<u64> {
            let s = s.trim();
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let sequence = text[21..36].trim().to_string();
        // 102-105: length of the image reference key.
        let lirk_s = text[101..105].to_string();
        let lirk = if lirk_s.trim().is_empty() {
            0
        } else {
            digits(&lirk_s).ok_or_else(|| {
                field_err(
                    "length of image reference key",
                    "102-105".into(),
                    lirk_s.clone(),
                )
            })?
        };
        if self.skip(lirk)? < lirk {
            return Err(short(self, "image reference key"));
        }
        // 106+X .. 110+X: length of digital signature (5).
        let mut lds_b = [0u8; 5];
        if self.read_exact_counted(&mut lds_b)? < 5 {
            return Err(short(self, "digital signature length"));
        }
        let lds_s = self.encoding.decode(&lds_b);
        let lds = if lds_s.trim().is_empty() {
            0
        } else {
            digits(&lds_s).ok_or_else(|| {
                field_err(
                    "length of digital signature",
                    format!("{}-{}", 106 + lirk, 110 + lirk),
                    lds_s.clone(),
                )
            })?
        };
        if self.skip(lds)? < lds {
            return Err(short(self, "digital signature"));
        }
        // 111+X+Y .. 117+X+Y: length of image data (7).
        let mut lid_b = [0u8; 7];
        if self.read_exact_counted(&mut lid_b)? < 7 {
            return Err(short(self, "image data length"));
        }
        let lid_s = self.encoding.decode(&lid_b);
        let lid = digits(&lid_s).ok_or_else(|| {
            field_err(
                "length of image data",
                format!("{}-{}", 111 + lirk + lds, 117 + lirk + lds),
                lid_s.clone(),
            )
        })?;
        let header = 117 + lirk + lds;
        let mut problem = None;
        // The image bytes to read: as declared, or (with a length prefix) what the record holds.
        let available = match len {
            Some(len) => {
                if len < header {
                    return Err(X9Error::Structure {
                        record: number,
                        offset: start,
                        detail: format!(
                            "the record length {len} is shorter than its own fields ({header} bytes before the image)"
                        ),
                    });
                }
                let avail = len - header;
                if avail != lid {
                    problem = Some(format!(
                        "the image data length field says {lid} bytes but the record holds {avail}"
                    ));
                }
                avail
            }
            None => lid,
        };
        let mut bytes = Vec::new();
        if self.keep_images && problem.is_none() {
            // `available` <= MAX_RECORD_BYTES, checked with the prefix (or bounded by the 7 digits).
            bytes = vec![0u8; usize::try_from(available).unwrap_or(0)];
            let got = self.read_exact_counted(&mut bytes)?;
            if (got as u64) < available {
                return Err(short(self, "image data"));
            }
        } else if self.skip(available)? < available {
            return Err(short(self, "image data"));
        }
        if len.is_none() {
            self.end_of_line(start)?;
        }
        Ok(Record {
            number,
            offset: start,
            rtype: kind::IMAGE_VIEW_DATA,
            text,
            image: Some(ImageData {
                sequence,
                bytes,
                declared_len: lid,
                problem,
            }),
        })
    }

    /// Line terminators: LF (and CR LF) in ASCII; in EBCDIC also NL (0x15) and LF (0x25).
    fn is_newline(&self, b: u8) -> bool {
        b == b'\n' || (self.encoding == Encoding::Ebcdic && (b == 0x15 || b == 0x25))
    }

    /// After a type 52 in a file without prefixes: an optional CR, then a line end (or the end of
    /// the file).
    fn end_of_line(&mut self, start: u64) -> Result<(), X9Error> {
        let mut b = [0u8; 1];
        if self.read_exact_counted(&mut b)? == 0 {
            return Ok(());
        }
        if b[0] == b'\r' && self.read_exact_counted(&mut b)? == 0 {
            return Ok(());
        }
        if self.is_newline(b[0]) {
            return Ok(());
        }
        Err(X9Error::Structure {
            record: self.number,
            offset: start,
            detail: format!(
                "the image data of this type 52 record is not followed by a line end (byte {:02x}): its \
                 image length field disagrees with the data",
                b[0]
            ),
        })
    }

    fn next_line(&mut self) -> Result<Option<Record>, X9Error> {
        let start = self.offset;
        let mut t = [0u8; 2];
        let got = self.read_exact_counted(&mut t)?;
        if got == 0 {
            return Ok(None);
        }
        self.number += 1;
        if got < 2 {
            if self.is_newline(t[0]) || t[0] == b'\r' {
                // A final empty line.
                return Ok(None);
            }
            return Err(self.truncated(start, "the file ends inside a record type".into()));
        }
        let rtype = self.record_type(t, start)?;
        if rtype == kind::IMAGE_VIEW_DATA {
            return self.read_52(start, t, None).map(Some);
        }
        let mut line = Vec::with_capacity(80);
        line.extend_from_slice(&t);
        let mut b = [0u8; 1];
        loop {
            if self.read_exact_counted(&mut b)? == 0 {
                break;
            }
            if self.is_newline(b[0]) {
                break;
            }
            line.push(b[0]);
            if line.len() > MAX_LINE_BYTES {
                return Err(X9Error::RecordTooLong {
                    record: self.number,
                    offset: start,
                    length: line.len() as u64,
                    max: MAX_LINE_BYTES as u64,
                });
            }
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(Some(Record {
            number: self.number,
            offset: start,
            rtype,
            text: self.encoding.decode(&line),
            image: None,
        }))
    }
}

/// Where the item assembler is in the file's structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    Start,
    File,
    CashLetter,
    Bundle,
    Done,
}

#[derive(Default)]
struct Totals {
    items: u64,
    amount: u64,
    images: u64,
    bundles: u64,
}

/// Turns records into items and checks the file's structure and control totals on the way.
pub struct ItemReader<R> {
    records: RecordReader<R>,
    level: Level,
    bundle: Totals,
    letter: Totals,
    file: Totals,
    cash_letters: u64,
    pending: Option<X9Item>,
    /// The last type 50 seen in the item in hand, waiting for its 52.
    view: Option<ImageViewDetail>,
    addenda: u32,
    summary: X9Summary,
    unknown: std::collections::BTreeMap<u8, u64>,
}

impl<R: BufRead> ItemReader<R> {
    pub fn new(r: R, keep_images: bool, force: Option<Encoding>) -> Result<Self, X9Error> {
        let records = RecordReader::new(r, keep_images, force)?;
        let summary = X9Summary {
            encoding: records.encoding(),
            framing: records.framing(),
            ..X9Summary::default()
        };
        Ok(Self {
            records,
            level: Level::Start,
            bundle: Totals::default(),
            letter: Totals::default(),
            file: Totals::default(),
            cash_letters: 0,
            pending: None,
            view: None,
            addenda: 0,
            summary,
            unknown: Default::default(),
        })
    }

    /// What was read so far; complete once [`Self::next_item`] returned `Ok(None)`.
    pub fn summary(&self) -> &X9Summary {
        &self.summary
    }

    fn structure(&self, rec: &Record, detail: impl Into<String>) -> X9Error {
        X9Error::Structure {
            record: rec.number,
            offset: rec.offset,
            detail: detail.into(),
        }
    }

    fn note(&mut self, n: String) {
        if self.summary.notes.len() < MAX_NOTES {
            self.summary.notes.push(n);
        }
    }

    fn close_item(&mut self) -> Option<X9Item> {
        let mut item = self.pending.take()?;
        self.view = None;
        if item.problem.is_none() && item.front.is_none() {
            item.problem = Some(if item.front_declared {
                "the front image view was declared (type 50) but no usable image data (type 52) followed".into()
            } else {
                "the item has no front image view (types 50 and 52)".into()
            });
        }
        if let Some(n) = item.addendum_count
            && n != self.addenda
        {
            let msg = format!(
                "item {}: the check detail announces {n} addenda, {} followed",
                item.sequence, self.addenda
            );
            self.note(msg);
        }
        self.addenda = 0;
        Some(item)
    }

    fn control<T: std::fmt::Display + PartialEq>(
        rec: &Record,
        what: &'static str,
        declared: T,
        counted: T,
    ) -> Result<(), X9Error> {
        if declared == counted {
            return Ok(());
        }
        Err(X9Error::Control {
            record: rec.number,
            rtype: rec.rtype,
            what,
            declared: declared.to_string(),
            counted: counted.to_string(),
        })
    }

    /// The next item, `Ok(None)` after the file control record, or the error that makes the file
    /// unusable.
    pub fn next_item(&mut self) -> Result<Option<X9Item>, X9Error> {
        loop {
            if self.level == Level::Done {
                // Only padding may follow the file control record.
                return match self.records.next_record() {
                    Ok(None) => Ok(None),
                    Ok(Some(rec)) => Err(self.structure(
                        &rec,
                        format!(
                            "a type {:02} record follows the file control record (99)",
                            rec.rtype
                        ),
                    )),
                    Err(X9Error::Structure { .. }) | Err(X9Error::Truncated { .. }) => {
                        self.note("bytes after the file control record (99) were ignored".into());
                        Ok(None)
                    }
                    Err(e) => Err(e),
                };
            }
            let Some(rec) = self.records.next_record()? else {
                let what = match self.level {
                    Level::Start => "the file has no records",
                    Level::Bundle => {
                        "the file ends inside a bundle: the bundle control (70), cash letter control (90) and file control (99) records are missing"
                    }
                    Level::CashLetter => {
                        "the file ends inside a cash letter: the cash letter control (90) and file control (99) records are missing"
                    }
                    _ => "the file ends without its file control record (99)",
                };
                return Err(X9Error::Truncated {
                    record: self.records.number,
                    offset: self.records.offset(),
                    detail: what.into(),
                });
            };
            for n in self.records.take_notes() {
                self.note(n);
            }
            self.summary.records += 1;
            let fields = Fields {
                text: &rec.text,
                rtype: rec.rtype,
                record: rec.number,
            };
            match (rec.rtype, self.level) {
                (kind::FILE_HEADER, Level::Start) => {
                    self.summary.header = Some(FileHeader::parse(&fields));
                    self.level = Level::File;
                }
                (kind::FILE_HEADER, _) => {
                    return Err(self.structure(&rec, "a second file header record (01)"));
                }
                (_, Level::Start) => {
                    return Err(self.structure(&rec, "the first record is not a file header (01)"));
                }
                (kind::CASH_LETTER_HEADER, Level::File) => {
                    self.letter = Totals::default();
                    self.level = Level::CashLetter;
                }
                (kind::BUNDLE_HEADER, Level::CashLetter) => {
                    self.bundle = Totals::default();
                    self.level = Level::Bundle;
                }
                (kind::CHECK_DETAIL, Level::Bundle) => {
                    let d = CheckDetail::parse(&fields)?;
                    let done = self.close_item();
                    self.bundle.items += 1;
                    self.bundle.amount = self
                        .bundle
                        .amount
                        .saturating_add(d.amount_cents.unsigned_abs());
                    self.pending = Some(X9Item {
                        record: rec.number,
                        sequence: d.sequence,
                        routing: d.routing,
                        on_us: d.on_us,
                        aux_on_us: d.aux_on_us,
                        amount_cents: d.amount_cents,
                        front: None,
                        front_format: None,
                        front_declared: false,
                        back: false,
                        addendum_count: d.addendum_count,
                        problem: None,
                    });
                    if let Some(item) = done {
                        return Ok(Some(item));
                    }
                }
                (kind::ADDENDUM_A | kind::ADDENDUM_B | kind::ADDENDUM_C, Level::Bundle)
                    if self.pending.is_some() =>
                {
                    self.addenda += 1;
                }
                (kind::IMAGE_VIEW_DETAIL, Level::Bundle) if self.pending.is_some() => {
                    let v = ImageViewDetail::parse(&fields);
                    if let Some(item) = self.pending.as_mut() {
                        if v.is_front() && !item.front_declared {
                            item.front_declared = v.image_indicator != "0";
                        } else if !v.is_front() {
                            item.back = true;
                        }
                    }
                    self.view = Some(v);
                }
                (kind::IMAGE_VIEW_DATA, Level::Bundle) if self.pending.is_some() => {
                    self.bundle.images += 1;
                    let view = self.view.take();
                    let data = rec.image;
                    if let (Some(item), Some(data)) = (self.pending.as_mut(), data) {
                        let is_front = view.as_ref().is_some_and(ImageViewDetail::is_front);
                        if is_front && item.front.is_none() && item.problem.is_none() {
                            let seq_ok = data.sequence.is_empty()
                                || data.sequence.bytes().all(|b| b == b'0')
                                || data.sequence == item.sequence
                                || data.sequence.trim_start_matches('0')
                                    == item.sequence.trim_start_matches('0');
                            if let Some(p) = data.problem {
                                item.problem =
                                    Some(format!("front image (record {}): {p}", rec.number));
                            } else if !seq_ok {
                                item.problem = Some(format!(
                                    "the front image (record {}) names item sequence number {}, not this item's",
                                    rec.number, data.sequence
                                ));
                            } else if data.declared_len == 0 {
                                item.problem = Some(format!(
                                    "the front image (record {}) is empty",
                                    rec.number
                                ));
                            } else {
                                item.front = Some(data.bytes);
                                item.front_format = view.as_ref().map(ImageViewDetail::describe);
                            }
                        } else if view.is_none() {
                            let msg = format!(
                                "record {}: image view data (52) without an image view detail (50) before it; ignored",
                                rec.number
                            );
                            self.note(msg);
                        }
                    }
                }
                (kind::IMAGE_VIEW_ANALYSIS, Level::Bundle) if self.pending.is_some() => {}
                (kind::BUNDLE_CONTROL, Level::Bundle) => {
                    let c = BundleControl::parse(&fields)?;
                    let done = self.close_item();
                    Self::control(
                        &rec,
                        "items within bundle count",
                        c.items,
                        self.bundle.items,
                    )?;
                    Self::control(
                        &rec,
                        "bundle total amount (cents)",
                        c.amount_cents,
                        self.bundle.amount,
                    )?;
                    Self::control(
                        &rec,
                        "images within bundle count",
                        c.images,
                        self.bundle.images,
                    )?;
                    self.letter.items += self.bundle.items;
                    self.letter.amount = self.letter.amount.saturating_add(self.bundle.amount);
                    self.letter.images += self.bundle.images;
                    self.letter.bundles += 1;
                    self.level = Level::CashLetter;
                    if let Some(item) = done {
                        return Ok(Some(item));
                    }
                }
                (kind::CASH_LETTER_CONTROL, Level::CashLetter) => {
                    let c = CashLetterControl::parse(&fields)?;
                    Self::control(&rec, "bundle count", c.bundles, self.letter.bundles)?;
                    Self::control(
                        &rec,
                        "items within cash letter count",
                        c.items,
                        self.letter.items,
                    )?;
                    Self::control(
                        &rec,
                        "cash letter total amount (cents)",
                        c.amount_cents,
                        self.letter.amount,
                    )?;
                    Self::control(
                        &rec,
                        "images within cash letter count",
                        c.images,
                        self.letter.images,
                    )?;
                    self.file.items += self.letter.items;
                    self.file.amount = self.file.amount.saturating_add(self.letter.amount);
                    self.file.images += self.letter.images;
                    self.file.bundles += self.letter.bundles;
                    self.cash_letters += 1;
                    self.level = Level::File;
                }
                (kind::FILE_CONTROL, Level::File) => {
                    let c = FileControl::parse(&fields)?;
                    Self::control(&rec, "cash letter count", c.cash_letters, self.cash_letters)?;
                    Self::control(&rec, "total record count", c.records, self.summary.records)?;
                    Self::control(&rec, "total item count", c.items, self.file.items)?;
                    Self::control(
                        &rec,
                        "file total amount (cents)",
                        c.amount_cents,
                        self.file.amount,
                    )?;
                    self.summary.items = self.file.items;
                    self.summary.total_cents = self.file.amount;
                    self.summary.images = self.file.images;
                    self.summary.bundles = self.file.bundles;
                    self.summary.cash_letters = self.cash_letters;
                    for (t, n) in std::mem::take(&mut self.unknown) {
                        self.note(format!(
                            "{n} record(s) of type {t:02} were skipped (not used for verification)"
                        ));
                    }
                    self.level = Level::Done;
                }
                (
                    kind::CASH_LETTER_HEADER
                    | kind::BUNDLE_HEADER
                    | kind::CHECK_DETAIL
                    | kind::BUNDLE_CONTROL
                    | kind::CASH_LETTER_CONTROL
                    | kind::FILE_CONTROL,
                    level,
                ) => {
                    let expected = match level {
                        Level::File => "a cash letter header (10) or the file control (99)",
                        Level::CashLetter => "a bundle header (20) or the cash letter control (90)",
                        Level::Bundle => {
                            "items (25 with 26-28, 50, 52, 54) or the bundle control (70)"
                        }
                        _ => "nothing",
                    };
                    return Err(self.structure(
                        &rec,
                        format!(
                            "a type {:02} record where {expected} was expected: a header or control record is missing",
                            rec.rtype
                        ),
                    ));
                }
                (
                    kind::ADDENDUM_A
                    | kind::ADDENDUM_B
                    | kind::ADDENDUM_C
                    | kind::IMAGE_VIEW_DETAIL
                    | kind::IMAGE_VIEW_DATA
                    | kind::IMAGE_VIEW_ANALYSIS,
                    _,
                ) => {
                    return Err(self.structure(
                        &rec,
                        format!(
                            "a type {:02} record outside an item (no check detail 25 before it)",
                            rec.rtype
                        ),
                    ));
                }
                (other, _) => {
                    // Credits (61, 62), user records (68), returns (31-35), routing summaries (85)
                    // and anything else: not used here, skipped and counted.
                    *self.unknown.entry(other).or_default() += 1;
                }
            }
        }
    }
}
