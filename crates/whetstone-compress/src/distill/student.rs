//! Students built from the teacher by keeping some of its layers (DistilBERT, Sanh et al. 2019).

use crate::error::{CompressError, Result};
use std::collections::HashMap;
use tch::{nn, Kind, Tensor};
use whetstone_models::{TransformerClassifier, TransformerClassifierConfig, TransformerEncoder};

/// Build, under `p`, a student with the teacher's embeddings, the teacher layers listed in
/// `layers` (0-based, in the given order), its final LayerNorm (pre-LN) and its classification
/// head, all copied. DistilBERT keeps every other layer: `&[0, 2, 4, …]`.
///
/// A fresh small student needs no helper: build a [`whetstone_models::ModelConfig`] with the
/// shape you want (e.g. 4 layers × 312 hidden, TinyBERT-4).
///
/// ```
/// use whetstone_compress::student_from_teacher;
/// use whetstone_models::{TransformerClassifier, TransformerClassifierConfig, TransformerConfig};
/// use tch::{nn::VarStore, Device};
/// let tvs = VarStore::new(Device::Cpu);
/// let cfg = TransformerClassifierConfig { encoder: TransformerConfig { layers: 4, hidden: 16, heads: 2, ffn: 32, max_len: 8, ..Default::default() }, ..Default::default() };
/// let teacher = TransformerClassifier::new(&tvs.root(), 50, 2, &cfg)?;
/// let svs = VarStore::new(Device::Cpu);
/// let (scfg, _student) = student_from_teacher(&teacher, &[0, 2], &svs.root())?;
/// assert_eq!(scfg.encoder.layers, 2);
/// # Ok::<(), whetstone_compress::CompressError>(())
/// ```
pub fn student_from_teacher(teacher: &TransformerClassifier, layers: &[usize], p: &nn::Path) -> Result<(TransformerClassifierConfig, TransformerClassifier)> {
    let tc = teacher.encoder().config();
    if layers.is_empty() {
        return Err(CompressError::Mapping("a student needs at least one teacher layer".into()));
    }
    if let Some(l) = layers.iter().find(|&&l| l >= tc.layers) {
        return Err(CompressError::Mapping(format!("teacher layer {l} does not exist: the teacher has layers 0..{}", tc.layers)));
    }
    let mut encoder = tc.clone();
    encoder.layers = layers.len();
    encoder.layer_shapes = if tc.layer_shapes.is_empty() { Vec::new() } else { layers.iter().map(|&l| tc.layer_shape(l)).collect() };
    let config = TransformerClassifierConfig { encoder, pooling: teacher.pooling(), pretrained: None };
    let student = TransformerClassifier::new(p, teacher.encoder().vocab_size(), teacher.head().num_labels(), &config)?;
    let source: HashMap<String, Tensor> = teacher.named_parameters().into_iter().collect();
    // The student's layer `i` is the teacher's layer `layers[i]`.
    let rename = |name: &str| -> Result<String> {
        match name.strip_prefix("encoder.layer.").and_then(|rest| rest.split_once('.')) {
            Some((i, rest)) => {
                let from = i.parse::<usize>().ok().and_then(|i| layers.get(i)).ok_or_else(|| CompressError::Mismatch(format!("the student's `{name}` has no teacher layer")))?;
                Ok(format!("encoder.layer.{from}.{rest}"))
            }
            None => Ok(name.to_string()),
        }
    };
    tch::no_grad(|| -> Result<()> {
        for (name, mut t) in student.named_parameters() {
            let from = rename(&name)?;
            let src = source.get(&from).ok_or_else(|| CompressError::Mismatch(format!("the teacher has no `{from}` for the student's `{name}`")))?;
            t.f_copy_(src)?;
        }
        Ok(())
    })?;
    Ok((config, student))
}

/// Set the student's word, position and token-type embeddings to the teacher's projected on
/// the top right-singular vectors of the teacher's word-embedding matrix (a truncated SVD /
/// uncentred PCA), so that a narrow student starts with the teacher's lexical knowledge. A
/// student wider than its teacher is left as it is. The embedding LayerNorm rescales whatever
/// norm the projection leaves.
pub fn svd_embeddings(teacher: &TransformerClassifier, student: &TransformerClassifier) -> Result<()> {
    svd_encoder_embeddings(teacher.encoder(), student.encoder())
}

/// [`svd_embeddings`] between two bare encoders (general distillation's student).
pub fn svd_encoder_embeddings(teacher: &TransformerEncoder, student: &TransformerEncoder) -> Result<()> {
    let k = student.config().hidden as i64;
    if k > teacher.config().hidden as i64 {
        return Ok(());
    }
    let t: HashMap<String, Tensor> = teacher.named_parameters().into_iter().collect();
    let words = t.get("embeddings.word_embeddings.weight").ok_or_else(|| CompressError::Mismatch("the teacher has no embeddings.word_embeddings.weight".into()))?;
    tch::no_grad(|| -> Result<()> {
        let (_, _, v) = words.f_to_kind(Kind::Float)?.f_svd(true, true)?;
        let basis = v.f_narrow(1, 0, k)?; // [teacher hidden, k]
        for (name, p) in student.named_parameters() {
            if name.starts_with("embeddings.") && name.ends_with("_embeddings.weight") {
                let src = t.get(&name).ok_or_else(|| CompressError::Mismatch(format!("the teacher has no {name}")))?;
                let rows = p.size()[0].min(src.size()[0]);
                let projected = src.f_narrow(0, 0, rows)?.f_to_kind(Kind::Float)?.f_matmul(&basis)?;
                p.f_narrow(0, 0, rows)?.f_copy_(&projected)?;
            }
        }
        Ok(())
    })
}
