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

/// How many names [`Corpus::skipped_summary`] lists before "and N more".
const SKIPPED_SHOWN: usize = 5;

/// The documents of a corpus, and what a corpus folder held that was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corpus {
    /// Documents, in a fixed order (files sorted by name).
    pub docs: Vec<String>,
    /// Entries of a corpus folder that were not read, sorted: files without the `.txt`
    /// extension, subfolders, `.txt` names that are not regular files (a broken link) and
    /// entries the folder listing could not read (with the reason). Hidden entries (a leading
    /// dot) are not listed.
    pub skipped: Vec<String>,
}

impl Corpus {
    /// One line for the user when entries were skipped: their count and the first few names.
    pub fn skipped_summary(&self, spec: &str) -> Option<String> {
        if self.skipped.is_empty() {
            return None;
        }
        let shown: Vec<&str> = self.skipped.iter().take(SKIPPED_SHOWN).map(String::as_str).collect();
        let more = self.skipped.len().saturating_sub(SKIPPED_SHOWN);
        Some(format!(
            "corpus `{spec}`: skipped {} entr{} that {} not readable .txt files: {}{}",
            self.skipped.len(),
            if self.skipped.len() == 1 { "y" } else { "ies" },
            if self.skipped.len() == 1 { "is" } else { "are" },
            shown.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        ))
    }
}

/// Documents of the corpus `spec` names, in a fixed order (files sorted by name).
///
/// HTML line breaks (`<br />`, common in the imdb reviews) become spaces. Entries of a corpus
/// folder that are not read are reported on stderr (count and first names; see
/// [`load_corpus_report`] to get them instead).
pub fn load_corpus(spec: &str) -> Result<Vec<String>> {
    let corpus = load_corpus_report(spec)?;
    if let Some(line) = corpus.skipped_summary(spec) {
        eprintln!("warning: {line}");
    }
    Ok(corpus.docs)
}

/// [`load_corpus`] without printing: the documents and the skipped entries.
pub fn load_corpus_report(spec: &str) -> Result<Corpus> {
    let path = Path::new(spec);
    let (docs, skipped) = if path.exists() {
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
            (read_table(&entry.table_spec(fetched)?)?.into_iter().map(|r| r.text).collect(), Vec::new())
        }
    };
    let docs: Vec<String> = docs.into_iter().map(|d| clean(&d)).filter(|d| !d.is_empty()).collect();
    if docs.is_empty() {
        return Err(DataError::InvalidArgument(format!("corpus `{spec}` holds no text")));
    }
    Ok(Corpus { docs, skipped })
}

fn clean(text: &str) -> String {
    text.replace("<br />", " ").replace("<br/>", " ").trim().to_string()
}

/// Non-empty lines of a `.txt` file, or of every `.txt` file in a folder (sorted by name), and
/// the folder's entries that were not read (see [`Corpus::skipped`]).
fn read_text_path(path: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let mut skipped = Vec::new();
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| DataError::io(path, e))? {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    skipped.push(format!("(unreadable entry: {e})"));
                    continue;
                }
            };
            let p = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if p.extension().is_some_and(|x| x == "txt") && p.is_file() {
                files.push(p);
            } else {
                skipped.push(if p.is_dir() { format!("{name}/") } else { name });
            }
        }
        files.sort();
        skipped.sort();
        if files.is_empty() {
            let also = if skipped.is_empty() { String::new() } else { format!(" (it holds: {})", skipped.iter().take(SKIPPED_SHOWN).cloned().collect::<Vec<_>>().join(", ")) };
            return Err(DataError::InvalidArgument(format!("the folder {} has no .txt files{also}", path.display())));
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
    Ok((docs, skipped))
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
    let width = max_len - 2;
    let mut ids = Vec::new();
    // Documents are encoded in bounded pieces (the same ids as whole-document encoding), so
    // one huge document costs its ids, not `tokenizers`' ~100 bytes per token.
    tok.encode_documents(docs, crate::truncate::char_bound(max_len), |_, doc| {
        for window in doc.chunks(width) {
            if window.len() >= min_tokens.max(1) {
                let mut w = Vec::with_capacity(window.len() + 2);
                w.push(cls);
                w.extend(window.iter().map(|&i| i64::from(i)));
                w.push(sep);
                ids.push(w);
            }
        }
        Ok(())
    })?;
    let labels = vec![0; ids.len()];
    Ok(Encoded { ids, labels, pad_id: tok.pad_id() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corpus_folder_reports_what_it_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "one\n\ntwo\n").unwrap();
        std::fs::write(dir.path().join("notes.md"), "not read").unwrap();
        std::fs::write(dir.path().join(".hidden"), "not listed").unwrap();
        std::fs::create_dir(dir.path().join("sub.txt")).unwrap();
        let spec = dir.path().to_str().unwrap();
        let c = load_corpus_report(spec).unwrap();
        assert_eq!(c.docs, ["one", "two"]);
        assert_eq!(c.skipped, ["notes.md", "sub.txt/"]);
        let line = c.skipped_summary(spec).unwrap();
        assert!(line.contains("skipped 2 entries") && line.contains("notes.md, sub.txt/"), "{line}");
        for i in 0..7 {
            std::fs::write(dir.path().join(format!("x{i}.csv")), "").unwrap();
        }
        let c = load_corpus_report(spec).unwrap();
        let line = c.skipped_summary(spec).unwrap();
        assert!(line.contains("skipped 9 entries") && line.ends_with("and 4 more"), "{line}");
    }

    #[test]
    fn a_clean_corpus_folder_reports_nothing_and_an_empty_one_says_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.txt"), "doc\n").unwrap();
        let c = load_corpus_report(dir.path().to_str().unwrap()).unwrap();
        assert!(c.skipped.is_empty() && c.skipped_summary("x").is_none());
        std::fs::remove_file(dir.path().join("b.txt")).unwrap();
        std::fs::write(dir.path().join("b.text"), "doc\n").unwrap();
        let e = load_corpus_report(dir.path().to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("no .txt files") && e.contains("b.text"), "{e}");
    }
}
