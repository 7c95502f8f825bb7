//! Merge plans: how the proxy turns the answers of several shards to one SELECT into exactly
//! the answer one PostgreSQL holding all the rows would give.
//!
//! A plan says what to send to every shard instead of the client's query (`shard_sql`: sort keys
//! the client did not select added as hidden columns, aggregates split into partials, LIMIT
//! widened to `limit + offset`) and what the proxy does with the shards' rows: a k-way merge
//! in `shard_order`, adjacent rows with equal group keys combined, HAVING, a final sort when the
//! final order is not the merge order, OFFSET/LIMIT, hidden columns stripped.
//!
//! The types here are plain data; `planner` builds them from SQL (pure, cached by exact text).

mod planner;

pub(crate) use planner::MergePlanCache;

/// A column of a shard's row. Rows of a query with `*` have a column count the planner cannot
/// know, so columns after the last `*` are counted from the end of the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    /// The i-th column (0-based) of the shard row.
    Start(usize),
    /// The i-th column from the end (0 = the last column) of the shard row.
    End(usize),
}

impl Col {
    /// The 0-based index in a row of `width` columns (None if out of range).
    pub fn index(self, width: usize) -> Option<usize> {
        match self {
            Col::Start(i) => (i < width).then_some(i),
            Col::End(i) => width.checked_sub(i + 1),
        }
    }
}

/// One ORDER BY key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    /// The sorted column (a shard column for `shard_order`, a final column for `final_order`).
    pub column: Col,
    /// DESC.
    pub descending: bool,
    /// NULLS FIRST (already defaulted as PostgreSQL does: true for DESC, false for ASC).
    pub nulls_first: bool,
}

/// A row count from LIMIT or OFFSET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// A constant (LIMIT ALL / LIMIT NULL are `None` at the plan level).
    Const(u64),
    /// The value of bind parameter `$n` (0-based index: `$1` is 0). NULL means no limit.
    Param(usize),
}

/// Aggregates the proxy can finish from per-shard partials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    /// `count(*)` / `count(x)`: partial counts (int8), summed.
    Count,
    /// `sum(x)`: partial sums, summed; the output type is the partial's type.
    Sum,
    /// `min(x)`.
    Min,
    /// `max(x)`.
    Max,
    /// `avg(x)`: a partial `sum(x)` and a partial `count(x)`; numeric for integer and numeric
    /// inputs (PostgreSQL's division scale), float8 for float inputs.
    Avg,
    /// `bool_and(x)` / `every(x)`.
    BoolAnd,
    /// `bool_or(x)`.
    BoolOr,
}

/// A column of the merged (final) row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalColumn {
    /// A shard column passed through (a group key, or any column of an ungrouped query).
    Shard(Col),
    /// An aggregate finished at the proxy from partial column `arg` (and, for avg, the partial
    /// count in `count`).
    Agg {
        /// Which aggregate.
        func: AggFunc,
        /// The partial's shard column.
        arg: Col,
        /// For avg: the partial count's shard column.
        count: Option<Col>,
    },
}

/// How rows are combined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// Rows pass through (no aggregation): the final row is the shard row without its last
    /// `hidden` columns. `distinct`: adjacent rows equal in every final column are one row
    /// (the shard query is `SELECT DISTINCT` and `shard_order` covers every final column).
    Rows {
        /// Hidden columns at the end of each shard row.
        hidden: usize,
        /// SELECT DISTINCT.
        distinct: bool,
    },
    /// Grouped or aggregated: adjacent shard rows (in `shard_order`) with equal `keys` are one
    /// group; `keys` empty means one group over all rows (which exists even with no rows, as
    /// in PostgreSQL: `SELECT count(*)` over nothing is one row `0`).
    Groups {
        /// Group key shard columns (never `Col::End`).
        keys: Vec<Col>,
        /// Every final column, the visible ones first.
        columns: Vec<FinalColumn>,
        /// How many of `columns` the client sees.
        visible: usize,
        /// True when the query has no GROUP BY (one group even over no rows).
        implicit: bool,
    },
}

/// A HAVING condition over final columns, evaluated after the merge with SQL three-valued logic.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `left op right`.
    Cmp {
        /// The comparison.
        op: CmpOp,
        /// Left operand.
        left: Operand,
        /// Right operand.
        right: Operand,
    },
    /// All true (NULL if none false and some NULL).
    And(Vec<Filter>),
    /// Any true.
    Or(Vec<Filter>),
    /// Negation (NOT NULL is NULL).
    Not(Box<Filter>),
    /// `operand IS [NOT] NULL`.
    IsNull {
        /// What is tested.
        operand: Operand,
        /// IS NOT NULL.
        negated: bool,
    },
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>` / `!=`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
}

/// A value in a HAVING condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A final column (index into the final row).
    Column(usize),
    /// A constant as written: a number (`42`, `-2.5`, `1e3`), a string, a boolean or NULL.
    Literal(Literal),
    /// Bind parameter `$n` (0-based).
    Param(usize),
}

/// A constant in a HAVING condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A numeric constant, as written (optionally signed).
    Number(String),
    /// A string constant (compared with the column's type).
    Text(String),
    /// TRUE / FALSE.
    Bool(bool),
    /// NULL.
    Null,
}

/// How to answer one multi-shard SELECT by merging.
#[derive(Debug, Clone, PartialEq)]
pub struct MergePlan {
    /// The SQL every shard runs instead of the client's text. Its parameters are the client's
    /// `shard_params` renumbered `$1..$k` (parameters only the proxy reads, e.g. in HAVING or
    /// an OFFSET without LIMIT, are not sent to the shards).
    pub shard_sql: String,
    /// For each parameter of `shard_sql`, the 0-based index of the client's parameter.
    pub shard_params: Vec<usize>,
    /// How rows combine.
    pub shape: Shape,
    /// The order in which every shard returns its rows (the shard query's ORDER BY, over shard
    /// columns): the k-way merge order. Empty: no order (rows are taken as they come).
    pub shard_order: Vec<SortKey>,
    /// The client's ORDER BY over final columns (`Col::Start` into the final row), applied by
    /// buffering and sorting at the proxy when `needs_sort`; otherwise the merge order already
    /// is the final order.
    pub final_order: Vec<SortKey>,
    /// Buffer the final rows and sort them by `final_order` (grouped queries ordered by an
    /// aggregate, for example).
    pub needs_sort: bool,
    /// HAVING, over final columns.
    pub having: Option<Filter>,
    /// LIMIT (None: no limit).
    pub limit: Option<Count>,
    /// OFFSET (None: 0).
    pub offset: Option<Count>,
}
