//! AES-GCM (128/192/256-bit keys, 12-byte IV, tags of 4, 8 and 12..16 bytes) on RustCrypto.
//!
//! Keys are expanded once per session; the expanded schedules zeroize themselves on drop
//! (aes-gcm's `zeroize` feature), so dropping the last `Arc<AeadKey>` wipes the key.

use aes_gcm::aead::consts::{U4, U8, U12, U13, U14, U15};
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aes::{Aes128, Aes192, Aes256};
use aes_gcm::{AeadInOut, Aes128Gcm, Aes256Gcm, AesGcm, KeyInit, Nonce, Tag};

/// Why an AEAD operation failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AeadError {
    /// Key length is not 16, 24 or 32 bytes.
    #[error("unsupported AES-GCM key length {0}")]
    KeyLength(usize),
    /// Tag length is not one of 4, 8, 12..16.
    #[error("unsupported AES-GCM tag length {0}")]
    TagLength(usize),
    /// The tag did not verify.
    #[error("authentication tag mismatch")]
    TagMismatch,
    /// The ciphertext is shorter than its tag.
    #[error("ciphertext shorter than the tag")]
    ShortInput,
}

/// An expanded AES-GCM key.
pub enum AeadKey {
    /// AES-128-GCM: the full-tag cipher and the block cipher for truncated tags.
    Aes128(Box<(Aes128Gcm, Aes128)>),
    /// AES-192-GCM.
    Aes192(Box<(AesGcm<Aes192, U12>, Aes192)>),
    /// AES-256-GCM.
    Aes256(Box<(Aes256Gcm, Aes256)>),
}

impl std::fmt::Debug for AeadKey {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AeadKey::Aes128(_) => f.write_str("AeadKey::Aes128(..)"),
            AeadKey::Aes192(_) => f.write_str("AeadKey::Aes192(..)"),
            AeadKey::Aes256(_) => f.write_str("AeadKey::Aes256(..)"),
        }
    }
}

/// True for the tag lengths GCM allows here (the same set as Linux's `crypto_gcm_setauthsize`).
pub fn valid_tag_len(len: usize) -> bool {
    matches!(len, 4 | 8 | 12..=16)
}

// Runs `$body` with `$c` bound to a GCM cipher whose tag is `$tag` bytes long.
macro_rules! with_cipher {
    ($key:expr, $tag:expr, |$c:ident| $body:expr) => {{
        macro_rules! tagged {
            ($full:expr, $block:expr) => {
                match $tag {
                    16 => {
                        let $c = $full;
                        $body
                    }
                    4 => {
                        let $c = &AesGcm::<_, U12, U4>::from($block.clone());
                        $body
                    }
                    8 => {
                        let $c = &AesGcm::<_, U12, U8>::from($block.clone());
                        $body
                    }
                    12 => {
                        let $c = &AesGcm::<_, U12, U12>::from($block.clone());
                        $body
                    }
                    13 => {
                        let $c = &AesGcm::<_, U12, U13>::from($block.clone());
                        $body
                    }
                    14 => {
                        let $c = &AesGcm::<_, U12, U14>::from($block.clone());
                        $body
                    }
                    15 => {
                        let $c = &AesGcm::<_, U12, U15>::from($block.clone());
                        $body
                    }
                    n => Err(AeadError::TagLength(n)),
                }
            };
        }
        match $key {
            AeadKey::Aes128(k) => tagged!(&k.0, k.1),
            AeadKey::Aes192(k) => tagged!(&k.0, k.1),
            AeadKey::Aes256(k) => tagged!(&k.0, k.1),
        }
    }};
}

impl AeadKey {
    /// Expands a 16-, 24- or 32-byte key.
    pub fn new(key: &[u8]) -> Result<Self, AeadError> {
        match key.len() {
            16 => {
                let block = Aes128::new_from_slice(key).map_err(|_| AeadError::KeyLength(16))?;
                Ok(AeadKey::Aes128(Box::new((
                    Aes128Gcm::from(block.clone()),
                    block,
                ))))
            }
            24 => {
                let block = Aes192::new_from_slice(key).map_err(|_| AeadError::KeyLength(24))?;
                Ok(AeadKey::Aes192(Box::new((
                    AesGcm::from(block.clone()),
                    block,
                ))))
            }
            32 => {
                let block = Aes256::new_from_slice(key).map_err(|_| AeadError::KeyLength(32))?;
                Ok(AeadKey::Aes256(Box::new((
                    Aes256Gcm::from(block.clone()),
                    block,
                ))))
            }
            n => Err(AeadError::KeyLength(n)),
        }
    }

    /// Encrypts `buf` in place and writes the `tag_len`-byte tag to `tag_out[..tag_len]`.
    pub fn seal(
        &self,
        iv: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag_len: usize,
        tag_out: &mut [u8; 16],
    ) -> Result<(), AeadError> {
        let nonce = Nonce::<U12>::from(*iv);
        with_cipher!(self, tag_len, |c| {
            let tag = c
                .encrypt_inout_detached(&nonce, aad, buf.into())
                .map_err(|_| AeadError::ShortInput)?;
            tag_out[..tag_len].copy_from_slice(&tag);
            Ok(())
        })
    }

    /// Encrypts `src` into `dst` (same length; they must not overlap, which `&`/`&mut`
    /// guarantee) and writes the `tag_len`-byte tag to `tag_out[..tag_len]`.
    pub fn seal_to(
        &self,
        iv: &[u8; 12],
        aad: &[u8],
        src: &[u8],
        dst: &mut [u8],
        tag_len: usize,
        tag_out: &mut [u8; 16],
    ) -> Result<(), AeadError> {
        let nonce = Nonce::<U12>::from(*iv);
        with_cipher!(self, tag_len, |c| {
            let buf = InOutBuf::new(src, &mut *dst).map_err(|_| AeadError::ShortInput)?;
            let tag = c
                .encrypt_inout_detached(&nonce, aad, buf)
                .map_err(|_| AeadError::ShortInput)?;
            tag_out[..tag_len].copy_from_slice(&tag);
            Ok(())
        })
    }

    /// Verifies `tag` over `aad` and `src`, then decrypts `src` into `dst` (of the same
    /// length). On a mismatch nothing is written to `dst`: aes-gcm compares the tag before
    /// it runs the keystream. (`src` is read twice, for the tag and to decrypt: a guest that
    /// rewrites its own ciphertext meanwhile only garbles its own plaintext.)
    pub fn open_to(
        &self,
        iv: &[u8; 12],
        aad: &[u8],
        src: &[u8],
        tag: &[u8],
        dst: &mut [u8],
    ) -> Result<(), AeadError> {
        let nonce = Nonce::<U12>::from(*iv);
        with_cipher!(self, tag.len(), |c| {
            let tag = Tag::try_from(tag).map_err(|_| AeadError::TagLength(tag.len()))?;
            let buf = InOutBuf::new(src, &mut *dst).map_err(|_| AeadError::ShortInput)?;
            c.decrypt_inout_detached(&nonce, aad, buf, &tag)
                .map_err(|_| AeadError::TagMismatch)
        })
    }

    /// Verifies `tag` over `aad` and the ciphertext in `buf`, then decrypts `buf` in place.
    /// On a mismatch the contents of `buf` are unspecified and must not be released.
    pub fn open(
        &self,
        iv: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), AeadError> {
        let nonce = Nonce::<U12>::from(*iv);
        with_cipher!(self, tag.len(), |c| {
            let tag = Tag::try_from(tag).map_err(|_| AeadError::TagLength(tag.len()))?;
            c.decrypt_inout_detached(&nonce, aad, buf.into(), &tag)
                .map_err(|_| AeadError::TagMismatch)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // McGrew & Viega, "The Galois/Counter Mode of Operation", test case 4 (AES-128, with AAD).
    #[test]
    fn gcm_spec_test_case_4() {
        let key = AeadKey::new(&hex("feffe9928665731c6d6a8f9467308308")).unwrap();
        let iv: [u8; 12] = hex("cafebabefacedbaddecaf888").try_into().unwrap();
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let pt = hex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        );
        let ct = hex(
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
        );
        let mut buf = pt.clone();
        let mut tag = [0; 16];
        key.seal(&iv, &aad, &mut buf, 16, &mut tag).unwrap();
        assert_eq!(buf, ct);
        assert_eq!(tag.to_vec(), hex("5bc94fbc3221a5db94fae95ae7121a47"));
        // A truncated tag is the prefix of the full one (NIST SP 800-38D §5.2.1.2).
        let mut buf8 = pt.clone();
        let mut tag8 = [0; 16];
        key.seal(&iv, &aad, &mut buf8, 8, &mut tag8).unwrap();
        assert_eq!(&tag8[..8], &tag[..8]);
        key.open(&iv, &aad, &mut buf8, &tag8[..8]).unwrap();
        assert_eq!(buf8, pt);
        key.open(&iv, &aad, &mut buf, &tag).unwrap();
        assert_eq!(buf, pt);
        // Out of place gives the same ciphertext and tag.
        let mut out = vec![0; pt.len()];
        let mut tag2 = [0; 16];
        key.seal_to(&iv, &aad, &pt, &mut out, 16, &mut tag2)
            .unwrap();
        assert_eq!((&out, tag2), (&ct, tag));
        key.open(&iv, &aad, &mut out, &tag2).unwrap();
        assert_eq!(out, pt);
    }

    #[test]
    fn bad_lengths_and_tags() {
        assert_eq!(
            AeadKey::new(&[0; 20]).unwrap_err(),
            AeadError::KeyLength(20)
        );
        let key = AeadKey::new(&[7; 32]).unwrap();
        let mut buf = vec![1; 10];
        let mut tag = [0; 16];
        assert_eq!(
            key.seal(&[0; 12], b"", &mut buf, 5, &mut tag),
            Err(AeadError::TagLength(5))
        );
        key.seal(&[0; 12], b"a", &mut buf, 16, &mut tag).unwrap();
        tag[0] ^= 1;
        assert_eq!(
            key.open(&[0; 12], b"a", &mut buf, &tag),
            Err(AeadError::TagMismatch)
        );
        assert!(valid_tag_len(12) && !valid_tag_len(11) && !valid_tag_len(17));
    }
}
