//! Runs one job to completion on the calling thread: the software backend's datapath.

use super::aead::AeadError;
use super::compress::{self, CompressError};
use super::{Job, JobOp, JobResult};
use crate::virtio::accel::protocol::{COMP_DEFLATE, COMP_LZ4, Status};

/// Executes `job` synchronously.
pub fn execute(mut job: Job) -> JobResult {
    execute_in(&mut job)
}

/// Executes `job` synchronously, moving its buffers into the result (the rest of `job` is
/// left as it was): the inline path runs a job without moving it around by value.
pub fn execute_in(job: &mut Job) -> JobResult {
    let src = job.src.clone();
    let cap = job.out_capacity;
    let outcome: Result<(bool, std::ops::Range<usize>), (Status, u32)> = match &job.op {
        JobOp::Encrypt { key, iv, tag_len } => {
            let needed = src.len() + tag_len;
            if needed > cap {
                Err((Status::OutputTooSmall, needed as u32))
            } else {
                let (head, data) = job.buf.split_at_mut(src.start);
                let mut tag = [0u8; 16];
                match key.seal(
                    iv,
                    &head[job.aad.clone()],
                    &mut data[..src.len()],
                    *tag_len,
                    &mut tag,
                ) {
                    Ok(()) => {
                        // The tag goes right after the ciphertext: the output is contiguous.
                        job.buf.truncate(src.end);
                        job.buf.extend_from_slice(&tag[..*tag_len]);
                        Ok((false, src.start..src.start + needed))
                    }
                    Err(e) => Err((aead_status(e), 0)),
                }
            }
        }
        JobOp::EncryptDirect {
            key,
            iv,
            tag_len,
            io,
        } => {
            let needed = src.len() + tag_len;
            if needed > cap.min(io.out_len()) || io.src_len() != src.len() {
                Err((Status::OutputTooSmall, needed as u32))
            } else {
                let aad = &job.buf[job.aad.clone()];
                let mut sealed = Err(AeadError::ShortInput);
                let io_result = io.with(&mut |input, out| {
                    let (ct, rest) = out.split_at_mut(input.len());
                    let mut tag = [0u8; 16];
                    sealed = key.seal_to(iv, aad, input, ct, *tag_len, &mut tag);
                    if sealed.is_ok() {
                        rest[..*tag_len].copy_from_slice(&tag[..*tag_len]);
                    }
                });
                match (io_result, sealed) {
                    // The output is already in the guest: `out` describes the guest area.
                    (Ok(()), Ok(())) => Ok((false, 0..needed)),
                    (Ok(()), Err(e)) => Err((aead_status(e), 0)),
                    (Err(_), _) => Err((Status::Err, 0)),
                }
            }
        }
        JobOp::DecryptDirect {
            key,
            iv,
            tag_len,
            io,
        } => {
            if src.len() < *tag_len || io.src_len() != src.len() {
                Err((Status::BadMsg, 0))
            } else {
                let plain = src.len() - tag_len;
                if plain > cap.min(io.out_len()) {
                    Err((Status::OutputTooSmall, plain as u32))
                } else {
                    let aad = &job.buf[job.aad.clone()];
                    let mut opened = Err(AeadError::ShortInput);
                    let io_result = io.with(&mut |input, out| {
                        let (ct, tag) = input.split_at(plain);
                        opened = key.open_to(iv, aad, ct, tag, &mut out[..plain]);
                    });
                    match (io_result, opened) {
                        (Ok(()), Ok(())) => Ok((false, 0..plain)),
                        (Ok(()), Err(e)) => Err((aead_status(e), 0)),
                        (Err(_), _) => Err((Status::Err, 0)),
                    }
                }
            }
        }
        JobOp::Decrypt { key, iv, tag_len } => {
            if src.len() < *tag_len {
                Err((Status::BadMsg, 0))
            } else {
                let plain = src.len() - tag_len;
                if plain > cap {
                    Err((Status::OutputTooSmall, plain as u32))
                } else {
                    let (head, data) = job.buf.split_at_mut(src.start);
                    let (ct, tag) = data[..src.len()].split_at_mut(plain);
                    match key.open(iv, &head[job.aad.clone()], ct, tag) {
                        Ok(()) => Ok((false, src.start..src.start + plain)),
                        Err(e) => Err((aead_status(e), 0)),
                    }
                }
            }
        }
        JobOp::Compress { algo, level } => {
            let out = spare_of(&mut job.spare, cap);
            let input = &job.buf[src.clone()];
            let r = match *algo {
                COMP_DEFLATE => compress::deflate(input, *level, out),
                COMP_LZ4 if *level == 0 => compress::lz4_compress(input, out),
                COMP_LZ4 => Err(CompressError::Level(*level)),
                _ => Err(CompressError::Level(u32::MAX)),
            };
            r.map(|n| (true, 0..n)).map_err(comp_status)
        }
        JobOp::CompressDirect { algo, level, io } => {
            let bound = lz4_flex::block::get_maximum_output_size(src.len());
            if *algo != COMP_LZ4 || *level != 0 || io.src_len() != src.len() {
                Err((Status::NotSupp, 0))
            } else if bound > cap.min(io.out_len()) {
                Err((Status::OutputTooSmall, bound as u32))
            } else {
                // With room for the worst case LZ4 cannot fail, so no partial output can
                // reach the guest on an error.
                let mut r = Err(CompressError::OutputTooSmall(Some(bound)));
                let io_result = io.with(&mut |input, out| r = compress::lz4_compress(input, out));
                match (io_result, r) {
                    (Ok(()), Ok(n)) => Ok((false, 0..n)),
                    (Ok(()), Err(e)) => Err(comp_status(e)),
                    (Err(_), _) => Err((Status::Err, 0)),
                }
            }
        }
        JobOp::Decompress { algo } => {
            let out = spare_of(&mut job.spare, cap);
            let input = &job.buf[src.clone()];
            let r = match *algo {
                COMP_DEFLATE => compress::inflate(input, out),
                COMP_LZ4 => compress::lz4_decompress(input, out),
                _ => Err(CompressError::Level(u32::MAX)),
            };
            r.map(|n| (true, 0..n)).map_err(comp_status)
        }
        JobOp::EspEncap(sa) | JobOp::EspDecap(sa) => {
            let encap = matches!(job.op, JobOp::EspEncap(_));
            job.spare.clear();
            // A poisoned lock means a worker panicked mid-packet; the SA state is suspect.
            match sa.lock() {
                // Checked first so that a too-small buffer does not burn a sequence number.
                Ok(sa) if sa.max_output(encap, src.len()) > cap => Err((
                    Status::OutputTooSmall,
                    sa.max_output(encap, src.len()) as u32,
                )),
                Ok(mut sa) => sa
                    .process(encap, &job.buf[src.clone()], &mut job.spare)
                    .map_err(|s| (s, 0))
                    .and_then(|()| {
                        let n = job.spare.len();
                        if n > cap {
                            Err((Status::OutputTooSmall, n as u32))
                        } else {
                            Ok((true, 0..n))
                        }
                    }),
                Err(_) => Err((Status::Err, 0)),
            }
        }
    };
    match outcome {
        Ok((in_spare, out)) => {
            let (buf, spare) = (std::mem::take(&mut job.buf), std::mem::take(&mut job.spare));
            let (buf, spare) = if in_spare { (spare, buf) } else { (buf, spare) };
            JobResult {
                token: job.token,
                status: Status::Ok,
                buf,
                out,
                needed: 0,
                spare,
            }
        }
        Err((status, needed)) => JobResult {
            token: job.token,
            status,
            buf: std::mem::take(&mut job.buf),
            out: 0..0,
            needed,
            spare: std::mem::take(&mut job.spare),
        },
    }
}

/// Sizes the spare buffer to `cap` bytes, zero-filling only what was never used before.
fn spare_of(spare: &mut Vec<u8>, cap: usize) -> &mut [u8] {
    if spare.len() < cap {
        spare.resize(cap, 0);
    }
    &mut spare[..cap]
}

fn aead_status(e: AeadError) -> Status {
    match e {
        AeadError::TagMismatch => Status::AuthFailed,
        AeadError::ShortInput => Status::BadMsg,
        AeadError::KeyLength(_) | AeadError::TagLength(_) => Status::NotSupp,
    }
}

fn comp_status(e: CompressError) -> (Status, u32) {
    match e {
        CompressError::OutputTooSmall(n) => (Status::OutputTooSmall, n.unwrap_or(0) as u32),
        CompressError::Corrupt => (Status::DataError, 0),
        CompressError::Level(_) => (Status::NotSupp, 0),
    }
}
