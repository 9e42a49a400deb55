//! The stats API: a unix socket on which a running accelvm answers `stats` with a JSON
//! document (one connection, one request line, one answer, then close).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::{Registry, stats};
use crate::signals::poll_readable;

/// The only request.
pub const STATS_REQUEST: &str = "stats";
/// Longest request line read.
const MAX_REQUEST: u64 = 256;
/// A client that does not send its request within this time is dropped.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// The server thread.
pub struct ApiServer {
    stop: EventFd,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl ApiServer {
    /// Listens on `path` (a stale socket file is replaced; any other file is an error).
    pub fn start(path: &Path, registry: Arc<Registry>) -> std::io::Result<Self> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the path exists and is not a socket",
                ));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another process serves this socket",
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        let stop = EventFd::new(EFD_NONBLOCK)?;
        let stop2 = stop.try_clone()?;
        let thread = std::thread::Builder::new()
            .name("api".into())
            .spawn(move || serve(&listener, &stop2, &registry))?;
        Ok(ApiServer {
            stop,
            thread: Some(thread),
            path: path.to_owned(),
        })
    }

    /// Stops the thread and removes the socket file.
    pub fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.stop.write(1);
            let _ = t.join();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(listener: &UnixListener, stop: &EventFd, registry: &Registry) {
    let fds = [listener.as_raw_fd(), stop.as_raw_fd()];
    loop {
        let Ok(ready) = poll_readable(&fds) else {
            return;
        };
        if ready[1] {
            return;
        }
        if !ready[0] {
            continue;
        }
        while let Ok((stream, _)) = listener.accept() {
            // One client at a time: answers are small and built from a quick snapshot.
            if let Err(e) = answer(stream, registry) {
                log::debug!("api client: {e}");
            }
        }
    }
}

fn answer(stream: UnixStream, registry: &Registry) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new((&stream).take(MAX_REQUEST)).read_line(&mut line)?;
    let body = if line.trim() == STATS_REQUEST {
        stats::to_json(registry)
    } else {
        serde_json::json!({ "error": format!("unknown request {:?}; send \"stats\"", line.trim()) })
    };
    let mut out = &stream;
    out.write_all(body.to_string().as_bytes())?;
    out.write_all(b"\n")
}

/// Asks the accelvm serving `path` for its stats.
pub fn query(path: &Path) -> std::io::Result<serde_json::Value> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("{STATS_REQUEST}\n").as_bytes())?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(std::io::Error::other)?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Err(std::io::Error::other(e.to_string()));
    }
    Ok(v)
}
