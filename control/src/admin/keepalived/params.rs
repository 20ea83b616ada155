//! keepalived's parameter substitution (keepalived.conf(5), "Parameter substitution"): a line
//! `$NAME=VALUE` (only whitespace before the `$`, none before the `=`) defines a parameter, a
//! definition whose lines but the last end with `\` has several lines, and `$NAME` followed by
//! whitespace or the end of the line, or `${NAME}` anywhere, is replaced by its value when a
//! line is read: recursively, and with the value it has then (a later definition replaces
//! it). An undefined parameter is left as written. Of the predefined parameters,
//! `${_PWD}` (the directory of the file being read), `${_INSTANCE}` (the config id),
//! `${_HASH}` (`#`) and `${_BANG}` (`!`) are known here; `${_RANDOM}` and `${_ENV}`, whose
//! values depend on the run and the host, are not.
//!
//! Conditional configuration is read here too: a line starting with `@ID` is kept (without
//! its `@ID`) only on the balancer whose config id is ID, one with `@^ID` everywhere else;
//! the test is made before a definition is taken and again on a line that substitution
//! made start with `@`, as keepalived does.
//!
//! A line `~SEQ(VAR, START, STEP, END) REST` reads REST once for each value of VAR from
//! START by STEP while it has not passed END (`~SEQx` writes VAR in hexadecimal); STEP may
//! be left out (1, or -1 counting down), and START too (1, or -1).

use std::collections::HashMap;

/// How many times a line may be substituted again (a parameter that names itself).
const MAX_ROUNDS: usize = 32;

/// The most times a `~SEQ` line is read.
const MAX_SEQ: usize = 1024;

/// The parameters defined so far (they span included files, as keepalived reads them as one).
#[derive(Debug, Default)]
pub struct Params {
    defs: HashMap<String, String>,
    /// keepalived's config id (`-i`), for `@ID` lines.
    config_id: String,
    /// The first `@` line, if any (its line number), for a note naming the id used.
    pub conditional_at: Option<usize>,
}

/// Whether `line` starts a definition, after a conditional `@ID` if it has one (so a
/// conditional multiline definition is read with its continuation lines).
pub fn starts_definition(line: &str) -> bool {
    let line = line.trim_start();
    let line = match line.strip_prefix('@') {
        Some(rest) => rest.split_once(char::is_whitespace).map_or("", |(_, l)| l),
        None => line,
    };
    definition(line).is_some()
}

/// `$NAME=` at the start of `line` (after whitespace): the name and the rest of the line.
pub fn definition(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start().strip_prefix('$')?;
    let end = name_len(rest);
    let (name, after) = rest.split_at(end);
    (end > 0).then_some(())?;
    Some((name, after.strip_prefix('=')?))
}

/// The length of the parameter name at the start of `s` (`[A-Za-z_][A-Za-z0-9_]*`).
fn name_len(s: &str) -> usize {
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        return 0;
    }
    s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len())
}

/// Whether `s` ends inside a quoted string.
fn in_quotes(s: &str) -> bool {
    let mut quote = None;
    for c in s.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            _ => {}
        }
    }
    quote.is_some()
}

/// Text before a comment (`#` or `!` outside quotes).
fn uncommented(s: &str) -> &str {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#' | '!') => return &s[..i],
            _ => {}
        }
    }
    s
}

impl Params {
    /// No parameters yet; `@ID` lines are kept for `config_id`.
    pub fn new(config_id: &str) -> Params {
        Params {
            config_id: config_id.to_string(),
            ..Params::default()
        }
    }

    /// Reads one line (a definition with its continuation lines joined by `\n`), numbered
    /// `n`; pushes the lines to tokenize onto `out`, each with `n` (a definition leaves an
    /// empty line, a multiline parameter several). `pwd` is `${_PWD}`.
    pub fn read(
        &mut self,
        n: usize,
        text: &str,
        pwd: &str,
        out: &mut Vec<(usize, String)>,
    ) -> Result<(), String> {
        self.read_at(n, text, pwd, out, 0)
    }

    fn read_at(
        &mut self,
        n: usize,
        text: &str,
        pwd: &str,
        out: &mut Vec<(usize, String)>,
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_ROUNDS {
            return Err("parameters expand into themselves: a definition refers to \
                        the parameter it is in"
                .into());
        }
        let Some(kept) = self.conditional(n, text) else {
            out.push((n, String::new()));
            return Ok(());
        };
        let text = kept.as_str();
        if let Some(seq) = text.trim_start().strip_prefix("~SEQ") {
            return self.sequence(n, seq, pwd, out, depth);
        }
        if let Some((name, rest)) = definition(text) {
            let first = rest.split('\n').next().unwrap_or("");
            let lines: Vec<&str> = std::iter::once(first)
                .chain(text.split('\n').skip(1))
                .map(|l| l.trim_end().strip_suffix('\\').unwrap_or(l).trim_end())
                .collect();
            let value = if lines.len() == 1 {
                uncommented(lines[0]).trim().to_string()
            } else {
                // `$NAME= \`: the value is the lines after it.
                let skip = usize::from(lines[0].trim().is_empty());
                lines[skip..].join("\n")
            };
            self.defs.insert(name.to_string(), value);
            out.push((n, String::new()));
            return Ok(());
        }
        let line = self.substitute(text, pwd)?;
        if line.trim_start().starts_with('@') && line != text {
            // `$IF_MAIN priority 240` with `$IF_MAIN=@main`.
            return self.read_at(n, &line, pwd, out, depth + 1);
        }
        if line.contains('\n') {
            // A multiline parameter: its lines are read one by one, so the definitions among
            // them apply to the lines after them.
            for part in line.split('\n') {
                self.read_at(n, part, pwd, out, depth + 1)?;
            }
        } else {
            out.push((n, line));
        }
        Ok(())
    }

    /// The rest of a `~SEQ` line (after `~SEQ`), read once for each value.
    fn sequence(
        &mut self,
        n: usize,
        seq: &str,
        pwd: &str,
        out: &mut Vec<(usize, String)>,
        depth: usize,
    ) -> Result<(), String> {
        let usage = "write ~SEQ(VAR, START, STEP, END), ~SEQ(VAR, START, END) or ~SEQ(VAR, END)";
        let (hex, seq) = match seq.strip_prefix('x') {
            Some(s) => (true, s),
            None => (false, seq),
        };
        let Some((args, rest)) = seq.strip_prefix('(').and_then(|s| s.split_once(')')) else {
            return Err(format!("~SEQ needs its arguments in parentheses: {usage}"));
        };
        let args: Vec<&str> = args.split(',').map(str::trim).collect();
        let var = args[0];
        if name_len(var) != var.len() || var.is_empty() {
            return Err(format!("~SEQ: '{var}' is not a parameter name: {usage}"));
        }
        let mut nums = Vec::new();
        for a in &args[1..] {
            match self.substitute(a, pwd)?.parse::<i64>() {
                Ok(v) => nums.push(v),
                Err(_) => return Err(format!("~SEQ: '{a}' is not a whole number: {usage}")),
            }
        }
        let (start, step, end) = match nums[..] {
            [end] => (end.signum(), end.signum(), end),
            [start, end] => (start, if end >= start { 1 } else { -1 }, end),
            [start, step, end] => (start, step, end),
            _ => return Err(format!("~SEQ takes two to four arguments: {usage}")),
        };
        if step == 0 {
            return Err("~SEQ: a step of 0 never ends".into());
        }
        let mut v = start;
        let mut count = 0;
        while (step > 0 && v <= end) || (step < 0 && v >= end) {
            count += 1;
            if count > MAX_SEQ {
                return Err(format!("~SEQ: more than {MAX_SEQ} values"));
            }
            let value = if hex { format!("{v:x}") } else { v.to_string() };
            self.defs.insert(var.to_string(), value);
            self.read_at(n, rest, pwd, out, depth + 1)?;
            v += step;
        }
        Ok(())
    }

    /// `text` with its `@ID` (or `@^ID`) blanked out (so columns stay the file's) if the
    /// line is for this balancer, `None` if it is not; `text` itself if it is not
    /// conditional.
    fn conditional(&mut self, n: usize, text: &str) -> Option<String> {
        let indent = text.len() - text.trim_start().len();
        let Some(rest) = text[indent..].strip_prefix('@') else {
            return Some(text.to_string());
        };
        self.conditional_at.get_or_insert(n);
        let (negated, rest) = match rest.strip_prefix('^') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (id, line) = rest.split_at(end);
        let prefix = text.len() - line.len();
        ((id == self.config_id) != negated).then(|| {
            let blank: String = text[..prefix]
                .chars()
                .map(|c| if c == '\t' { c } else { ' ' })
                .collect();
            format!("{blank}{line}")
        })
    }

    /// `text` with defined parameters replaced until none is left, or until a multiline
    /// value is put in (whose lines are read one by one).
    fn substitute(&self, text: &str, pwd: &str) -> Result<String, String> {
        let mut line = text.to_string();
        for _ in 0..MAX_ROUNDS {
            let (next, changed) = self.once(&line, pwd);
            line = next;
            if !changed || line.contains('\n') {
                return Ok(line);
            }
        }
        Err(format!(
            "parameters expand into themselves ({}): a definition refers to the parameter \
             it is in",
            text.trim()
        ))
    }

    /// One pass of replacements over `s`; whether anything was replaced.
    fn once(&self, s: &str, pwd: &str) -> (String, bool) {
        let mut out = String::with_capacity(s.len());
        let mut changed = false;
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let (name, len) = if let Some(braced) = after.strip_prefix('{') {
                match braced.find('}') {
                    Some(end) => (&braced[..end], end + 2),
                    None => ("", 0),
                }
            } else {
                let end = name_len(after);
                let followed = after[end..].chars().next();
                if followed.is_none_or(char::is_whitespace) {
                    (&after[..end], end)
                } else {
                    ("", 0)
                }
            };
            let value = match name {
                "" => None,
                "_PWD" => Some(pwd),
                "_INSTANCE" => Some(self.config_id.as_str()),
                // keepalived takes comments out before it substitutes, so these are text:
                // quoted here, where the lexer would take them for a comment.
                "_HASH" if in_quotes(&out) => Some("#"),
                "_HASH" => Some("\"#\""),
                "_BANG" if in_quotes(&out) => Some("!"),
                "_BANG" => Some("\"!\""),
                n => self.defs.get(n).map(String::as_str),
            };
            match value {
                Some(v) => {
                    out.push_str(v);
                    changed = true;
                    rest = &after[len..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        (out, changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(src: &str) -> Vec<(usize, String)> {
        let mut p = Params::default();
        let mut out = Vec::new();
        let lines: Vec<&str> = src.split('\n').collect();
        let mut i = 0;
        while i < lines.len() {
            let mut text = lines[i].to_string();
            let n = i + 1;
            if definition(&text).is_some() {
                while text.trim_end().ends_with('\\') && i + 1 < lines.len() {
                    i += 1;
                    text = format!("{text}\n{}", lines[i]);
                }
            }
            p.read(n, &text, "/etc/keepalived", &mut out).unwrap();
            i += 1;
        }
        out
    }

    fn texts(src: &str) -> Vec<String> {
        read_all(src)
            .into_iter()
            .map(|(_, t)| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect()
    }

    #[test]
    fn definitions_and_their_use() {
        assert_eq!(
            definition("  $VIP=198.18.100.1"),
            Some(("VIP", "198.18.100.1"))
        );
        assert_eq!(definition("$X="), Some(("X", "")));
        assert_eq!(definition("$X =1"), None);
        assert_eq!(definition("$1X=1"), None);
        assert_eq!(definition("x $X=1"), None);
        assert_eq!(
            texts("$VIP=198.18.100.1 # the web VIP\nvirtual_server $VIP 80 {\n"),
            ["virtual_server 198.18.100.1 80 {"]
        );
        // Braces where no whitespace follows; undefined ones stay; ${_PWD}.
        assert_eq!(
            texts("$NET=198.18.1\nreal_server ${NET}.11 80\nx $NETX ${UNDEF} $UNDEF\n\"${_PWD}/c.sh\"\n"),
            [
                "real_server 198.18.1.11 80",
                "x $NETX ${UNDEF} $UNDEF",
                "\"/etc/keepalived/c.sh\""
            ]
        );
    }

    #[test]
    fn replaced_when_read_with_the_value_then() {
        // keepalived.conf(5)'s example.
        assert_eq!(
            texts(
                "$ADDRESS_BASE=10.2.${ADDRESS_BASE_SUB}\n$ADDRESS_BASE_SUB=0\n\
                 ${ADDRESS_BASE}.100/32\n$ADDRESS_BASE_SUB=10\n${ADDRESS_BASE}.100/32\n"
            ),
            ["10.2.0.100/32", "10.2.10.100/32"]
        );
    }

    #[test]
    fn multiline_definitions() {
        let src = "$RS= \\\nreal_server 198.18.1.${N} 80 { \\\n  weight 1 \\\n}\n\
                   $VS= \\\nvirtual_server 198.18.100.1 80 { \\\n  $N=11 \\\n  $RS \\\n  \
                   $N=12 \\\n  $RS \\\n}\n$VS\n";
        let out = read_all(src);
        let lines: Vec<&str> = out
            .iter()
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty())
            .collect();
        assert_eq!(
            lines,
            [
                "virtual_server 198.18.100.1 80 {",
                "real_server 198.18.1.11 80 {",
                "weight 1",
                "}",
                "real_server 198.18.1.12 80 {",
                "weight 1",
                "}",
                "}"
            ]
        );
        // Every line of the expansion is at the line that used it.
        assert!(out
            .iter()
            .filter(|(_, t)| t.contains("real_server"))
            .all(|(n, _)| *n == 12));
    }

    #[test]
    fn conditional_lines() {
        let mut p = Params::new("main");
        let mut out = Vec::new();
        for (n, line) in [
            "@main $W=3",
            "@backup $W=1",
            "  @main weight $W",
            "@backup weight 9",
            "@^backup lb_algo rr",
            "@^main lb_algo wlc",
            "$IF_MAIN=@main",
            "$IF_MAIN protocol TCP",
            "no condition",
        ]
        .iter()
        .enumerate()
        {
            p.read(n + 1, line, "", &mut out).unwrap();
        }
        let kept: Vec<&str> = out
            .iter()
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty())
            .collect();
        assert_eq!(
            kept,
            ["weight 3", "lb_algo rr", "protocol TCP", "no condition"]
        );
        assert_eq!(p.conditional_at, Some(1));
    }

    #[test]
    fn sequences() {
        assert_eq!(
            texts("~SEQ(N, 11, 13) real_server 198.18.1.$N 80\n"),
            [
                "real_server 198.18.1.11 80",
                "real_server 198.18.1.12 80",
                "real_server 198.18.1.13 80"
            ]
        );
        assert_eq!(texts("~SEQ(N, 3) x$N\n"), ["x1", "x2", "x3"]);
        assert_eq!(texts("~SEQ(N, 5, -2, 1) $N\n"), ["5", "3", "1"]);
        assert_eq!(texts("~SEQx(N, 9, 11) ::$N\n"), ["::9", "::a", "::b"]);
        // With a multiline parameter.
        assert_eq!(
            texts("$RS= \\\nreal_server 198.18.1.${H} 80 { \\\n}\n~SEQ(H, 1, 2) $RS\n"),
            [
                "real_server 198.18.1.1 80 {",
                "}",
                "real_server 198.18.1.2 80 {",
                "}"
            ]
        );
        let mut p = Params::default();
        let mut out = Vec::new();
        assert!(p.read(1, "~SEQ(N, 1, 0, 3) x", "", &mut out).is_err());
        assert!(p.read(1, "~SEQ N x", "", &mut out).is_err());
        assert!(p.read(1, "~SEQ(N, 1, 5000) x", "", &mut out).is_err());
    }

    #[test]
    fn a_parameter_in_itself_is_an_error() {
        let mut p = Params::default();
        let mut out = Vec::new();
        p.read(1, "$A=x${A}", "", &mut out).unwrap();
        let e = p.read(2, "y ${A}", "", &mut out).unwrap_err();
        assert!(e.contains("expand into themselves"), "{e}");
    }
}
