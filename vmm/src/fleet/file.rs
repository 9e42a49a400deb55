//! The `accelvm run --config FILE` format (docs/config.md): TOML accelerators and VMs, read
//! with serde, then checked as a whole so every mistake is refused before any VM starts.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use accelvm_devices::virtio::accel::backend::Capabilities;
use accelvm_devices::virtio::accel::backend::shared::{BucketConfig, LimitPolicy, TenantLimits};
use accelvm_devices::virtio::accel::protocol::{
    COMP_DEFLATE, COMP_LZ4, CRYPTO_AES_GCM, IPSEC_ESP_AES_GCM,
};
use accelvm_devices::virtio::accel::{MAX_QUEUES_PER_SERVICE, SoftwareAccelerator};
use serde::Deserialize;

use crate::net_config::{NetSpec as NetPlan, NetSpecError};

/// Longest accelerator or VM name (it prefixes console lines and names threads).
pub const MAX_NAME_LEN: usize = 32;
/// Most VMs one accelvm process runs.
pub const MAX_VMS: usize = 64;
/// Largest weight.
pub const MAX_WEIGHT: u32 = 1000;
/// Most NICs one VM may declare (each takes a virtio-mmio window and an interrupt line).
pub const MAX_NETS_PER_VM: usize = 8;

/// Why a configuration file is refused.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file cannot be read.
    #[error("cannot read {0}")]
    Read(PathBuf, #[source] std::io::Error),
    /// TOML syntax or an unknown/mistyped key.
    #[error("{0}: {1}")]
    Parse(PathBuf, String),
    /// No `[[vm]]`.
    #[error("the configuration declares no [[vm]]")]
    NoVms,
    /// Too many VMs.
    #[error("the configuration declares {0} VMs, at most {MAX_VMS} are supported")]
    TooManyVms(usize),
    /// Empty, too long or odd name.
    #[error("invalid {0} name {1:?} (1..={MAX_NAME_LEN} characters of [A-Za-z0-9_.-])")]
    BadName(&'static str, String),
    /// Two things of the same kind share a name.
    #[error("duplicate {0} name {1:?}")]
    Duplicate(&'static str, String),
    /// Backend kind not known.
    #[error("accelerator {0}: unknown backend {1:?} (supported: \"software\")")]
    UnknownBackend(String, String),
    /// Algorithm name not known for the service.
    #[error("accelerator {0}: unknown {1} algorithm {2:?} (supported: {3})")]
    UnknownAlgorithm(String, &'static str, String, &'static str),
    /// Worker count out of range.
    #[error("accelerator {0}: workers must be between 1 and {1}, got {2}")]
    Workers(String, usize, usize),
    /// A capacity field out of range.
    #[error("accelerator {0}: {1} must be between 1 and {2}, got {3}")]
    Capacity(String, &'static str, u64, u64),
    /// The accelerator offers nothing.
    #[error("accelerator {0} offers no service")]
    NothingOffered(String),
    /// A VM maps to an accelerator that does not exist.
    #[error("vm {0}: unknown accelerator {1:?}")]
    UnknownAccelerator(String, String),
    /// A mapping asks for a service the accelerator lacks.
    #[error("vm {0}: accelerator {1} does not offer {2}")]
    MissingCapability(String, String, String),
    /// An exclusive accelerator is mapped more than once.
    #[error("accelerator {0} is mapped exclusively by vm {1} and also by vm {2}")]
    ExclusiveConflict(String, String, String),
    /// More mappings than the accelerator's max-tenants.
    #[error("accelerator {0} serves at most {1} mappings, {2} are configured")]
    TooManyTenants(String, u32, usize),
    /// A limit or weight is invalid.
    #[error("vm {0}, accelerator {1}: invalid {2}: {3}")]
    BadLimit(String, String, &'static str, String),
    /// A VM field is invalid.
    #[error("vm {0}: {1}")]
    BadVm(String, String),
    /// A `[[vm.net]]` has a bad TAP name or MAC.
    #[error("vm {0}: [[vm.net]] tap = {1:?}")]
    BadNet(String, String, #[source] NetSpecError),
    /// Two NICs (of one VM or of two) name the same TAP: both would read its frames.
    #[error("TAP {0:?} is used by vm {1} and again by vm {2}")]
    DuplicateTap(String, String, String),
    /// Too many NICs on one VM.
    #[error("vm {0}: {1} [[vm.net]] devices, at most {MAX_NETS_PER_VM} are supported")]
    TooManyNets(String, usize),
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Host accelerators.
    #[serde(default, rename = "accelerator")]
    pub accelerators: Vec<AcceleratorSpec>,
    /// Guests.
    #[serde(default, rename = "vm")]
    pub vms: Vec<VmSpec>,
}

/// `[[accelerator]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AcceleratorSpec {
    /// Name VMs map to.
    pub name: String,
    /// Backend kind; only "software".
    #[serde(default = "default_backend")]
    pub backend: String,
    /// Worker threads (jobs executing at once).
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Crypto algorithms offered (default: all the backend has).
    pub crypto: Option<Vec<String>>,
    /// Compression algorithms offered.
    pub compression: Option<Vec<String>>,
    /// IPsec transforms offered.
    pub ipsec: Option<Vec<String>>,
    /// Whether crypto requests may carry their own key.
    #[serde(default = "yes")]
    pub stateless: bool,
    /// Capacity: most mappings (virtio-accel devices) it serves.
    #[serde(default = "default_max_tenants")]
    pub max_tenants: u32,
    /// Capacity: requests one mapping may have queued; beyond, BUSY.
    #[serde(default = "default_queue_depth")]
    pub queue_depth: u32,
}

/// Firecracker-style token bucket.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BucketSpec {
    /// Tokens in a full bucket.
    pub size: u64,
    /// Milliseconds to refill it from empty.
    pub refill_time_ms: u64,
    /// Extra tokens usable once.
    #[serde(default)]
    pub one_time_burst: u64,
}

/// `[[vm.accel]]`: one virtio-accel device and the accelerator behind it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AccelSpec {
    /// Accelerator name.
    pub accelerator: String,
    /// Services the device offers (default: all the accelerator offers).
    pub services: Option<Vec<String>>,
    /// DRR weight.
    #[serde(default = "one")]
    pub weight: u32,
    /// "shared" (default) or "exclusive".
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Crypto sessions the device allows.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: u32,
    /// SAs the device allows.
    #[serde(default = "default_max_sas")]
    pub max_sas: u32,
    /// Requests in flight (0 = unlimited).
    #[serde(default)]
    pub max_in_flight: u32,
    /// "wait" (default) or "busy".
    #[serde(default = "default_on_limit")]
    pub on_limit: String,
    /// Bytes (aad + src) per second.
    pub bandwidth: Option<BucketSpec>,
    /// Requests per second.
    pub ops: Option<BucketSpec>,
    /// Data queues per service.
    #[serde(default = "default_queues")]
    pub queues: u16,
}

/// `[[vm.net]]`: one virtio-net device, the same as `--net tap=NAME[,mac=MAC]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NetSpec {
    /// Host TAP device.
    pub tap: String,
    /// Guest MAC address.
    pub mac: Option<String>,
}

/// `[[vm]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VmSpec {
    /// Name (console prefix, stats).
    pub name: String,
    /// Kernel (default images/out/vmlinuz).
    pub kernel: Option<PathBuf>,
    /// Initrd (default images/out/initrd.img); "" for none.
    pub initrd: Option<PathBuf>,
    /// Base command line.
    pub cmdline: Option<String>,
    /// vCPUs.
    #[serde(default = "one")]
    pub vcpus: u32,
    /// MiB of RAM.
    pub memory: Option<u64>,
    /// Command the guest runs.
    pub guest_cmd: Option<String>,
    /// virtio-accel devices.
    #[serde(default)]
    pub accel: Vec<AccelSpec>,
    /// virtio-net devices.
    #[serde(default)]
    pub net: Vec<NetSpec>,
}

fn default_backend() -> String {
    "software".into()
}
fn default_workers() -> usize {
    2
}
fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn default_max_tenants() -> u32 {
    16
}
fn default_queue_depth() -> u32 {
    1024
}
fn default_mode() -> String {
    "shared".into()
}
fn default_max_sessions() -> u32 {
    1024
}
fn default_max_sas() -> u32 {
    256
}
fn default_on_limit() -> String {
    "wait".into()
}
fn default_queues() -> u16 {
    1
}

/// A checked accelerator.
#[derive(Clone, Debug)]
pub struct AcceleratorPlan {
    /// Name.
    pub name: String,
    /// Worker threads.
    pub workers: usize,
    /// Capabilities offered.
    pub offered: Capabilities,
    /// Most tenants.
    pub max_tenants: u32,
}

/// A checked mapping.
#[derive(Clone, Debug)]
pub struct MappingPlan {
    /// Index into [`Plan::accelerators`].
    pub accelerator: usize,
    /// What the device offers.
    pub caps: Capabilities,
    /// DRR weight.
    pub weight: u32,
    /// Limits.
    pub limits: TenantLimits,
    /// Device session limit.
    pub max_sessions: u32,
    /// Device SA limit.
    pub max_sas: u32,
    /// Data queues per service.
    pub queues: u16,
}

/// A checked VM.
#[derive(Clone, Debug)]
pub struct VmPlan {
    /// Name.
    pub name: String,
    /// Kernel.
    pub kernel: Option<PathBuf>,
    /// Initrd: None = default, Some("") = none.
    pub initrd: Option<PathBuf>,
    /// Command line.
    pub cmdline: Option<String>,
    /// vCPUs.
    pub vcpus: u32,
    /// MiB.
    pub memory: Option<u64>,
    /// Guest command.
    pub guest_cmd: Option<String>,
    /// Devices.
    pub accels: Vec<MappingPlan>,
    /// NICs, checked exactly like `--net` (built by `net_config::build_net_devices`).
    pub nets: Vec<NetPlan>,
}

/// Everything a run needs, validated.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Accelerators, in file order.
    pub accelerators: Vec<AcceleratorPlan>,
    /// VMs, in file order.
    pub vms: Vec<VmPlan>,
}

/// Reads and checks `path`.
pub fn load(path: &Path) -> Result<Plan, FileError> {
    let text = std::fs::read_to_string(path).map_err(|e| FileError::Read(path.into(), e))?;
    parse(&text).map_err(|e| match e {
        FileError::Parse(_, msg) => FileError::Parse(path.into(), msg),
        e => e,
    })
}

/// Parses and checks a configuration text.
pub fn parse(text: &str) -> Result<Plan, FileError> {
    let file: FileConfig = toml::from_str(text)
        .map_err(|e| FileError::Parse(PathBuf::new(), e.to_string().replace('\n', " ")))?;
    check(file)
}

fn check_name(kind: &'static str, name: &str) -> Result<(), FileError> {
    let ok = (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(FileError::BadName(kind, name.into()))
    }
}

/// Bits for the algorithms named; `None` gives everything the backend has if `all` (no
/// service listed at all), else nothing.
fn algorithms(
    acc: &str,
    service: &'static str,
    names: &Option<Vec<String>>,
    table: &[(&str, u32)],
    supported: &'static str,
    backend: u32,
    all: bool,
) -> Result<u32, FileError> {
    let Some(names) = names else {
        return Ok(if all { backend } else { 0 });
    };
    let mut bits = 0;
    for n in names {
        let bit = table
            .iter()
            .find(|(name, _)| name == n)
            .map(|(_, b)| *b)
            .ok_or_else(|| {
                FileError::UnknownAlgorithm(acc.into(), service, n.clone(), supported)
            })?;
        bits |= 1 << bit;
    }
    Ok(bits & backend)
}

fn bucket(
    vm: &str,
    acc: &str,
    what: &'static str,
    b: Option<BucketSpec>,
) -> Result<Option<BucketConfig>, FileError> {
    let Some(b) = b else { return Ok(None) };
    if b.size == 0 || b.refill_time_ms == 0 {
        return Err(FileError::BadLimit(
            vm.into(),
            acc.into(),
            what,
            "size and refill-time-ms must be greater than 0".into(),
        ));
    }
    Ok(Some(BucketConfig {
        size: b.size,
        one_time_burst: b.one_time_burst,
        refill_time_ms: b.refill_time_ms,
    }))
}

fn check(file: FileConfig) -> Result<Plan, FileError> {
    if file.vms.is_empty() {
        return Err(FileError::NoVms);
    }
    if file.vms.len() > MAX_VMS {
        return Err(FileError::TooManyVms(file.vms.len()));
    }
    let backend = SoftwareAccelerator::new(0)
        .map(|s| accelvm_devices::virtio::accel::Accelerator::capabilities(&s))
        .unwrap_or_default();
    let mut accelerators = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut depth = Vec::new();
    for a in &file.accelerators {
        check_name("accelerator", &a.name)?;
        if by_name.insert(a.name.clone(), accelerators.len()).is_some() {
            return Err(FileError::Duplicate("accelerator", a.name.clone()));
        }
        if a.backend != "software" {
            return Err(FileError::UnknownBackend(a.name.clone(), a.backend.clone()));
        }
        let max_workers = accelvm_devices::virtio::accel::backend::shared::MAX_SHARED_WORKERS;
        if !(1..=max_workers).contains(&a.workers) {
            return Err(FileError::Workers(a.name.clone(), max_workers, a.workers));
        }
        let max_t = accelvm_devices::virtio::accel::backend::shared::MAX_TENANTS;
        if !(1..=max_t).contains(&a.max_tenants) {
            return Err(FileError::Capacity(
                a.name.clone(),
                "max-tenants",
                max_t as u64,
                a.max_tenants as u64,
            ));
        }
        let max_q = 1 << 16;
        if !(1..=max_q).contains(&a.queue_depth) {
            return Err(FileError::Capacity(
                a.name.clone(),
                "queue-depth",
                max_q as u64,
                a.queue_depth as u64,
            ));
        }
        let all = a.crypto.is_none() && a.compression.is_none() && a.ipsec.is_none();
        let offered = Capabilities {
            crypto_algos: algorithms(
                &a.name,
                "crypto",
                &a.crypto,
                &[("aes-gcm", CRYPTO_AES_GCM)],
                "\"aes-gcm\"",
                backend.crypto_algos,
                all,
            )?,
            comp_algos: algorithms(
                &a.name,
                "compression",
                &a.compression,
                &[("deflate", COMP_DEFLATE), ("lz4", COMP_LZ4)],
                "\"deflate\", \"lz4\"",
                backend.comp_algos,
                all,
            )?,
            ipsec_algos: algorithms(
                &a.name,
                "ipsec",
                &a.ipsec,
                &[("esp-aes-gcm", IPSEC_ESP_AES_GCM)],
                "\"esp-aes-gcm\"",
                backend.ipsec_algos,
                all,
            )?,
            stateless: a.stateless && backend.stateless,
        };
        if offered.crypto_algos | offered.comp_algos | offered.ipsec_algos == 0 {
            return Err(FileError::NothingOffered(a.name.clone()));
        }
        accelerators.push(AcceleratorPlan {
            name: a.name.clone(),
            workers: a.workers,
            offered,
            max_tenants: a.max_tenants,
        });
        depth.push(a.queue_depth);
    }

    let mut vm_names = BTreeMap::new();
    // TAP name -> the VM that declared it first.
    let mut tap_owner: HashMap<String, String> = HashMap::new();
    // Per accelerator: (vm, exclusive) of every mapping.
    let mut claims: Vec<Vec<(String, bool)>> = vec![Vec::new(); accelerators.len()];
    let mut vms = Vec::new();
    for v in &file.vms {
        check_name("vm", &v.name)?;
        if vm_names.insert(v.name.clone(), ()).is_some() {
            return Err(FileError::Duplicate("vm", v.name.clone()));
        }
        if v.net.len() > MAX_NETS_PER_VM {
            return Err(FileError::TooManyNets(v.name.clone(), v.net.len()));
        }
        let mut nets = Vec::new();
        for n in &v.net {
            let spec = NetPlan::new(&n.tap, n.mac.as_deref())
                .map_err(|e| FileError::BadNet(v.name.clone(), n.tap.clone(), e))?;
            if let Some(owner) = tap_owner.insert(spec.tap.clone(), v.name.clone()) {
                return Err(FileError::DuplicateTap(
                    spec.tap.clone(),
                    owner,
                    v.name.clone(),
                ));
            }
            nets.push(spec);
        }
        let mut accels = Vec::new();
        for m in &v.accel {
            let &idx = by_name.get(&m.accelerator).ok_or_else(|| {
                FileError::UnknownAccelerator(v.name.clone(), m.accelerator.clone())
            })?;
            let acc = &accelerators[idx];
            let bad = |what: &'static str, msg: String| {
                FileError::BadLimit(v.name.clone(), acc.name.clone(), what, msg)
            };
            let mut caps = Capabilities {
                stateless: acc.offered.stateless,
                ..Capabilities::default()
            };
            let services = m.services.clone().unwrap_or_else(|| {
                let mut all = Vec::new();
                if acc.offered.crypto_algos != 0 {
                    all.push("crypto".to_string());
                }
                if acc.offered.comp_algos != 0 {
                    all.push("compression".to_string());
                }
                if acc.offered.ipsec_algos != 0 {
                    all.push("ipsec".to_string());
                }
                all
            });
            if services.is_empty() {
                return Err(bad("services", "at least one service is needed".into()));
            }
            for s in &services {
                let (have, slot) = match s.as_str() {
                    "crypto" => (acc.offered.crypto_algos, &mut caps.crypto_algos),
                    "compression" => (acc.offered.comp_algos, &mut caps.comp_algos),
                    "ipsec" => (acc.offered.ipsec_algos, &mut caps.ipsec_algos),
                    other => {
                        return Err(bad(
                            "services",
                            format!("unknown service {other:?} (crypto, compression, ipsec)"),
                        ));
                    }
                };
                if have == 0 {
                    return Err(FileError::MissingCapability(
                        v.name.clone(),
                        acc.name.clone(),
                        s.clone(),
                    ));
                }
                *slot = have;
            }
            if caps.crypto_algos == 0 {
                caps.stateless = false;
            }
            if !(1..=MAX_WEIGHT).contains(&m.weight) {
                return Err(bad(
                    "weight",
                    format!("{} is outside 1..={MAX_WEIGHT}", m.weight),
                ));
            }
            let exclusive = match m.mode.as_str() {
                "shared" => false,
                "exclusive" => true,
                other => return Err(bad("mode", format!("{other:?} (shared or exclusive)"))),
            };
            let policy = match m.on_limit.as_str() {
                "wait" => LimitPolicy::Wait,
                "busy" => LimitPolicy::Busy,
                other => return Err(bad("on-limit", format!("{other:?} (wait or busy)"))),
            };
            if policy == LimitPolicy::Busy && m.max_in_flight == 0 {
                return Err(bad("on-limit", "\"busy\" needs max-in-flight > 0".into()));
            }
            if m.max_in_flight > depth[idx] && policy == LimitPolicy::Busy {
                return Err(bad(
                    "max-in-flight",
                    format!(
                        "{} exceeds the accelerator's queue-depth {}",
                        m.max_in_flight, depth[idx]
                    ),
                ));
            }
            let sess_max = accelvm_devices::virtio::accel::session::MAX_SESSIONS_LIMIT;
            if caps.crypto_algos != 0 && !(1..=sess_max).contains(&m.max_sessions) {
                return Err(bad(
                    "max-sessions",
                    format!("{} is outside 1..={sess_max}", m.max_sessions),
                ));
            }
            let sa_max = accelvm_devices::virtio::accel::session::MAX_SAS_LIMIT;
            if caps.ipsec_algos != 0 && !(1..=sa_max).contains(&m.max_sas) {
                return Err(bad(
                    "max-sas",
                    format!("{} is outside 1..={sa_max}", m.max_sas),
                ));
            }
            if !(1..=MAX_QUEUES_PER_SERVICE).contains(&m.queues) {
                return Err(bad(
                    "queues",
                    format!("{} is outside 1..={MAX_QUEUES_PER_SERVICE}", m.queues),
                ));
            }
            let limits = TenantLimits {
                max_in_flight: m.max_in_flight,
                bytes: bucket(&v.name, &acc.name, "bandwidth", m.bandwidth)?,
                ops: bucket(&v.name, &acc.name, "ops", m.ops)?,
                policy,
                max_queued: depth[idx],
            };
            claims[idx].push((v.name.clone(), exclusive));
            accels.push(MappingPlan {
                accelerator: idx,
                caps,
                weight: m.weight,
                limits,
                max_sessions: m.max_sessions,
                max_sas: m.max_sas,
                queues: m.queues,
            });
        }
        if v.vcpus == 0 {
            return Err(FileError::BadVm(
                v.name.clone(),
                "vcpus must be at least 1".into(),
            ));
        }
        vms.push(VmPlan {
            name: v.name.clone(),
            kernel: v.kernel.clone(),
            initrd: v.initrd.clone(),
            cmdline: v.cmdline.clone(),
            vcpus: v.vcpus,
            memory: v.memory,
            guest_cmd: v.guest_cmd.clone(),
            accels,
            nets,
        });
    }
    for (idx, c) in claims.iter().enumerate() {
        let acc = &accelerators[idx];
        if let Some(pos) = c.iter().position(|(_, excl)| *excl)
            && c.len() > 1
        {
            let other = c
                .iter()
                .enumerate()
                .find(|(i, _)| *i != pos)
                .map(|(_, x)| x.0.clone());
            return Err(FileError::ExclusiveConflict(
                acc.name.clone(),
                c[pos].0.clone(),
                other.unwrap_or_default(),
            ));
        }
        if c.len() > acc.max_tenants as usize {
            return Err(FileError::TooManyTenants(
                acc.name.clone(),
                acc.max_tenants,
                c.len(),
            ));
        }
    }
    Ok(Plan { accelerators, vms })
}

#[cfg(test)]
mod tests;
