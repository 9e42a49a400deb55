//! Encrypt requests served in place (source read from, ciphertext written to guest memory
//! without host copies) against the copy path and an independent computation.

use std::sync::RwLock;
use std::sync::atomic::Ordering;

use super::*;
use crate::virtio::accel::backend::GuestIoError;
use crate::virtio::accel::backend::aead::AeadKey;
use crate::virtio::accel::chain::InPlaceMemory;

const KEY: [u8; 32] = [0x5a; 32];

fn sealed(pt: &[u8], aad: &[u8], iv: &[u8; 12]) -> Vec<u8> {
    let key = AeadKey::new(&KEY).unwrap();
    let mut ct = pt.to_vec();
    let mut tag = [0; 16];
    key.seal(iv, aad, &mut ct, 16, &mut tag).unwrap();
    ct.extend_from_slice(&tag);
    ct
}

/// Sends `req` with its last `tail` bytes in a second readable descriptor (so the device
/// copies it) and `out_len` bytes of output room; returns that output once it completed.
fn split_request(h: &mut Harness, q: u16, req: &[u8], tail: usize, out_len: usize) -> Vec<u8> {
    let cut = req.len() - tail;
    let (r1, r2) = (h.alloc(&req[..cut]), h.alloc(&req[cut..]));
    let (o, t) = (h.alloc_out(out_len), h.alloc_out(8));
    h.push_chain(
        q,
        &[
            (r1, cut as u32, false),
            (r2, (req.len() - cut) as u32, false),
            (o, out_len as u32, true),
            (t, 8, true),
        ],
    );
    h.kick(q);
    assert_eq!(h.wait_used(q, 1).len(), 1);
    let mut out = vec![0; out_len];
    h.mem.read_slice(&mut out, GuestAddress(o)).unwrap();
    out
}

fn plaintext(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + 7) as u8).collect()
}

/// One readable descriptor (in place) and the source split over two (copied), session and
/// stateless keys, inline and on workers: the same ciphertext, tag and trailer.
#[test]
fn in_place_and_copied_encrypts_agree() {
    for workers in [0, 2] {
        let mut h = Harness::new(workers);
        let (_, sess) = h.create_session(&KEY);
        let q = h.queue_index(QueueKind::Crypto);
        for (n, stateless) in [(2048, false), (20000, false), (65536, true), (3000, true)] {
            let (pt, aad, iv) = (plaintext(n), b"header bytes".to_vec(), [n as u8; 12]);
            let key = stateless.then_some(&KEY[..]);
            let req = crypto_req(OP_ENCRYPT, sess, key, &iv, &aad, &pt, 16);
            let expected = sealed(&pt, &aad, &iv);
            // In place: one readable descriptor.
            let d = h.data(QueueKind::Crypto, &req, n + 16);
            assert_eq!((d.status, d.len), (Status::Ok as u32, n as u32 + 16));
            assert_eq!(d.out, expected, "{n} bytes in place, workers {workers}");
            let m = h.dev.metrics();
            let in_place = m.in_place.load(Ordering::Relaxed);
            // Copied: the source crosses a descriptor boundary.
            let out = split_request(&mut h, q, &req, n / 2, n + 16);
            assert_eq!(out, expected, "{n} bytes copied, workers {workers}");
            assert_eq!(m.in_place.load(Ordering::Relaxed), in_place, "copy path");
        }
        // Each first request of the four went in place.
        assert_eq!(h.dev.metrics().in_place.load(Ordering::Relaxed), 4);
    }
}

/// A header (with key and AAD) in descriptors of its own and the source in the last one, as the
/// guest driver's mmap()ed-area ops send it: the source is used in place, also when the header
/// itself is split.
#[test]
fn header_in_its_own_descriptor_leaves_the_source_in_place() {
    for workers in [0, 1] {
        let mut h = Harness::new(workers);
        let (_, sess) = h.create_session(&KEY);
        let q = h.queue_index(QueueKind::Crypto);
        let (pt, aad, iv) = (plaintext(16384), b"aad".to_vec(), [9; 12]);
        let expected = sealed(&pt, &aad, &iv);
        for (key, split) in [(None, 0), (Some(&KEY[..]), 0), (None, 40)] {
            let req = crypto_req(OP_ENCRYPT, sess, key, &iv, &aad, &pt, 16);
            let before = h.dev.metrics().in_place.load(Ordering::Relaxed);
            // Header [+ key] + AAD in the first descriptor (or from byte `split` on in the
            // second, with the source), the source alone in the second.
            let tail = if split > 0 {
                req.len() - split
            } else {
                pt.len()
            };
            let out = split_request(&mut h, q, &req, tail, pt.len() + 16);
            assert_eq!(out, expected, "key {:?} split {split}", key.is_some());
            assert_eq!(
                h.dev.metrics().in_place.load(Ordering::Relaxed),
                before + 1,
                "key {:?} split {split}: in place",
                key.is_some()
            );
        }
    }
}

/// A guest that points the output at its own source (encrypt in place in guest memory) gets
/// the right ciphertext: the device never holds overlapping host references.
#[test]
fn output_aliasing_the_source_is_handled() {
    for workers in [0, 1] {
        let mut h = Harness::new(workers);
        let (_, sess) = h.create_session(&KEY);
        let q = h.queue_index(QueueKind::Crypto);
        let (pt, iv) = (plaintext(8192), [3; 12]);
        let req = crypto_req(OP_ENCRYPT, sess, None, &iv, b"", &pt, 16);
        // Room for the tag right after the request, then the trailer elsewhere.
        let mut padded = req.clone();
        padded.extend_from_slice(&[0; 16]);
        let r = h.alloc(&padded);
        let src = r + size_of::<DataHdr>() as u64;
        let t = h.alloc_out(8);
        h.push_chain(
            q,
            &[
                (r, req.len() as u32, false),
                (src, pt.len() as u32 + 16, true),
                (t, 8, true),
            ],
        );
        h.kick(q);
        let used = h.wait_used(q, 1);
        assert_eq!(used[0].1, pt.len() as u32 + 16 + 8);
        assert_eq!(h.dev.metrics().in_place.load(Ordering::Relaxed), 1);
        let mut out = vec![0; pt.len() + 16];
        h.mem.read_slice(&mut out, GuestAddress(src)).unwrap();
        assert_eq!(out, sealed(&pt, b"", &iv));
    }
}

/// LZ4 compression in place (output room for the worst case) and through the copy path
/// (less room) give the same block, which decompresses to the source.
#[test]
fn lz4_compress_in_place_matches_copy_path() {
    for workers in [0, 1] {
        let mut h = Harness::new(workers);
        let src: Vec<u8> = (0..30000u32)
            .map(|i| b"in place lz4 "[i as usize % 13] ^ (i / 500) as u8)
            .collect();
        let req = comp_req(OP_COMPRESS, COMP_LZ4, 0, &src);
        let bound = lz4_flex::block::get_maximum_output_size(src.len());
        let d = h.data(QueueKind::Compression, &req, bound);
        assert_eq!(d.status, Status::Ok as u32);
        let in_place = d.out[..d.len as usize].to_vec();
        assert_eq!(h.dev.metrics().in_place.load(Ordering::Relaxed), 1);
        assert_eq!(
            lz4_flex::block::decompress(&in_place, src.len()).unwrap(),
            src
        );
        assert!(d.out[d.len as usize..].iter().all(|&b| b == POISON));
        // Less than the worst case: copied, compressed aside, same bytes.
        let d = h.data(QueueKind::Compression, &req, bound - 1);
        assert_eq!(d.status, Status::Ok as u32);
        assert_eq!(&d.out[..d.len as usize], &in_place[..]);
        assert_eq!(h.dev.metrics().in_place.load(Ordering::Relaxed), 1);
    }
}

/// An output area too small for ciphertext and tag is refused before anything is written.
#[test]
fn in_place_output_too_small_writes_nothing() {
    let mut h = Harness::new(1);
    let (_, sess) = h.create_session(&KEY);
    let pt = plaintext(4096);
    let req = crypto_req(OP_ENCRYPT, sess, None, &[1; 12], b"", &pt, 16);
    let d = h.data(QueueKind::Crypto, &req, pt.len() + 15);
    assert_eq!(
        (d.status, d.len),
        (Status::OutputTooSmall as u32, pt.len() as u32 + 16)
    );
    assert!(d.out.iter().all(|&b| b == POISON));
}

/// After a reset (a newer epoch at the gate) an in-place job touches nothing.
#[test]
fn stale_in_place_job_does_not_write() {
    let mem = Arc::new(GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap());
    mem.write_slice(&[7; 64], GuestAddress(0x1000)).unwrap();
    let gate = Arc::new(RwLock::new(0u64));
    let shared = InPlaceMemory::new(mem.clone(), gate.clone());
    let io = shared
        .buffers(0, (GuestAddress(0x1000), 64), (GuestAddress(0x2000), 80))
        .unwrap();
    assert_eq!((io.src_len(), io.out_len()), (64, 80));
    io.with(&mut |src, out| {
        assert_eq!(src, &[7; 64]);
        out.fill(9);
    })
    .unwrap();
    let mut back = [0; 80];
    mem.read_slice(&mut back, GuestAddress(0x2000)).unwrap();
    assert_eq!(back, [9; 80]);
    *gate.write().unwrap() = 1;
    assert_eq!(
        io.with(&mut |_, _| panic!("stale job ran")),
        Err(GuestIoError::Stale)
    );
    // Ranges outside guest memory or across its end are refused up front.
    let beyond = (GuestAddress((1 << 20) - 16), 64);
    assert!(shared.buffers(1, beyond, (GuestAddress(0), 8)).is_none());
    assert!(shared.buffers(1, (GuestAddress(0), 8), beyond).is_none());
}

/// Decrypts of 2 KiB and more in one descriptor run in place: the same plaintext as the copy
/// path, and a bad tag leaves the guest's output area as it was (no plaintext released).
#[test]
fn in_place_decrypt_matches_copy_path_and_releases_nothing_on_a_bad_tag() {
    for workers in [0, 1] {
        let mut h = Harness::new(workers);
        let (_, sess) = h.create_session(&KEY);
        let q = h.queue_index(QueueKind::Crypto);
        for n in [2048, 20000, 65536] {
            let (pt, aad, iv) = (plaintext(n), b"esp header".to_vec(), [n as u8 ^ 1; 12]);
            let ct = sealed(&pt, &aad, &iv);
            let req = crypto_req(OP_DECRYPT, sess, None, &iv, &aad, &ct, 16);
            let before = h.dev.metrics().in_place.load(Ordering::Relaxed);
            let d = h.data(QueueKind::Crypto, &req, n);
            assert_eq!((d.status, d.len), (Status::Ok as u32, n as u32));
            assert_eq!(d.out, pt, "{n} bytes in place, workers {workers}");
            let m = h.dev.metrics();
            assert_eq!(m.in_place.load(Ordering::Relaxed), before + 1);
            // Copied: the ciphertext crosses a descriptor boundary.
            let out = split_request(&mut h, q, &req, n / 2, n);
            assert_eq!(out, pt, "{n} bytes copied, workers {workers}");
            assert_eq!(m.in_place.load(Ordering::Relaxed), before + 1, "copy path");
            // A flipped ciphertext bit: in place, and nothing reaches the output.
            let mut bad = req.clone();
            let last = bad.len() - 17;
            bad[last] ^= 1;
            let d = h.data(QueueKind::Crypto, &bad, n);
            assert_eq!(d.status, Status::AuthFailed as u32, "{n} bytes, bad tag");
            assert!(d.out.iter().all(|&b| b == POISON), "plaintext released");
            assert_eq!(m.in_place.load(Ordering::Relaxed), before + 2);
        }
    }
}
