//! Writes X9.100-187 files: one cash letter of bundles of items, each with a front and a back image.
//!
//! Used by `countersign synth --x9` and by tests. Record layouts are those of [`super::records`];
//! every fixed record is exactly 80 characters.

use std::io::Write;

use super::Encoding;

/// How to write a file.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    pub encoding: Encoding,
    /// 4-byte big-endian length prefixes (the standard); `false` writes one record per line (CR LF).
    pub length_prefixed: bool,
    /// Items per bundle.
    pub bundle_items: u32,
    /// The institution creating the file (9-digit routing number) and its name.
    pub origin_routing: String,
    pub origin_name: String,
    pub destination_routing: String,
    pub destination_name: String,
    /// YYYYMMDD.
    pub business_date: String,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            encoding: Encoding::Ascii,
            length_prefixed: true,
            bundle_items: 100,
            origin_routing: "091000019".into(),
            origin_name: "COUNTERSIGN SYNTH".into(),
            destination_routing: "021000021".into(),
            destination_name: "PAYING BANK".into(),
            business_date: "20260102".into(),
        }
    }
}

/// One item to write.
#[derive(Clone, Debug)]
pub struct ItemOut<'a> {
    /// ECE institution item sequence number (at most 15 digits).
    pub sequence: u64,
    /// Payor bank routing number with check digit (9 digits).
    pub routing: &'a str,
    pub on_us: &'a str,
    pub amount_cents: u64,
    /// Front image (TIFF G4 normally) and its X9 format and compression codes.
    pub front: &'a [u8],
    pub front_format: (&'a str, &'a str),
    pub back: &'a [u8],
}

/// Left-justified, space-padded (or cut) to `n` characters.
pub fn alpha(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    while out.len() < n {
        out.push(' ');
    }
    out
}

/// Right-justified, zero-padded to `n` digits.
pub fn num(v: u64, n: usize) -> String {
    let s = format!("{v:0n$}");
    // A value too large for its field keeps its low digits; callers check their totals.
    s[s.len() - n..].to_string()
}

/// Streams a file: [`X9Writer::item`] for each item, then [`X9Writer::finish`].
pub struct X9Writer<W: Write> {
    w: W,
    opts: WriterOptions,
    records: u64,
    bundle_open: bool,
    bundle_no: u64,
    bundle: (u64, u64, u64),
    letter: (u64, u64, u64, u64),
}

impl<W: Write> X9Writer<W> {
    /// Writes the file header and the cash letter header.
    pub fn new(w: W, opts: WriterOptions) -> std::io::Result<Self> {
        let mut x = Self {
            w,
            opts,
            records: 0,
            bundle_open: false,
            bundle_no: 0,
            bundle: (0, 0, 0),
            letter: (0, 0, 0, 0),
        };
        let o = x.opts.clone();
        // 01: 3-4 standard level "35" (X9.100-187-2013), 5 test file, 6-14 destination, 15-23
        // origin, 24-31 date, 32-35 time, 36 resend, 37-54 / 55-72 names, 73 file id modifier,
        // 74-75 country, 76-79 user field, 80 companion document indicator.
        x.text(&format!(
            "0135T{}{}{}1200N{}{}AUS     ",
            alpha(&o.destination_routing, 9),
            alpha(&o.origin_routing, 9),
            alpha(&o.business_date, 8),
            alpha(&o.destination_name, 18),
            alpha(&o.origin_name, 18),
        ))?;
        // 10: 3-4 collection type, 5-13 destination, 14-22 ECE institution, 23-30 business date,
        // 31-38 creation date, 39-42 time, 43 record type (I = image), 44 documentation type
        // (G = image included), 45-52 cash letter id, 53-66 contact, 67-76 phone, 77 fed work type,
        // 78 returns indicator, 79 user field, 80 reserved.
        x.text(&format!(
            "1001{}{}{}{}1200IG{}{}{}    ",
            alpha(&o.destination_routing, 9),
            alpha(&o.origin_routing, 9),
            alpha(&o.business_date, 8),
            alpha(&o.business_date, 8),
            alpha("CL000001", 8),
            alpha("OPERATIONS", 14),
            alpha("5550100000", 10),
        ))?;
        Ok(x)
    }

    fn raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.records += 1;
        if self.opts.length_prefixed {
            let len = u32::try_from(bytes.len()).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "record too long")
            })?;
            self.w.write_all(&len.to_be_bytes())?;
            self.w.write_all(bytes)?;
        } else {
            self.w.write_all(bytes)?;
            self.w.write_all(b"\r\n")?;
        }
        Ok(())
    }

    fn text(&mut self, s: &str) -> std::io::Result<()> {
        if s.len() != 80 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "internal error: record {s:?} is {} characters, not 80",
                    s.len()
                ),
            ));
        }
        let b = self.opts.encoding.encode(s);
        self.raw(&b)
    }

    fn open_bundle(&mut self) -> std::io::Result<()> {
        self.bundle_no += 1;
        self.bundle = (0, 0, 0);
        self.bundle_open = true;
        let o = self.opts.clone();
        // 20: 3-4 collection type, 5-13 destination, 14-22 ECE institution, 23-30 business date,
        // 31-38 creation date, 39-48 bundle id, 49-52 bundle sequence, 53-54 cycle, 55-63 return
        // location routing, 64-68 user field, 69-80 reserved.
        let s = format!(
            "2001{}{}{}{}{}{}01{}{}{}",
            alpha(&o.destination_routing, 9),
            alpha(&o.origin_routing, 9),
            alpha(&o.business_date, 8),
            alpha(&o.business_date, 8),
            num(self.bundle_no, 10),
            num(self.bundle_no, 4),
            alpha(&o.origin_routing, 9),
            alpha("", 5),
            alpha("", 12),
        );
        self.text(&s)
    }

    fn close_bundle(&mut self) -> std::io::Result<()> {
        if !self.bundle_open {
            return Ok(());
        }
        let (items, amount, images) = self.bundle;
        // 70: 3-6 items, 7-18 amount, 19-30 MICR valid amount, 31-35 images, 36-55 user field,
        // 56 credit total indicator, 57-80 reserved.
        let s = format!(
            "70{}{}{}{}{}0{}",
            num(items, 4),
            num(amount, 12),
            num(amount, 12),
            num(images, 5),
            alpha("", 20),
            alpha("", 24)
        );
        self.text(&s)?;
        self.letter.0 += 1;
        self.letter.1 += items;
        self.letter.2 += amount;
        self.letter.3 += images;
        self.bundle_open = false;
        Ok(())
    }

    /// Writes one item: check detail, one addendum A, and a front and a back image view.
    pub fn item(&mut self, it: &ItemOut<'_>) -> std::io::Result<()> {
        if !self.bundle_open {
            self.open_bundle()?;
        }
        let o = self.opts.clone();
        let routing = alpha(it.routing, 9);
        // 25: 3-17 auxiliary on-us, 18 EPC, 19-26 routing, 27 check digit, 28-47 on-us, 48-57
        // amount, 58-72 item sequence number, 73 documentation type, 74 return acceptance, 75 MICR
        // valid, 76 BOFD, 77-78 addendum count, 79 correction, 80 archive type.
        let s = format!(
            "25{}{}{}{}{}{}G01Y010B",
            alpha("", 15),
            " ",
            routing,
            alpha(it.on_us, 20),
            num(it.amount_cents, 10),
            num(it.sequence, 15),
        );
        self.text(&s)?;
        // 26: 3 record number, 4-12 BOFD routing, 13-20 BOFD business date, 21-35 BOFD item
        // sequence, 36-53 deposit account, 54-58 branch, 59-73 payee, 74 truncation, 75 conversion,
        // 76 correction, 77 user field, 78-80 reserved.
        let s = format!(
            "261{}{}{}{}{}{}Y10 {}",
            alpha(&o.origin_routing, 9),
            alpha(&o.business_date, 8),
            num(it.sequence, 15),
            alpha("", 18),
            alpha("", 5),
            alpha("", 15),
            alpha("", 3)
        );
        self.text(&s)?;
        for (side, image, (format, compression)) in [
            ("0", it.front, it.front_format),
            ("1", it.back, ("00", "00")),
        ] {
            // 50: 3 image indicator, 4-12 creator routing, 13-20 date, 21-22 format, 23-24
            // compression, 25-31 data size, 32 side, 33-34 view descriptor, 35 digital signature
            // indicator, 36-37 method, 38-42 key size, 43-49 protected start, 50-56 protected length,
            // 57 recreate indicator, 58-65 user field, 66 reserved, 67 override, 68-80 reserved.
            let s = format!(
                "501{}{}{}{}{}{side}000{}{}{}{}0{} 0{}",
                alpha(&o.origin_routing, 9),
                alpha(&o.business_date, 8),
                alpha(format, 2),
                alpha(compression, 2),
                num(image.len() as u64, 7),
                alpha("", 2),
                alpha("", 5),
                alpha("", 7),
                alpha("", 7),
                alpha("", 8),
                alpha("", 13),
            );
            self.text(&s)?;
            // 52: 3-11 ECE routing, 12-19 business date, 20-21 cycle, 22-36 item sequence,
            // 37-52 / 53-68 / 69-84 security names, 85 clipping origin, 86-101 clipping coordinates,
            // 102-105 image reference key length, then (X = 0) 106-110 digital signature length,
            // (Y = 0) 111-117 image data length, 118- image data.
            let fixed = format!(
                "52{}{}01{}{}{}{}0{}0000{}{}",
                alpha(&o.origin_routing, 9),
                alpha(&o.business_date, 8),
                num(it.sequence, 15),
                alpha("", 16),
                alpha("", 16),
                alpha("", 16),
                alpha("", 16),
                num(0, 5),
                num(image.len() as u64, 7),
            );
            debug_assert_eq!(fixed.len(), 117);
            let mut rec = self.opts.encoding.encode(&fixed);
            rec.extend_from_slice(image);
            self.raw(&rec)?;
        }
        self.bundle.0 += 1;
        self.bundle.1 += it.amount_cents;
        self.bundle.2 += 2;
        if self.bundle.0 >= u64::from(self.opts.bundle_items.max(1)) {
            self.close_bundle()?;
        }
        Ok(())
    }

    /// Closes the last bundle, writes the cash letter control and the file control; returns the
    /// writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.close_bundle()?;
        let (bundles, items, amount, images) = self.letter;
        // 90: 3-8 bundles, 9-16 items, 17-30 amount, 31-39 images, 40-57 ECE institution name,
        // 58-65 settlement date, 66 credit total indicator, 67-80 reserved.
        let s = format!(
            "90{}{}{}{}{}{}0{}",
            num(bundles, 6),
            num(items, 8),
            num(amount, 14),
            num(images, 9),
            alpha(&self.opts.origin_name, 18),
            alpha(&self.opts.business_date, 8),
            alpha("", 14)
        );
        self.text(&s)?;
        // 99: 3-8 cash letters, 9-16 records (this one included), 17-24 items, 25-40 amount,
        // 41-54 contact name, 55-64 phone, 65 credit total indicator, 66-80 reserved.
        let s = format!(
            "99{}{}{}{}{}{}0{}",
            num(1, 6),
            num(self.records + 1, 8),
            num(items, 8),
            num(amount, 16),
            alpha("OPERATIONS", 14),
            alpha("5550100000", 10),
            alpha("", 15)
        );
        self.text(&s)?;
        self.w.flush()?;
        Ok(self.w)
    }
}
