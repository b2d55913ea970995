//! The embedding network: a compact CNN chosen by measurement on a 2-core CPU.
//!
//! SigNet (Dey et al. 2017; Hafemann et al. 2017) uses 6.5M-15.8M parameters at 150x220 and runs at
//! about 150 embeddings/s on this machine. Signatures after normalisation are thin bright strokes on a
//! black canvas, so most of the input is empty and a wide, strided first convolution loses little: an
//! 8x8 kernel with stride 4 sees every pixel (overlapping windows) while cutting the spatial size 16x
//! before any expensive layer. Measured alternatives (plain stride-2 stems, max-pool stems, BatchNorm
//! folded away) were 2-4x slower at batch 64 for the same parameter count, because the activations of a
//! full-resolution first layer do not fit in cache.
//!
//! Layout (input 1 x 96 x 192, ink bright):
//!
//! | layer | kernel / stride | channels | output |
//! |---|---|---|---|
//! | conv1 + bn1 + ReLU | 8x8 / 4 | 32 | 24 x 48 |
//! | conv2 + bn2 + ReLU | 3x3 / 2 | 48 | 12 x 24 |
//! | conv3 + bn3 + ReLU | 3x3 / 1 | 64 | 12 x 24 |
//! | conv4 + bn4 + ReLU | 3x3 / 2 | 128 | 6 x 12 |
//! | conv5 + bn5 + ReLU | 3x3 / 1 | 128 | 6 x 12 |
//! | global average ++ global max | | 256 | |
//! | fc (dropout before it while training) | | 128 | L2-normalised |
//!
//! Global pooling makes the network accept any input size, but a model is only ever used at the size
//! its card records, because the preprocessing and the learnt filters are tied to that size.
//!
//! Inference (`try_forward_t(.., false)`) runs the same function faster than the layers as written:
//! BatchNorm folded into the convolutions, channels-last layout, ReLU in place. At 220x150, batch 64,
//! 2 threads, that took the default model from about 1,140 to about 1,740 embeddings/s on the 2-core
//! machine (`bench --only model`); the outputs agree to about 1e-7.

use tch::{Tensor, nn, nn::ModuleT};

/// Name recorded in the model card; a card naming another architecture is refused.
pub const ARCH_NAME: &str = "countersign-cnn-s";
/// Bumped whenever the layer layout or variable names change.
pub const ARCH_VERSION: u32 = 1;
/// Size of the L2-normalised embedding.
pub const EMBEDDING_DIM: i64 = 128;

/// One convolution of the trunk: (output channels, kernel, stride, padding). The paddings keep each
/// output exactly input / stride for the even input sizes used here.
const TRUNK: [(i64, i64, i64, i64); 5] = [
    (32, 8, 4, 2),
    (48, 3, 2, 1),
    (64, 3, 1, 1),
    (128, 3, 2, 1),
    (128, 3, 1, 1),
];

/// Dropout on the pooled features while training; a mild regulariser for small signature archives.
pub const DROPOUT: f64 = 0.1;

/// Width of the pooled features (global average ++ global max of the last convolution).
pub const POOLED_DIM: i64 = 256;

/// BatchNorm settings (libtorch's defaults, spelled out because the fallible forward passes them).
const BN_MOMENTUM: f64 = 0.1;
const BN_EPS: f64 = 1e-5;

/// The Siamese branch: both signatures of a pair go through this same network (shared weights).
#[derive(Debug)]
pub struct EmbeddingNet {
    /// Each convolution with its (stride, padding) and the BatchNorm after it.
    convs: Vec<(nn::Conv2D, (i64, i64), nn::BatchNorm)>,
    fc: nn::Linear,
}

impl EmbeddingNet {
    /// Creates the variables under `p` with stable names (`conv1`, `bn1`, ..., `fc`) so that saved
    /// weights stay loadable.
    pub fn new(p: &nn::Path<'_>) -> Self {
        let mut convs = Vec::with_capacity(TRUNK.len());
        let mut in_c = 1;
        for (i, &(out_c, k, s, padding)) in TRUNK.iter().enumerate() {
            let cfg = nn::ConvConfig {
                stride: s,
                padding,
                bias: false,
                ..Default::default()
            };
            let conv = nn::conv2d(p / format!("conv{}", i + 1), in_c, out_c, k, cfg);
            let bn_cfg = nn::BatchNormConfig {
                momentum: BN_MOMENTUM,
                eps: BN_EPS,
                ..Default::default()
            };
            let bn = nn::batch_norm2d(p / format!("bn{}", i + 1), out_c, bn_cfg);
            convs.push((conv, (s, padding), bn));
            in_c = out_c;
        }
        let fc = nn::linear(p / "fc", 2 * in_c, EMBEDDING_DIM, Default::default());
        Self { convs, fc }
    }

    /// Maps a batch `[n, 1, h, w]` of normalised signatures to L2-normalised embeddings `[n, 128]`.
    /// Every libtorch call goes through its fallible variant, so a bad tensor or an exhausted GPU
    /// becomes an error rather than a panic.
    pub fn try_forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor, tch::TchError> {
        if train {
            self.forward_with_batch_norm(xs, true, None)
        } else {
            self.forward_inference(xs)
        }
    }

    /// Training forward pass with a caller-made dropout mask `[n, 256]` (entries 0 or `1 / (1 - p)`),
    /// so that training is reproducible from its own seed whatever else uses libtorch's generator.
    pub fn forward_train_with_mask(
        &self,
        xs: &Tensor,
        mask: &Tensor,
    ) -> Result<Tensor, tch::TchError> {
        self.forward_with_batch_norm(xs, true, Some(mask))
    }

    /// The pass as the layers are written: convolution, BatchNorm (batch statistics while training,
    /// running statistics otherwise), ReLU. Training uses it; inference uses the equal, faster
    /// [`Self::forward_inference`].
    fn forward_with_batch_norm(
        &self,
        xs: &Tensor,
        train: bool,
        mask: Option<&Tensor>,
    ) -> Result<Tensor, tch::TchError> {
        let mut x = xs.shallow_clone();
        for (conv, (stride, padding), bn) in &self.convs {
            x = x.f_conv2d(
                &conv.ws,
                conv.bs.as_ref(),
                [*stride; 2],
                [*padding; 2],
                [1i64; 2],
                1,
            )?;
            x = x.f_batch_norm(
                bn.ws.as_ref(),
                bn.bs.as_ref(),
                Some(&bn.running_mean),
                Some(&bn.running_var),
                train,
                BN_MOMENTUM,
                BN_EPS,
                true,
            )?;
            x = x.f_relu()?;
        }
        let pooled = global_pool(&x)?;
        let pooled = match mask {
            Some(m) => pooled.f_mul(m)?,
            None => pooled.f_dropout(DROPOUT, train)?,
        };
        let out = pooled.f_linear(&self.fc.ws, self.fc.bs.as_ref())?;
        l2_normalise(&out)
    }

    /// The same function as the evaluation-mode pass above, computed faster; `try_forward_t(..,
    /// false)` runs it. Each BatchNorm is folded into the convolution before it (`w * g / sqrt(v + eps)`, bias `b - m * g / sqrt(v + eps)`;
    /// equal up to float rounding, about 1e-7), activations and weights are laid out channels-last
    /// (oneDNN's native layout, so no reordering between layers) and ReLU works in place (a fresh
    /// buffer per layer costs page faults that took as long as the ReLU itself). Measured on the
    /// 2-core machine at 220x150, batch 64: about 1.7x the plain pass. The folding is redone on every
    /// call (a few small tensor operations) so that it can never go stale while a model trains.
    fn forward_inference(&self, xs: &Tensor) -> Result<Tensor, tch::TchError> {
        let mut x = xs.shallow_clone();
        for (conv, (stride, padding), bn) in &self.convs {
            let (weight, bias) = fold_batch_norm(conv, bn)?;
            x = x
                .f_conv2d(
                    &channels_last(&weight)?,
                    Some(&bias),
                    [*stride; 2],
                    [*padding; 2],
                    [1i64; 2],
                    1,
                )?
                .f_relu_()?;
        }
        let pooled = global_pool(&x)?;
        let out = pooled.f_linear(&self.fc.ws, self.fc.bs.as_ref())?;
        l2_normalise(&out)
    }
}

/// Global average ++ global max over the spatial dimensions: `[n, c, h, w]` -> `[n, 2c]`.
fn global_pool(x: &Tensor) -> Result<Tensor, tch::TchError> {
    let avg = x.f_mean_dim([2i64, 3].as_slice(), false, tch::Kind::Float)?;
    let max = x.f_amax([2i64, 3].as_slice(), false)?;
    Tensor::f_cat(&[avg, max], 1)
}

/// A convolution's weight and bias with the evaluation-mode BatchNorm after it folded in.
fn fold_batch_norm(
    conv: &nn::Conv2D,
    bn: &nn::BatchNorm,
) -> Result<(Tensor, Tensor), tch::TchError> {
    let scale = bn.running_var.f_add_scalar(BN_EPS)?.f_rsqrt()?;
    let scale = match &bn.ws {
        Some(gamma) => scale.f_mul(gamma)?,
        None => scale,
    };
    let folded_weight = conv.ws.f_mul(&scale.f_view([-1, 1, 1, 1])?)?;
    // (conv bias - running mean) * scale + shift; the trunk's convolutions have no bias today.
    let centred = match &conv.bs {
        Some(b) => b.f_sub(&bn.running_mean)?,
        None => bn.running_mean.f_neg()?,
    };
    let shift = centred.f_mul(&scale)?;
    let folded_bias = match &bn.bs {
        Some(beta) => shift.f_add(beta)?,
        None => shift,
    };
    Ok((folded_weight, folded_bias))
}

/// The same 4-d tensor stored channels-last (NHWC in memory, NCHW in shape). The strides are set
/// explicitly: a plain permute-and-copy gives a one-channel weight (conv1's) the ordinary strides,
/// and then libtorch runs that layer and everything after it in the slower NCHW layout.
fn channels_last(t: &Tensor) -> Result<Tensor, tch::TchError> {
    let size = t.size();
    let [n, c, h, w] = size[..] else {
        return Err(tch::TchError::Shape(format!(
            "channels-last needs a 4-d tensor, got {size:?}"
        )));
    };
    t.f_permute([0i64, 2, 3, 1])?.f_contiguous()?.f_as_strided(
        [n, c, h, w],
        [h * w * c, 1, w * c, c],
        0,
    )
}

impl ModuleT for EmbeddingNet {
    /// The panicking form `tch`'s module trait expects; library code calls `try_forward_t`.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self.try_forward_t(xs, train) {
            Ok(t) => t,
            Err(e) => panic!("embedding network forward failed: {e}"),
        }
    }
}

/// Re-initialises every trainable weight from `seed` alone (He-uniform for convolutions, LeCun-uniform
/// for the FC layer, zero biases; BatchNorm scale 1 and shift 0), independent of libtorch's global
/// generator, which other threads may be using.
pub fn seeded_init(vs: &nn::VarStore, seed: u64) -> Result<(), tch::TchError> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| -> Result<(), tch::TchError> {
        for (name, mut var) in vars {
            let size = var.size();
            let numel: i64 = size.iter().product();
            let values: Vec<f32> = if name.ends_with(".weight") && size.len() > 1 {
                let fan_in: i64 = size[1..].iter().product();
                let bound = if name.starts_with("conv") {
                    (6.0 / fan_in as f64).sqrt()
                } else {
                    (3.0 / fan_in as f64).sqrt()
                } as f32;
                (0..numel)
                    .map(|_| rng.random_range(-bound..=bound))
                    .collect()
            } else if (name.starts_with("bn") && name.ends_with(".weight"))
                || name.ends_with("running_var")
            {
                // BatchNorm scales and running variances start at one.
                vec![1.0; numel as usize]
            } else {
                // Biases, BatchNorm shifts and running means.
                vec![0.0; numel as usize]
            };
            let src = Tensor::f_from_slice(&values)?
                .f_reshape(&size)?
                .f_to_device(var.device())?;
            var.f_copy_(&src)?;
        }
        Ok(())
    })
}

/// Divides each row by its Euclidean norm (guarded against a zero row).
pub fn l2_normalise(x: &Tensor) -> Result<Tensor, tch::TchError> {
    let norm = x
        .f_norm_scalaropt_dim(2, [1i64].as_slice(), true)?
        .f_clamp_min(1e-12)?;
    x.f_div(&norm)
}

/// Multiply-accumulate operations for one image of `height x width` (convolutions and the FC layer;
/// BatchNorm, ReLU and pooling are memory-bound and left out, as is customary).
pub fn macs_per_image(height: u32, width: u32) -> u64 {
    let (mut h, mut w, mut in_c) = (i64::from(height), i64::from(width), 1i64);
    let mut total: i64 = 0;
    for &(out_c, k, s, pad) in &TRUNK {
        h = (h + 2 * pad - k) / s + 1;
        w = (w + 2 * pad - k) / s + 1;
        total += h.max(0) * w.max(0) * out_c * in_c * k * k;
        in_c = out_c;
    }
    total += 2 * in_c * EMBEDDING_DIM;
    u64::try_from(total).unwrap_or(0)
}

/// Floating-point operations for one image, counting a multiply-accumulate as two.
pub fn flops_per_image(height: u32, width: u32) -> u64 {
    2 * macs_per_image(height, width)
}

/// Number of trainable parameters (BatchNorm running statistics are not counted).
pub fn parameter_count(vs: &nn::VarStore) -> u64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    fn uniform(rng: &mut impl Rng, size: &[i64], lo: f32, hi: f32) -> Tensor {
        let n: i64 = size.iter().product();
        let values: Vec<f32> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
        Tensor::from_slice(&values).reshape(size)
    }

    #[test]
    fn the_fast_inference_pass_equals_the_pass_with_batch_norm() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = EmbeddingNet::new(&vs.root());
        seeded_init(&vs, 7).unwrap();
        // BatchNorm statistics and affine maps far from the identity, as training leaves them.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        tch::no_grad(|| {
            for (name, mut var) in vs.variables() {
                let range = match name.rsplit('.').next() {
                    _ if !name.starts_with("bn") => continue,
                    Some("running_var") => (0.2, 3.0),
                    Some("running_mean") => (-1.0, 1.0),
                    Some("weight") => (0.3, 2.0),
                    _ => (-0.5, 0.5),
                };
                var.copy_(&uniform(&mut rng, &var.size(), range.0, range.1));
            }
        });
        let x = uniform(&mut rng, &[3, 1, 150, 220], 0.0, 1.0);
        let (fast, plain) = tch::no_grad(|| {
            (
                net.try_forward_t(&x, false).unwrap(),
                net.forward_with_batch_norm(&x, false, None).unwrap(),
            )
        });
        let gap = (&fast - &plain).abs().max().double_value(&[]);
        assert!(gap < 1e-5, "the two passes differ by {gap}");
        // The three inputs give three different embeddings (so the comparison above compared something).
        let between = (fast.get(0) - fast.get(1)).abs().max().double_value(&[]);
        assert!(
            between > 1e-3,
            "embeddings of different inputs differ by only {between}"
        );
    }

    #[test]
    fn channels_last_keeps_the_values_and_strides_even_one_channel_as_nhwc() {
        for (c, h, w) in [(1, 8, 8), (3, 5, 7)] {
            let t = Tensor::arange(2 * c * h * w, (tch::Kind::Float, tch::Device::Cpu))
                .reshape([2, c, h, w]);
            let cl = channels_last(&t).unwrap();
            assert_eq!(cl.size(), t.size());
            assert_eq!(cl.stride(), vec![h * w * c, 1, w * c, c]);
            assert!(cl.equal(&t));
        }
        assert!(channels_last(&Tensor::zeros([2, 3], tch::kind::FLOAT_CPU)).is_err());
    }
}
