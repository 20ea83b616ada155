//! `--set` (timeouts) and `-R` (restore): commands whose options are whole rule sets.

use super::argv::number;
use super::parse::*;

/// `--set TCP TCPFIN UDP` (ipvsadm: "--set option requires 3 timeout values").
pub(super) fn set_timeouts(s: &Seen) -> Result<AdminCommand, String> {
    if let Some((_, spelled)) = s.opts.first() {
        return Err(format!("illegal option {spelled} with --set"));
    }
    let [tcp, tcpfin, udp] = s.words.as_slice() else {
        return Err(format!(
            "--set needs 3 timeout values, tcp tcpfin udp (seconds, 0 = unchanged), e.g. \
             --set 900 120 300; got {}",
            s.words.len()
        ));
    };
    let t =
        |text: &str, what: &str| number(text, 0, uvs_config::MAX_TIMEOUT, what).map(|n| n as u32);
    Ok(AdminCommand::SetTimeouts {
        tcp: t(tcp, "--set tcp timeout")?,
        tcpfin: t(tcpfin, "--set tcpfin timeout")?,
        udp: t(udp, "--set udp timeout")?,
    })
}

/// `-R` among other options: it takes none.
pub(super) fn restore(s: &Seen) -> Result<AdminCommand, String> {
    if let Some((_, spelled)) = s.opts.first() {
        return Err(format!(
            "illegal option {spelled} with -R: the rules come on standard input"
        ));
    }
    if let Some(w) = s.words.first() {
        return Err(format!(
            "unexpected argument '{w}' with -R: the rules come on standard input"
        ));
    }
    restore_lines(&[])
}

/// `-R`'s lines (the words after it on the wire). Each is an ipvsadm command line as
/// `ipvsadm -S` and `uvsadm -S` print them (a leading `ipvsadm` or `uvsadm` is skipped, `#`
/// starts a comment, ipvsadm 1.26's bare `ops` means `-o`); only commands that edit the table
/// belong.
pub(super) fn restore_lines(lines: &[String]) -> Result<AdminCommand, String> {
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let text = line.split('#').next().unwrap_or("");
        let mut words: Vec<String> = text.split_whitespace().map(String::from).collect();
        if words
            .first()
            .is_some_and(|w| w == "ipvsadm" || w == "uvsadm")
        {
            words.remove(0);
        }
        if words.is_empty() {
            continue;
        }
        for w in &mut words {
            if w == "ops" {
                *w = "-o".into();
            }
        }
        let cmd = parse(&words).map_err(|e| format!("line {n}: {e}"))?;
        match cmd {
            _ if cmd.edits_table() => out.push((n, cmd)),
            _ => {
                return Err(format!(
                    "line {n}: '{}' does not edit the table: a restore takes -A, -E, -D, -a, \
                     -e, -d, -C and --set lines",
                    words.join(" ")
                ))
            }
        }
    }
    Ok(AdminCommand::Restore(out))
}
