//! `uvsadm [--socket PATH] <ipvsadm arguments>`: sends the command to uvsd over its admin
//! socket and prints the answer. The line is parsed here first, so mistakes and `-h` need no
//! daemon; `top` redraws a frame from uvsd every second until Ctrl-C. `import-keepalived`
//! runs here alone: it reads a file and prints YAML, without a daemon. A reader that goes
//! away (`uvsadm -L | head`) ends uvsadm quietly, as it would a C tool.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use uvs_control::admin::keepalived::{import, import_args, Diag};
use uvs_control::admin::{parse, request, usage, version, AdminCommand, DEFAULT_SOCKET};

fn main() {
    std::process::exit(run(std::env::args().skip(1).collect()));
}

fn run(mut args: Vec<String>) -> i32 {
    let mut socket = std::env::var_os("UVSADM_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    match args.first().map(String::as_str) {
        Some("--socket") => {
            if args.len() < 2 {
                eprintln!("uvsadm: --socket needs a path");
                return 1;
            }
            socket = PathBuf::from(args.remove(1));
            args.remove(0);
        }
        Some(a) if a.starts_with("--socket=") => {
            socket = PathBuf::from(&a["--socket=".len()..]);
            args.remove(0);
        }
        _ => {}
    }
    if args.first().map(String::as_str) == Some("import-keepalived") {
        return import_keepalived(&args[1..]);
    }
    let cmd = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("uvsadm: {e}");
            return 1;
        }
    };
    match cmd {
        AdminCommand::Help => emit(&usage()),
        AdminCommand::Version => emit(&version()),
        AdminCommand::Top { once: false } => top(&socket),
        AdminCommand::Node(uvs_control::admin::node::NodeCommand::Drain { wait: true, .. }) => {
            drain(&socket, &args)
        }
        _ => match request(&socket, &args) {
            Ok(out) => emit(&out),
            Err(e) => {
                eprintln!("uvsadm: {e}");
                1
            }
        },
    }
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
