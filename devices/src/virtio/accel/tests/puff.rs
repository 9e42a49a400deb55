//! A tiny independent inflate (after Mark Adler's puff.c) that also reports the largest match
//! distance used, to prove a stream is decodable with Linux's 2 KiB deflate window.

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    bit: u32,
    cnt: u32,
}

impl Bits<'_> {
    fn bits(&mut self, need: u32) -> Result<u32, &'static str> {
        let mut val = self.bit;
        while self.cnt < need {
            let b = *self.data.get(self.pos).ok_or("out of input")? as u32;
            self.pos += 1;
            val |= b << self.cnt;
            self.cnt += 8;
        }
        self.bit = val >> need;
        self.cnt -= need;
        Ok(val & ((1 << need) - 1))
    }
}

struct Huffman {
    count: [u16; 16],
    symbol: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> Self {
        let mut count = [0u16; 16];
        for &l in lengths {
            count[l as usize] += 1;
        }
        let mut offs = [0u16; 16];
        for len in 1..15 {
            offs[len + 1] = offs[len] + count[len];
        }
        let mut symbol = vec![0u16; lengths.len()];
        for (sym, &l) in lengths.iter().enumerate() {
            if l != 0 {
                symbol[offs[l as usize] as usize] = sym as u16;
                offs[l as usize] += 1;
            }
        }
        Huffman { count, symbol }
    }

    fn decode(&self, s: &mut Bits) -> Result<u16, &'static str> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= s.bits(1)? as i32;
            let count = self.count[len] as i32;
            if code - count < first {
                return Ok(self.symbol[(index + (code - first)) as usize]);
            }
            index += count;
            first += count;
            first <<= 1;
            code <<= 1;
        }
        Err("bad code")
    }
}

const LBASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEXT: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DBASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DEXT: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

fn codes(
    s: &mut Bits,
    out: &mut Vec<u8>,
    max_dist: &mut usize,
    lit: &Huffman,
    dist: &Huffman,
) -> Result<(), &'static str> {
    loop {
        let sym = lit.decode(s)? as usize;
        if sym < 256 {
            out.push(sym as u8);
        } else if sym == 256 {
            return Ok(());
        } else {
            let i = sym - 257;
            if i >= 29 {
                return Err("bad length symbol");
            }
            let len = LBASE[i] as usize + s.bits(LEXT[i] as u32)? as usize;
            let d = dist.decode(s)? as usize;
            if d >= 30 {
                return Err("bad distance symbol");
            }
            let dd = DBASE[d] as usize + s.bits(DEXT[d] as u32)? as usize;
            if dd > out.len() {
                return Err("distance too far back");
            }
            *max_dist = (*max_dist).max(dd);
            for _ in 0..len {
                out.push(out[out.len() - dd]);
            }
        }
    }
}

/// Inflates a raw deflate stream; returns the data and the largest distance used.
pub fn inflate(data: &[u8]) -> Result<(Vec<u8>, usize), &'static str> {
    let mut s = Bits {
        data,
        pos: 0,
        bit: 0,
        cnt: 0,
    };
    let mut out = Vec::new();
    let mut max_dist = 0;
    loop {
        let last = s.bits(1)?;
        match s.bits(2)? {
            0 => {
                s.bit = 0;
                s.cnt = 0;
                let h = data.get(s.pos..s.pos + 4).ok_or("short stored header")?;
                let len = u16::from_le_bytes([h[0], h[1]]) as usize;
                if len != !u16::from_le_bytes([h[2], h[3]]) as usize {
                    return Err("stored length mismatch");
                }
                s.pos += 4;
                out.extend_from_slice(data.get(s.pos..s.pos + len).ok_or("short stored block")?);
                s.pos += len;
            }
            1 => {
                let mut l = [0u8; 288];
                l[..144].fill(8);
                l[144..256].fill(9);
                l[256..280].fill(7);
                l[280..].fill(8);
                codes(
                    &mut s,
                    &mut out,
                    &mut max_dist,
                    &Huffman::new(&l),
                    &Huffman::new(&[5; 30]),
                )?;
            }
            2 => {
                let nlen = s.bits(5)? as usize + 257;
                let ndist = s.bits(5)? as usize + 1;
                let ncode = s.bits(4)? as usize + 4;
                const ORDER: [usize; 19] = [
                    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
                ];
                let mut cl = [0u8; 19];
                for &o in &ORDER[..ncode] {
                    cl[o] = s.bits(3)? as u8;
                }
                let lencode = Huffman::new(&cl);
                let mut lengths = vec![0u8; nlen + ndist];
                let mut i = 0;
                while i < nlen + ndist {
                    let sym = lencode.decode(&mut s)?;
                    let (val, rep) = match sym {
                        0..=15 => (sym as u8, 1),
                        16 => (
                            *lengths
                                .get(i.wrapping_sub(1))
                                .ok_or("repeat with no length")?,
                            3 + s.bits(2)? as usize,
                        ),
                        17 => (0, 3 + s.bits(3)? as usize),
                        _ => (0, 11 + s.bits(7)? as usize),
                    };
                    if i + rep > nlen + ndist {
                        return Err("too many lengths");
                    }
                    lengths[i..i + rep].fill(val);
                    i += rep;
                }
                let lit = Huffman::new(&lengths[..nlen]);
                let dist = Huffman::new(&lengths[nlen..]);
                codes(&mut s, &mut out, &mut max_dist, &lit, &dist)?;
            }
            _ => return Err("reserved block type"),
        }
        if last == 1 {
            return Ok((out, max_dist));
        }
    }
}
