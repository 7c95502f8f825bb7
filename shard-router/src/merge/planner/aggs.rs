//! Aggregate calls the proxy can finish from per-shard partials, and their partial calls.

use sqlparser::ast::{
    DuplicateTreatment, Expr, Function, FunctionArgumentClause, FunctionArguments, Ident,
    ObjectNamePart,
};

use super::exprs::{function_name, normalized};
use super::refuse;
use crate::merge::AggFunc;
use crate::RouteError;

/// A supported aggregate call split into what every shard computes.
#[derive(Debug, Clone)]
pub(super) struct AggCall {
    /// Which aggregate the proxy finishes.
    pub func: AggFunc,
    /// The name PostgreSQL gives its output column (the function's own name).
    pub name: String,
    /// The partial every shard computes (`sum` for avg, `bool_and` for every).
    pub partial: Function,
    /// avg's partial `count`.
    pub count: Option<Function>,
    /// Equal calls have equal keys (the same partial, up to PostgreSQL's folding).
    pub key: (AggFunc, Expr),
}

/// Reads an aggregate call (`f` is one `exprs::is_aggregate` accepts): supported ones become
/// an [`AggCall`]; the others are refused with 0A000 naming them.
pub(super) fn parse(f: &Function) -> Result<AggCall, RouteError> {
    let (schema, name) = function_name(&f.name);
    let func = match (schema.as_deref(), name.as_str()) {
        (None | Some("pg_catalog"), "count") => AggFunc::Count,
        (None | Some("pg_catalog"), "sum") => AggFunc::Sum,
        (None | Some("pg_catalog"), "min") => AggFunc::Min,
        (None | Some("pg_catalog"), "max") => AggFunc::Max,
        (None | Some("pg_catalog"), "avg") => AggFunc::Avg,
        (None | Some("pg_catalog"), "bool_and" | "every") => AggFunc::BoolAnd,
        (None | Some("pg_catalog"), "bool_or") => AggFunc::BoolOr,
        (Some(schema), _) if schema != "pg_catalog" => {
            return Err(refuse(format!(
                "aggregate {schema}.{name}() across shards is not supported"
            )))
        }
        _ => {
            return Err(refuse(format!(
                "aggregate {name}() across shards is not supported"
            )))
        }
    };
    if !f.within_group.is_empty() {
        return Err(refuse(format!(
            "{name}(...) WITHIN GROUP across shards is not supported"
        )));
    }
    let FunctionArguments::List(list) = &f.args else {
        return Err(refuse(format!(
            "this form of {name}() across shards is not supported"
        )));
    };
    if list
        .clauses
        .iter()
        .any(|c| matches!(c, FunctionArgumentClause::OrderBy(_)))
    {
        return Err(refuse(format!(
            "ORDER BY inside {name}(...) across shards is not supported"
        )));
    }
    if !list.clauses.is_empty()
        || f.null_treatment.is_some()
        || !matches!(f.parameters, FunctionArguments::None)
        || f.uses_odbc_syntax
    {
        return Err(refuse(format!(
            "this form of {name}(...) across shards is not supported"
        )));
    }
    let mut partial = f.clone();
    if list.duplicate_treatment == Some(DuplicateTreatment::Distinct) {
        match func {
            // Duplicates change neither the least nor the greatest value, nor any/all.
            AggFunc::Min | AggFunc::Max | AggFunc::BoolAnd | AggFunc::BoolOr => {
                if let FunctionArguments::List(l) = &mut partial.args {
                    l.duplicate_treatment = None;
                }
            }
            AggFunc::Count | AggFunc::Sum | AggFunc::Avg => {
                return Err(refuse(format!(
                    "{name}(DISTINCT ...) across shards is not supported"
                )))
            }
        }
    }
    let mut count = None;
    match (func, name.as_str()) {
        (AggFunc::BoolAnd, "every") => rename(&mut partial, "bool_and"),
        (AggFunc::Avg, _) => {
            let mut c = partial.clone();
            rename(&mut c, "count");
            count = Some(c);
            rename(&mut partial, "sum");
        }
        _ => {}
    }
    let key = (func, normalized(&Expr::Function(partial.clone())));
    Ok(AggCall {
        func,
        name,
        partial,
        count,
        key,
    })
}

/// Renames a call, keeping its schema.
fn rename(f: &mut Function, to: &str) {
    if let Some(last) = f.name.0.last_mut() {
        *last = ObjectNamePart::Identifier(Ident::new(to));
    }
}
