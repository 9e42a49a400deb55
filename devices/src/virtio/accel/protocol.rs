//! The virtio-accel wire ABI, mirroring `guest-drivers/include/uapi/linux/virtio_accel.h`.
//!
//! The C header is the single source of truth; every struct here is `repr(C)` with the same
//! fields, and const asserts pin sizes and offsets. A test compiles the header with gcc and
//! compares its `sizeof`/`offsetof` with these.

use std::mem::{offset_of, size_of};

use vm_memory::ByteValued;
use vm_memory::endian::{Le16, Le32, Le64};

/// Experimental device ID (virtio 1.2 §5: "use 65535 and work backwards").
pub const VIRTIO_ID_ACCEL: u32 = 0xFFFF;

/// Feature bit: the crypto service and its data queues.
pub const VIRTIO_ACCEL_F_CRYPTO: u32 = 0;
/// Feature bit: the compression service and its data queues.
pub const VIRTIO_ACCEL_F_COMPRESSION: u32 = 1;
/// Feature bit: the IPsec ESP service and its data queues.
pub const VIRTIO_ACCEL_F_IPSEC: u32 = 2;
/// Feature bit: crypto requests may carry their key instead of a session.
pub const VIRTIO_ACCEL_F_STATELESS: u32 = 3;

/// `services` bit: crypto.
pub const SERVICE_CRYPTO: u32 = 1 << 0;
/// `services` bit: compression.
pub const SERVICE_COMPRESSION: u32 = 1 << 1;
/// `services` bit: IPsec.
pub const SERVICE_IPSEC: u32 = 1 << 2;

/// Crypto algorithm: AES-GCM (16- or 32-byte key, 12-byte IV).
pub const CRYPTO_AES_GCM: u32 = 1;
/// Compression algorithm: raw deflate with a window of at most 2 KiB.
pub const COMP_DEFLATE: u32 = 1;
/// Compression algorithm: LZ4 block format.
pub const COMP_LZ4: u32 = 2;
/// IPsec transform: ESP with AES-GCM (RFC 4106).
pub const IPSEC_ESP_AES_GCM: u32 = 1;

/// Index of the control queue.
pub const CTRL_QUEUE: u16 = 0;

/// Control opcode: create a crypto session.
pub const CTRL_CREATE_SESSION: u32 = 0x01;
/// Control opcode: destroy a crypto session.
pub const CTRL_DESTROY_SESSION: u32 = 0x02;
/// Control opcode: add a security association.
pub const CTRL_ADD_SA: u32 = 0x10;
/// Control opcode: remove a security association.
pub const CTRL_REMOVE_SA: u32 = 0x11;
/// Control opcode: read a security association's counters.
pub const CTRL_QUERY_SA: u32 = 0x12;

/// Data opcode: AEAD encrypt.
pub const OP_ENCRYPT: u32 = 0x100;
/// Data opcode: AEAD decrypt and verify.
pub const OP_DECRYPT: u32 = 0x101;
/// Data opcode: compress.
pub const OP_COMPRESS: u32 = 0x200;
/// Data opcode: decompress.
pub const OP_DECOMPRESS: u32 = 0x201;
/// Data opcode: ESP-encapsulate an inner packet.
pub const OP_ESP_ENCAP: u32 = 0x300;
/// Data opcode: verify and decapsulate an ESP packet.
pub const OP_ESP_DECAP: u32 = 0x301;

/// Request flag: a [`CryptoKey`] block follows the data header.
pub const REQ_F_STATELESS: u32 = 1 << 0;

/// The only IV length AES-GCM requests use.
pub const IV_LEN: u32 = 12;
/// Size of the key array in [`CryptoKey`] and [`SaPara`].
pub const MAX_KEY_LEN: usize = 32;

/// SA direction: outbound (encapsulate).
pub const SA_DIR_OUTBOUND: u8 = 0;
/// SA direction: inbound (decapsulate).
pub const SA_DIR_INBOUND: u8 = 1;
/// SA mode: tunnel.
pub const SA_MODE_TUNNEL: u8 = 0;
/// SA mode: transport.
pub const SA_MODE_TRANSPORT: u8 = 1;
/// SA family: IPv4.
pub const SA_FAMILY_IPV4: u8 = 4;
/// SA family: IPv6.
pub const SA_FAMILY_IPV6: u8 = 6;

/// Request status codes, written in every trailer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// Device-internal failure.
    Err = 1,
    /// Malformed request.
    BadMsg = 2,
    /// Opcode, algorithm or parameter not offered.
    NotSupp = 3,
    /// Unknown session or SA handle.
    NoSession = 4,
    /// Tag or ICV mismatch; no output released.
    AuthFailed = 5,
    /// The device-writable output area is too small.
    OutputTooSmall = 6,
    /// Quota exceeded; retry later.
    Busy = 7,
    /// ESP sequence number replayed or left of the window.
    Replay = 8,
    /// Session or SA table full.
    NoSpc = 9,
    /// Input data invalid (corrupt compressed stream, malformed ESP packet).
    DataError = 10,
    /// The outbound SA's sequence numbers are exhausted; replace the SA.
    SaExpired = 11,
}

/// `struct virtio_accel_config`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct AccelConfigSpace {
    /// Services offered.
    pub services: Le32,
    /// Crypto algorithm bitmap.
    pub crypto_algos: Le32,
    /// Compression algorithm bitmap.
    pub comp_algos: Le32,
    /// IPsec transform bitmap.
    pub ipsec_algos: Le32,
    /// Number of crypto data queues.
    pub crypto_queues: Le16,
    /// Number of compression data queues.
    pub comp_queues: Le16,
    /// Number of IPsec data queues.
    pub ipsec_queues: Le16,
    /// Reserved.
    pub reserved0: Le16,
    /// Maximum crypto sessions.
    pub max_sessions: Le32,
    /// Maximum security associations.
    pub max_sas: Le32,
    /// Maximum aad + src bytes, and maximum output bytes, per request.
    pub max_data_size: Le32,
    /// Longest key in bytes.
    pub max_key_len: Le32,
}

/// `struct virtio_accel_ctrl_hdr`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct CtrlHdr {
    /// `CTRL_*` opcode.
    pub opcode: Le32,
    /// Must be zero.
    pub reserved: Le32,
}

/// `struct virtio_accel_crypto_key`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct CryptoKey {
    /// `CRYPTO_*` algorithm.
    pub algo: Le32,
    /// Key bytes used.
    pub key_len: Le32,
    /// Key, zero-padded.
    pub key: [u8; MAX_KEY_LEN],
}

/// `struct virtio_accel_ctrl_handle`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct CtrlHandle {
    /// Session or SA handle.
    pub handle: Le64,
}

/// `struct virtio_accel_sa_para`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct SaPara {
    /// Security parameter index.
    pub spi: Le32,
    /// `IPSEC_*` transform.
    pub algo: Le32,
    /// `SA_DIR_*`.
    pub direction: u8,
    /// `SA_MODE_*`.
    pub mode: u8,
    /// `SA_FAMILY_*`.
    pub family: u8,
    /// ICV length: 8, 12 or 16.
    pub icv_len: u8,
    /// AES key bytes: 16 or 32.
    pub key_len: Le32,
    /// RFC 4106 salt.
    pub salt: [u8; 4],
    /// Anti-replay window (0 = off).
    pub replay_window: Le32,
    /// Tunnel outer source address.
    pub tunnel_src: [u8; 16],
    /// Tunnel outer destination address.
    pub tunnel_dst: [u8; 16],
    /// AES key, zero-padded.
    pub key: [u8; MAX_KEY_LEN],
}

/// `struct virtio_accel_sa_stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SaStats {
    /// Packets processed successfully.
    pub packets: Le64,
    /// Payload bytes processed successfully.
    pub bytes: Le64,
    /// ICV check failures.
    pub auth_failures: Le64,
    /// Replayed or too-old packets.
    pub replay_drops: Le64,
    /// Malformed packets.
    pub malformed: Le64,
    /// Last sequence number sent or highest seen.
    pub last_seq: Le64,
}

/// `struct virtio_accel_ctrl_resp`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CtrlResp {
    /// New handle.
    pub handle: Le64,
    /// [`Status`].
    pub status: Le32,
    /// Reserved.
    pub reserved: Le32,
}

/// `struct virtio_accel_data_hdr`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct DataHdr {
    /// `OP_*` opcode.
    pub opcode: Le32,
    /// `REQ_F_*` flags.
    pub flags: Le32,
    /// Session or SA handle.
    pub handle: Le64,
    /// Compression algorithm.
    pub algo: Le32,
    /// Source bytes.
    pub src_len: Le32,
    /// Associated data bytes.
    pub aad_len: Le32,
    /// AEAD tag bytes.
    pub tag_len: Le32,
    /// IV bytes.
    pub iv_len: Le32,
    /// Compression level.
    pub level: Le32,
    /// Must be zero.
    pub reserved: [Le32; 2],
    /// IV, zero-padded.
    pub iv: [u8; 16],
}

/// `struct virtio_accel_data_resp`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct DataResp {
    /// [`Status`].
    pub status: Le32,
    /// Bytes written to dst, or needed on `OutputTooSmall`.
    pub len: Le32,
}

// SAFETY: each type is repr(C), made only of integers and byte arrays, and has no padding
// (the size asserts below prove the fields fill the struct), so every bit pattern is valid.
unsafe impl ByteValued for AccelConfigSpace {}
// SAFETY: as above.
unsafe impl ByteValued for CtrlHdr {}
// SAFETY: as above.
unsafe impl ByteValued for CryptoKey {}
// SAFETY: as above.
unsafe impl ByteValued for CtrlHandle {}
// SAFETY: as above.
unsafe impl ByteValued for SaPara {}
// SAFETY: as above.
unsafe impl ByteValued for SaStats {}
// SAFETY: as above.
unsafe impl ByteValued for CtrlResp {}
// SAFETY: as above.
unsafe impl ByteValued for DataHdr {}
// SAFETY: as above.
unsafe impl ByteValued for DataResp {}

/// `(name, size, [(field, offset)])` for every wire struct, compared against gcc in tests.
pub type Layout = (&'static str, usize, &'static [(&'static str, usize)]);

macro_rules! layout {
    ($c:literal, $t:ty, [$($f:ident),*]) => {
        ($c, size_of::<$t>(), &[$((stringify!($f), offset_of!($t, $f))),*])
    };
}

/// Layouts of all wire structs, keyed by their C names.
pub const LAYOUTS: &[Layout] = &[
    layout!(
        "virtio_accel_config",
        AccelConfigSpace,
        [
            services,
            crypto_algos,
            comp_algos,
            ipsec_algos,
            crypto_queues,
            comp_queues,
            ipsec_queues,
            reserved0,
            max_sessions,
            max_sas,
            max_data_size,
            max_key_len
        ]
    ),
    layout!("virtio_accel_ctrl_hdr", CtrlHdr, [opcode, reserved]),
    layout!("virtio_accel_crypto_key", CryptoKey, [algo, key_len, key]),
    layout!("virtio_accel_ctrl_handle", CtrlHandle, [handle]),
    layout!(
        "virtio_accel_sa_para",
        SaPara,
        [
            spi,
            algo,
            direction,
            mode,
            family,
            icv_len,
            key_len,
            salt,
            replay_window,
            tunnel_src,
            tunnel_dst,
            key
        ]
    ),
    layout!(
        "virtio_accel_sa_stats",
        SaStats,
        [
            packets,
            bytes,
            auth_failures,
            replay_drops,
            malformed,
            last_seq
        ]
    ),
    layout!(
        "virtio_accel_ctrl_resp",
        CtrlResp,
        [handle, status, reserved]
    ),
    layout!(
        "virtio_accel_data_hdr",
        DataHdr,
        [
            opcode, flags, handle, algo, src_len, aad_len, tag_len, iv_len, level, reserved, iv
        ]
    ),
    layout!("virtio_accel_data_resp", DataResp, [status, len]),
];

// The sizes the header documents; a change here is an ABI break.
const _: () = assert!(size_of::<AccelConfigSpace>() == 40);
const _: () = assert!(size_of::<CtrlHdr>() == 8);
const _: () = assert!(size_of::<CryptoKey>() == 40);
const _: () = assert!(size_of::<CtrlHandle>() == 8);
const _: () = assert!(size_of::<SaPara>() == 88);
const _: () = assert!(offset_of!(SaPara, key_len) == 12);
const _: () = assert!(offset_of!(SaPara, replay_window) == 20);
const _: () = assert!(offset_of!(SaPara, key) == 56);
const _: () = assert!(size_of::<SaStats>() == 48);
const _: () = assert!(size_of::<CtrlResp>() == 16);
const _: () = assert!(offset_of!(CtrlResp, status) == 8);
const _: () = assert!(size_of::<DataHdr>() == 64);
const _: () = assert!(offset_of!(DataHdr, handle) == 8);
const _: () = assert!(offset_of!(DataHdr, level) == 36);
const _: () = assert!(offset_of!(DataHdr, iv) == 48);
const _: () = assert!(size_of::<DataResp>() == 8);

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Compiles a C program against the uapi header and compares every size and offset.
    #[test]
    fn layouts_match_c_header() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-drivers/include/uapi");
        let dir = std::env::temp_dir().join(format!("accel-abi-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("linux")).unwrap();
        // A minimal linux/types.h so the test needs no kernel headers installed.
        std::fs::write(
            dir.join("linux/types.h"),
            "#include <stdint.h>\ntypedef uint8_t __u8; typedef uint16_t __le16;\n\
             typedef uint32_t __le32; typedef uint64_t __le64;\n",
        )
        .unwrap();
        let mut src = String::from(
            "#include <stdio.h>\n#include <stddef.h>\n#include <linux/virtio_accel.h>\nint main(void){\n",
        );
        for (name, _, fields) in LAYOUTS {
            src += &format!("printf(\"{name} %zu\\n\", sizeof(struct {name}));\n");
            for (f, _) in *fields {
                src += &format!("printf(\"{name}.{f} %zu\\n\", offsetof(struct {name}, {f}));\n");
            }
        }
        src += "return 0;}\n";
        std::fs::write(dir.join("abi.c"), src).unwrap();
        let exe = dir.join("abi");
        let status = Command::new("gcc")
            .arg(format!("-I{}", dir.display()))
            .arg(format!("-I{root}"))
            .arg("-o")
            .arg(&exe)
            .arg(dir.join("abi.c"))
            .status()
            .expect("gcc must be installed to check the ABI");
        assert!(status.success(), "gcc failed on the uapi header");
        let out = Command::new(&exe).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let mut expected = String::new();
        for (name, size, fields) in LAYOUTS {
            expected += &format!("{name} {size}\n");
            for (f, off) in *fields {
                expected += &format!("{name}.{f} {off}\n");
            }
        }
        assert_eq!(text, expected);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn c_constants_match() {
        let h = include_str!("../../../../guest-drivers/include/uapi/linux/virtio_accel.h");
        let value = |name: &str| -> u32 {
            let line = h
                .lines()
                .find(|l| l.starts_with("#define ") && l.split_whitespace().nth(1) == Some(name))
                .unwrap_or_else(|| panic!("{name} missing from the header"));
            let v = line.split_whitespace().nth(2).unwrap();
            match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
                Some(hex) => u32::from_str_radix(hex, 16).unwrap(),
                None => v.parse().unwrap(),
            }
        };
        assert_eq!(value("VIRTIO_ID_ACCEL"), VIRTIO_ID_ACCEL);
        assert_eq!(value("VIRTIO_ACCEL_F_STATELESS"), VIRTIO_ACCEL_F_STATELESS);
        assert_eq!(value("VIRTIO_ACCEL_F_IPSEC"), VIRTIO_ACCEL_F_IPSEC);
        assert_eq!(value("VIRTIO_ACCEL_CRYPTO_AES_GCM"), CRYPTO_AES_GCM);
        assert_eq!(value("VIRTIO_ACCEL_COMP_DEFLATE"), COMP_DEFLATE);
        assert_eq!(value("VIRTIO_ACCEL_COMP_LZ4"), COMP_LZ4);
        assert_eq!(
            value("VIRTIO_ACCEL_CTRL_CREATE_SESSION"),
            CTRL_CREATE_SESSION
        );
        assert_eq!(
            value("VIRTIO_ACCEL_CTRL_DESTROY_SESSION"),
            CTRL_DESTROY_SESSION
        );
        assert_eq!(value("VIRTIO_ACCEL_CTRL_ADD_SA"), CTRL_ADD_SA);
        assert_eq!(value("VIRTIO_ACCEL_CTRL_REMOVE_SA"), CTRL_REMOVE_SA);
        assert_eq!(value("VIRTIO_ACCEL_CTRL_QUERY_SA"), CTRL_QUERY_SA);
        assert_eq!(value("VIRTIO_ACCEL_OP_ENCRYPT"), OP_ENCRYPT);
        assert_eq!(value("VIRTIO_ACCEL_OP_DECRYPT"), OP_DECRYPT);
        assert_eq!(value("VIRTIO_ACCEL_OP_COMPRESS"), OP_COMPRESS);
        assert_eq!(value("VIRTIO_ACCEL_OP_DECOMPRESS"), OP_DECOMPRESS);
        assert_eq!(value("VIRTIO_ACCEL_OP_ESP_ENCAP"), OP_ESP_ENCAP);
        assert_eq!(value("VIRTIO_ACCEL_OP_ESP_DECAP"), OP_ESP_DECAP);
        assert_eq!(value("VIRTIO_ACCEL_IV_LEN"), IV_LEN);
        let statuses = [
            ("OK", Status::Ok),
            ("ERR", Status::Err),
            ("BADMSG", Status::BadMsg),
            ("NOTSUPP", Status::NotSupp),
            ("NO_SESSION", Status::NoSession),
            ("AUTH_FAILED", Status::AuthFailed),
            ("OUTPUT_TOO_SMALL", Status::OutputTooSmall),
            ("BUSY", Status::Busy),
            ("REPLAY", Status::Replay),
            ("NOSPC", Status::NoSpc),
            ("DATA_ERROR", Status::DataError),
            ("SA_EXPIRED", Status::SaExpired),
        ];
        for (n, s) in statuses {
            assert_eq!(value(&format!("VIRTIO_ACCEL_S_{n}")), s as u32, "{n}");
        }
    }
}
