//! Record layouts of ANSI X9.100-187 (2008/2013) and its predecessor X9.37 (DSTU 2003), the record
//! types Countersign reads. Positions are 1-based and inclusive, as the standard prints them; the
//! same positions are used by the established open-source reader moov-io/imagecashletter
//! (`fileHeader.go`, `checkDetail.go`, `imageViewDetail.go`, `imageViewData.go`, `bundleControl.go`,
//! `cashLetterControl.go`, `fileControl.go`), against which each one here was checked.
//!
//! Fixed-length records are 80 characters. Some producers strip trailing spaces, so a short record
//! reads as if padded with spaces; only the record type 52 (image view data) carries binary data
//! and is parsed field by field in [`super::reader`].

use super::X9Error;

/// Record types, as their two-digit codes.
pub mod kind {
    pub const FILE_HEADER: u8 = 1;
    pub const CASH_LETTER_HEADER: u8 = 10;
    pub const BUNDLE_HEADER: u8 = 20;
    pub const CHECK_DETAIL: u8 = 25;
    pub const ADDENDUM_A: u8 = 26;
    pub const ADDENDUM_B: u8 = 27;
    pub const ADDENDUM_C: u8 = 28;
    pub const IMAGE_VIEW_DETAIL: u8 = 50;
    pub const IMAGE_VIEW_DATA: u8 = 52;
    pub const IMAGE_VIEW_ANALYSIS: u8 = 54;
    pub const BUNDLE_CONTROL: u8 = 70;
    pub const CASH_LETTER_CONTROL: u8 = 90;
    pub const FILE_CONTROL: u8 = 99;
}

/// A text record, decoded to ASCII, with where it was in the file (for messages).
#[derive(Clone, Debug)]
pub struct Fields<'a> {
    pub text: &'a str,
    pub rtype: u8,
    /// 1-based record number in the file.
    pub record: u64,
}

impl<'a> Fields<'a> {
    /// Characters `from..=to` (1-based), spaces where the record is shorter, not trimmed.
    pub fn raw(&self, from: usize, to: usize) -> &'a str {
        let len = self.text.len();
        let a = (from - 1).min(len);
        let b = to.min(len);
        &self.text[a..b]
    }

    /// Characters `from..=to`, trimmed of spaces.
    pub fn alpha(&self, from: usize, to: usize) -> &'a str {
        self.raw(from, to).trim()
    }

    /// A mandatory numeric field: digits only (spaces around them are tolerated, as some producers
    /// right-justify with blanks), and not empty.
    pub fn num(&self, from: usize, to: usize, field: &'static str) -> Result<u64, X9Error> {
        let v = self.alpha(from, to);
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(X9Error::Field {
                record: self.record,
                rtype: self.rtype,
                field,
                positions: format!("{from}-{to}"),
                value: self.raw(from, to).to_string(),
                detail: "must be digits".into(),
            });
        }
        // At most 16 digits in any X9 count or amount field: fits in u64.
        v.parse::<u64>().map_err(|e| X9Error::Field {
            record: self.record,
            rtype: self.rtype,
            field,
            positions: format!("{from}-{to}"),
            value: v.to_string(),
            detail: e.to_string(),
        })
    }
}

/// Type 01, File Header Record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FileHeader {
    /// 3-4: "03" X9.37 DSTU, "30" X9.100-187-2008, "35" X9.100-187-2013 and later.
    pub standard_level: String,
    /// 5: "T" test, "P" production.
    pub test_file: String,
    /// 6-14.
    pub destination_routing: String,
    /// 15-23.
    pub origin_routing: String,
    /// 24-31 (YYYYMMDD).
    pub creation_date: String,
    /// 32-35 (hhmm).
    pub creation_time: String,
    /// 37-54.
    pub destination_name: String,
    /// 55-72.
    pub origin_name: String,
}

impl FileHeader {
    pub fn parse(f: &Fields<'_>) -> Self {
        Self {
            standard_level: f.alpha(3, 4).into(),
            test_file: f.alpha(5, 5).into(),
            destination_routing: f.alpha(6, 14).into(),
            origin_routing: f.alpha(15, 23).into(),
            creation_date: f.alpha(24, 31).into(),
            creation_time: f.alpha(32, 35).into(),
            destination_name: f.alpha(37, 54).into(),
            origin_name: f.alpha(55, 72).into(),
        }
    }
}

/// Type 10, Cash Letter Header Record: 3-4 collection type, 5-13 destination routing, 14-22 ECE
/// institution routing, 23-30 business date, 31-38 creation date, 39-42 creation time, 43 record type
/// indicator, 44 documentation type indicator, 45-52 cash letter id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CashLetterHeader {
    pub business_date: String,
    pub cash_letter_id: String,
}

impl CashLetterHeader {
    pub fn parse(f: &Fields<'_>) -> Self {
        Self {
            business_date: f.alpha(23, 30).into(),
            cash_letter_id: f.alpha(45, 52).into(),
        }
    }
}

/// Type 20, Bundle Header Record: 3-4 collection type, 5-13 destination routing, 14-22 ECE
/// institution routing, 23-30 business date, 31-38 creation date, 39-48 bundle id, 49-52 bundle
/// sequence number, 53-54 cycle number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleHeader {
    pub bundle_id: String,
    pub sequence: String,
}

impl BundleHeader {
    pub fn parse(f: &Fields<'_>) -> Self {
        Self {
            bundle_id: f.alpha(39, 48).into(),
            sequence: f.alpha(49, 52).into(),
        }
    }
}

/// Type 25, Check Detail Record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckDetail {
    /// 3-17, auxiliary on-us (often the serial number of a business cheque).
    pub aux_on_us: String,
    /// 18, external processing code ("position 44").
    pub epc: String,
    /// 19-26 payor bank routing number and 27 its check digit, together 9 digits.
    pub routing: String,
    /// 28-47, on-us: usually the account number and a serial or transaction code, `/` standing for
    /// the MICR on-us symbol.
    pub on_us: String,
    /// 48-57, amount in cents (10 digits).
    pub amount_cents: i64,
    /// 58-72, ECE institution item sequence number (15).
    pub sequence: String,
    /// 75, MICR valid indicator.
    pub micr_valid: String,
    /// 77-78, number of addenda (26, 27, 28) that follow.
    pub addendum_count: Option<u32>,
}

impl CheckDetail {
    pub fn parse(f: &Fields<'_>) -> Result<Self, X9Error> {
        let amount = f.num(48, 57, "item amount")?;
        let sequence = f.alpha(58, 72);
        if sequence.is_empty() {
            return Err(X9Error::Field {
                record: f.record,
                rtype: f.rtype,
                field: "ECE institution item sequence number",
                positions: "58-72".into(),
                value: f.raw(58, 72).into(),
                detail: "must not be blank".into(),
            });
        }
        let count = f.alpha(77, 78);
        Ok(Self {
            aux_on_us: f.alpha(3, 17).into(),
            epc: f.alpha(18, 18).into(),
            routing: format!("{}{}", f.alpha(19, 26), f.alpha(27, 27)),
            on_us: f.alpha(28, 47).into(),
            // 10 digits: at most 9,999,999,999, well inside i64.
            amount_cents: i64::try_from(amount).unwrap_or(i64::MAX),
            sequence: sequence.into(),
            micr_valid: f.alpha(75, 75).into(),
            addendum_count: count.parse().ok(),
        })
    }
}

/// Type 50, Image View Detail Record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageViewDetail {
    /// 3: 0 no image, 1 image present and usable, 2 image present but not usable.
    pub image_indicator: String,
    /// 21-22: 00 TIFF 6, 01 IOCA FS 11, 20 PNG, 21 JFIF, 22 SPIFF, 23 JBIG, 24 JPEG 2000.
    pub format: String,
    /// 23-24: 00 CCITT Group 4, 01 JPEG baseline, 02 ABIC, 21 PNG, 22 JBIG, 23 JPEG 2000.
    pub compression: String,
    /// 32: 0 front, 1 back.
    pub side: String,
    /// 33-34: 00 full view.
    pub view_descriptor: String,
}

impl ImageViewDetail {
    pub fn parse(f: &Fields<'_>) -> Self {
        Self {
            image_indicator: f.alpha(3, 3).into(),
            format: f.alpha(21, 22).into(),
            compression: f.alpha(23, 24).into(),
            side: f.alpha(32, 32).into(),
            view_descriptor: f.alpha(33, 34).into(),
        }
    }

    pub fn is_front(&self) -> bool {
        self.side == "0"
    }

    /// A short name of the declared format and compression, for messages.
    pub fn describe(&self) -> String {
        let format = match self.format.as_str() {
            "00" => "TIFF",
            "01" => "IOCA",
            "20" => "PNG",
            "21" => "JFIF",
            "22" => "SPIFF",
            "23" => "JBIG",
            "24" => "JPEG 2000",
            other => return format!("format code {other:?}"),
        };
        let compression = match self.compression.as_str() {
            "00" => "CCITT G4",
            "01" => "JPEG",
            "02" => "ABIC",
            "21" => "PNG",
            "22" => "JBIG",
            "23" => "JPEG 2000",
            _ => "other",
        };
        format!("{format} {compression}")
    }
}

/// Type 70, Bundle Control Record: 3-6 items, 7-18 total amount, 19-30 MICR valid total amount,
/// 31-35 images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleControl {
    pub items: u64,
    pub amount_cents: u64,
    pub images: u64,
}

impl BundleControl {
    pub fn parse(f: &Fields<'_>) -> Result<Self, X9Error> {
        Ok(Self {
            items: f.num(3, 6, "items within bundle count")?,
            amount_cents: f.num(7, 18, "bundle total amount")?,
            images: f.num(31, 35, "images within bundle count")?,
        })
    }
}

/// Type 90, Cash Letter Control Record: 3-8 bundles, 9-16 items, 17-30 total amount, 31-39 images,
/// 40-57 ECE institution name, 58-65 settlement date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CashLetterControl {
    pub bundles: u64,
    pub items: u64,
    pub amount_cents: u64,
    pub images: u64,
}

impl CashLetterControl {
    pub fn parse(f: &Fields<'_>) -> Result<Self, X9Error> {
        Ok(Self {
            bundles: f.num(3, 8, "bundle count")?,
            items: f.num(9, 16, "items within cash letter count")?,
            amount_cents: f.num(17, 30, "cash letter total amount")?,
            images: f.num(31, 39, "images within cash letter count")?,
        })
    }
}

/// Type 99, File Control Record: 3-8 cash letters, 9-16 total records, 17-24 total items, 25-40
/// file total amount, 41-54 contact name, 55-64 contact phone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileControl {
    pub cash_letters: u64,
    pub records: u64,
    pub items: u64,
    pub amount_cents: u64,
}

impl FileControl {
    pub fn parse(f: &Fields<'_>) -> Result<Self, X9Error> {
        Ok(Self {
            cash_letters: f.num(3, 8, "cash letter count")?,
            records: f.num(9, 16, "total record count")?,
            items: f.num(17, 24, "total item count")?,
            amount_cents: f.num(25, 40, "file total amount")?,
        })
    }
}
