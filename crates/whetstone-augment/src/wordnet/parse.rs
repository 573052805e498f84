//! Parsing WNDB files (wndb(5WN)): `data.*`, `index.*` and `*.exc`.
//!
//! Lines that start with two spaces are the licence header and are skipped. Every other line
//! must parse; an error names the file and the 1-based line.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{AugmentError, Result};

/// Adjective position markers that may follow a lemma in `data.adj`: `(a)`, `(p)`, `(ip)`.
const ADJ_MARKERS: [&str; 3] = ["(a)", "(p)", "(ip)"];

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| AugmentError::io(path, e))
}

fn err(path: &Path, line: usize, message: impl Into<String>) -> AugmentError {
    AugmentError::Parse { file: path.to_path_buf(), line, message: message.into() }
}

/// The content lines of a WNDB file with their 1-based numbers (licence header and blank
/// lines skipped).
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.starts_with("  ") && !l.trim().is_empty())
}

/// A `data.*` file: synset offset → lemmas. A line is
/// `offset lex_filenum ss_type w_cnt (word lex_id){w_cnt} p_cnt … | gloss`, `w_cnt` in hex.
pub(super) fn data_file(path: &Path) -> Result<HashMap<u64, Vec<String>>> {
    let text = read(path)?;
    let mut out = HashMap::new();
    for (n, line) in lines(&text) {
        let fields: Vec<&str> = line.split('|').next().unwrap_or("").split_whitespace().collect();
        let offset = fields.first().and_then(|f| f.parse::<u64>().ok()).ok_or_else(|| err(path, n, format!("expected a synset offset, found `{}`", fields.first().unwrap_or(&""))))?;
        let w_cnt = fields.get(3).and_then(|f| usize::from_str_radix(f, 16).ok()).ok_or_else(|| err(path, n, "expected the word count (hex) as the 4th field"))?;
        if w_cnt == 0 || fields.len() < 4 + 2 * w_cnt {
            return Err(err(path, n, format!("synset {offset:08} announces {w_cnt} words but the line has too few fields")));
        }
        let words = (0..w_cnt)
            .map(|k| {
                let mut w = fields[4 + 2 * k].to_lowercase();
                for m in ADJ_MARKERS {
                    if let Some(stem) = w.strip_suffix(m) {
                        w = stem.to_string();
                    }
                }
                w
            })
            .collect();
        out.insert(offset, words);
    }
    Ok(out)
}

/// An `index.*` file: lemma → synset offsets. A line is
/// `lemma pos synset_cnt p_cnt ptr_symbol{p_cnt} sense_cnt tagsense_cnt offset{synset_cnt}`.
pub(super) fn index_file(path: &Path) -> Result<HashMap<String, Vec<u64>>> {
    let text = read(path)?;
    let mut out = HashMap::new();
    for (n, line) in lines(&text) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let number = |i: usize, what: &str| f.get(i).and_then(|s| s.parse::<usize>().ok()).ok_or_else(|| err(path, n, format!("expected {what} as field {}", i + 1)));
        let synset_cnt = number(2, "the synset count")?;
        let p_cnt = number(3, "the pointer count")?;
        let first = 4 + p_cnt + 2;
        if f.len() != first + synset_cnt {
            return Err(err(path, n, format!("`{}` announces {synset_cnt} synsets and {p_cnt} pointers, but the line has {} fields instead of {}", f[0], f.len(), first + synset_cnt)));
        }
        let offsets = f[first..].iter().map(|s| s.parse::<u64>().map_err(|_| err(path, n, format!("`{s}` is not a synset offset")))).collect::<Result<Vec<u64>>>()?;
        out.insert(f[0].to_lowercase(), offsets);
    }
    Ok(out)
}

/// A `*.exc` file: inflected form → base forms (`inflected base [base …]`).
pub(super) fn exception_file(path: &Path) -> Result<HashMap<String, Vec<String>>> {
    let text = read(path)?;
    let mut out = HashMap::new();
    for (n, line) in lines(&text) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 2 {
            return Err(err(path, n, "expected an inflected form followed by at least one base form"));
        }
        out.insert(f[0].to_lowercase(), f[1..].iter().map(|s| s.to_lowercase()).collect());
    }
    Ok(out)
}

/// Every offset the index names must be a synset of the data file.
pub(super) fn check_offsets(index_path: &Path, index: &HashMap<String, Vec<u64>>, synsets: &HashMap<u64, Vec<String>>) -> Result<()> {
    let mut missing: Vec<(&String, u64)> = index.iter().flat_map(|(lemma, offs)| offs.iter().filter(|o| !synsets.contains_key(o)).map(move |&o| (lemma, o))).collect();
    missing.sort();
    match missing.first() {
        None => Ok(()),
        Some((lemma, offset)) => Err(AugmentError::InvalidArgument(format!(
            "{}: `{lemma}` names synset {offset:08}, which the data file does not hold ({} such references)",
            index_path.display(),
            missing.len()
        ))),
    }
}
