//! The `accelvm` binary: parses the command line, runs the VM, maps the outcome to an exit
//! status. Every error is one line on stderr and a non-zero status.

use std::error::Error;
use std::process::ExitCode;

use accelvm::cli::{Cli, Command};
use accelvm::{ExitReason, Vmm, kvm};
use clap::Parser;
use clap::error::ErrorKind;

/// Status when accelvm itself fails (bad input, KVM errors, guest crash).
const STATUS_ERROR: u8 = 1;
/// Status for command-line syntax errors (clap's convention).
const STATUS_USAGE: u8 = 2;

fn one_line(e: &dyn Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg.replace('\n', " ")
}

fn fail(e: &dyn Error) -> ExitCode {
    eprintln!("accelvm: error: {}", one_line(e));
    ExitCode::from(STATUS_ERROR)
}

/// With this variable set, accelvm reports its threads and open fds after the VM is gone,
/// on stderr, so tests can prove that nothing is left behind.
const LEAK_CHECK_ENV: &str = "ACCELVM_CHECK_LEAKS";

fn count_entries(dir: &str) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

fn main() -> ExitCode {
    let leak_check = std::env::var_os(LEAK_CHECK_ENV).is_some();
    let fds_before = count_entries("/proc/self/fd");
    let code = run();
    if leak_check {
        eprintln!(
            "ACCELVM_LEAK_CHECK threads={} fds_before={fds_before} fds_after={}",
            count_entries("/proc/self/task"),
            count_entries("/proc/self/fd")
        );
    }
    code
}

fn run() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().filter_or("ACCELVM_LOG", "warn"))
        .format_timestamp(None)
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's first line names the problem; its usage hint would make it three.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "accelvm: error: {} (see accelvm run --help)",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(STATUS_USAGE);
        }
    };
    let Command::Run(args) = cli.command;
    let guest_cmd = args.guest_cmd.is_some();
    let config = match args.into_config() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    // Input errors first, so they are not preceded by the PVM warning.
    if let Err(e) = config.validate() {
        return fail(&e);
    }
    if config.kvm_device.as_os_str() == kvm::DEFAULT_KVM_DEVICE && kvm::is_pvm() {
        eprintln!(
            "accelvm: warning: /dev/kvm is kvm_pvm (software only): an unmodified kernel runs \
             emulated and takes minutes or fails; use images/testhost -- accelvm run ... instead"
        );
    }
    let outcome = match Vmm::new(config).and_then(Vmm::run) {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    match (guest_cmd, outcome.guest_status, &outcome.reason) {
        (true, Some(status), _) => ExitCode::from((status & 0xff) as u8),
        (true, None, ExitReason::Signal(sig)) => ExitCode::from(128 + *sig as u8),
        (true, None, reason) => {
            eprintln!(
                "accelvm: error: the guest stopped ({}) without reporting the command's exit status",
                describe(reason)
            );
            ExitCode::from(STATUS_ERROR)
        }
        (false, _, _) => ExitCode::SUCCESS,
    }
}

fn describe(reason: &ExitReason) -> &'static str {
    match reason {
        ExitReason::Poweroff => "poweroff",
        ExitReason::Reset => "reboot or panic",
        ExitReason::Signal(_) => "signal",
        ExitReason::StartupProbe => "startup probe",
        ExitReason::Failed(_) => "failure",
    }
}
