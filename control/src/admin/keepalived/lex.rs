//! keepalived.conf's grammar, as keepalived.conf(5) describes it: lines of whitespace-separated
//! words, blocks between `{` and `}`, comments from `#` or `!` to the end of the line, and
//! quoted strings (`"…"` or `'…'`, with shell-like backslash escapes) that join whatever is
//! written next to them into one word.
//!
//! A statement is the words of one line; a `{` at the end of it (or alone on the next line)
//! opens its block. A line `include PATTERN` (or a variant: `includer`, `includea`, …) is
//! replaced by the files the pattern names, as keepalived does: a glob (`*`, `?`, `[…]`,
//! and csh braces `{a,b}`), relative to the directory of the file it is written in, its
//! matches read in sorted order, anywhere a line may be (inside blocks too). A pattern that
//! matches nothing or a file that cannot be read is an error, as keepalived --config-test
//! reports it ('Config files missing'), and so is a file that includes itself (keepalived
//! reads it until it runs out of file descriptors). Parameters (`$NAME=VALUE`, `$NAME`, `${NAME}`) are
//! substituted and conditional lines (`@ID`, `@^ID`) chosen line by line before words are
//! read (see `params.rs`); the predefined parameters `${_RANDOM}` and `${_ENV}` are refused.

use super::params::{self, Params};
use std::fmt;
use std::path::{Path, PathBuf};

/// A 1-based line and column (columns count characters), in a file: 0 is the file given on
/// the command line, others are included (see `Files`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
    pub file: usize,
}

/// The files read, by the index in [`Pos::file`]: their names as messages give them (the
/// command line's, and an included one's joined to its includer's directory).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Files {
    pub names: Vec<String>,
    /// What relative names are opened against (uvsadm's working directory, or a test's).
    pub root: PathBuf,
}

impl Files {
    pub fn name(&self, pos: Pos) -> &str {
        self.names.get(pos.file).map_or("", String::as_str)
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One word, quotes removed and escapes applied, with where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub pos: Pos,
}

/// A keyword with its arguments and, if it opens one, its block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stmt {
    pub words: Vec<Word>,
    pub block: Option<Vec<Stmt>>,
}

impl Stmt {
    pub fn keyword(&self) -> &str {
        &self.words[0].text
    }

    pub fn pos(&self) -> Pos {
        self.words[0].pos
    }

    /// The words after the keyword.
    pub fn args(&self) -> &[Word] {
        &self.words[1..]
    }
}

/// A syntax error and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

fn err<T>(pos: Pos, message: impl Into<String>) -> Result<T, SyntaxError> {
    Err(SyntaxError {
        pos,
        message: message.into(),
    })
}

#[derive(Debug)]
enum Tok {
    Word(Word),
    Open(Pos),
    Close(Pos),
    Newline,
}

/// keepalived's include keywords (keepalived.conf(5), "include" and its variants).
const INCLUDES: &[&str] = &[
    "include", "includer", "includem", "includew", "includeb", "includea",
];

/// Parses a whole file into its top-level statements (what it includes is looked for
/// under /nonexistent).
#[cfg(test)]
pub fn parse(src: &str) -> Result<Vec<Stmt>, SyntaxError> {
    let mut files = Files {
        names: vec!["k.conf".into()],
        root: PathBuf::from("/nonexistent"),
    };
    parse_files(src, &mut files, "main").map(|(top, _)| top)
}

/// Parses the file `files.names[0]` (whose text is `src`) with the files it includes into
/// its top-level statements; `files` gets the names of the included ones.
/// `config_id` chooses the `@ID` lines kept; the result also tells where the first of them
/// is, if any.
pub fn parse_files(
    src: &str,
    files: &mut Files,
    config_id: &str,
) -> Result<(Vec<Stmt>, Option<Pos>), SyntaxError> {
    let main = real_path(files, Path::new(&files.names[0]));
    let mut reading = Reading {
        open: vec![main],
        params: Params::new(config_id),
        conditional_at: None,
    };
    let toks = expand(src, 0, files, &mut reading)?;
    let mut i = 0;
    Ok((block(&toks, &mut i, None)?, reading.conditional_at))
}

/// The most files open at once (keepalived's includes nest; a loop must end).
const MAX_DEPTH: usize = 32;

/// The file `name` is, links and `..` resolved (as written if it cannot be found).
fn real_path(files: &Files, name: &Path) -> PathBuf {
    let path = files.root.join(name);
    std::fs::canonicalize(&path).unwrap_or(path)
}

/// What reading the files keeps: the chain of files being read (to refuse a loop) and the
/// parameters defined so far.
struct Reading {
    open: Vec<PathBuf>,
    params: Params,
    /// The first conditional (`@ID`) line.
    conditional_at: Option<Pos>,
}

/// The tokens of `src` (file `file`): include lines replaced by the tokens of the files they
/// name, parameter definitions taken and parameters substituted.
fn expand(
    src: &str,
    file: usize,
    files: &mut Files,
    r: &mut Reading,
) -> Result<Vec<Tok>, SyntaxError> {
    let pwd = r
        .open
        .last()
        .and_then(|p| p.parent())
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let raw: Vec<&str> = src.split('\n').collect();
    let mut lines: Vec<(usize, String)> = Vec::new();
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let n = i + 1;
        let mut text = raw[i].to_string();
        i += 1;
        // keepalived finds include lines before it substitutes parameters or reads words
        // (so `{a,b}` in a pattern is not a block).
        if let Some((keyword, pattern)) = include_line(&text, n, file) {
            out.extend(tokenize(&std::mem::take(&mut lines), file)?);
            include(&keyword, &pattern, file, files, r, &mut out)?;
            continue;
        }
        if params::starts_definition(&text) {
            while text.trim_end().ends_with('\\') && i < raw.len() {
                text.push('\n');
                text.push_str(raw[i]);
                i += 1;
            }
        }
        let at = Pos {
            line: n,
            column: 1,
            file,
        };
        r.params
            .read(n, &text, &pwd, &mut lines)
            .map_err(|message| SyntaxError { pos: at, message })?;
        if r.conditional_at.is_none() && r.params.conditional_at.is_some() {
            r.conditional_at = Some(at);
        }
    }
    out.extend(tokenize(&lines, file)?);
    Ok(out)
}

/// The tokens of the files an include line names, onto `out`.
fn include(
    keyword: &Word,
    pattern: &Word,
    file: usize,
    files: &mut Files,
    r: &mut Reading,
    out: &mut Vec<Tok>,
) -> Result<(), SyntaxError> {
    if pattern.text.is_empty() {
        return err(
            keyword.pos,
            format!("{0} needs a file name: {0} FILE", keyword.text),
        );
    }
    for name in matches(files, file, pattern)? {
        let shown = name.display().to_string();
        let real = real_path(files, &name);
        if r.open.contains(&real) {
            return err(
                pattern.pos,
                format!("{shown} is being read already: an include loop"),
            );
        }
        if r.open.len() >= MAX_DEPTH {
            return err(
                pattern.pos,
                format!("includes nest deeper than {MAX_DEPTH} files"),
            );
        }
        let text = std::fs::read_to_string(files.root.join(&name)).map_err(|e| SyntaxError {
            pos: pattern.pos,
            message: format!("cannot read {shown}: {e}"),
        })?;
        let index = files.names.len();
        files.names.push(shown);
        r.open.push(real);
        out.extend(expand(&text, index, files, r)?);
        r.open.pop();
        out.push(Tok::Newline);
    }
    Ok(())
}

/// The files `pattern` (written in file `file`) names, sorted, directories left out, as
/// names relative to `files.root` where the pattern is relative.
fn matches(files: &Files, file: usize, pattern: &Word) -> Result<Vec<PathBuf>, SyntaxError> {
    let base = Path::new(&files.names[file])
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let alternatives = braces(&pattern.text);
    let mut found = Vec::new();
    for alt in &alternatives {
        let name = base.join(alt);
        if !alt.contains(['*', '?', '[']) {
            // A plain file name is read (and its error given) by the caller; one of several
            // brace alternatives counts only if it is there, as glob(3) finds it.
            if alternatives.len() == 1 || files.root.join(&name).is_file() {
                found.push(name);
            }
            continue;
        }
        let full = files.root.join(&name);
        // glob(3)'s rules: `*` matches neither a `/` nor a leading `.` (editors' backups).
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        let paths = glob::glob_with(&full.to_string_lossy(), options).map_err(|e| SyntaxError {
            pos: pattern.pos,
            message: format!("'{}' is not a valid pattern: {e}", pattern.text),
        })?;
        let mut these = Vec::new();
        for p in paths.flatten() {
            if p.is_dir() {
                continue;
            }
            // Back to the name relative to the root, as the pattern was written.
            let p = match p.strip_prefix(&files.root) {
                Ok(rel) if !name.is_absolute() => rel.to_path_buf(),
                _ => p,
            };
            these.push(p);
        }
        these.sort();
        found.extend(these);
    }
    if found.is_empty() {
        return err(
            pattern.pos,
            format!(
                "no file matches {} (keepalived --config-test reports it too: 'Config files \
                 missing'); remove the line if nothing is meant to be included",
                base.join(&pattern.text).display()
            ),
        );
    }
    Ok(found)
}

/// csh-style brace alternatives, as glob(3) with GLOB_BRACE expands them: `a{b,c{d,e}}f` is
/// `abf acdf acef`; an unmatched brace is kept as written.
fn braces(pattern: &str) -> Vec<String> {
    let Some(open) = pattern.find('{') else {
        return vec![pattern.to_string()];
    };
    let mut depth = 0;
    let mut parts = Vec::new();
    let mut start = open + 1;
    for (j, c) in pattern[open..].char_indices() {
        let j = open + j;
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    parts.push(&pattern[start..j]);
                    let (head, tail) = (&pattern[..open], &pattern[j + 1..]);
                    return parts
                        .iter()
                        .flat_map(|p| braces(&format!("{head}{p}{tail}")))
                        .collect();
                }
            }
            ',' if depth == 1 => {
                parts.push(&pattern[start..j]);
                start = j + 1;
            }
            _ => {}
        }
    }
    vec![pattern.to_string()]
}

/// The tokens of `lines`, each `(number, text)` of file `file`, a newline after each.
fn tokenize(lines: &[(usize, String)], file: usize) -> Result<Vec<Tok>, SyntaxError> {
    let mut toks = Vec::new();
    for (n, text) in lines {
        tokenize_line(&format!("{text}\n"), *n, file, &mut toks)?;
    }
    Ok(toks)
}

/// The tokens of `src`, whose first line is number `line`, onto `toks`.
fn tokenize_line(
    src: &str,
    mut line: usize,
    file: usize,
    toks: &mut Vec<Tok>,
) -> Result<(), SyntaxError> {
    let first = toks.len();
    let mut chars = src.chars().peekable();
    let mut column = 1usize;
    // The word being built, and where it started.
    let mut word: Option<Word> = None;
    fn finish(word: &mut Option<Word>, toks: &mut Vec<Tok>) {
        if let Some(w) = word.take() {
            toks.push(Tok::Word(w));
        }
    }
    while let Some(c) = chars.next() {
        let here = Pos { line, column, file };
        column += 1;
        match c {
            '\n' => {
                finish(&mut word, toks);
                toks.push(Tok::Newline);
                line += 1;
                column = 1;
                continue;
            }
            ' ' | '\t' | '\r' => finish(&mut word, toks),
            '#' | '!' => {
                finish(&mut word, toks);
                while chars.peek().is_some_and(|&n| n != '\n') {
                    chars.next();
                }
            }
            '{' => {
                finish(&mut word, toks);
                toks.push(Tok::Open(here));
            }
            '}' => {
                finish(&mut word, toks);
                toks.push(Tok::Close(here));
            }
            '"' | '\'' => {
                let w = word.get_or_insert_with(|| Word {
                    text: String::new(),
                    pos: here,
                });
                loop {
                    let Some(q) = chars.next() else {
                        return err(here, format!("the quote {c} opened here is never closed"));
                    };
                    column += 1;
                    if q == c {
                        break;
                    }
                    match q {
                        '\n' => {
                            return err(
                                here,
                                format!("the quote {c} opened here is not closed on its line"),
                            )
                        }
                        '\\' => {
                            let Some(e) = chars.next() else {
                                return err(
                                    here,
                                    format!("the quote {c} opened here is never closed"),
                                );
                            };
                            column += 1;
                            escape(e, &mut chars, &mut column, &mut w.text);
                        }
                        _ => w.text.push(q),
                    }
                }
            }
            _ => {
                if c == '$' && word.is_none() && toks_on_line_is_empty(toks) {
                    return err(
                        here,
                        "a line starting with a parameter that is not defined (or a \
                         definition written with a space before its '='): define it before \
                         this line as $NAME=VALUE",
                    );
                }
                let w = word.get_or_insert_with(|| Word {
                    text: String::new(),
                    pos: here,
                });
                w.text.push(c);
                // `${NAME}` is one word, braces included (keepalived substitutes parameters
                // before it looks for blocks).
                if c == '$' && chars.peek() == Some(&'{') {
                    for p in chars.by_ref() {
                        column += 1;
                        if p == '\n' {
                            return err(here, "'${' is not closed on its line");
                        }
                        w.text.push(p);
                        if p == '}' {
                            break;
                        }
                    }
                }
            }
        }
    }
    finish(&mut word, toks);
    for t in &toks[first..] {
        if let Tok::Word(w) = t {
            if w.text.contains("${_") {
                return err(
                    w.pos,
                    format!(
                        "'{}' uses a predefined parameter (${{_...}}) other than ${{_PWD}}, \
                         ${{_INSTANCE}}, ${{_HASH}} and ${{_BANG}}: ${{_RANDOM}} and \
                         ${{_ENV}} change with the run and the host, so the importer does not \
                         expand them; write the value out",
                        w.text
                    ),
                );
            }
        }
    }
    Ok(())
}

/// The line `text` (number `line`) as an include keyword and its pattern if it is an include
/// line: an include keyword first, then the pattern, the rest of the line before any comment.
fn include_line(text: &str, line: usize, file: usize) -> Option<(Word, Word)> {
    let text = text.split(['#', '!']).next().unwrap_or("");
    let indent = text.chars().take_while(|c| c.is_whitespace()).count();
    let rest: String = text.chars().skip(indent).collect();
    let keyword: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
    if !INCLUDES.contains(&keyword.as_str()) {
        return None;
    }
    let after = rest.chars().skip(keyword.chars().count());
    let gap = after.clone().take_while(|c| c.is_whitespace()).count();
    let pattern: String = after.skip(gap).collect();
    let at = |column| Pos { line, column, file };
    Some((
        Word {
            text: keyword.clone(),
            pos: at(indent + 1),
        },
        Word {
            text: pattern.trim_end().to_string(),
            pos: at(indent + keyword.chars().count() + gap + 1),
        },
    ))
}

/// True if nothing but a newline precedes on this line (so a `$` starts the line).
fn toks_on_line_is_empty(toks: &[Tok]) -> bool {
    matches!(toks.last(), None | Some(Tok::Newline))
}

/// One escape inside quotes, as keepalived.conf(5) lists them: `\a \b \E \f \n \r \t \v`,
/// `\nnn` (octal), `\xXX` (hex), `\cC` (control); any other `\C` is `C`.
fn escape(
    e: char,
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    column: &mut usize,
    out: &mut String,
) {
    let mut take_digits = |radix: u32, max: usize| {
        let mut v = 0u32;
        let mut n = 0;
        while n < max {
            match chars.peek().and_then(|d| d.to_digit(radix)) {
                Some(d) => {
                    v = v * radix + d;
                    chars.next();
                    *column += 1;
                    n += 1;
                }
                None => break,
            }
        }
        (v, n)
    };
    match e {
        'a' => out.push('\x07'),
        'b' => out.push('\x08'),
        'E' => out.push('\x1b'),
        'f' => out.push('\x0c'),
        'n' => out.push('\n'),
        'r' => out.push('\r'),
        't' => out.push('\t'),
        'v' => out.push('\x0b'),
        '0'..='7' => {
            let (rest, n) = take_digits(8, 2);
            let v = e.to_digit(8).unwrap_or(0) * 8u32.pow(n as u32) + rest;
            out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
        }
        'x' => {
            let (v, n) = take_digits(16, 2);
            if n == 0 {
                out.push('x');
            } else {
                out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
            }
        }
        'c' => match chars.next() {
            Some(c) => {
                *column += 1;
                out.push(
                    char::from_u32(u32::from(c.to_ascii_uppercase() as u8 ^ 0x40)).unwrap_or(c),
                );
            }
            None => out.push('c'),
        },
        other => out.push(other),
    }
}

/// Statements until the matching `}` (or the end of the file at the top level).
fn block(toks: &[Tok], i: &mut usize, open: Option<Pos>) -> Result<Vec<Stmt>, SyntaxError> {
    let mut stmts: Vec<Stmt> = Vec::new();
    let mut words: Vec<Word> = Vec::new();
    // Whether the last statement ended with its line, so a `{` alone on the next line opens
    // its block.
    let mut last_ended_by_newline = false;
    let push = |words: &mut Vec<Word>, stmts: &mut Vec<Stmt>| -> Result<(), SyntaxError> {
        if words.is_empty() {
            return Ok(());
        }
        stmts.push(Stmt {
            words: std::mem::take(words),
            block: None,
        });
        Ok(())
    };
    while *i < toks.len() {
        let t = &toks[*i];
        *i += 1;
        match t {
            Tok::Word(w) => words.push(w.clone()),
            Tok::Newline => {
                if !words.is_empty() {
                    push(&mut words, &mut stmts)?;
                    last_ended_by_newline = true;
                }
            }
            Tok::Open(pos) => {
                let attach_to_previous = words.is_empty();
                if attach_to_previous {
                    let previous = stmts.last().filter(|s| s.block.is_none());
                    if previous.is_none() || !last_ended_by_newline {
                        return err(*pos, "'{' without a keyword before it");
                    }
                } else {
                    push(&mut words, &mut stmts)?;
                }
                let inner = block(toks, i, Some(*pos))?;
                if let Some(last) = stmts.last_mut() {
                    last.block = Some(inner);
                }
                last_ended_by_newline = false;
            }
            Tok::Close(pos) => {
                push(&mut words, &mut stmts)?;
                if open.is_none() {
                    return err(*pos, "'}' without a matching '{'");
                }
                return Ok(stmts);
            }
        }
        if !matches!(t, Tok::Newline | Tok::Word(_)) {
            last_ended_by_newline = false;
        }
    }
    push(&mut words, &mut stmts)?;
    if let Some(pos) = open {
        return err(pos, "the '{' opened here is never closed");
    }
    Ok(stmts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &Stmt) -> Vec<&str> {
        s.words.iter().map(|w| w.text.as_str()).collect()
    }

    #[test]
    fn blocks_comments_and_positions() {
        let src = "! header\nvirtual_server 198.18.100.1 80 {   # web\n  lb_algo rr\n  real_server 198.18.1.11 80 { weight 2 }\n}\n";
        let top = parse(src).unwrap();
        assert_eq!(top.len(), 1);
        assert_eq!(texts(&top[0]), ["virtual_server", "198.18.100.1", "80"]);
        assert_eq!(
            top[0].pos(),
            Pos {
                line: 2,
                column: 1,
                file: 0
            }
        );
        let inner = top[0].block.as_ref().unwrap();
        assert_eq!(texts(&inner[0]), ["lb_algo", "rr"]);
        assert_eq!(
            inner[1].args()[0].pos,
            Pos {
                line: 4,
                column: 15,
                file: 0
            }
        );
        let rs = inner[1].block.as_ref().unwrap();
        assert_eq!(texts(&rs[0]), ["weight", "2"]);
    }

    #[test]
    fn brace_on_the_next_line_opens_the_block() {
        let top = parse("virtual_server 198.18.100.1 80\n{\n  protocol TCP\n}\n").unwrap();
        assert_eq!(
            texts(&top[0].block.as_ref().unwrap()[0]),
            ["protocol", "TCP"]
        );
    }

    #[test]
    fn quotes_join_and_escape() {
        let top =
            parse("misc_path \"/bin/check a\"'b c' x\\y\nq \"tab\\there \\x41\\101\"\n").unwrap();
        assert_eq!(texts(&top[0]), ["misc_path", "/bin/check ab c", "x\\y"]);
        assert_eq!(texts(&top[1]), ["q", "tab\there AA"]);
    }

    #[test]
    fn comment_inside_quotes_is_text() {
        let top = parse("a \"x # y ! z\"\n").unwrap();
        assert_eq!(texts(&top[0]), ["a", "x # y ! z"]);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("a {\n b\n").unwrap_err();
        assert_eq!(
            e.pos,
            Pos {
                line: 1,
                column: 3,
                file: 0
            }
        );
        assert!(e.message.contains("never closed"));
        let e = parse("a\n}\n").unwrap_err();
        assert_eq!(
            e.pos,
            Pos {
                line: 2,
                column: 1,
                file: 0
            }
        );
        let e = parse("x \"open\n").unwrap_err();
        assert_eq!(
            e.pos,
            Pos {
                line: 1,
                column: 3,
                file: 0
            }
        );
        let e = parse("{\n").unwrap_err();
        assert!(e.message.contains("without a keyword"));
    }

    #[test]
    fn include_lines() {
        let inc = |line: &str| {
            include_line(line, 7, 0).map(|(k, p)| (k.text, k.pos.column, p.text, p.pos.column))
        };
        assert_eq!(
            inc("  includer conf.d/{a,b}.conf  # optional"),
            Some(("includer".into(), 3, "conf.d/{a,b}.conf".into(), 12))
        );
        assert_eq!(inc("include"), Some(("include".into(), 1, "".into(), 8)));
        assert_eq!(inc("included_file x"), None);
        assert_eq!(inc("# include x"), None);
        // Braces in a pattern are not a block.
        let e = parse("a {\ninclude x/{b,c}\n}\n").unwrap_err();
        assert!(e.message.contains("no file matches x/{b,c}"), "{e:?}");
    }

    #[test]
    fn parameters() {
        let top = parse(
            "$VIP=198.18.100.1\n$RS= \\\n  real_server ${NET}.${N} 80 { \\\n    weight 2 \\\n  }\n\
             $NET=198.18.1\nvirtual_server $VIP 80 {\n  $N=11\n  $RS\n  $N=12\n  $RS\n}\n",
        )
        .unwrap();
        assert_eq!(texts(&top[0]), ["virtual_server", "198.18.100.1", "80"]);
        assert_eq!(top[0].pos().line, 7);
        let reals = top[0].block.as_ref().unwrap();
        assert_eq!(texts(&reals[0]), ["real_server", "198.18.1.11", "80"]);
        assert_eq!(texts(&reals[1]), ["real_server", "198.18.1.12", "80"]);
        // An expanded line is at the line that used the parameter.
        assert_eq!(reals[1].pos().line, 11);
        assert_eq!(texts(&reals[1].block.as_ref().unwrap()[0]), ["weight", "2"]);
        // A conditional multiline definition: all its lines for config id main (parse's),
        // none of them for another.
        let top = parse(
            "@main $W= \\\n  weight 3 \\\n  inhibit_on_failure\n@^main $W= \\\n  weight 1\n\
             real_server 198.18.1.11 80 {\n $W\n}\n",
        )
        .unwrap();
        let body = top[0].block.as_ref().unwrap();
        assert_eq!(texts(&body[0]), ["weight", "3"]);
        assert_eq!(texts(&body[1]), ["inhibit_on_failure"]);
        assert_eq!(body.len(), 2);
        let e = parse("\n$A=${A}x\nq $A\n").unwrap_err();
        assert_eq!(e.pos.line, 3);
    }

    #[test]
    fn brace_alternatives() {
        assert_eq!(braces("a{b,c{d,e}}f"), ["abf", "acdf", "acef"]);
        assert_eq!(braces("{,x/}k.conf"), ["k.conf", "x/k.conf"]);
        assert_eq!(braces("a{b"), ["a{b"]);
        assert_eq!(braces("plain"), ["plain"]);
    }

    #[test]
    fn missing_include_and_preprocessor_are_refused() {
        let e = parse("global_defs {\n}\n  include conf.d/*.conf\n").unwrap_err();
        assert_eq!(
            e.pos,
            Pos {
                line: 3,
                column: 11,
                file: 0
            }
        );
        assert!(e.message.contains("no file matches conf.d/*.conf"), "{e:?}");
        let e = parse("include\n").unwrap_err();
        assert!(e.message.contains("needs a file name"), "{e:?}");
        assert!(parse("$X\n").unwrap_err().message.contains("not defined"));
        assert!(parse("$X =1\n")
            .unwrap_err()
            .message
            .contains("not defined"));
        // keepalived's other predefined parameters: the config id, and '#' and '!' as text
        // (keepalived strips comments before it substitutes), quoted or not.
        let top = parse(
            "misc_path \"/bin/check ${_HASH}1 ${_BANG}\" a${_HASH}b $_INSTANCE ${_BANG} # c\n",
        )
        .unwrap();
        let args: Vec<&str> = top[0].args().iter().map(|w| w.text.as_str()).collect();
        assert_eq!(args, ["/bin/check #1 !", "a#b", "main", "!"]);
        assert!(parse("misc_path ${_RANDOM}/x\n")
            .unwrap_err()
            .message
            .contains("predefined"));
        assert!(parse("misc_path ${_ENV(HOME)}\n")
            .unwrap_err()
            .message
            .contains("predefined"));
    }
}
