//! The real manifest datasets: fetched (downloaded on first run) and counted.

use whetstone_data::fetch::{package_dir, MARKER_FILE};
use whetstone_data::{cache_dir, fetch, read_table, stratified_split, Manifest};

fn counts(rows: &[whetstone_data::RawExample]) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for r in rows {
        *m.entry(r.label.clone()).or_insert(0) += 1;
    }
    m
}

#[test]
fn rotten_tomatoes_and_sms_spam_have_the_documented_rows() {
    let manifest = Manifest::builtin().unwrap();
    let cache = cache_dir();

    let rt = manifest.get("rotten-tomatoes").unwrap();
    let path = fetch(rt, &cache).unwrap();
    let marker = std::fs::read_to_string(package_dir(rt, &cache).join(MARKER_FILE)).unwrap();
    assert_eq!(marker.trim(), rt.sha256);
    let rows = read_table(&rt.table_spec(path).unwrap()).unwrap();
    assert_eq!(rows.len(), 8530);
    let c = counts(&rows);
    assert_eq!((c["0"], c["1"]), (4265, 4265));
    // Line numbers are the editor's: the rotten_tomatoes rows follow 25,000 imdb rows.
    assert_eq!((rows[0].line, rows[8529].line), (25002, 33531));
    assert!(rows[0].text.starts_with("the rock is destined"));

    let sms = manifest.get("sms-spam").unwrap();
    let path = fetch(sms, &cache).unwrap();
    let marker = std::fs::read_to_string(package_dir(sms, &cache).join(MARKER_FILE)).unwrap();
    assert_eq!(marker.trim(), sms.sha256);
    let rows = read_table(&sms.table_spec(path).unwrap()).unwrap();
    assert_eq!(rows.len(), 4862);
    let c = counts(&rows);
    assert_eq!((c["ham"], c["spam"]), (4220, 642));
    assert_eq!(rows[4861].line, 4862);
    // Quoted fields are unquoted: no text keeps the CSV doubling of quotes.
    assert!(rows.iter().all(|r| !r.text.contains("\"\"")));

    let splits = stratified_split(rows, 0.1, 0.1, 42).unwrap();
    assert_eq!(splits.labels.names, ["ham", "spam"]);
    assert_eq!(splits.test.class_counts(2), [422, 64]);
}
