//! What a scenario produced, with helpers to find the marker lines tests assert on.

/// Output of one scenario: stdout and stderr interleaved as the script wrote them (the test host's
/// serial console merges them anyway, so direct mode merges them too), CRs removed.
#[derive(Debug, Clone)]
pub struct ScenarioOutput {
    /// Everything the scenario printed.
    pub stdout: String,
    /// The scenario script's exit status.
    pub status: i32,
}

impl ScenarioOutput {
    /// The output's lines, trailing whitespace trimmed.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.stdout.lines().map(str::trim_end)
    }

    /// Whether some line equals `line` exactly (after trimming trailing whitespace).
    pub fn has_line(&self, line: &str) -> bool {
        self.lines().any(|l| l == line)
    }

    /// Index of the first line equal to `line`.
    pub fn line_index(&self, line: &str) -> Option<usize> {
        self.lines().position(|l| l == line)
    }

    /// The rest of every line that starts with `prefix`, in order: `markers("ACCELVM_EXIT=")`.
    pub fn markers<'a>(&'a self, prefix: &'a str) -> Vec<&'a str> {
        self.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .collect()
    }

    /// The rest of the only line starting with `prefix`; panics (with the output) unless there is
    /// exactly one, because a missing or repeated marker means the scenario did not run as planned.
    pub fn marker<'a>(&'a self, prefix: &'a str) -> &'a str {
        match self.markers(prefix).as_slice() {
            [one] => one,
            found => panic!(
                "expected exactly one line starting with {prefix:?}, found {}\n{}",
                found.len(),
                self.dump()
            ),
        }
    }

    /// Panics with the whole output unless the script exited with status 0.
    pub fn assert_success(&self) {
        assert_eq!(self.status, 0, "scenario failed\n{}", self.dump());
    }

    /// The output framed for a panic message.
    pub fn dump(&self) -> String {
        format!(
            "----- scenario output (status {}) -----\n{}\n----- end of scenario output -----",
            self.status, self.stdout
        )
    }
}

/// The same encoder accelvm uses for `accelvm.cmd=` (one copy, in the VMM crate).
pub use accelvm::config::base64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_per_line() {
        let out = ScenarioOutput {
            stdout: "a\nACCELVM_EXIT=7  \nQEMU_STATUS=0\n".to_string(),
            status: 0,
        };
        assert_eq!(out.marker("ACCELVM_EXIT="), "7");
        assert_eq!(out.markers("QEMU_STATUS="), vec!["0"]);
        assert!(out.has_line("a"));
        assert_eq!(out.line_index("QEMU_STATUS=0"), Some(2));
        assert!(out.markers("NOPE").is_empty());
    }
}
