//! WordNet's suffix detachment rules (morphy(7WN)): candidate base forms of an inflected word.

use super::Pos;

const NOUN: &[(&str, &str)] = &[("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"), ("ies", "y")];
const VERB: &[(&str, &str)] = &[("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")];
const ADJ: &[(&str, &str)] = &[("er", ""), ("est", ""), ("er", "e"), ("est", "e")];

/// The candidate bases of `word` as part of speech `pos` (not checked against the index).
pub(super) fn detach(word: &str, pos: Pos) -> Vec<String> {
    let rules = match pos {
        Pos::Noun => NOUN,
        Pos::Verb => VERB,
        Pos::Adj => ADJ,
        Pos::Adv => &[],
    };
    rules
        .iter()
        .filter_map(|(suffix, ending)| word.strip_suffix(suffix).filter(|stem| !stem.is_empty()).map(|stem| format!("{stem}{ending}")))
        .collect()
}
