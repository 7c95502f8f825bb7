//! One query level (a SELECT, or the FROM/WHERE of an UPDATE or DELETE): its sharded parts,
//! the keys that restrict it, and the check that its sharded parts are joined on their keys.

use std::mem;

use sqlparser::ast::{Expr, Query};

use super::analyzer::{Analyzer, ColRef, Member, Rel, Scope};
use super::exprs::ExprScan;
use super::predicate::{conjuncts, in_subquery};
use super::query::Role;
use crate::plan::Keys;
use crate::RouteError;

/// What one query level has collected so far.
pub(crate) struct Level {
    /// Its sharded parts.
    pub members: Vec<Member>,
    /// Keys its rows are restricted to.
    pub keys: Keys,
    /// Per FROM item: on the nullable side of an outer join.
    pub nullable: Vec<bool>,
    /// Rows that do not come from sharded tables would repeat per shard.
    pub repeats: bool,
    /// A key of this level is equated with an enclosing query's key.
    pub correlated: bool,
    /// Keys from inner-join ON clauses, with the FROM items they join: they restrict the level
    /// only if no later outer join makes those items nullable.
    pub join_keys: Vec<(Keys, std::ops::Range<usize>)>,
}

impl Level {
    /// An empty level.
    pub(crate) fn new() -> Level {
        Level {
            members: Vec::new(),
            keys: Keys::Any,
            nullable: Vec::new(),
            repeats: false,
            correlated: false,
            join_keys: Vec::new(),
        }
    }

    /// Narrows the level's keys.
    pub(crate) fn and_keys(&mut self, keys: Keys) {
        self.keys = mem::replace(&mut self.keys, Keys::Any).and(keys);
    }

    /// True when a FROM item in `range` is sharded.
    pub(crate) fn sharded_in(&self, range: std::ops::Range<usize>) -> bool {
        self.members
            .iter()
            .any(|m| m.source.is_some_and(|s| range.contains(&s)))
    }

    /// Marks FROM items as the nullable side of an outer join.
    pub(crate) fn mark_nullable(&mut self, range: std::ops::Range<usize>) {
        for i in range {
            if let Some(n) = self.nullable.get_mut(i) {
                *n = true;
            }
        }
    }
}

/// What a finished level contributes to its relation.
pub(crate) struct Finished {
    /// The sharded occurrences its rows come from.
    pub anchors: Vec<usize>,
    /// Keys its rows are restricted to.
    pub keys: Keys,
    /// Rows not from sharded tables would repeat per shard.
    pub repeats: bool,
    /// Correlated on its key with an enclosing query.
    pub pinned: bool,
}

impl<'q> Analyzer<'_, 'q> {
    /// Checks a finished level (one map, joined on keys) and sums it up.
    pub(crate) fn finish(&mut self, level: Level) -> Result<Finished, RouteError> {
        self.check_members(&level.members)?;
        let from_sharded = level.members.iter().any(|m| m.source.is_some());
        let mut keys = level.keys;
        for (join_keys, range) in level.join_keys {
            let kept = range
                .clone()
                .all(|i| !level.nullable.get(i).copied().unwrap_or(true));
            if kept {
                keys = keys.and(join_keys);
            }
        }
        for m in &level.members {
            let outer_joined = m
                .source
                .is_none_or(|i| level.nullable.get(i).copied().unwrap_or(true));
            if m.derived && !outer_joined {
                keys = keys.and(m.keys.clone());
            }
        }
        let mut repeats = level.repeats;
        if !from_sharded && !level.members.is_empty() {
            // Sharded data only in subqueries: each shard answers from its own rows, which is
            // right only when the statement ends up on one shard.
            repeats = true;
            if let [only] = level.members.as_slice() {
                keys = keys.and(only.keys.clone());
            }
        }
        Ok(Finished {
            anchors: level
                .members
                .iter()
                .flat_map(|m| m.anchors.iter().copied())
                .collect(),
            keys,
            repeats,
            pinned: level.correlated,
        })
    }

    /// WHERE: key equalities, key restrictions, `key IN (subquery)` links and subqueries.
    pub(crate) fn where_clause(
        &mut self,
        selection: &'q Expr,
        scope: &Scope<'_>,
        level: &mut Level,
    ) -> Result<(), RouteError> {
        for c in conjuncts(selection) {
            if let Some((lhs, sub, negated)) = in_subquery(c) {
                self.expr_members(lhs, scope, level)?;
                let rel = self.subquery_member(sub, scope, level)?;
                let linked = match (scope.resolve(lhs), rel.cols.first()) {
                    (ColRef::Key { occs, depth: 0 }, Some(col))
                        if rel.cols_complete && !col.occs.is_empty() =>
                    {
                        if let Some(&first) = occs.first() {
                            for &x in occs.iter().chain(col.occs.iter()) {
                                self.union(first, x)?;
                            }
                        }
                        true
                    }
                    _ => false,
                };
                if linked && !negated {
                    level.and_keys(rel.keys);
                }
            } else {
                level.correlated |= self.equality(c, scope)?;
                self.expr_members(c, scope, level)?;
            }
        }
        let keys = self.keys_of(selection, scope)?;
        level.and_keys(keys);
        Ok(())
    }

    /// The subqueries inside an expression become sharded parts of this level.
    pub(crate) fn expr_members(
        &mut self,
        expr: &'q Expr,
        scope: &Scope<'_>,
        level: &mut Level,
    ) -> Result<(), RouteError> {
        let mut scan = ExprScan::default();
        scan.expr(expr);
        self.absorb(&scan);
        for sub in scan.subqueries {
            self.subquery_member(sub, scope, level)?;
        }
        Ok(())
    }

    /// Analyses a subquery of an expression; a sharded one becomes a part of this level.
    pub(crate) fn subquery_member(
        &mut self,
        sub: &'q Query,
        scope: &Scope<'_>,
        level: &mut Level,
    ) -> Result<Rel, RouteError> {
        let rel = self.query(sub, Some(scope), Role::Sub)?;
        if rel.sharded() {
            level.members.push(Member {
                anchors: rel.anchors.clone(),
                keys: rel.keys.clone(),
                source: None,
                derived: false,
            });
        }
        Ok(rel)
    }

    /// Takes note of what an expression walk found.
    pub(crate) fn absorb(&mut self, scan: &ExprScan<'_>) {
        self.writes |= scan.writes;
        self.opaque |= scan.opaque_query;
    }
}
