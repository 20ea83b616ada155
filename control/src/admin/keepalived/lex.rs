//! keepalived.conf's grammar, as keepalived.conf(5) describes it: lines of whitespace-separated
//! words, blocks between `{` and `}`, comments from `#` or `!` to the end of the line, and
//! quoted strings (`"…"` or `'…'`, with shell-like backslash escapes) that join whatever is
//! written next to them into one word.
//!
//! A statement is the words of one line; a `{` at the end of it (or alone on the next line)
//! opens its block. `include` and the preprocessor's features (`@conditional` lines, `$NAME=`
//! parameter definitions, `${_PWD}`-style predefined parameters) are refused here: the
//! importer reads one self-contained file, so that what it translates is what the file says.

use std::fmt;

/// A 1-based line and column (columns count characters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
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

/// Parses a whole file into its top-level statements.
pub fn parse(src: &str) -> Result<Vec<Stmt>, SyntaxError> {
    let toks = tokenize(src)?;
    let mut i = 0;
    block(&toks, &mut i, None)
}

fn tokenize(src: &str) -> Result<Vec<Tok>, SyntaxError> {
    let mut toks = Vec::new();
    let mut chars = src.chars().peekable();
    let (mut line, mut column) = (1usize, 1usize);
    // The word being built, and where it started.
    let mut word: Option<Word> = None;
    fn finish(word: &mut Option<Word>, toks: &mut Vec<Tok>) {
        if let Some(w) = word.take() {
            toks.push(Tok::Word(w));
        }
    }
    while let Some(c) = chars.next() {
        let here = Pos { line, column };
        column += 1;
        match c {
            '\n' => {
                finish(&mut word, &mut toks);
                toks.push(Tok::Newline);
                line += 1;
                column = 1;
                continue;
            }
            ' ' | '\t' | '\r' => finish(&mut word, &mut toks),
            '#' | '!' => {
                finish(&mut word, &mut toks);
                while chars.peek().is_some_and(|&n| n != '\n') {
                    chars.next();
                }
            }
            '{' => {
                finish(&mut word, &mut toks);
                toks.push(Tok::Open(here));
            }
            '}' => {
                finish(&mut word, &mut toks);
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
                if word.is_none() && toks_on_line_is_empty(&toks) {
                    if c == '@' {
                        return err(
                            here,
                            "conditional configuration (@config-id lines) is not supported: \
                             keep only the lines for this balancer and remove the @ prefixes",
                        );
                    }
                    if c == '$' {
                        return err(
                            here,
                            "parameter definitions ($NAME=...) are not supported: write the \
                             values out (keepalived -d or --config-test shows them expanded)",
                        );
                    }
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
    finish(&mut word, &mut toks);
    for t in &toks {
        if let Tok::Word(w) = t {
            if w.text.contains("${_") {
                return err(
                    w.pos,
                    format!(
                        "'{}' uses a predefined parameter (${{_...}}), which the importer does \
                         not expand: write the value out",
                        w.text
                    ),
                );
            }
        }
    }
    Ok(toks)
}

/// True if nothing but a newline precedes on this line (so `@`/`$` start the line).
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
        if INCLUDES.contains(&words[0].text.as_str()) {
            return err(
                words[0].pos,
                format!(
                    "'{}' is not supported: the importer reads one file; paste the included \
                     file's virtual_server blocks into this one (or import each file on its own)",
                    words[0].text
                ),
            );
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
        assert_eq!(top[0].pos(), Pos { line: 2, column: 1 });
        let inner = top[0].block.as_ref().unwrap();
        assert_eq!(texts(&inner[0]), ["lb_algo", "rr"]);
        assert_eq!(
            inner[1].args()[0].pos,
            Pos {
                line: 4,
                column: 15
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
        assert_eq!(e.pos, Pos { line: 1, column: 3 });
        assert!(e.message.contains("never closed"));
        let e = parse("a\n}\n").unwrap_err();
        assert_eq!(e.pos, Pos { line: 2, column: 1 });
        let e = parse("x \"open\n").unwrap_err();
        assert_eq!(e.pos, Pos { line: 1, column: 3 });
        let e = parse("{\n").unwrap_err();
        assert!(e.message.contains("without a keyword"));
    }

    #[test]
    fn include_and_preprocessor_are_refused() {
        let e = parse("global_defs {\n}\n  include /etc/keepalived/lvs.conf\n").unwrap_err();
        assert_eq!(e.pos, Pos { line: 3, column: 3 });
        assert!(e.message.contains("'include' is not supported"));
        assert!(parse("@main router_id a\n")
            .unwrap_err()
            .message
            .contains("conditional"));
        assert!(parse("$X=1\n")
            .unwrap_err()
            .message
            .contains("parameter definitions"));
        assert!(parse("misc_path ${_PWD}/x\n")
            .unwrap_err()
            .message
            .contains("predefined"));
    }
}
