//! Runs `scripts/bench-transfers.sh` (the transfer benchmark of
//! docs/benchmarks.md) with the test profile's daemon and reads its table.
//!
//! The script starts its own sshd servers and gives files to the test user,
//! so it needs root: where the suite is not root it is skipped with a
//! message, except under CI (`CI` set), where that fails the test so the
//! benchmark cannot go unchecked without anyone noticing.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// How much the script measures (its four arguments).
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Size of the one large file, MiB.
    pub large_mib: u64,
    /// Number of small files.
    pub small_files: u64,
    /// Bytes of each small file.
    pub small_bytes: u64,
    /// Runs of every tool on every workload, interleaved.
    pub runs: u64,
}

impl Workload {
    /// The workload of docs/benchmarks.md.
    pub const FULL: Workload = Workload {
        large_mib: 1024,
        small_files: 1000,
        small_bytes: 4096,
        runs: 3,
    };
}

impl Workload {
    /// The bytes one run of `workload` (`large` or `small`) copies.
    pub fn bytes(&self, workload: &str) -> u64 {
        match workload {
            "large" => self.large_mib << 20,
            "small" => self.small_files * self.small_bytes,
            other => panic!("no workload {other:?} in the script"),
        }
    }
}

/// One line of the script's table.
#[derive(Debug)]
pub struct Row {
    /// `large` or `small`.
    pub workload: String,
    /// `pinkpage`, `scp3` or `scp3-aes`.
    pub tool: String,
    /// Median seconds of the runs.
    pub median_s: f64,
    /// 10^6 bytes per second at the median.
    pub mb_s: f64,
    /// Median CPU seconds the machine was busy during a run (all cores).
    pub cpu_s: f64,
    /// Seconds of each run.
    pub runs_s: Vec<f64>,
}

/// The longest the script may take on a tiny workload before the test
/// gives up on it (a loaded 2-core machine needs a few seconds).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the script with `w` and `PINKPAGE_BIN` set to the test profile's
/// daemon; its table's rows, or a panic with everything it printed.
pub async fn run(w: Workload) -> Vec<Row> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench-transfers.sh");
    let child = tokio::process::Command::new("bash")
        .arg(&script)
        .args([w.large_mib, w.small_files, w.small_bytes, w.runs].map(|n| n.to_string()))
        .env("PINKPAGE_BIN", env!("CARGO_BIN_EXE_pinkpage"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // its own process group, so a hung run is stopped whole (the
        // script's sshd servers and daemon included)
        .process_group(0)
        .spawn()
        .expect("run bash scripts/bench-transfers.sh");
    let group = child.id().expect("the script's pid");
    let out = match tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output()).await {
        Ok(out) => out.expect("the script's output"),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .status();
            panic!("scripts/bench-transfers.sh did not finish within {SCRIPT_TIMEOUT:?}");
        }
    };
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "scripts/bench-transfers.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let mut lines = stdout.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header
            .split_whitespace()
            .eq(["workload", "tool", "median_s", "MB/s", "cpu_s", "runs_s"]),
        "unexpected table header {header:?}:\n{stdout}\n{stderr}"
    );
    lines
        .map(|l| row(l).unwrap_or_else(|| panic!("unreadable line {l:?}:\n{stdout}")))
        .collect()
}

/// `large    pinkpage      0.123       8.5   0.20  0.123 0.130 0.119`.
fn row(line: &str) -> Option<Row> {
    let mut fields = line.split_whitespace();
    let workload = fields.next()?.to_owned();
    let tool = fields.next()?.to_owned();
    let median_s = fields.next()?.parse().ok()?;
    let mb_s = fields.next()?.parse().ok()?;
    let cpu_s = fields.next()?.parse().ok()?;
    let runs_s = fields.map(|f| f.parse().ok()).collect::<Option<Vec<f64>>>()?;
    Some(Row {
        workload,
        tool,
        median_s,
        mb_s,
        cpu_s,
        runs_s,
    })
}

/// `Ok` when this process runs as root (effective uid 0), else why not.
fn root() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .ok_or("no Uid line in /proc/self/status")?;
    match euid {
        "0" => Ok(()),
        uid => Err(format!(
            "needs root (sshd, files given to the test user), runs as uid {uid}"
        )),
    }
}

/// Whether CI runs the suite (`CI` set to anything but empty, `0` or
/// `false`, as CI services set it).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// [`root`], or `false` after printing why `test` is skipped; under CI a
/// missing root fails `test` instead.
pub fn root_or_skip(test: &str) -> bool {
    match root() {
        Ok(()) => true,
        Err(why) if in_ci() => panic!("{test}: {why}, and CI must not skip it"),
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            false
        }
    }
}
