//! ipvsadm's argv conventions, without meaning: popt-style tokens (clustered short options,
//! `--long=value`, `-p`'s optional value) and the value syntaxes (numbers, `ADDRESS[:PORT]`,
//! netmasks). What the options mean per command is in `parse`.

use std::net::{IpAddr, Ipv4Addr};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Arity {
    None,
    Required,
    /// `-p`: takes the next word if it does not look like an option.
    Optional,
}

/// Short options: letter → arity.
pub(super) fn short_arity(c: char) -> Option<Arity> {
    Some(match c {
        'A' | 'E' | 'D' | 'C' | 'L' | 'l' | 'Z' | 'a' | 'e' | 'd' | 'S' | 'R' | 'h' | 'v' | 'm'
        | 'i' | 'g' | 'n' | 'c' | 'o' | 'X' | '6' => Arity::None,
        't' | 'u' | 'f' | 's' | 'b' | 'M' | 'r' | 'w' | 'x' | 'y' => Arity::Required,
        'p' => Arity::Optional,
        _ => return None,
    })
}

/// Long option → its short equivalent (or a pseudo letter for long-only ones) and arity.
pub(super) fn long_option(name: &str) -> Option<(&'static str, Arity)> {
    Some(match name {
        "add-service" => ("A", Arity::None),
        "edit-service" => ("E", Arity::None),
        "delete-service" => ("D", Arity::None),
        "clear" => ("C", Arity::None),
        "list" => ("L", Arity::None),
        "zero" => ("Z", Arity::None),
        "add-server" => ("a", Arity::None),
        "edit-server" => ("e", Arity::None),
        "delete-server" => ("d", Arity::None),
        "save" => ("S", Arity::None),
        "restore" => ("R", Arity::None),
        "help" => ("h", Arity::None),
        "version" => ("v", Arity::None),
        "tcp-service" => ("t", Arity::Required),
        "udp-service" => ("u", Arity::Required),
        "sctp-service" => ("sctp-service", Arity::Required),
        "fwmark-service" => ("f", Arity::Required),
        "scheduler" => ("s", Arity::Required),
        "sched-flags" => ("b", Arity::Required),
        "persistent" => ("p", Arity::Optional),
        "netmask" => ("M", Arity::Required),
        "real-server" => ("r", Arity::Required),
        "masquerading" => ("m", Arity::None),
        "ipip" => ("i", Arity::None),
        "gatewaying" => ("g", Arity::None),
        "fullnat" => ("fullnat", Arity::None),
        "fullnat-pool" => ("fullnat-pool", Arity::Required),
        "weight" => ("w", Arity::Required),
        "u-threshold" => ("x", Arity::Required),
        "l-threshold" => ("y", Arity::Required),
        "numeric" => ("n", Arity::None),
        "connection" => ("c", Arity::None),
        "stats" => ("stats", Arity::None),
        "rate" => ("rate", Arity::None),
        "thresholds" => ("thresholds", Arity::None),
        "exact" => ("X", Arity::None),
        "nosort" => ("nosort", Arity::None),
        "sort" => ("sort", Arity::None),
        "ops" => ("o", Arity::None),
        "once" => ("once", Arity::None),
        "ipv6" => ("6", Arity::None),
        "set" => ("set", Arity::None),
        "start-daemon" => ("start-daemon", Arity::Required),
        "stop-daemon" => ("stop-daemon", Arity::Required),
        "timeout" => ("timeout", Arity::None),
        "daemon" => ("daemon", Arity::None),
        "persistent-conn" => ("persistent-conn", Arity::None),
        "json" => ("json", Arity::None),
        "pe" => ("pe", Arity::Required),
        "tun-type" => ("tun-type", Arity::Required),
        "tun-port" => ("tun-port", Arity::Required),
        "tun-nocsum" => ("tun-nocsum", Arity::None),
        "tun-csum" => ("tun-csum", Arity::None),
        "tun-remcsum" => ("tun-remcsum", Arity::None),
        "tun-info" => ("tun-info", Arity::None),
        _ => return None,
    })
}

/// Splits argv into (option key, how it was spelled, value) triples, and bare words.
pub(super) fn tokenize(argv: &[String]) -> Result<Vec<(String, String, Option<String>)>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    let takes_next = |i: usize, arity: Arity| -> bool {
        match arity {
            Arity::None => false,
            Arity::Required => true,
            Arity::Optional => argv.get(i + 1).is_some_and(|n| !n.starts_with('-')),
        }
    };
    while i < argv.len() {
        let arg = &argv[i];
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let Some((key, arity)) = long_option(name) else {
                return Err(format!("unknown option '--{name}': see uvsadm -h"));
            };
            let spelled = format!("--{name}");
            let value = match (inline, arity) {
                (Some(_), Arity::None) => {
                    return Err(format!("{spelled} takes no value"));
                }
                (Some(v), _) => Some(v),
                (None, a) if takes_next(i, a) => {
                    i += 1;
                    Some(argv.get(i).cloned().ok_or_else(|| missing(&spelled))?)
                }
                (None, _) => None,
            };
            out.push((key.to_string(), spelled, value));
        } else if arg.len() > 1 && arg.starts_with('-') {
            // A cluster of short options (`-Ln`); a value-taking one ends it and takes the
            // rest of the word (`-w3`) or the next word.
            let letters: Vec<char> = arg[1..].chars().collect();
            let mut j = 0;
            while j < letters.len() {
                let c = letters[j];
                let Some(arity) = short_arity(c) else {
                    return Err(format!(
                        "unknown option '-{c}'{}: see uvsadm -h",
                        if letters.len() > 1 {
                            format!(" in '{arg}'")
                        } else {
                            String::new()
                        }
                    ));
                };
                let spelled = format!("-{c}");
                if arity == Arity::None {
                    out.push((c.to_string(), spelled, None));
                    j += 1;
                    continue;
                }
                let rest: String = letters[j + 1..].iter().collect();
                let value = if !rest.is_empty() {
                    Some(rest)
                } else if takes_next(i, arity) {
                    i += 1;
                    Some(argv.get(i).cloned().ok_or_else(|| missing(&spelled))?)
                } else {
                    None
                };
                out.push((c.to_string(), spelled, value));
                break;
            }
        } else {
            out.push((String::new(), arg.clone(), None));
        }
        i += 1;
    }
    Ok(out)
}

fn missing(spelled: &str) -> String {
    format!("{spelled} needs a value: see uvsadm -h")
}

pub(super) fn number(text: &str, min: u64, max: u64, what: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "illegal {what} '{text}': give a whole number in {min}..={max}"
        )),
    }
}

/// `198.18.100.1:80`, `198.18.100.1`, `[2001:2::1]:80`, `2001:2::1` → (address, port).
pub(super) fn endpoint(text: &str, what: &str) -> Result<(IpAddr, Option<u16>), String> {
    let bad = || {
        format!(
            "illegal {what} address '{text}': give ADDRESS[:PORT], e.g. 198.18.100.1:80 or \
             [2001:2::1]:80 (numeric only: uvsadm does not resolve names)"
        )
    };
    if let Some(rest) = text.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').ok_or_else(bad)?;
        let ip: std::net::Ipv6Addr = addr.parse().map_err(|_| bad())?;
        let port = match after {
            "" => None,
            p => Some(port(p.strip_prefix(':').ok_or_else(bad)?, text)?),
        };
        return Ok((IpAddr::V6(ip), port));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    let (addr, p) = text.rsplit_once(':').ok_or_else(bad)?;
    let ip: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    Ok((IpAddr::V4(ip), Some(port(p, text)?)))
}

fn port(p: &str, whole: &str) -> Result<u16, String> {
    p.parse::<u16>().map_err(|_| {
        format!("illegal port '{p}' in '{whole}': give a number 0..=65535 (service names are not looked up)")
    })
}

pub(super) fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

/// `-M`: a dotted IPv4 mask (`255.255.255.0`) or a prefix length (`24`, `/24`, and for IPv6
/// services only a length, as ipvsadm).
pub(super) fn netmask(text: &str, vip: IpAddr) -> Result<u8, String> {
    let max = max_prefix(vip);
    let bad = || {
        if vip.is_ipv4() {
            format!(
                "illegal persistence netmask '{text}' after -M: give a mask like \
                 255.255.255.0 or a prefix length 1..=32"
            )
        } else {
            format!(
                "illegal IPv6 persistence netmask '{text}' after -M: give a prefix length 1..=128"
            )
        }
    };
    let len_text = text.strip_prefix('/').unwrap_or(text);
    if let Ok(len) = len_text.parse::<u8>() {
        if (1..=max).contains(&len) {
            return Ok(len);
        }
        return Err(bad());
    }
    if vip.is_ipv4() {
        if let Ok(mask) = text.parse::<Ipv4Addr>() {
            let bits = u32::from(mask);
            let len = bits.leading_ones();
            if len > 0 && bits.checked_shl(len).unwrap_or(0) == 0 {
                return Ok(len as u8);
            }
        }
    }
    Err(bad())
}

/// uvsadm's own `--socket PATH` / `--socket=PATH`, taken out of `args` wherever it is: it is
/// no ipvsadm option, so no ipvsadm word means it, and no option's value is taken for it. The
/// path (or `None`) and the words left, for the tokenizer and the commands' own grammars.
/// The path is refused empty, given twice, or as a separate word starting with `-` (most
/// likely the path was left out: `--socket=-odd` says it is one).
pub fn take_socket_option(
    args: &[String],
) -> Result<(Option<std::path::PathBuf>, Vec<String>), String> {
    let mut socket = None;
    let mut rest = Vec::with_capacity(args.len());
    let mut words = args.iter();
    while let Some(a) = words.next() {
        let path = if a == "--socket" {
            match words.next() {
                Some(p) if !p.starts_with('-') => p.clone(),
                Some(p) => {
                    return Err(format!(
                        "--socket needs a path, not '{p}' (--socket={p} if that is the path)"
                    ))
                }
                None => String::new(),
            }
        } else if let Some(p) = a.strip_prefix("--socket=") {
            p.to_string()
        } else {
            rest.push(a.clone());
            continue;
        };
        if path.is_empty() {
            return Err("--socket needs a path: --socket PATH or --socket=PATH".into());
        }
        if socket.replace(std::path::PathBuf::from(path)).is_some() {
            return Err("--socket given twice".into());
        }
    }
    Ok((socket, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_option_anywhere() {
        let sock = |line: &str| {
            take_socket_option(&argv(line))
                .map(|(p, rest)| (p.map(|p| p.display().to_string()), rest.join(" ")))
        };
        let some = |p: &str, rest: &str| Ok((Some(p.to_string()), rest.to_string()));
        assert_eq!(sock("--socket /s -L -n"), some("/s", "-L -n"));
        assert_eq!(sock("-L -n -c --socket /s"), some("/s", "-L -n -c"));
        assert_eq!(sock("-L --socket=/s -n"), some("/s", "-L -n"));
        assert_eq!(
            sock("-a -t 198.18.100.1:80 --socket /s -r 198.18.1.11 -w 2"),
            some("/s", "-a -t 198.18.100.1:80 -r 198.18.1.11 -w 2")
        );
        assert_eq!(sock("--socket=-odd -L"), some("-odd", "-L"));
        assert_eq!(sock("-L -n"), Ok((None, "-L -n".to_string())));
        for bad in ["-L --socket", "-L --socket=", "--socket -L -n"] {
            assert!(
                sock(bad).unwrap_err().contains("--socket needs a path"),
                "{bad}"
            );
        }
        assert_eq!(
            sock("--socket /a -L --socket=/b"),
            Err("--socket given twice".to_string())
        );
    }

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn clusters_and_inline_values() {
        let t = tokenize(&argv("-Ln -w3 --weight=4 -p -s rr")).unwrap();
        let keys: Vec<(&str, Option<&str>)> = t
            .iter()
            .map(|(k, _, v)| (k.as_str(), v.as_deref()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("L", None),
                ("n", None),
                ("w", Some("3")),
                ("w", Some("4")),
                ("p", None),
                ("s", Some("rr")),
            ]
        );
    }

    #[test]
    fn endpoints() {
        let v4: IpAddr = "198.18.100.1".parse().unwrap();
        let v6: IpAddr = "2001:2::1".parse().unwrap();
        assert_eq!(endpoint("198.18.100.1:80", "x"), Ok((v4, Some(80))));
        assert_eq!(endpoint("198.18.100.1", "x"), Ok((v4, None)));
        assert_eq!(endpoint("[2001:2::1]:443", "x"), Ok((v6, Some(443))));
        assert_eq!(endpoint("[2001:2::1]", "x"), Ok((v6, None)));
        assert_eq!(endpoint("2001:2::1", "x"), Ok((v6, None)));
        assert!(endpoint("host.example:80", "x").is_err());
        assert!(endpoint("198.18.100.1:http", "x")
            .unwrap_err()
            .contains("illegal port 'http'"));
        assert!(endpoint("[2001:2::1]80", "x").is_err());
        assert!(endpoint("198.18.100.1:70000", "x").is_err());
    }

    #[test]
    fn netmasks() {
        let v4: IpAddr = "198.18.100.1".parse().unwrap();
        let v6: IpAddr = "2001:2::1".parse().unwrap();
        assert_eq!(netmask("255.255.255.0", v4), Ok(24));
        assert_eq!(netmask("255.255.255.255", v4), Ok(32));
        assert_eq!(netmask("/16", v4), Ok(16));
        assert!(netmask("255.0.255.0", v4).is_err());
        assert!(netmask("0.0.0.0", v4).is_err());
        assert!(netmask("33", v4).is_err());
        assert_eq!(netmask("64", v6), Ok(64));
        assert!(netmask("255.255.255.0", v6).is_err());
    }
}
