//! The `accelvm` binary: parses the command line, runs the VM, maps the outcome to an exit
//! status. Every error is one line on stderr and a non-zero status.

use std::error::Error;
use std::process::ExitCode;

use accelvm::bench_backend;
use accelvm::cli::{Cli, Command, RunArgs, StatsArgs};
use accelvm::fleet::{self, Fleet, RunOptions, VmReport};
use accelvm::{ExitReason, kvm};
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
    match cli.command {
        Command::Run(args) => run_vms(args),
        Command::Stats(args) => stats(&args),
        Command::BenchBackend(args) => match bench_backend::run(&args.sizes, args.time_ms) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
    }
}

fn stats(args: &StatsArgs) -> ExitCode {
    match fleet::api::query(&args.socket) {
        Ok(doc) if args.json => {
            println!("{doc:#}");
            ExitCode::SUCCESS
        }
        Ok(doc) => {
            print!("{}", fleet::stats::to_table(&doc));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "accelvm: error: cannot read stats from {}: {}",
                args.socket.display(),
                one_line(&e)
            );
            ExitCode::from(STATUS_ERROR)
        }
    }
}

fn run_vms(args: RunArgs) -> ExitCode {
    let opts = RunOptions {
        api_socket: args.api_socket.clone(),
        kvm_device: Some(args.kvm_device.clone()),
        stdin_to_guest: true,
        startup_probe: args.startup_probe,
    };
    let kvm_device = args.kvm_device.clone();
    // Input errors first, so they are not preceded by the PVM warning.
    let fleet = match &args.config {
        Some(path) => fleet::file::load(path)
            .map_err(|e| Box::new(e) as Box<dyn Error>)
            .and_then(|plan| Fleet::new(&plan, &opts).map_err(|e| Box::new(e) as Box<dyn Error>)),
        // The single-VM flags: one VM named vm0, with whatever devices its flags add.
        None => args
            .into_config()
            .map_err(|e| Box::new(e) as Box<dyn Error>)
            .and_then(|c| Fleet::single("vm0", c).map_err(|e| Box::new(e) as Box<dyn Error>)),
    };
    let fleet = match fleet {
        Ok(f) => f,
        Err(e) => return fail(e.as_ref()),
    };
    if kvm_device.as_os_str() == kvm::DEFAULT_KVM_DEVICE && kvm::is_pvm() {
        eprintln!(
            "accelvm: warning: /dev/kvm is kvm_pvm (software only): an unmodified kernel runs \
             emulated and takes minutes or fails; use images/testhost -- accelvm run ... instead"
        );
    }
    let reports = match fleet.run(&opts) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let single = reports.len() == 1;
    // The first VM (in file order) that did not succeed decides the status.
    let mut code = 0u8;
    for r in &reports {
        let c = vm_status(r, single);
        if code == 0 {
            code = c;
        }
    }
    ExitCode::from(code)
}

/// The exit status one VM asks for (0 = success), reporting its error on stderr.
fn vm_status(r: &VmReport, single: bool) -> u8 {
    let who = if single {
        String::new()
    } else {
        format!("vm {}: ", r.name)
    };
    let outcome = match &r.result {
        Ok(o) => o,
        Err(e) => {
            eprintln!("accelvm: error: {who}{}", one_line(e));
            return STATUS_ERROR;
        }
    };
    match (r.guest_cmd, outcome.guest_status, &outcome.reason) {
        // A status whose low byte is 0 (e.g. 256) still failed.
        (true, Some(status), _) if status != 0 && status & 0xff == 0 => STATUS_ERROR,
        (true, Some(status), _) => (status & 0xff) as u8,
        (true, None, ExitReason::Signal(sig)) => 128 + *sig as u8,
        (true, None, reason) => {
            eprintln!(
                "accelvm: error: {who}the guest stopped ({}) without reporting the command's exit status",
                reason
            );
            STATUS_ERROR
        }
        (false, _, _) => 0,
    }
}
