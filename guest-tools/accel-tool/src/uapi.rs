//! Mirror of `guest-drivers/include/uapi/linux/virtio_accel_ioctl.h` (and the status/opcode
//! constants of `virtio_accel.h`). Sizes are asserted at compile time against the C comments.

/// Device status codes (`VIRTIO_ACCEL_S_*`).
pub mod status {
    pub const OK: u32 = 0;
    pub const AUTH_FAILED: u32 = 5;
    pub const REPLAY: u32 = 8;
    pub const OUTPUT_TOO_SMALL: u32 = 6;
    pub const NO_SESSION: u32 = 4;
    pub const NOT_RUN: u32 = 0xffff_ffff;
}

/// Data opcodes (`VIRTIO_ACCEL_OP_*`).
pub mod op {
    pub const ENCRYPT: u32 = 0x100;
    pub const DECRYPT: u32 = 0x101;
    pub const COMPRESS: u32 = 0x200;
    pub const DECOMPRESS: u32 = 0x201;
    pub const ESP_ENCAP: u32 = 0x300;
    pub const ESP_DECAP: u32 = 0x301;
}

pub const CRYPTO_AES_GCM: u32 = 1;
pub const IPSEC_ESP_AES_GCM: u32 = 1;
pub const SA_DIR_OUTBOUND: u8 = 0;
pub const SA_DIR_INBOUND: u8 = 1;
pub const SA_MODE_TUNNEL: u8 = 0;
pub const SA_FAMILY_IPV4: u8 = 4;
pub const COMP_DEFLATE: u32 = 1;
pub const COMP_LZ4: u32 = 2;
pub const MAX_BATCH: usize = 256;
/// Largest mmap()ed buffer area per open file (VIRTIO_ACCEL_IOC_AREA_MAX).
pub const AREA_MAX: usize = 64 << 20;
/// Op flag: aad, src and dst are offsets in the file's area (VIRTIO_ACCEL_IOC_OP_F_MAPPED).
pub const OP_F_MAPPED: u32 = 1;
pub const STAT_NR: usize = 6;
pub const STAT_NAMES: [&str; STAT_NR] = [
    "encrypt",
    "decrypt",
    "compress",
    "decompress",
    "esp_encap",
    "esp_decap",
];

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Info {
    pub version: u32,
    pub services: u32,
    pub crypto_algos: u32,
    pub comp_algos: u32,
    pub ipsec_algos: u32,
    pub crypto_queues: u16,
    pub comp_queues: u16,
    pub ipsec_queues: u16,
    pub index: u16,
    pub max_sessions: u32,
    pub max_sas: u32,
    pub max_data_size: u32,
    pub max_key_len: u32,
    pub reserved: u32,
    pub features: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Session {
    pub algo: u32,
    pub key_len: u32,
    pub key: u64,
    pub handle: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Sa {
    pub spi: u32,
    pub algo: u32,
    pub direction: u8,
    pub mode: u8,
    pub family: u8,
    pub icv_len: u8,
    pub key_len: u32,
    pub salt: [u8; 4],
    pub replay_window: u32,
    pub tunnel_src: [u8; 16],
    pub tunnel_dst: [u8; 16],
    pub key: [u8; 32],
    pub handle: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SaQuery {
    pub handle: u64,
    pub packets: u64,
    pub bytes: u64,
    pub auth_failures: u64,
    pub replay_drops: u64,
    pub malformed: u64,
    pub last_seq: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Op {
    pub opcode: u32,
    pub flags: u32,
    pub handle: u64,
    pub algo: u32,
    pub level: u32,
    pub tag_len: u32,
    pub aad_len: u32,
    pub aad: u64,
    pub src: u64,
    pub dst: u64,
    pub src_len: u32,
    pub dst_len: u32,
    pub iv: [u8; 16],
    pub status: u32,
    pub error: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Batch {
    pub count: u32,
    pub completed_ok: u32,
    pub ops: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub ops: [u64; STAT_NR],
    pub errors: [u64; STAT_NR],
    pub bytes_in: [u64; STAT_NR],
    pub bytes_out: [u64; STAT_NR],
    pub api_ops: u64,
    pub chardev_ops: u64,
    pub auth_failures: u64,
    pub backlogged: u64,
    pub rejected_busy: u64,
    pub ctrl_ops: u64,
    pub sessions_live: u64,
    pub sas_live: u64,
    pub reserved: [u64; 4],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Kcomp {
    pub alg: [u8; 64],
    pub decompress: u32,
    pub src_len: u32,
    pub src: u64,
    pub dst: u64,
    pub dst_len: u32,
    pub error: i32,
    pub iterations: u32,
    pub reserved: u32,
    pub elapsed_ns: u64,
    pub driver: [u8; 64],
}

impl Default for Kcomp {
    fn default() -> Self {
        Kcomp {
            alg: [0; 64],
            decompress: 0,
            src_len: 0,
            src: 0,
            dst: 0,
            dst_len: 0,
            error: 0,
            iterations: 0,
            reserved: 0,
            elapsed_ns: 0,
            driver: [0; 64],
        }
    }
}

const _: () = {
    assert!(size_of::<Info>() == 56);
    assert!(size_of::<Session>() == 24);
    assert!(size_of::<Sa>() == 96);
    assert!(size_of::<SaQuery>() == 56);
    assert!(size_of::<Op>() == 88);
    assert!(size_of::<Batch>() == 16);
    assert!(size_of::<Stats>() == 288);
    assert!(size_of::<Kcomp>() == 176);
};

const MAGIC: u64 = 0xAC;
const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;

// asm-generic/ioctl.h: dir << 30 | size << 16 | type << 8 | nr.
const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (MAGIC << 8) | nr
}

pub const IOC_INFO: u64 = ioc(IOC_READ, 0x00, size_of::<Info>());
pub const IOC_SESSION_CREATE: u64 = ioc(IOC_READ | IOC_WRITE, 0x01, size_of::<Session>());
pub const IOC_SESSION_DESTROY: u64 = ioc(IOC_WRITE, 0x02, size_of::<Session>());
pub const IOC_BATCH: u64 = ioc(IOC_READ | IOC_WRITE, 0x03, size_of::<Batch>());
pub const IOC_SA_ADD: u64 = ioc(IOC_READ | IOC_WRITE, 0x10, size_of::<Sa>());
pub const IOC_SA_REMOVE: u64 = ioc(IOC_WRITE, 0x11, size_of::<SaQuery>());
pub const IOC_SA_QUERY: u64 = ioc(IOC_READ | IOC_WRITE, 0x12, size_of::<SaQuery>());
pub const IOC_STATS: u64 = ioc(IOC_READ, 0x20, size_of::<Stats>());
pub const IOC_KCOMP: u64 = ioc(IOC_READ | IOC_WRITE, 0x30, size_of::<Kcomp>());
