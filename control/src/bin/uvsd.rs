//! uvsd: the uvs daemon. `uvsd --config FILE` runs the dataplane on the interfaces and
//! cores the YAML names; `uvsd --check-config FILE` validates without touching the network;
//! `uvsd --bgp-withdraw FILE` withdraws what a dead uvsd left announced;
//! `uvsd --man DIR` writes the manual pages, generated from this command line, uvsadm's
//! usage and configs/reference.yaml; `uvsd --completions DIR` the shell completions of
//! uvsd and uvsadm (the docs tell operators to run both, so `--help` lists them).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};

#[derive(Parser)]
#[command(
    name = "uvsd",
    version,
    about = "uvs: a userspace Linux Virtual Server"
)]
struct Args {
    /// Run with this configuration.
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        conflicts_with = "check_config"
    )]
    config: Option<PathBuf>,
    /// Validate this configuration and exit (no network, no privileges needed).
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
    /// Withdraw every VIP this configuration's `bgp:` section announces (the include with
    /// no route, then BIRD's `configure`) and exit: for uvsd.service's ExecStopPost, so a
    /// uvsd that died without withdrawing (SIGKILL, a crash) leaves no route behind.
    #[arg(long, value_name = "FILE", exclusive = true)]
    bgp_withdraw: Option<PathBuf>,
    /// Admin socket path (overrides admin.socket in the YAML).
    #[arg(long, value_name = "PATH")]
    admin_socket: Option<PathBuf>,
    /// Stop by itself after this many seconds (demos, tests).
    #[arg(long, value_name = "SECONDS")]
    run_for: Option<f64>,
    /// Write the manual pages (man8/uvsd.8, man8/uvsadm.8, man5/uvs.yaml.5) under DIR and exit.
    #[arg(long, value_name = "DIR", exclusive = true)]
    man: Option<PathBuf>,
    /// Write uvsd's and uvsadm's shell completions under DIR (bash/, zsh/, fish/) and exit.
    #[arg(long, value_name = "DIR", exclusive = true)]
    completions: Option<PathBuf>,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let args = Args::parse();
    if let Some(dir) = args.man {
        return match uvs_control::man::write_pages(&dir, Args::command()) {
            Ok(paths) => {
                for p in paths {
                    println!("{}", p.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("uvsd: writing manual pages under {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        };
    }
    if let Some(dir) = args.completions {
        return match uvs_control::completions::write_all(&dir, Args::command()) {
            Ok(paths) => {
                for p in paths {
                    println!("{}", p.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!(
                    "uvsd: writing shell completions under {}: {e}",
                    dir.display()
                );
                ExitCode::FAILURE
            }
        };
    }
    if let Some(path) = args.check_config {
        return match uvs_control::check_config(&path) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(path) = args.bgp_withdraw {
        return match uvs_control::bgp_withdraw(&path) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("uvsd: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let Some(path) = args.config else {
        eprintln!(
            "uvsd: give --config FILE to run, or --check-config FILE to validate (see --help)"
        );
        return ExitCode::from(2);
    };
    let opts = uvs_control::daemon::Options {
        admin_socket: args.admin_socket,
        run_for: args.run_for.map(Duration::from_secs_f64),
    };
    match uvs_control::daemon::run(&path, opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uvsd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
