//! Linux-compatible raw deflate and LZ4 block compression.
//!
//! Linux's `deflate` (crypto/deflate.c) is a raw stream with windowBits 11 for both directions,
//! so our compressor must never emit a distance above 2 KiB; our decompressor uses the full
//! 32 KiB window, a superset that accepts any raw stream. Linux's `lz4` is the bare block
//! format (LZ4_compress_default / LZ4_decompress_safe), which lz4_flex's block API produces.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use lz4_flex::block::CompressTable;

/// Linux crypto/deflate.c: DEFLATE_DEF_WINBITS.
pub const LINUX_DEFLATE_WINDOW_BITS: u8 = 11;
/// Linux crypto/deflate.c uses Z_DEFAULT_COMPRESSION, which zlib maps to level 6.
pub const DEFAULT_DEFLATE_LEVEL: u32 = 6;

/// Why a compression operation failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompressError {
    /// The output buffer cannot hold the result; the payload is the size needed if known.
    #[error("output buffer too small (need {0:?})")]
    OutputTooSmall(Option<usize>),
    /// The compressed input is corrupt or truncated.
    #[error("corrupt compressed input")]
    Corrupt,
    /// The level is out of range for the algorithm.
    #[error("unsupported compression level {0}")]
    Level(u32),
}

thread_local! {
    // zlib state is ~100 KiB to set up; keep one per worker thread and reset it per request.
    static DEFLATE: RefCell<Option<(u32, Compress)>> = const { RefCell::new(None) };
    static INFLATE: RefCell<Option<Decompress>> = const { RefCell::new(None) };
    // LZ4's hash tables (8 KiB for inputs below 64 KiB, 16 KiB above), cleared per request
    // rather than allocated: a fresh table per call went through malloc and free, and when
    // the freed table sat at the top of the heap glibc returned its pages, so the next call
    // faulted them in again (about 1 µs per 64 KiB request in the native bench, depending on
    // heap layout).
    static LZ4_SMALL: RefCell<CompressTable> = RefCell::new(CompressTable::small());
    static LZ4_LARGE: RefCell<CompressTable> = RefCell::new(CompressTable::large());
}

/// Compresses with this thread's LZ4 table for `input`'s size.
fn lz4_with_table(input: &[u8], out: &mut [u8]) -> Result<usize, lz4_flex::block::CompressError> {
    let table = if input.len() < u16::MAX as usize {
        &LZ4_SMALL
    } else {
        &LZ4_LARGE
    };
    table.with_borrow_mut(|t| lz4_flex::block::compress_into_with_table(input, out, t))
}

/// Compresses `input` into `out` as a raw deflate stream with a 2 KiB window; returns the
/// bytes written.
pub fn deflate(input: &[u8], level: u32, out: &mut [u8]) -> Result<usize, CompressError> {
    let level = match level {
        0 => DEFAULT_DEFLATE_LEVEL,
        1..=9 => level,
        n => return Err(CompressError::Level(n)),
    };
    DEFLATE.with_borrow_mut(|slot| {
        let c = match slot {
            Some((l, c)) if *l == level => {
                c.reset();
                c
            }
            _ => {
                let c = Compress::new_with_window_bits(
                    Compression::new(level),
                    false,
                    LINUX_DEFLATE_WINDOW_BITS,
                );
                &mut slot.insert((level, c)).1
            }
        };
        match c.compress(input, out, FlushCompress::Finish) {
            Ok(flate2::Status::StreamEnd) => Ok(c.total_out() as usize),
            Ok(_) => Err(CompressError::OutputTooSmall(None)),
            // zlib reports an internal error only for invalid state; treat as corrupt.
            Err(_) => Err(CompressError::Corrupt),
        }
    })
}

/// Decompresses a complete raw deflate stream (any window up to 32 KiB) into `out`.
pub fn inflate(input: &[u8], out: &mut [u8]) -> Result<usize, CompressError> {
    INFLATE.with_borrow_mut(|slot| {
        let d = match slot {
            Some(d) => {
                d.reset(false);
                d
            }
            None => slot.insert(Decompress::new(false)),
        };
        let r = d.decompress(input, out, FlushDecompress::Finish);
        let produced = d.total_out() as usize;
        match r {
            Ok(flate2::Status::StreamEnd) => Ok(produced),
            // Linux likewise demands Z_STREAM_END; anything short of it is either a full
            // output buffer or an incomplete stream.
            Ok(_) if produced == out.len() => Err(CompressError::OutputTooSmall(None)),
            Ok(_) => Err(CompressError::Corrupt),
            Err(_) => Err(CompressError::Corrupt),
        }
    })
}

/// Compresses `input` as one LZ4 block (no size prefix) into `out`.
///
/// Never inlined: every caller (the device's in-place and copy paths, benches measuring the
/// device against this call) then runs one copy of lz4_flex's loop, whose speed otherwise
/// varies by up to 20 % with where each inlined copy lands (docs/virtio-accel-bench.md).
#[inline(never)]
pub fn lz4_compress(input: &[u8], out: &mut [u8]) -> Result<usize, CompressError> {
    let bound = lz4_flex::block::get_maximum_output_size(input.len());
    if out.len() >= bound {
        return lz4_with_table(input, out).map_err(|_| CompressError::OutputTooSmall(Some(bound)));
    }
    // Smaller than the worst case: compress aside and see whether it fits.
    let mut tmp = vec![0u8; bound];
    let n =
        lz4_with_table(input, &mut tmp).map_err(|_| CompressError::OutputTooSmall(Some(bound)))?;
    let dst = out
        .get_mut(..n)
        .ok_or(CompressError::OutputTooSmall(Some(n)))?;
    dst.copy_from_slice(&tmp[..n]);
    Ok(n)
}

/// Decompresses one LZ4 block into `out`.
pub fn lz4_decompress(input: &[u8], out: &mut [u8]) -> Result<usize, CompressError> {
    lz4_flex::block::decompress_into(input, out).map_err(|e| match e {
        lz4_flex::block::DecompressError::OutputTooSmall { .. } => {
            CompressError::OutputTooSmall(None)
        }
        _ => CompressError::Corrupt,
    })
}
