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

/// Standard base64 (RFC 4648, with padding), for `accelvm.cmd=` on a guest kernel command line.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

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
