//! AES-GCM through the device: known answers, tags, sessions, stateless keys.

use super::*;

// McGrew & Viega GCM spec test cases 4 (AES-128) and 16 (AES-256), both with AAD; the
// expected values were cross-checked with OpenSSL through Python's `cryptography`.
const PT: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
const AAD: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
const IV: &str = "cafebabefacedbaddecaf888";
const K128: &str = "feffe9928665731c6d6a8f9467308308";
const CT128: &str = "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091";
const TAG128: &str = "5bc94fbc3221a5db94fae95ae7121a47";
const K256: &str = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
const CT256: &str = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662";
const TAG256: &str = "76fc6ece0f4e1768cddf8853bb2d551b";

fn iv() -> [u8; 12] {
    hex(IV).try_into().unwrap()
}

fn known_answer(workers: usize, key: &str, ct: &str, tag: &str) {
    let mut h = Harness::new(workers);
    let (s, sess) = h.create_session(&hex(key));
    assert_eq!(s, Status::Ok as u32);
    assert_ne!(sess, 0);
    let pt = hex(PT);
    let mut expected = hex(ct);
    expected.extend(hex(tag));
    let req = crypto_req(OP_ENCRYPT, sess, None, &iv(), &hex(AAD), &pt, 16);
    let d = h.data(QueueKind::Crypto, &req, pt.len() + 16);
    assert_eq!(
        (d.status, d.len),
        (Status::Ok as u32, expected.len() as u32)
    );
    assert_eq!(d.out, expected);
    assert_eq!(d.used_len as usize, expected.len() + 8);
    let req = crypto_req(OP_DECRYPT, sess, None, &iv(), &hex(AAD), &expected, 16);
    let d = h.data(QueueKind::Crypto, &req, pt.len());
    assert_eq!((d.status, d.len), (Status::Ok as u32, pt.len() as u32));
    assert_eq!(d.out, pt);
    assert!(h.irq.queue_count() >= 2);
}

#[test]
fn aes128_gcm_known_answer_inline() {
    known_answer(0, K128, CT128, TAG128);
}

#[test]
fn aes256_gcm_known_answer_workers() {
    known_answer(2, K256, CT256, TAG256);
}

#[test]
fn bad_tag_is_auth_failed_and_releases_nothing() {
    let mut h = Harness::new(1);
    let (_, sess) = h.create_session(&hex(K128));
    let mut ct = hex(CT128);
    let mut tag = hex(TAG128);
    tag[15] ^= 0x80;
    ct.extend(tag);
    let req = crypto_req(OP_DECRYPT, sess, None, &iv(), &hex(AAD), &ct, 16);
    let d = h.data(QueueKind::Crypto, &req, 60);
    assert_eq!(
        (d.status, d.len, d.used_len),
        (Status::AuthFailed as u32, 0, 8)
    );
    assert!(
        d.out.iter().all(|b| *b == POISON),
        "no plaintext may be released"
    );
    // A modified AAD fails the same way.
    let mut ct = hex(CT128);
    ct.extend(hex(TAG128));
    let req = crypto_req(OP_DECRYPT, sess, None, &iv(), b"other aad", &ct, 16);
    assert_eq!(
        h.data(QueueKind::Crypto, &req, 60).status,
        Status::AuthFailed as u32
    );
    let m = h.dev.metrics();
    assert_eq!(m.get(&m.auth_failed), 2);
}

#[test]
fn truncated_tags_and_tag_length_rules() {
    let mut h = Harness::new(0);
    let (_, sess) = h.create_session(&hex(K128));
    let pt = hex(PT);
    let req = crypto_req(OP_ENCRYPT, sess, None, &iv(), &hex(AAD), &pt, 8);
    let d = h.data(QueueKind::Crypto, &req, pt.len() + 8);
    assert_eq!(d.status, Status::Ok as u32);
    assert_eq!(
        &d.out[pt.len()..],
        &hex(TAG128)[..8],
        "a short tag is the prefix of the full one"
    );
    let req = crypto_req(OP_DECRYPT, sess, None, &iv(), &hex(AAD), &d.out, 8);
    assert_eq!(h.data(QueueKind::Crypto, &req, pt.len()).out, pt);
    for bad in [0u32, 5, 11, 17] {
        let req = crypto_req(OP_ENCRYPT, sess, None, &iv(), b"", b"x", bad);
        assert_eq!(
            h.data(QueueKind::Crypto, &req, 64).status,
            Status::NotSupp as u32,
            "tag {bad}"
        );
    }
    // Ciphertext shorter than its tag.
    let req = crypto_req(OP_DECRYPT, sess, None, &iv(), b"", &[0; 10], 16);
    assert_eq!(
        h.data(QueueKind::Crypto, &req, 64).status,
        Status::BadMsg as u32
    );
}

#[test]
fn stateless_requests_carry_their_key() {
    let mut h = Harness::new(0);
    let pt = hex(PT);
    let req = crypto_req(OP_ENCRYPT, 0, Some(&hex(K256)), &iv(), &hex(AAD), &pt, 16);
    let d = h.data(QueueKind::Crypto, &req, pt.len() + 16);
    assert_eq!(d.status, Status::Ok as u32);
    assert_eq!(d.out[..pt.len()], hex(CT256)[..]);
    assert_eq!(d.out[pt.len()..], hex(TAG256)[..]);
    // AES-192 is accepted too (Linux's gcm(aes) self-tests use 24-byte keys).
    let req = crypto_req(OP_ENCRYPT, 0, Some(&[7; 24]), &iv(), b"", b"abc", 16);
    assert_eq!(
        h.data(QueueKind::Crypto, &req, 19).status,
        Status::Ok as u32
    );
    // A bad key length in the block.
    let req = crypto_req(OP_ENCRYPT, 0, Some(&[7; 20]), &iv(), b"", b"abc", 16);
    assert_eq!(
        h.data(QueueKind::Crypto, &req, 19).status,
        Status::NotSupp as u32
    );

    // Without the CRYPTO feature negotiated the crypto service is NOTSUPP.
    let mut h = Harness::with(
        0,
        test_config(),
        features_all() & !(1 << VIRTIO_ACCEL_F_CRYPTO),
    );
    let req = crypto_req(OP_ENCRYPT, 0, Some(&hex(K256)), &iv(), b"", b"abc", 16);
    assert_eq!(
        h.data(QueueKind::Crypto, &req, 19).status,
        Status::NotSupp as u32
    );
    // Without the STATELESS feature negotiated the device refuses key-carrying requests.
    let mut h = Harness::with(
        0,
        test_config(),
        features_all() & !(1 << VIRTIO_ACCEL_F_STATELESS),
    );
    let req = crypto_req(OP_ENCRYPT, 0, Some(&hex(K256)), &iv(), b"", b"abc", 16);
    assert_eq!(
        h.data(QueueKind::Crypto, &req, 19).status,
        Status::NotSupp as u32
    );
}

#[test]
fn output_too_small_reports_needed_length() {
    let mut h = Harness::new(0);
    let (_, sess) = h.create_session(&hex(K128));
    let req = crypto_req(OP_ENCRYPT, sess, None, &iv(), b"", &[1; 100], 16);
    let d = h.data(QueueKind::Crypto, &req, 115);
    assert_eq!(
        (d.status, d.len, d.used_len),
        (Status::OutputTooSmall as u32, 116, 8)
    );
    assert!(d.out.iter().all(|b| *b == POISON));
    let d = h.data(QueueKind::Crypto, &req, 116);
    assert_eq!(d.status, Status::Ok as u32);
}

#[test]
fn sessions_are_per_device_and_die_with_destroy_and_reset() {
    let mut a = Harness::new(0);
    let mut b = Harness::new(0);
    let (_, sa) = a.create_session(&hex(K128));
    let (_, sb) = b.create_session(&hex(K128));
    let req = |s| crypto_req(OP_ENCRYPT, s, None, &iv(), b"", b"data", 16);
    // Handles are small counters, so B's handle may equal one of A's; a handle A never issued
    // is unknown to A. (Both devices issued handle 1: prove the tables are separate by
    // destroying in B and still using it in A.)
    assert_eq!(sa, sb);
    let (s, _, _) = b.ctrl(CTRL_DESTROY_SESSION, handle_body(sb).as_slice(), 0);
    assert_eq!(s, Status::Ok as u32);
    assert_eq!(
        a.data(QueueKind::Crypto, &req(sa), 20).status,
        Status::Ok as u32
    );
    assert_eq!(
        b.data(QueueKind::Crypto, &req(sb), 20).status,
        Status::NoSession as u32
    );
    assert_eq!(
        a.data(QueueKind::Crypto, &req(sa + 1000), 20).status,
        Status::NoSession as u32
    );
    let (s, _, _) = b.ctrl(CTRL_DESTROY_SESSION, handle_body(sb).as_slice(), 0);
    assert_eq!(s, Status::NoSession as u32);
    // Reset drops every session.
    assert_eq!(a.dev.session_counts(), (1, 0));
    VirtioDevice::<GuestMemoryMmap>::reset(&mut a.dev);
    assert_eq!(a.dev.session_counts(), (0, 0));
    let mem = a.mem;
    let dev = a.dev;
    let mut a = Harness::activate(mem, dev, features_all()).unwrap();
    assert_eq!(
        a.data(QueueKind::Crypto, &req(sa), 20).status,
        Status::NoSession as u32
    );
    let (_, again) = a.create_session(&hex(K128));
    assert_ne!(again, sa, "handles are not reused after reset");
}

#[test]
fn session_table_full_is_nospc() {
    let cfg = AccelConfig {
        max_sessions: 2,
        ..test_config()
    };
    let mut h = Harness::with(0, cfg, features_all());
    assert_eq!(h.create_session(&[1; 16]).0, Status::Ok as u32);
    assert_eq!(h.create_session(&[1; 16]).0, Status::Ok as u32);
    assert_eq!(h.create_session(&[1; 16]).0, Status::NoSpc as u32);
}

#[test]
fn many_requests_in_flight_all_complete_correctly() {
    let mut h = Harness::new(3);
    let (_, sess) = h.create_session(&hex(K256));
    let q = h.queue_index(QueueKind::Crypto);
    let mut slots = Vec::new();
    for i in 0..20usize {
        // Mixed sizes make workers finish in a different order than submitted.
        let pt: Vec<u8> = (0..(if i % 2 == 0 { 60000 } else { 64 }))
            .map(|j| (i * 7 + j) as u8)
            .collect();
        let mut ivb = [0u8; 12];
        ivb[0] = i as u8;
        let req = crypto_req(OP_ENCRYPT, sess, None, &ivb, b"hdr", &pt, 16);
        let r = h.alloc(&req);
        let o = h.alloc_out(pt.len() + 16 + 8);
        h.push_chain(
            q,
            &[
                (r, req.len() as u32, false),
                (o, (pt.len() + 24) as u32, true),
            ],
        );
        slots.push((ivb, pt, o));
    }
    h.kick(q);
    let used = h.wait_used(q, 20);
    assert_eq!(used.len(), 20);
    let key = super::super::backend::aead::AeadKey::new(&hex(K256)).unwrap();
    for (ivb, pt, o) in slots {
        let mut out = vec![0; pt.len() + 24];
        h.mem.read_slice(&mut out, GuestAddress(o)).unwrap();
        let mut expect = pt.clone();
        let mut tag = [0; 16];
        key.seal(&ivb, b"hdr", &mut expect, 16, &mut tag).unwrap();
        expect.extend_from_slice(&tag);
        assert_eq!(&out[..pt.len() + 16], &expect[..]);
        assert_eq!(
            &out[pt.len() + 16..],
            &[
                0,
                0,
                0,
                0,
                (pt.len() + 16) as u8,
                ((pt.len() + 16) >> 8) as u8,
                0,
                0
            ]
        );
    }
    let m = h.dev.metrics();
    assert_eq!(m.get(&m.requests_ok), 20);
}
