//! Manual pages, generated from what the programs themselves say so they cannot drift:
//! uvsd(8) from its clap command line (clap_mangen), uvsadm(8) from `uvsadm -h` (its command
//! line is ipvsadm's, parsed by hand, so the page is built from the usage text), and
//! uvs.yaml(5) from configs/reference.yaml, field by field. `uvsd --man DIR` writes all three.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// configs/reference.yaml, the source of uvs.yaml(5).
pub const REFERENCE_YAML: &str = include_str!("../../configs/reference.yaml");
/// configs/member.yaml: the `member:` section (member mode has no services, so the reference
/// file, which must load as written, cannot show it); its fields join uvs.yaml(5).
pub const MEMBER_YAML: &str = include_str!("../../configs/member.yaml");

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Escapes text for roff: backslashes, a leading `.` or `'` that would read as a request,
/// and characters beyond ASCII as groff's `\[uXXXX]` (the page renders without a UTF-8
/// locale).
fn roff(text: &str) -> String {
    let mut t = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => t.push_str("\\e"),
            c if c.is_ascii() => t.push(c),
            c => {
                let _ = write!(t, "\\[u{:04X}]", c as u32);
            }
        }
    }
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

/// A flag or command word in bold, with `-` as roff's minus sign so it renders (and is
/// searched for) as typed.
fn flag(text: &str) -> String {
    roff(text).replace('-', "\\-")
}

fn title(name: &str, section: &str, manual: &str) -> String {
    format!(".TH {name} {section} \"\" \"uvs {VERSION}\" \"{manual}\"\n")
}

fn see_also(pages: &[&str]) -> String {
    let list: Vec<String> = pages
        .iter()
        .map(|p| {
            let (name, sec) = p.split_once('(').unwrap_or((p, ""));
            format!(".BR {} ({}", flag(name), sec)
        })
        .collect();
    let mut out = String::from(".SH \"SEE ALSO\"\n");
    for (i, l) in list.iter().enumerate() {
        out.push_str(l);
        if i + 1 < list.len() {
            out.push(',');
        }
        out.push('\n');
    }
    out
}

/// uvsd(8), from uvsd's clap command (the binary hands it over: its `Args` live there).
pub fn uvsd_page(cmd: clap::Command) -> String {
    let cmd = cmd.long_about(
        "uvsd is the uvs daemon: a layer-4 load balancer doing what IPVS, ipvsadm and \
         keepalived do, without a kernel module. Pinned poll-mode workers read AF_XDP rings, \
         rewrite IPv4/IPv6 TCP, UDP and SCTP packets (NAT, direct routing, IPIP tunnels, \
         FullNAT) and share a lock-free connection table, while a control thread loads the \
         YAML configuration, checks the real servers' health and publishes new tables.",
    );
    let man = clap_mangen::Man::new(cmd)
        .section("8")
        .manual("System Administration")
        .source(format!("uvs {VERSION}"));
    let mut buf: Vec<u8> = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = man.render_title(&mut buf);
    let _ = man.render_name_section(&mut buf);
    let _ = man.render_synopsis_section(&mut buf);
    let _ = man.render_description_section(&mut buf);
    let _ = man.render_options_section(&mut buf);
    let mut page = String::from_utf8_lossy(&buf).into_owned();
    page.push_str(UVSD_SECTIONS);
    page.push_str(&see_also(&[
        "uvsadm(8)",
        "uvs.yaml(5)",
        "ipvsadm(8)",
        "keepalived(8)",
    ]));
    page
}

const UVSD_SECTIONS: &str = r#".SH OPERATION
.TP
.B Starting
uvsd needs root, or these five capabilities: CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF,
CAP_PERFMON and CAP_IPC_LOCK (XDP programs, AF_XDP sockets, BPF maps, locked packet
buffers); it names any that is missing before it touches the network, and the Debian
package's unit runs it as the uvs user with exactly these. It attaches its XDP program
to each configured interface by a BPF link, so the program goes away with the process,
even on SIGKILL. The program redirects only what uvs owns (VIPs, its own local and
FullNAT addresses, replies from real servers, ARP/NDP for owned addresses); everything
else goes to the kernel, so the host stays reachable.
.TP
.B Reloading
SIGHUP, or a change of the configuration file's modification time, reloads it. The new
file is validated, diffed and published as a new snapshot; connections keep their real
server. A file that does not validate is logged and ignored: the running configuration
keeps serving. Interfaces, workers and the connection table's size need a restart.
.TP
.B Stopping
SIGINT or SIGTERM stops uvsd, as does the end of
.B \-\-run\-for
when given.
.TP
.B Checking a file
.B uvsd \-\-check\-config FILE
parses and validates the file, builds the dataplane tables from it and reads what
loading it reads (the CA files of verified https checks, the accounts of command checks'
\fBuser\fR) without touching the network, so a file that passes will load; only the host's
own addresses (a VIP the kernel holds) and uvsd's privileges are checked at start and
reload alone. Mistakes are reported as
file:line:column: path: message \(em hint.
.SH FILES
.TP
.I /etc/uvs/uvs.yaml
the configuration (any path given to \fB\-\-config\fR); see \fBuvs.yaml\fR(5).
.TP
.I /run/uvs/uvsadm.sock
the admin socket (\fBadmin.socket\fR in the configuration), mode 0600, or 0660 for
\fBadmin.group\fR; \fBuvsadm\fR(8) talks to it.
.SH ENVIRONMENT
.TP
.B RUST_LOG
the log filter (env_logger syntax); the default is \fBinfo\fR. Logs go to standard error.
.SH "EXIT STATUS"
0 after a clean stop or a valid \fB\-\-check\-config\fR; 1 when the configuration is
invalid or the dataplane cannot start; 2 for a command-line mistake, including giving
neither \fB\-\-config\fR nor \fB\-\-check\-config\fR.
"#;

/// One row of a usage table: its flags and what it does.
struct Row {
    flags: String,
    text: String,
}

/// The `Commands:` or `Options:` table of `uvsadm -h`. Rows start at column 2; their text
/// starts at the column where continuation lines start.
fn table(lines: &[&str]) -> Vec<Row> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let text_col = lines
        .iter()
        .filter(|l| !l.trim().is_empty() && indent(l) > 4)
        .map(|l| indent(l))
        .min()
        .unwrap_or(30);
    let mut rows: Vec<Row> = Vec::new();
    for l in lines {
        if l.trim().is_empty() {
            continue;
        }
        if indent(l) >= text_col {
            if let Some(r) = rows.last_mut() {
                r.text.push(' ');
                r.text.push_str(l.trim());
            }
            continue;
        }
        let (flags, text) = if l.len() > text_col {
            l.split_at(text_col)
        } else {
            (*l, "")
        };
        rows.push(Row {
            flags: flags.trim().to_string(),
            text: text.trim().to_string(),
        });
    }
    rows
}

fn rows_roff(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        // `--tcp-service  -t service-address`: flags bold, their argument italic.
        let words: Vec<String> = r
            .flags
            .split_whitespace()
            .enumerate()
            .map(|(i, w)| {
                if i == 0 || w.starts_with('-') {
                    format!("\\fB{}\\fR", flag(w))
                } else {
                    format!("\\fI{}\\fR", roff(w))
                }
            })
            .collect();
        let _ = writeln!(out, ".TP\n{}", words.join(" "));
        let text = if r.text.is_empty() {
            "(as the line above)".to_string()
        } else {
            roff(&r.text)
        };
        let _ = writeln!(out, "{text}");
    }
    out
}

/// uvsadm(8), from `usage` (the text `uvsadm -h` prints).
pub fn uvsadm_page(usage: &str) -> String {
    let lines: Vec<&str> = usage.lines().collect();
    let find = |h: &str| lines.iter().position(|l| l.trim_end() == h);
    // The usage text is this crate's own (`admin::usage`), with these three headings.
    let heading = |h: &str| find(h).unwrap_or_else(|| panic!("uvsadm's usage has no {h} line"));
    let (u, c, o) = (heading("Usage:"), heading("Commands:"), heading("Options:"));
    let mut page = title("UVSADM", "8", "System Administration");
    page.push_str(".SH NAME\nuvsadm \\- administer uvs, the userspace Linux Virtual Server, with ipvsadm's command line\n");
    page.push_str(".SH SYNOPSIS\n.nf\n");
    for l in &lines[u + 1..c] {
        if !l.trim().is_empty() {
            let l = l.strip_prefix("  ").unwrap_or(l);
            let _ = writeln!(page, "{}", flag(l.trim_end()));
        }
    }
    page.push_str(".fi\n");
    page.push_str(UVSADM_DESCRIPTION);
    page.push_str(".SH COMMANDS\n");
    // The line under `Commands:` that is prose, not a row.
    let body: Vec<&str> = lines[c + 1..o]
        .iter()
        .filter(|l| l.starts_with("  "))
        .copied()
        .collect();
    for l in &lines[c + 1..o] {
        if !l.starts_with(' ') && !l.trim().is_empty() {
            let _ = writeln!(page, "{}", roff(l));
        }
    }
    page.push_str(&rows_roff(&table(&body)));
    page.push_str(".SH OPTIONS\n");
    page.push_str(&rows_roff(&table(&lines[o + 1..])));
    page.push_str(UVSADM_SECTIONS);
    page.push_str(&see_also(&[
        "uvsd(8)",
        "uvs.yaml(5)",
        "ipvsadm(8)",
        "keepalived.conf(5)",
    ]));
    page
}

const UVSADM_DESCRIPTION: &str = r#".SH DESCRIPTION
uvsadm sends one command to a running \fBuvsd\fR(8) over its admin socket and prints the
answer. The command line is ipvsadm's: \fB\-A\fR/\fB\-E\fR/\fB\-D\fR edit virtual services,
\fB\-a\fR/\fB\-e\fR/\fB\-d\fR real servers, \fB\-L\fR lists, \fB\-Z\fR zeroes the
service and real server counters (as ipvsadm's; the drop counters keep counting);
short options cluster (\fB\-Ln\fR, \fB\-w3\fR) and long ones take \fB\-\-opt value\fR or
\fB\-\-opt=value\fR. Host and service names are resolved by uvsadm, as ipvsadm does: given
to \fB\-t\fR, \fB\-u\fR and \fB\-r\fR (and in \fB\-R\fR's input) they are sent as numbers,
and without \fB\-n\fR the listings show host names (the system resolver) and service names
(\fI/etc/services\fR); uvsd itself never waits on a resolver. The first line of \fB\-L\fR is
ipvsadm's, \fBIP Virtual Server version 1.2.1 (size=\fR\fIN\fR\fB)\fR, for the scripts
that read it. The line is parsed before anything is sent, so mistakes and \fB\-h\fR need no
daemon; a command uvsd rejects changes nothing and says why. Edits are validated as the
configuration file is on this host: a VIP or real server that is one of the host's own
addresses is refused, naming it, so \fBuvsadm save\fR writes only what a reload accepts.
.PP
A firewall-mark service (\fB\-f\fR \fImark\fR, with \fB\-6\fR for IPv6) takes the packets
whose destination, protocol and port match the mark's entry in \fBmarks:\fR of
\fBuvs.yaml\fR(5): uvs does not see netfilter's marks. \fB\-R\fR reads the rules of
\fBuvsadm \-S\fR or \fBipvsadm \-S\fR from standard input and applies them together: a bad
line (reported with its line number) applies none.
.PP
An edit changes the running configuration only, as with ipvsadm; \fBuvsadm save\fR prints
the running configuration as YAML for the file (see \fBuvs.yaml\fR(5)).
.PP
\fBimport\-keepalived\fR runs alone, without a daemon: it translates the
\fBvirtual_server\fR blocks of a keepalived.conf into uvs YAML on standard output. What
uvs cannot do the same way (fwmark virtual servers, SSL_GET, digests, quorum above 1,
notify scripts, \fI...\fR) is refused as \fIfile\fR:\fIline\fR:\fIcolumn\fR: \fImessage\fR
and nothing is printed; what only changes timing or logging is translated as closely as
possible and reported as notes on standard error. keepalived.conf does not say which
interface uvs serves on: \fB\-\-interface\fR (default: the \fBvrrp_instance\fR's),
\fB\-\-network\fR, \fB\-\-local\fR and \fB\-\-route\fR do. The result is validated as
\fBuvsd \-\-check\-config\fR would before it is printed.
"#;

const UVSADM_SECTIONS: &str = r#".SH ENVIRONMENT
.TP
.B UVSADM_SOCKET
the admin socket when \fB\-\-socket\fR is not given.
.SH FILES
.TP
.I /run/uvs/uvsadm.sock
the default admin socket (\fBadmin.socket\fR in \fBuvs.yaml\fR(5)).
.SH "EXIT STATUS"
As \fBipvsadm\fR(8): 0 on success; 2 when the command line is wrong (an unknown option, a
bad value, a name that does not resolve, a bad line in \fB\-R\fR's input) or the daemon
cannot be reached (ipvsadm's \fBCan't initialize ipvs\fR); 255 when the daemon refuses a
change (\fB\-A \-E \-D \-a \-e \-d \-C \-Z \-R \-\-set\fR, \fB\-\-start\-daemon\fR,
\fB\-\-stop\-daemon\fR: \fBService already exists\fR, \fBNo such destination\fR, ...),
where ipvsadm returns \-1 for the kernel's refusal; 1 when a listing fails (\fB\-L \-t\fR
of an unknown service), one of uvs's own commands fails, \fBimport\-keepalived\fR refuses
its input, or \fBdrain \-\-wait\fR gives up (its \fB\-\-timeout\fR passed, or the server
changed while it waited). Unlike ipvsadm, which exits 255 for an unknown option or one
missing its value, uvsadm exits 2 for every command-line mistake, so that 255 always means
the daemon refused a change.
"#;

/// One field of reference.yaml: its path, its example value and what the comments say.
#[derive(Debug)]
struct Field {
    path: String,
    value: String,
    text: String,
}

/// Splits `key: value  # comment` (comment optional; `#` inside quotes is text).
fn split_line(s: &str) -> (&str, &str) {
    let mut quote = None;
    let bytes: Vec<char> = s.chars().collect();
    let mut byte = 0;
    for (i, &c) in bytes.iter().enumerate() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if i == 0 || bytes[i - 1] == ' ' => {
                return (s[..byte].trim_end(), s[byte + 1..].trim());
            }
            _ => {}
        }
        byte += c.len_utf8();
    }
    (s.trim_end(), "")
}

/// The fields of reference.yaml with their paths (`services[].health_check.interval`), in
/// document order, merged where the same path appears twice; and the header comment.
fn fields(src: &str) -> (String, Vec<Field>) {
    let mut header = String::new();
    let mut out: Vec<Field> = Vec::new();
    // (indentation of the key, path of the key)
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut last: Option<usize> = None;
    let mut started = false;
    fn add(out: &mut Vec<Field>, path: String, value: &str, text: &str) -> usize {
        if let Some(i) = out.iter().position(|f| f.path == path) {
            // A second example of the same field (the geo service): its comment is about
            // that value.
            if !text.is_empty() && !out[i].text.contains(text) {
                let sep = if out[i].text.ends_with('.') {
                    " "
                } else {
                    ". "
                };
                let _ = write!(out[i].text, "{sep}With {value}: {text}");
            }
            i
        } else {
            out.push(Field {
                path,
                value: value.to_string(),
                text: text.to_string(),
            });
            out.len() - 1
        }
    }
    // Paths (unbracketed) of the keys whose value is a list of mappings.
    let mut lists: Vec<String> = Vec::new();
    let all: Vec<&str> = src.lines().collect();
    for (n, line) in all.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            let comment = comment.trim();
            if !started {
                header.push_str(comment);
                header.push('\n');
                continue;
            }
            // A field shown commented out (`# command: "..."   # what it is`).
            if let Some((k, rest)) = comment.split_once(": ") {
                if !k.contains(' ') && indent > 0 {
                    let (value, text) = split_line(rest);
                    let parent = stack
                        .iter()
                        .rev()
                        .find(|(i, _)| *i < indent)
                        .map(|(_, p)| p.clone())
                        .unwrap_or_default();
                    last = Some(add(&mut out, join(&parent, k), value, text));
                    continue;
                }
            }
            if let Some(i) = last {
                out[i].text.push(' ');
                out[i].text.push_str(comment);
            }
            continue;
        }
        started = true;
        // `- key: value` opens a list item: its keys sit two columns in.
        let (item, rest, key_indent) = match trimmed.strip_prefix("- ") {
            Some(r) => (true, r, indent + 2),
            None => (false, trimmed, indent),
        };
        while stack.last().is_some_and(|(i, _)| *i >= key_indent) {
            stack.pop();
        }
        let parent = stack.last().map(|(_, p)| p.clone()).unwrap_or_default();
        let (content, text) = split_line(rest);
        if item && content.starts_with('{') {
            // `- { prefix: ..., via: ... }` under a list key.
            for (k, v) in flow_pairs(content) {
                last = Some(add(&mut out, join(&parent, k), v, ""));
            }
            if !text.is_empty() {
                if let Some(i) = last {
                    out[i].text.push_str(text);
                }
            }
            continue;
        }
        let Some((key, value)) = content.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let path = join(&parent, key.trim());
        last = Some(add(&mut out, path.clone(), value, text));
        if value.starts_with('{') {
            for (k, v) in flow_pairs(value) {
                add(&mut out, join(&path, k), v, "");
            }
        }
        if value.is_empty() {
            // A mapping or a list of mappings follows (the next line that is not a
            // comment tells which); list items get `[]`.
            let next = all[n + 1..]
                .iter()
                .map(|l| l.trim_start())
                .find(|l| !l.is_empty() && !l.starts_with('#'));
            if next.is_some_and(|l| l.starts_with("- ")) {
                lists.push(path.clone());
            }
            stack.push((key_indent, path));
        }
    }
    for f in &mut out {
        f.path = bracket(&f.path, &lists);
    }
    (header, out)
}

/// `a.b` + `c` → `a.b.c`.
fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Marks the path segments that are lists of mappings with `[]` (`lists` holds their
/// unbracketed paths: `services`, `services.real_servers`).
fn bracket(path: &str, lists: &[String]) -> String {
    let mut plain = String::new();
    let mut out = Vec::new();
    for seg in path.split('.') {
        if !plain.is_empty() {
            plain.push('.');
        }
        plain.push_str(seg);
        if lists.contains(&plain) {
            out.push(format!("{seg}[]"));
        } else {
            out.push(seg.to_string());
        }
    }
    out.join(".")
}

/// `{ a: 1, b: "x, y" }` → `[(a, 1), (b, "x, y")]`.
fn flow_pairs(s: &str) -> Vec<(&str, &str)> {
    let inner = s.trim().trim_start_matches('{').trim_end_matches('}');
    let mut out = Vec::new();
    let mut start = 0;
    let mut quote = None;
    for (i, c) in inner
        .char_indices()
        .chain(std::iter::once((inner.len(), ',')))
    {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ',') => {
                if let Some((k, v)) = inner[start..i].split_once(':') {
                    out.push((k.trim(), v.trim()));
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    out
}

/// uvs.yaml(5), from configs/reference.yaml and the `member:` fields of `member`
/// (configs/member.yaml).
pub fn uvs_yaml_page(reference: &str, member: &str) -> String {
    let (_, member_fields) = fields(member);
    let (header, mut fields) = fields(reference);
    fields.extend(
        member_fields
            .into_iter()
            .filter(|f| f.path == "member" || f.path.starts_with("member.")),
    );
    let mut page = title("UVS.YAML", "5", "File Formats");
    page.push_str(".SH NAME\nuvs.yaml \\- the configuration file of uvsd, the userspace Linux Virtual Server\n");
    page.push_str(".SH SYNOPSIS\n.I /etc/uvs/uvs.yaml\n");
    page.push_str(".SH DESCRIPTION\n");
    for l in header.lines() {
        let _ = writeln!(page, "{}", roff(l));
    }
    page.push_str(
        ".PP\n\\fBuvsd \\-\\-check\\-config\\fR FILE validates a file without touching the \
         network. uvsd reloads the file on SIGHUP or when it changes; a file that does not \
         validate is logged and ignored. \\fBuvsadm save\\fR prints the running configuration \
         in this format.\n",
    );
    page.push_str(
        ".SH FIELDS\nEach field with the example value of the reference file and its rules.\n",
    );
    let mut section = "";
    for f in &fields {
        let top = f.path.split(['.', '[']).next().unwrap_or("");
        if top != section {
            let _ = writeln!(page, ".SS {}", top);
            section = top;
        }
        let _ = writeln!(page, ".TP\n.B {}", roff(&f.path));
        let mut text = String::new();
        if !f.value.is_empty() {
            let _ = write!(text, "Example: {}. ", f.value);
        }
        text.push_str(&f.text);
        if text.is_empty() {
            text.push_str("A mapping; its fields follow.");
        }
        let _ = writeln!(page, "{}", roff(text.trim()));
    }
    page.push_str(".SH EXAMPLE\nThe reference file, every field with its default:\n.PP\n.EX\n");
    for l in reference.lines() {
        let _ = writeln!(page, "{}", roff(l));
    }
    page.push_str(".EE\n.PP\nMember mode (no services), every field with its default:\n.PP\n.EX\n");
    for l in member.lines() {
        let _ = writeln!(page, "{}", roff(l));
    }
    page.push_str(".EE\n");
    page.push_str(&see_also(&["uvsd(8)", "uvsadm(8)"]));
    page
}

/// Writes `DIR/man8/uvsd.8`, `DIR/man8/uvsadm.8` and `DIR/man5/uvs.yaml.5`.
pub fn write_pages(dir: &Path, uvsd: clap::Command) -> std::io::Result<Vec<PathBuf>> {
    let pages = [
        ("man8", "uvsd.8", uvsd_page(uvsd)),
        ("man8", "uvsadm.8", uvsadm_page(&crate::admin::usage())),
        (
            "man5",
            "uvs.yaml.5",
            uvs_yaml_page(REFERENCE_YAML, MEMBER_YAML),
        ),
    ];
    let mut written = Vec::new();
    for (sub, name, text) in pages {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d)?;
        let p = d.join(name);
        std::fs::write(&p, text)?;
        written.push(p);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_comments_outside_quotes() {
        assert_eq!(split_line("a: 1   # one"), ("a: 1", "one"));
        assert_eq!(split_line("a: \"x # y\"  # z"), ("a: \"x # y\"", "z"));
        assert_eq!(split_line("a: b#c"), ("a: b#c", ""));
    }

    #[test]
    fn flow_mappings_split_at_top_level_commas() {
        assert_eq!(
            flow_pairs("{ prefix: \"::/0\", via: \"2001:2::fe\" }"),
            [("prefix", "\"::/0\""), ("via", "\"2001:2::fe\"")]
        );
    }

    #[test]
    fn usage_tables_join_continuations() {
        let rows = table(&[
            "  --edit-service    -E        edit virtual service with options (what is not given",
            "                              returns to its default)",
            "  save                        print the running configuration as YAML",
        ]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].flags, "--edit-service    -E");
        assert!(rows[0].text.ends_with("not given returns to its default)"));
        assert_eq!(rows[1].flags, "save");
    }

    #[test]
    fn roff_escapes_requests_and_backslashes() {
        assert_eq!(roff(".x"), "\\&.x");
        assert_eq!(roff("a\\b"), "a\\eb");
        assert_eq!(flag("--add-service"), "\\-\\-add\\-service");
    }
}
