//! Small readers over sqlparser's AST shared by the translations of the virtual tables.

use super::error::{state, SqlError};
use sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, LimitClause, ObjectName,
    ObjectNamePart, OrderByKind, OrderBySort, Query, SelectItem, UnaryOperator, Value,
};

/// A constant of the query (after parameters are bound).
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Number(String),
    Text(String),
}

impl Literal {
    /// As a filter value: the query model compares strings.
    pub fn as_filter_value(&self) -> Option<String> {
        match self {
            Literal::Null => None,
            Literal::Bool(b) => Some(b.to_string()),
            Literal::Number(n) | Literal::Text(n) => Some(n.clone()),
        }
    }
}

/// An identifier as PostgreSQL folds it: unquoted names are lower case.
pub fn ident_name(i: &Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

pub fn object_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => ident_name(i),
            ObjectNamePart::Function(f) => f.name.value.to_lowercase(),
        })
        .collect()
}

/// The column an expression names (`agent`, `call_metrics.agent`, `public.call_metrics.agent`).
pub fn column_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(i) => Some(ident_name(i)),
        Expr::CompoundIdentifier(parts) => parts.last().map(ident_name),
        Expr::Nested(e) => column_name(e),
        _ => None,
    }
}

pub fn literal(expr: &Expr) -> Option<Literal> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Null => Some(Literal::Null),
            Value::Boolean(b) => Some(Literal::Bool(*b)),
            Value::Number(n, _) => Some(Literal::Number(n.to_string())),
            Value::SingleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::UnicodeStringLiteral(s)
            | Value::DoubleQuotedString(s) => Some(Literal::Text(s.clone())),
            Value::DollarQuotedString(s) => Some(Literal::Text(s.value.clone())),
            _ => None,
        },
        Expr::Cast { expr, .. } | Expr::Nested(expr) => literal(expr),
        Expr::TypedString(t) => literal(&Expr::Value(t.value.clone())),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match literal(expr)? {
            Literal::Number(n) => Some(Literal::Number(format!("-{n}"))),
            _ => None,
        },
        _ => None,
    }
}

pub fn function_name(f: &Function) -> String {
    object_parts(&f.name).pop().unwrap_or_default()
}

/// A function's plain arguments; `*` is `None`.
pub fn function_args(f: &Function) -> Vec<Option<&Expr>> {
    match &f.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                FunctionArg::Named {
                    arg: FunctionArgExpr::Expr(e),
                    ..
                } => Some(e),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

/// The terms of a conjunction: `a AND (b AND c)` is `[a, b, c]`.
pub fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut out = conjuncts(left);
            out.extend(conjuncts(right));
            out
        }
        Expr::Nested(e) => conjuncts(e),
        e => vec![e],
    }
}

/// A select item's expression and the name PostgreSQL gives its column.
pub fn select_item(item: &SelectItem) -> Option<(&Expr, String)> {
    match item {
        SelectItem::UnnamedExpr(e) => Some((e, default_column_name(e))),
        SelectItem::ExprWithAlias { expr, alias } => Some((expr, ident_name(alias))),
        _ => None,
    }
}

fn default_column_name(e: &Expr) -> String {
    match e {
        Expr::Function(f) => function_name(f),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => default_column_name(expr),
        e => column_name(e).unwrap_or_else(|| "?column?".into()),
    }
}

/// `LIMIT` and `OFFSET` as numbers.
pub fn limit_offset(q: &Query) -> Result<(Option<usize>, usize), SqlError> {
    let number = |e: &Expr, what: &str| match literal(e) {
        Some(Literal::Number(n)) => n
            .parse::<usize>()
            .map_err(|_| SqlError::new(state::INVALID_PARAMETER, format!("{what} must be a whole number ≥ 0"))),
        Some(Literal::Null) => Ok(usize::MAX),
        _ => Err(SqlError::new(
            state::INVALID_PARAMETER,
            format!("{what} must be a whole number ≥ 0"),
        )),
    };
    match &q.limit_clause {
        None => Ok((None, 0)),
        Some(LimitClause::LimitOffset { limit, offset, .. }) => {
            let limit = limit
                .as_ref()
                .map(|l| number(l, "LIMIT"))
                .transpose()?
                .filter(|&l| l != usize::MAX);
            let offset = offset
                .as_ref()
                .map(|o| number(&o.value, "OFFSET"))
                .transpose()?
                .unwrap_or(0);
            Ok((limit, offset))
        }
        Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
            Ok((Some(number(limit, "LIMIT")?), number(offset, "OFFSET")?))
        }
    }
}

/// `ORDER BY` items as (expression, descending).
pub fn order_by(q: &Query) -> Result<Vec<(&Expr, bool)>, SqlError> {
    match q.order_by.as_ref().map(|o| &o.kind) {
        None => Ok(vec![]),
        Some(OrderByKind::Expressions(items)) => Ok(items
            .iter()
            .map(|i| (&i.expr, matches!(i.options.sort, Some(OrderBySort::Desc))))
            .collect()),
        Some(OrderByKind::All(_)) => Err(SqlError::unsupported("ORDER BY ALL is not supported")),
    }
}
