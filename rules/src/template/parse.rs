//! The parser of Go's text/template: the node tree, variable scoping and function-name
//! checks done at parse time, `define`/`block` collected into named templates, and the
//! node renderings Go uses as the `<context>` of execution errors.

use std::collections::BTreeMap;

use super::lex::{Kind, Token, lex};

/// A parsed template set: the main tree and the `define`d ones, by name.
#[derive(Debug, Default)]
pub(crate) struct Set {
    pub root: Vec<Node>,
    pub defines: BTreeMap<String, Vec<Node>>,
}

#[derive(Debug)]
pub(crate) enum Node {
    Text(String),
    Action(Pipe),
    If(Control),
    With(Control),
    Range(Control),
    Template { pos: usize, name: String, pipe: Option<Pipe> },
    Break(usize),
    Continue(usize),
}

#[derive(Debug)]
pub(crate) struct Control {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug)]
pub(crate) struct Pipe {
    pub pos: usize,
    pub decl: Vec<String>,
    pub is_assign: bool,
    pub cmds: Vec<Command>,
}

#[derive(Debug)]
pub(crate) struct Command {
    pub pos: usize,
    pub args: Vec<Arg>,
}

/// An operand of a command.
#[derive(Debug)]
pub(crate) enum Arg {
    Dot(usize),
    Nil(usize),
    Bool(usize, bool),
    Number(usize, Number),
    /// The unquoted text and the source (quoted) form.
    Str(usize, String, String),
    /// `.A.B`
    Field(usize, Vec<String>),
    /// `$x.A.B`: the variable name (with `$`) and the fields.
    Variable(usize, String, Vec<String>),
    /// A function name.
    Ident(usize, String),
    Pipe(usize, Box<Pipe>),
    /// `(pipe).A.B` or `"x".A`.
    Chain(usize, Box<Arg>, Vec<String>),
}

/// A number literal with the interpretations Go's parser found valid.
#[derive(Debug, Clone)]
pub(crate) struct Number {
    pub text: String,
    pub int: Option<i64>,
    pub float: Option<f64>,
    pub is_char: bool,
}

impl Arg {
    pub fn pos(&self) -> usize {
        match self {
            Arg::Dot(p) | Arg::Nil(p) | Arg::Bool(p, _) | Arg::Number(p, _) | Arg::Str(p, ..) | Arg::Field(p, _) => *p,
            Arg::Variable(p, ..) | Arg::Ident(p, _) | Arg::Pipe(p, _) | Arg::Chain(p, ..) => *p,
        }
    }
}

impl std::fmt::Display for Arg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arg::Dot(_) => f.write_str("."),
            Arg::Nil(_) => f.write_str("nil"),
            Arg::Bool(_, b) => write!(f, "{b}"),
            Arg::Number(_, n) => f.write_str(&n.text),
            Arg::Str(_, _, quoted) => f.write_str(quoted),
            Arg::Field(_, idents) => idents.iter().try_for_each(|i| write!(f, ".{i}")),
            Arg::Variable(_, name, idents) => {
                f.write_str(name)?;
                idents.iter().try_for_each(|i| write!(f, ".{i}"))
            }
            Arg::Ident(_, name) => f.write_str(name),
            Arg::Pipe(_, p) => write!(f, "({p})"),
            Arg::Chain(_, node, idents) => {
                write!(f, "{node}")?;
                idents.iter().try_for_each(|i| write!(f, ".{i}"))
            }
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for Pipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(if self.is_assign { " = " } else { " := " })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |f: &mut std::fmt::Formatter<'_>, l: &[Node]| l.iter().try_for_each(|n| write!(f, "{n}"));
        let control = |f: &mut std::fmt::Formatter<'_>, kw: &str, c: &Control| {
            write!(f, "{{{{{kw} {}}}}}", c.pipe)?;
            list(f, &c.list)?;
            if let Some(e) = &c.else_list {
                f.write_str("{{else}}")?;
                list(f, e)?;
            }
            f.write_str("{{end}}")
        };
        match self {
            Node::Text(t) => f.write_str(t),
            Node::Action(p) => write!(f, "{{{{{p}}}}}"),
            Node::If(c) => control(f, "if", c),
            Node::With(c) => control(f, "with", c),
            Node::Range(c) => control(f, "range", c),
            Node::Template { name, pipe, .. } => match pipe {
                Some(p) => write!(f, "{{{{template {} {p}}}}}", super::gofmt::quote(name)),
                None => write!(f, "{{{{template {}}}}}", super::gofmt::quote(name)),
            },
            Node::Break(_) => f.write_str("{{break}}"),
            Node::Continue(_) => f.write_str("{{continue}}"),
        }
    }
}

/// A parse error: the byte offset it was found at and Go's message.
#[derive(Debug)]
pub(crate) struct ParseError {
    pub pos: usize,
    pub msg: String,
}

type Result<T> = std::result::Result<T, ParseError>;

/// What ended an item list.
enum ListEnd {
    End,
    /// `{{else}}`; `chained` when an `if`/`with` follows (`{{else if ...}}`).
    Else {
        chained: Kind,
    },
}

/// Parses `text`; `has_function` says which identifiers are functions.
pub(crate) fn parse(text: &str, has_function: &dyn Fn(&str) -> bool) -> Result<Set> {
    let mut p = Parser {
        toks: lex(text),
        i: 0,
        vars: vec!["$".into()],
        has_function,
        range_depth: 0,
        set: Set::default(),
    };
    let mut root = Vec::new();
    loop {
        let t = p.next();
        match t.kind {
            Kind::Eof => break,
            Kind::Text => root.push(Node::Text(t.val)),
            Kind::LeftDelim => {
                if p.peek_non_space().kind == Kind::Define {
                    p.next_non_space();
                    p.definition()?;
                    continue;
                }
                match p.action()? {
                    Ok(n) => root.push(n),
                    Err(ListEnd::End) => return Err(p.error(t.pos, "unexpected {{end}}".into())),
                    Err(_) => return Err(p.error(t.pos, "unexpected {{else}}".into())),
                }
            }
            _ => return Err(p.unexpected(&t, "input")),
        }
    }
    p.set.root = root;
    Ok(p.set)
}

struct Parser<'f> {
    toks: Vec<Token>,
    i: usize,
    vars: Vec<String>,
    has_function: &'f dyn Fn(&str) -> bool,
    range_depth: usize,
    set: Set,
}

impl Parser<'_> {
    /// The next token; past the end, the last one (EOF or an error) again.
    fn next(&mut self) -> Token {
        let last = self.toks.len().saturating_sub(1);
        let t = self.toks.get(self.i.min(last)).cloned().unwrap_or(Token {
            kind: Kind::Eof,
            pos: 0,
            val: String::new(),
        });
        self.i += 1;
        t
    }

    fn backup(&mut self) {
        self.i -= 1;
    }

    fn peek(&mut self) -> Token {
        let t = self.next();
        self.backup();
        t
    }

    fn next_non_space(&mut self) -> Token {
        loop {
            let t = self.next();
            if t.kind != Kind::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> Token {
        let save = self.i;
        let t = self.next_non_space();
        self.i = save;
        t
    }

    fn error(&self, pos: usize, msg: String) -> ParseError {
        ParseError { pos, msg }
    }

    fn token_error(&self, t: &Token) -> ParseError {
        self.error(t.pos, t.val.clone())
    }

    fn unexpected(&self, t: &Token, context: &str) -> ParseError {
        if t.kind == Kind::Error {
            return self.token_error(t);
        }
        self.error(t.pos, format!("unexpected {} in {context}", t.describe()))
    }

    fn expect(&mut self, kind: Kind, context: &str) -> Result<Token> {
        let t = self.next_non_space();
        if t.kind != kind {
            return Err(self.unexpected(&t, context));
        }
        Ok(t)
    }

    /// `{{define "name"}} ... {{end}}` (the `define` already read).
    fn definition(&mut self) -> Result<()> {
        let t = self.next_non_space();
        let name = match t.kind {
            Kind::String | Kind::RawString => unquote(&t.val).map_err(|m| self.error(t.pos, m))?,
            _ => return Err(self.unexpected(&t, "define clause")),
        };
        self.expect(Kind::RightDelim, "define clause")?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let (list, end) = self.item_list()?;
        self.vars = saved;
        if !matches!(end, ListEnd::End) {
            return Err(self.error(t.pos, "unexpected {{else}} in define clause".into()));
        }
        self.set.defines.insert(name, list);
        Ok(())
    }

    /// Nodes up to `{{end}}` or `{{else}}`; EOF is an error.
    fn item_list(&mut self) -> Result<(Vec<Node>, ListEnd)> {
        let mut list = Vec::new();
        loop {
            let t = self.next();
            match t.kind {
                Kind::Eof => return Err(self.error(t.pos, "unexpected EOF".into())),
                Kind::Error => return Err(self.token_error(&t)),
                Kind::Text => list.push(Node::Text(t.val)),
                Kind::LeftDelim => {
                    if self.peek_non_space().kind == Kind::Define {
                        let d = self.next_non_space();
                        return Err(self.error(d.pos, "unexpected <define> in command".into()));
                    }
                    match self.action()? {
                        Ok(n) => list.push(n),
                        Err(end) => return Ok((list, end)),
                    }
                }
                _ => return Err(self.unexpected(&t, "input")),
            }
        }
    }

    /// The inside of `{{ }}`: a node, or what ends a list.
    fn action(&mut self) -> Result<std::result::Result<Node, ListEnd>> {
        let t = self.next_non_space();
        match t.kind {
            Kind::Block => self.block(t.pos).map(Ok),
            Kind::Break | Kind::Continue => {
                if self.range_depth == 0 {
                    return Err(self.error(t.pos, format!("{{{{{}}}}} outside {{{{range}}}}", t.val)));
                }
                self.expect(Kind::RightDelim, &t.val)?;
                Ok(Ok(if t.kind == Kind::Break {
                    Node::Break(t.pos)
                } else {
                    Node::Continue(t.pos)
                }))
            }
            Kind::Else => {
                let next = self.peek_non_space();
                if matches!(next.kind, Kind::If | Kind::With) {
                    return Ok(Err(ListEnd::Else { chained: next.kind }));
                }
                self.expect(Kind::RightDelim, "else")?;
                Ok(Err(ListEnd::Else { chained: Kind::Else }))
            }
            Kind::End => {
                self.expect(Kind::RightDelim, "end")?;
                Ok(Err(ListEnd::End))
            }
            Kind::If => Ok(Ok(Node::If(self.control("if", t.pos)?))),
            Kind::With => Ok(Ok(Node::With(self.control("with", t.pos)?))),
            Kind::Range => {
                self.range_depth += 1;
                let c = self.control("range", t.pos);
                self.range_depth -= 1;
                Ok(Ok(Node::Range(c?)))
            }
            Kind::Template => self.template(t.pos).map(Ok),
            Kind::Error => Err(self.token_error(&t)),
            _ => {
                self.backup();
                // Variables declared by an action stay until the enclosing list ends.
                Ok(Ok(Node::Action(self.pipeline("command", Kind::RightDelim)?)))
            }
        }
    }

    fn control(&mut self, context: &str, pos: usize) -> Result<Control> {
        let mark = self.vars.len();
        let pipe = self.pipeline(context, Kind::RightDelim)?;
        let (list, end) = self.item_list()?;
        let else_list = match end {
            ListEnd::End => None,
            ListEnd::Else { chained } if (chained == Kind::If && context == "if") || (chained == Kind::With && context == "with") => {
                let kw = self.next_non_space();
                let inner = self.control(context, kw.pos)?;
                Some(vec![if context == "if" { Node::If(inner) } else { Node::With(inner) }])
            }
            ListEnd::Else { chained } => {
                if chained != Kind::Else {
                    // `{{else if}}` inside a range or with: Go parses the `if` as a command.
                    let kw = self.next_non_space();
                    return Err(self.unexpected(&kw, "else"));
                }
                let (else_list, end) = self.item_list()?;
                if !matches!(end, ListEnd::End) {
                    return Err(self.error(pos, "expected end; found {{else}}".into()));
                }
                Some(else_list)
            }
        };
        self.vars.truncate(mark);
        Ok(Control { pipe, list, else_list })
    }

    fn template(&mut self, pos: usize) -> Result<Node> {
        let t = self.next_non_space();
        let name = match t.kind {
            Kind::String | Kind::RawString => unquote(&t.val).map_err(|m| self.error(t.pos, m))?,
            _ => return Err(self.unexpected(&t, "template clause")),
        };
        let pipe = if self.peek_non_space().kind != Kind::RightDelim {
            Some(self.pipeline("template clause", Kind::RightDelim)?)
        } else {
            self.next_non_space();
            None
        };
        Ok(Node::Template { pos, name, pipe })
    }

    /// `{{block "name" pipeline}} T1 {{end}}` = define plus template.
    fn block(&mut self, pos: usize) -> Result<Node> {
        let t = self.next_non_space();
        let name = match t.kind {
            Kind::String | Kind::RawString => unquote(&t.val).map_err(|m| self.error(t.pos, m))?,
            _ => return Err(self.unexpected(&t, "block clause")),
        };
        let pipe = self.pipeline("block clause", Kind::RightDelim)?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let (list, end) = self.item_list()?;
        self.vars = saved;
        if !matches!(end, ListEnd::End) {
            return Err(self.error(pos, "unexpected {{else}} in block clause".into()));
        }
        self.set.defines.insert(name.clone(), list);
        Ok(Node::Template {
            pos,
            name,
            pipe: Some(pipe),
        })
    }

    fn pipeline(&mut self, context: &str, end: Kind) -> Result<Pipe> {
        let start = self.peek_non_space();
        let mut pipe = Pipe {
            pos: start.pos,
            decl: Vec::new(),
            is_assign: false,
            cmds: Vec::new(),
        };
        // Declarations: `$x :=`, `$x =`, `$i, $v :=` (range only).
        loop {
            let v = self.peek_non_space();
            if v.kind != Kind::Variable {
                break;
            }
            let save = self.i;
            self.next_non_space();
            let next = self.peek_non_space();
            match next.kind {
                Kind::Assign | Kind::Declare => {
                    pipe.is_assign = next.kind == Kind::Assign;
                    self.next_non_space();
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val);
                    break;
                }
                Kind::Char if next.val == "," => {
                    self.next_non_space();
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val);
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().kind {
                            Kind::Variable | Kind::RightDelim | Kind::RightParen => continue,
                            _ => return Err(self.error(next.pos, "range can only initialize variables".into())),
                        }
                    }
                    return Err(self.error(next.pos, format!("too many declarations in {context}")));
                }
                _ => {
                    self.i = save;
                    break;
                }
            }
        }
        loop {
            let t = self.next_non_space();
            match t.kind {
                k if k == end => {
                    if pipe.cmds.is_empty() {
                        return Err(self.error(t.pos, format!("missing value for {context}")));
                    }
                    for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
                        if matches!(
                            c.args.first(),
                            Some(Arg::Bool(..) | Arg::Dot(_) | Arg::Nil(_) | Arg::Number(..) | Arg::Str(..))
                        ) {
                            return Err(self.error(t.pos, format!("non executable command in pipeline stage {}", i + 1)));
                        }
                    }
                    return Ok(pipe);
                }
                Kind::Bool
                | Kind::CharConstant
                | Kind::Dot
                | Kind::Field
                | Kind::Identifier
                | Kind::Number
                | Kind::Nil
                | Kind::RawString
                | Kind::String
                | Kind::Variable
                | Kind::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return Err(self.unexpected(&t, context)),
            }
        }
    }

    fn command(&mut self) -> Result<Command> {
        let pos = self.peek_non_space().pos;
        let mut args = Vec::new();
        loop {
            self.peek_non_space();
            while self.peek().kind == Kind::Space {
                self.next();
            }
            if let Some(a) = self.operand()? {
                args.push(a);
            }
            let t = self.next();
            match t.kind {
                Kind::Space => continue,
                Kind::RightDelim | Kind::RightParen => self.backup(),
                Kind::Pipe => {}
                _ => return Err(self.unexpected(&t, "operand")),
            }
            break;
        }
        if args.is_empty() {
            return Err(self.error(pos, "empty command".into()));
        }
        Ok(Command { pos, args })
    }

    fn operand(&mut self) -> Result<Option<Arg>> {
        let Some(term) = self.term()? else { return Ok(None) };
        if self.peek().kind != Kind::Field {
            return Ok(Some(term));
        }
        let chain_pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().kind == Kind::Field {
            fields.push(self.next().val[1..].to_string());
        }
        Ok(Some(match term {
            Arg::Field(_, mut idents) => {
                idents.extend(fields);
                Arg::Field(chain_pos, idents)
            }
            Arg::Variable(_, name, mut idents) => {
                idents.extend(fields);
                Arg::Variable(chain_pos, name, idents)
            }
            t @ (Arg::Bool(..) | Arg::Str(..) | Arg::Number(..) | Arg::Nil(_) | Arg::Dot(_)) => {
                return Err(self.error(
                    chain_pos,
                    format!("unexpected . after term {}", super::gofmt::quote(&t.to_string())),
                ));
            }
            t => Arg::Chain(chain_pos, Box::new(t), fields),
        }))
    }

    fn term(&mut self) -> Result<Option<Arg>> {
        let t = self.next_non_space();
        Ok(Some(match t.kind {
            Kind::Identifier => {
                if !(self.has_function)(&t.val) {
                    return Err(self.error(t.pos, format!("function {} not defined", super::gofmt::quote(&t.val))));
                }
                Arg::Ident(t.pos, t.val)
            }
            Kind::Dot => Arg::Dot(t.pos),
            Kind::Nil => Arg::Nil(t.pos),
            Kind::Variable => {
                if !self.vars.contains(&t.val) {
                    return Err(self.error(t.pos, format!("undefined variable {}", super::gofmt::quote(&t.val))));
                }
                Arg::Variable(t.pos, t.val, Vec::new())
            }
            Kind::Field => Arg::Field(t.pos, vec![t.val[1..].to_string()]),
            Kind::Bool => Arg::Bool(t.pos, t.val == "true"),
            Kind::Number | Kind::CharConstant => Arg::Number(t.pos, number(&t).map_err(|m| self.error(t.pos, m))?),
            Kind::LeftParen => {
                let p = self.pipeline("parenthesized pipeline", Kind::RightParen)?;
                Arg::Pipe(t.pos, Box::new(p))
            }
            Kind::String | Kind::RawString => {
                let text = unquote(&t.val).map_err(|m| self.error(t.pos, m))?;
                Arg::Str(t.pos, text, t.val)
            }
            Kind::Error => return Err(self.token_error(&t)),
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

/// Go's `strconv.Unquote` for `"..."`, `` `...` `` and `'c'`.
pub(crate) fn unquote(s: &str) -> std::result::Result<String, String> {
    let invalid = || "invalid syntax".to_string();
    if let Some(raw) = s.strip_prefix('`').and_then(|r| r.strip_suffix('`')) {
        return Ok(raw.replace('\r', ""));
    }
    let q = s.chars().next().ok_or_else(invalid)?;
    let inner = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)).ok_or_else(invalid)?;
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or_else(invalid)?;
        let mut hex = |n: usize| -> std::result::Result<u32, String> {
            let digits: String = (0..n).filter_map(|_| chars.next()).collect();
            if digits.len() != n {
                return Err(invalid());
            }
            u32::from_str_radix(&digits, 16).map_err(|_| invalid())
        };
        match e {
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            '\'' if q == '\'' => out.push('\''),
            '"' if q == '"' => out.push('"'),
            'x' => out.push(char::from_u32(hex(2)?).ok_or_else(invalid)?),
            'u' => out.push(char::from_u32(hex(4)?).ok_or_else(invalid)?),
            'U' => out.push(char::from_u32(hex(8)?).ok_or_else(invalid)?),
            '0'..='7' => {
                let rest: String = (0..2).filter_map(|_| chars.next()).collect();
                let v = u32::from_str_radix(&format!("{e}{rest}"), 8).map_err(|_| invalid())?;
                out.push(char::from_u32(v).ok_or_else(invalid)?);
            }
            _ => return Err(invalid()),
        }
    }
    Ok(out)
}

/// Go's `newNumber`: which of int/float the literal is valid as.
fn number(t: &Token) -> std::result::Result<Number, String> {
    let text = t.val.clone();
    if t.kind == Kind::CharConstant {
        let s = unquote(&text).map_err(|_| format!("malformed character constant: {text}"))?;
        let mut cs = s.chars();
        let c = cs
            .next()
            .filter(|_| cs.next().is_none())
            .ok_or_else(|| format!("malformed character constant: {text}"))?;
        return Ok(Number {
            text,
            int: Some(c as i64),
            float: Some(c as u32 as f64),
            is_char: true,
        });
    }
    if text.ends_with('i') {
        return Err(format!("complex numbers are not supported: {text}"));
    }
    let clean = text.replace('_', "");
    let (neg, body) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, clean.as_str()),
    };
    let lower = body.to_ascii_lowercase();
    let parsed_int = if let Some(h) = lower.strip_prefix("0x") {
        i128::from_str_radix(h, 16).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        i128::from_str_radix(o, 8).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        i128::from_str_radix(b, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|c| c.is_ascii_digit()) {
        i128::from_str_radix(&lower[1..], 8).ok()
    } else {
        lower.parse::<i128>().ok()
    };
    let int = parsed_int.map(|v| if neg { -v } else { v }).and_then(|v| i64::try_from(v).ok());
    let float = match int {
        Some(i) => Some(i as f64),
        None if !lower.starts_with("0x") => clean.parse::<f64>().ok().filter(|f| f.is_finite()),
        None => None,
    };
    if int.is_none() && float.is_none() {
        return Err(format!("illegal number syntax: {}", super::gofmt::quote(&text)));
    }
    Ok(Number {
        text,
        int,
        float,
        is_char: false,
    })
}
