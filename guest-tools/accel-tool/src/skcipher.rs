//! AF_ALG skcipher sockets and the peer benchmark: QEMU's virtio-crypto (Linux's virtio_crypto
//! driver) offers `cbc(aes)` but no AEAD, so the per-request round trip through the crypto API
//! is compared on that. The driver is bound by driver name: virtio_crypto registers at priority
//! 150, below AES-NI's 400, so `cbc(aes)` by name would measure AES-NI instead.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::util::{Rng, hex, proc_crypto, to_hex};

/// AES block size: CBC lengths must be a multiple of it.
const BLOCK: usize = 16;
/// AF_ALG accepts at most this much per request with the default socket buffer; the benchmark
/// sizes stay within it.
pub const MAX_REQUEST: usize = 64 << 10;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A keyed skcipher transform (the bound AF_ALG socket).
pub struct SkcipherTfm {
    sock: OwnedFd,
}

/// One operation socket accepted from the transform; reusable for many requests.
pub struct SkcipherOp {
    fd: OwnedFd,
}

/// Fails with a clear message unless `driver` is registered (and self-tested) as `name`.
pub fn require_driver(name: &str, driver: &str) -> io::Result<()> {
    let all = proc_crypto();
    match all.iter().find(|e| e.driver == driver) {
        None => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "crypto driver {driver} is not registered (see /proc/crypto): is its module loaded \
                 (modprobe virtio_crypto) and a device present?"
            ),
        )),
        Some(e) if e.name != name => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("crypto driver {driver} implements {}, not {name}", e.name),
        )),
        Some(e) if e.selftest != "passed" => Err(io::Error::other(format!(
            "crypto driver {driver} did not pass its self-test ({})",
            e.selftest
        ))),
        Some(_) => Ok(()),
    }
}

impl SkcipherTfm {
    /// Binds `alg` (an algorithm or driver name) and sets the key.
    pub fn new(alg: &str, key: &[u8]) -> io::Result<Self> {
        let sock = crate::afalg::bind_keyed("skcipher", alg, key)?;
        Ok(SkcipherTfm { sock })
    }

    pub fn op(&self) -> io::Result<SkcipherOp> {
        // SAFETY: accept(2) on our bound AF_ALG socket; no peer address is requested.
        let fd = cvt(unsafe {
            libc::accept(
                self.sock.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        })?;
        Ok(SkcipherOp {
            // SAFETY: fd is a fresh descriptor returned by accept.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }
}

impl SkcipherOp {
    /// One request: en- or decrypts `data` with `iv` (16 bytes); the result replaces `out`.
    pub fn crypt(
        &self,
        encrypt: bool,
        iv: &[u8],
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        if iv.len() != BLOCK
            || data.is_empty()
            || !data.len().is_multiple_of(BLOCK)
            || data.len() > MAX_REQUEST
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "skcipher request: IV must be {BLOCK} bytes and data 1..={MAX_REQUEST} bytes in \
                     whole {BLOCK}-byte blocks (got IV {}, data {})",
                    iv.len(),
                    data.len()
                ),
            ));
        }
        // Two control messages: operation and IV (struct af_alg_iv + bytes).
        // SAFETY: CMSG_SPACE only computes sizes.
        let space =
            unsafe { libc::CMSG_SPACE(4) as usize + libc::CMSG_SPACE(4 + BLOCK as u32) as usize };
        let mut cbuf = vec![0u64; space.div_ceil(8)];
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        // SAFETY: msghdr is plain old data; all-zero is valid.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let op: u32 = if encrypt {
            libc::ALG_OP_ENCRYPT as u32
        } else {
            libc::ALG_OP_DECRYPT as u32
        };
        // SAFETY: the control buffer holds `space` bytes, exactly the two headers and payloads
        // written here (CMSG_* walk within msg_controllen).
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_ALG;
            (*c).cmsg_type = libc::ALG_SET_OP;
            (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u32, op);
            c = libc::CMSG_NXTHDR(&msg, c);
            (*c).cmsg_level = libc::SOL_ALG;
            (*c).cmsg_type = libc::ALG_SET_IV;
            (*c).cmsg_len = libc::CMSG_LEN(4 + BLOCK as u32) as usize;
            let p = libc::CMSG_DATA(c);
            std::ptr::write_unaligned(p as *mut u32, BLOCK as u32);
            std::ptr::copy_nonoverlapping(iv.as_ptr(), p.add(4), BLOCK);
        }
        // SAFETY: msg points to live iovec and control buffers.
        let sent = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        if sent as usize != data.len() {
            return Err(io::Error::other(format!(
                "AF_ALG took {sent} of {} bytes",
                data.len()
            )));
        }
        out.clear();
        out.resize(data.len(), 0);
        // SAFETY: out has out.len() writable bytes.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), out.as_mut_ptr().cast(), out.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != data.len() {
            return Err(io::Error::other(format!(
                "AF_ALG returned {n} of {} bytes",
                data.len()
            )));
        }
        Ok(())
    }
}

/// `accel-tool bench --afalg-skcipher NAME --driver DRIVER`: one request at a time through
/// AF_ALG (encrypt), so latency_us is the per-request round trip.
pub fn bench(name: &str, driver: &str, sizes: &[usize], time: Duration) -> io::Result<()> {
    require_driver(name, driver)?;
    if let Some(&bad) = sizes
        .iter()
        .find(|&&s| !s.is_multiple_of(BLOCK) || s > MAX_REQUEST)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("size {bad}: {name} needs whole {BLOCK}-byte blocks, at most {MAX_REQUEST}"),
        ));
    }
    println!(
        "{name} encrypt through AF_ALG by driver name, one request at a time, {time:?} per cell"
    );
    println!(
        "{:<34} {:>7} {:>11} {:>10} {:>12}",
        "path", "size", "ops/s", "MB/s", "latency_us"
    );
    for &size in sizes {
        let mut rng = Rng::new(size as u64);
        let tfm = SkcipherTfm::new(driver, &rng.bytes(16))?;
        let op = tfm.op()?;
        let (iv, data) = (rng.bytes(BLOCK), rng.bytes(size));
        let mut out = Vec::with_capacity(size);
        op.crypt(true, &iv, &data, &mut out)?; // warm-up
        let start = Instant::now();
        let mut ops = 0u64;
        while ops < 3 || start.elapsed() < time {
            op.crypt(true, &iv, &data, &mut out)?;
            ops += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        let per_s = ops as f64 / secs;
        println!(
            "{:<34} {:>7} {:>11.0} {:>10.1} {:>12.2}",
            format!("AF_ALG skcipher {driver}"),
            size,
            per_s,
            per_s * size as f64 / 1e6,
            1e6 / per_s
        );
    }
    Ok(())
}

/// NIST SP 800-38A F.2.1 / F.2.2, CBC-AES128.
const KAT_KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";
const KAT_IV: &str = "000102030405060708090a0b0c0d0e0f";
const KAT_PT: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";
const KAT_CT: &str = "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b273bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7";

/// `accel-tool skcipher-kat --driver DRIVER`: the NIST CBC-AES128 vectors both ways through
/// DRIVER, then random multi-block requests (up to 64 KiB) against the kernel's software
/// `cbc(aes-generic)`. Prints one line per check; Ok(false) when any differs.
pub fn kat(name: &str, driver: &str, reference: &str) -> io::Result<bool> {
    require_driver(name, driver)?;
    let mut ok = true;
    let mut check = |what: String, good: bool| {
        println!("{} {what}", if good { "PASS" } else { "FAIL" });
        ok &= good;
    };
    let op = SkcipherTfm::new(driver, &hex(KAT_KEY))?.op()?;
    let mut out = Vec::new();
    op.crypt(true, &hex(KAT_IV), &hex(KAT_PT), &mut out)?;
    check(
        format!(
            "{driver} NIST SP800-38A CBC-AES128 encrypt: {}",
            to_hex(&out)
        ),
        out == hex(KAT_CT),
    );
    op.crypt(false, &hex(KAT_IV), &hex(KAT_CT), &mut out)?;
    check(
        format!("{driver} NIST SP800-38A CBC-AES128 decrypt"),
        out == hex(KAT_PT),
    );
    let mut rng = Rng::new(0x5eed);
    for size in [16, 64, 1008, 4096, 65536] {
        for key_len in [16, 32] {
            let key = rng.bytes(key_len);
            let (iv, data) = (rng.bytes(BLOCK), rng.bytes(size));
            let dev = SkcipherTfm::new(driver, &key)?.op()?;
            let sw = SkcipherTfm::new(reference, &key)?.op()?;
            let (mut a, mut b, mut back) = (Vec::new(), Vec::new(), Vec::new());
            dev.crypt(true, &iv, &data, &mut a)?;
            sw.crypt(true, &iv, &data, &mut b)?;
            dev.crypt(false, &iv, &a, &mut back)?;
            check(
                format!(
                    "{driver} vs {reference} AES-{} {size} B encrypt, decrypt round trip",
                    key_len * 8
                ),
                a == b && back == data,
            );
        }
    }
    Ok(ok)
}
