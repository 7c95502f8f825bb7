//! Odd inputs: the planner answers (a plan or an error) and never panics.

use proptest::prelude::*;

use super::super::plan;
use crate::merge::{Col, MergePlan, Shape};

/// Every column a plan names exists in a shard row of the width the plan implies.
fn consistent(p: &MergePlan) {
    if let Shape::Groups {
        keys,
        columns,
        visible,
        ..
    } = &p.shape
    {
        assert!(*visible <= columns.len());
        assert!(keys.iter().all(|k| matches!(k, Col::Start(_))));
        for k in &p.final_order {
            assert!(matches!(k.column, Col::Start(i) if i < columns.len()));
        }
    }
}

const PIECES: &[&str] = &[
    "SELECT",
    "DISTINCT",
    "a",
    "b AS x",
    "*",
    "t.*",
    "count(*)",
    "sum(x)",
    "avg(DISTINCT x)",
    "every(f)",
    "min(x) FILTER (WHERE x > 1)",
    ",",
    "FROM t",
    "WHERE a = $1",
    "GROUP BY",
    "1",
    "2",
    "x",
    "HAVING",
    "count(*) > 1",
    "AND",
    "OR",
    "NOT",
    "ORDER BY",
    "DESC",
    "NULLS FIRST",
    "LIMIT",
    "OFFSET",
    "$2",
    "-1",
    "ALL",
    "NULL",
    "(",
    ")",
    "UNION",
    "FETCH FIRST",
    "ROWS ONLY",
    "OVER ()",
    "BETWEEN",
    "IS NULL",
    "'s'",
    "::int",
    "WITH w AS (SELECT 1)",
    ";",
    "FOR UPDATE",
    "\"Q\"",
    "0",
    "99999999999999999999",
    "1e3",
    "USING",
    "<",
    "COLLATE",
];

proptest! {
    #[test]
    fn token_soup_never_panics(picks in proptest::collection::vec(0..PIECES.len(), 0..24)) {
        let sql: Vec<&str> = picks.iter().filter_map(|&i| PIECES.get(i).copied()).collect();
        let sql = sql.join(" ");
        for local in [false, true] {
            if let Ok(p) = plan(&sql, local) {
                consistent(&p);
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(sql in "\\PC{0,80}") {
        let _ = plan(&sql, false);
        let _ = plan(&sql, true);
    }

    #[test]
    fn grouped_queries_plan(
        items in proptest::collection::vec(0..6usize, 1..5),
        order in proptest::collection::vec(0..7usize, 0..3),
        limit in proptest::option::of(0..100u64),
    ) {
        const ITEMS: &[&str] = &["a", "count(*)", "sum(x)", "avg(x) AS m", "max(b)", "b"];
        const ORDER: &[&str] = &["1", "a", "count(*) DESC", "m", "b NULLS FIRST", "min(x)", "a + 1"];
        let list: Vec<&str> = items.iter().filter_map(|&i| ITEMS.get(i).copied()).collect();
        let mut sql = format!("SELECT {} FROM t GROUP BY a, b", list.join(", "));
        let keys: Vec<&str> = order.iter().filter_map(|&i| ORDER.get(i).copied()).collect();
        if !keys.is_empty() {
            sql.push_str(&format!(" ORDER BY {}", keys.join(", ")));
        }
        if let Some(l) = limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        match plan(&sql, false) {
            Ok(p) => consistent(&p),
            // `ORDER BY m` without the `m` alias is a hidden per-group expression, not an error.
            Err(e) => prop_assert!(false, "{sql}: {e:?}"),
        }
    }
}

/// Plans `sql` on a thread with a 2 MiB stack (tokio's default for worker threads).
fn plan_on_small_stack(sql: String) -> Result<MergePlan, crate::RouteError> {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || plan(&sql, false))
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn long_and_deep_inputs_are_bounded() {
    let chain = |op: &str, n: usize| (0..n).map(|i| format!("a{i}")).collect::<Vec<_>>().join(op);
    // The most the caller's stack plans.
    let sum = chain(" + ", 120);
    let p = plan_on_small_stack(format!(
        "SELECT {}{sum}{} AS s, count(*) FROM t GROUP BY 1 ORDER BY {sum}",
        "(".repeat(60),
        ")".repeat(60)
    ));
    assert!(p.is_ok(), "{p:?}");
    // Up to the analyzer's operator bound, inside the deepest parentheses the parser takes.
    let open = "(".repeat(50);
    let close = ")".repeat(50);
    let sum = chain(" + ", 990);
    let p = plan_on_small_stack(format!(
        "SELECT {open}{sum}{close} AS s, count(*) FROM t GROUP BY 1"
    ));
    assert!(p.is_ok(), "{p:?}");
    let sum = chain(" + ", 450);
    let p = plan_on_small_stack(format!(
        "SELECT a FROM t ORDER BY {open}{sum}{close}, {sum} DESC"
    ));
    assert!(p.is_ok(), "{p:?}");
    let p = plan_on_small_stack(format!(
        "SELECT count(*) FROM t GROUP BY a HAVING {}",
        chain(" = 1 OR ", 450)
    ));
    assert!(p.is_ok(), "{p:?}");
    // Over it: refused, not walked.
    let long = chain(" OR ", 5000);
    let e = plan_on_small_stack(format!("SELECT a FROM t WHERE {long} ORDER BY a")).unwrap_err();
    assert_eq!(e.code, "0A000");
    assert!(e.message.contains("too long"), "{}", e.message);
    // Deep parentheses stop at the parser's recursion limit.
    let deep = format!(
        "SELECT {}1{} FROM t ORDER BY 1",
        "(".repeat(500),
        ")".repeat(500)
    );
    assert_eq!(plan_on_small_stack(deep).unwrap_err().code, "0A000");
    let deep = format!("SELECT a FROM t ORDER BY {}a", "- ".repeat(500));
    assert!(plan_on_small_stack(deep).is_err());
}

#[test]
fn cached_plans_are_shared_and_refusals_cached() {
    let cache = super::super::MergePlanCache::new();
    let a = cache.get("SELECT a FROM t ORDER BY a", false).unwrap();
    let b = cache.get("SELECT a FROM t ORDER BY a", false).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    let local = cache.get("SELECT a FROM t ORDER BY a", true).unwrap();
    assert!(!std::sync::Arc::ptr_eq(&a, &local));
    assert!(cache.get("SELECT count(DISTINCT a) FROM t", false).is_err());
}
