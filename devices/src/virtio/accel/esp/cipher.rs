//! AES-GCM as RFC 4106 uses it: one of AES-128/192/256 with an 8-, 12- or 16-byte ICV, a 4-byte
//! salt and a 12-byte nonce (salt || explicit IV). The key schedule is zeroized on drop
//! (aes-gcm's `zeroize` feature); the salt by our own `Drop`.

use aes_gcm::aead::array::typenum::{U8, U12, U16};
use aes_gcm::aead::{AeadInOut, KeyInit, inout::InOutBuf};
use aes_gcm::aes::{Aes128, Aes192, Aes256};
use aes_gcm::{AesGcm, Tag};
use zeroize::Zeroize;

use super::error::EspError;

/// RFC 4106 §8.1: the salt is the last 4 bytes of the keying material.
pub const SALT_LEN: usize = 4;
/// RFC 4106 §3.1: the explicit IV carried in each packet.
pub const IV_LEN: usize = 8;

/// The nine AES-GCM instantiations RFC 4106 allows (key size x ICV size). Boxed: the AES key
/// schedules are large and an SA moves around.
enum Gcm {
    A128T8(Box<AesGcm<Aes128, U12, U8>>),
    A128T12(Box<AesGcm<Aes128, U12, U12>>),
    A128T16(Box<AesGcm<Aes128, U12, U16>>),
    A192T8(Box<AesGcm<Aes192, U12, U8>>),
    A192T12(Box<AesGcm<Aes192, U12, U12>>),
    A192T16(Box<AesGcm<Aes192, U12, U16>>),
    A256T8(Box<AesGcm<Aes256, U12, U8>>),
    A256T12(Box<AesGcm<Aes256, U12, U12>>),
    A256T16(Box<AesGcm<Aes256, U12, U16>>),
}

/// Runs `$body` with `$c` bound to whichever instantiation `$gcm` holds.
macro_rules! with_gcm {
    ($gcm:expr, $c:ident => $body:expr) => {
        match $gcm {
            Gcm::A128T8($c) => $body,
            Gcm::A128T12($c) => $body,
            Gcm::A128T16($c) => $body,
            Gcm::A192T8($c) => $body,
            Gcm::A192T12($c) => $body,
            Gcm::A192T16($c) => $body,
            Gcm::A256T8($c) => $body,
            Gcm::A256T12($c) => $body,
            Gcm::A256T16($c) => $body,
        }
    };
}

/// An RFC 4106 AEAD context: AES-GCM key schedule, salt and ICV length.
pub struct EspAead {
    gcm: Gcm,
    salt: [u8; SALT_LEN],
    icv_len: usize,
}

impl Drop for EspAead {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

fn make<C: KeyInit>(key: &[u8]) -> Box<C> {
    // The caller matched the length against C's key size, so this cannot fail.
    Box::new(C::new_from_slice(key).expect("key length checked by caller"))
}

impl EspAead {
    /// Builds the context from `key || salt` (20, 28 or 36 bytes) and the ICV length in bytes.
    pub fn new(keymat: &[u8], icv_len: u8) -> Result<Self, EspError> {
        if keymat.len() < SALT_LEN {
            return Err(EspError::InvalidKeyLength(keymat.len()));
        }
        let (key, salt) = keymat.split_at(keymat.len() - SALT_LEN);
        let gcm = match (key.len(), icv_len) {
            (16, 8) => Gcm::A128T8(make(key)),
            (16, 12) => Gcm::A128T12(make(key)),
            (16, 16) => Gcm::A128T16(make(key)),
            (24, 8) => Gcm::A192T8(make(key)),
            (24, 12) => Gcm::A192T12(make(key)),
            (24, 16) => Gcm::A192T16(make(key)),
            (32, 8) => Gcm::A256T8(make(key)),
            (32, 12) => Gcm::A256T12(make(key)),
            (32, 16) => Gcm::A256T16(make(key)),
            (16 | 24 | 32, _) => return Err(EspError::InvalidIcvLength(icv_len)),
            _ => return Err(EspError::InvalidKeyLength(keymat.len())),
        };
        let mut s = [0u8; SALT_LEN];
        s.copy_from_slice(salt);
        Ok(Self {
            gcm,
            salt: s,
            icv_len: usize::from(icv_len),
        })
    }

    /// The ICV length in bytes.
    pub fn icv_len(&self) -> usize {
        self.icv_len
    }

    fn nonce(&self, iv: &[u8; IV_LEN]) -> [u8; 12] {
        // RFC 4106 §4: nonce = salt || explicit IV.
        let mut n = [0u8; 12];
        n[..SALT_LEN].copy_from_slice(&self.salt);
        n[SALT_LEN..].copy_from_slice(iv);
        n
    }

    /// Encrypts `buf` in place and writes the ICV to `icv` (exactly `icv_len()` bytes).
    pub fn seal(
        &self,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        buf: &mut [u8],
        icv: &mut [u8],
    ) -> Result<(), EspError> {
        let nonce = self.nonce(iv).into();
        with_gcm!(&self.gcm, c => {
            let tag = c
                .encrypt_inout_detached(&nonce, aad, InOutBuf::from(buf))
                .map_err(|_| EspError::Crypto)?;
            if icv.len() != tag.len() {
                return Err(EspError::Crypto);
            }
            icv.copy_from_slice(&tag);
        });
        Ok(())
    }

    /// Verifies `icv` over `aad || ciphertext` in constant time and only then decrypts
    /// `ciphertext` into `plain` (same length).
    pub fn open(
        &self,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        plain: &mut [u8],
        icv: &[u8],
    ) -> Result<(), EspError> {
        let nonce = self.nonce(iv).into();
        let buf = InOutBuf::new(ciphertext, plain).map_err(|_| EspError::Crypto)?;
        with_gcm!(&self.gcm, c => {
            let tag = Tag::try_from(icv).map_err(|_| EspError::IcvMismatch)?;
            c.decrypt_inout_detached(&nonce, aad, buf, &tag)
                .map_err(|_| EspError::IcvMismatch)
        })
    }
}
