//! Model-only speed: embeddings per second at batch 1 and batch 64, on random inputs of the input
//! size of the model named with `--model`, else of the bundled model (the shipped model is what a
//! bank runs). Figures are printed, never asserted (the machine may be shared).

use std::path::Path;
use std::time::Instant;

use tch::{Device, Tensor};

use super::{EmbeddingNet, net};
use crate::imaging::normalise::NormaliseParams;

/// Runs the benchmark and returns `(name, figure)` rows. `model`: weights whose card gives the input
/// size (a candidate model, say); `None` for the bundled model.
pub fn bench(device: Device, model: Option<&Path>) -> anyhow::Result<Vec<(String, String)>> {
    // The card says the input size; without a bundled model, the default parameters. A model named
    // explicitly must have a readable card: measuring another size than asked would mislead.
    let params = match model {
        Some(p) => super::read_card(&super::card_path(p))?.preprocessing.params,
        None => crate::paths::default_model()
            .and_then(|p| super::read_card(&super::card_path(&p)).ok())
            .map_or_else(NormaliseParams::default, |c| c.preprocessing.params),
    };
    let (h, w) = (i64::from(params.height), i64::from(params.width));
    let vs = tch::nn::VarStore::new(device);
    let model = EmbeddingNet::new(&vs.root());
    let mut rows = vec![
        (
            "model.architecture".to_string(),
            format!("{} v{}", net::ARCH_NAME, net::ARCH_VERSION),
        ),
        ("model.input".to_string(), format!("{w}x{h}")),
        (
            "model.parameters".to_string(),
            net::parameter_count(&vs).to_string(),
        ),
        (
            "model.mflops_per_embedding".to_string(),
            format!(
                "{:.1}",
                net::flops_per_image(params.height, params.width) as f64 / 1e6
            ),
        ),
        ("model.device".to_string(), crate::device::describe(device)),
    ];
    // On the CPU, measure with one thread and with the configured number: on a busy machine
    // libtorch's OpenMP threads wait on each other and one thread can be faster.
    let configured = tch::get_num_threads().max(1);
    let thread_counts: Vec<i32> = match device {
        Device::Cpu if configured > 1 => vec![1, configured],
        _ => vec![configured],
    };
    for &threads in &thread_counts {
        tch::set_num_threads(threads);
        rows.extend(measure(&model, device, h, w, threads)?);
    }
    tch::set_num_threads(configured);
    Ok(rows)
}

fn measure(
    model: &EmbeddingNet,
    device: Device,
    h: i64,
    w: i64,
    threads: i32,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut rows = Vec::new();
    for &(batch, min_images) in &[(1i64, 300usize), (64, 2000)] {
        let x = Tensor::f_rand([batch, 1, h, w], (tch::Kind::Float, device))?;
        let rate = tch::no_grad(|| -> anyhow::Result<f64> {
            // Warm-up: the first passes allocate and pick kernels.
            for _ in 0..3 {
                let _ = model.try_forward_t(&x, false)?;
            }
            sync(device);
            let start = Instant::now();
            let mut done = 0usize;
            while done < min_images || start.elapsed().as_secs_f64() < 1.0 {
                let y = model.try_forward_t(&x, false)?;
                // Reading one value forces the work to finish on an asynchronous device.
                let _ = y.f_sum(tch::Kind::Float)?.f_double_value(&[])?;
                done += batch as usize;
            }
            sync(device);
            Ok(done as f64 / start.elapsed().as_secs_f64())
        })?;
        rows.push((
            format!("model.embeddings_per_s.batch{batch}.threads{threads}"),
            format!("{rate:.0}"),
        ));
    }
    Ok(rows)
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}
