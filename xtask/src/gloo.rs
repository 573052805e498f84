//! Gloo's headers, for whetstone-torch-ext's c10d feature.
//!
//! The torch wheel ships libtorch's c10d headers and symbols but not the headers of Gloo, the
//! library its CPU process group is built on (`ProcessGroupGloo.hpp` includes
//! `<gloo/algorithm.h>`). Debian's `libgloo-dev` provides headers that compile with it. They are
//! fetched like a dataset, without root: `apt-get download` (or plain HTTP from the Debian
//! archive when apt is absent), the sha256 checked, `dpkg-deb -x` into a cache folder next to
//! the torch virtualenv. `WHETSTONE_GLOO_INCLUDE` names another folder holding `gloo/`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const PACKAGE: &str = "libgloo-dev";
const VERSION: &str = "0.0~git20220518.5b14351-3";
const SHA256: &str = "80529c9fd8af452faf489e686b94bf87075965c40673803810c4f41634b1e299";
const URL: &str = "http://deb.debian.org/debian/pool/main/g/gloo/libgloo-dev_0.0~git20220518.5b14351-3_amd64.deb";

fn has_headers(dir: &Path) -> bool {
    dir.join("gloo/algorithm.h").is_file()
}

/// The folder holding `gloo/`, fetching the headers into `cache` (`~/.cache/whetstone`) once.
pub fn ensure(cache: &Path) -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("WHETSTONE_GLOO_INCLUDE") {
        let d = PathBuf::from(d);
        if !has_headers(&d) {
            bail!("WHETSTONE_GLOO_INCLUDE={} has no gloo/algorithm.h; point it at the folder that holds gloo/ (or unset it to fetch Debian's {PACKAGE})", d.display());
        }
        return Ok(d);
    }
    let root = cache.join(format!("gloo-{VERSION}"));
    let include = root.join("usr/include");
    if has_headers(&include) {
        return Ok(include);
    }
    eprintln!("xtask: fetching Gloo's headers ({PACKAGE} {VERSION}, 49 kB) into {}", root.display());
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let work = cache.join(format!(".gloo-fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let r = fetch_into(&work, &root);
    let _ = std::fs::remove_dir_all(&work);
    r?;
    if !has_headers(&include) {
        bail!("{PACKAGE} unpacked into {} but has no gloo/algorithm.h", root.display());
    }
    Ok(include)
}

fn fetch_into(work: &Path, root: &Path) -> Result<()> {
    let deb = work.join(format!("{PACKAGE}_{VERSION}_amd64.deb"));
    let apt = Command::new("apt-get").current_dir(work).args(["download", "-q", &format!("{PACKAGE}={VERSION}")]).output();
    let fetched = matches!(&apt, Ok(o) if o.status.success()) && deb.is_file();
    if !fetched {
        let curl = Command::new("curl").args(["-fsSL", "--retry", "3", "-o"]).arg(&deb).arg(URL).status();
        if !matches!(curl, Ok(s) if s.success()) {
            let apt_err = match &apt {
                Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                Err(e) => e.to_string(),
            };
            bail!(
                "could not download {PACKAGE} {VERSION}: `apt-get download` failed ({apt_err}) and so did `curl {URL}`. \
                 Download that .deb by hand and unpack it with `dpkg-deb -x FILE {}`, or set WHETSTONE_GLOO_INCLUDE to a folder holding Gloo's gloo/ headers",
                root.display()
            );
        }
    }
    let out = Command::new("sha256sum").arg(&deb).output().context("running sha256sum (coreutils)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let got = text.split_whitespace().next().unwrap_or("");
    if got != SHA256 {
        bail!("{} has sha256 {got}, expected {SHA256}: the download is damaged or not the pinned {PACKAGE} {VERSION}", deb.display());
    }
    let staging = work.join("root");
    let st = Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&staging).status();
    if !matches!(st, Ok(s) if s.success()) {
        bail!("`dpkg-deb -x {}` failed; install dpkg (or unpack the .deb's data.tar with `ar x` and `tar x`) into {}", deb.display(), root.display());
    }
    // Appear complete or not at all.
    let _ = std::fs::remove_dir_all(root);
    if let Err(e) = std::fs::rename(&staging, root) {
        // Another xtask fetching at the same time may have put its complete copy there first.
        if !has_headers(&root.join("usr/include")) {
            return Err(e).with_context(|| format!("moving {} to {}", staging.display(), root.display()));
        }
    }
    Ok(())
}
