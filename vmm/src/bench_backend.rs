//! `accelvm bench-backend` (hidden): the software accelerator backend's raw speed on this
//! host, so a guest benchmark (benches/accel-driver.sh) can put the device path next to what
//! the same backend code does when called directly, measured on the same machine in the same
//! run. It runs [`backend::execute`], the function `SoftwareAccelerator` runs for every job,
//! on AES-128-GCM encrypt jobs (16-byte tag), the operation `accel-tool bench` sends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use accelvm_devices::virtio::accel::backend::aead::{AeadError, AeadKey};
use accelvm_devices::virtio::accel::backend::{self, Job, JobOp};
use accelvm_devices::virtio::accel::protocol::Status;

/// Largest size accepted, the device's data limit order of magnitude (a bigger one says nothing
/// about the device path, which cannot carry it).
pub const MAX_SIZE: usize = 1 << 20;
/// Bounds for the time spent per size.
pub const MAX_TIME_MS: u64 = 60_000;

/// Errors of the backend benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A size of 0 or above [`MAX_SIZE`].
    #[error("size {0} out of range 1..={MAX_SIZE}")]
    Size(usize),
    /// A time of 0 or above [`MAX_TIME_MS`].
    #[error("time {0} ms out of range 1..={MAX_TIME_MS}")]
    Time(u64),
    /// Key expansion failed (cannot happen for the fixed 16-byte key).
    #[error("key: {0}")]
    Key(#[from] AeadError),
    /// The backend answered something other than OK.
    #[error("backend returned {0:?} for a {1}-byte encrypt")]
    Status(Status, usize),
}

/// One measured size.
#[derive(Debug, Clone, Copy)]
pub struct BenchRow {
    /// Bytes of plaintext per job.
    pub size: usize,
    /// Jobs run in the timed window.
    pub ops: u64,
    /// Length of the timed window.
    pub elapsed: Duration,
}

impl BenchRow {
    /// Megabytes (10^6) of plaintext per second.
    pub fn mb_per_s(&self) -> f64 {
        self.ops as f64 * self.size as f64 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }

    /// Microseconds per job.
    pub fn us_per_op(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e6 / self.ops.max(1) as f64
    }
}

/// Runs encrypt jobs of `size` bytes for about `time`, reusing the job's buffers as the device
/// does (the result hands them back).
pub fn bench_size(size: usize, time: Duration) -> Result<BenchRow, BenchError> {
    if size == 0 || size > MAX_SIZE {
        return Err(BenchError::Size(size));
    }
    let key = Arc::new(AeadKey::new(&[0x42; 16])?);
    let mut buf: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut spare = Vec::new();
    let mut run_one = |n: u64| -> Result<(), BenchError> {
        let job = Job {
            tenant: 0,
            token: n,
            op: JobOp::Encrypt {
                key: key.clone(),
                iv: [n as u8; 12],
                tag_len: 16,
            },
            buf: std::mem::take(&mut buf),
            aad: 0..0,
            src: 0..size,
            out_capacity: size + 16,
            spare: std::mem::take(&mut spare),
        };
        let r = backend::execute(job);
        if r.status != Status::Ok {
            return Err(BenchError::Status(r.status, size));
        }
        buf = r.buf;
        // The device writes the output back and reuses the buffer: restore the source length.
        buf.truncate(size);
        spare = r.spare;
        Ok(())
    };
    run_one(0)?; // warm-up: allocations, page faults
    let start = Instant::now();
    let mut ops = 0u64;
    while ops < 3 || start.elapsed() < time {
        run_one(ops)?;
        ops += 1;
    }
    Ok(BenchRow {
        size,
        ops,
        elapsed: start.elapsed(),
    })
}

/// Measures every size and prints a table; one `BACKEND size MB/s us` line per size too, for
/// scripts.
pub fn run(sizes: &[usize], time_ms: u64) -> Result<Vec<BenchRow>, BenchError> {
    if time_ms == 0 || time_ms > MAX_TIME_MS {
        return Err(BenchError::Time(time_ms));
    }
    if let Some(&bad) = sizes.iter().find(|&&s| s == 0 || s > MAX_SIZE) {
        return Err(BenchError::Size(bad));
    }
    println!(
        "software backend, AES-128-GCM encrypt (16-byte tag), {time_ms} ms per size, one thread"
    );
    println!(
        "{:>7} {:>11} {:>10} {:>10}",
        "size", "ops/s", "MB/s", "us/op"
    );
    let mut rows = Vec::new();
    for &size in sizes {
        let r = bench_size(size, Duration::from_millis(time_ms))?;
        println!(
            "{:>7} {:>11.0} {:>10.1} {:>10.3}",
            r.size,
            1e6 / r.us_per_op(),
            r.mb_per_s(),
            r.us_per_op()
        );
        rows.push(r);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(run(&[0], 10), Err(BenchError::Size(0))));
        assert!(matches!(run(&[MAX_SIZE + 1], 10), Err(BenchError::Size(_))));
        assert!(matches!(run(&[64], 0), Err(BenchError::Time(0))));
    }

    #[test]
    fn counts_jobs() {
        let r = bench_size(64, Duration::from_millis(1)).unwrap();
        assert!(r.ops >= 3);
        assert!(r.mb_per_s() > 0.0);
    }
}
