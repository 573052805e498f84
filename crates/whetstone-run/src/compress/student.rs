//! Building the student of `whetstone distill` from a [`StudentSpec`].

use super::config::{StudentInit, StudentSpec};
use crate::distill::student_from_teacher;
use crate::error::{io, CompressError, Result};
use std::path::Path;
use tch::{nn::VarStore, Kind, Tensor};
use whetstone_models::{load_varstore, TransformerClassifier, TransformerClassifierConfig};
use whetstone_train::{LoadedRun, BEST_MODEL_FILE, TOKENIZER_FILE};

/// Build the student under the root of `vs`. `teacher_dir` is the teacher's run folder (a
/// student run must share its tokenizer). Returns the student's config and model.
pub fn build_student(spec: &StudentSpec, init: StudentInit, teacher: &TransformerClassifier, teacher_dir: &Path, vs: &mut VarStore) -> Result<(TransformerClassifierConfig, TransformerClassifier)> {
    let tc = teacher.encoder().config();
    let (vocab, labels) = (teacher.encoder().vocab_size(), teacher.head().num_labels());
    match spec {
        StudentSpec::FromTeacher(layers) => student_from_teacher(teacher, layers, &vs.root()),
        StudentSpec::Fresh { layers, hidden, heads, ffn } => {
            let mut encoder = tc.clone();
            (encoder.layers, encoder.hidden, encoder.heads, encoder.ffn) = (*layers, *hidden, *heads, *ffn);
            encoder.layer_shapes.clear();
            let config = TransformerClassifierConfig { encoder, pooling: teacher.pooling(), pretrained: None };
            let student = TransformerClassifier::new(&vs.root(), vocab, labels, &config)?;
            if init == StudentInit::Svd {
                svd_embeddings(teacher, &student)?;
            }
            Ok((config, student))
        }
        StudentSpec::Run(dir) => {
            if !dir.is_dir() {
                return Err(CompressError::Config(format!(
                    "student `{}` is neither a shape (e.g. 2x128, 4x256x4x1024), teacher layers (teacher:0,2,4), nor an existing run folder",
                    dir.display()
                )));
            }
            let (ta, sa) = (teacher_dir.join(TOKENIZER_FILE), dir.join(TOKENIZER_FILE));
            let read = |p: &Path| std::fs::read(p).map_err(io(p));
            if read(&ta)? != read(&sa)? {
                let run = LoadedRun::open(dir, Some("cpu"))?;
                return Err(CompressError::Mismatch(format!(
                    "the student run {} uses a different tokenizer (vocabulary {}) than the teacher {} (vocabulary {}): a student must use its teacher's tokenizer",
                    dir.display(),
                    run.tokenizer.vocab_size(),
                    teacher_dir.display(),
                    vocab
                )));
            }
            let run = LoadedRun::open(dir, Some("cpu"))?;
            let s = run.model.as_transformer().ok_or_else(|| CompressError::Run { run: dir.clone(), msg: "the student must be a Transformer".into() })?;
            if s.head().num_labels() != labels {
                return Err(CompressError::Mismatch(format!("the student run {} predicts {} labels, the teacher {}", dir.display(), s.head().num_labels(), labels)));
            }
            let config = TransformerClassifierConfig { encoder: s.encoder().config().clone(), pooling: s.pooling(), pretrained: None };
            let student = TransformerClassifier::new(&vs.root(), vocab, labels, &config)?;
            load_varstore(vs, &dir.join(BEST_MODEL_FILE))?;
            Ok((config, student))
        }
    }
}

/// Set the student's word, position and token-type embeddings to the teacher's projected on
/// the top right-singular vectors of the teacher's word-embedding matrix (a truncated SVD /
/// uncentred PCA), when the student is no wider than the teacher. The embedding LayerNorm
/// rescales whatever norm the projection leaves.
fn svd_embeddings(teacher: &TransformerClassifier, student: &TransformerClassifier) -> Result<()> {
    let k = student.encoder().config().hidden as i64;
    if k > teacher.encoder().config().hidden as i64 {
        return Ok(());
    }
    let t: std::collections::HashMap<String, Tensor> = teacher.named_parameters().into_iter().collect();
    tch::no_grad(|| -> Result<()> {
        let words = t["embeddings.word_embeddings.weight"].f_to_kind(Kind::Float)?;
        let (_, _, v) = words.f_svd(true, true)?;
        let basis = v.f_narrow(1, 0, k)?; // [teacher hidden, k]
        for (name, p) in student.named_parameters() {
            if name.starts_with("embeddings.") && name.ends_with("_embeddings.weight") {
                let src = &t[&name];
                let rows = p.size()[0].min(src.size()[0]);
                let projected = src.f_narrow(0, 0, rows)?.f_to_kind(Kind::Float)?.f_matmul(&basis)?;
                p.f_narrow(0, 0, rows)?.f_copy_(&projected)?;
            }
        }
        Ok(())
    })
}
