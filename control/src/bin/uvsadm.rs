//! `uvsadm <ipvsadm arguments> [--socket PATH]` (the option anywhere): sends the command to uvsd over its admin
//! socket and prints the answer. The line is parsed here first, so mistakes and `-h` need no
//! daemon; `top` redraws a frame from uvsd every second until Ctrl-C. `import-keepalived`
//! runs here alone: it reads a file and prints YAML, without a daemon. A reader that goes
//! away (`uvsadm -L | head`) ends uvsadm quietly, as it would a C tool.
//!
//! Names are resolved here, never in uvsd: host and service names given to `-t`/`-u`/`-r`
//! (and in `-R`'s input) become numbers before the command is sent, and without `-n` the
//! listings (`-L`, `-L -c`, `-S`) are fetched as data and printed with host names.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use uvs_control::admin::keepalived::{import, import_args, Diag};
use uvs_control::admin::{
    addresses, config_addresses, conn_addresses, format_conns_with, format_list_names,
    format_rules_with, numeric_endpoints, parse, refused_status, request, take_socket_option,
    try_request, usage, version, AdminCommand, RequestError, SystemNames, DEFAULT_SOCKET,
    EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, MAX_REQUEST,
};
use uvs_control::snapshot::{ConnSnapshot, Snapshot};

fn main() {
    std::process::exit(run(std::env::args().skip(1).collect()));
}

fn run(args: Vec<String>) -> i32 {
    // `--socket PATH` may come anywhere on the line, before or after ipvsadm's options.
    let (socket, args) = match take_socket_option(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("uvsadm: {e}");
            return EXIT_USAGE;
        }
    };
    let socket = socket.unwrap_or_else(|| {
        std::env::var_os("UVSADM_SOCKET")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
    });
    if args.first().map(String::as_str) == Some("import-keepalived") {
        return import_keepalived(&args[1..]);
    }
    let parsed = if matches!(args.first().map(String::as_str), Some("-R" | "--restore")) {
        restore_argv(&args)
    } else {
        numeric_endpoints(&args)
    }
    .and_then(|argv| parse(&argv).map(|cmd| (argv, cmd)));
    let (argv, cmd) = match parsed {
        Ok(c) => c,
        Err(e) => {
            eprintln!("uvsadm: {e}");
            return EXIT_USAGE;
        }
    };
    // A request that fails exits as ipvsadm: 2 when uvsd cannot be reached (ipvsadm's
    // "Can't initialize ipvs"), else what the command's refusal calls for.
    let refused = refused_status(&cmd);
    let ask = |args: &[String]| {
        try_request(&socket, args).map_err(|e| match e {
            RequestError::Unreachable(m) => (EXIT_UNREACHABLE, m),
            RequestError::Refused(m) => (refused, m),
        })
    };
    let out = match cmd {
        AdminCommand::Help => return emit(&usage()),
        AdminCommand::Version => return emit(&version()),
        AdminCommand::Top { once: false } => return top(&socket),
        AdminCommand::Node(uvs_control::admin::node::NodeCommand::Drain { wait: true, .. }) => {
            return drain(&socket, &argv)
        }
        AdminCommand::Drain(d) if d.wait => return drain_real(&socket, &argv, &d),
        AdminCommand::List(o) if !o.numeric && !o.json => {
            let mut json = argv.clone();
            json.push("--json".into());
            ask(&json).and_then(|text| {
                if o.connections {
                    let conns: Vec<ConnSnapshot> = from_json(&text).map_err(failed)?;
                    let names = SystemNames::resolve(conn_addresses(&conns));
                    Ok(format_conns_with(&conns, &o, &names))
                } else {
                    let snap: Snapshot = from_json(&text).map_err(failed)?;
                    let names = SystemNames::resolve(addresses(&snap));
                    format_list_names(&snap, &o, &names).map_err(failed)
                }
            })
        }
        AdminCommand::SaveRules { numeric: false } => ask(&["save".to_string()]).and_then(|yaml| {
            let cfg = uvs_config::load_str(&yaml, "<uvsd>").map_err(|e| failed(e.to_string()))?;
            let names = SystemNames::resolve(config_addresses(&cfg));
            Ok(format_rules_with(&cfg, &names))
        }),
        _ => ask(&argv),
    };
    match out {
        Ok(out) => emit(&out),
        Err((status, e)) => {
            eprintln!("uvsadm: {e}");
            status
        }
    }
}

/// A failure of uvsadm's own (an unreadable answer, a listing of an unknown service): 1.
fn failed(e: String) -> (i32, String) {
    (EXIT_FAILED, e)
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("unreadable answer from uvsd: {e}"))
}

/// `-R`: the rules on standard input, each line with its names resolved, as the words after
/// `-R` (empty and comment lines kept, so uvsd's errors give the input's line numbers).
fn restore_argv(args: &[String]) -> Result<Vec<String>, String> {
    if let Some(extra) = args.get(1) {
        return Err(format!(
            "unexpected argument '{extra}' with -R: the rules come on standard input \
             (uvsadm -R < rules)"
        ));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
        .map_err(|e| format!("-R: reading standard input: {e}"))?;
    let mut argv = vec!["-R".to_string()];
    for (i, line) in text.lines().enumerate() {
        let rule = line.split('#').next().unwrap_or("");
        let words: Vec<String> = rule.split_whitespace().map(String::from).collect();
        let words = numeric_endpoints(&words).map_err(|e| format!("line {}: {e}", i + 1))?;
        argv.push(words.join(" "));
    }
    // The request is JSON: a few bytes per line more than the rules themselves.
    let size: usize = argv.iter().map(|l| l.len() + 4).sum::<usize>() + 16;
    if size > MAX_REQUEST {
        return Err(format!(
            "-R: the rules take {size} bytes, more than uvsd takes in one request \
             ({MAX_REQUEST}): restore them in parts, or put them in the YAML file"
        ));
    }
    Ok(argv)
}

/// `node drain`: asks uvsd to drain, then waits until it has stopped (its socket stops
/// answering) or restarted (it answers as serving again), printing progress as it changes.
fn drain(socket: &std::path::Path, args: &[String]) -> i32 {
    match request(socket, args) {
        Ok(out) => {
            if emit(&out) != 0 {
                return 1;
            }
        }
        Err(e) => {
            eprintln!("uvsadm: {e}");
            return 1;
        }
    }
    let status = vec!["node".to_string()];
    let mut last = String::new();
    loop {
        std::thread::sleep(Duration::from_millis(250));
        match request(socket, &status) {
            Err(_) => {
                let _ = emit("uvsd stopped\n");
                return 0;
            }
            Ok(out) => {
                let first = out.lines().next().unwrap_or("").to_string();
                if first.starts_with("Node: serving") {
                    let _ = emit("uvsd is serving again (restarted)\n");
                    return 0;
                }
                // Progress once per change of state or busy connections, not per tick.
                let state = first.split_whitespace().nth(1).unwrap_or("");
                let busy = first.rsplit(", ").next().unwrap_or("");
                let key = format!("{state}|{busy}");
                if key != last {
                    last = key;
                    if emit(&format!("{first}\n")) != 0 {
                        return 1;
                    }
                }
            }
        }
    }
}

/// `drain --wait`: uvsd sets the weight to 0 and answers at once; then the server's
/// connections are polled until none is left or the timeout, with progress on stdout.
fn drain_real(
    socket: &std::path::Path,
    args: &[String],
    d: &uvs_control::admin::drain::DrainCommand,
) -> i32 {
    use uvs_control::admin::drain;
    let start = std::time::Instant::now();
    match request(socket, args) {
        Ok(out) if emit(&out) == 0 => {}
        Ok(_) => return 1,
        Err(e) => {
            eprintln!("uvsadm: {e}");
            return 1;
        }
    }
    let poll = drain::poll_argv(d);
    let fetch = || request(socket, &poll).and_then(|text| from_json::<Snapshot>(&text));
    let mut out = std::io::stdout();
    match drain::wait(d, fetch, std::thread::sleep, || start.elapsed(), &mut out) {
        Ok(done) => emit(&done),
        Err(e) => {
            eprintln!("uvsadm: drain: {e}");
            1
        }
    }
}

/// Prints the translation on stdout and notes on stderr; on an error, only the error.
fn import_keepalived(args: &[String]) -> i32 {
    let (opts, path) = match import_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("uvsadm: import-keepalived: {e}");
            return 1;
        }
    };
    let file = path.display().to_string();
    let src = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("uvsadm: {file}: cannot read the file: {e}");
            return 1;
        }
    };
    match import(&src, &file, &opts) {
        Ok(done) => {
            for n in &done.notes {
                eprintln!("{}", note(n));
            }
            emit(&done.yaml)
        }
        Err(e) => {
            if e.file.is_empty() {
                eprintln!("uvsadm: import-keepalived: {e}");
            } else {
                eprintln!("{e}");
            }
            1
        }
    }
}

/// Writes `text` to stdout: 0, or 1 with a message if stdout fails for another reason than
/// its reader having gone away.
fn emit(text: &str) -> i32 {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("uvsadm: writing the output: {e}");
            1
        }
    }
}

/// `file:line:column: note: message`.
fn note(d: &Diag) -> String {
    let mut n = d.clone();
    n.message = format!("note: {}", d.message);
    n.to_string()
}

/// Redraws uvsd's `top` frame every second (cursor home + clear screen) until interrupted.
fn top(socket: &std::path::Path) -> i32 {
    let argv = vec!["top".to_string(), "--once".to_string()];
    loop {
        match request(socket, &argv) {
            Ok(frame) => {
                let mut out = std::io::stdout().lock();
                if write!(out, "\x1b[H\x1b[2J{frame}")
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    return 0; // stdout closed (e.g. piped into head)
                }
            }
            Err(e) => {
                eprintln!("uvsadm: {e}");
                return 1;
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
