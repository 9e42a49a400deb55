//! The virtio-accel device: configuration space, features and activation.

use std::sync::{Arc, Mutex, RwLock};

use vm_memory::endian::{Le16, Le32};
use vm_memory::{ByteValued, GuestMemory};

use super::backend::{Accelerator, Capabilities, TenantId};
use super::chain::WriteGate;
use super::handler::AccelHandler;
use super::metrics::AccelMetrics;
use super::protocol::{
    AccelConfigSpace, MAX_KEY_LEN, SERVICE_COMPRESSION, SERVICE_CRYPTO, SERVICE_IPSEC,
    VIRTIO_ACCEL_F_COMPRESSION, VIRTIO_ACCEL_F_CRYPTO, VIRTIO_ACCEL_F_IPSEC,
    VIRTIO_ACCEL_F_STATELESS, VIRTIO_ID_ACCEL,
};
use super::session::{MAX_SAS_LIMIT, MAX_SESSIONS_LIMIT, Tables};
use super::{
    DEFAULT_MAX_DATA_SIZE, DEFAULT_MAX_INFLIGHT_BYTES, MAX_DATA_SIZE_LIMIT, MAX_QUEUES_PER_SERVICE,
    QUEUE_SIZE, QueueLayout,
};
use crate::virtio::{
    ActivateError, ActivationContext, DeviceHandler, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC,
    VIRTIO_F_VERSION_1, VirtioDevice,
};

/// Why a device could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccelError {
    /// A queue count is above [`MAX_QUEUES_PER_SERVICE`].
    #[error("{0} data queues per service requested, at most {MAX_QUEUES_PER_SERVICE} allowed")]
    TooManyQueues(u16),
    /// `max_data_size` is 0 or above [`MAX_DATA_SIZE_LIMIT`].
    #[error("max_data_size {0} outside 1..={MAX_DATA_SIZE_LIMIT}")]
    DataSize(u32),
    /// Queue size is not a power of two in 2..=[`QUEUE_SIZE`].
    #[error("queue size {0} is not a power of two in 2..={QUEUE_SIZE}")]
    QueueSize(u16),
    /// The backend offers none of the services asked for.
    #[error("the accelerator offers no service")]
    NoService,
}

/// How an embedder configures one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccelConfig {
    /// Crypto data queues (0 = no crypto service even if the backend has it).
    pub crypto_queues: u16,
    /// Compression data queues.
    pub comp_queues: u16,
    /// IPsec data queues.
    pub ipsec_queues: u16,
    /// Size of each queue.
    pub queue_size: u16,
    /// Crypto sessions per device.
    pub max_sessions: u32,
    /// Security associations per device.
    pub max_sas: u32,
    /// Max aad + src (and output) bytes per request.
    pub max_data_size: u32,
    /// The VM this device belongs to, passed with every job.
    pub tenant: TenantId,
    /// Host memory requests in flight may pin before the device stops popping chains.
    pub max_inflight_bytes: usize,
}

impl Default for AccelConfig {
    fn default() -> Self {
        AccelConfig {
            crypto_queues: 2,
            comp_queues: 1,
            ipsec_queues: 1,
            queue_size: QUEUE_SIZE,
            max_sessions: 1024,
            max_sas: 256,
            max_data_size: DEFAULT_MAX_DATA_SIZE,
            tenant: 0,
            max_inflight_bytes: DEFAULT_MAX_INFLIGHT_BYTES,
        }
    }
}

/// Device state shared between the device (reset) and its running handler.
#[derive(Debug)]
pub(crate) struct State {
    /// Bumped by every reset; a handler from an older epoch stops touching guest memory.
    pub epoch: u64,
    /// The epoch whose jobs may still write guest memory in place (see `WriteGate`).
    pub gate: WriteGate,
    /// Sessions and SAs.
    pub tables: Tables,
}

/// A virtio-accel device backed by an [`Accelerator`].
pub struct Accel {
    backend: Arc<dyn Accelerator>,
    cfg: AccelConfig,
    caps: Capabilities,
    layout: QueueLayout,
    config_space: AccelConfigSpace,
    queue_sizes: Vec<u16>,
    state: Arc<Mutex<State>>,
    metrics: Arc<AccelMetrics>,
}

impl std::fmt::Debug for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accel")
            .field("cfg", &self.cfg)
            .field("caps", &self.caps)
            .finish()
    }
}

impl Accel {
    /// Builds a device offering what both `config` asks for and `backend` can do.
    pub fn new(backend: Arc<dyn Accelerator>, config: AccelConfig) -> Result<Self, AccelError> {
        for q in [
            config.crypto_queues,
            config.comp_queues,
            config.ipsec_queues,
        ] {
            if q > MAX_QUEUES_PER_SERVICE {
                return Err(AccelError::TooManyQueues(q));
            }
        }
        if config.max_data_size == 0 || config.max_data_size > MAX_DATA_SIZE_LIMIT {
            return Err(AccelError::DataSize(config.max_data_size));
        }
        if !config.queue_size.is_power_of_two() || !(2..=QUEUE_SIZE).contains(&config.queue_size) {
            return Err(AccelError::QueueSize(config.queue_size));
        }
        let caps = backend.capabilities();
        // A service exists only if the backend has an algorithm for it and it has queues.
        let layout = QueueLayout {
            crypto: if caps.crypto_algos != 0 {
                config.crypto_queues
            } else {
                0
            },
            comp: if caps.comp_algos != 0 {
                config.comp_queues
            } else {
                0
            },
            ipsec: if caps.ipsec_algos != 0 {
                config.ipsec_queues
            } else {
                0
            },
        };
        if layout.num_queues() == 1 {
            return Err(AccelError::NoService);
        }
        let services = if layout.crypto > 0 { SERVICE_CRYPTO } else { 0 }
            | if layout.comp > 0 {
                SERVICE_COMPRESSION
            } else {
                0
            }
            | if layout.ipsec > 0 { SERVICE_IPSEC } else { 0 };
        let max_sessions = config.max_sessions.min(MAX_SESSIONS_LIMIT);
        let max_sas = config.max_sas.min(MAX_SAS_LIMIT);
        let config_space = AccelConfigSpace {
            services: Le32::from(services),
            crypto_algos: Le32::from(if layout.crypto > 0 {
                caps.crypto_algos
            } else {
                0
            }),
            comp_algos: Le32::from(if layout.comp > 0 { caps.comp_algos } else { 0 }),
            ipsec_algos: Le32::from(if layout.ipsec > 0 {
                caps.ipsec_algos
            } else {
                0
            }),
            crypto_queues: Le16::from(layout.crypto),
            comp_queues: Le16::from(layout.comp),
            ipsec_queues: Le16::from(layout.ipsec),
            reserved0: Le16::from(0),
            max_sessions: Le32::from(if layout.crypto > 0 { max_sessions } else { 0 }),
            max_sas: Le32::from(if layout.ipsec > 0 { max_sas } else { 0 }),
            max_data_size: Le32::from(config.max_data_size),
            max_key_len: Le32::from(MAX_KEY_LEN as u32),
        };
        Ok(Accel {
            backend,
            queue_sizes: vec![config.queue_size; layout.num_queues()],
            state: Arc::new(Mutex::new(State {
                epoch: 0,
                gate: Arc::new(RwLock::new(0)),
                tables: Tables::new(max_sessions, max_sas).with_handle_prefix(config.tenant),
            })),
            metrics: Arc::new(AccelMetrics::default()),
            cfg: config,
            caps,
            layout,
            config_space,
        })
    }

    /// The device's counters (shared with its handler; readable at any time).
    pub fn metrics(&self) -> Arc<AccelMetrics> {
        self.metrics.clone()
    }

    /// The configuration space as the driver sees it.
    pub fn config_space(&self) -> AccelConfigSpace {
        self.config_space
    }

    /// Queue indices per service.
    pub fn layout(&self) -> QueueLayout {
        self.layout
    }

    /// Live sessions and SAs.
    pub fn session_counts(&self) -> (usize, usize) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tables
            .counts()
    }
}

impl<M: GuestMemory + Send + Sync + 'static> VirtioDevice<M> for Accel {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_ACCEL
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn avail_features(&self) -> u64 {
        let mut f = (1u64 << VIRTIO_F_VERSION_1)
            | (1 << VIRTIO_F_EVENT_IDX)
            | (1 << VIRTIO_F_INDIRECT_DESC);
        if self.layout.crypto > 0 {
            f |= 1 << VIRTIO_ACCEL_F_CRYPTO;
            if self.caps.stateless {
                f |= 1 << VIRTIO_ACCEL_F_STATELESS;
            }
        }
        if self.layout.comp > 0 {
            f |= 1 << VIRTIO_ACCEL_F_COMPRESSION;
        }
        if self.layout.ipsec > 0 {
            f |= 1 << VIRTIO_ACCEL_F_IPSEC;
        }
        f
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let cs = self.config_space.as_slice();
        for (i, b) in data.iter_mut().enumerate() {
            *b = offset
                .checked_add(i as u64)
                .and_then(|o| cs.get(usize::try_from(o).ok()?))
                .copied()
                .unwrap_or(0);
        }
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {
        // The whole configuration space is read-only (spec: "the driver MUST NOT write").
    }

    fn activate(
        &mut self,
        ctx: ActivationContext<M>,
    ) -> Result<Box<dyn DeviceHandler>, ActivateError> {
        if ctx.acked_features & (1 << VIRTIO_F_VERSION_1) == 0 {
            return Err(ActivateError::BadFeatures(ctx.acked_features));
        }
        if !ctx.queues.iter().any(|(i, _)| *i == 0) {
            return Err(ActivateError::QueueNotReady(0));
        }
        let epoch = self.state.lock().unwrap_or_else(|e| e.into_inner()).epoch;
        let handler = AccelHandler::new(
            ctx,
            self.layout,
            self.backend.clone(),
            self.state.clone(),
            epoch,
            self.metrics.clone(),
            self.cfg.max_data_size,
            self.cfg.tenant,
            self.cfg.max_inflight_bytes,
        )
        .map_err(|e| ActivateError::Backend(e.to_string()))?;
        Ok(Box::new(handler))
    }

    fn reset(&mut self) {
        // Taking the lock waits for a handler pass in progress; afterwards the old handler
        // sees a new epoch and never writes guest memory again. Dropping the tables wipes the
        // keys (in-flight jobs drop their references when they finish).
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.epoch += 1;
        // Waits for an in-place job write in progress; later ones see the new epoch.
        *st.gate.write().unwrap_or_else(|e| e.into_inner()) = st.epoch;
        st.tables.clear();
    }
}
