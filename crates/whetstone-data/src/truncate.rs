//! Bounding the text a tokenizer sees, so that memory and time per example stay bounded
//! whatever the input.
//!
//! Tokenising a whole text and truncating the ids afterwards costs memory and time in
//! proportion to the text: `tokenizers` keeps an alignment entry per normalised byte and
//! an [`Encoding`](tokenizers::Encoding) of ~100 bytes per token, so one 20 MB text took
//! 2.5 GB. Every path that encodes text therefore cuts it first, by characters, to
//! [`char_bound`]`(max_len)` = `max_len × 32` characters, at a char boundary (never inside a
//! UTF-8 sequence).
//!
//! **Why 32 characters per token.** A WordPiece or BPE piece covers at least one character,
//! and English text averages 4–6 characters per token, spaces included (rotten-tomatoes:
//! ~5); 32 leaves a margin of 5–8× before the cut can change the first `max_len` tokens.
//! Only text where most tokens cover over 32 characters is affected: long runs of
//! whitespace or control characters (which make no tokens), or words of more than 100
//! characters, which BERT's WordPiece turns into a single `[UNK]` anyway. A bound from the
//! tokenizer's longest piece would not help: one `[UNK]` covers a whole word of any length,
//! so no finite bound is exact, and 32 is a generous, fixed and documented one.
//!
//! Learning a vocabulary ([`TextTokenizer::train_wordpiece`](crate::TextTokenizer::train_wordpiece))
//! has no `max_len`; it reads at most [`VOCAB_TEXT_CHARS`] characters of each text.
//!
//! ```
//! use whetstone_data::truncate::{char_bound, truncate_chars};
//! assert_eq!(char_bound(64), 2048);
//! assert_eq!(truncate_chars("héllo", 2), "hé");
//! assert_eq!(truncate_chars("héllo", 10), "héllo");
//! ```

use std::io::{self, BufRead};

/// Characters of text kept per token of `max_len` (see the module page for the choice).
pub const CHARS_PER_TOKEN: usize = 32;

/// Characters of each text read when learning a WordPiece vocabulary: 64 Ki, the char bound
/// of `max_len` 2048, four times that of BERT's 512.
pub const VOCAB_TEXT_CHARS: usize = 1 << 16;

/// The most characters of a text that are tokenised for sequences of at most `max_len` ids.
pub fn char_bound(max_len: usize) -> usize {
    max_len.saturating_mul(CHARS_PER_TOKEN)
}

/// The first `max_chars` characters of `text` (all of it when shorter), cut at a char boundary.
/// Costs `O(max_chars)`, whatever the length of `text`.
pub fn truncate_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// Splits `text` into consecutive pieces of at most `max_chars` characters, each cut (when a
/// cut is needed) just before a whitespace character, so that no word is split and each piece
/// but the first starts with the whitespace that separated it from the previous one (BERT's
/// pre-tokeniser drops it, byte-level BPE attaches it to the next word as it would in the
/// whole text). A run of `max_chars` characters without whitespace is cut where it ends.
/// The pieces concatenate back to `text`; `max_chars` 0 is treated as 1.
///
/// ```
/// use whetstone_data::truncate::pieces;
/// let p: Vec<&str> = pieces("a bb ccc dddd", 6).collect();
/// assert_eq!(p, ["a bb", " ccc", " dddd"]);
/// assert_eq!(p.concat(), "a bb ccc dddd");
/// ```
pub fn pieces(text: &str, max_chars: usize) -> impl Iterator<Item = &str> {
    let max_chars = max_chars.max(1);
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let head = truncate_chars(rest, max_chars);
        let end = if head.len() == rest.len() {
            head.len()
        } else {
            // Cut before the last whitespace of the piece, unless that would leave it empty.
            // The whitespace at the cut (the first char of the rest) counts as a boundary too.
            let next_is_space = rest[head.len()..].starts_with(char::is_whitespace);
            if next_is_space {
                head.len()
            } else {
                match head.char_indices().rev().find(|(_, c)| c.is_whitespace()) {
                    Some((i, _)) if i > 0 => i,
                    _ => head.len(),
                }
            }
        };
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

/// One line read by [`read_line_bounded`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundedLine {
    /// The line without its `\n` (or `\r\n`), cut to at most the requested characters.
    pub text: String,
    /// Whether characters past the bound were discarded.
    pub truncated: bool,
}

/// Reads one line from `reader`, keeping at most `max_chars` characters and skipping the rest
/// of the line unread into memory, so a line of any length costs `O(max_chars)` memory.
/// `Ok(None)` at the end of input; a last line without `\n` is still a line. Only the kept
/// part is decoded: invalid UTF-8 in it is an `InvalidData` error, in the skipped part it is
/// not looked at.
///
/// ```
/// use whetstone_data::truncate::read_line_bounded;
/// let mut input = std::io::Cursor::new("héllo world\r\n\nlast");
/// let l = read_line_bounded(&mut input, 4).unwrap().unwrap();
/// assert_eq!((l.text.as_str(), l.truncated), ("héll", true));
/// assert_eq!(read_line_bounded(&mut input, 4).unwrap().unwrap().text, "");
/// assert_eq!(read_line_bounded(&mut input, 4).unwrap().unwrap().text, "last");
/// assert!(read_line_bounded(&mut input, 4).unwrap().is_none());
/// ```
pub fn read_line_bounded<R: BufRead + ?Sized>(reader: &mut R, max_chars: usize) -> io::Result<Option<BoundedLine>> {
    let mut kept: Vec<u8> = Vec::new();
    let mut chars = 0usize;
    let mut truncated = false;
    let mut any = false;
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            break;
        }
        any = true;
        let (part, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (&buf[..], None),
        };
        if !truncated {
            // Bytes of `part` to keep: up to the start of character `max_chars + 1`.
            let mut keep = part.len();
            for (i, &b) in part.iter().enumerate() {
                // A byte that is not a UTF-8 continuation byte starts a character.
                if b & 0xC0 != 0x80 {
                    if chars == max_chars {
                        keep = i;
                        // The `\r` of a `\r\n` ending is not text that was cut.
                        truncated = !(b == b'\r' && i + 1 == part.len() && done.is_some());
                        break;
                    }
                    chars += 1;
                }
            }
            kept.extend_from_slice(&part[..keep]);
        }
        let used = done.unwrap_or(buf.len());
        reader.consume(used);
        if done.is_some() {
            break;
        }
    }
    if !any {
        return Ok(None);
    }
    if !truncated && kept.last() == Some(&b'\r') {
        kept.pop();
    }
    let text = String::from_utf8(kept).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to())))?;
    Ok(Some(BoundedLine { text, truncated }))
}
