//! Runs the committed oracle `tests/oracle/lr_schedulers.py` (torch's lr_scheduler and nn.init)
//! once on a JSON request. Shared by the schedule and initialiser parity tests. A missing or
//! failing oracle fails the test: it never passes silently.

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

/// Send `request` to the oracle and return its JSON answer; panics (fails the test) if it cannot run.
pub fn oracle(request: &Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle/lr_schedulers.py");
    let py = std::env::var("WHETSTONE_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&py)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("ORACLE MISSING: cannot run `{py} {script}`: {e}. Set WHETSTONE_PYTHON to a python with torch (source /tmp/ws-env.sh)."));
    child.stdin.take().expect("stdin").write_all(request.to_string().as_bytes()).expect("write oracle request");
    let out = child.wait_with_output().expect("oracle output");
    assert!(out.status.success(), "ORACLE FAILED: `{py} {script}` exited with {}:\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("oracle answer is JSON")
}
