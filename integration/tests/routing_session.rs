//! Session state across several shards: a SET made while a transaction holds backends on
//! several shards reaches all of them, is remembered for the client, and never leaks to the next
//! client that gets those backends (transaction pooling, one backend per shard).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod routing_support;

use integration::util::bounded;
use integration::{config_toml, connect, connect_url, fresh_dbs, start_proxy};
use routing_support::{user_keys, user_shard, MAPS_TOML, SCHEMA, SHARDS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_on_several_shards_follows_its_client_and_never_leaks() {
    bounded(async {
        let dbs = fresh_dbs(SHARDS).await;
        for url in &dbs.shard_urls {
            connect_url(url).await.batch_execute(SCHEMA).await.unwrap();
        }
        // One backend per shard, so the next client gets exactly the backends A used.
        let toml = config_toml(&dbs, "", MAPS_TOML);
        assert!(toml.contains("size = 4"), "harness [pool] changed:\n{toml}");
        let proxy = start_proxy(&toml.replace("size = 4", "size = 1")).await;
        let keys = user_keys(1, 1);
        let (k0, k1) = (keys[0], keys[1]);
        assert_ne!(user_shard(k0), user_shard(k1));
        let a = connect(proxy.addr, "app", None, &dbs.name).await;
        for k in [k0, k1] {
            a.execute("INSERT INTO users (id, name) VALUES ($1, 'x')", &[&k])
                .await
                .unwrap();
        }
        let setting = "SELECT current_setting('application_name') FROM users WHERE id = $1";
        // A transaction holding backends on two shards sets a session parameter.
        a.batch_execute("BEGIN").await.unwrap();
        for k in [k0, k1] {
            a.query_one(setting, &[&k]).await.unwrap();
        }
        a.batch_execute("SET application_name = 'client-a'")
            .await
            .unwrap();
        for k in [k0, k1] {
            let v: String = a.query_one(setting, &[&k]).await.unwrap().get(0);
            assert_eq!(v, "client-a", "inside the transaction, key {k}");
        }
        a.batch_execute("COMMIT").await.unwrap();
        // Client B now gets the very backends A used: it must see the server default.
        let b = connect(proxy.addr, "app", None, &dbs.name).await;
        for k in [k0, k1] {
            let v: String = b.query_one(setting, &[&k]).await.unwrap().get(0);
            assert_ne!(
                v, "client-a",
                "client A's SET leaked to client B on key {k}"
            );
        }
        // ...and A keeps its setting on every shard it uses afterwards.
        for k in [k0, k1] {
            let v: String = a.query_one(setting, &[&k]).await.unwrap().get(0);
            assert_eq!(v, "client-a", "after commit, key {k}");
        }
        proxy.shutdown().await;
    })
    .await;
}
