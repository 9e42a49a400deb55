//! Parses the device-readable bytes of a request (pure: no guest memory, no backend) and
//! checks every rule of docs/virtio-accel.md before anything executes.

use std::ops::Range;

use vm_memory::ByteValued;

use super::protocol::{
    CTRL_ADD_SA, CTRL_CREATE_SESSION, CTRL_DESTROY_SESSION, CTRL_QUERY_SA, CTRL_REMOVE_SA,
    CryptoKey, CtrlHandle, CtrlHdr, DataHdr, IV_LEN, OP_COMPRESS, OP_DECOMPRESS, OP_DECRYPT,
    OP_ENCRYPT, OP_ESP_DECAP, OP_ESP_ENCAP, REQ_F_STATELESS, SaPara, Status,
};
use super::{QueueKind, backend::aead::valid_tag_len};

/// Why a request is refused before execution.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    /// The readable part is shorter than its header.
    #[error("request shorter than its {0}-byte header")]
    ShortHeader(usize),
    /// Unknown opcode.
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u32),
    /// The opcode belongs to another service's queue.
    #[error("opcode {0:#x} is not valid on this queue")]
    WrongQueue(u32),
    /// A reserved field or flag is set.
    #[error("reserved field or flag set")]
    Reserved,
    /// The header's lengths do not add up to the readable bytes.
    #[error("lengths in the header ({expected}) do not match the readable bytes ({actual})")]
    LengthMismatch {
        /// Bytes the header describes.
        expected: u64,
        /// Bytes the chain carries.
        actual: usize,
    },
    /// aad + src exceeds the device's max_data_size.
    #[error("request data of {0} bytes exceeds max_data_size")]
    TooLarge(u64),
    /// Crypto IV length is not 12.
    #[error("unsupported IV length {0}")]
    IvLength(u32),
    /// Crypto tag length is not allowed.
    #[error("unsupported tag length {0}")]
    TagLength(u32),
    /// A field that must be zero for this opcode is not.
    #[error("field not allowed for this opcode")]
    FieldNotAllowed,
}

impl RequestError {
    /// The status the device answers with.
    pub fn status(&self) -> Status {
        match self {
            RequestError::UnknownOpcode(_)
            | RequestError::IvLength(_)
            | RequestError::TagLength(_) => Status::NotSupp,
            _ => Status::BadMsg,
        }
    }
}

/// A data-queue operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataOp {
    /// AEAD encrypt.
    Encrypt,
    /// AEAD decrypt.
    Decrypt,
    /// Compress.
    Compress,
    /// Decompress.
    Decompress,
    /// ESP encapsulate.
    EspEncap,
    /// ESP decapsulate.
    EspDecap,
}

/// A validated data request; ranges index the readable bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct DataRequest {
    /// Operation.
    pub op: DataOp,
    /// Session or SA handle (unused for compression and stateless crypto).
    pub handle: u64,
    /// Compression algorithm.
    pub algo: u32,
    /// Compression level.
    pub level: u32,
    /// Crypto IV.
    pub iv: [u8; 12],
    /// Crypto tag bytes.
    pub tag_len: usize,
    /// Stateless key block, if any.
    pub key: Option<Range<usize>>,
    /// Associated data.
    pub aad: Range<usize>,
    /// Source data.
    pub src: Range<usize>,
}

fn read_obj<T: ByteValued>(buf: &[u8], at: usize) -> Option<T> {
    T::from_slice(buf.get(at..at + size_of::<T>())?).copied()
}

/// Parses a data request read from a queue of kind `kind`.
pub fn parse_data(
    buf: &[u8],
    kind: QueueKind,
    max_data: usize,
) -> Result<DataRequest, RequestError> {
    parse_data_sized(buf, buf.len(), kind, max_data)
}

/// Like [`parse_data`] for a request of `total` readable bytes of which `buf` holds the
/// first ones: at least everything before the source data (the source may stay in guest
/// memory); `src` then extends past `buf`.
pub fn parse_data_sized(
    buf: &[u8],
    total: usize,
    kind: QueueKind,
    max_data: usize,
) -> Result<DataRequest, RequestError> {
    let hdr_len = size_of::<DataHdr>();
    let hdr: DataHdr = read_obj(buf, 0).ok_or(RequestError::ShortHeader(hdr_len))?;
    let opcode = hdr.opcode.to_native();
    let op = match opcode {
        OP_ENCRYPT => DataOp::Encrypt,
        OP_DECRYPT => DataOp::Decrypt,
        OP_COMPRESS => DataOp::Compress,
        OP_DECOMPRESS => DataOp::Decompress,
        OP_ESP_ENCAP => DataOp::EspEncap,
        OP_ESP_DECAP => DataOp::EspDecap,
        other => return Err(RequestError::UnknownOpcode(other)),
    };
    let expected_kind = match op {
        DataOp::Encrypt | DataOp::Decrypt => QueueKind::Crypto,
        DataOp::Compress | DataOp::Decompress => QueueKind::Compression,
        DataOp::EspEncap | DataOp::EspDecap => QueueKind::Ipsec,
    };
    if kind != expected_kind {
        return Err(RequestError::WrongQueue(opcode));
    }
    let flags = hdr.flags.to_native();
    if flags & !REQ_F_STATELESS != 0 || hdr.reserved.iter().any(|r| r.to_native() != 0) {
        return Err(RequestError::Reserved);
    }
    let stateless = flags & REQ_F_STATELESS != 0;
    let crypto = kind == QueueKind::Crypto;
    let (src_len, aad_len) = (
        hdr.src_len.to_native() as u64,
        hdr.aad_len.to_native() as u64,
    );
    let (tag_len, iv_len) = (hdr.tag_len.to_native(), hdr.iv_len.to_native());
    if crypto {
        if iv_len != IV_LEN {
            return Err(RequestError::IvLength(iv_len));
        }
        if !valid_tag_len(tag_len as usize) {
            return Err(RequestError::TagLength(tag_len));
        }
        if hdr.algo.to_native() != 0 || hdr.level.to_native() != 0 {
            return Err(RequestError::FieldNotAllowed);
        }
    } else if stateless || aad_len != 0 || tag_len != 0 || iv_len != 0 {
        return Err(RequestError::FieldNotAllowed);
    }
    if kind == QueueKind::Ipsec && (hdr.algo.to_native() != 0 || hdr.level.to_native() != 0) {
        return Err(RequestError::FieldNotAllowed);
    }
    if src_len + aad_len > max_data as u64 {
        return Err(RequestError::TooLarge(src_len + aad_len));
    }
    let key_len = if stateless { size_of::<CryptoKey>() } else { 0 };
    let expected = (hdr_len + key_len) as u64 + aad_len + src_len;
    if expected != total as u64 {
        return Err(RequestError::LengthMismatch {
            expected,
            actual: total,
        });
    }
    let aad_start = hdr_len + key_len;
    let src_start = aad_start + aad_len as usize;
    if src_start > buf.len() {
        // The caller did not copy the key and AAD: nothing may index past `buf`.
        return Err(RequestError::ShortHeader(src_start));
    }
    let mut iv = [0u8; 12];
    iv.copy_from_slice(&hdr.iv[..12]);
    Ok(DataRequest {
        op,
        handle: hdr.handle.to_native(),
        algo: hdr.algo.to_native(),
        level: hdr.level.to_native(),
        iv,
        tag_len: tag_len as usize,
        key: stateless.then_some(hdr_len..aad_start),
        aad: aad_start..src_start,
        src: src_start..total,
    })
}

/// A validated control request.
#[derive(Debug)]
pub enum CtrlRequest {
    /// Create a crypto session with this key.
    CreateSession(CryptoKey),
    /// Destroy a session.
    DestroySession(u64),
    /// Add a security association.
    AddSa(SaPara),
    /// Remove a security association.
    RemoveSa(u64),
    /// Read an SA's counters.
    QuerySa(u64),
}

/// Parses a control request.
pub fn parse_ctrl(buf: &[u8]) -> Result<CtrlRequest, RequestError> {
    let hdr_len = size_of::<CtrlHdr>();
    let hdr: CtrlHdr = read_obj(buf, 0).ok_or(RequestError::ShortHeader(hdr_len))?;
    if hdr.reserved.to_native() != 0 {
        return Err(RequestError::Reserved);
    }
    let body = &buf[hdr_len..];
    fn exact<T: ByteValued>(body: &[u8]) -> Result<T, RequestError> {
        if body.len() != size_of::<T>() {
            return Err(RequestError::LengthMismatch {
                expected: (size_of::<CtrlHdr>() + size_of::<T>()) as u64,
                actual: size_of::<CtrlHdr>() + body.len(),
            });
        }
        read_obj(body, 0).ok_or(RequestError::ShortHeader(size_of::<T>()))
    }
    Ok(match hdr.opcode.to_native() {
        CTRL_CREATE_SESSION => CtrlRequest::CreateSession(exact(body)?),
        CTRL_DESTROY_SESSION => {
            CtrlRequest::DestroySession(exact::<CtrlHandle>(body)?.handle.to_native())
        }
        CTRL_ADD_SA => CtrlRequest::AddSa(exact(body)?),
        CTRL_REMOVE_SA => CtrlRequest::RemoveSa(exact::<CtrlHandle>(body)?.handle.to_native()),
        CTRL_QUERY_SA => CtrlRequest::QuerySa(exact::<CtrlHandle>(body)?.handle.to_native()),
        other => return Err(RequestError::UnknownOpcode(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::endian::{Le32, Le64};

    fn hdr(op: u32, src: &[u8]) -> Vec<u8> {
        let crypto = op < OP_COMPRESS;
        let h = DataHdr {
            opcode: Le32::from(op),
            handle: Le64::from(9),
            src_len: Le32::from(src.len() as u32),
            tag_len: Le32::from(if crypto { 16 } else { 0 }),
            iv_len: Le32::from(if crypto { IV_LEN } else { 0 }),
            ..Default::default()
        };
        [h.as_slice(), src].concat()
    }

    #[test]
    fn data_requests_parse_into_exact_ranges() {
        let buf = hdr(OP_ENCRYPT, b"abc");
        let r = parse_data(&buf, QueueKind::Crypto, 100).unwrap();
        assert_eq!(
            (r.op, r.handle, r.tag_len, r.aad, r.src, r.key),
            (DataOp::Encrypt, 9, 16, 64..64, 64..67, None)
        );
        let mut st = hdr(OP_DECRYPT, b"");
        st[4] = REQ_F_STATELESS as u8;
        st.extend_from_slice(&[0; 40]);
        st[24] = 2; // aad_len
        st.extend_from_slice(b"ad");
        let r = parse_data(&st, QueueKind::Crypto, 100).unwrap();
        assert_eq!((r.key, r.aad, r.src), (Some(64..104), 104..106, 106..106));
    }

    #[test]
    fn data_request_errors_are_exact() {
        let ok = hdr(OP_COMPRESS, b"abcd");
        assert_eq!(
            parse_data(&ok[..63], QueueKind::Compression, 100),
            Err(RequestError::ShortHeader(64))
        );
        assert_eq!(
            parse_data(&ok, QueueKind::Crypto, 100),
            Err(RequestError::WrongQueue(OP_COMPRESS))
        );
        assert_eq!(
            parse_data(&ok, QueueKind::Compression, 3),
            Err(RequestError::TooLarge(4))
        );
        assert_eq!(
            parse_data(&ok[..67], QueueKind::Compression, 100),
            Err(RequestError::LengthMismatch {
                expected: 68,
                actual: 67
            })
        );
        let mut bad = ok.clone();
        bad[0] = 0x55;
        assert_eq!(
            parse_data(&bad, QueueKind::Compression, 100),
            Err(RequestError::UnknownOpcode(0x255))
        );
        let mut bad = ok.clone();
        bad[44] = 1;
        assert_eq!(
            parse_data(&bad, QueueKind::Compression, 100),
            Err(RequestError::Reserved)
        );
        let mut bad = ok.clone();
        bad[28] = 16; // tag_len on a compression request
        assert_eq!(
            parse_data(&bad, QueueKind::Compression, 100),
            Err(RequestError::FieldNotAllowed)
        );
        let mut bad = hdr(OP_ENCRYPT, b"x");
        bad[32] = 8;
        assert_eq!(
            parse_data(&bad, QueueKind::Crypto, 100),
            Err(RequestError::IvLength(8))
        );
        let mut bad = hdr(OP_ENCRYPT, b"x");
        bad[28] = 3;
        assert_eq!(
            parse_data(&bad, QueueKind::Crypto, 100),
            Err(RequestError::TagLength(3))
        );
        assert_eq!(RequestError::TagLength(3).status(), Status::NotSupp);
        assert_eq!(RequestError::Reserved.status(), Status::BadMsg);
    }

    #[test]
    fn control_requests() {
        let h = |op: u32| {
            CtrlHdr {
                opcode: Le32::from(op),
                reserved: Le32::from(0),
            }
            .as_slice()
            .to_vec()
        };
        let destroy = [h(CTRL_DESTROY_SESSION), 7u64.to_le_bytes().to_vec()].concat();
        assert!(matches!(
            parse_ctrl(&destroy),
            Ok(CtrlRequest::DestroySession(7))
        ));
        assert_eq!(
            parse_ctrl(&destroy[..12]).unwrap_err(),
            RequestError::LengthMismatch {
                expected: 16,
                actual: 12
            }
        );
        assert_eq!(
            parse_ctrl(&h(0x99)).unwrap_err(),
            RequestError::UnknownOpcode(0x99)
        );
        assert_eq!(
            parse_ctrl(&[1, 0, 0]).unwrap_err(),
            RequestError::ShortHeader(8)
        );
        let mut r = destroy.clone();
        r[4] = 1;
        assert_eq!(parse_ctrl(&r).unwrap_err(), RequestError::Reserved);
    }
}
