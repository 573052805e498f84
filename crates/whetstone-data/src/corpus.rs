//! Unlabelled text for self-supervised pretraining: where it comes from, and how documents
//! become fixed-length token windows.
//!
//! A corpus is named by a string, as a recipe or the command line gives it:
//! * a labelled dataset of the manifest (`imdb`): its texts, labels ignored;
//! * a text corpus of the manifest (`wiki100`, `kind = "text"`): every `.txt` file, one
//!   document per non-empty line;
//! * a `.txt` file (one document per non-empty line) or a folder of `.txt` files.

use std::path::{Path, PathBuf};

use crate::batch::Encoded;
use crate::error::{DataError, Result};
use crate::cache::{cache_dir, obtain};
use crate::manifest::Manifest;
use crate::table::read_table;
use crate::tokenize::TextTokenizer;

/// Documents of the corpus `spec` names, in a fixed order (files sorted by name).
///
/// HTML line breaks (`<br />`, common in the imdb reviews) become spaces.
pub fn load_corpus(spec: &str) -> Result<Vec<String>> {
    let path = Path::new(spec);
    let docs = if path.exists() {
        read_text_path(path)?
    } else {
        let manifest = Manifest::builtin()?;
        let entry = manifest.get(spec).map_err(|_| {
            DataError::InvalidArgument(format!(
                "corpus `{spec}` is neither an existing .txt file or folder nor a dataset in the manifest (known: {})",
                manifest.names().join(", ")
            ))
        })?;
        if entry.is_model() {
            return Err(DataError::InvalidArgument(format!("corpus `{spec}` is a pretrained model in the manifest, not text")));
        }
        let fetched = obtain(entry, &cache_dir())?;
        if entry.is_text_corpus() {
            read_text_path(&fetched)?
        } else {
            read_table(&entry.table_spec(fetched)?)?.into_iter().map(|r| r.text).collect()
        }
    };
    let docs: Vec<String> = docs.into_iter().map(|d| clean(&d)).filter(|d| !d.is_empty()).collect();
    if docs.is_empty() {
        return Err(DataError::InvalidArgument(format!("corpus `{spec}` holds no text")));
    }
    Ok(docs)
}

fn clean(text: &str) -> String {
    text.replace("<br />", " ").replace("<br/>", " ").trim().to_string()
}

/// Non-empty lines of a `.txt` file, or of every `.txt` file in a folder (sorted by name).
fn read_text_path(path: &Path) -> Result<Vec<String>> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| DataError::io(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "txt"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(DataError::InvalidArgument(format!("the folder {} has no .txt files", path.display())));
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut docs = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).map_err(|e| DataError::io(&f, e))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            DataError::InvalidArgument(format!("{}: not UTF-8 text (invalid byte at offset {})", f.display(), e.utf8_error().valid_up_to()))
        })?;
        docs.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string));
    }
    Ok(docs)
}

/// Token windows for masked-language-model training: each document is tokenised in full and
/// cut into consecutive windows of at most `max_len - 2` tokens, each wrapped in
/// `[CLS] … [SEP]`; windows shorter than `min_tokens` (the tail of a document) are dropped.
/// Documents are never joined, so a window holds text of one document only. Labels are 0.
pub fn chunk_documents(tok: &TextTokenizer, docs: &[String], max_len: usize, min_tokens: usize) -> Result<Encoded> {
    if max_len < 3 {
        return Err(DataError::InvalidArgument(format!("max_len {max_len} leaves no room for text between [CLS] and [SEP]")));
    }
    let special = |t: &str| tok.token_to_id(t).ok_or_else(|| DataError::InvalidArgument(format!("the tokenizer has no {t} token, which MLM windows need")));
    let (cls, sep) = (special("[CLS]")?, special("[SEP]")?);
    let inputs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let encodings = tok.inner().encode_batch_fast(inputs, false).map_err(|e| DataError::tokenizer("encoding the corpus", e))?;
    let width = max_len - 2;
    let mut ids = Vec::new();
    for enc in &encodings {
        for window in enc.get_ids().chunks(width) {
            if window.len() >= min_tokens.max(1) {
                let mut w = Vec::with_capacity(window.len() + 2);
                w.push(cls);
                w.extend(window.iter().map(|&i| i64::from(i)));
                w.push(sep);
                ids.push(w);
            }
        }
    }
    let labels = vec![0; ids.len()];
    Ok(Encoded { ids, labels, pad_id: tok.pad_id() })
}
