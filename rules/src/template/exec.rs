//! Executes a parsed template set the way Go's text/template does: pipelines pass the
//! previous command's value as the last argument, variables are scoped to the enclosing
//! control structure, `missingkey=zero` for maps, and an error names the node being
//! evaluated as `template: NAME:LINE:COL: executing "NAME" at <NODE>: MESSAGE`.

use std::rc::Rc;

use super::funcs::{self, Ctx, Param};
use super::gofmt;
use super::parse::{Arg, Command, Control, Node, Number, Pipe, Set};
use super::value::Value;

/// Go's limit on nested `{{template}}` calls is far higher; ours keeps the Rust stack safe.
const MAX_DEPTH: usize = 1000;

/// What the error location points at.
#[derive(Clone, Copy)]
enum At<'t> {
    Arg(&'t Arg),
    Cmd(&'t Command),
    Pipe(&'t Pipe),
    Node(&'t Node),
}

impl At<'_> {
    fn pos(&self) -> usize {
        match self {
            At::Arg(a) => a.pos(),
            At::Cmd(c) => c.pos,
            At::Pipe(p) => p.pos,
            At::Node(n) => match n {
                Node::Action(p) => p.pos,
                Node::If(c) | Node::With(c) | Node::Range(c) => c.pipe.pos,
                Node::Template { pos, .. } | Node::Break(pos) | Node::Continue(pos) => *pos,
                Node::Text(_) => 0,
            },
        }
    }

    fn context(&self) -> String {
        match self {
            At::Arg(a) => a.to_string(),
            At::Cmd(c) => c.to_string(),
            At::Pipe(p) => p.to_string(),
            At::Node(n) => n.to_string(),
        }
    }
}

enum Flow {
    Normal,
    Break,
    Continue,
}

type Result<T> = std::result::Result<T, String>;

/// Executes `set` (parsed from `text`, named `name`) with `data` as dot.
pub(crate) fn execute(name: &str, text: &str, set: &Set, data: Value, ctx: &Ctx<'_>) -> Result<String> {
    let mut s = State {
        name,
        text,
        set,
        ctx,
        tmpl_name: name.to_string(),
        vars: vec![("$".into(), data.clone())],
        at: None,
        depth: 0,
        out: String::new(),
    };
    s.walk_list(&data, &set.root)?;
    Ok(s.out)
}

struct State<'t, 'c> {
    name: &'t str,
    text: &'t str,
    set: &'t Set,
    ctx: &'t Ctx<'c>,
    /// The template executing now (`define`d ones change it).
    tmpl_name: String,
    vars: Vec<(String, Value)>,
    at: Option<At<'t>>,
    depth: usize,
    out: String,
}

impl<'t> State<'t, '_> {
    fn error(&self, msg: impl std::fmt::Display) -> String {
        self.snapshot().error(msg)
    }

    fn var_value(&self, name: &str) -> Result<Value> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => Err(self.error(format!("undefined variable: {name}"))),
        }
    }

    fn walk_list(&mut self, dot: &Value, nodes: &'t [Node]) -> Result<Flow> {
        for n in nodes {
            match self.walk(dot, n)? {
                Flow::Normal => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Normal)
    }

    fn walk(&mut self, dot: &Value, node: &'t Node) -> Result<Flow> {
        self.at = Some(At::Node(node));
        match node {
            Node::Text(t) => self.out.push_str(t),
            Node::Action(pipe) => {
                let v = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.at = Some(At::Node(node));
                    self.print_value(&v);
                }
            }
            Node::If(c) => return self.walk_if_or_with(false, dot, c),
            Node::With(c) => return self.walk_if_or_with(true, dot, c),
            Node::Range(c) => return self.walk_range(dot, node, c),
            Node::Template { name, pipe, .. } => {
                let body = if name == self.name {
                    &self.set.root
                } else {
                    match self.set.defines.get(name) {
                        Some(b) => b,
                        None => return Err(self.error(format!("template {} not defined", gofmt::quote(name)))),
                    }
                };
                if self.depth >= MAX_DEPTH {
                    return Err(self.error(format!("exceeded maximum template depth ({MAX_DEPTH})")));
                }
                let new_dot = match pipe {
                    Some(p) => self.eval_pipeline(dot, p)?,
                    None => Value::Nil,
                };
                // No dynamic scoping: the called template sees only `$`.
                let saved_vars = std::mem::replace(&mut self.vars, vec![("$".into(), new_dot.clone())]);
                let saved_name = std::mem::replace(&mut self.tmpl_name, name.clone());
                self.depth += 1;
                let r = self.walk_list(&new_dot, body);
                self.depth -= 1;
                self.tmpl_name = saved_name;
                self.vars = saved_vars;
                r?;
            }
            Node::Break(_) => return Ok(Flow::Break),
            Node::Continue(_) => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn print_value(&mut self, v: &Value) {
        match v {
            Value::Nil => self.out.push_str("<no value>"),
            // Go dereferences the pointer before printing.
            Value::Sample(s) => self.out.push_str(&gofmt::sample_struct(s)),
            v => self.out.push_str(&gofmt::print_v(v, true)),
        }
    }

    fn walk_if_or_with(&mut self, with: bool, dot: &Value, c: &'t Control) -> Result<Flow> {
        let mark = self.vars.len();
        let v = self.eval_pipeline(dot, &c.pipe)?;
        let flow = if v.truth() {
            if with {
                self.walk_list(&v, &c.list)
            } else {
                self.walk_list(dot, &c.list)
            }
        } else if let Some(e) = &c.else_list {
            self.walk_list(dot, e)
        } else {
            Ok(Flow::Normal)
        };
        self.vars.truncate(mark);
        flow
    }

    fn walk_range(&mut self, dot: &Value, node: &'t Node, c: &'t Control) -> Result<Flow> {
        let outer = self.vars.len();
        let v = self.eval_pipeline(dot, &c.pipe)?;
        let mark = self.vars.len();
        let items: Vec<(Value, Value)> = match &v {
            Value::List(l) => l.iter().enumerate().map(|(i, x)| (Value::Int(i as i64), x.clone())).collect(),
            Value::Samples(s) => s
                .iter()
                .enumerate()
                .map(|(i, x)| (Value::Int(i as i64), Value::Sample(x.clone())))
                .collect(),
            Value::StrMap(m) => m.iter().map(|(k, x)| (Value::str(k.clone()), Value::str(x.clone()))).collect(),
            Value::Map(m) => m.iter().map(|(k, x)| (Value::str(k.clone()), x.clone())).collect(),
            Value::Int(n) => (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
            Value::Nil => Vec::new(),
            other => {
                self.at = Some(At::Node(node));
                return Err(self.error(format!("range can't iterate over {}", gofmt::print_v(other, true))));
            }
        };
        let ndecl = c.pipe.decl.len();
        let mut result = Ok(Flow::Normal);
        for (index, elem) in &items {
            if ndecl > 0 {
                self.vars[mark - 1].1 = elem.clone();
            }
            if ndecl > 1 {
                self.vars[mark - 2].1 = index.clone();
            }
            let flow = self.walk_list(elem, &c.list);
            self.vars.truncate(mark);
            match flow {
                Ok(Flow::Break) => break,
                Ok(_) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if items.is_empty()
            && let Some(e) = &c.else_list
        {
            result = self.walk_list(dot, e).map(|_| Flow::Normal);
        }
        self.vars.truncate(outer);
        result.map(|_| Flow::Normal)
    }

    fn eval_pipeline(&mut self, dot: &Value, pipe: &'t Pipe) -> Result<Value> {
        self.at = Some(At::Pipe(pipe));
        let mut value = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Value::Nil);
        for name in &pipe.decl {
            if pipe.is_assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = value.clone(),
                    None => return Err(self.error(format!("undefined variable: {name}"))),
                }
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &[Arg], final_: &Option<Value>) -> Result<()> {
        if args.len() > 1 || final_.is_some() {
            return Err(self.error(format!("can't give argument to non-function {}", args[0])));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Value, cmd: &'t Command, final_: Option<Value>) -> Result<Value> {
        let first = &cmd.args[0];
        match first {
            Arg::Field(_, idents) => {
                self.at = Some(At::Arg(first));
                return self.eval_field_chain(dot, dot.clone(), first, idents, &cmd.args, final_);
            }
            Arg::Chain(_, node, idents) => {
                self.at = Some(At::Arg(first));
                let recv = self.eval_arg(dot, Param::Any, node)?;
                return self.eval_field_chain(dot, recv, first, idents, &cmd.args, final_);
            }
            Arg::Ident(_, name) => return self.eval_function(dot, first, name, At::Cmd(cmd), &cmd.args[1..], final_),
            Arg::Pipe(_, p) => {
                self.not_a_function(&cmd.args, &final_)?;
                return self.eval_pipeline(dot, p);
            }
            Arg::Variable(_, name, idents) => {
                self.at = Some(At::Arg(first));
                let v = self.var_value(name)?;
                if idents.is_empty() {
                    self.not_a_function(&cmd.args, &final_)?;
                    return Ok(v);
                }
                return self.eval_field_chain(dot, v, first, idents, &cmd.args, final_);
            }
            _ => {}
        }
        self.at = Some(At::Arg(first));
        self.not_a_function(&cmd.args, &final_)?;
        match first {
            Arg::Bool(_, b) => Ok(Value::Bool(*b)),
            Arg::Dot(_) => Ok(dot.clone()),
            Arg::Nil(_) => Err(self.error("nil is not a command")),
            Arg::Number(_, n) => self.ideal_constant(n),
            Arg::Str(_, s, _) => Ok(Value::str(s.clone())),
            _ => Err(self.error(format!("can't evaluate command {}", gofmt::quote(&first.to_string())))),
        }
    }

    fn ideal_constant(&self, n: &Number) -> Result<Value> {
        let lower = n.text.to_ascii_lowercase();
        let hex = lower.trim_start_matches(['+', '-']).starts_with("0x");
        if !n.is_char && !hex && n.text.contains(['.', 'e', 'E', 'p', 'P']) {
            return n
                .float
                .map(Value::Float)
                .ok_or_else(|| self.error(format!("{} overflows float", n.text)));
        }
        n.int.map(Value::Int).ok_or_else(|| self.error(format!("{} overflows int", n.text)))
    }

    /// `args` are the command's words (the first one is the field itself).
    fn eval_field_chain(
        &mut self,
        dot: &Value,
        mut recv: Value,
        node: &'t Arg,
        idents: &[String],
        args: &'t [Arg],
        final_: Option<Value>,
    ) -> Result<Value> {
        let n = idents.len();
        for ident in &idents[..n - 1] {
            recv = self.eval_field(dot, ident, node, &[], None, recv)?;
        }
        self.eval_field(dot, &idents[n - 1], node, args, final_, recv)
    }

    fn eval_field(&mut self, dot: &Value, name: &str, node: &'t Arg, args: &'t [Arg], final_: Option<Value>, recv: Value) -> Result<Value> {
        if recv == Value::Nil {
            return Ok(Value::Nil);
        }
        if let Some(sig) = funcs::method(&recv, name) {
            let call_args = if args.is_empty() { &[][..] } else { &args[1..] };
            let argv = self.eval_call_args(dot, name, sig.params, sig.variadic, call_args, final_)?;
            return funcs::call_method(&recv, name, argv).map_err(|e| {
                let mut s = self.snapshot();
                s.at = Some(At::Arg(node));
                s.error(format!("error calling {name}: {e}"))
            });
        }
        let has_args = args.len() > 1 || final_.is_some();
        let field = match &recv {
            Value::Alert(a) => match name {
                "Labels" => Some(Value::StrMap(a.labels.clone())),
                "ExternalLabels" => Some(Value::StrMap(a.external_labels.clone())),
                "ExternalURL" => Some(Value::str(a.external_url.clone())),
                "Value" => Some(Value::Float(a.value)),
                _ => None,
            },
            Value::Sample(s) => match name {
                "Labels" => Some(Value::StrMap(Rc::new(s.labels.clone()))),
                "Value" => Some(Value::Float(s.value)),
                _ => None,
            },
            Value::StrMap(m) => {
                if has_args {
                    return Err(self.error(format!("{name} is not a method but has arguments")));
                }
                return Ok(Value::str(m.get(name).cloned().unwrap_or_default()));
            }
            Value::Map(m) => {
                if has_args {
                    return Err(self.error(format!("{name} is not a method but has arguments")));
                }
                return Ok(m.get(name).cloned().unwrap_or(Value::Nil));
            }
            _ => None,
        };
        match field {
            Some(_) if has_args => Err(self.error(format!("{name} has arguments but cannot be invoked as function"))),
            Some(v) => Ok(v),
            None => Err(self.error(format!("can't evaluate field {name} in type {}", recv.type_name()))),
        }
    }

    /// A copy of the error-reporting state.
    fn snapshot(&self) -> ErrCtx<'t> {
        ErrCtx {
            name: self.name,
            text: self.text,
            tmpl_name: self.tmpl_name.clone(),
            at: self.at,
        }
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        node: &'t Arg,
        name: &str,
        cmd: At<'t>,
        args: &'t [Arg],
        final_: Option<Value>,
    ) -> Result<Value> {
        self.at = Some(At::Arg(node));
        let Some(sig) = funcs::signature(name) else {
            return Err(self.error(format!("{} is not a defined function", gofmt::quote(name))));
        };
        if name == "and" || name == "or" {
            self.check_arity(name, sig.params, sig.variadic, args.len(), &final_)?;
            // `and`/`or` stop at the first argument that decides the result.
            let want = name == "or";
            let mut v = Value::Nil;
            for a in args {
                v = self.eval_arg(dot, Param::Any, a)?;
                if v.truth() == want {
                    return Ok(v);
                }
            }
            if let Some(f) = final_ {
                v = f;
            }
            return Ok(v);
        }
        let argv = self.eval_call_args(dot, name, sig.params, sig.variadic, args, final_)?;
        funcs::call(self.ctx, name, argv).map_err(|e| {
            let mut s = self.snapshot();
            s.at = Some(cmd);
            s.error(format!("error calling {name}: {e}"))
        })
    }

    fn check_arity(&self, name: &str, params: &[Param], variadic: Option<Param>, nargs: usize, final_: &Option<Value>) -> Result<()> {
        let num_in = nargs + usize::from(final_.is_some());
        if variadic.is_some() {
            if num_in < params.len() {
                return Err(self.error(format!(
                    "wrong number of args for {name}: want at least {} got {nargs}",
                    params.len()
                )));
            }
        } else if num_in != params.len() {
            return Err(self.error(format!("wrong number of args for {name}: want {} got {num_in}", params.len())));
        }
        Ok(())
    }

    fn eval_call_args(
        &mut self,
        dot: &Value,
        name: &str,
        params: &[Param],
        variadic: Option<Param>,
        args: &'t [Arg],
        final_: Option<Value>,
    ) -> Result<Vec<Value>> {
        self.check_arity(name, params, variadic, args.len(), &final_)?;
        let param_at = |i: usize| params.get(i).copied().or(variadic).unwrap_or(Param::Any);
        let mut argv = Vec::with_capacity(args.len() + 1);
        for (i, a) in args.iter().enumerate() {
            argv.push(self.eval_arg(dot, param_at(i), a)?);
        }
        if let Some(f) = final_ {
            let p = param_at(args.len());
            argv.push(self.validate(f, p)?);
        }
        Ok(argv)
    }

    fn validate(&self, v: Value, p: Param) -> Result<Value> {
        let ok = match (&v, p) {
            (_, Param::Any) => true,
            (Value::Nil, Param::Samples | Param::Sample) => true,
            (Value::Nil, _) => return Err(self.error(format!("invalid value; expected {}", p.go_type()))),
            (Value::Str(_), Param::Str) => true,
            (Value::Samples(_), Param::Samples) => true,
            (Value::Sample(_), Param::Sample) => true,
            (Value::Duration(_), Param::Duration) => true,
            _ => false,
        };
        if !ok {
            return Err(self.error(format!("wrong type for value; expected {}; got {}", p.go_type(), v.type_name())));
        }
        Ok(v)
    }

    fn eval_arg(&mut self, dot: &Value, p: Param, a: &'t Arg) -> Result<Value> {
        self.at = Some(At::Arg(a));
        let v = match a {
            Arg::Dot(_) => dot.clone(),
            Arg::Nil(_) => {
                return match p {
                    Param::Any | Param::Samples | Param::Sample => Ok(Value::Nil),
                    _ => Err(self.error(format!("cannot assign nil to {}", p.go_type()))),
                };
            }
            Arg::Field(_, idents) => self.eval_field_chain(dot, dot.clone(), a, idents, std::slice::from_ref(a), None)?,
            Arg::Variable(_, name, idents) => {
                let v = self.var_value(name)?;
                if idents.is_empty() {
                    v
                } else {
                    self.eval_field_chain(dot, v, a, idents, &[], None)?
                }
            }
            Arg::Pipe(_, pipe) => self.eval_pipeline(dot, pipe)?,
            Arg::Ident(_, name) => self.eval_function(dot, a, name, At::Arg(a), &[], None)?,
            Arg::Chain(_, node, idents) => {
                let recv = self.eval_arg(dot, Param::Any, node)?;
                self.at = Some(At::Arg(a));
                self.eval_field_chain(dot, recv, a, idents, &[], None)?
            }
            Arg::Bool(_, b) => {
                return match p {
                    Param::Any => Ok(Value::Bool(*b)),
                    _ => Err(self.error(format!("can't handle {a} for arg of type {}", p.go_type()))),
                };
            }
            Arg::Number(_, n) => {
                return match p {
                    Param::Any => self.ideal_constant(n),
                    Param::Duration => n
                        .int
                        .map(Value::Duration)
                        .ok_or_else(|| self.error(format!("expected integer; found {a}"))),
                    Param::Str => Err(self.error(format!("expected string; found {a}"))),
                    _ => Err(self.error(format!("can't handle {a} for arg of type {}", p.go_type()))),
                };
            }
            Arg::Str(_, s, _) => {
                return match p {
                    Param::Any | Param::Str => Ok(Value::str(s.clone())),
                    Param::Duration => Err(self.error(format!("expected integer; found {a}"))),
                    _ => Err(self.error(format!("can't handle {a} for arg of type {}", p.go_type()))),
                };
            }
        };
        self.validate(v, p)
    }
}

/// The parts of [`State`] an error message needs.
struct ErrCtx<'t> {
    name: &'t str,
    text: &'t str,
    tmpl_name: String,
    at: Option<At<'t>>,
}

impl ErrCtx<'_> {
    fn error(&self, msg: impl std::fmt::Display) -> String {
        match self.at {
            None => format!("template: {}: {msg}", self.name),
            Some(at) => {
                let pos = at.pos().min(self.text.len());
                let before = &self.text[..pos];
                let line = 1 + before.matches('\n').count();
                let col = before.rfind('\n').map(|i| pos - i - 1).unwrap_or(pos);
                format!(
                    "template: {}:{line}:{col}: executing {} at <{}>: {msg}",
                    self.name,
                    gofmt::quote(&self.tmpl_name),
                    at.context()
                )
            }
        }
    }
}
