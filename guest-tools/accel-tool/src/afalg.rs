//! AF_ALG AEAD sockets: the way unmodified user space (libkcapi, OpenSSL's afalg engine) reaches
//! the kernel crypto API. An algorithm is bound by name ("gcm(aes)": the highest priority
//! implementation) or by driver name ("generic-gcm-aesni": exactly that one).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An AF_ALG socket of type `kind` ("aead", "skcipher") bound to `name` (an algorithm or driver
/// name), keyed with `key`.
pub fn bind_keyed(kind: &str, name: &str, key: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked and owned below.
    let fd = cvt(unsafe { libc::socket(libc::AF_ALG, libc::SOCK_SEQPACKET, 0) })?;
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_alg is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_alg = unsafe { std::mem::zeroed() };
    sa.salg_family = libc::AF_ALG as u16;
    sa.salg_type[..kind.len()].copy_from_slice(kind.as_bytes());
    if name.len() >= sa.salg_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "algorithm name too long",
        ));
    }
    sa.salg_name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: sa is a valid sockaddr_alg of the size passed.
    cvt(unsafe {
        libc::bind(
            sock.as_raw_fd(),
            &sa as *const _ as *const libc::sockaddr,
            size_of::<libc::sockaddr_alg>() as u32,
        )
    })
    .map_err(|e| io::Error::new(e.kind(), format!("AF_ALG {kind} bind {name}: {e}")))?;
    // SAFETY: key points to key.len() readable bytes.
    cvt(unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_ALG,
            libc::ALG_SET_KEY,
            key.as_ptr().cast(),
            key.len() as u32,
        )
    })
    .map_err(|e| io::Error::new(e.kind(), format!("{name} setkey: {e}")))?;
    Ok(sock)
}

/// A keyed AEAD transform (the bound AF_ALG socket).
pub struct AeadTfm {
    sock: OwnedFd,
    pub authsize: usize,
}

/// One operation socket (accept()ed from the transform); reusable for many requests.
pub struct AeadOp {
    fd: OwnedFd,
    authsize: usize,
}

impl AeadTfm {
    pub fn new(name: &str, key: &[u8], authsize: usize) -> io::Result<Self> {
        let sock = bind_keyed("aead", name, key)?;
        // SAFETY: ALG_SET_AEAD_AUTHSIZE takes no buffer, only the length argument.
        cvt(unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_ALG,
                libc::ALG_SET_AEAD_AUTHSIZE,
                std::ptr::null(),
                authsize as u32,
            )
        })
        .map_err(|e| io::Error::new(e.kind(), format!("{name} authsize {authsize}: {e}")))?;
        Ok(AeadTfm { sock, authsize })
    }

    pub fn op(&self) -> io::Result<AeadOp> {
        // SAFETY: accept(2) on our bound AF_ALG socket; no peer address is requested.
        let fd = cvt(unsafe {
            libc::accept(
                self.sock.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        })?;
        Ok(AeadOp {
            // SAFETY: fd is a fresh descriptor returned by accept.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            authsize: self.authsize,
        })
    }
}

impl AeadOp {
    /// Encrypts or decrypts `assoc || input`; returns `assoc || output` as the kernel writes it
    /// (output = ciphertext || tag on encryption, plaintext on decryption).
    pub fn crypt(
        &self,
        encrypt: bool,
        iv: &[u8],
        assoc: &[u8],
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        let mut data = Vec::with_capacity(assoc.len() + input.len());
        data.extend_from_slice(assoc);
        data.extend_from_slice(input);
        self.crypt_buf(encrypt, iv, assoc.len(), &data, out)
    }

    /// Like [`crypt`](Self::crypt) with the associated data already at the front of `data`.
    pub fn crypt_buf(
        &self,
        encrypt: bool,
        iv: &[u8],
        assoclen: usize,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        let out_len = if encrypt {
            data.len() + self.authsize
        } else {
            data.len()
                .checked_sub(self.authsize)
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?
        };
        // Three control messages: operation, IV (struct af_alg_iv + bytes), assoclen.
        // SAFETY: CMSG_SPACE only computes sizes.
        let space = unsafe {
            libc::CMSG_SPACE(4) as usize * 2 + libc::CMSG_SPACE(4 + iv.len() as u32) as usize
        };
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
        // SAFETY: the control buffer holds `space` bytes, exactly the three headers and
        // payloads written here (CMSG_* walk within msg_controllen).
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_ALG;
            (*c).cmsg_type = libc::ALG_SET_OP;
            (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u32, op);
            c = libc::CMSG_NXTHDR(&msg, c);
            (*c).cmsg_level = libc::SOL_ALG;
            (*c).cmsg_type = libc::ALG_SET_IV;
            (*c).cmsg_len = libc::CMSG_LEN(4 + iv.len() as u32) as usize;
            let p = libc::CMSG_DATA(c);
            std::ptr::write_unaligned(p as *mut u32, iv.len() as u32);
            std::ptr::copy_nonoverlapping(iv.as_ptr(), p.add(4), iv.len());
            c = libc::CMSG_NXTHDR(&msg, c);
            (*c).cmsg_level = libc::SOL_ALG;
            (*c).cmsg_type = libc::ALG_SET_AEAD_ASSOCLEN;
            (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u32, assoclen as u32);
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
        // out_len counts the associated data too (the kernel writes assoc || result). A
        // larger buffer would make recvmsg wait for more input (it loops while space is left).
        out.clear();
        out.resize(out_len, 0);
        // SAFETY: out has out.len() writable bytes.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), out.as_mut_ptr().cast(), out.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        out.truncate(n as usize);
        Ok(())
    }
}
