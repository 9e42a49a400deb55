//! Per-device session and security-association tables.
//!
//! Handles come from one counter per device instance and are never reused, so a handle from
//! another VM (another device) or a destroyed one is simply "no such session" — the isolation
//! base for sharing one accelerator between VMs. Keys live only in expanded form inside
//! `AeadKey`/`EspSa`, which wipe themselves when the last reference (a table entry or an
//! in-flight job) is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use zeroize::Zeroize;

use super::backend::aead::AeadKey;
use super::esp_adapter::{self, EspSa};
use super::protocol::{CRYPTO_AES_GCM, CryptoKey, SaPara, Status};

/// Hard upper bound for `max_sessions`, whatever the configuration says.
pub const MAX_SESSIONS_LIMIT: u32 = 65536;
/// Hard upper bound for `max_sas`.
pub const MAX_SAS_LIMIT: u32 = 16384;

/// Sessions and SAs of one device.
#[derive(Debug, Default)]
pub struct Tables {
    sessions: HashMap<u64, Arc<AeadKey>>,
    sas: HashMap<u64, Arc<Mutex<EspSa>>>,
    next_handle: u64,
    max_sessions: usize,
    max_sas: usize,
}

/// Expands a wire key block (session body or stateless block) and wipes the wire copy.
pub fn expand_key(key: &mut CryptoKey) -> Result<AeadKey, Status> {
    let len = key.key_len.to_native() as usize;
    let result = if key.algo.to_native() != CRYPTO_AES_GCM {
        Err(Status::NotSupp)
    } else if len > key.key.len() || key.key[len.min(key.key.len())..].iter().any(|b| *b != 0) {
        Err(Status::BadMsg)
    } else {
        AeadKey::new(&key.key[..len]).map_err(|_| Status::NotSupp)
    };
    key.key.zeroize();
    result
}

impl Tables {
    /// Empty tables with the given limits (clamped to the hard limits).
    pub fn new(max_sessions: u32, max_sas: u32) -> Self {
        Tables {
            max_sessions: max_sessions.min(MAX_SESSIONS_LIMIT) as usize,
            max_sas: max_sas.min(MAX_SAS_LIMIT) as usize,
            ..Default::default()
        }
    }

    fn handle(&mut self) -> u64 {
        // 0 is never a valid handle; u64 cannot wrap in practice.
        self.next_handle += 1;
        self.next_handle
    }

    /// Creates a session; returns its handle.
    pub fn create_session(&mut self, key: &mut CryptoKey) -> Result<u64, Status> {
        if self.sessions.len() >= self.max_sessions {
            key.key.zeroize();
            return Err(Status::NoSpc);
        }
        let key = expand_key(key)?;
        let h = self.handle();
        self.sessions.insert(h, Arc::new(key));
        Ok(h)
    }

    /// Destroys a session (jobs in flight keep the key until they finish).
    pub fn destroy_session(&mut self, handle: u64) -> Result<(), Status> {
        self.sessions
            .remove(&handle)
            .map(drop)
            .ok_or(Status::NoSession)
    }

    /// Looks up a session.
    pub fn session(&self, handle: u64) -> Option<&Arc<AeadKey>> {
        self.sessions.get(&handle)
    }

    /// Adds an SA; returns its handle.
    pub fn add_sa(&mut self, para: &mut SaPara) -> Result<u64, Status> {
        let params = esp_adapter::sa_params(para);
        para.key.zeroize();
        para.salt.zeroize();
        if self.sas.len() >= self.max_sas {
            return Err(Status::NoSpc);
        }
        let sa = EspSa::new(params?)?;
        let h = self.handle();
        self.sas.insert(h, Arc::new(Mutex::new(sa)));
        Ok(h)
    }

    /// Removes an SA.
    pub fn remove_sa(&mut self, handle: u64) -> Result<(), Status> {
        self.sas.remove(&handle).map(drop).ok_or(Status::NoSession)
    }

    /// Looks up an SA.
    pub fn sa(&self, handle: u64) -> Option<&Arc<Mutex<EspSa>>> {
        self.sas.get(&handle)
    }

    /// Number of live sessions and SAs.
    pub fn counts(&self) -> (usize, usize) {
        (self.sessions.len(), self.sas.len())
    }

    /// Drops every session and SA (device reset); handles stay unique across resets.
    pub fn clear(&mut self) {
        self.sessions.clear();
        self.sas.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::endian::Le32;

    fn key(len: u32) -> CryptoKey {
        CryptoKey {
            algo: Le32::from(CRYPTO_AES_GCM),
            key_len: Le32::from(len),
            key: [0x11; 32],
        }
    }

    #[test]
    fn lifecycle_limits_and_wipe() {
        let mut t = Tables::new(2, 2);
        let mut k = key(32);
        let a = t.create_session(&mut k).unwrap();
        assert_eq!(k.key, [0; 32], "wire copy of the key is wiped");
        let b = t.create_session(&mut key(32)).unwrap();
        assert_ne!(a, b);
        assert_eq!(t.create_session(&mut key(32)), Err(Status::NoSpc));
        t.destroy_session(a).unwrap();
        assert_eq!(t.destroy_session(a), Err(Status::NoSession));
        assert!(t.session(a).is_none() && t.session(b).is_some());
        let mut short = key(16);
        // Bytes past key_len must be zero.
        assert_eq!(t.create_session(&mut short), Err(Status::BadMsg));
        let mut odd = key(20);
        odd.key[20..].fill(0);
        assert_eq!(t.create_session(&mut odd), Err(Status::NotSupp));
        let mut bad_algo = key(32);
        bad_algo.algo = Le32::from(9);
        assert_eq!(t.create_session(&mut bad_algo), Err(Status::NotSupp));
        t.clear();
        assert_eq!(t.counts(), (0, 0));
        let c = t.create_session(&mut key(32)).unwrap();
        assert!(c > b, "handles are never reused, even across reset");
    }
}
