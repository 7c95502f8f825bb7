//! The planner behind `Router::merge_plan`, fed as the proxy feeds it: the analyzer's verdict
//! on whether groups are local to a shard.

use config::Config;

use crate::merge::{Col, MergePlan, Shape};
use crate::{RouteError, Router};

const CONFIG: &str = r#"
[[shards]]
name = "s0"
url = "postgres://u:p@h0/db"
[[shards]]
name = "s1"
url = "postgres://u:p@h1/db"

[maps.users]
strategy = "hash"
key_type = "bigint"
buckets = 64

[tables]
users = { map = "users", key = "id" }
orders = { map = "users", key = "user_id" }
countries = { reference = true }
"#;

fn router() -> Router {
    Router::new(&Config::parse(CONFIG, "test.toml").unwrap())
}

/// The merge plan the proxy would use for `sql` (None: no merge needed).
fn merged(router: &Router, sql: &str) -> Option<Result<MergePlan, RouteError>> {
    let stmt = router.prepare(sql).unwrap();
    stmt.merge_requirement()?;
    let local = stmt.merge_groups_local()?;
    Some(router.merge_plan(sql, local).map(|p| (*p).clone()))
}

#[test]
fn analyzer_and_planner_agree() {
    let router = router();
    let plan = |sql: &str| merged(&router, sql).unwrap().unwrap();

    let p = plan("SELECT id, name FROM users ORDER BY name LIMIT 10");
    assert_eq!(
        p.shard_sql,
        "SELECT id, name FROM users ORDER BY name LIMIT 10"
    );
    assert_eq!(
        p.shape,
        Shape::Rows {
            hidden: 0,
            distinct: false
        }
    );

    let p = plan("SELECT count(*) FROM users");
    assert!(matches!(p.shape, Shape::Groups { implicit: true, .. }));

    // Grouped by the shard key: each group lives on one shard.
    let p =
        plan("SELECT user_id, count(DISTINCT item) FROM orders GROUP BY user_id ORDER BY 2 DESC");
    assert_eq!(
        p.shard_sql,
        "SELECT user_id, count(DISTINCT item) FROM orders GROUP BY user_id ORDER BY 2 DESC"
    );
    assert_eq!(
        p.shape,
        Shape::Rows {
            hidden: 0,
            distinct: false
        }
    );

    // Grouped by something else: partial aggregates.
    let p = plan("SELECT status, avg(total) FROM orders GROUP BY status");
    assert_eq!(
        p.shard_sql,
        "SELECT status, sum(total) AS \"avg\", count(total) AS _sp_c1 FROM orders \
         GROUP BY status ORDER BY 1 ASC NULLS LAST"
    );
    assert!(matches!(&p.shape, Shape::Groups { keys, .. } if keys == &[Col::Start(0)]));

    let p = plan("SELECT DISTINCT status FROM orders");
    assert_eq!(
        p.shape,
        Shape::Rows {
            hidden: 0,
            distinct: true
        }
    );

    let p = plan(
        "SELECT DISTINCT ON (user_id) user_id, total FROM orders ORDER BY user_id, created DESC",
    );
    assert_eq!(p.shard_order.len(), 2);

    let e = merged(&router, "SELECT count(DISTINCT status) FROM orders")
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code, "0A000");

    // A single-shard query needs no merge plan at all.
    let stmt = router
        .prepare("SELECT * FROM users WHERE id = 5 ORDER BY name")
        .unwrap();
    assert_eq!(
        router
            .plan(&stmt, &crate::Params::default())
            .unwrap()
            .route_kind(),
        "single"
    );
}
