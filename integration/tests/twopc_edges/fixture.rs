//! Two shards behind a proxy, 40 rows in `t`, and views of what each shard holds.

use integration::raw::Raw;
use integration::{config_toml, connect, connect_url, fresh_dbs, start_proxy, TestDbs};
use proxy::RunningProxy;
use tokio_postgres::Client;

const MAPS: &str = "[maps.m]\nstrategy = \"hash\"\nkey_type = \"bigint\"\nbuckets = 16\n\n\
                    [tables]\nt = { map = \"m\", key = \"id\" }\n";

/// `u` is unique and checked only at commit (PREPARE): a duplicate fails the commit.
const SCHEMA: &str = "CREATE TABLE t (id bigint PRIMARY KEY, v int, \
                      u bigint UNIQUE DEFERRABLE INITIALLY DEFERRED)";

/// Rows in `t` after [`setup`]: ids 1..=ROWS.
pub const ROWS: i64 = 40;

/// A test's shards, proxy and client.
pub struct Fixture {
    pub dbs: TestDbs,
    /// Kept so the proxy lives as long as the test.
    pub proxy: RunningProxy,
    /// A tokio-postgres client of the proxy.
    pub client: Client,
    /// Direct clients of s0 and s1.
    pub shards: Vec<Client>,
    /// The ids of the initial rows each shard holds, ascending (both non-empty).
    pub on: Vec<Vec<i64>>,
}

/// The value of `v` of row `id`: distinct, and in another order than the ids.
pub fn v_of(id: i64) -> i64 {
    id * 17 % (ROWS + 1)
}

/// Two shards, rows 1..=ROWS inserted through the proxy.
pub async fn setup() -> Fixture {
    let dbs = fresh_dbs(2).await;
    let mut shards = Vec::new();
    for url in &dbs.shard_urls {
        let c = connect_url(url).await;
        c.batch_execute(SCHEMA).await.unwrap();
        shards.push(c);
    }
    let proxy = start_proxy(&config_toml(&dbs, "", MAPS)).await;
    let client = connect(proxy.addr, "app", None, &dbs.name).await;
    let values: Vec<String> = (1..=ROWS)
        .map(|id| format!("({id}, {})", v_of(id)))
        .collect();
    client
        .batch_execute(&format!(
            "INSERT INTO t (id, v) VALUES {}",
            values.join(", ")
        ))
        .await
        .unwrap();
    let mut fixture = Fixture {
        dbs,
        proxy,
        client,
        shards,
        on: Vec::new(),
    };
    fixture.on = fixture.ids().await;
    assert_eq!(
        fixture.on.iter().map(Vec::len).sum::<usize>(),
        ROWS as usize
    );
    assert!(
        fixture.on.iter().all(|ids| ids.len() >= 2),
        "both shards need rows: {:?}",
        fixture.on
    );
    fixture
}

impl Fixture {
    /// An id whose row lives on shard `s` (its `n`-th).
    pub fn id_on(&self, s: usize, n: usize) -> i64 {
        self.on[s][n]
    }

    /// A hand-driven connection to the proxy.
    pub async fn raw(&self) -> Raw {
        Raw::login(self.proxy.addr, &self.dbs.name).await
    }

    /// Empties `t` on every shard (directly).
    pub async fn clear(&self) {
        for c in &self.shards {
            c.batch_execute("DELETE FROM t").await.unwrap();
        }
    }

    /// The committed ids on each shard, ascending.
    pub async fn ids(&self) -> Vec<Vec<i64>> {
        let mut out = Vec::new();
        for c in &self.shards {
            let rows = c.query("SELECT id FROM t ORDER BY id", &[]).await.unwrap();
            out.push(rows.iter().map(|r| r.get(0)).collect());
        }
        out
    }

    /// Prepared transactions of this test's database, on all shards.
    pub async fn prepared(&self) -> i64 {
        let mut n = 0;
        for c in &self.shards {
            let p: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            n += p;
        }
        n
    }

    /// Asserts that `t` is empty on every shard and nothing is left prepared.
    pub async fn assert_nothing_committed(&self, what: &str) {
        assert_eq!(
            self.ids().await,
            vec![Vec::<i64>::new(); self.shards.len()],
            "{what}: rows were committed"
        );
        assert_eq!(
            self.prepared().await,
            0,
            "{what}: a transaction is left prepared"
        );
    }

    /// The oracle: every shard's (id, v), sorted by v.
    pub async fn rows_by_v(&self) -> Vec<(i64, i64)> {
        let mut all = Vec::new();
        for c in &self.shards {
            for r in c.query("SELECT id, v FROM t", &[]).await.unwrap() {
                all.push((r.get::<_, i64>(0), i64::from(r.get::<_, i32>(1))));
            }
        }
        all.sort_by_key(|(_, v)| *v);
        all
    }
}
