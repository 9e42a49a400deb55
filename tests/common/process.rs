//! Process plumbing for scenarios: each runs in its own process group, bounded in time, its output
//! collected line by line, and the whole group is killed when it ends — nothing outlives a test.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use super::ScenarioOutput;

/// What a finished process printed, and its exit status (128 + signal when killed).
pub(crate) struct Finished {
    pub(crate) out: String,
    pub(crate) err: String,
    pub(crate) code: i32,
}

/// Kills the whole process group of a spawned scenario when dropped, so nothing (QEMU, a VMM, a
/// guest) outlives the test, whether it passed, failed, panicked or timed out.
struct GroupGuard {
    child: Child,
    killed: bool,
}

impl GroupGuard {
    fn kill_group(&mut self) {
        if self.killed {
            return;
        }
        self.killed = true;
        // TERM first so images/testhost runs its cleanup (stops QEMU, removes its temp files).
        self.signal_group(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            thread::sleep(Duration::from_millis(50));
        }
        self.signal_group(libc::SIGKILL);
        let _ = self.child.wait();
    }

    fn signal_group(&self, signal: libc::c_int) {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: killpg only sends a signal; pgid is the group created for this child with
        // process_group(0), so it cannot hit processes outside the scenario.
        unsafe { libc::killpg(pgid, signal) };
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// Runs `cmd` in its own process group with stdout (and stderr, which scripts redirect to it)
/// collected; echoes each line to the test's stderr (shown on failure, or with --nocapture).
/// Returns the output and exit status; panics with the output on timeout.
pub(crate) fn run_bounded(mut cmd: Command, timeout: Duration) -> Finished {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
    let mut guard = GroupGuard {
        child,
        killed: false,
    };
    let stdout = guard.child.stdout.take().expect("stdout is piped");
    let stderr = guard.child.stderr.take().expect("stderr is piped");
    let out_reader = thread::spawn(move || collect_lines(stdout));
    let err_reader = thread::spawn(move || collect_lines(stderr));

    let start = Instant::now();
    let status = loop {
        match guard.child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() >= timeout => {
                guard.kill_group();
                let out = out_reader.join().unwrap_or_default();
                panic!(
                    "scenario timed out after {} s; killed it\n{}",
                    timeout.as_secs(),
                    ScenarioOutput {
                        stdout: out,
                        status: -1
                    }
                    .dump()
                );
            }
            Ok(None) => thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("waiting for the scenario failed: {e}"),
        }
    };
    // The script is done; kill whatever it left behind, which also closes the pipes for the readers.
    drop(guard);
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Finished { out, err, code }
}

fn collect_lines(stream: impl Read) -> String {
    let mut out = String::new();
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
        let text = String::from_utf8_lossy(&line).replace('\r', "");
        eprint!("{text}");
        out.push_str(&text);
        line.clear();
    }
    out
}

/// A scratch folder for a scenario (its script; the working directory in direct mode), removed on
/// drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("accelvm-scenario-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
