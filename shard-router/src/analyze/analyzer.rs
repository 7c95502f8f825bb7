//! The analysis state of one statement: sharded table occurrences and the key equalities that
//! join them (union-find), the tables seen, CTEs in scope, and FROM-clause scopes for resolving
//! column references.

use sqlparser::ast::{Expr, Query};

use super::names::{classify, TableClass, TableName};
use crate::plan::Keys;
use crate::{RouteError, Router};

/// Nesting depth of queries beyond which a statement is refused (the parser's own recursion
/// limit normally stops far earlier).
const MAX_DEPTH: usize = 200;

/// One reference to a sharded table in the statement (a self-join has two).
#[derive(Debug, Clone)]
pub(crate) struct Occ {
    /// Table name.
    pub table: String,
    /// Index of its shard map.
    pub map: usize,
    /// Its key column.
    pub key: String,
}

/// An output column of a relation; `occs` is non-empty when it is a shard key column (of those
/// occurrences).
#[derive(Debug, Clone)]
pub(crate) struct OutCol {
    /// Column name, when it has a usable one.
    pub name: Option<String>,
    /// The sharded occurrences whose key this column is.
    pub occs: Vec<usize>,
}

/// The result of analysing a query: where its rows come from and what restricts them.
#[derive(Debug, Clone)]
pub(crate) struct Rel {
    /// The sharded occurrences its rows come from (all equated; empty: no sharded data).
    pub anchors: Vec<usize>,
    /// Output columns, in order.
    pub cols: Vec<OutCol>,
    /// False when `*` made the column list unknown.
    pub cols_complete: bool,
    /// Keys its rows are restricted to.
    pub keys: Keys,
    /// Rows that do not come from sharded tables would be returned once per shard.
    pub repeats: bool,
    /// Why concatenating per-shard results would not give this relation (aggregates, LIMIT...).
    pub merge: Option<&'static str>,
    /// Each evaluation only sees rows of the keys an outer query equates with its own key.
    pub pinned: bool,
}

impl Rel {
    /// A relation with no sharded rows.
    pub(crate) fn plain(cols: Vec<OutCol>, cols_complete: bool) -> Rel {
        Rel {
            anchors: Vec::new(),
            cols,
            cols_complete,
            keys: Keys::Any,
            repeats: false,
            merge: None,
            pinned: false,
        }
    }

    /// True when some rows come from sharded tables.
    pub(crate) fn sharded(&self) -> bool {
        !self.anchors.is_empty()
    }
}

/// A FROM item as column references see it.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The name that qualifies its columns (alias, or the table name).
    pub name: String,
    /// Its known columns (for a sharded table: the key column).
    pub cols: Vec<OutCol>,
}

impl Source {
    /// The occurrences whose key column `column` is, if it is one.
    fn key(&self, column: &str) -> Option<&[usize]> {
        self.cols
            .iter()
            .find(|c| c.name.as_deref() == Some(column) && !c.occs.is_empty())
            .map(|c| c.occs.as_slice())
    }
}

/// The FROM items visible to an expression: this query's, then the enclosing queries'.
pub(crate) struct Scope<'p> {
    /// The enclosing query's scope (for correlated references).
    pub parent: Option<&'p Scope<'p>>,
    /// This query's FROM items.
    pub sources: Vec<Source>,
}

/// What a column reference means for routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ColRef {
    /// A shard key column of these occurrences, `depth` queries out (0: this query).
    Key {
        /// the occurrences
        occs: Vec<usize>,
        /// 0 for this query's FROM, 1 for the enclosing query's...
        depth: usize,
    },
    /// Anything else (or unknown).
    Other,
}

impl Scope<'_> {
    /// Resolves a column reference as PostgreSQL would, as far as we can tell without a catalog.
    /// An unqualified name is a key only if exactly one FROM item of this query has it as its
    /// key (another item with the same column would make PostgreSQL reject the query); it never
    /// resolves to an outer query, since this query's tables may have that column too.
    pub(crate) fn resolve(&self, expr: &Expr) -> ColRef {
        match expr {
            Expr::Nested(inner) => self.resolve(inner),
            Expr::Identifier(ident) => {
                let column = super::names::fold(ident);
                let mut found = self.sources.iter().filter_map(|s| s.key(&column));
                match (found.next(), found.next()) {
                    (Some(occs), None) => ColRef::Key {
                        occs: occs.to_vec(),
                        depth: 0,
                    },
                    _ => ColRef::Other,
                }
            }
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let (Some(column), Some(qualifier)) = (
                    parts.last(),
                    parts.len().checked_sub(2).and_then(|i| parts.get(i)),
                ) else {
                    return ColRef::Other;
                };
                let column = super::names::fold(column);
                let qualifier = super::names::fold(qualifier);
                let mut scope = Some(self);
                let mut depth = 0;
                while let Some(s) = scope {
                    if let Some(source) = s.sources.iter().find(|src| src.name == qualifier) {
                        return match source.key(&column) {
                            Some(occs) => ColRef::Key {
                                occs: occs.to_vec(),
                                depth,
                            },
                            None => ColRef::Other,
                        };
                    }
                    scope = s.parent;
                    depth += 1;
                }
                ColRef::Other
            }
            _ => ColRef::Other,
        }
    }

    /// A key column `column` among `sources` (for `JOIN ... USING`).
    pub(crate) fn key_among(sources: &[Source], column: &str) -> Option<Vec<usize>> {
        let mut found = sources.iter().filter_map(|s| s.key(column));
        match (found.next(), found.next()) {
            (Some(occs), None) => Some(occs.to_vec()),
            _ => None,
        }
    }
}

/// A CTE visible to the query being analysed.
pub(crate) struct CteDef<'q> {
    /// Its folded name.
    pub name: String,
    /// Its query.
    pub query: &'q Query,
    /// Column names from `name(a, b)`.
    pub columns: Vec<String>,
    /// Part of `WITH RECURSIVE`.
    pub recursive: bool,
    /// How often it was referenced.
    pub uses: usize,
    /// Being analysed now (a reference to it is a recursive self-reference).
    pub active: bool,
}

/// A sharded part of one query level that must be joined on keys with the others: a sharded
/// FROM item or a subquery over sharded tables.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// The occurrences its rows come from.
    pub anchors: Vec<usize>,
    /// The keys it is restricted to.
    pub keys: Keys,
    /// Index of its FROM item (None: a subquery in an expression).
    pub source: Option<usize>,
    /// A derived table or CTE (its keys restrict the query when it is not outer-joined).
    pub derived: bool,
}

/// Analysis state for one SQL statement.
pub(crate) struct Analyzer<'r, 'q> {
    /// The routing config.
    pub router: &'r Router,
    /// Sharded table occurrences.
    pub occs: Vec<Occ>,
    /// Union-find parents over `occs` (equal shard keys).
    parent: Vec<usize>,
    /// Relation names the analysis resolved (tables and CTEs), for the final cross-check.
    pub seen: Vec<String>,
    /// Sharded tables referenced.
    pub sharded: Vec<String>,
    /// Reference tables referenced.
    pub reference: Vec<String>,
    /// Tables that live only on the default shard (unlisted, catalogs).
    pub default_only: Vec<String>,
    /// CTEs in scope, innermost last.
    pub ctes: Vec<CteDef<'q>>,
    /// The statement may write: side-effect functions, locking clauses, data-modifying CTEs.
    pub writes: bool,
    /// `SELECT ... INTO` (creates a table).
    pub select_into: bool,
    /// Some construct held a query the analysis could not look into.
    pub opaque: bool,
    depth: usize,
}

impl<'r, 'q> Analyzer<'r, 'q> {
    /// Fresh state.
    pub(crate) fn new(router: &'r Router) -> Self {
        Analyzer {
            router,
            occs: Vec::new(),
            parent: Vec::new(),
            seen: Vec::new(),
            sharded: Vec::new(),
            reference: Vec::new(),
            default_only: Vec::new(),
            ctes: Vec::new(),
            writes: false,
            select_into: false,
            opaque: false,
            depth: 0,
        }
    }

    /// Enters one query level; errors when nested too deeply.
    pub(crate) fn enter(&mut self) -> Result<(), RouteError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(RouteError::new(
                "54001",
                "statement is too deeply nested for the router",
            ));
        }
        Ok(())
    }

    /// Leaves a query level.
    pub(crate) fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Records a table reference and classifies it.
    pub(crate) fn note_table(&mut self, table: &TableName) -> TableClass {
        let class = classify(self.router, table);
        self.seen.push(table.name.clone());
        let list = match class {
            TableClass::Sharded { .. } => &mut self.sharded,
            TableClass::Reference => &mut self.reference,
            TableClass::DefaultOnly => &mut self.default_only,
        };
        if !list.contains(&table.name) {
            list.push(table.name.clone());
        }
        class
    }

    /// A new occurrence of a sharded table.
    pub(crate) fn new_occ(&mut self, table: &str, map: usize, key: &str) -> usize {
        let id = self.occs.len();
        self.occs.push(Occ {
            table: table.to_owned(),
            map,
            key: key.to_owned(),
        });
        self.parent.push(id);
        id
    }

    /// The representative of an occurrence's class of equal keys.
    pub(crate) fn find(&mut self, mut x: usize) -> usize {
        while let Some(&p) = self.parent.get(x) {
            if p == x {
                break;
            }
            // Path halving keeps the chains short.
            let grand = self.parent.get(p).copied().unwrap_or(p);
            if let Some(slot) = self.parent.get_mut(x) {
                *slot = grand;
            }
            x = grand;
        }
        x
    }

    /// Records that two occurrences' keys are equal (they join on their shard keys).
    pub(crate) fn union(&mut self, a: usize, b: usize) -> Result<(), RouteError> {
        self.same_map(a, b)?;
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            if let Some(slot) = self.parent.get_mut(ra) {
                *slot = rb;
            }
        }
        Ok(())
    }

    /// Errors when two occurrences are on different shard maps.
    fn same_map(&self, a: usize, b: usize) -> Result<(), RouteError> {
        let (Some(x), Some(y)) = (self.occs.get(a), self.occs.get(b)) else {
            return Ok(());
        };
        if x.map == y.map {
            return Ok(());
        }
        let map_name = |i: usize| self.router.maps().get(i).map_or("?", |m| m.name());
        Err(RouteError::new(
            "0A000",
            format!(
                "{} (shard map {}) and {} (shard map {}) are on different shard maps, so their \
                 rows are not co-located: a statement cannot combine them",
                x.table,
                map_name(x.map),
                y.table,
                map_name(y.map)
            ),
        ))
    }

    /// Table name of an occurrence, for messages.
    pub(crate) fn table_of(&self, occ: usize) -> &str {
        self.occs.get(occ).map_or("?", |o| o.table.as_str())
    }

    /// "users.id" for an occurrence, for reasons.
    pub(crate) fn column_of(&self, occ: usize) -> String {
        self.occs
            .get(occ)
            .map_or_else(|| "?".to_owned(), |o| format!("{}.{}", o.table, o.key))
    }

    /// The sharded parts of one query level must all be on one map and joined on their keys.
    pub(crate) fn check_members(&mut self, members: &[Member]) -> Result<(), RouteError> {
        // One part alone joins nothing (a UNION ALL's sides need not be co-located).
        if members.len() < 2 {
            return Ok(());
        }
        let anchors: Vec<usize> = members
            .iter()
            .flat_map(|m| m.anchors.iter().copied())
            .collect();
        let Some(&first) = anchors.first() else {
            return Ok(());
        };
        for &a in &anchors {
            self.same_map(first, a)?;
        }
        let root = self.find(first);
        for &a in &anchors {
            if self.find(a) != root {
                return Err(RouteError::new(
                    "0A000",
                    format!(
                        "join of {} and {} is not on their shard keys: their rows may be on \
                         different shards (equate the key columns, e.g. {} = {})",
                        self.table_of(first),
                        self.table_of(a),
                        self.column_of(first),
                        self.column_of(a)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The CTE named `name` in scope, innermost first.
    pub(crate) fn find_cte(&self, name: &str) -> Option<usize> {
        self.ctes.iter().rposition(|c| c.name == name)
    }
}
