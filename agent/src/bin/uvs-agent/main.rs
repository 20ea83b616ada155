//! `uvs-agent`: runs on a real server, answers agent checks (HAProxy's agent-check
//! protocol, spoken by uvsd's `agent` health check and by HAProxy's `agent-check`) with
//! the server's headroom and the state its application asked for.
//!
//! ```text
//! uvs-agent run --listen [::]:9900             # the daemon
//! uvs-agent drain                              # no new connections; existing ones finish
//! uvs-agent ready                              # back in rotation
//! uvs-agent status                             # what balancers are told now
//! uvs-agent client-of 198.18.1.11:80 198.18.1.100:40001   # behind FullNAT: the client
//! ```

#![deny(unsafe_code)]

mod load;
mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use uvs_agent::client::{self, Command, DEFAULT_SOCKET};
use uvs_agent::Admin;

use load::{Sampler, Sources};
use serve::{Agent, Policy};

#[derive(Parser, Debug)]
#[command(
    name = "uvs-agent",
    version,
    about = "The real server's agent for uvs and HAProxy: reports headroom and drain/ready state over HAProxy's agent-check protocol",
    after_help = "The daemon answers every TCP connection with one line such as \"up ready 63%\" \
(operational state, administrative state, weight as a percentage of the configured one) and closes. \
An application changes what it says with the commands below (or SIGUSR1 = drain, SIGUSR2 = ready, \
or --drain-file)."
)]
struct Cli {
    /// The daemon's command socket.
    #[arg(long, global = true, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the daemon.
    Run(RunArgs),
    /// Stop taking new connections (administrative state drain); existing ones finish.
    Drain,
    /// Take connections again (cancels drain and maint).
    Ready,
    /// Take no new connections at all, not even persistent clients' (maint).
    Maint,
    /// Report the service down ("stopped"), with an optional reason.
    Down { reason: Vec<String> },
    /// Report the service up again.
    Up,
    /// Report the application's own load, 0..=100 ("none" withdraws it).
    Load { value: String },
    /// Print what balancers are told now.
    Status,
    /// Behind FullNAT: print the client (and virtual service) of the connection LOCAL ↔
    /// PEER, as uvsd knows it (the agent needs --lookup).
    ClientOf {
        /// This server's end of the connection, ADDRESS:PORT (`ss -tn`'s Local).
        local: SocketAddr,
        /// The other end as this server sees it (the balancer's pool address:port).
        peer: SocketAddr,
        /// The connection's protocol: tcp, udp or sctp.
        #[arg(long, default_value = "tcp")]
        protocol: String,
    },
    /// Write shell completions under DIR (bash/, zsh/, fish/); the Debian package has them.
    Completions { dir: PathBuf },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Where agent checks connect (repeatable). [::] falls back to 0.0.0.0 without IPv6.
    #[arg(long, default_value = "[::]:9900")]
    listen: Vec<SocketAddr>,
    /// Mode of the command socket (octal): who may drain this server.
    #[arg(long, default_value = "600", value_parser = parse_mode)]
    socket_mode: u32,
    /// Built-in load figures: cpu (busy time), runq (runnable threads per CPU), or none.
    #[arg(long, value_delimiter = ',', default_value = "cpu,runq")]
    load: Vec<String>,
    /// A file holding the application's load, 0..=100, read every interval.
    #[arg(long)]
    load_file: Option<PathBuf>,
    /// A command (sh -c) printing the application's load, 0..=100, run every interval.
    #[arg(long)]
    load_command: Option<String>,
    /// Seconds between load samples.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// Seconds a load pushed with `uvs-agent load` counts without being repeated.
    #[arg(long, default_value_t = 10.0)]
    app_load_ttl: f64,
    /// Lowest weight percentage reported (0 would let load alone drain the server).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=100))]
    min_weight: u32,
    /// Report no weight, only the state words.
    #[arg(long)]
    no_weight: bool,
    /// Report this connection limit (maxconn:N).
    #[arg(long)]
    maxconn: Option<u32>,
    /// While this file exists, say drain (a deploy script can touch it).
    #[arg(long)]
    drain_file: Option<PathBuf>,
    /// uvsd's client lookup service (its YAML's client_lookup.listen), which `client-of`
    /// asks.
    #[arg(long)]
    lookup: Option<SocketAddr>,
    /// A file holding the key shared with uvsd (client_lookup.auth_key; surrounding
    /// whitespace ignored). Required with --lookup.
    #[arg(long)]
    lookup_key_file: Option<PathBuf>,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    match u32::from_str_radix(s, 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(format!("{s:?} is not an octal file mode like 600 or 660")),
    }
}

fn seconds(v: f64, what: &str) -> Result<Duration> {
    if !v.is_finite() || !(0.01..=3600.0).contains(&v) {
        bail!("--{what} {v} is out of range 0.01..=3600 seconds");
    }
    Ok(Duration::from_secs_f64(v))
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    if let Err(e) = real_main(cli) {
        eprintln!("uvs-agent: {e:#}");
        std::process::exit(1);
    }
}

fn real_main(cli: Cli) -> Result<()> {
    let cmd = match cli.cmd {
        Cmd::Run(a) => return run(&cli.socket, a),
        Cmd::Drain => Command::Drain,
        Cmd::Ready => Command::Ready,
        Cmd::Maint => Command::Maint,
        Cmd::Up => Command::Up,
        Cmd::Status => Command::Status,
        Cmd::Completions { dir } => return completions(&dir),
        Cmd::Down { reason } => {
            let r = reason.join(" ");
            Command::Down((!r.is_empty()).then_some(r))
        }
        Cmd::Load { value } => format!("load {value}").parse()?,
        Cmd::ClientOf {
            local,
            peer,
            protocol,
        } => {
            let protocol: uvs_agent::lookup::Protocol = protocol.parse()?;
            match client::client_of(&cli.socket, protocol, local, peer)? {
                Some(c) => println!("{} {}", c.client, c.virtual_service),
                None => bail!(
                    "uvsd tracks no {} connection {local} <-> {peer} (ended, or not one it forwards)",
                    protocol.name()
                ),
            }
            return Ok(());
        }
    };
    let now = client::send(&cli.socket, &cmd)?;
    println!("{now}");
    Ok(())
}

/// uvs-agent's completions for bash, zsh and fish under `dir` (the layout uvsd's
/// `--completions` writes for uvsd and uvsadm).
fn completions(dir: &std::path::Path) -> Result<()> {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let mut cmd = Cli::command();
    for (shell, sub) in [
        (Shell::Bash, "bash"),
        (Shell::Zsh, "zsh"),
        (Shell::Fish, "fish"),
    ] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        let path = clap_complete::generate_to(shell, &mut cmd, "uvs-agent", &d)
            .with_context(|| format!("writing completions under {}", d.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}

fn run(socket: &std::path::Path, a: RunArgs) -> Result<()> {
    let mut sources = Sources {
        file: a.load_file,
        command: a.load_command,
        ..Sources::default()
    };
    for s in &a.load {
        match s.as_str() {
            "cpu" => sources.cpu = true,
            "runq" => sources.runq = true,
            "none" => {}
            other => bail!("--load {other:?}: expected cpu, runq or none"),
        }
    }
    let interval = seconds(a.interval, "interval")?;
    let lookup = match (a.lookup, &a.lookup_key_file) {
        (None, None) => None,
        (Some(at), Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --lookup-key-file {}", path.display()))?;
            let key = text.trim().as_bytes().to_vec();
            if key.len() < uvs_agent::lookup::MIN_KEY_LEN {
                bail!(
                    "--lookup-key-file {}: the key has {} bytes, fewer than {}",
                    path.display(),
                    key.len(),
                    uvs_agent::lookup::MIN_KEY_LEN
                );
            }
            Some(serve::Lookup { at, key })
        }
        (Some(_), None) => bail!("--lookup needs --lookup-key-file (the key uvsd has)"),
        (None, Some(_)) => bail!("--lookup-key-file needs --lookup (where uvsd answers)"),
    };
    let agent = Arc::new(Agent::new(Policy {
        weight: !a.no_weight,
        min_weight: a.min_weight,
        maxconn: a.maxconn,
        drain_file: a.drain_file,
        app_load_ttl: seconds(a.app_load_ttl, "app-load-ttl")?,
        lookup,
    }));

    let term = Arc::new(AtomicBool::new(false));
    let (usr1, usr2) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    for (sig, flag) in [
        (signal_hook::consts::SIGTERM, &term),
        (signal_hook::consts::SIGINT, &term),
        (signal_hook::consts::SIGUSR1, &usr1),
        (signal_hook::consts::SIGUSR2, &usr2),
    ] {
        signal_hook::flag::register(sig, flag.clone()).context("installing signal handlers")?;
    }

    let checks = serve::bind_checks(&a.listen)?;
    let commands = serve::bind_commands(socket, a.socket_mode)?;
    // A first sample before the first check is answered, so the weight is not 100 % by
    // default for the first interval.
    let mut sampler = Sampler::new(sources, interval);
    agent.set_figures(sampler.sample());
    for l in checks {
        let (ag, addr) = (agent.clone(), l.local_addr()?);
        std::thread::Builder::new()
            .name("uvs-agent-listen".into())
            .spawn(move || serve::serve_checks(ag, l))?;
        log::info!("answering agent checks on {addr}");
    }
    {
        let ag = agent.clone();
        std::thread::Builder::new()
            .name("uvs-agent-socket".into())
            .spawn(move || serve::serve_commands(ag, commands))?;
    }
    log::info!(
        "commands on {} (mode {:o}); answering \"{}\"",
        socket.display(),
        a.socket_mode,
        agent.reply()
    );
    {
        let ag = agent.clone();
        std::thread::Builder::new()
            .name("uvs-agent-load".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                let f = sampler.sample();
                log::debug!("load: {}", f.describe());
                ag.set_figures(f);
            })?;
    }
    while !term.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if usr1.swap(false, Ordering::Relaxed) {
            agent.set_admin(Admin::Drain);
            log::info!("SIGUSR1: now answering \"{}\"", agent.reply());
        }
        if usr2.swap(false, Ordering::Relaxed) {
            agent.set_admin(Admin::Ready);
            log::info!("SIGUSR2: now answering \"{}\"", agent.reply());
        }
    }
    let _ = std::fs::remove_file(socket);
    log::info!("stopped");
    Ok(())
}
