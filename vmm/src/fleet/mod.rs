//! Several VMs in one accelvm process, mapped onto shared accelerators.
//!
//! [`file`] reads and checks the configuration; [`Fleet`] creates one
//! `SharedAccelerator` per `[[accelerator]]`, builds every VM (each its own KVM VM, on its
//! own thread) with one virtio-accel device per mapping, runs them to the end, and serves
//! live counters on a unix socket ([`api`]).

pub mod api;
pub mod file;
pub mod stats;

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use accelvm_devices::virtio::accel::backend::shared::{
    ShareError, SharedAccelerator, SharedConfig, TenantConfig,
};
use accelvm_devices::virtio::accel::{
    Accel, AccelConfig, AccelError, AccelMetrics, SoftwareAccelerator,
};
use accelvm_devices::virtio::net::NetError;

use crate::cli::{CliError, find_images_dir};
use crate::config::{ConfigError, DEFAULT_CMDLINE, DEFAULT_MEMORY_MIB, VmConfig};
use crate::exit::{ExitReason, ExitSignal};
use crate::net_config::{NetBuildError, build_net_devices};
use crate::signals::BlockedStopSignals;
use crate::{VmOutcome, Vmm, VmmError};
use file::Plan;

/// Why a fleet could not start.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Default images not found.
    #[error("vm {0}: {1}")]
    Images(String, #[source] CliError),
    /// A VM's settings are invalid.
    #[error("vm {0}: {1}")]
    Vm(String, #[source] ConfigError),
    /// The single VM's settings (command-line flags) are invalid.
    #[error(transparent)]
    Flags(#[from] ConfigError),
    /// The accelerator could not be created.
    #[error("accelerator {0}: {1}")]
    Accelerator(String, #[source] ShareError),
    /// A mapping could not be attached.
    #[error("vm {0}: {1}")]
    Attach(String, #[source] ShareError),
    /// The device could not be built.
    #[error("vm {0}: cannot build the virtio-accel device: {1}")]
    Device(String, #[source] AccelError),
    /// A NIC's TAP could not be opened or created (the TAP errors name the TAP).
    #[error("vm {0}")]
    Net(String, #[source] NetError),
    /// The NICs were refused before opening (the file check already catches this).
    #[error("vm {0}")]
    NetSpec(String, #[source] NetBuildError),
    /// The stats socket.
    #[error("cannot serve the API socket {0}")]
    Api(PathBuf, #[source] std::io::Error),
    /// Signals could not be blocked.
    #[error("cannot block SIGTERM/SIGINT")]
    Signals(#[source] std::io::Error),
    /// A VM thread could not be started.
    #[error("cannot start the thread of vm {0}")]
    Spawn(String, #[source] std::io::Error),
}

/// Process-wide settings of a run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Serve stats on this unix socket.
    pub api_socket: Option<PathBuf>,
    /// KVM device node.
    pub kvm_device: Option<PathBuf>,
    /// Feed stdin to the guest (only honoured with one VM).
    pub stdin_to_guest: bool,
    /// Start-up probe (one VM only).
    pub startup_probe: bool,
}

/// How one VM ended.
#[derive(Debug)]
pub struct VmReport {
    /// Name.
    pub name: String,
    /// Whether it ran a guest command.
    pub guest_cmd: bool,
    /// Outcome, or why it failed.
    pub result: Result<VmOutcome, VmmError>,
}

/// What the stats API shows about a VM.
pub struct VmEntry {
    /// Name.
    pub name: String,
    /// "starting", "running" or "exited: ...".
    pub state: String,
    /// (accelerator name, device counters) per virtio-accel device.
    pub devices: Vec<(String, Arc<AccelMetrics>)>,
}

/// Everything the stats API reads, shared with the server thread.
pub struct Registry {
    /// The accelerators.
    pub accelerators: Vec<Arc<SharedAccelerator>>,
    /// The VMs.
    pub vms: Mutex<Vec<VmEntry>>,
}

/// Converts a checked plan into VM configurations and devices (no KVM yet).
pub struct Fleet {
    registry: Arc<Registry>,
    configs: Vec<(VmConfig, bool)>,
}

fn default_images(vm: &str) -> Result<PathBuf, FleetError> {
    find_images_dir().ok_or_else(|| FleetError::Images(vm.into(), CliError::NoImages))
}

impl Fleet {
    /// Creates the accelerators, attaches every mapping and builds every VM's config.
    /// Input errors come out here, before any VM exists.
    pub fn new(plan: &Plan, opts: &RunOptions) -> Result<Self, FleetError> {
        let mut accelerators = Vec::new();
        for a in &plan.accelerators {
            // The shared accelerator's threads are the backend's workers.
            let backend = SoftwareAccelerator::new(0)
                .map_err(|e| FleetError::Accelerator(a.name.clone(), ShareError::Spawn(e)))?;
            let shared = SharedAccelerator::new(
                Arc::new(backend),
                SharedConfig {
                    name: a.name.clone(),
                    workers: a.workers,
                    offered: a.offered,
                    max_tenants: a.max_tenants,
                },
            )
            .map_err(|e| FleetError::Accelerator(a.name.clone(), e))?;
            accelerators.push(Arc::new(shared));
        }
        let single = plan.vms.len() == 1;
        let mut configs = Vec::new();
        let mut entries = Vec::new();
        for v in &plan.vms {
            let kernel = match &v.kernel {
                Some(k) => k.clone(),
                None => default_images(&v.name)?.join("vmlinuz"),
            };
            let initrd = match &v.initrd {
                Some(i) if i.as_os_str().is_empty() => None,
                Some(i) => Some(i.clone()),
                None => Some(default_images(&v.name)?.join("initrd.img")),
            };
            let mut c = VmConfig::new(kernel);
            c.initrd = initrd;
            c.cmdline = v.cmdline.clone().unwrap_or_else(|| DEFAULT_CMDLINE.into());
            c.cpus = v.vcpus;
            c.memory_mib = v.memory.unwrap_or(DEFAULT_MEMORY_MIB);
            c.guest_cmd = v.guest_cmd.clone();
            if let Some(k) = &opts.kvm_device {
                c.kvm_device = k.clone();
            }
            c.stdin_to_guest = single && opts.stdin_to_guest;
            c.startup_probe = single && opts.startup_probe;
            // Several VMs share stdout: each line says whose it is.
            c.console_prefix = (!single).then(|| format!("[{}] ", v.name));
            c.validate()
                .map_err(|e| FleetError::Vm(v.name.clone(), e))?;
            let mut devices = Vec::new();
            for m in &v.accels {
                let acc = &accelerators[m.accelerator];
                let handle = acc
                    .attach(TenantConfig {
                        name: v.name.clone(),
                        weight: m.weight,
                        limits: m.limits,
                        caps: m.caps,
                    })
                    .map_err(|e| FleetError::Attach(v.name.clone(), e))?;
                let cfg = AccelConfig {
                    crypto_queues: m.queues,
                    comp_queues: m.queues,
                    ipsec_queues: m.queues,
                    max_sessions: m.max_sessions,
                    max_sas: m.max_sas,
                    tenant: handle.id(),
                    ..AccelConfig::default()
                };
                let dev =
                    Accel::new(handle, cfg).map_err(|e| FleetError::Device(v.name.clone(), e))?;
                devices.push((acc.name().to_string(), dev.metrics()));
                c.devices.push(Box::new(dev));
            }
            // Same builder as `--net`: the TAPs are opened (or created) now, so a TAP that
            // cannot be had fails the whole file before any VM runs.
            let nets = build_net_devices(&v.nets).map_err(|e| match e {
                // Not "--net tap=...": the file has no such option.
                NetBuildError::Device { source, .. } => FleetError::Net(v.name.clone(), source),
                e => FleetError::NetSpec(v.name.clone(), e),
            })?;
            for net in nets {
                c.devices.push(Box::new(net));
            }
            entries.push(VmEntry {
                name: v.name.clone(),
                state: "starting".into(),
                devices,
            });
            configs.push((c, v.guest_cmd.is_some()));
        }
        Ok(Fleet {
            registry: Arc::new(Registry {
                accelerators,
                vms: Mutex::new(entries),
            }),
            configs,
        })
    }

    /// One VM from an already built configuration (the single-VM command line, whose flags
    /// may add devices of their own), run by the same machinery as a configuration file.
    pub fn single(name: &str, config: VmConfig) -> Result<Self, FleetError> {
        config.validate()?;
        let has_cmd = config.guest_cmd.is_some();
        Ok(Fleet {
            registry: Arc::new(Registry {
                accelerators: Vec::new(),
                vms: Mutex::new(vec![VmEntry {
                    name: name.into(),
                    state: "starting".into(),
                    devices: Vec::new(),
                }]),
            }),
            configs: vec![(config, has_cmd)],
        })
    }

    /// The counters the API serves.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// Runs every VM to its end. A signal stops them all; a VM that fails to start stops
    /// the others; otherwise each VM ends on its own and the rest keep running.
    pub fn run(self, opts: &RunOptions) -> Result<Vec<VmReport>, FleetError> {
        // VM threads inherit the mask: SIGTERM/SIGINT only ever reach a VM's signalfd.
        let blocked = BlockedStopSignals::new().map_err(FleetError::Signals)?;
        let mut api = match &opts.api_socket {
            Some(path) => Some(
                api::ApiServer::start(path, self.registry.clone())
                    .map_err(|e| FleetError::Api(path.clone(), e))?,
            ),
            None => None,
        };
        let names: Vec<String> = self
            .registry
            .vms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|v| v.name.clone())
            .collect();
        enum Event {
            Started(usize, Arc<ExitSignal>),
            Done(usize, Result<VmOutcome, VmmError>),
        }
        let (tx, rx) = mpsc::channel();
        let mut threads = Vec::new();
        let mut guest_cmd = Vec::new();
        let mut spawn_error = None;
        let single = self.configs.len() == 1;
        let run_one = |i: usize, config: VmConfig, tx: mpsc::Sender<Event>| {
            let vmm = match Vmm::new(config) {
                Ok(v) => v,
                Err(e) => {
                    let _ = tx.send(Event::Done(i, Err(e)));
                    return;
                }
            };
            let _ = tx.send(Event::Started(i, vmm.exit_signal()));
            let _ = tx.send(Event::Done(i, vmm.run()));
        };
        for (i, (config, has_cmd)) in self.configs.into_iter().enumerate() {
            guest_cmd.push(has_cmd);
            if single {
                // One VM runs on the calling thread, exactly like a plain single-VM VMM
                // (no extra thread to outlive it); the events wait in the channel.
                run_one(i, config, tx.clone());
                continue;
            }
            let tx = tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("vm-{}", names[i]))
                .spawn(move || run_one(i, config, tx));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    spawn_error = Some(FleetError::Spawn(names[i].clone(), e));
                    break;
                }
            }
        }
        drop(tx);
        let mut exits: Vec<Option<Arc<ExitSignal>>> = vec![None; names.len()];
        let mut results: Vec<Option<Result<VmOutcome, VmmError>>> =
            (0..names.len()).map(|_| None).collect();
        let mut stop_all: Option<ExitReason> = spawn_error
            .as_ref()
            .map(|_| ExitReason::Failed("accelvm could not start every VM".into()));
        let set_state = |i: usize, s: String| {
            if let Some(v) = self
                .registry
                .vms
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(i)
            {
                v.state = s;
            }
        };
        for event in rx {
            match event {
                Event::Started(i, exit) => {
                    if let Some(r) = &stop_all {
                        exit.request(r.clone());
                    }
                    set_state(i, "running".into());
                    exits[i] = Some(exit);
                }
                Event::Done(i, r) => {
                    let stop = match &r {
                        Ok(o) => {
                            set_state(i, format!("exited ({})", o.reason));
                            matches!(o.reason, ExitReason::Signal(_)).then(|| o.reason.clone())
                        }
                        Err(e) => {
                            set_state(i, format!("failed: {e}"));
                            // Failing to start (no KVM, bad kernel) takes the others down;
                            // a guest crash after starting does not.
                            exits[i].is_none().then(|| {
                                ExitReason::Failed(format!("vm {} failed to start", names[i]))
                            })
                        }
                    };
                    exits[i] = None;
                    results[i] = Some(r);
                    if let Some(reason) = stop
                        && stop_all.is_none()
                    {
                        for e in exits.iter().flatten() {
                            e.request(reason.clone());
                        }
                        stop_all = Some(reason);
                    }
                }
            }
        }
        for t in threads {
            let _ = t.join();
        }
        if let Some(a) = api.as_mut() {
            a.stop();
        }
        drop(blocked);
        if let Some(e) = spawn_error {
            return Err(e);
        }
        Ok(names
            .into_iter()
            .zip(guest_cmd)
            .zip(results)
            .filter_map(|((name, guest_cmd), r)| {
                Some(VmReport {
                    name,
                    guest_cmd,
                    result: r?,
                })
            })
            .collect())
    }
}
