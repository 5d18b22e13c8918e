//! `/api/v1/parse_query`: a query's syntax tree as JSON, in the shape Prometheus 3's
//! `translateAST` gives its query page's tree view.
//!
//! Written against promql-parser's tree rather than with its optional serde output, which
//! differs from Prometheus's in the places that matter to a client: the metric name is not
//! among the matchers, group modifiers are nested inside `card`, and scalar-vector
//! operations carry a `matching`. Durations and times are milliseconds, as there.

use std::time::UNIX_EPOCH;

use fedwatch_model::format_go_float;
use promql_parser::label::Matchers;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{AtModifier, BinModifier, Expr, LabelModifier, Offset, VectorMatchCardinality, VectorSelector};
use serde_json::{Value, json};

/// The JSON tree of `expr`.
pub(crate) fn translate(expr: &Expr) -> Value {
    match expr {
        Expr::Aggregate(a) => {
            let (grouping, without) = match &a.modifier {
                Some(LabelModifier::Include(l)) => (l.labels.clone(), false),
                Some(LabelModifier::Exclude(l)) => (l.labels.clone(), true),
                None => (Vec::new(), false),
            };
            json!({
                "type": "aggregation",
                "op": a.op.to_string(),
                "expr": translate(&a.expr),
                "param": a.param.as_deref().map_or(Value::Null, translate),
                "grouping": grouping,
                "without": without,
            })
        }
        Expr::Binary(b) => {
            let vectors = b.lhs.value_type() == ValueType::Vector && b.rhs.value_type() == ValueType::Vector;
            let matching = if vectors {
                matching(b.modifier.as_ref(), b.op.is_set_operator())
            } else {
                Value::Null
            };
            json!({
                "type": "binaryExpr",
                "op": b.op.to_string(),
                "lhs": translate(&b.lhs),
                "rhs": translate(&b.rhs),
                "matching": matching,
                "bool": b.modifier.as_ref().is_some_and(|m| m.return_bool),
            })
        }
        Expr::Call(c) => json!({
            "type": "call",
            "func": {
                "name": c.func.name,
                "argTypes": c.func.arg_types.iter().map(value_type).collect::<Vec<_>>(),
                "variadic": c.func.variadic,
                "returnType": value_type(&c.func.return_type),
            },
            "args": c.args.args.iter().map(|a| translate(a)).collect::<Vec<_>>(),
        }),
        Expr::MatrixSelector(m) => {
            let mut v = selector(&m.vs, "matrixSelector");
            v["range"] = json!(m.range.as_millis() as i64);
            v
        }
        Expr::Subquery(s) => json!({
            "type": "subquery",
            "expr": translate(&s.expr),
            "range": s.range.as_millis() as i64,
            "offset": offset_ms(s.offset.as_ref()),
            "step": s.step.map_or(0, |d| d.as_millis() as i64),
            "timestamp": timestamp(s.at.as_ref()),
            "startOrEnd": start_or_end(s.at.as_ref()),
        }),
        Expr::NumberLiteral(n) => json!({ "type": "numberLiteral", "val": format_go_float(n.val, 'f') }),
        Expr::Paren(p) => json!({ "type": "parenExpr", "expr": translate(&p.expr) }),
        Expr::StringLiteral(s) => json!({ "type": "stringLiteral", "val": s.val }),
        // promql-parser folds unary plus away; what is left is negation.
        Expr::Unary(u) => json!({ "type": "unaryExpr", "op": "-", "expr": translate(&u.expr) }),
        Expr::VectorSelector(vs) => selector(vs, "vectorSelector"),
        Expr::Extension(_) => Value::Null,
    }
}

fn selector(vs: &VectorSelector, kind: &str) -> Value {
    json!({
        "type": kind,
        "name": vs.name.clone().unwrap_or_default(),
        "offset": offset_ms(vs.offset.as_ref()),
        "matchers": matchers(&vs.matchers, vs.name.as_deref()),
        "timestamp": timestamp(vs.at.as_ref()),
        "startOrEnd": start_or_end(vs.at.as_ref()),
    })
}

/// The label matchers, then the metric name's (Prometheus appends it last).
fn matchers(ms: &Matchers, name: Option<&str>) -> Value {
    let mut out: Vec<Value> = ms
        .matchers
        .iter()
        .chain(ms.or_matchers.iter().flatten())
        .map(|m| json!({ "name": m.name, "value": m.value, "type": m.op.to_string() }))
        .collect();
    if let Some(name) = name {
        out.push(json!({ "name": "__name__", "value": name, "type": "=" }));
    }
    Value::Array(out)
}

fn matching(m: Option<&BinModifier>, set_operator: bool) -> Value {
    let card = m.map(|m| &m.card);
    let card_name = match card {
        Some(VectorMatchCardinality::ManyToOne(_)) => "many-to-one",
        Some(VectorMatchCardinality::OneToMany(_)) => "one-to-many",
        Some(VectorMatchCardinality::ManyToMany) => "many-to-many",
        _ if set_operator => "many-to-many",
        _ => "one-to-one",
    };
    let include = card
        .and_then(VectorMatchCardinality::labels)
        .map(|l| l.labels.clone())
        .unwrap_or_default();
    let (labels, on) = match m.and_then(|m| m.matching.as_ref()) {
        Some(LabelModifier::Include(l)) => (l.labels.clone(), true),
        Some(LabelModifier::Exclude(l)) => (l.labels.clone(), false),
        None => (Vec::new(), false),
    };
    json!({ "card": card_name, "labels": labels, "on": on, "include": include })
}

fn value_type(t: &ValueType) -> &'static str {
    match t {
        ValueType::Vector => "vector",
        ValueType::Scalar => "scalar",
        ValueType::Matrix => "matrix",
        ValueType::String => "string",
    }
}

fn offset_ms(o: Option<&Offset>) -> i64 {
    match o {
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
        None => 0,
    }
}

fn timestamp(at: Option<&AtModifier>) -> Value {
    match at {
        Some(AtModifier::At(t)) => json!(match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i64,
            Err(e) => -(e.duration().as_millis() as i64),
        }),
        _ => Value::Null,
    }
}

fn start_or_end(at: Option<&AtModifier>) -> Value {
    match at {
        Some(AtModifier::Start) => json!("start"),
        Some(AtModifier::End) => json!("end"),
        _ => Value::Null,
    }
}
