//! The Verify screen's session: the images loaded into its slots (files, or an account's enrolled
//! references), each decoded once and kept with what has been derived from it.

use std::path::Path;
use std::sync::Arc;

use super::Backend;
use super::advice::{UserError, imaging_error, store_error};
use super::raster::preview;
use super::view::{LoadedImage, PixelBox, Slot};

/// A decoded image held by the worker, with what has been derived from it.
pub(super) struct Decoded {
    pub(super) gray: image::GrayImage,
    pub(super) sha256: String,
    pub(super) source: String,
    pub(super) detected: Option<(PixelBox, f32)>,
    /// A cheque-slot image that is a bare signature (scored whole).
    pub(super) bare: bool,
    /// Normalised signature and its embedding, tagged with the model id they were made with.
    pub(super) normalised: Option<(String, crate::imaging::NormalisedSignature)>,
    pub(super) embedding: Option<(String, crate::scoring::Embedding)>,
}

/// Largest preview sizes sent to the UI (the UI scales further; the worker keeps full resolution).
const CHEQUE_PREVIEW: (u32, u32) = (1600, 900);

pub(super) const REFERENCE_PREVIEW: (u32, u32) = (700, 350);

/// What the cheque slot holds: a full cheque scan, or a bare signature image (a clerk may scan just
/// the signature), as [`crate::verify::InputKind::resolve`] decides for `verify` and `batch` too. Bare
/// signatures are scored whole; a cheque's signature is found by the imaging layer's finder, and when
/// it finds nothing convincing the clerk draws the box or the cheque is REFERRED.
enum ChequeKind {
    Found(PixelBox, f32),
    NotFound(String),
    /// With the note that says why it was taken as a bare signature.
    BareSignature(String),
}

impl Backend {
    /// Sets what the cheque slot's image is taken to be (the Verify screen's choice, the same
    /// [`crate::verify::InputKind`] as `verify --kind` and the manifest's `kind` column). A loaded
    /// cheque is classified again at once; the new view comes back (`None` when nothing changed).
    pub fn set_cheque_kind(
        &mut self,
        kind: crate::verify::InputKind,
    ) -> Result<Option<LoadedImage>, UserError> {
        if kind == self.cheque_kind {
            return Ok(None);
        }
        self.cheque_kind = kind;
        let Some(d) = self.images.remove(&Slot::Cheque) else {
            return Ok(None);
        };
        self.insert_image(Slot::Cheque, d.gray, d.sha256, d.source)
            .map(Some)
    }
}

fn classify_cheque(gray: &image::GrayImage, kind: crate::verify::InputKind) -> ChequeKind {
    use crate::imaging::cheque::{ChequeLayout, find_signature};
    let (w, h) = gray.dimensions();
    if kind.resolve(w, h) == crate::verify::QuestionedKind::Signature {
        return ChequeKind::BareSignature(kind.explain(w, h));
    }
    match find_signature(gray, &ChequeLayout::default()) {
        Ok(f) if f.found => ChequeKind::Found(
            PixelBox {
                x: f.bbox.x,
                y: f.bbox.y,
                width: f.bbox.width,
                height: f.bbox.height,
            },
            f.confidence,
        ),
        Ok(f) if f.box_uncertain => ChequeKind::NotFound(format!(
            "The signature box is uncertain: the box found holds only part of the ink. {}",
            kind.explain(w, h)
        )),
        Ok(f) => ChequeKind::NotFound(format!(
            "No convincing signature was found on the cheque (confidence {:.0}%).",
            f.confidence * 100.0
        )),
        Err(e) => ChequeKind::NotFound(format!("The signature could not be searched for: {e}.")),
    }
}

/// Reads an image file through the one reader `verify` and `batch` use
/// ([`crate::verify::input::load`]: a bounded read, no folders, the SHA-256 of the bytes) and decodes it.
fn read_file(path: &Path) -> Result<(image::GrayImage, String), UserError> {
    use crate::imaging::ImagingError as E;
    let limits = crate::imaging::decode::DecodeLimits::default();
    let name = path.display().to_string();
    let source = crate::verify::input::ImageSource::Path(path.to_path_buf());
    match crate::verify::input::load(&source, &limits) {
        Ok(loaded) => Ok((Arc::unwrap_or_clone(loaded.image), loaded.sha256)),
        Err(E::Io { source, .. }) => Err(UserError::new(
            format!("Could not open {name}: {source}"),
            "Check that the file exists, that it is an image file (not a folder), and that you may read it.",
        )),
        Err(E::TooManyBytes {
            bytes, max_bytes, ..
        }) => Err(UserError::new(
            format!(
                "{name} is {} MB, more than the {} MB limit.",
                bytes / 1_000_000,
                max_bytes / 1_000_000
            ),
            "Scan the cheque at 200-300 dpi, or save it as PNG or JPEG.",
        )),
        Err(e) => Err(imaging_error("The image could not be used", &e)),
    }
}

impl Backend {
    pub fn load_image(&mut self, slot: Slot, path: &Path) -> Result<LoadedImage, UserError> {
        self.images.remove(&slot);
        let (gray, sha256) = read_file(path)?;
        let source = path.display().to_string();
        // References never mix people: a file in a reference slot replaces an account's references.
        if matches!(slot, Slot::Reference(_)) && !self.account_refs.is_empty() {
            self.images.retain(|s, _| *s == Slot::Cheque);
            self.account_refs.clear();
        }
        self.insert_image(slot, gray, sha256, source)
    }

    /// Keeps a decoded image in a slot and prepares what the screen shows. A reference is normalised
    /// at once, so a reference without a signature is refused when it is loaded, not at verification.
    fn insert_image(
        &mut self,
        slot: Slot,
        gray: image::GrayImage,
        sha256: String,
        source: String,
    ) -> Result<LoadedImage, UserError> {
        let (max_w, max_h) = match slot {
            Slot::Cheque => CHEQUE_PREVIEW,
            Slot::Reference(_) => REFERENCE_PREVIEW,
        };
        let (preview_img, preview_scale) = preview(&gray, max_w, max_h);
        let mut detected = None;
        let mut detection_note = None;
        let mut bare = false;
        match slot {
            Slot::Reference(_) => {
                let params = self
                    .model()
                    .map(|m| m.normalise_params().clone())
                    .unwrap_or_default();
                crate::imaging::normalise::normalise(&gray, &params).map_err(|e| {
                    imaging_error(&format!("{} has no usable signature", slot.label()), &e)
                })?;
            }
            Slot::Cheque => match classify_cheque(&gray, self.cheque_kind) {
                ChequeKind::Found(b, c) => detected = Some((b, c)),
                ChequeKind::NotFound(note) => detection_note = Some(note),
                ChequeKind::BareSignature(note) => {
                    bare = true;
                    detection_note = Some(note);
                }
            },
        }
        let (width, height) = gray.dimensions();
        self.images.insert(
            slot,
            Decoded {
                gray,
                sha256: sha256.clone(),
                source: source.clone(),
                detected,
                bare,
                normalised: None,
                embedding: None,
            },
        );
        Ok(LoadedImage {
            slot,
            source,
            width,
            height,
            preview: preview_img,
            preview_scale,
            detected,
            detection_note,
            sha256,
        })
    }

    pub fn clear_slot(&mut self, slot: Slot) {
        self.images.remove(&slot);
    }

    /// Loads an account's enrolled references from the store into the reference slots.
    pub fn load_account(&mut self, account: &str) -> Result<(String, Vec<LoadedImage>), UserError> {
        let store = self.store()?;
        let Some(holder) = store
            .account(account)
            .map_err(|e| store_error("Could not read the account", e))?
            .map(|a| a.holder)
        else {
            return Err(UserError::new(
                format!("There is no account {account}."),
                "Check the account number, or load reference images from files.",
            ));
        };
        // Each reference is checked against the audit chain (image re-hashed) before it is shown
        // or compared, as in `verify` and `batch`.
        let checked = store
            .checked_references(account)
            .map_err(|e| store_error("Could not read the references", e))?;
        if checked.is_empty() {
            return Err(UserError::new(
                format!("Account {account} has no reference signatures."),
                "Enrol references (countersign account enrol), or load reference images from files.",
            ));
        }
        let mut images = Vec::new();
        let blobs: Vec<(i64, Vec<u8>)> = checked.into_iter().map(|(r, b)| (r.id, b)).collect();
        self.images.retain(|s, _| *s == Slot::Cheque);
        self.account_refs.clear();
        for (i, (id, bytes)) in blobs.into_iter().enumerate() {
            let name = format!("account {account} reference {}", i + 1);
            let gray = crate::imaging::decode::decode_bytes(
                &bytes,
                &name,
                &crate::imaging::decode::DecodeLimits::default(),
            )
            .map_err(|e| imaging_error("A stored reference could not be decoded", &e))?;
            let sha = crate::store::accounts::sha256_hex(&bytes);
            images.push(self.insert_image(Slot::Reference(i), gray, sha, name)?);
            self.account_refs.push(id);
        }
        Ok((holder, images))
    }
}
