//! The character device `/dev/virtio-accel<N>`: a thin safe wrapper over its ioctls.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;

use crate::uapi::{self, Batch, Info, Kcomp, Op, Sa, SaQuery, Session, Stats};

pub struct AccelDev {
    file: File,
    pub path: String,
}

/// One operation of a batch with its own buffers; results are filled in by [`AccelDev::batch`].
#[derive(Clone, Debug, Default)]
pub struct DataOp {
    pub opcode: u32,
    pub handle: u64,
    pub algo: u32,
    /// Compression level (0 = the device's default).
    pub level: u32,
    pub tag_len: u32,
    pub iv: [u8; 12],
    pub aad: Vec<u8>,
    pub src: Vec<u8>,
    /// Capacity on input; truncated to what the device wrote.
    pub dst: Vec<u8>,
    pub status: u32,
    pub error: i32,
    /// dst_len the driver reported (bytes needed on OUTPUT_TOO_SMALL).
    pub out_len: u32,
}

/// The open file's mmap()ed buffer area.
pub struct Area {
    ptr: *mut u8,
    len: usize,
}

impl Area {
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: ptr..ptr+len is this process's live shared mapping (until Drop); the device
        // writes it only during batch_mapped, which borrows the area mutably.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in bytes(), and &mut self makes this the only slice.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: the mapping map_area created, unmapped once; no slice of it outlives self.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

fn ioctl<T>(fd: &File, req: u64, arg: &mut T) -> io::Result<()> {
    // SAFETY: every request number in uapi.rs encodes size_of::<T>() of the matching struct,
    // and `arg` is a valid, exclusively borrowed T for the duration of the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, arg as *mut T) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl AccelDev {
    /// Opens `/dev/virtio-accel<index>`.
    pub fn open(index: u32) -> io::Result<Self> {
        let path = format!("/dev/virtio-accel{index}");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
        Ok(AccelDev { file, path })
    }

    pub fn info(&self) -> io::Result<Info> {
        let mut i = Info::default();
        ioctl(&self.file, uapi::IOC_INFO, &mut i)?;
        Ok(i)
    }

    pub fn stats(&self) -> io::Result<Stats> {
        let mut s = Stats::default();
        ioctl(&self.file, uapi::IOC_STATS, &mut s)?;
        Ok(s)
    }

    pub fn session_create(&self, key: &[u8]) -> io::Result<u64> {
        let mut s = Session {
            algo: uapi::CRYPTO_AES_GCM,
            key_len: key.len() as u32,
            key: key.as_ptr() as u64,
            handle: 0,
        };
        ioctl(&self.file, uapi::IOC_SESSION_CREATE, &mut s)?;
        Ok(s.handle)
    }

    pub fn session_destroy(&self, handle: u64) -> io::Result<()> {
        let mut s = Session {
            handle,
            ..Default::default()
        };
        ioctl(&self.file, uapi::IOC_SESSION_DESTROY, &mut s)
    }

    pub fn sa_add(&self, sa: &mut Sa) -> io::Result<u64> {
        ioctl(&self.file, uapi::IOC_SA_ADD, sa)?;
        Ok(sa.handle)
    }

    pub fn sa_remove(&self, handle: u64) -> io::Result<()> {
        let mut q = SaQuery {
            handle,
            ..Default::default()
        };
        ioctl(&self.file, uapi::IOC_SA_REMOVE, &mut q)
    }

    pub fn sa_query(&self, handle: u64) -> io::Result<SaQuery> {
        let mut q = SaQuery {
            handle,
            ..Default::default()
        };
        ioctl(&self.file, uapi::IOC_SA_QUERY, &mut q)?;
        Ok(q)
    }

    /// Raw batch ioctl over prepared `Op`s (pointers must stay valid during the call).
    pub fn batch_raw(&self, ops: &mut [Op]) -> io::Result<u32> {
        let mut b = Batch {
            count: ops.len() as u32,
            completed_ok: 0,
            ops: ops.as_mut_ptr() as u64,
        };
        ioctl(&self.file, uapi::IOC_BATCH, &mut b)?;
        Ok(b.completed_ok)
    }

    /// Maps the file's buffer area (`len` bytes, fixed by the first call on this file).
    pub fn map_area(&self, len: usize) -> io::Result<Area> {
        // SAFETY: a new shared mapping chosen by the kernel (no address hint), checked for
        // MAP_FAILED below; it is unmapped exactly once, by Area's Drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                self.file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Area {
            ptr: ptr.cast(),
            len,
        })
    }

    /// Runs `ops` (flagged [`uapi::OP_F_MAPPED`], offsets into `area`) as one batch: the device
    /// reads and writes the area directly. Borrowing the area mutably keeps every slice of it
    /// out of the way while the device writes.
    pub fn batch_mapped(&self, area: &mut Area, ops: &mut [Op]) -> io::Result<u32> {
        let _ = area;
        self.batch_raw(ops)
    }

    /// Runs `ops` as one batch; each op's `dst` is truncated to the bytes written.
    pub fn batch(&self, ops: &mut [DataOp]) -> io::Result<u32> {
        let mut raw: Vec<Op> = ops
            .iter_mut()
            .map(|o| {
                let mut iv = [0u8; 16];
                iv[..12].copy_from_slice(&o.iv);
                Op {
                    opcode: o.opcode,
                    flags: 0,
                    handle: o.handle,
                    algo: o.algo,
                    level: o.level,
                    tag_len: o.tag_len,
                    aad_len: o.aad.len() as u32,
                    aad: o.aad.as_ptr() as u64,
                    src: o.src.as_ptr() as u64,
                    dst: o.dst.as_mut_ptr() as u64,
                    src_len: o.src.len() as u32,
                    dst_len: o.dst.len() as u32,
                    iv,
                    status: 0,
                    error: 0,
                }
            })
            .collect();
        let ok = self.batch_raw(&mut raw)?;
        for (o, r) in ops.iter_mut().zip(raw.iter()) {
            o.status = r.status;
            o.error = r.error;
            o.out_len = r.dst_len;
            if r.status == uapi::status::OK {
                o.dst.truncate(r.dst_len as usize);
            }
        }
        Ok(ok)
    }

    /// (De)compresses through the in-kernel crypto API by algorithm or driver name, `iterations`
    /// times; returns (output, driver used, elapsed ns).
    pub fn kcomp(
        &self,
        alg: &str,
        decompress: bool,
        src: &[u8],
        cap: usize,
        iterations: u32,
    ) -> io::Result<(Vec<u8>, String, u64)> {
        let mut out = vec![0u8; cap];
        let mut k = Kcomp::default();
        let n = alg.len().min(63);
        k.alg[..n].copy_from_slice(&alg.as_bytes()[..n]);
        k.decompress = decompress as u32;
        k.src_len = src.len() as u32;
        k.src = src.as_ptr() as u64;
        k.dst = out.as_mut_ptr() as u64;
        k.dst_len = cap as u32;
        k.iterations = iterations;
        ioctl(&self.file, uapi::IOC_KCOMP, &mut k)?;
        let driver = cstr(&k.driver);
        if k.error != 0 {
            return Err(io::Error::new(
                io::Error::from_raw_os_error(-k.error).kind(),
                format!(
                    "{alg} via {driver}: {}",
                    io::Error::from_raw_os_error(-k.error)
                ),
            ));
        }
        out.truncate(k.dst_len as usize);
        Ok((out, driver, k.elapsed_ns))
    }
}

/// A NUL-terminated byte array as a String.
pub fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}
