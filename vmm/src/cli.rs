//! The `accelvm` command line (clap) and the lookup of the default guest images.

use std::path::{Path, PathBuf};

use accelvm_devices::virtio::rng::Rng;
use clap::{Args, Parser, Subcommand};

use crate::config::{DEFAULT_CMDLINE, DEFAULT_MEMORY_MIB, VmConfig};
use crate::kvm::DEFAULT_KVM_DEVICE;
use crate::net_config::{NetBuildError, NetSpec, build_net_devices};

/// Environment variable naming the folder with `vmlinuz` and `initrd.img`.
pub const IMAGES_DIR_ENV: &str = "ACCELVM_IMAGES_DIR";
/// Environment variable naming the KVM device (same as the hidden `--kvm-device`).
pub const KVM_DEVICE_ENV: &str = "ACCELVM_KVM_DEVICE";
/// Where the build puts the guest images, relative to the repository root.
pub const IMAGES_SUBDIR: &str = "images/out";

/// accelvm: a small KVM virtual machine monitor for accelerator virtualization.
#[derive(Debug, Parser)]
#[command(name = "accelvm", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// accelvm subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot a Linux guest. Its serial console is this terminal; `poweroff` or `reboot` in
    /// the guest (or SIGTERM/SIGINT to accelvm) ends it. With --config, boot every VM of a
    /// configuration file (docs/config.md), each its own KVM VM, sharing accelerators.
    Run(RunArgs),
    /// Print the accelerator and VM counters of a running accelvm (started with
    /// --api-socket): a table, or JSON with --json.
    Stats(StatsArgs),
    /// (For benches/accel-driver.sh) the software accelerator backend's raw AES-GCM speed on
    /// this host, called directly without a VM.
    #[command(hide = true)]
    BenchBackend(BenchBackendArgs),
}

/// Options of the hidden `accelvm bench-backend`.
#[derive(Debug, Args)]
pub struct BenchBackendArgs {
    /// Plaintext sizes in bytes.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "64,256,1024,4096,16384,65536"
    )]
    pub sizes: Vec<usize>,

    /// Milliseconds per size.
    #[arg(long, default_value_t = 500)]
    pub time_ms: u64,
}

/// Options of `accelvm stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The socket given to `accelvm run --api-socket`.
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,

    /// Print the raw JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Options of `accelvm run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run every VM and accelerator of this TOML file (docs/config.md) instead of the one
    /// VM the other flags describe. Console lines are prefixed with `[vm-name] ` when the
    /// file has several VMs; the exit status is the first failing VM's (docs/config.md).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["kernel", "initrd", "no_initrd", "guest_cmd", "startup_probe"])]
    pub config: Option<PathBuf>,

    /// Serve live counters on this unix socket, for `accelvm stats --socket PATH`.
    #[arg(long, value_name = "PATH")]
    pub api_socket: Option<PathBuf>,

    /// Guest kernel: a bzImage or an ELF vmlinux (PVH entry when present).
    /// [default: images/out/vmlinuz, see --initrd]
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,

    /// Guest initramfs. [default: images/out/initrd.img, where images/out is taken from
    /// $ACCELVM_IMAGES_DIR, else found by walking up from the accelvm executable, else from
    /// the current directory]
    #[arg(long, value_name = "PATH", conflicts_with = "no_initrd")]
    pub initrd: Option<PathBuf>,

    /// Boot without an initramfs.
    #[arg(long)]
    pub no_initrd: bool,

    /// Base kernel command line; accelvm appends accelvm.cmd= and virtio_mmio.device= to it.
    #[arg(long, value_name = "STRING", default_value = DEFAULT_CMDLINE)]
    pub cmdline: String,

    /// Number of vCPUs (1..=254), one host thread each.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub cpus: u32,

    /// Guest RAM in MiB (64 or more; RAM beyond 3 GiB is placed above 4 GiB).
    #[arg(long, value_name = "MiB", default_value_t = DEFAULT_MEMORY_MIB)]
    pub memory: u64,

    /// Run this shell command in the guest (via `accelvm.cmd=`), print its output, power
    /// off, and exit with the command's exit status.
    #[arg(long, value_name = "SH_COMMAND")]
    pub guest_cmd: Option<String>,

    /// Add a virtio-net NIC backed by the TAP device NAME (repeatable: eth0, eth1, ... in
    /// order). An existing TAP is used as it is; a missing one is created, brought up, and
    /// removed when accelvm exits. MAC defaults to a random locally administered address.
    /// The guest image's init configures eth0 from `accelvm.ip=ADDR/PREFIX` in --cmdline.
    #[arg(long = "net", value_name = "tap=NAME[,mac=MAC]")]
    pub net: Vec<NetSpec>,

    /// Add a virtio-accel device (crypto AES-GCM, compression deflate/LZ4, IPsec ESP) backed
    /// by the software accelerator, all services on, after the NICs.
    #[arg(long)]
    pub accel: bool,

    /// Attach a virtio-rng (entropy) device on virtio-mmio, fed by the host's getrandom(2).
    #[arg(long)]
    pub rng: bool,

    /// KVM device node (for tests that simulate a missing or unusable /dev/kvm).
    #[arg(long, value_name = "PATH", env = KVM_DEVICE_ENV, default_value = DEFAULT_KVM_DEVICE, hide = true)]
    pub kvm_device: PathBuf,

    /// Print `ACCELVM_FIRST_KVM_RUN_NS=<CLOCK_REALTIME ns>` on stderr right before the first
    /// KVM_RUN and stop there (start-up cost benchmark).
    #[arg(long, hide = true)]
    pub startup_probe: bool,
}

/// Errors resolving the default images.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// No images/out found.
    #[error(
        "no --kernel given and no {IMAGES_SUBDIR}/vmlinuz found (set ${IMAGES_DIR_ENV}, run \
         images/build.sh in the repository, or pass --kernel/--initrd)"
    )]
    NoImages,
    /// A `--net` device could not be created.
    #[error(transparent)]
    Net(#[from] NetBuildError),
    /// The `--accel` device could not be built.
    #[error(transparent)]
    Accel(#[from] crate::accel_config::AccelBuildError),
}

/// The images folder: `$ACCELVM_IMAGES_DIR`, else the first `images/out` holding a
/// `vmlinuz` in an ancestor of the executable, else of the current directory.
pub fn find_images_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(IMAGES_DIR_ENV) {
        return Some(dir.into());
    }
    let from_exe = std::env::current_exe().ok().and_then(|exe| search_up(&exe));
    from_exe.or_else(|| std::env::current_dir().ok().and_then(|cwd| search_up(&cwd)))
}

fn search_up(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|dir| {
        let candidate = dir.join(IMAGES_SUBDIR);
        candidate.join("vmlinuz").is_file().then_some(candidate)
    })
}

impl RunArgs {
    /// The VM configuration these options describe.
    pub fn into_config(self) -> Result<VmConfig, CliError> {
        let images = if self.kernel.is_none() || (self.initrd.is_none() && !self.no_initrd) {
            find_images_dir()
        } else {
            None
        };
        let kernel = match self.kernel {
            Some(k) => k,
            None => images.as_ref().ok_or(CliError::NoImages)?.join("vmlinuz"),
        };
        let initrd = if self.no_initrd {
            None
        } else {
            match self.initrd {
                Some(i) => Some(i),
                None => Some(
                    images
                        .as_ref()
                        .ok_or(CliError::NoImages)?
                        .join("initrd.img"),
                ),
            }
        };
        let mut config = VmConfig::new(kernel);
        config.initrd = initrd;
        config.cmdline = self.cmdline;
        config.cpus = self.cpus;
        config.memory_mib = self.memory;
        config.guest_cmd = self.guest_cmd;
        config.kvm_device = self.kvm_device;
        config.startup_probe = self.startup_probe;
        config.stdin_to_guest = true;
        if self.rng {
            config.devices.push(Box::new(Rng::new()));
        }
        for net in build_net_devices(&self.net)? {
            config.devices.push(Box::new(net));
        }
        if self.accel {
            config
                .devices
                .push(Box::new(crate::accel_config::build_accel_device()?));
        }
        Ok(config)
    }
}
