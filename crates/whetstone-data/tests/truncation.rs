//! Bounded tokenisation: texts are cut by characters before they are encoded, so a huge text
//! costs what a text of `max_len × 32` characters costs (see `whetstone_data::truncate`).

use std::io::{BufReader, Cursor};

use tokenizers::{TruncationDirection, TruncationParams, TruncationStrategy};
use whetstone_data::conll::{encode_tagged, IGNORE_INDEX};
use whetstone_data::truncate::{char_bound, pieces, read_line_bounded, truncate_chars, VOCAB_TEXT_CHARS};
use whetstone_data::{LabelSet, TaggedSentence, TextTokenizer};

const SENTENCES: [&str; 6] = [
    "The movie was surprisingly good, with a gripping plot.",
    "A dull, lifeless film; the actors seemed bored.",
    "Free entry! Text WIN to 87121 to claim your prize now.",
    "I'll call you later, the meeting ran long.",
    "Unbelievably well-acted and beautifully shot.",
    "Café crème at the théâtre was très bien.",
];

fn tokenizer() -> TextTokenizer {
    let texts: Vec<String> = (0..40).map(|i| format!("{} {}", SENTENCES[i % 6], SENTENCES[(i * 7 + 3) % 6])).collect();
    TextTokenizer::train_wordpiece(&texts, 300, 1, true).unwrap()
}

/// Natural text of at least `chars` characters.
fn prose(chars: usize) -> String {
    let mut s = String::with_capacity(chars + 64);
    let mut i = 0;
    while s.len() < chars {
        s.push_str(SENTENCES[i % 6]);
        s.push(' ');
        i += 1;
    }
    s
}

/// What encoding gave before texts were cut: the whole text, its ids truncated to `max_len`.
fn encode_whole(tok: &TextTokenizer, text: &str, max_len: usize) -> Vec<i64> {
    let mut t = tok.inner().clone();
    t.with_truncation(Some(TruncationParams { direction: TruncationDirection::Right, max_length: max_len, strategy: TruncationStrategy::LongestFirst, stride: 0 })).unwrap();
    t.encode(text, true).unwrap().get_ids().iter().map(|&i| i64::from(i)).collect()
}

#[test]
fn truncate_chars_cuts_at_char_boundaries() {
    assert_eq!(char_bound(64), 64 * 32);
    assert_eq!(truncate_chars("", 3), "");
    assert_eq!(truncate_chars("abc", 0), "");
    assert_eq!(truncate_chars("日本語のテキスト", 3), "日本語");
    assert_eq!(truncate_chars("é😀x", 2), "é😀");
    assert_eq!(truncate_chars("abc", 3), "abc");
}

#[test]
fn a_ten_megabyte_text_encodes_to_max_len_as_its_prefix_does() {
    let tok = tokenizer();
    let max_len = 32;
    let huge = prose(10 << 20);
    let short = prose(400);
    let enc = tok.encode_batch(&[huge.clone(), short.clone()], max_len).unwrap();
    assert_eq!(enc[0].len(), max_len);
    // Natural text: the cut changes nothing in the first max_len ids.
    assert_eq!(enc[0], encode_whole(&tok, &huge[..5000], max_len));
    assert_eq!(enc[1], encode_whole(&tok, &short, max_len));
    assert_eq!(enc[0], enc[1]);
}

#[test]
fn the_encoder_sees_at_most_the_char_bound() {
    let tok = tokenizer();
    let max_len = 16;
    let bound = char_bound(max_len);
    let (cls, sep) = (tok.token_to_id("[CLS]").unwrap(), tok.token_to_id("[SEP]").unwrap());
    let movie = tok.token_to_id("movie").expect("`movie` is in the vocabulary");
    // "movie" right before the bound is seen; right after it is not, however long the text.
    let inside = format!("{}movie", " ".repeat(bound - 5));
    let outside = format!("{}movie{}", " ".repeat(bound), " movie".repeat(100_000));
    let enc = tok.encode_batch(&[inside.clone(), outside.clone()], max_len).unwrap();
    assert_eq!(enc[0], [cls, movie, sep]);
    assert_eq!(enc[1], [cls, sep]);
    // Without the cut the word after the bound would have been encoded.
    assert_eq!(encode_whole(&tok, &outside, max_len).len(), max_len);
}

#[test]
fn tagged_sentences_are_cut_at_the_char_bound() {
    let tok = tokenizer();
    let tags = LabelSet { names: vec!["B-x".into(), "O".into()] };
    let max_len = 16;
    let bound = char_bound(max_len);
    // One word as long as the bound, then a word that fits in max_len ids but lies past the bound.
    let words = vec!["a".repeat(bound), "movie".to_string()];
    let s = TaggedSentence { tags: vec!["B-x".into(), "O".into()], words, line: 1 };
    let enc = encode_tagged(&tok, &[s], &tags, max_len).unwrap();
    let unk = tok.token_to_id("[UNK]").unwrap();
    assert_eq!(enc.ids[0][1], unk);
    assert_eq!(enc.ids[0].len(), 3, "{:?}", enc.ids[0]);
    assert_eq!(enc.labels[0], [IGNORE_INDEX, 0, IGNORE_INDEX]);

    // A million words: max_len ids, tags aligned to the first pieces.
    let n = 1_000_000;
    let s = TaggedSentence { tags: vec!["O".into(); n], words: vec!["movie".into(); n], line: 7 };
    let enc = encode_tagged(&tok, &[s], &tags, max_len).unwrap();
    assert_eq!(enc.ids[0].len(), max_len);
    assert_eq!(enc.labels[0].iter().filter(|&&l| l == 1).count(), max_len - 2);
}

#[test]
fn vocabulary_learning_reads_a_bounded_prefix_of_each_text() {
    // A character seen only past VOCAB_TEXT_CHARS never enters the vocabulary.
    let filler = "ab ".repeat(VOCAB_TEXT_CHARS / 3 + 1);
    let late = vec![format!("{filler} ж")];
    let early = vec![format!("ж {filler}")];
    let a = TextTokenizer::train_wordpiece(&late, 100, 1, true).unwrap();
    let b = TextTokenizer::train_wordpiece(&early, 100, 1, true).unwrap();
    assert!(a.token_to_id("ж").is_none());
    assert!(b.token_to_id("ж").is_some());
}

#[test]
fn documents_encoded_in_pieces_match_whole_documents() {
    let tok = tokenizer();
    let docs = vec![prose(5000), String::new(), "Café   crème\n\tbien".repeat(40), prose(90)];
    let mut got: Vec<(usize, Vec<u32>)> = Vec::new();
    tok.encode_documents(&docs, 37, |d, ids| {
        got.push((d, ids.to_vec()));
        Ok(())
    })
    .unwrap();
    let want: Vec<(usize, Vec<u32>)> = [0, 2, 3].iter().map(|&d| (d, tok.inner().encode(docs[d].as_str(), false).unwrap().get_ids().to_vec())).collect();
    assert_eq!(got, want);
    assert!(got[0].1.len() > 500);
}

#[test]
fn pieces_are_bounded_and_concatenate_back() {
    let texts = ["", "x", "a bb ccc dddd", "   lead and trail   ", "noSpacesAtAllInThisLongWord", "日本 語の テキスト é😀 x\ty\nz"];
    for text in texts {
        for max in 1..12 {
            let p: Vec<&str> = pieces(text, max).collect();
            assert_eq!(p.concat(), text, "{text:?} {max}");
            assert!(p.iter().all(|s| !s.is_empty() && s.chars().count() <= max), "{p:?}");
        }
    }
    // Cuts fall before whitespace when there is any.
    assert_eq!(pieces("hello world again", 8).collect::<Vec<_>>(), ["hello", " world", " again"]);
}

#[test]
fn lines_are_read_in_bounded_pieces() {
    let big = "é".repeat(5 << 20); // 10 MB
    let input = format!("{big}\nshort\r\n\n日本語\nlast");
    // A tiny buffer exercises characters split across reads.
    let mut r = BufReader::with_capacity(3, Cursor::new(input.into_bytes()));
    let l = read_line_bounded(&mut r, 100).unwrap().unwrap();
    assert_eq!((l.text, l.truncated), ("é".repeat(100), true));
    let l = read_line_bounded(&mut r, 5).unwrap().unwrap();
    assert_eq!((l.text.as_str(), l.truncated), ("short", false));
    let l = read_line_bounded(&mut r, 5).unwrap().unwrap();
    assert_eq!((l.text.as_str(), l.truncated), ("", false));
    let l = read_line_bounded(&mut r, 2).unwrap().unwrap();
    assert_eq!((l.text.as_str(), l.truncated), ("日本", true));
    let l = read_line_bounded(&mut r, 2).unwrap().unwrap();
    assert_eq!((l.text.as_str(), l.truncated), ("la", true));
    assert!(read_line_bounded(&mut r, 2).unwrap().is_none());

    let mut bad = Cursor::new(b"ok\xff\n".to_vec());
    let e = read_line_bounded(&mut bad, 10).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
}

#[test]
fn masked_lm_windows_are_cut_from_bounded_pieces_with_the_whole_documents_ids() {
    let tok = tokenizer();
    // A document far longer than the piece bound (char_bound(16) = 512 chars), an empty one, a short one.
    let docs = vec![prose(20_000), String::new(), prose(90)];
    let (max_len, min_tokens) = (16, 3);
    let got = whetstone_data::chunk_documents(&tok, &docs, max_len, min_tokens).unwrap();
    let (cls, sep) = (i64::from(tok.token_to_id("[CLS]").unwrap()), i64::from(tok.token_to_id("[SEP]").unwrap()));
    let mut want = Vec::new();
    for d in &docs {
        let ids = tok.inner().encode(d.as_str(), false).unwrap().get_ids().to_vec();
        for w in ids.chunks(max_len - 2).filter(|w| w.len() >= min_tokens) {
            want.push([vec![cls], w.iter().map(|&i| i64::from(i)).collect(), vec![sep]].concat());
        }
    }
    assert!(want.len() > 300, "the long document must span many windows");
    assert_eq!(got.ids, want);
    assert!(got.ids.iter().all(|w| w.len() <= max_len));
}
