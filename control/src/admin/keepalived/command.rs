//! `MISC_CHECK`'s `misc_path` → the command line of a uvs command check.

use super::check::Target;
use super::lex::Word;

/// `misc_path`'s words → one `sh -c` command line.
///
/// keepalived runs the program itself (no shell): the words are split at unquoted spaces,
/// single quotes grouping. Each argument is quoted for the shell where needed so `sh -c`
/// runs the same argv; `%` is doubled for uvs's placeholders; the real server's address as a
/// whole argument, or delimited inside one, becomes `%a`, so that the same script checking
/// each server by its address is one service-wide check.
pub fn command_line(args: &[Word], target: &Target<'_>) -> String {
    let mut argv: Vec<String> = Vec::new();
    for w in args {
        argv.extend(split_script(&w.text));
    }
    let canonical = target.address.to_string();
    argv.iter()
        .map(|a| {
            let escaped = shell_quote(a).replace('%', "%%");
            let mut out = replace_address(&escaped, target.address_text);
            if canonical != target.address_text {
                out = replace_address(&out, &canonical);
            }
            out
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Splits at unquoted whitespace; single quotes group (and are removed).
fn split_script(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// Quotes an argument for `sh` unless it is made only of characters the shell leaves alone.
fn shell_quote(a: &str) -> String {
    let safe = !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-+=./:,@%".contains(c));
    if safe {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

/// Replaces `addr` with `%a` where it is not part of a longer address or number (an IPv4
/// address may be followed by `:port`).
fn replace_address(s: &str, addr: &str) -> String {
    let v6 = addr.contains(':');
    let is_addr_char = |c: char| {
        if v6 {
            c.is_ascii_hexdigit() || c == '.' || c == ':'
        } else {
            c.is_ascii_digit() || c == '.'
        }
    };
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(addr) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + addr.len()..].chars().next();
        let bounded = !before.is_some_and(is_addr_char) && !after.is_some_and(is_addr_char);
        out.push_str(&rest[..i]);
        out.push_str(if bounded { "%a" } else { addr });
        rest = &rest[i + addr.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::super::lex::Pos;
    use super::*;

    fn words(texts: &[&str]) -> Vec<Word> {
        texts
            .iter()
            .map(|t| Word {
                text: t.to_string(),
                pos: Pos::default(),
            })
            .collect()
    }

    fn target(a: &str) -> Target<'_> {
        Target {
            address: a.parse().unwrap(),
            address_text: a,
            port: 80,
        }
    }

    #[test]
    fn command_lines_quote_and_substitute() {
        let t = target("198.18.1.11");
        assert_eq!(
            command_line(&words(&["/usr/bin/check.sh 198.18.1.11 80"]), &t),
            "/usr/bin/check.sh %a 80"
        );
        assert_eq!(
            command_line(
                &words(&["/bin/x", "http://198.18.1.11:80/", "198.18.1.111"]),
                &t
            ),
            "/bin/x http://%a:80/ 198.18.1.111"
        );
        assert_eq!(
            command_line(&words(&["/bin/x 'a b' 50% $HOME"]), &t),
            "/bin/x 'a b' 50%% '$HOME'"
        );
        assert_eq!(
            command_line(&words(&["/bin/x it's"]), &target("2001:2::11")),
            "/bin/x its"
        );
        let v6 = target("2001:2:0::11");
        assert_eq!(
            command_line(&words(&["/bin/x 2001:2:0::11 2001:2::11 2001:2::111"]), &v6),
            "/bin/x %a %a 2001:2::111"
        );
    }

    #[test]
    fn split_script_groups_single_quotes() {
        assert_eq!(split_script("a 'b c'd  e"), ["a", "b cd", "e"]);
        assert_eq!(split_script("''"), [""]);
    }
}
