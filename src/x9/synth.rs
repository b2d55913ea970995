//! `countersign synth --x9`: synthetic cheques as an image cash letter, with their ground truth.
//!
//! Each item is a synthetic cheque (the renderer of [`crate::synth::cheque`]) whose MICR line
//! carries the item's routing number, on-us field (account `/` serial) and amount, made bitonal and
//! stored as a CCITT Group 4 TIFF, the form cheques travel in; the back is a bitonal endorsement.
//! Writers take turns; every other round of cheques carries a skilled forgery. Beside the file:
//!
//! - `OUT.truth.csv`: `sequence,account,routing,on_us,amount_cents,writer,genuine,sig_x,sig_y,sig_w,sig_h`;
//! - `OUT.refs/<account>_<k>.png`: each account holder's genuine reference signatures, to enrol.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use image::{GrayImage, Luma};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::Encoding;
use super::writer::{ItemOut, WriterOptions, X9Writer};
use crate::synth::SyntheticWriter;
use crate::synth::cheque::{ChequeOptions, PixelBox, render_cheque};

/// The payor bank's routing number in generated files (a valid ABA check digit).
pub const ROUTING: &str = "021000021";

/// Ink threshold when a grey scan is made bitonal.
pub const BITONAL_THRESHOLD: u8 = 150;

#[derive(Clone, Debug)]
pub struct X9SynthOptions {
    pub cheques: u32,
    pub writers: u32,
    /// Reference signatures written per account.
    pub references: u32,
    pub seed: u64,
    pub encoding: Encoding,
    pub length_prefixed: bool,
    /// Scanner effects (skew, blur, noise, paper) before the image is made bitonal.
    pub scan: bool,
}

impl Default for X9SynthOptions {
    fn default() -> Self {
        Self {
            cheques: 20,
            writers: 4,
            references: 4,
            seed: 1,
            encoding: Encoding::Ascii,
            length_prefixed: true,
            scan: true,
        }
    }
}

/// The ground truth of one generated item.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct X9Truth {
    pub sequence: String,
    pub account: String,
    pub routing: String,
    pub on_us: String,
    pub amount_cents: u64,
    pub writer: u32,
    pub genuine: bool,
    pub sig_x: u32,
    pub sig_y: u32,
    pub sig_w: u32,
    pub sig_h: u32,
}

/// What [`generate`] wrote.
#[derive(Clone, Debug)]
pub struct X9SynthSummary {
    pub file: PathBuf,
    pub truth: PathBuf,
    pub refs_dir: PathBuf,
    pub items: u64,
    pub total_cents: u64,
    /// Per account: its reference images.
    pub accounts: Vec<(String, Vec<PathBuf>)>,
}

/// The account number of writer `w`.
pub fn account_of(w: u32) -> String {
    format!("40{:08}", w + 1)
}

/// The item sequence number of item `i` (0-based) as the file writes it (15 digits).
pub fn sequence_of(i: u64) -> String {
    format!("{:015}", 1000 + i)
}

fn synthetic_writer(seed: u64, w: u32) -> SyntheticWriter {
    SyntheticWriter::new(
        seed.wrapping_mul(7919)
            .wrapping_add(u64::from(w))
            .wrapping_add(0x5839),
    )
}

/// A grey image made bitonal: ink (below `threshold`) black, the rest white.
pub fn bitonal(img: &GrayImage, threshold: u8) -> GrayImage {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        p.0[0] = if p.0[0] < threshold { 0 } else { 255 };
    }
    out
}

/// Encodes a bitonal image (ink = value < 128) as a single-strip CCITT Group 4 TIFF.
pub fn g4_tiff(img: &GrayImage) -> anyhow::Result<Vec<u8>> {
    use fax::{Color, VecWriter, encoder::Encoder};
    let (w, h) = img.dimensions();
    let width = u16::try_from(w).context("a G4 image is at most 65535 pixels wide")?;
    let mut enc = Encoder::new(VecWriter::new());
    let raw = img.as_raw();
    for y in 0..h as usize {
        let row = &raw[y * w as usize..(y + 1) * w as usize];
        let line = row
            .iter()
            .map(|&v| if v < 128 { Color::Black } else { Color::White });
        enc.encode_line(line, width)
            .map_err(|_| anyhow::anyhow!("G4 encoding failed"))?;
    }
    let data = enc
        .finish()
        .map_err(|_| anyhow::anyhow!("G4 encoding failed"))?
        .finish();
    Ok(fax::tiff::wrap(&data, w, h))
}

/// Renders item `i` (0-based): the bitonal front and its truth.
pub fn render_item(opts: &X9SynthOptions, i: u64) -> (GrayImage, X9Truth) {
    let writers = opts.writers.max(1);
    let w = (i % u64::from(writers)) as u32;
    let genuine = (i / u64::from(writers)).is_multiple_of(2);
    let writer = synthetic_writer(opts.seed, w);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ (i << 20) ^ 0x0009_3700);
    let sig = if genuine {
        writer.genuine(&mut rng)
    } else {
        writer.forgery(&mut rng, 0.6)
    };
    let account = account_of(w);
    let serial = 100 + i % 9000;
    let on_us = format!("{account}/{serial:04}");
    let sequence = sequence_of(i);
    let copts = ChequeOptions {
        cheque_id: sequence.clone(),
        writer_id: account.clone(),
        genuine,
        stamp_probability: 0.0,
        scan: opts.scan,
        micr: Some(format!("|:{ROUTING}|:  {account}/{serial:04}||")),
    };
    let (grey, truth) = render_cheque(&sig, &mut rng, &copts);
    // The amount written in the cheque's amount box ("12,345.67") is the item's amount.
    let amount_cents: u64 = truth
        .amount
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0);
    let front = bitonal(&grey, BITONAL_THRESHOLD);
    let b: PixelBox = truth.signature_box;
    (
        front,
        X9Truth {
            sequence,
            account,
            routing: ROUTING.into(),
            on_us,
            amount_cents,
            writer: w,
            genuine,
            sig_x: b.x,
            sig_y: b.y,
            sig_w: b.width,
            sig_h: b.height,
        },
    )
}

/// The back of every generated cheque: a bitonal endorsement box.
fn back_image(w: u32, h: u32) -> GrayImage {
    let mut img = GrayImage::from_pixel(w, h, Luma([255]));
    let (x0, x1, y0, y1) = (w / 10, w / 2, h / 8, h / 3);
    for x in x0..x1 {
        img.put_pixel(x, y0, Luma([0]));
        img.put_pixel(x, y1, Luma([0]));
    }
    for y in y0..=y1 {
        img.put_pixel(x0, y, Luma([0]));
        img.put_pixel(x1, y, Luma([0]));
    }
    img
}

/// One rendered item: its G4 front, the front's size, and its truth.
type Rendered = (Vec<u8>, u32, u32, X9Truth);

/// `OUT.truth.csv` beside `out`.
pub fn truth_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".truth.csv");
    PathBuf::from(s)
}

/// `OUT.refs/` beside `out`.
pub fn refs_dir(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".refs");
    PathBuf::from(s)
}

/// Writes the file, its truth and the references. Cheques are rendered in parallel, 64 at a time.
pub fn generate(out: &Path, opts: &X9SynthOptions) -> anyhow::Result<X9SynthSummary> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let refs = refs_dir(out);
    std::fs::create_dir_all(&refs).with_context(|| format!("creating {}", refs.display()))?;
    let mut accounts = Vec::new();
    for w in 0..opts.writers.max(1) {
        let writer = synthetic_writer(opts.seed, w);
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x7265_6673 ^ u64::from(w));
        let account = account_of(w);
        let mut paths = Vec::new();
        for k in 0..opts.references.max(1) {
            let p = refs.join(format!("{account}_{k:02}.png"));
            writer
                .genuine(&mut rng)
                .save(&p)
                .with_context(|| format!("writing {}", p.display()))?;
            paths.push(p);
        }
        accounts.push((account, paths));
    }

    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let wopts = WriterOptions {
        encoding: opts.encoding,
        length_prefixed: opts.length_prefixed,
        ..WriterOptions::default()
    };
    let mut x9 = X9Writer::new(std::io::BufWriter::new(file), wopts)?;
    let tpath = truth_path(out);
    let mut truth_csv =
        csv::Writer::from_path(&tpath).with_context(|| format!("creating {}", tpath.display()))?;
    let mut back: Option<(u32, u32, Vec<u8>)> = None;
    let mut total = 0u64;
    let n = u64::from(opts.cheques);
    let mut start = 0u64;
    while start < n {
        let end = (start + 64).min(n);
        let rendered: Vec<anyhow::Result<Rendered>> = (start..end)
            .into_par_iter()
            .map(|i| {
                let (front, truth) = render_item(opts, i);
                let tiff = g4_tiff(&front)?;
                Ok((tiff, front.width(), front.height(), truth))
            })
            .collect();
        for r in rendered {
            let (tiff, w, h, truth) = r?;
            let back_bytes = match &back {
                Some((bw, bh, b)) if *bw == w && *bh == h => b.clone(),
                _ => {
                    let b = g4_tiff(&back_image(w, h))?;
                    back = Some((w, h, b.clone()));
                    b
                }
            };
            let seq: u64 = truth.sequence.parse().unwrap_or(0);
            x9.item(&ItemOut {
                sequence: seq,
                routing: &truth.routing,
                on_us: &truth.on_us,
                amount_cents: truth.amount_cents,
                front: &tiff,
                front_format: ("00", "00"),
                back: &back_bytes,
            })?;
            total += truth.amount_cents;
            truth_csv.serialize(&truth)?;
        }
        start = end;
    }
    let mut w = x9.finish()?;
    w.flush()?;
    truth_csv.flush()?;
    Ok(X9SynthSummary {
        file: out.to_path_buf(),
        truth: tpath,
        refs_dir: refs,
        items: n,
        total_cents: total,
        accounts,
    })
}

/// Reads `OUT.truth.csv`.
pub fn read_truth(path: &Path) -> anyhow::Result<Vec<X9Truth>> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for t in r.deserialize() {
        out.push(t?);
    }
    Ok(out)
}
