//! Splitting text into words and joining words back into text.
//!
//! Augmenters work on words, not on model sub-word tokens, so that they run on plain strings
//! without a tokenizer. [`split_words`] keeps every non-space character: a *word* is a run of
//! letters and digits, which may carry inner apostrophes or hyphens (`don't`, `well-made`,
//! `century's`) and a leading apostrophe before letters (`'s`, as in pre-tokenised corpora such
//! as rotten-tomatoes); every other character (punctuation, symbols) is a token of its own.
//! [`join_words`] puts single spaces between tokens except before closing punctuation and after
//! opening brackets, so `join_words(&split_words(t))` reproduces ordinary English text.

/// Characters that attach to the token before them when joining (no space before).
const CLOSING: &[char] = &['.', ',', '!', '?', ';', ':', ')', ']', '}', '%'];
/// Characters that attach to the token after them when joining (no space after).
const OPENING: &[char] = &['(', '[', '{', '$'];
/// Joiners allowed inside a word when a letter or digit follows.
const INNER: &[char] = &['\'', '’', '-'];

/// The tokens of `text`: words and single punctuation characters, in order.
///
/// ```
/// use whetstone_augment::split_words;
/// assert_eq!(split_words("A well-made film, isn't it?"), ["A", "well-made", "film", ",", "isn't", "it", "?"]);
/// assert_eq!(split_words("the rock 's new"), ["the", "rock", "'s", "new"]);
/// ```
pub fn split_words(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let next_alnum = chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        let joins = INNER.contains(&c) && next_alnum && (!word.is_empty() || c != '-');
        if c.is_alphanumeric() || joins {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if !c.is_whitespace() {
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Joins tokens with single spaces, except before closing punctuation (`.,!?;:)]}%`) and after
/// opening brackets (`([{$`).
///
/// ```
/// use whetstone_augment::{join_words, split_words};
/// assert_eq!(join_words(&split_words("Funny (at times), but slow.")), "Funny (at times), but slow.");
/// ```
pub fn join_words<S: AsRef<str>>(words: &[S]) -> String {
    let mut out = String::new();
    let mut attach_next = true;
    for w in words {
        let w = w.as_ref();
        let closes = w.chars().count() == 1 && w.starts_with(CLOSING);
        if !attach_next && !closes {
            out.push(' ');
        }
        out.push_str(w);
        attach_next = w.chars().count() == 1 && w.starts_with(OPENING);
    }
    out
}

/// Whether `token` is a word that may have synonyms or neighbours: letters only, possibly
/// joined by inner apostrophes or hyphens (no digits, no punctuation).
pub fn is_alphabetic_word(token: &str) -> bool {
    token.chars().next().is_some_and(char::is_alphabetic) && token.chars().all(|c| c.is_alphabetic() || INNER.contains(&c))
}
