//! Re-initialising the top encoder layers (Zhang et al. 2021).

use crate::error::{Result, TrainError};
use tch::nn::VarStore;
use whetstone_optim::groups::layer_index;
use whetstone_optim::{apply_init, Init, InitRule};

/// Re-initialise the top `k` layers (`encoder.layer.{L-k}.` … `encoder.layer.{L-1}.`) of the
/// Transformer in `vs` as the encoder initialises them (and as BERT does): linear weights from
/// N(0, `std`²), biases 0, LayerNorm weight 1 and bias 0. Deterministic in `seed`. Returns the
/// names of the re-initialised tensors.
///
/// Zhang et al. (2021, "Revisiting few-sample BERT fine-tuning") find that the top layers of a
/// pretrained BERT are specialised to its pretraining objective, and that re-initialising them
/// (they use 1–6 of 24) makes fine-tuning on small data better and more stable.
///
/// ```
/// use whetstone_models::{TransformerConfig, TransformerEncoder};
/// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// let _enc = TransformerEncoder::new(&vs.root(), 50, &TransformerConfig { layers: 3, hidden: 16, heads: 2, ffn: 32, ..Default::default() })?;
/// let names = whetstone_train::reinit_top_layers(&vs, 1, 0.02, 7)?;
/// assert!(names.iter().all(|n| n.starts_with("encoder.layer.2.")));
/// assert!(whetstone_train::reinit_top_layers(&vs, 4, 0.02, 7).is_err()); // only 3 layers
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn reinit_top_layers(vs: &VarStore, k: usize, std: f64, seed: u64) -> Result<Vec<String>> {
    let names: Vec<String> = vs.variables().into_keys().collect();
    let layers = names.iter().filter(|n| n.starts_with("encoder.layer.")).filter_map(|n| layer_index(n)).max().map_or(0, |m| m + 1);
    if k > layers {
        return Err(TrainError::Config(format!("finetune.reinit_layers = {k}, but the model has {layers} encoder layers (`encoder.layer.N.*`)")));
    }
    let mut rules = Vec::new();
    for n in layers - k..layers {
        let prefix = format!("encoder.layer.{n}.");
        rules.push(InitRule::new(&format!("{prefix}*LayerNorm.weight"), Init::Ones).optional());
        rules.push(InitRule::new(&format!("{prefix}*LayerNorm.bias"), Init::Zeros).optional());
        rules.push(InitRule::new(&format!("{prefix}*.bias"), Init::Zeros).optional());
        rules.push(InitRule::new(&format!("{prefix}*.weight"), Init::Normal { mean: 0.0, std }));
    }
    let report = apply_init(vs, &rules, seed)?;
    Ok(report.assigned.into_iter().map(|a| a.name).collect())
}
