//! Building the student of `whetstone distill` from a [`StudentSpec`].

use super::config::{StudentInit, StudentSpec};
use super::io;
use whetstone_compress::{student_from_teacher, svd_embeddings, CompressError, Result};
use std::path::Path;
use tch::nn::VarStore;
use whetstone_models::pretrained::{BertCheckpoint, CONFIG_FILE};
use whetstone_models::{TransformerClassifier, TransformerClassifierConfig};
use crate::{LoadedRun, TOKENIZER_FILE};
use whetstone_train::BEST_MODEL_FILE;

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
            if !dir.join(crate::RECIPE_FILE).is_file() && (dir.join(CONFIG_FILE).is_file() || dir.join(crate::ENCODER_DIR).join(CONFIG_FILE).is_file()) {
                return pretrained_student(dir, teacher, teacher_dir, vs);
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
            whetstone_models::load_varstore(vs, &dir.join(BEST_MODEL_FILE))?;
            Ok((config, student))
        }
    }
}

/// A student whose encoder is a pretrained checkpoint (a Hugging Face BERT folder, or a
/// `whetstone pretrain` run folder standing for its `encoder/`, e.g. a general-distilled
/// encoder) and whose head is fresh. The checkpoint must use the teacher's tokenizer.
fn pretrained_student(dir: &Path, teacher: &TransformerClassifier, teacher_dir: &Path, vs: &mut VarStore) -> Result<(TransformerClassifierConfig, TransformerClassifier)> {
    let folder = crate::resolve_pretrained(dir).map_err(|e| CompressError::Config(format!("student {}: {e}", dir.display())))?;
    let ckpt = BertCheckpoint::open(&folder).map_err(|e| CompressError::Run { run: folder.clone(), msg: e.to_string() })?;
    let (ta, sa) = (teacher_dir.join(TOKENIZER_FILE), ckpt.tokenizer_path());
    // The same tokenizer, whatever its file's padding and truncation settings or layout.
    let canonical = |p: &Path| whetstone_data::TextTokenizer::from_file(p).and_then(|t| t.to_json()).map_err(|e| CompressError::Config(format!("{}: {e}", p.display())));
    if ckpt.vocab_size() != teacher.encoder().vocab_size() || canonical(&ta)? != canonical(&sa)? {
        return Err(CompressError::Mismatch(format!(
            "the student checkpoint {} (vocabulary {}) does not use the teacher {}'s tokenizer (vocabulary {}): a student must use its teacher's tokenizer",
            folder.display(),
            ckpt.vocab_size(),
            teacher_dir.display(),
            teacher.encoder().vocab_size()
        )));
    }
    let student = ckpt.load_classifier(&vs.root(), teacher.head().num_labels(), teacher.pooling()).map_err(|e| CompressError::Run { run: folder.clone(), msg: e.to_string() })?;
    let config = TransformerClassifierConfig { encoder: ckpt.encoder_config().clone(), pooling: teacher.pooling(), pretrained: None };
    Ok((config, student))
}
