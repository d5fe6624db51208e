//! Rewrites a PostgreSQL catalog query into SQL the catalog's SQLite runs: casts to the types
//! SQLite has (or to `regclass()`/`regtype()` lookups), regular-expression operators to
//! `pg_regex()`, arrays to JSON (`= ANY(…)` reads `json_each`), schema-qualified functions to
//! plain ones, and PostgreSQL-only aggregates to SQLite's.

use super::ast::{self, object_parts, Literal};
use super::error::{state, SqlError};
use sqlparser::ast::{
    BinaryOperator, CastKind, DataType, Expr, FunctionArgumentList, FunctionArguments, Ident, ObjectName,
    ObjectNamePart, Statement, TableAlias, TableFactor, Value, ValueWithSpan, VisitMut, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use std::ops::ControlFlow;

pub fn for_sqlite(statement: &mut Statement) -> Result<String, SqlError> {
    if let ControlFlow::Break(e) = statement.visit(&mut ForSqlite) {
        return Err(e);
    }
    Ok(statement.to_string())
}

struct ForSqlite;

impl VisitorMut for ForSqlite {
    type Break = SqlError;

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<SqlError> {
        match rewrite(expr) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }

    /// Set-returning functions in FROM (`generate_series`, `unnest` over catalog arrays, which
    /// the virtual tables leave empty) become an empty relation of the same name.
    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<SqlError> {
        let name = match factor {
            TableFactor::Table {
                name,
                alias,
                args: Some(_),
                ..
            } => alias
                .as_ref()
                .map(|a| a.name.value.clone())
                .unwrap_or_else(|| object_parts(name).pop().unwrap_or_default()),
            TableFactor::UNNEST { alias, .. } => alias.as_ref().map_or("unnest".into(), |a| a.name.value.clone()),
            _ => return ControlFlow::Continue(()),
        };
        let subquery = match Parser::new(&PostgreSqlDialect {})
            .try_with_sql(&format!("SELECT NULL AS \"{name}\" WHERE 0 = 1"))
            .and_then(|mut p| p.parse_query())
        {
            Ok(q) => q,
            Err(e) => return ControlFlow::Break(SqlError::new(state::INTERNAL, e.to_string())),
        };
        *factor = TableFactor::Derived {
            lateral: false,
            subquery,
            alias: Some(TableAlias {
                explicit: true,
                name: Ident::with_quote('"', name),
                columns: vec![],
                at: None,
            }),
            sample: None,
        };
        ControlFlow::Continue(())
    }
}

fn parse(sql: &str) -> Result<Expr, SqlError> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::new(state::INTERNAL, format!("rewriting a catalog query: {e}")))
}

fn string(s: &str) -> Expr {
    Expr::Value(ValueWithSpan::from(Value::SingleQuotedString(s.to_string())))
}

fn cast(expr: Expr, data_type: DataType) -> Expr {
    Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(expr),
        data_type,
        format: None,
    }
}

fn call(name: &str, args: &[&Expr]) -> Result<Expr, SqlError> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    parse(&format!("{name}({})", args.join(", ")))
}

fn rewrite(expr: &mut Expr) -> Result<(), SqlError> {
    let replacement = match expr {
        Expr::Cast {
            expr: inner, data_type, ..
        } => {
            let name = data_type.to_string().to_lowercase();
            let name = name.trim_start_matches("pg_catalog.").trim_matches('"');
            let literal = matches!(ast::literal(inner), Some(Literal::Text(_)));
            match name {
                "regclass" if literal => call("regclass", &[inner])?,
                "regtype" if literal => call("regtype", &[inner])?,
                "text" | "varchar" | "name" | "char" | "bpchar" | "character varying" | "character" => {
                    cast((**inner).clone(), DataType::Text)
                }
                "int2" | "int4" | "int8" | "integer" | "int" | "bigint" | "smallint" | "oid" => {
                    cast((**inner).clone(), DataType::Integer(None))
                }
                "float4" | "float8" | "real" | "double precision" | "numeric" | "decimal" => {
                    cast((**inner).clone(), DataType::Real)
                }
                _ => (**inner).clone(),
            }
        }
        Expr::Collate { expr: inner, .. } => (**inner).clone(),
        // Array elements (`prattrs[s]`): the catalog's arrays are empty.
        Expr::CompoundFieldAccess { .. } => Expr::Value(ValueWithSpan::from(Value::Null)),
        Expr::TypedString(t) => match ast::literal(&Expr::Value(t.value.clone())) {
            Some(Literal::Text(s)) => string(&s),
            _ => return Ok(()),
        },
        Expr::Value(v) => match &v.value {
            Value::EscapedStringLiteral(s) | Value::UnicodeStringLiteral(s) => string(s),
            Value::DollarQuotedString(s) => string(&s.value),
            _ => return Ok(()),
        },
        Expr::BinaryOp { left, op, right } => {
            let (negated, insensitive) = match op {
                BinaryOperator::PGRegexMatch => (false, false),
                BinaryOperator::PGRegexIMatch => (false, true),
                BinaryOperator::PGRegexNotMatch => (true, false),
                BinaryOperator::PGRegexNotIMatch => (true, true),
                BinaryOperator::PGCustomBinaryOperator(parts) => match parts.last().map(String::as_str) {
                    Some("~") => (false, false),
                    Some("~*") => (false, true),
                    Some("!~") => (true, false),
                    Some("!~*") => (true, true),
                    _ => return Err(SqlError::unsupported(format!("the operator {op} is not supported"))),
                },
                _ => return Ok(()),
            };
            let flag = Expr::Value(ValueWithSpan::from(Value::Number(
                (insensitive as u8).to_string(),
                false,
            )));
            let test = call("pg_regex", &[left, right, &flag])?;
            if negated {
                parse(&format!("NOT {test}"))?
            } else {
                test
            }
        }
        // PostgreSQL's LIKE escapes with a backslash unless told otherwise; SQLite's does not.
        Expr::Like { escape_char, .. } if escape_char.is_none() => {
            *escape_char = Some(Box::new(string("\\")));
            return Ok(());
        }
        Expr::ILike {
            negated,
            expr: inner,
            pattern,
            escape_char,
            ..
        } => parse(&format!(
            "lower({inner}) {}LIKE lower({pattern}) ESCAPE {}",
            if *negated { "NOT " } else { "" },
            escape_char.as_ref().map_or("'\\'".to_string(), |e| e.to_string())
        ))?,
        Expr::AnyOp {
            left,
            compare_op: BinaryOperator::Eq,
            right,
            ..
        } => parse(&format!("{left} IN (SELECT value FROM json_each({right}))"))?,
        Expr::AllOp {
            left,
            compare_op: BinaryOperator::NotEq,
            right,
        } => parse(&format!("{left} NOT IN (SELECT value FROM json_each({right}))"))?,
        Expr::Array(a) => {
            let items: Vec<&Expr> = a.elem.iter().collect();
            call("json_array", &items)?
        }
        Expr::Identifier(i) if i.quote_style.is_none() && is_session_function(&i.value) => {
            call(&i.value.to_lowercase(), &[])?
        }
        Expr::Function(f) => {
            let parts = object_parts(&f.name);
            let name = parts.last().cloned().unwrap_or_default();
            let renamed = match name.as_str() {
                "array_agg" => "json_group_array",
                "json_build_object" | "jsonb_build_object" => "json_object",
                "string_agg" => "group_concat",
                "array" => {
                    *expr = Expr::Value(ValueWithSpan::from(Value::Null));
                    return Ok(());
                }
                n => n,
            };
            f.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new(renamed))]);
            if matches!(f.args, FunctionArguments::None) && is_session_function(renamed) {
                f.args = FunctionArguments::List(FunctionArgumentList {
                    duplicate_treatment: None,
                    args: vec![],
                    clauses: vec![],
                });
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    *expr = replacement;
    Ok(())
}

/// Functions PostgreSQL calls without parentheses that SQLite does not know.
fn is_session_function(name: &str) -> bool {
    matches!(
        name.to_lowercase().as_str(),
        "current_user" | "session_user" | "user" | "current_role" | "current_catalog" | "current_schema"
    )
}
