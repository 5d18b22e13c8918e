//! The lexer of Go's text/template: text outside `{{ }}`, tokens inside, the `{{- `/` -}}`
//! trim markers and `{{/* */}}` comments, with Go's error texts.

/// A token; `pos` is the byte offset in the template text.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub kind: Kind,
    pub pos: usize,
    /// The source text of the token (a string keeps its quotes).
    pub val: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    LeftDelim,
    RightDelim,
    Space,
    Assign,
    Declare,
    Pipe,
    LeftParen,
    RightParen,
    /// Any other printable ASCII character (`,` among them); the parser decides.
    Char,
    String,
    RawString,
    CharConstant,
    Number,
    Bool,
    Nil,
    Dot,
    Field,
    Variable,
    Identifier,
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Range,
    Template,
    With,
    Eof,
    Error,
}

impl Token {
    /// Go's `item.String()`, used in "unexpected ..." messages.
    pub fn describe(&self) -> String {
        match self.kind {
            Kind::Eof => "EOF".into(),
            Kind::Error => self.val.clone(),
            k if k.is_keyword() => format!("<{}>", self.val),
            _ if self.val.chars().count() > 10 => {
                let short: String = self.val.chars().take(10).collect();
                format!("{}...", super::gofmt::quote(&short))
            }
            _ => super::gofmt::quote(&self.val),
        }
    }
}

impl Kind {
    fn is_keyword(self) -> bool {
        matches!(
            self,
            Kind::Block
                | Kind::Break
                | Kind::Continue
                | Kind::Define
                | Kind::Else
                | Kind::End
                | Kind::If
                | Kind::Range
                | Kind::Template
                | Kind::With
        )
    }
}

const SPACE: &[u8] = b" \t\r\n";

/// Splits `text` into tokens; a lexing error is the last token (kind `Error`).
pub(crate) fn lex(text: &str) -> Vec<Token> {
    let mut l = Lexer {
        src: text,
        pos: 0,
        out: Vec::new(),
        paren_depth: 0,
    };
    l.run();
    l.out
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    out: Vec<Token>,
    paren_depth: usize,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn emit(&mut self, kind: Kind, start: usize) {
        self.out.push(Token {
            kind,
            pos: start,
            val: self.src[start..self.pos].to_string(),
        });
    }

    fn error(&mut self, start: usize, msg: String) {
        self.out.push(Token {
            kind: Kind::Error,
            pos: start,
            val: msg,
        });
    }

    fn run(&mut self) {
        loop {
            // Text up to the next action.
            let start = self.pos;
            let Some(open) = self.rest().find("{{") else {
                self.pos = self.src.len();
                if self.pos > start {
                    self.emit(Kind::Text, start);
                }
                self.out.push(Token {
                    kind: Kind::Eof,
                    pos: self.pos,
                    val: String::new(),
                });
                return;
            };
            let delim = self.pos + open;
            let after = &self.src[delim + 2..];
            let trim = after.starts_with('-') && after.as_bytes().get(1).is_some_and(|c| SPACE.contains(c));
            let text_end = if trim {
                self.src[..delim].trim_end_matches([' ', '\t', '\r', '\n']).len().max(start)
            } else {
                delim
            };
            if text_end > start {
                self.out.push(Token {
                    kind: Kind::Text,
                    pos: start,
                    val: self.src[start..text_end].to_string(),
                });
            }
            self.pos = delim + 2 + if trim { 2 } else { 0 };
            if self.rest().starts_with("/*") {
                if !self.comment(delim) {
                    return;
                }
                continue;
            }
            self.out.push(Token {
                kind: Kind::LeftDelim,
                pos: delim,
                val: "{{".into(),
            });
            self.paren_depth = 0;
            if !self.inside_action() {
                return;
            }
        }
    }

    /// `{{/* ... */}}`: emits nothing; false after an error.
    fn comment(&mut self, delim: usize) -> bool {
        let Some(end) = self.rest().find("*/") else {
            self.error(delim, "unclosed comment".into());
            return false;
        };
        self.pos += end + 2;
        match self.at_right_delim() {
            Some((len, trim)) => {
                self.pos += len;
                if trim {
                    self.skip_leading_space();
                }
                true
            }
            None => {
                self.error(delim, "comment ends before closing delimiter".into());
                false
            }
        }
    }

    /// Whether a right delimiter (`}}` or ` -}}`) starts here: its length and trim flag.
    fn at_right_delim(&self) -> Option<(usize, bool)> {
        let b = self.rest().as_bytes();
        if b.first().is_some_and(|c| SPACE.contains(c)) && b.get(1) == Some(&b'-') && self.rest()[2..].starts_with("}}") {
            return Some((4, true));
        }
        self.rest().starts_with("}}").then_some((2, false))
    }

    fn skip_leading_space(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches([' ', '\t', '\r', '\n']).len();
    }

    /// Tokens up to and including the right delimiter; false after an error or at EOF.
    fn inside_action(&mut self) -> bool {
        loop {
            if let Some((len, trim)) = self.at_right_delim() {
                if self.paren_depth > 0 {
                    self.error(self.pos, "unclosed left paren".into());
                    return false;
                }
                let start = self.pos + len - 2;
                self.pos += len;
                self.out.push(Token {
                    kind: Kind::RightDelim,
                    pos: start,
                    val: "}}".into(),
                });
                if trim {
                    self.skip_leading_space();
                }
                return true;
            }
            let start = self.pos;
            let Some(c) = self.rest().chars().next() else {
                self.error(start, "unclosed action".into());
                return false;
            };
            match c {
                ' ' | '\t' | '\r' | '\n' => {
                    // A space run; the one before a ` -}}` belongs to the marker.
                    while let Some(c) = self.rest().chars().next() {
                        if !matches!(c, ' ' | '\t' | '\r' | '\n') || self.at_right_delim().is_some_and(|(l, _)| l == 4) {
                            break;
                        }
                        self.pos += 1;
                    }
                    if self.pos > start {
                        self.emit(Kind::Space, start);
                    }
                }
                '=' => {
                    self.pos += 1;
                    self.emit(Kind::Assign, start);
                }
                ':' => {
                    if !self.rest().starts_with(":=") {
                        self.error(start, "expected :=".into());
                        return false;
                    }
                    self.pos += 2;
                    self.emit(Kind::Declare, start);
                }
                '|' => {
                    self.pos += 1;
                    self.emit(Kind::Pipe, start);
                }
                '"' => {
                    if !self.quoted(start, '"', "unterminated quoted string") {
                        return false;
                    }
                    self.emit(Kind::String, start);
                }
                '\'' => {
                    if !self.quoted(start, '\'', "unterminated character constant") {
                        return false;
                    }
                    self.emit(Kind::CharConstant, start);
                }
                '`' => {
                    let Some(end) = self.src[start + 1..].find('`') else {
                        self.error(start, "unterminated raw quoted string".into());
                        return false;
                    };
                    self.pos = start + 1 + end + 1;
                    self.emit(Kind::RawString, start);
                }
                '$' => {
                    self.pos += 1;
                    self.alnum_run();
                    self.emit(Kind::Variable, start);
                }
                '.' => {
                    let next = self.src[start + 1..].chars().next();
                    if next.is_some_and(|c| c.is_ascii_digit()) {
                        if !self.number(start) {
                            return false;
                        }
                    } else {
                        self.pos += 1;
                        if next.is_some_and(is_alnum) {
                            self.alnum_run();
                            if !self.check_terminator(start) {
                                return false;
                            }
                            self.emit(Kind::Field, start);
                        } else {
                            self.emit(Kind::Dot, start);
                        }
                    }
                }
                '+' | '-' | '0'..='9' => {
                    if !self.number(start) {
                        return false;
                    }
                }
                '(' => {
                    self.pos += 1;
                    self.paren_depth += 1;
                    self.emit(Kind::LeftParen, start);
                }
                ')' => {
                    self.pos += 1;
                    if self.paren_depth == 0 {
                        self.error(start, "unexpected right paren".into());
                        return false;
                    }
                    self.paren_depth -= 1;
                    self.emit(Kind::RightParen, start);
                }
                c if is_alnum(c) => {
                    self.alnum_run();
                    if !self.check_terminator(start) {
                        return false;
                    }
                    let kind = match &self.src[start..self.pos] {
                        "true" | "false" => Kind::Bool,
                        "nil" => Kind::Nil,
                        "block" => Kind::Block,
                        "break" => Kind::Break,
                        "continue" => Kind::Continue,
                        "define" => Kind::Define,
                        "else" => Kind::Else,
                        "end" => Kind::End,
                        "if" => Kind::If,
                        "range" => Kind::Range,
                        "template" => Kind::Template,
                        "with" => Kind::With,
                        _ => Kind::Identifier,
                    };
                    self.emit(kind, start);
                }
                c if c.is_ascii() && !c.is_ascii_control() => {
                    self.pos += 1;
                    self.emit(Kind::Char, start);
                }
                c => {
                    self.error(start, format!("unrecognized character in action: {}", go_unicode(c)));
                    return false;
                }
            }
        }
    }

    fn alnum_run(&mut self) {
        while let Some(c) = self.rest().chars().next() {
            if !is_alnum(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    /// After an identifier or field, only a terminator may follow (Go's `atTerminator`).
    fn check_terminator(&mut self, start: usize) -> bool {
        let Some(c) = self.rest().chars().next() else { return true };
        if matches!(c, ' ' | '\t' | '\r' | '\n' | '.' | ',' | '|' | ':' | ')' | '(') || self.rest().starts_with("}}") {
            return true;
        }
        self.error(start, format!("bad character {}", go_unicode(c)));
        false
    }

    fn quoted(&mut self, start: usize, q: char, unterminated: &str) -> bool {
        let mut chars = self.src[start + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                // An escaped newline still ends the string, as in Go.
                '\\' if chars.next().is_none_or(|(_, c)| c == '\n') => break,
                '\\' => {}
                '\n' => break,
                c if c == q => {
                    self.pos = start + 1 + i + 1;
                    return true;
                }
                _ => {}
            }
        }
        self.error(start, unterminated.into());
        false
    }

    /// Go's `scanNumber`: sign, digits (with base prefixes and `_`), fraction, exponent.
    fn number(&mut self, start: usize) -> bool {
        let b = self.src.as_bytes();
        let mut i = start;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let mut digits: &[u8] = b"0123456789_";
        if b.get(i) == Some(&b'0') && matches!(b.get(i + 1), Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B')) {
            digits = match b[i + 1] {
                b'x' | b'X' => b"0123456789abcdefABCDEF_",
                b'o' | b'O' => b"01234567_",
                _ => b"01_",
            };
            i += 2;
        }
        let run = |mut i: usize, set: &[u8]| {
            while b.get(i).is_some_and(|c| set.contains(c)) {
                i += 1;
            }
            i
        };
        i = run(i, digits);
        if b.get(i) == Some(&b'.') {
            i = run(i + 1, digits);
        }
        let hex = digits.len() > 20;
        if (!hex && matches!(b.get(i), Some(b'e' | b'E'))) || (hex && matches!(b.get(i), Some(b'p' | b'P'))) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            i = run(i, b"0123456789_");
        }
        if b.get(i) == Some(&b'i') {
            i += 1;
        }
        self.pos = i;
        if self.rest().chars().next().is_some_and(is_alnum) {
            self.alnum_run();
            let bad = self.src[start..self.pos].to_string();
            self.error(start, format!("bad number syntax: {}", super::gofmt::quote(&bad)));
            return false;
        }
        self.emit(Kind::Number, start);
        true
    }
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Go's `%#U`: `U+002A '*'`, without the character when it is not printable.
pub(crate) fn go_unicode(c: char) -> String {
    let code = format!("U+{:04X}", c as u32);
    if c.is_control() || (c.is_whitespace() && c != ' ') {
        code
    } else {
        format!("{code} '{c}'")
    }
}
