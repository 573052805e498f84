//! Facts about the machine and small statistics that every benchmark report prints.

use std::time::Instant;

/// The median of `v` (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The CPU model from /proc/cpuinfo.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

/// The 1/5/15-minute load averages, as /proc/loadavg gives them.
pub fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

/// The Python interpreter for a PyTorch peer: `--python`, else `$WHETSTONE_PYTHON`, else `python3`.
pub fn peer_python(arg: Option<std::path::PathBuf>) -> std::path::PathBuf {
    arg.or_else(|| std::env::var_os("WHETSTONE_PYTHON").filter(|p| !p.is_empty()).map(std::path::PathBuf::from))
        .unwrap_or_else(|| std::path::PathBuf::from("python3"))
}

/// Run `peer --check` under `python` and return its JSON (versions), with a clear error when the
/// script, the interpreter, torch or numpy is missing.
pub fn peer_check(python: &std::path::Path, peer: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context;
    if !peer.exists() {
        anyhow::bail!("the PyTorch peer script {} does not exist (pass --peer)", peer.display());
    }
    let out = std::process::Command::new(python).arg(peer).arg("--check").output().with_context(|| {
        format!("could not run the Python interpreter `{}`: install Python with torch and numpy, or pass --python / set WHETSTONE_PYTHON (`cargo xtask setup` creates one)", python.display())
    })?;
    if !out.status.success() {
        anyhow::bail!(
            "`{} {} --check` failed: the peer needs torch and numpy in that interpreter (`cargo xtask setup` installs them).\n{}",
            python.display(),
            peer.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("parsing the peer's --check output")
}

/// CPU time of the whole machine (busy, /proc/stat, steal included) and of this process with
/// its waited-for children (/proc/self/stat), with the wall clock, to tell how much CPU other
/// processes took meanwhile.
#[derive(Clone, Copy)]
pub struct CpuClock {
    machine_busy: f64,
    own: f64,
    wall: Instant,
}

impl CpuClock {
    /// Clock ticks per second of /proc's counters (USER_HZ, 100 on Linux).
    const HZ: f64 = 100.0;

    pub fn now() -> Self {
        let machine_busy = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| s.lines().next().map(|l| l.split_whitespace().skip(1).map(|x| x.parse::<f64>().unwrap_or(0.0)).collect::<Vec<_>>()))
            // user nice system idle iowait irq softirq steal: all but idle and iowait.
            .map(|v| v.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, x)| x).sum::<f64>() / Self::HZ)
            .unwrap_or(0.0);
        // Fields after the command name: utime, stime, cutime, cstime are fields 14–17.
        let own = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().skip(11).take(4).map(|x| x.parse::<f64>().unwrap_or(0.0)).sum::<f64>() / Self::HZ))
            .unwrap_or(0.0);
        Self { machine_busy, own, wall: Instant::now() }
    }

    /// CPUs' worth of time other processes used since `self` (0 when /proc is unreadable).
    pub fn others_since(&self) -> f64 {
        let now = Self::now();
        let wall = (now.wall - self.wall).as_secs_f64().max(1e-9);
        (((now.machine_busy - self.machine_busy) - (now.own - self.own)) / wall).max(0.0)
    }
}
