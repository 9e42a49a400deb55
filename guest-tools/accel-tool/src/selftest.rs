//! `accel-tool selftest`: known-answer and cross-checks of the device through AF_ALG, through
//! the character device and through the in-kernel acomp API, against the guest's own software
//! implementations; the driver's statistics must show the device did the work.

use std::io;

use crate::afalg::AeadTfm;
use crate::dev::{AccelDev, DataOp};
use crate::uapi::{self, Op, Stats, op, status};
use crate::util::{Rng, best_driver, hex, proc_crypto, text_like, to_hex};

/// Software GCM by driver name (no AES-NI, no device).
pub const SW_GCM: &str = "gcm_base(ctr(aes-generic),ghash-generic)";
pub const SW_RFC4106: &str = "rfc4106(gcm_base(ctr(aes-generic),ghash-generic))";
pub const DEV_GCM: &str = "virtio_accel-gcm-aes";

// McGrew & Viega GCM test cases 2, 4 and 16.
const TC_PT: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
const TC_AAD: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
const TC_IV: &str = "cafebabefacedbaddecaf888";
struct Kat {
    name: &'static str,
    key: &'static str,
    iv: &'static str,
    aad: &'static str,
    pt: &'static str,
    ct: &'static str,
    tag: &'static str,
}
const KATS: [Kat; 3] = [
    Kat {
        name: "GCM TC2 AES-128",
        key: "00000000000000000000000000000000",
        iv: "000000000000000000000000",
        aad: "",
        pt: "00000000000000000000000000000000",
        ct: "0388dace60b6a392f328c2b971b2fe78",
        tag: "ab6e47d42cec13bdf53a67b21257bddf",
    },
    Kat {
        name: "GCM TC4 AES-128",
        key: "feffe9928665731c6d6a8f9467308308",
        iv: TC_IV,
        aad: TC_AAD,
        pt: TC_PT,
        ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
        tag: "5bc94fbc3221a5db94fae95ae7121a47",
    },
    Kat {
        name: "GCM TC16 AES-256",
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        iv: TC_IV,
        aad: TC_AAD,
        pt: TC_PT,
        ct: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        tag: "76fc6ece0f4e1768cddf8853bb2d551b",
    },
];

struct Checker {
    pass: usize,
    fail: usize,
}

impl Checker {
    fn check(&mut self, name: &str, ok: bool, detail: impl FnOnce() -> String) {
        if ok {
            self.pass += 1;
            println!("PASS {name}");
        } else {
            self.fail += 1;
            println!("FAIL {name}: {}", detail());
        }
    }

    fn result<T>(&mut self, name: &str, r: io::Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.check(name, false, || e.to_string());
                None
            }
        }
    }
}

fn af_alg_encrypt(
    name: &str,
    key: &[u8],
    tag: usize,
    iv: &[u8],
    aad: &[u8],
    pt: &[u8],
) -> io::Result<Vec<u8>> {
    let t = AeadTfm::new(name, key, tag)?;
    let mut out = Vec::new();
    t.op()?.crypt(true, iv, aad, pt, &mut out)?;
    Ok(out[aad.len()..].to_vec())
}

fn af_alg_decrypt(
    name: &str,
    key: &[u8],
    tag: usize,
    iv: &[u8],
    aad: &[u8],
    ct: &[u8],
) -> io::Result<Vec<u8>> {
    let t = AeadTfm::new(name, key, tag)?;
    let mut out = Vec::new();
    t.op()?.crypt(false, iv, aad, ct, &mut out)?;
    Ok(out[aad.len()..].to_vec())
}

fn delta(a: &Stats, b: &Stats, i: usize) -> u64 {
    b.ops[i] - a.ops[i]
}

fn check_proc_crypto(c: &mut Checker, info: &uapi::Info) {
    let entries = proc_crypto();
    let mut want = Vec::new();
    if info.services & 1 != 0 {
        want.push(("gcm(aes)", "virtio_accel-gcm-aes"));
        want.push(("rfc4106(gcm(aes))", "virtio_accel-rfc4106-gcm-aes"));
    }
    if info.services & 2 != 0 {
        want.push(("deflate", "virtio_accel-deflate"));
        want.push(("lz4", "virtio_accel-lz4"));
    }
    for (name, driver) in want {
        let e = entries.iter().find(|e| e.driver == driver);
        c.check(
            &format!("/proc/crypto {driver} selftest passed"),
            e.is_some_and(|e| e.name == name && e.selftest == "passed"),
            || format!("{e:?}"),
        );
        let best = best_driver(&entries, name);
        c.check(
            &format!("/proc/crypto {name} resolves to {driver}"),
            best.as_ref().is_some_and(|b| b.driver == driver),
            || format!("best is {best:?}"),
        );
    }
}

fn afalg_tests(c: &mut Checker, dev: &AccelDev) {
    let s0 = dev.stats().unwrap_or_default();
    let mut n_enc = 0;
    for k in &KATS {
        let (key, iv, aad, pt) = (hex(k.key), hex(k.iv), hex(k.aad), hex(k.pt));
        let mut expect = hex(k.ct);
        expect.extend(hex(k.tag));
        for tag in [16usize, 12, 8] {
            let want = [&expect[..pt.len()], &expect[pt.len()..pt.len() + tag]].concat();
            let r = af_alg_encrypt("gcm(aes)", &key, tag, &iv, &aad, &pt);
            n_enc += 1;
            if let Some(got) = c.result(&format!("AF_ALG gcm(aes) {} tag {tag}", k.name), r) {
                c.check(
                    &format!("AF_ALG gcm(aes) {} tag {tag} known answer", k.name),
                    got == want,
                    || format!("got {} want {}", to_hex(&got), to_hex(&want)),
                );
            }
            let r = af_alg_decrypt("gcm(aes)", &key, tag, &iv, &aad, &want);
            if let Some(got) = c.result(&format!("AF_ALG gcm(aes) {} decrypt", k.name), r) {
                c.check(
                    &format!("AF_ALG gcm(aes) {} tag {tag} decrypt", k.name),
                    got == pt,
                    || to_hex(&got),
                );
            }
        }
        let mut bad = expect.clone();
        *bad.last_mut().unwrap() ^= 0x80;
        let r = af_alg_decrypt("gcm(aes)", &key, 16, &iv, &aad, &bad);
        c.check(
            &format!("AF_ALG gcm(aes) {} tampered tag -> EBADMSG", k.name),
            matches!(&r, Err(e) if e.raw_os_error() == Some(libc::EBADMSG)),
            || format!("{r:?}"),
        );
    }
    let s1 = dev.stats().unwrap_or_default();
    c.check(
        "AF_ALG gcm(aes) ran on the device (driver stats)",
        delta(&s0, &s1, 0) >= n_enc && s1.auth_failures > s0.auth_failures,
        || format!("encrypt ops +{}, expected >= {n_enc}", delta(&s0, &s1, 0)),
    );

    // Random cross-checks against the guest's software GCM and AES-NI, every key size.
    let mut rng = Rng::new(0x5eed);
    let aesni = AeadTfm::new("generic-gcm-aesni", &[0; 16], 16).is_ok();
    for &klen in &[16usize, 24, 32] {
        for &len in &[0usize, 1, 15, 16, 17, 255, 1500, 4096, 65536] {
            for &alen in &[0usize, 13, 20] {
                let (key, iv, aad, pt) = (
                    rng.bytes(klen),
                    rng.bytes(12),
                    rng.bytes(alen),
                    rng.bytes(len),
                );
                let name = format!("AF_ALG key {klen} len {len} aad {alen}");
                let (Some(d), Some(s)) = (
                    c.result(&name, af_alg_encrypt(DEV_GCM, &key, 16, &iv, &aad, &pt)),
                    c.result(&name, af_alg_encrypt(SW_GCM, &key, 16, &iv, &aad, &pt)),
                ) else {
                    continue;
                };
                let mut ok = d == s;
                if aesni {
                    ok &= af_alg_encrypt("generic-gcm-aesni", &key, 16, &iv, &aad, &pt)
                        .is_ok_and(|a| a == d);
                }
                ok &= af_alg_decrypt(SW_GCM, &key, 16, &iv, &aad, &d).is_ok_and(|p| p == pt);
                ok &= af_alg_decrypt(DEV_GCM, &key, 16, &iv, &aad, &s).is_ok_and(|p| p == pt);
                c.check(&format!("{name} == software"), ok, || "mismatch".into());
            }
        }
    }

    // rfc4106 as xfrm uses it: key+salt 20/28/36, assoclen 16/20 (SPI, seq[, ESN hi] + IV).
    for &klen in &[20usize, 28, 36] {
        for &alen in &[16usize, 20] {
            for &tag in &[8usize, 12, 16] {
                let (key, iv) = (rng.bytes(klen), rng.bytes(8));
                let mut aad = rng.bytes(alen - 8);
                aad.extend_from_slice(&iv);
                let pt = rng.bytes(1400);
                let name = format!("AF_ALG rfc4106 key {klen} assoc {alen} icv {tag}");
                let d = c.result(
                    &name,
                    af_alg_encrypt("rfc4106(gcm(aes))", &key, tag, &iv, &aad, &pt),
                );
                let s = c.result(&name, af_alg_encrypt(SW_RFC4106, &key, tag, &iv, &aad, &pt));
                if let (Some(d), Some(s)) = (d, s) {
                    let back = af_alg_decrypt(SW_RFC4106, &key, tag, &iv, &aad, &d);
                    c.check(
                        &format!("{name} == software"),
                        d == s && back.is_ok_and(|p| p == pt),
                        || "mismatch".into(),
                    );
                }
            }
        }
    }
}

fn crypto_op(opcode: u32, handle: u64, k: &Kat, tag: usize, src: Vec<u8>, cap: usize) -> DataOp {
    DataOp {
        opcode,
        handle,
        tag_len: tag as u32,
        iv: hex(k.iv).try_into().unwrap(),
        aad: hex(k.aad),
        src,
        dst: vec![0; cap],
        ..Default::default()
    }
}

fn chardev_crypto_tests(c: &mut Checker, dev: &AccelDev) {
    for k in &KATS[1..] {
        let Some(h) = c.result("chardev session create", dev.session_create(&hex(k.key))) else {
            return;
        };
        let pt = hex(k.pt);
        let mut want = hex(k.ct);
        want.extend(hex(k.tag));
        let mut ops = vec![
            crypto_op(op::ENCRYPT, h, k, 16, pt.clone(), pt.len() + 16),
            crypto_op(op::DECRYPT, h, k, 16, want.clone(), pt.len()),
            crypto_op(op::ENCRYPT, h, k, 8, pt.clone(), pt.len() + 8),
            crypto_op(op::ENCRYPT, h, k, 16, pt.clone(), 10),
        ];
        let mut bad = want.clone();
        bad[3] ^= 1;
        ops.push(crypto_op(op::DECRYPT, h, k, 16, bad, pt.len()));
        ops.push(crypto_op(op::ENCRYPT, h ^ 0x4000, k, 16, pt.clone(), 100));
        if c.result("chardev batch", dev.batch(&mut ops)).is_none() {
            return;
        }
        let n = k.name;
        c.check(&format!("chardev {n} encrypt"), ops[0].dst == want, || {
            format!("{:?} {}", ops[0].status, to_hex(&ops[0].dst))
        });
        c.check(&format!("chardev {n} decrypt"), ops[1].dst == pt, || {
            format!("{ops:?}")
        });
        c.check(
            &format!("chardev {n} 8-byte tag"),
            ops[2].dst == [&want[..pt.len()], &want[pt.len()..pt.len() + 8]].concat(),
            || format!("{:?}", ops[2]),
        );
        c.check(
            &format!("chardev {n} output too small"),
            ops[3].status == status::OUTPUT_TOO_SMALL && ops[3].out_len as usize == pt.len() + 16,
            || format!("{:?}", ops[3]),
        );
        c.check(
            &format!("chardev {n} tampered -> AUTH_FAILED"),
            ops[4].status == status::AUTH_FAILED && ops[4].error == -libc::EBADMSG,
            || format!("{:?}", ops[4]),
        );
        c.check(
            &format!("chardev {n} foreign session -> ENOKEY"),
            ops[5].status == status::NOT_RUN && ops[5].error == -libc::ENOKEY,
            || format!("{:?}", ops[5]),
        );
        c.check(
            "chardev session destroy",
            dev.session_destroy(h).is_ok(),
            || "failed".into(),
        );
        let r = dev.session_destroy(h);
        c.check(
            "chardev destroy twice -> ENOENT",
            matches!(&r, Err(e) if e.raw_os_error() == Some(libc::ENOENT)),
            || format!("{r:?}"),
        );
    }

    // Bad user input: errno, never a crash.
    let mut none: [Op; 0] = [];
    let r = dev.batch_raw(&mut none);
    c.check(
        "chardev empty batch -> EINVAL",
        matches!(&r, Err(e) if e.raw_os_error() == Some(libc::EINVAL)),
        || format!("{r:?}"),
    );
    let mut many = vec![Op::default(); uapi::MAX_BATCH + 1];
    let r = dev.batch_raw(&mut many);
    c.check(
        "chardev oversized batch -> EINVAL",
        matches!(&r, Err(e) if e.raw_os_error() == Some(libc::EINVAL)),
        || format!("{r:?}"),
    );
    let mut badptr = [Op {
        opcode: op::COMPRESS,
        algo: uapi::COMP_DEFLATE,
        src: 0x10,
        src_len: 100,
        dst: 0x20,
        dst_len: 100,
        ..Default::default()
    }];
    let r = dev.batch_raw(&mut badptr);
    c.check(
        "chardev bad pointer -> EFAULT",
        r.is_ok() && badptr[0].error == -libc::EFAULT,
        || format!("{r:?} {:?}", badptr[0]),
    );
    let mut huge = [Op {
        opcode: op::COMPRESS,
        algo: uapi::COMP_DEFLATE,
        src_len: u32::MAX,
        dst_len: 16,
        ..Default::default()
    }];
    let r = dev.batch_raw(&mut huge);
    c.check(
        "chardev oversized op -> E2BIG",
        r.is_ok() && huge[0].error == -libc::E2BIG,
        || format!("{r:?} {:?}", huge[0]),
    );
    let r = dev.session_create(&[0; 17]);
    c.check(
        "chardev bad key length -> EINVAL",
        matches!(&r, Err(e) if e.raw_os_error() == Some(libc::EINVAL)),
        || format!("{r:?}"),
    );
}

/// One op on the mmap()ed area: (offset, length) of aad, src and dst.
pub fn mapped_op(
    opcode: u32,
    handle: u64,
    iv: &[u8],
    aad: (u64, usize),
    src: (u64, usize),
    dst: (u64, usize),
) -> Op {
    let mut ivb = [0u8; 16];
    ivb[..iv.len()].copy_from_slice(iv);
    Op {
        opcode,
        flags: uapi::OP_F_MAPPED,
        handle,
        tag_len: if handle != 0 { 16 } else { 0 },
        aad: aad.0,
        aad_len: aad.1 as u32,
        src: src.0,
        src_len: src.1 as u32,
        dst: dst.0,
        dst_len: dst.1 as u32,
        iv: ivb,
        ..Default::default()
    }
}

/// The mmap()ed buffer area (ops flagged OP_F_MAPPED): the mapping rules, a known-answer test,
/// 64 KiB requests (which the device serves in place) cross-checked against the bounced path,
/// and offsets outside the area.
fn chardev_mapped_tests(c: &mut Checker, dev: &AccelDev) {
    const LEN: usize = 1 << 20;
    let mut lz = [mapped_op(
        op::COMPRESS,
        0,
        &[],
        (0, 0),
        (0, 100),
        (4096, 200),
    )];
    lz[0].algo = uapi::COMP_LZ4;
    let r = dev.batch_raw(&mut lz);
    c.check(
        "chardev mapped op before any mmap -> ENXIO",
        r.is_ok() && lz[0].error == -libc::ENXIO,
        || format!("{r:?} {:?}", lz[0]),
    );
    let r = dev.map_area(uapi::AREA_MAX + 4096);
    c.check(
        "chardev area above the limit -> ENOMEM",
        matches!(&r, Err(e) if e.raw_os_error() == Some(libc::ENOMEM)),
        || format!("{:?}", r.err()),
    );
    let Some(mut area) = c.result("chardev map area", dev.map_area(LEN)) else {
        return;
    };
    c.check(
        "chardev area starts zeroed",
        area.bytes().iter().all(|&b| b == 0),
        || "stale bytes".into(),
    );
    let r = dev.map_area(2 * LEN);
    c.check(
        "chardev larger second mapping -> EINVAL",
        matches!(&r, Err(e) if e.raw_os_error() == Some(libc::EINVAL)),
        || format!("{:?}", r.err()),
    );
    if let Some(again) = c.result("chardev second mapping", dev.map_area(LEN / 2)) {
        area.bytes_mut()[5] = 0x5a;
        c.check(
            "chardev mappings share the area",
            again.bytes()[5] == 0x5a,
            || "not shared".into(),
        );
    }

    // Known answer: AAD, plaintext, ciphertext and its decryption all in the area.
    let k = &KATS[2];
    let Some(h) = c.result("chardev mapped session", dev.session_create(&hex(k.key))) else {
        return;
    };
    let (iv, aad, pt) = (hex(k.iv), hex(k.aad), hex(k.pt));
    let mut want = hex(k.ct);
    want.extend(hex(k.tag));
    let n = pt.len();
    area.bytes_mut()[..aad.len()].copy_from_slice(&aad);
    area.bytes_mut()[4096..][..n].copy_from_slice(&pt);
    let mut ops = [mapped_op(
        op::ENCRYPT,
        h,
        &iv,
        (0, aad.len()),
        (4096, n),
        (8192, n + 16),
    )];
    let r = dev.batch_mapped(&mut area, &mut ops);
    c.check(
        "chardev mapped GCM TC16 encrypt",
        r.is_ok() && ops[0].status == status::OK && area.bytes()[8192..][..n + 16] == want[..],
        || format!("{r:?} {:?}", ops[0]),
    );
    let mut ops = [mapped_op(
        op::DECRYPT,
        h,
        &iv,
        (0, aad.len()),
        (8192, n + 16),
        (12288, n),
    )];
    let r = dev.batch_mapped(&mut area, &mut ops);
    c.check(
        "chardev mapped GCM TC16 decrypt",
        r.is_ok() && ops[0].dst_len as usize == n && area.bytes()[12288..][..n] == pt[..],
        || format!("{r:?} {:?}", ops[0]),
    );

    // 64 KiB: one contiguous run each way, the device's in-place path; the bounced path on
    // the same input must agree byte for byte.
    const BIG: usize = 65536;
    let mut rng = Rng::new(64);
    let data = rng.bytes(BIG);
    let text = text_like(BIG, 65);
    area.bytes_mut()[0x10000..][..BIG].copy_from_slice(&data);
    area.bytes_mut()[0x70000..][..BIG].copy_from_slice(&text);
    let cap = BIG + BIG / 255 + 16;
    let mut z = mapped_op(op::COMPRESS, 0, &[], (0, 0), (0x70000, BIG), (0x90000, cap));
    z.algo = uapi::COMP_LZ4;
    let mut ops = [
        mapped_op(
            op::ENCRYPT,
            h,
            &iv,
            (0, 0),
            (0x10000, BIG),
            (0x30000, BIG + 16),
        ),
        z,
    ];
    let r = dev.batch_mapped(&mut area, &mut ops);
    let mut bounced = vec![
        DataOp {
            opcode: op::ENCRYPT,
            handle: h,
            tag_len: 16,
            iv: iv.clone().try_into().unwrap(),
            src: data.clone(),
            dst: vec![0; BIG + 16],
            ..Default::default()
        },
        comp_op(op::COMPRESS, uapi::COMP_LZ4, &text, cap),
    ];
    let rb = dev.batch(&mut bounced);
    let zlen = ops[1].dst_len as usize;
    c.check(
        "chardev mapped 64 KiB encrypt == bounced",
        r.is_ok()
            && rb.is_ok()
            && ops[0].status == status::OK
            && area.bytes()[0x30000..][..BIG + 16] == bounced[0].dst[..],
        || format!("{r:?} {rb:?} {:?}", ops[0]),
    );
    c.check(
        "chardev mapped 64 KiB LZ4 == bounced",
        ops[1].status == status::OK && area.bytes()[0x90000..][..zlen] == bounced[1].dst[..],
        || format!("{:?}", ops[1]),
    );
    let mut ops = [mapped_op(
        op::DECRYPT,
        h,
        &iv,
        (0, 0),
        (0x30000, BIG + 16),
        (0x50000, BIG),
    )];
    let r = dev.batch_mapped(&mut area, &mut ops);
    let mut back = vec![comp_op(
        op::DECOMPRESS,
        uapi::COMP_LZ4,
        &area.bytes()[0x90000..][..zlen],
        BIG,
    )];
    let rb = dev.batch(&mut back);
    c.check(
        "chardev mapped 64 KiB round trips",
        r.is_ok()
            && ops[0].status == status::OK
            && area.bytes()[0x50000..][..BIG] == data[..]
            && rb.is_ok()
            && back[0].dst == text,
        || format!("{r:?} {:?} {rb:?} {:?}", ops[0], back[0].status),
    );

    // Offsets outside the area, unknown flags: errno, the op does not run.
    let end = LEN as u64;
    let mut bad = [
        mapped_op(op::ENCRYPT, h, &iv, (0, 0), (end - 10, 100), (0, 200)),
        mapped_op(op::ENCRYPT, h, &iv, (0, 0), (0, 100), (end, 200)),
        mapped_op(
            op::ENCRYPT,
            h,
            &iv,
            (u64::MAX - 8, 16),
            (0, 100),
            (4096, 200),
        ),
        mapped_op(op::ENCRYPT, h, &iv, (0, 0), (0, 100), (4096, 200)),
    ];
    bad[3].flags |= 2;
    let r = dev.batch_mapped(&mut area, &mut bad);
    c.check(
        "chardev mapped offsets outside the area -> EFAULT",
        r.is_ok()
            && bad[..3]
                .iter()
                .all(|o| o.error == -libc::EFAULT && o.status == status::NOT_RUN),
        || format!("{r:?} {bad:?}"),
    );
    c.check(
        "chardev unknown op flag -> EINVAL",
        bad[3].error == -libc::EINVAL,
        || format!("{:?}", bad[3]),
    );
    let _ = dev.session_destroy(h);
}

fn comp_op(opcode: u32, algo: u32, src: &[u8], cap: usize) -> DataOp {
    DataOp {
        opcode,
        algo,
        src: src.to_vec(),
        dst: vec![0; cap],
        ..Default::default()
    }
}

fn compression_tests(c: &mut Checker, dev: &AccelDev) {
    // The software lz4 (lz4-scomp) comes from lz4.ko, which nothing else loads.
    let _ = std::process::Command::new("modprobe").arg("lz4").status();
    let inputs = [
        ("text 4K", text_like(4096, 1)),
        ("text 64K", text_like(65536, 2)),
        ("random 3000", Rng::new(3).bytes(3000)),
        ("zeros 32K", vec![0u8; 32768]),
    ];
    for (alg, algo, sw) in [
        ("deflate", uapi::COMP_DEFLATE, "deflate-scomp"),
        ("lz4", uapi::COMP_LZ4, "lz4-scomp"),
    ] {
        for (what, data) in &inputs {
            let cap = data.len() + data.len() / 8 + 1024;
            let name = format!("{alg} {what}");
            // Device compresses, the kernel's software decompresses (and vice versa).
            let mut ops = vec![comp_op(op::COMPRESS, algo, data, cap)];
            if c.result(&name, dev.batch(&mut ops)).is_none() || ops[0].status != status::OK {
                c.check(&format!("chardev {name} compress"), false, || {
                    format!("{:?}", ops[0].status)
                });
                continue;
            }
            let z = ops[0].dst.clone();
            let back = dev.kcomp(sw, true, &z, data.len() + 64, 1);
            c.check(
                &format!("chardev {name} compress -> {sw} decompress"),
                back.as_ref().is_ok_and(|(p, d, _)| p == data && d == sw),
                || format!("{:?}", back.as_ref().map(|(p, d, _)| (p.len(), d.clone()))),
            );
            if let Some((zs, _, _)) = c.result(&name, dev.kcomp(sw, false, data, cap, 1)) {
                let mut ops = vec![comp_op(op::DECOMPRESS, algo, &zs, data.len() + 64)];
                let r = dev.batch(&mut ops);
                c.check(
                    &format!("{sw} compress -> chardev {name} decompress"),
                    r.is_ok() && ops[0].dst == *data,
                    || format!("{:?} {}", ops[0].status, ops[0].dst.len()),
                );
            }
            // The in-kernel acomp user: by algorithm name the crypto API must pick the device.
            let s0 = dev.stats().unwrap_or_default();
            let kz = dev.kcomp(alg, false, data, cap, 1);
            let kp = kz
                .as_ref()
                .ok()
                .map(|(z, _, _)| dev.kcomp(alg, true, z, data.len() + 64, 1));
            let s1 = dev.stats().unwrap_or_default();
            c.check(
                &format!("kernel acomp {name} round trip on virtio_accel-{alg}"),
                matches!((&kz, &kp), (Ok((_, d1, _)), Some(Ok((p, d2, _))))
                    if p == data && *d1 == format!("virtio_accel-{alg}") && d1 == d2)
                    && delta(&s0, &s1, 2) >= 1
                    && delta(&s0, &s1, 3) >= 1,
                || {
                    format!(
                        "{:?} {:?}",
                        kz.as_ref().map(|x| x.1.clone()),
                        kp.map(|x| x.map(|y| y.1))
                    )
                },
            );
        }
    }
    // A corrupt stream is an error, not a crash.
    let mut ops = vec![comp_op(op::DECOMPRESS, uapi::COMP_LZ4, &[0xff; 64], 4096)];
    let r = dev.batch(&mut ops);
    c.check(
        "chardev lz4 corrupt input -> error status",
        r.is_ok() && ops[0].status != status::OK,
        || format!("{:?}", ops[0]),
    );
}

/// An IPv4/UDP packet 198.51.100.1 -> 198.51.100.2 with a valid header checksum.
fn ipv4_udp(payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0x12,
        0x34,
        0x40,
        0,
        64,
        17,
        0,
        0,
        198,
        51,
        100,
        1,
        198,
        51,
        100,
        2,
    ];
    let sum: u32 = p
        .chunks(2)
        .map(|w| u32::from(w[0]) << 8 | u32::from(w[1]))
        .sum();
    let sum = (sum & 0xffff) + (sum >> 16);
    let csum = !((sum & 0xffff) + (sum >> 16)) as u16;
    p[10..12].copy_from_slice(&csum.to_be_bytes());
    let ulen = 8 + payload.len();
    p.extend_from_slice(&[0x30, 0x39, 0x30, 0x3a, (ulen >> 8) as u8, ulen as u8, 0, 0]);
    p.extend_from_slice(payload);
    p
}

fn esp_op(opcode: u32, handle: u64, src: &[u8], cap: usize) -> DataOp {
    DataOp {
        opcode,
        handle,
        src: src.to_vec(),
        dst: vec![0; cap],
        ..Default::default()
    }
}

fn ipsec_tests(c: &mut Checker, dev: &AccelDev) {
    let mut rng = Rng::new(0xe5);
    let mut sa = uapi::Sa {
        spi: 0x1000_0001,
        algo: 1,
        direction: 0,
        mode: 0,
        family: 4,
        icv_len: 16,
        key_len: 16,
        replay_window: 64,
        ..Default::default()
    };
    sa.salt.copy_from_slice(&rng.bytes(4));
    sa.key[..16].copy_from_slice(&rng.bytes(16));
    sa.tunnel_src[..4].copy_from_slice(&[192, 0, 2, 1]);
    sa.tunnel_dst[..4].copy_from_slice(&[192, 0, 2, 2]);
    let mut inb = sa;
    inb.direction = 1;
    let (Some(out_h), Some(in_h)) = (
        c.result("chardev SA add outbound", dev.sa_add(&mut sa)),
        c.result("chardev SA add inbound", dev.sa_add(&mut inb)),
    ) else {
        return;
    };
    let inner = ipv4_udp(&rng.bytes(200));
    let mut ops = vec![esp_op(op::ESP_ENCAP, out_h, &inner, inner.len() + 128)];
    let r = dev.batch(&mut ops);
    let esp = ops[0].dst.clone();
    c.check(
        "chardev ESP encapsulate (tunnel, IPv4)",
        r.is_ok() && ops[0].status == status::OK && esp.len() > inner.len() + 20 + 8 + 16,
        || format!("{r:?} {:?}", ops[0].status),
    );
    let mut ops = vec![
        esp_op(op::ESP_DECAP, in_h, &esp, esp.len()),
        esp_op(op::ESP_DECAP, in_h, &esp, esp.len()),
    ];
    let mut bad = esp.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    ops.insert(0, esp_op(op::ESP_DECAP, in_h, &bad, esp.len()));
    // One op per batch: the replay check depends on the order.
    for o in ops.iter_mut() {
        let _ = dev.batch(std::slice::from_mut(o));
    }
    c.check(
        "chardev ESP tampered ICV -> AUTH_FAILED",
        ops[0].status == status::AUTH_FAILED,
        || format!("{:?}", ops[0].status),
    );
    c.check(
        "chardev ESP decapsulate == inner packet",
        ops[1].dst == inner,
        || format!("{:?} {}", ops[1].status, ops[1].dst.len()),
    );
    c.check(
        "chardev ESP replayed packet -> REPLAY",
        ops[2].status == status::REPLAY,
        || format!("{:?}", ops[2].status),
    );
    let q = dev.sa_query(in_h);
    c.check(
        "chardev SA query counters",
        q.as_ref().is_ok_and(|q| {
            q.packets == 1 && q.auth_failures == 1 && q.replay_drops == 1 && q.last_seq == 1
        }),
        || format!("{q:?}"),
    );
    c.check(
        "chardev SA remove",
        dev.sa_remove(out_h).is_ok() && dev.sa_remove(in_h).is_ok(),
        || "failed".into(),
    );
    let mut ops = vec![esp_op(op::ESP_ENCAP, out_h, &inner, inner.len() + 128)];
    let _ = dev.batch(&mut ops);
    c.check(
        "chardev ESP on a removed SA -> ENOKEY",
        ops[0].error == -libc::ENOKEY,
        || format!("{:?}", ops[0]),
    );
}

pub fn run(index: u32) -> io::Result<bool> {
    let dev = AccelDev::open(index)?;
    let info = dev.info()?;
    let mut c = Checker { pass: 0, fail: 0 };
    let s0 = dev.stats()?;
    check_proc_crypto(&mut c, &info);
    if info.services & 1 != 0 {
        afalg_tests(&mut c, &dev);
        chardev_crypto_tests(&mut c, &dev);
        if info.services & 2 != 0 {
            chardev_mapped_tests(&mut c, &dev);
        }
    }
    if info.services & 2 != 0 {
        compression_tests(&mut c, &dev);
    }
    if info.services & 4 != 0 {
        ipsec_tests(&mut c, &dev);
    }
    let s1 = dev.stats()?;
    let total: u64 = (0..4).map(|i| delta(&s0, &s1, i)).sum();
    c.check("driver statistics count the work", total > 100, || {
        format!("{total} ops")
    });
    println!(
        "SELFTEST {} ({} passed, {} failed; device ops during the test: {total})",
        if c.fail == 0 { "PASSED" } else { "FAILED" },
        c.pass,
        c.fail
    );
    Ok(c.fail == 0)
}

/// A quick end-to-end check (used between module reloads): one AF_ALG gcm(aes) encryption
/// compared with software, one char-device LZ4 round trip; the statistics must move.
pub fn smoke(index: u32) -> io::Result<()> {
    let dev = AccelDev::open(index)?;
    let s0 = dev.stats()?;
    let mut rng = Rng::new(7);
    let (key, iv, aad, pt) = (rng.bytes(16), rng.bytes(12), rng.bytes(16), rng.bytes(1024));
    let d = af_alg_encrypt("gcm(aes)", &key, 16, &iv, &aad, &pt)?;
    let s = af_alg_encrypt(SW_GCM, &key, 16, &iv, &aad, &pt)?;
    if d != s {
        return Err(io::Error::other("gcm(aes) differs from software"));
    }
    let data = text_like(8192, 9);
    let mut ops = vec![comp_op(op::COMPRESS, uapi::COMP_LZ4, &data, 9000)];
    dev.batch(&mut ops)?;
    let z = ops[0].dst.clone();
    let mut ops = vec![comp_op(op::DECOMPRESS, uapi::COMP_LZ4, &z, 8192)];
    dev.batch(&mut ops)?;
    if ops[0].dst != data {
        return Err(io::Error::other(format!(
            "lz4 round trip: status {}",
            ops[0].status
        )));
    }
    let s1 = dev.stats()?;
    if delta(&s0, &s1, 0) < 1 || delta(&s0, &s1, 2) < 1 || delta(&s0, &s1, 3) < 1 {
        return Err(io::Error::other("device statistics did not move"));
    }
    println!("SMOKE OK");
    Ok(())
}
