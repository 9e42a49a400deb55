//! Control-queue requests: sessions and security associations, executed synchronously on the
//! event loop (they are cheap and their order matters, spec §7).

use std::sync::atomic::Ordering;

use vm_memory::endian::{Le32, Le64};
use vm_memory::{ByteValued, GuestMemory};
use zeroize::Zeroize;

use super::AccelHandler;
use crate::virtio::accel::chain::SplitChain;
use crate::virtio::accel::protocol::{CtrlResp, IPSEC_ESP_AES_GCM, SaStats, Status};
use crate::virtio::accel::request::{CtrlRequest, parse_ctrl};
use crate::virtio::accel::session::Tables;

impl<M: GuestMemory + Send + Sync + 'static> AccelHandler<M> {
    pub(super) fn control(&mut self, qpos: usize, mut sc: SplitChain, tables: &mut Tables) {
        let trailer = size_of::<CtrlResp>();
        if sc.writable.len() < trailer {
            self.metrics
                .dropped_no_trailer
                .fetch_add(1, Ordering::Relaxed);
            sc.readable.zeroize();
            self.recycle(sc.readable);
            return self.add_used(qpos, sc.head, 0);
        }
        let out_cap = sc.writable.len() - trailer;
        let mut stats: Option<SaStats> = None;
        let result = match parse_ctrl(&sc.readable) {
            Err(e) => Err(e.status()),
            Ok(CtrlRequest::CreateSession(mut key)) if self.layout.crypto > 0 => {
                tables.create_session(&mut key)
            }
            Ok(CtrlRequest::CreateSession(mut key)) => {
                key.key.zeroize();
                Err(Status::NotSupp)
            }
            Ok(CtrlRequest::DestroySession(h)) => tables.destroy_session(h).map(|()| 0),
            Ok(CtrlRequest::AddSa(mut p)) => {
                let algo = p.algo.to_native();
                if self.layout.ipsec == 0
                    || algo != IPSEC_ESP_AES_GCM
                    || self.caps.ipsec_algos & (1 << algo) == 0
                {
                    p.key.zeroize();
                    Err(Status::NotSupp)
                } else {
                    tables.add_sa(&mut p)
                }
            }
            Ok(CtrlRequest::RemoveSa(h)) => tables.remove_sa(h).map(|()| 0),
            Ok(CtrlRequest::QuerySa(h)) => match tables.sa(h) {
                None => Err(Status::NoSession),
                Some(_) if out_cap < size_of::<SaStats>() => Err(Status::OutputTooSmall),
                Some(sa) => {
                    stats = Some(sa.lock().unwrap_or_else(|e| e.into_inner()).stats());
                    Ok(0)
                }
            },
        };
        // The request may have carried a key.
        sc.readable.zeroize();
        self.recycle(sc.readable);
        let (status, handle) = match result {
            Ok(h) => (Status::Ok, h),
            Err(s) => (s, 0),
        };
        self.metrics.count_status(status);
        if status == Status::Ok {
            self.metrics.ctrl_ok.fetch_add(1, Ordering::Relaxed);
        }
        let mut used = trailer;
        let mut ok = true;
        if let Some(s) = stats {
            ok &= sc.writable.write_at(&*self.mem, 0, s.as_slice()).is_ok();
            used += size_of::<SaStats>();
        }
        let resp = CtrlResp {
            handle: Le64::from(handle),
            status: Le32::from(status as u32),
            reserved: Le32::from(0),
        };
        ok &= sc
            .writable
            .write_at(&*self.mem, sc.writable.len() - trailer, resp.as_slice())
            .is_ok();
        if !ok {
            self.metrics.write_failed.fetch_add(1, Ordering::Relaxed);
            used = 0;
        }
        self.add_used(qpos, sc.head, used as u32);
    }
}
