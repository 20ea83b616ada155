//! `uvsadm node` (the node's BGP announcement and drain state) and `uvsadm node drain
//! [--timeout S] [--no-wait]`: withdraw every VIP, wait for traffic to end or the timeout,
//! then stop uvsd. uvsd answers a drain at once; waiting for the daemon to stop is
//! uvsadm's side (`--no-wait` skips it), so the admin socket stays free meanwhile.

/// A parsed `node` command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeCommand {
    Status,
    Drain {
        /// Seconds; `None`: `bgp.drain_timeout` (60 without a bgp section).
        timeout: Option<u32>,
        /// uvsadm waits until uvsd has stopped.
        wait: bool,
    },
}

/// `Some` when `argv` is a `node` command.
pub fn parse(argv: &[String]) -> Option<Result<NodeCommand, String>> {
    if argv.first().map(String::as_str) != Some("node") {
        return None;
    }
    Some(parse_node(&argv[1..]))
}

fn parse_node(args: &[String]) -> Result<NodeCommand, String> {
    let mut it = args.iter().map(String::as_str);
    match it.next() {
        None | Some("status") => match it.next() {
            None => Ok(NodeCommand::Status),
            Some(a) => Err(format!("node: unexpected argument '{a}'")),
        },
        Some("drain") => {
            let (mut timeout, mut wait) = (None, true);
            while let Some(a) = it.next() {
                let (flag, value) = match a.split_once('=') {
                    Some((f, v)) if f.starts_with("--") => (f, Some(v)),
                    _ => (a, None),
                };
                match flag {
                    "--timeout" => {
                        let v = value
                            .or_else(|| it.next())
                            .ok_or("node drain: --timeout needs seconds")?;
                        let s: u32 = v.parse().ok().filter(|s| *s <= 86400).ok_or_else(|| {
                            format!("node drain: --timeout '{v}' is not 0..=86400 seconds")
                        })?;
                        timeout = Some(s);
                    }
                    "--no-wait" if value.is_none() => wait = false,
                    _ => return Err(format!("node drain: unexpected argument '{a}'")),
                }
            }
            Ok(NodeCommand::Drain { timeout, wait })
        }
        Some(a) => Err(format!(
            "node: unknown subcommand '{a}' (uvsadm node, uvsadm node drain [--timeout S] [--no-wait])"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<Result<NodeCommand, String>> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn node_commands() {
        assert_eq!(p("node"), Some(Ok(NodeCommand::Status)));
        assert_eq!(p("node status"), Some(Ok(NodeCommand::Status)));
        assert_eq!(
            p("node drain"),
            Some(Ok(NodeCommand::Drain {
                timeout: None,
                wait: true
            }))
        );
        assert_eq!(
            p("node drain --timeout 5 --no-wait"),
            Some(Ok(NodeCommand::Drain {
                timeout: Some(5),
                wait: false
            }))
        );
        assert_eq!(
            p("node drain --timeout=7"),
            Some(Ok(NodeCommand::Drain {
                timeout: Some(7),
                wait: true
            }))
        );
        assert!(p("node drain --timeout").unwrap().is_err());
        assert!(p("node drain --timeout x").unwrap().is_err());
        assert!(p("node drain --timeout 99999999").unwrap().is_err());
        assert!(p("node drian").unwrap().is_err());
        assert!(p("node status x").unwrap().is_err());
        assert_eq!(p("-L -n"), None);
    }
}
