//! Deflate and LZ4 through the device, and their compatibility with Linux's formats.

use super::*;

const PLAIN: &[u8] = include_bytes!("../testdata/deflate_plain.txt");
/// Produced by zlib with Linux crypto/deflate.c's parameters: raw, windowBits 11, memLevel 8.
const ZLIB_WBITS11: &[u8] = include_bytes!("../testdata/deflate_wbits11.bin");
/// The same text with a 32 KiB window: it contains distances above 2 KiB.
const ZLIB_WBITS15: &[u8] = include_bytes!("../testdata/deflate_wbits15.bin");

/// Inflates with the independent decoder and fails if any match reaches back more than
/// 2048 bytes (Linux's deflate window).
fn inflate_window_11(stream: &[u8]) -> Result<Vec<u8>, String> {
    let (out, max_dist) = super::puff::inflate(stream).map_err(str::to_string)?;
    if max_dist > 2048 {
        return Err(format!("distance {max_dist} too far for a 2 KiB window"));
    }
    Ok(out)
}

/// Random-ish text with repeats at distances above 2 KiB.
fn far_repeats() -> Vec<u8> {
    let mut block = Vec::new();
    let mut x = 12345u32;
    while block.len() < 3000 {
        x = x.wrapping_mul(1103515245).wrapping_add(12345);
        block.extend_from_slice(
            [&b"alpha "[..], b"beta ", b"gamma ", b"delta "][(x >> 16) as usize % 4],
        );
        block.push(b'a' + (x >> 8) as u8 % 26);
    }
    let mut v = block.clone();
    v.extend_from_slice(&block);
    v.extend_from_slice(&block);
    v
}

#[test]
fn the_window_check_catches_far_distances() {
    assert!(inflate_window_11(ZLIB_WBITS11).unwrap() == PLAIN);
    // The decoder itself agrees with zlib on the 32 KiB stream ...
    assert!(super::puff::inflate(ZLIB_WBITS15).unwrap().0 == PLAIN);
    // ... and the window check rejects it.
    let err = inflate_window_11(ZLIB_WBITS15).err().unwrap();
    assert!(err.contains("too far"), "{err}");
}

#[test]
fn deflate_round_trip_and_linux_window() {
    let mut h = Harness::new(1);
    let data = far_repeats();
    for level in [0, 1, 6, 9] {
        let d = h.data(
            QueueKind::Compression,
            &comp_req(OP_COMPRESS, COMP_DEFLATE, level, &data),
            data.len(),
        );
        assert_eq!(d.status, Status::Ok as u32, "level {level}");
        let c = d.out[..d.len as usize].to_vec();
        assert!(c.len() < data.len() / 2, "it compresses");
        // Our output never reaches back more than 2 KiB: Linux's deflate can inflate it.
        assert!(inflate_window_11(&c).unwrap() == data, "level {level}");
        let d = h.data(
            QueueKind::Compression,
            &comp_req(OP_DECOMPRESS, COMP_DEFLATE, 0, &c),
            data.len(),
        );
        assert_eq!((d.status, d.len), (Status::Ok as u32, data.len() as u32));
        assert_eq!(d.out, data);
    }
}

#[test]
fn deflate_accepts_linux_parameter_streams() {
    let mut h = Harness::new(0);
    for stream in [ZLIB_WBITS11, ZLIB_WBITS15] {
        let d = h.data(
            QueueKind::Compression,
            &comp_req(OP_DECOMPRESS, COMP_DEFLATE, 0, stream),
            PLAIN.len() + 10,
        );
        assert_eq!((d.status, d.len), (Status::Ok as u32, PLAIN.len() as u32));
        assert_eq!(&d.out[..PLAIN.len()], PLAIN);
    }
}

#[test]
fn deflate_errors() {
    let mut h = Harness::new(0);
    // Output too small, both directions.
    let d = h.data(
        QueueKind::Compression,
        &comp_req(OP_DECOMPRESS, COMP_DEFLATE, 0, ZLIB_WBITS11),
        100,
    );
    assert_eq!(d.status, Status::OutputTooSmall as u32);
    let d = h.data(
        QueueKind::Compression,
        &comp_req(OP_COMPRESS, COMP_DEFLATE, 0, &far_repeats()),
        50,
    );
    assert_eq!(d.status, Status::OutputTooSmall as u32);
    // Truncated stream: no end-of-stream marker.
    let d = h.data(
        QueueKind::Compression,
        &comp_req(OP_DECOMPRESS, COMP_DEFLATE, 0, &ZLIB_WBITS11[..600]),
        10000,
    );
    assert_eq!(d.status, Status::DataError as u32);
    // Garbage (block type 3 is reserved).
    let d = h.data(
        QueueKind::Compression,
        &comp_req(OP_DECOMPRESS, COMP_DEFLATE, 0, &[0xff; 40]),
        10000,
    );
    assert_eq!(d.status, Status::DataError as u32);
    // Level out of range, unknown algorithm.
    let d = h.data(
        QueueKind::Compression,
        &comp_req(OP_COMPRESS, COMP_DEFLATE, 10, b"abc"),
        100,
    );
    assert_eq!(d.status, Status::NotSupp as u32);
    let d = h.data(
        QueueKind::Compression,
        &comp_req(OP_COMPRESS, 7, 0, b"abc"),
        100,
    );
    assert_eq!(d.status, Status::NotSupp as u32);
    let d = h.data(
        QueueKind::Compression,
        &comp_req(OP_COMPRESS, 99, 0, b"abc"),
        100,
    );
    assert_eq!(d.status, Status::NotSupp as u32);
}

/// An independent LZ4 block decoder following the format spec (not lz4_flex's code); the
/// end-of-block rules Linux's LZ4_decompress_safe enforces are checked by `lz4_end_rules_hold`.
fn linux_lz4_decode(src: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut out: Vec<u8> = Vec::new();
    let mut ip = 0;
    let len_ext = |ip: &mut usize, mut len: usize| -> Result<usize, &'static str> {
        loop {
            let b = *src.get(*ip).ok_or("truncated length")? as usize;
            *ip += 1;
            len += b;
            if b != 255 {
                return Ok(len);
            }
        }
    };
    loop {
        let token = *src.get(ip).ok_or("missing token")?;
        ip += 1;
        let mut lit = (token >> 4) as usize;
        if lit == 15 {
            lit = len_ext(&mut ip, lit)?;
        }
        let lits = src.get(ip..ip + lit).ok_or("literals past input")?;
        out.extend_from_slice(lits);
        ip += lit;
        if ip == src.len() {
            return Ok(out); // the last sequence: literals only
        }
        let off = u16::from_le_bytes(
            src.get(ip..ip + 2)
                .ok_or("missing offset")?
                .try_into()
                .unwrap(),
        ) as usize;
        ip += 2;
        let mut ml = (token & 15) as usize;
        if ml == 15 {
            ml = len_ext(&mut ip, ml)?;
        }
        ml += 4;
        if off == 0 || off > out.len() {
            return Err("bad offset");
        }
        // Byte by byte: overlapping matches (offset < length) repeat the pattern.
        for _ in 0..ml {
            out.push(out[out.len() - off]);
        }
        if ip >= src.len() {
            return Err("block ends with a match");
        }
    }
}

/// Checks the end-of-block rules on a decoded block: the final sequence carries at least 5
/// literals and its preceding match started at least 12 bytes before the end.
fn lz4_end_rules_hold(src: &[u8], total: usize) -> bool {
    // Walk again recording where the last match began in the output.
    let mut ip = 0;
    let mut op = 0;
    let mut last_match_start = None;
    let mut last_lits;
    loop {
        let token = src[ip];
        ip += 1;
        let mut lit = (token >> 4) as usize;
        if lit == 15 {
            loop {
                let b = src[ip] as usize;
                ip += 1;
                lit += b;
                if b != 255 {
                    break;
                }
            }
        }
        ip += lit;
        op += lit;
        last_lits = lit;
        if ip == src.len() {
            break;
        }
        ip += 2;
        let mut ml = (token & 15) as usize;
        if ml == 15 {
            loop {
                let b = src[ip] as usize;
                ip += 1;
                ml += b;
                if b != 255 {
                    break;
                }
            }
        }
        last_match_start = Some(op);
        op += ml + 4;
    }
    op == total
        && (total < 13 || last_lits >= 5)
        && last_match_start.is_none_or(|s| s + 12 <= total)
}

#[test]
fn lz4_decodes_handmade_linux_blocks() {
    let mut h = Harness::new(0);
    // "abcdefgh" + match(offset 8, len 16) + 12 literals.
    let mut b1 = vec![0x8C];
    b1.extend_from_slice(b"abcdefgh");
    b1.extend_from_slice(&[8, 0]);
    b1.push(0xC0);
    b1.extend_from_slice(b"0123456789AB");
    // "a" + overlapping match(offset 1, len 20: 15 + extension 1 + 4) + 12 literals.
    let mut b2 = vec![0x1F, b'a', 1, 0, 1, 0xC0];
    b2.extend_from_slice(b"tail-end!!!!");
    let e1 = [&b"abcdefgh"[..], b"abcdefghabcdefgh", b"0123456789AB"].concat();
    let e2 = [vec![b'a'; 21], b"tail-end!!!!".to_vec()].concat();
    for (block, expect) in [(b1, e1), (b2, e2)] {
        assert_eq!(linux_lz4_decode(&block).unwrap(), expect);
        assert!(lz4_end_rules_hold(&block, expect.len()));
        let d = h.data(
            QueueKind::Compression,
            &comp_req(OP_DECOMPRESS, COMP_LZ4, 0, &block),
            100,
        );
        assert_eq!((d.status, d.len), (Status::Ok as u32, expect.len() as u32));
        assert_eq!(&d.out[..expect.len()], &expect[..]);
    }
}

#[test]
fn lz4_round_trip_output_follows_linux_rules() {
    let mut h = Harness::new(1);
    for data in [
        far_repeats(),
        vec![0u8; 70000],
        b"short".to_vec(),
        (0..5000u32).map(|i| ((i * i) >> 3) as u8).collect(),
    ] {
        let d = h.data(
            QueueKind::Compression,
            &comp_req(OP_COMPRESS, COMP_LZ4, 0, &data),
            data.len() + data.len() / 255 + 16,
        );
        assert_eq!(d.status, Status::Ok as u32);
        let c = d.out[..d.len as usize].to_vec();
        assert_eq!(linux_lz4_decode(&c).unwrap(), data);
        assert!(lz4_end_rules_hold(&c, data.len()), "end-of-block rules");
        let d = h.data(
            QueueKind::Compression,
            &comp_req(OP_DECOMPRESS, COMP_LZ4, 0, &c),
            data.len(),
        );
        assert_eq!((d.status, d.len), (Status::Ok as u32, data.len() as u32));
        assert_eq!(d.out, data);
    }
    // Too small output for decompression, then for incompressible compression.
    let data = far_repeats();
    let c = lz4_flex::block::compress(&data);
    let d = h.data(
        QueueKind::Compression,
        &comp_req(OP_DECOMPRESS, COMP_LZ4, 0, &c),
        data.len() - 1,
    );
    assert_eq!(d.status, Status::OutputTooSmall as u32);
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let d = h.data(
        QueueKind::Compression,
        &comp_req(OP_COMPRESS, COMP_LZ4, 0, &noise),
        1000,
    );
    assert_eq!(d.status, Status::OutputTooSmall as u32);
    // A level is meaningless for LZ4.
    let d = h.data(
        QueueKind::Compression,
        &comp_req(OP_COMPRESS, COMP_LZ4, 3, &noise),
        8000,
    );
    assert_eq!(d.status, Status::NotSupp as u32);
    // Corrupt block: offset beyond the output.
    let d = h.data(
        QueueKind::Compression,
        &comp_req(
            OP_DECOMPRESS,
            COMP_LZ4,
            0,
            &[0x14, b'a', 9, 0, 0x50, 1, 2, 3, 4, 5],
        ),
        100,
    );
    assert_eq!(d.status, Status::DataError as u32);
}
