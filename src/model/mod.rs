//! The Siamese embedding network, its model card, and loading/saving weights.
//!
//! A [`SignatureModel`] is the network ([`net::EmbeddingNet`]) with its weights and the [`ModelCard`]
//! that vouches for them. Both signatures of a pair go through the same network (a Siamese network is
//! one network applied twice); their embeddings are compared in [`crate::scoring`].
//!
//! Files: `<stem>.safetensors` (written by `VarStore::save`) and `<stem>.json` (the card). Loading
//! refuses, each with its own [`ModelError`] variant naming the file: a missing weights file or card, an
//! unreadable card, a card for another architecture or preprocessing, a truncated or corrupt weights
//! file, a weights file whose SHA-256 differs from the card's, and tensors whose names or shapes differ
//! from the network's.

pub mod bench;
pub mod card;
pub mod in_force;
pub mod net;
mod safetensors;
pub mod slot;
pub mod tta;

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor, nn};

pub use card::{DataSourceInfo, ModelCard, Preprocessing, TrainingInfo, ValidationMetrics};
pub use in_force::{ModelInForce, ModelOrigin};
pub use net::{ARCH_NAME, ARCH_VERSION, EMBEDDING_DIM, EmbeddingNet};
pub use slot::ModelSlot;

use crate::imaging::NormalisedSignature;
use crate::imaging::normalise::{NormaliseParams, PREPROCESSING_VERSION};
use crate::scoring::Embedding;

/// Largest weights file accepted; the default model is well under 10 MB, so anything near this is not
/// a model of this architecture and is refused before it is read into memory.
pub const MAX_WEIGHTS_BYTES: u64 = 512 * 1024 * 1024;

/// Images per forward pass in [`SignatureModel::embed`]: large enough to use both cores well, small
/// enough that the activations stay in cache (measured: larger chunks are not faster on the CPU).
pub const EMBED_CHUNK: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model file {0} not found")]
    NotFound(String),
    #[error(
        "model card {card} for weights {weights} not found (the card must sit beside the weights)"
    )]
    MissingCard { weights: String, card: String },
    #[error("model card {path} is not a valid card: {reason}")]
    BadCard { path: String, reason: String },
    #[error("model card {path} describes architecture {found}, but this program runs {expected}")]
    ArchitectureMismatch {
        path: String,
        found: String,
        expected: String,
    },
    #[error(
        "model card {path} was trained with preprocessing version {found}, but this program uses version {expected}"
    )]
    PreprocessingMismatch {
        path: String,
        found: u32,
        expected: u32,
    },
    #[error("weights file {path} is truncated: {detail}")]
    Truncated { path: String, detail: String },
    #[error("weights file {path} is not a valid safetensors file: {detail}")]
    Corrupt { path: String, detail: String },
    #[error(
        "weights file {path} has SHA-256 {actual}, but its card {card} says {expected}: the weights were changed or the card belongs to other weights"
    )]
    HashMismatch {
        path: String,
        card: String,
        expected: String,
        actual: String,
    },
    #[error(
        "weights file {path}: tensor {name} has shape {found:?}, the network needs {expected:?}"
    )]
    ShapeMismatch {
        path: String,
        name: String,
        found: Vec<i64>,
        expected: Vec<i64>,
    },
    #[error("weights file {path} lacks tensor {name} that the network needs")]
    MissingTensor { path: String, name: String },
    #[error(
        "weights file {path} has tensor {name} that this network does not have (another architecture?)"
    )]
    UnexpectedTensor { path: String, name: String },
    #[error(
        "signature {index} of the batch is {found_w}x{found_h} with {found_len} values; the model needs {expected_w}x{expected_h}"
    )]
    InputShape {
        index: usize,
        found_w: u32,
        found_h: u32,
        found_len: usize,
        expected_w: u32,
        expected_h: u32,
    },
    #[error("signature {index} of the batch has a value that is not a finite number")]
    InputNotFinite { index: usize },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("libtorch failed: {0}")]
    Torch(#[from] tch::TchError),
    #[error(
        "the weights at {path} have id {found}, but the store's active model is {expected}: the file was \
         replaced outside Countersign; a supervisor activates the intended model again"
    )]
    NotActivated {
        path: String,
        expected: String,
        found: String,
    },
}

impl ModelError {
    /// The same error with the batch index it names mapped by `at` (an error found in one chunk of a
    /// larger batch names the index in the whole batch).
    pub fn at_batch_index(self, at: impl Fn(usize) -> usize) -> ModelError {
        match self {
            ModelError::InputShape {
                index,
                found_w,
                found_h,
                found_len,
                expected_w,
                expected_h,
            } => ModelError::InputShape {
                index: at(index),
                found_w,
                found_h,
                found_len,
                expected_w,
                expected_h,
            },
            ModelError::InputNotFinite { index } => ModelError::InputNotFinite { index: at(index) },
            other => other,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The folder a file is in (`.` for a bare name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// A new temporary file in `dest`'s folder, named after it and ending in `suffix`; it is removed
/// when dropped unless [`persist`] renames it over `dest`.
fn temp_beside(dest: &Path, suffix: &str) -> Result<tempfile::NamedTempFile, ModelError> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(suffix)
        .tempfile_in(folder_of(dest))
        .map_err(io_err(dest))
}

/// Renames a finished temporary file over `dest`.
fn persist(tmp: tempfile::NamedTempFile, dest: &Path) -> Result<(), ModelError> {
    tmp.persist(dest).map_err(|e| io_err(dest)(e.error))?;
    Ok(())
}

/// `card` as pretty JSON in a synced temporary file beside `card_file`.
fn write_card_temp(
    card: &ModelCard,
    card_file: &Path,
) -> Result<tempfile::NamedTempFile, ModelError> {
    use std::io::Write;
    let json = serde_json::to_string_pretty(card).map_err(|e| ModelError::BadCard {
        path: card_file.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut tmp = temp_beside(card_file, ".json")?;
    tmp.write_all(json.as_bytes())
        .and_then(|()| tmp.write_all(b"\n"))
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(io_err(card_file))?;
    Ok(tmp)
}

/// The card path for a weights path: `<stem>.json` beside `<stem>.safetensors`.
pub fn card_path(weights: &Path) -> PathBuf {
    weights.with_extension("json")
}

pub use crate::digest::sha256_hex;

/// The current time as RFC 3339 UTC, for `created_at`.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".to_string())
}

/// The embedding network with its weights and card.
pub struct SignatureModel {
    vs: nn::VarStore,
    net: EmbeddingNet,
    card: ModelCard,
    device: Device,
}

impl std::fmt::Debug for SignatureModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureModel")
            .field("id", &self.id())
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl SignatureModel {
    /// A freshly initialised network (random weights from libtorch's generator, see
    /// `tch::manual_seed`) with a card that records no training yet.
    pub fn new(params: NormaliseParams, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let net = EmbeddingNet::new(&vs.root());
        let card = ModelCard {
            card_version: 1,
            architecture: ARCH_NAME.to_string(),
            architecture_version: ARCH_VERSION,
            input_width: params.width,
            input_height: params.height,
            embedding_dim: EMBEDDING_DIM as usize,
            parameters: net::parameter_count(&vs),
            flops: net::flops_per_image(params.height, params.width),
            preprocessing: Preprocessing {
                version: params.version(),
                params,
            },
            score_normalisation: Default::default(),
            calibration: None,
            thresholds: None,
            training: None,
            validation: None,
            created_at: now_rfc3339(),
            weights_sha256: String::new(),
        };
        Self {
            vs,
            net,
            card,
            device,
        }
    }

    /// A freshly initialised network whose weights depend only on `seed` (see [`net::seeded_init`]).
    pub fn new_seeded(
        params: NormaliseParams,
        device: Device,
        seed: u64,
    ) -> Result<Self, ModelError> {
        let model = Self::new(params, device);
        net::seeded_init(&model.vs, seed)?;
        Ok(model)
    }

    /// Loads `<stem>.safetensors` and its card `<stem>.json`, checking everything listed in the module
    /// documentation before any weight is used.
    pub fn load(weights: &Path, device: Device) -> Result<Self, ModelError> {
        let wname = weights.display().to_string();
        if !weights.is_file() {
            return Err(ModelError::NotFound(wname));
        }
        let card_file = card_path(weights);
        let cname = card_file.display().to_string();
        if !card_file.is_file() {
            return Err(ModelError::MissingCard {
                weights: wname,
                card: cname,
            });
        }
        let card = read_card(&card_file)?;
        if card.card_version > card::CARD_FORMAT_VERSION
            || card.card_version < card.needed_version()
        {
            return Err(ModelError::BadCard {
                path: cname,
                reason: format!(
                    "card format version {} (this build reads up to {}, and these fields need {})",
                    card.card_version,
                    card::CARD_FORMAT_VERSION,
                    card.needed_version()
                ),
            });
        }
        if card.architecture != ARCH_NAME || card.architecture_version != ARCH_VERSION {
            return Err(ModelError::ArchitectureMismatch {
                path: cname,
                found: format!("{} v{}", card.architecture, card.architecture_version),
                expected: format!("{ARCH_NAME} v{ARCH_VERSION}"),
            });
        }
        // A card states the version its parameters need; a newer one (written by a later binary)
        // or one that contradicts its own parameters is refused.
        let needed = card.preprocessing.params.version();
        if card.preprocessing.version > PREPROCESSING_VERSION
            || card.preprocessing.version != needed
        {
            return Err(ModelError::PreprocessingMismatch {
                path: cname,
                found: card.preprocessing.version,
                expected: needed.min(PREPROCESSING_VERSION),
            });
        }
        let p = &card.preprocessing.params;
        if p.width != card.input_width || p.height != card.input_height {
            return Err(ModelError::BadCard {
                path: cname,
                reason: format!(
                    "input size {}x{} differs from the preprocessing size {}x{}",
                    card.input_width, card.input_height, p.width, p.height
                ),
            });
        }
        if let Err(e) = p.validate() {
            return Err(ModelError::BadCard {
                path: cname,
                reason: e.to_string(),
            });
        }
        if card.embedding_dim != EMBEDDING_DIM as usize {
            return Err(ModelError::ArchitectureMismatch {
                path: cname,
                found: format!("{}-d embedding", card.embedding_dim),
                expected: format!("{EMBEDDING_DIM}-d embedding"),
            });
        }

        let bytes = read_bounded(weights)?;
        // Structure first, so a cut-off download is reported as truncated rather than as a hash mismatch.
        let tensors = safetensors::parse(&bytes, &wname)?;
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(&card.weights_sha256) {
            return Err(ModelError::HashMismatch {
                path: wname,
                card: cname,
                expected: card.weights_sha256.clone(),
                actual,
            });
        }

        let mut vs = nn::VarStore::new(device);
        let net = EmbeddingNet::new(&vs.root());
        let mut vars = vs.variables();
        for t in &tensors {
            let Some(var) = vars.get_mut(&t.name) else {
                return Err(ModelError::UnexpectedTensor {
                    path: wname,
                    name: t.name.clone(),
                });
            };
            if var.size() != t.shape {
                return Err(ModelError::ShapeMismatch {
                    path: wname,
                    name: t.name.clone(),
                    found: t.shape.clone(),
                    expected: var.size(),
                });
            }
        }
        for name in vars.keys() {
            if !tensors.iter().any(|t| &t.name == name) {
                return Err(ModelError::MissingTensor {
                    path: wname,
                    name: name.clone(),
                });
            }
        }
        tch::no_grad(|| -> Result<(), ModelError> {
            for t in &tensors {
                if let Some(var) = vars.get_mut(&t.name) {
                    let src = Tensor::f_from_slice(&t.data)?.f_reshape(&t.shape)?;
                    var.f_copy_(&src)?;
                }
            }
            Ok(())
        })?;
        vs.freeze();
        Ok(Self {
            vs,
            net,
            card,
            device,
        })
    }

    /// Writes the weights to `weights` (which must end in `.safetensors`) and the card, with the
    /// weights' SHA-256 filled in, to `<stem>.json`. Both files are written to temporary files in the
    /// destination's folder and renamed into place only when both are complete, so a crash never
    /// leaves a card that does not match its weights, and no other file there is ever touched.
    pub fn save(&mut self, weights: &Path) -> Result<(), ModelError> {
        let card_file = card_path(weights);
        let dir = folder_of(weights);
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        // tch picks the file format from the extension, so the temporary name keeps it.
        let tmp_weights = temp_beside(weights, ".safetensors")?;
        self.vs.save(tmp_weights.path())?;
        let bytes = std::fs::read(tmp_weights.path()).map_err(io_err(weights))?;
        self.card.weights_sha256 = sha256_hex(&bytes);
        self.card.parameters = net::parameter_count(&self.vs);
        let tmp_card = write_card_temp(&self.card, &card_file)?;
        tmp_weights.as_file().sync_all().map_err(io_err(weights))?;
        persist(tmp_weights, weights)?;
        persist(tmp_card, &card_file)?;
        Ok(())
    }

    /// Rewrites only the card beside `weights` (e.g. to add calibration or validation figures), after
    /// checking that the card's SHA-256 still matches the weights file, so a card can never be
    /// attached to other weights this way.
    pub fn update_card(weights: &Path, card: &ModelCard) -> Result<(), ModelError> {
        let wname = weights.display().to_string();
        let bytes = read_bounded(weights)?;
        let actual = sha256_hex(&bytes);
        let card_file = card_path(weights);
        if !actual.eq_ignore_ascii_case(&card.weights_sha256) {
            return Err(ModelError::HashMismatch {
                path: wname,
                card: card_file.display().to_string(),
                expected: card.weights_sha256.clone(),
                actual,
            });
        }
        let tmp = write_card_temp(card, &card_file)?;
        persist(tmp, &card_file)
    }

    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// Mutable card, for training and calibration to record what they did before [`Self::save`].
    pub fn card_mut(&mut self) -> &mut ModelCard {
        &mut self.card
    }

    /// A short stable identifier: `<architecture>-<first 12 hex digits of the weights' SHA-256>`
    /// (`<architecture>-unsaved` before the weights were saved or loaded).
    pub fn id(&self) -> String {
        let hash = self.card.weights_sha256.get(..12).unwrap_or("unsaved");
        format!("{}-{hash}", self.card.architecture)
    }

    /// The normalisation parameters the model was trained with; inference must use exactly these.
    pub fn normalise_params(&self) -> &NormaliseParams {
        &self.card.preprocessing.params
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// The network, for training.
    pub fn net(&self) -> &EmbeddingNet {
        &self.net
    }

    /// The variables, for training (optimisers) and fine-tuning.
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    pub fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    /// Turns the variables' gradients back on (after [`Self::load`], which freezes them), to fine-tune.
    pub fn unfreeze(&mut self) {
        self.vs.unfreeze();
    }

    /// Packs signatures into one `[n, 1, h, w]` tensor on the model's device, checking each.
    pub fn to_input(&self, batch: &[&NormalisedSignature]) -> Result<Tensor, ModelError> {
        let (w, h) = (self.card.input_width, self.card.input_height);
        let plane = w as usize * h as usize;
        let mut buf = Vec::with_capacity(plane * batch.len());
        for (index, s) in batch.iter().enumerate() {
            if s.width != w || s.height != h || s.pixels.len() != plane {
                return Err(ModelError::InputShape {
                    index,
                    found_w: s.width,
                    found_h: s.height,
                    found_len: s.pixels.len(),
                    expected_w: w,
                    expected_h: h,
                });
            }
            if !s.pixels.iter().all(|v| v.is_finite()) {
                return Err(ModelError::InputNotFinite { index });
            }
            buf.extend_from_slice(&s.pixels);
        }
        let t = Tensor::f_from_slice(&buf)?
            .f_reshape([batch.len() as i64, 1, i64::from(h), i64::from(w)])?
            .f_to_device(self.device)?;
        Ok(t)
    }

    /// Embeds signatures (no gradients, eval mode, in chunks of [`EMBED_CHUNK`]); one L2-normalised
    /// embedding per input, in order. An empty batch gives an empty result.
    pub fn embed(&self, batch: &[NormalisedSignature]) -> Result<Vec<Embedding>, ModelError> {
        let refs: Vec<&NormalisedSignature> = batch.iter().collect();
        self.embed_refs(&refs)
    }

    /// As [`Self::embed`], for signatures held elsewhere (avoids copying pixel buffers).
    pub fn embed_refs(&self, batch: &[&NormalisedSignature]) -> Result<Vec<Embedding>, ModelError> {
        let mut out = Vec::with_capacity(batch.len());
        for (c, chunk) in batch.chunks(EMBED_CHUNK).enumerate() {
            let input = self
                .to_input(chunk)
                .map_err(|e| e.at_batch_index(|i| i + c * EMBED_CHUNK))?;
            let emb = tch::no_grad(|| self.net.try_forward_t(&input, false))?;
            out.extend(tensor_rows(&emb)?);
        }
        Ok(out)
    }
}

/// Copies a `[n, d]` float tensor to `n` vectors.
pub fn tensor_rows(t: &Tensor) -> Result<Vec<Vec<f32>>, ModelError> {
    let size = t.size();
    let (n, d) = match size.as_slice() {
        [n, d] => (*n as usize, *d as usize),
        _ => {
            return Err(ModelError::Torch(tch::TchError::Shape(format!(
                "expected a 2-d tensor, got {size:?}"
            ))));
        }
    };
    let flat: Vec<f32> = t
        .f_to_device(Device::Cpu)?
        .f_to_kind(Kind::Float)?
        .f_contiguous()?
        .f_view([-1i64])?
        .try_into()?;
    if d == 0 {
        return Ok(vec![Vec::new(); n]);
    }
    Ok(flat.chunks_exact(d).map(<[f32]>::to_vec).collect())
}

/// Reads and parses a model card (no check against weights: [`SignatureModel::load`] does those).
pub fn read_card(path: &Path) -> Result<ModelCard, ModelError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    serde_json::from_str(&text).map_err(|e| ModelError::BadCard {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, ModelError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    if len > MAX_WEIGHTS_BYTES {
        return Err(ModelError::Corrupt {
            path: path.display().to_string(),
            detail: format!(
                "{len} bytes is more than the {MAX_WEIGHTS_BYTES}-byte limit for a model"
            ),
        });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_WEIGHTS_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    Ok(bytes)
}
