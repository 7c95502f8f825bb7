//! Queries: CTEs, set operations, SELECT lists, ORDER BY and LIMIT, analysed into a [`Rel`] —
//! where the rows come from, which keys restrict them, and whether concatenating the shards'
//! results is the right answer. FROM clauses are in `from`, WHERE and subqueries in `level`.

use std::mem;

use sqlparser::ast::{
    Distinct, Expr, GroupByExpr, LimitClause, NamedWindowExpr, OrderByKind, Query, Select,
    SelectItem, SelectItemQualifiedWildcardKind, SetExpr, SetOperator, SetQuantifier, Visit,
    Visitor,
};

use super::analyzer::{Analyzer, ColRef, CteDef, OutCol, Rel, Scope};
use super::exprs::ExprScan;
use super::level::Level;
use super::names::{fold, TableClass, TableName};
use super::predicate::local_key;
use crate::plan::Keys;
use crate::RouteError;

/// Why rows of reference tables or constants next to sharded rows need more than concatenation.
pub(crate) const REPEATED_ROWS: &str =
    "rows from reference tables or constants that every shard would return";

/// Whether a query's result is what the client sees, or feeds an enclosing query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The statement's result (per-shard results are concatenated or merged).
    Top,
    /// A derived table, CTE or subquery, computed on each shard from that shard's rows.
    Sub,
}

impl<'q> Analyzer<'_, 'q> {
    /// Analyses a query (with its CTEs, ORDER BY and LIMIT).
    pub(crate) fn query(
        &mut self,
        q: &'q Query,
        parent: Option<&Scope<'_>>,
        role: Role,
    ) -> Result<Rel, RouteError> {
        self.enter()?;
        let result = self.query_inner(q, parent, role);
        self.leave();
        result
    }

    fn query_inner(
        &mut self,
        q: &'q Query,
        parent: Option<&Scope<'_>>,
        role: Role,
    ) -> Result<Rel, RouteError> {
        let base = self.ctes.len();
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.ctes.push(CteDef {
                    name: fold(&cte.alias.name),
                    query: &cte.query,
                    columns: cte.alias.columns.iter().map(|c| fold(&c.name)).collect(),
                    recursive: with.recursive,
                    uses: 0,
                    active: false,
                });
            }
        }
        let mut result = self.set_expr(&q.body, parent, role);
        if result.is_ok() {
            // A CTE nobody references still runs when it modifies data.
            for i in base..self.ctes.len() {
                if self.ctes.get(i).is_some_and(|c| c.uses == 0) {
                    if let Err(e) = self.cte_rel(i) {
                        result = Err(e);
                        break;
                    }
                }
            }
        }
        self.ctes.truncate(base);
        let mut rel = result?;

        let mut scan = ExprScan::default();
        if let Some(order_by) = &q.order_by {
            if let OrderByKind::Expressions(items) = &order_by.kind {
                scan.exprs(items.iter().map(|o| &o.expr));
            }
        }
        match &q.limit_clause {
            Some(LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                scan.exprs(limit.iter());
                scan.exprs(offset.iter().map(|o| &o.value));
                scan.exprs(limit_by.iter());
            }
            Some(LimitClause::OffsetCommaLimit { offset, limit }) => scan.exprs([offset, limit]),
            None => {}
        }
        if let Some(fetch) = &q.fetch {
            scan.exprs(fetch.quantity.iter());
        }
        self.absorb(&scan);
        for sub in mem::take(&mut scan.subqueries) {
            let sub = self.query(sub, None, Role::Sub)?;
            if let Some(&occ) = sub.anchors.first() {
                return Err(RouteError::new(
                    "0A000",
                    format!(
                        "a subquery over sharded table {} in ORDER BY, LIMIT or OFFSET is not \
                         supported",
                        self.table_of(occ)
                    ),
                ));
            }
        }
        if !q.locks.is_empty() {
            self.writes = true;
        }
        if q.limit_clause.is_some() || q.fetch.is_some() {
            rel.merge = rel.merge.or(Some("LIMIT/OFFSET"));
        }
        if role == Role::Top && q.order_by.is_some() {
            rel.merge = rel.merge.or(Some("ORDER BY"));
        }
        // Repeated rows only matter in the result itself: a subquery's duplicates are filtered
        // by the key joins or IN tests that use it.
        if role == Role::Top && rel.repeats {
            rel.merge = rel.merge.or(Some(REPEATED_ROWS));
        }
        if role == Role::Sub && rel.sharded() && !rel.pinned && !rel.keys.single_shard() {
            if let (Some(why), Some(&occ)) = (rel.merge, rel.anchors.first()) {
                return Err(RouteError::new(
                    "0A000",
                    format!(
                        "a subquery with {why} over sharded table {} cannot be computed shard by \
                         shard: fix its shard key (or correlate it on the key) or move it to the \
                         outer query",
                        self.table_of(occ)
                    ),
                ));
            }
        }
        Ok(rel)
    }

    /// Analyses the CTE at `index` for one reference to it (each reference gets its own
    /// occurrences, so a CTE joined with itself is checked like a self-join).
    pub(crate) fn cte_rel(&mut self, index: usize) -> Result<Rel, RouteError> {
        let Some(cte) = self.ctes.get_mut(index) else {
            return Ok(Rel::plain(Vec::new(), false));
        };
        cte.uses += 1;
        if cte.recursive && !cte.active {
            let query = cte.query;
            let mut names = RelationNames::default();
            let _ = query.visit(&mut names);
            if let Some(name) = names.0.iter().find(|n| {
                matches!(
                    super::names::classify(self.router, n),
                    TableClass::Sharded { .. }
                )
            }) {
                return Err(RouteError::new(
                    "0A000",
                    format!(
                        "WITH RECURSIVE over sharded table {} is not supported",
                        name.name
                    ),
                ));
            }
        }
        let Some(cte) = self.ctes.get_mut(index) else {
            return Ok(Rel::plain(Vec::new(), false));
        };
        if cte.active {
            // A recursive self-reference: the CTE's own analysis below covers its tables.
            return Ok(Rel::plain(Vec::new(), false));
        }
        cte.active = true;
        let (query, recursive, columns) = (cte.query, cte.recursive, cte.columns.clone());
        // The CTE body sees the CTEs defined before it (itself too under WITH RECURSIVE), not
        // those of the referencing query: `WITH users AS (SELECT * FROM users)` reads the table.
        let later = self
            .ctes
            .split_off(if recursive { index + 1 } else { index });
        let rel = self.query(query, None, Role::Sub);
        self.ctes.extend(later);
        if let Some(cte) = self.ctes.get_mut(index) {
            cte.active = false;
        }
        let mut rel = rel?;
        rename(&mut rel, &columns);
        Ok(rel)
    }

    fn set_expr(
        &mut self,
        body: &'q SetExpr,
        parent: Option<&Scope<'_>>,
        role: Role,
    ) -> Result<Rel, RouteError> {
        match body {
            SetExpr::Select(select) => self.select(select, parent),
            SetExpr::Query(q) => self.query(q, parent, role),
            SetExpr::SetOperation {
                op,
                set_quantifier,
                left,
                right,
            } => {
                let l = self.set_expr(left, parent, role)?;
                let r = self.set_expr(right, parent, role)?;
                Ok(combine_set(op, set_quantifier, l, r, |o| self.map_of(o)))
            }
            SetExpr::Values(values) => {
                let mut scan = ExprScan::default();
                scan.exprs(values.rows.iter().flatten());
                self.absorb(&scan);
                for sub in scan.subqueries {
                    let sub = self.query(sub, parent, Role::Sub)?;
                    if let Some(&occ) = sub.anchors.first() {
                        return Err(RouteError::new(
                            "0A000",
                            format!(
                                "a VALUES list with a subquery over sharded table {} is not \
                                 supported",
                                self.table_of(occ)
                            ),
                        ));
                    }
                }
                let width = values.rows.first().map_or(0, Vec::len);
                let cols = (1..=width)
                    .map(|i| OutCol {
                        name: Some(format!("column{i}")),
                        occs: Vec::new(),
                    })
                    .collect();
                Ok(Rel::plain(cols, true))
            }
            SetExpr::Table(table) => {
                let Some(name) = &table.table_name else {
                    return Ok(Rel::plain(Vec::new(), false));
                };
                let name = TableName {
                    name: name.to_ascii_lowercase(),
                    schema: table.schema_name.as_ref().map(|s| s.to_ascii_lowercase()),
                };
                let mut scope = Scope {
                    parent: None,
                    sources: Vec::new(),
                };
                let mut level = Level::new();
                self.base_table(&name, None, &mut scope, &mut level);
                let finished = self.finish(level)?;
                let cols = scope.sources.into_iter().flat_map(|s| s.cols).collect();
                Ok(Rel {
                    anchors: finished.anchors,
                    cols,
                    cols_complete: false,
                    keys: finished.keys,
                    repeats: finished.repeats,
                    merge: None,
                    pinned: false,
                })
            }
            SetExpr::Insert(stmt)
            | SetExpr::Update(stmt)
            | SetExpr::Delete(stmt)
            | SetExpr::Merge(stmt) => {
                self.writes = true;
                let mut names = RelationNames::default();
                let _ = stmt.visit(&mut names);
                for name in names.0 {
                    if let TableClass::Sharded { .. } | TableClass::Reference =
                        self.note_table(&name)
                    {
                        return Err(RouteError::new(
                            "0A000",
                            format!(
                                "a data-modifying statement in WITH on {} is not supported",
                                super::names::describe_table(self.router, &name.name)
                            ),
                        ));
                    }
                }
                Ok(Rel::plain(Vec::new(), false))
            }
        }
    }

    fn select(&mut self, s: &'q Select, parent: Option<&Scope<'_>>) -> Result<Rel, RouteError> {
        if s.into.is_some() {
            self.select_into = true;
        }
        let mut scope = Scope {
            parent,
            sources: Vec::new(),
        };
        let mut level = Level::new();
        for item in &s.from {
            self.join_tree(item, &mut scope, &mut level)?;
        }
        if let Some(selection) = &s.selection {
            self.where_clause(selection, &scope, &mut level)?;
        }

        let mut scan = ExprScan::default();
        for item in &s.projection {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                scan.expr(e);
            }
        }
        scan.exprs(s.having.iter());
        scan.exprs(s.qualify.iter());
        let (group_exprs, group_modifiers) = match &s.group_by {
            GroupByExpr::Expressions(exprs, modifiers) => (exprs.as_slice(), !modifiers.is_empty()),
            GroupByExpr::All(_) => (&[][..], true),
        };
        scan.exprs(group_exprs);
        if let Some(Distinct::On(exprs)) = &s.distinct {
            scan.exprs(exprs);
        }
        for window in &s.named_window {
            if let NamedWindowExpr::WindowSpec(spec) = &window.1 {
                scan.exprs(spec.partition_by.iter());
                scan.exprs(spec.order_by.iter().map(|o| &o.expr));
            }
        }
        self.absorb(&scan);
        for sub in mem::take(&mut scan.subqueries) {
            self.subquery_member(sub, &scope, &mut level)?;
        }

        let (cols, cols_complete) = output_columns(s, &scope);
        let grouped_by_key = !group_modifiers
            && group_exprs.iter().any(|e| local_key(&scope, e).is_some())
            && !group_exprs
                .iter()
                .any(|e| matches!(e, Expr::Rollup(_) | Expr::Cube(_) | Expr::GroupingSets(_)));
        let grouping =
            !group_exprs.is_empty() || group_modifiers || s.having.is_some() || scan.aggregate;
        let mut merge = None;
        if grouping && !grouped_by_key {
            merge = Some("aggregates or GROUP BY");
        }
        match &s.distinct {
            Some(Distinct::Distinct) if !cols.iter().any(|c| !c.occs.is_empty()) => {
                merge = merge.or(Some("DISTINCT"));
            }
            Some(Distinct::On(exprs)) if !exprs.iter().any(|e| local_key(&scope, e).is_some()) => {
                merge = merge.or(Some("DISTINCT ON"));
            }
            _ => {}
        }
        if scan.window {
            merge = merge.or(Some("window functions"));
        }
        let finished = self.finish(level)?;
        Ok(Rel {
            anchors: finished.anchors,
            cols,
            cols_complete,
            keys: finished.keys,
            repeats: finished.repeats,
            merge,
            pinned: finished.pinned,
        })
    }
}

/// The output columns of a SELECT and whether the list is complete (no `*`).
fn output_columns(s: &Select, scope: &Scope<'_>) -> (Vec<OutCol>, bool) {
    let key_occs = |e: &Expr| match scope.resolve(e) {
        ColRef::Key { occs, depth: 0 } => occs,
        _ => Vec::new(),
    };
    let mut cols = Vec::with_capacity(s.projection.len());
    let mut complete = true;
    for item in &s.projection {
        match item {
            SelectItem::UnnamedExpr(e) => cols.push(OutCol {
                name: match e {
                    Expr::Identifier(i) => Some(fold(i)),
                    Expr::CompoundIdentifier(parts) => parts.last().map(fold),
                    _ => None,
                },
                occs: key_occs(e),
            }),
            SelectItem::ExprWithAlias { expr, alias } => cols.push(OutCol {
                name: Some(fold(alias)),
                occs: key_occs(expr),
            }),
            SelectItem::Wildcard(_) => {
                complete = false;
                for source in &scope.sources {
                    cols.extend(source.cols.iter().cloned());
                }
            }
            SelectItem::QualifiedWildcard(kind, _) => {
                complete = false;
                if let SelectItemQualifiedWildcardKind::ObjectName(name) = kind {
                    let qualifier = name.0.last().and_then(|p| p.as_ident()).map(fold);
                    if let Some(source) = scope
                        .sources
                        .iter()
                        .find(|s| Some(&s.name) == qualifier.as_ref())
                    {
                        cols.extend(source.cols.iter().cloned());
                    }
                }
            }
        }
    }
    (cols, complete)
}

/// A set operation's relation from its two sides.
fn combine_set(
    op: &SetOperator,
    quantifier: &SetQuantifier,
    l: Rel,
    r: Rel,
    map_of: impl Fn(usize) -> usize,
) -> Rel {
    let (ls, rs) = (l.sharded(), r.sharded());
    let complete = l.cols_complete && r.cols_complete && l.cols.len() == r.cols.len();
    let cols: Vec<OutCol> = if complete {
        l.cols
            .iter()
            .zip(&r.cols)
            .map(|(a, b)| {
                // A key column only if it is one in every sharded side (constant rows from an
                // unsharded side match only on the shard their key belongs to).
                // ... and only if both sides place it by the same map.
                let same_map = |x: &[usize], y: &[usize]| {
                    let mut maps = x.iter().chain(y).map(|&o| map_of(o));
                    let first = maps.next();
                    maps.all(|m| Some(m) == first)
                };
                let occs = match (ls, rs) {
                    (true, true)
                        if !a.occs.is_empty()
                            && !b.occs.is_empty()
                            && same_map(&a.occs, &b.occs) =>
                    {
                        a.occs.iter().chain(&b.occs).copied().collect()
                    }
                    (true, false) => a.occs.clone(),
                    (false, true) => b.occs.clone(),
                    _ => Vec::new(),
                };
                OutCol {
                    name: a.name.clone(),
                    occs,
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let keys = match (ls, rs) {
        (true, true) => l.keys.or(r.keys),
        (true, false) => l.keys,
        (false, true) => r.keys,
        (false, false) => Keys::Any,
    };
    let union_all = matches!(op, SetOperator::Union) && matches!(quantifier, SetQuantifier::All);
    let key_col = cols.iter().any(|c| !c.occs.is_empty());
    let mut merge = l.merge.or(r.merge);
    if !union_all && !key_col {
        merge = merge.or(Some("UNION/INTERSECT/EXCEPT"));
    }
    let repeats = l.repeats || r.repeats || (ls != rs);
    Rel {
        pinned: (!ls || l.pinned) && (!rs || r.pinned),
        anchors: l.anchors.into_iter().chain(r.anchors).collect(),
        cols,
        cols_complete: complete,
        keys,
        repeats,
        merge,
    }
}

/// Applies `name(a, b, ...)` column names to a relation's columns by position.
pub(crate) fn rename(rel: &mut Rel, names: &[String]) {
    if names.is_empty() {
        return;
    }
    if !rel.cols_complete {
        // Positions are unknown: the key column may have been renamed.
        rel.cols.clear();
        return;
    }
    for (col, name) in rel.cols.iter_mut().zip(names) {
        col.name = Some(name.clone());
    }
}

/// Every relation name a statement mentions (sqlparser's own notion of a relation).
#[derive(Default)]
pub(crate) struct RelationNames(pub Vec<TableName>);

impl Visitor for RelationNames {
    type Break = ();

    fn pre_visit_relation(
        &mut self,
        relation: &sqlparser::ast::ObjectName,
    ) -> std::ops::ControlFlow<()> {
        if let Some(name) = TableName::from_object(relation) {
            self.0.push(name);
        }
        std::ops::ControlFlow::Continue(())
    }
}
