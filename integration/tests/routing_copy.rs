//! COPY FROM STDIN into sharded tables: rows are split per shard by their key column (text and
//! CSV, with a column list), found by connecting to each shard directly exactly where
//! INTERFACE.md section 3 says; a row that cannot be placed fails the whole COPY.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod routing_support;

use std::pin::pin;

use bytes::Bytes;
use futures::SinkExt;
use integration::raw::{frame, query_msg, Msgs, Raw};
use integration::util::bounded;
use routing_support::*;
use tokio::io::AsyncWriteExt;

/// The SQLSTATE and message of the first ErrorResponse among `msgs`.
fn error_of(msgs: &Msgs) -> Option<(String, String)> {
    let (_, body) = msgs.iter().find(|(t, _)| *t == b'E')?;
    let field = |tag: u8| {
        body.split(|b| *b == 0)
            .find(|f| f.first() == Some(&tag))
            .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
            .unwrap_or_default()
    };
    Some((field(b'C'), field(b'M')))
}

/// `COPY ... FROM STDIN` through the simple protocol, `chunks` as CopyData messages: the
/// command tag, or the error's SQLSTATE and message. Reads up to ReadyForQuery either way.
async fn raw_copy(raw: &mut Raw, sql: &str, chunks: &[&[u8]]) -> Result<String, (String, String)> {
    raw.stream.write_all(&query_msg(sql)).await.unwrap();
    let first = raw.next_msg().await.expect("proxy closed the connection");
    if first.0 != b'G' {
        let mut msgs = vec![first];
        while msgs.last().map(|m| m.0) != Some(b'Z') {
            msgs.push(raw.next_msg().await.expect("proxy closed the connection"));
        }
        return Err(error_of(&msgs).unwrap_or_else(|| panic!("{sql}: no CopyIn: {msgs:?}")));
    }
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(frame(b'd', chunk));
    }
    out.extend(frame(b'c', b""));
    let answer = raw.round_trip(&out).await;
    if let Some(err) = error_of(&answer) {
        return Err(err);
    }
    let (_, tag) = answer.iter().find(|(t, _)| *t == b'C').unwrap();
    Ok(String::from_utf8_lossy(tag)
        .trim_end_matches('\0')
        .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_from_stdin_splits_text_and_csv_rows_per_shard() {
    bounded(async {
        let fx = Fixture::start(SCHEMA).await;
        let mut raw = Raw::login(fx.proxy.addr, &fx.dbs.name).await;
        let mut expected = Vec::new();
        let mut names = Vec::new();
        // Text format, rows cut across CopyData boundaries, an escaped tab inside a value.
        let mut text = String::new();
        for k in user_keys(401, 5).into_iter().chain([-421]) {
            text.push_str(&format!("{k}\tcopy\\t{k}\n"));
            expected.push((k.to_string(), user_shard(k)));
            names.push((k, format!("copy\t{k}")));
        }
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(7).collect();
        let tag = raw_copy(&mut raw, "COPY users (id, name) FROM STDIN", &chunks).await;
        assert_eq!(tag, Ok(format!("COPY {}", names.len())));
        assert_all_shards(&expected);
        fx.assert_placement("users", "id", &expected).await;
        // CSV with a header, the key in the second column, quoted values holding a comma and a
        // newline.
        let mut csv = String::from("name,id\n");
        for k in user_keys(501, 3) {
            csv.push_str(&format!("\"csv, {k}\",{k}\n"));
            expected.push((k.to_string(), user_shard(k)));
            names.push((k, format!("csv, {k}")));
        }
        csv.push_str("\"two\nlines\",600\n");
        expected.push(("600".into(), user_shard(600)));
        names.push((600, "two\nlines".into()));
        let sql = "COPY users (name, id) FROM STDIN (FORMAT csv, HEADER true)";
        let chunks: Vec<&[u8]> = csv.as_bytes().chunks(5).collect();
        assert_eq!(raw_copy(&mut raw, sql, &chunks).await, Ok("COPY 10".into()));
        fx.assert_placement("users", "id", &expected).await;
        for (k, name) in &names {
            assert_user(&fx.client, *k, name).await;
        }
        // Text keys, quoted in CSV ("" is the empty string, not NULL).
        let csv = b"\"a,b\",1\n\"alice\",2\nbob,3\n\"\",4\nO'Brien,5\n";
        let sql = "COPY tags (tag, n) FROM STDIN WITH (FORMAT csv)";
        assert_eq!(raw_copy(&mut raw, sql, &[csv]).await, Ok("COPY 5".into()));
        let tags = ["a,b", "alice", "bob", "", "O'Brien"].map(|t| (t.to_string(), tag_shard(t)));
        fx.assert_placement("tags", "tag", &tags).await;
        fx.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_without_a_column_list_splits_rows_by_the_table_columns() {
    bounded(async {
        let fx = Fixture::start(SCHEMA).await;
        let mut raw = Raw::login(fx.proxy.addr, &fx.dbs.name).await;
        // customers (country, name): the key is the first column, on a list map.
        let rows = b"KR\tk\nUS\tu\nFR\tf\nDE\td\n";
        let tag = raw_copy(&mut raw, "COPY customers FROM STDIN", &[rows]).await;
        assert_eq!(tag, Ok("COPY 4".into()));
        let want = ["KR", "US", "FR", "DE"].map(|c| (c.to_string(), customer_shard(c)));
        fx.assert_placement("customers", "country", &want).await;
        // orders (order_id, user_id, amount): the key is the second column.
        let keys = user_keys(1, 2);
        let csv: String = keys
            .iter()
            .map(|k| format!("{},{k},1\n", k + 1000))
            .collect();
        let tag = raw_copy(
            &mut raw,
            "COPY orders FROM STDIN (FORMAT csv)",
            &[csv.as_bytes()],
        )
        .await;
        assert_eq!(tag, Ok(format!("COPY {}", keys.len())));
        let want: Vec<(String, usize)> = keys
            .iter()
            .map(|k| (k.to_string(), user_shard(*k)))
            .collect();
        fx.assert_placement("orders", "user_id", &want).await;
        fx.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_row_without_a_shard_fails_the_whole_copy() {
    bounded(async {
        let fx = Fixture::start(SCHEMA).await;
        let mut raw = Raw::login(fx.proxy.addr, &fx.dbs.name).await;
        // The first rows are valid and already on their way to s1 when the bad one comes.
        let cases: [(&str, &[u8], &str, &str); 3] = [
            (
                "COPY readings (reading_id, v) FROM STDIN",
                b"1\t1\n2\t2\n2000\t3\n",
                "22023",
                "2000",
            ),
            (
                "COPY readings (reading_id, v) FROM STDIN",
                b"1\t1\n\\N\t2\n",
                "23502",
                "reading_id",
            ),
            (
                "COPY readings (v, reading_id) FROM STDIN (FORMAT csv)",
                b"1,5\n2,\n",
                "23502",
                "readings",
            ),
        ];
        for (sql, rows, code, named) in cases {
            let err = raw_copy(&mut raw, sql, &[rows]).await.unwrap_err();
            assert_eq!(err.0, code, "{sql}: {err:?}");
            assert!(
                err.1.contains(named),
                "{sql}: the message names {named}: {err:?}"
            );
            fx.assert_placement("readings", "reading_id", &[]).await;
        }
        // The connection goes on.
        let sql = "COPY readings (reading_id, v) FROM STDIN";
        assert_eq!(
            raw_copy(&mut raw, sql, &[b"7\t7\n"]).await,
            Ok("COPY 1".into())
        );
        fx.assert_placement("readings", "reading_id", &[("7".into(), 1)])
            .await;
        fx.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_across_shards_through_the_extended_protocol_keeps_the_connection() {
    bounded(async {
        let fx = Fixture::start(SCHEMA).await;
        let c = &fx.client;
        // tokio-postgres sends Bind, Execute, Sync, then CopyData, CopyDone, Sync; PostgreSQL
        // ignores the first Sync (it arrives in copy-in mode), so only one ReadyForQuery comes.
        let keys = user_keys(1, 2);
        let rows: String = keys.iter().map(|k| format!("{k}\tx{k}\n")).collect();
        let sink = c
            .copy_in::<_, Bytes>("COPY users (id, name) FROM STDIN")
            .await
            .unwrap();
        let mut sink = pin!(sink);
        sink.send(Bytes::from(rows)).await.unwrap();
        assert_eq!(sink.as_mut().finish().await.unwrap(), keys.len() as u64);
        let expected: Vec<(String, usize)> = keys
            .iter()
            .map(|k| (k.to_string(), user_shard(*k)))
            .collect();
        fx.assert_placement("users", "id", &expected).await;
        // The same client goes on working, twice.
        for k in &keys {
            assert_user(c, *k, &format!("x{k}")).await;
        }
        let sink = c
            .copy_in::<_, Bytes>("COPY users (name, id) FROM STDIN (FORMAT csv)")
            .await
            .unwrap();
        let mut sink = pin!(sink);
        sink.send(Bytes::from("y100,100\ny101,101\ny102,102\n"))
            .await
            .unwrap();
        assert_eq!(sink.as_mut().finish().await.unwrap(), 3);
        assert_user(c, 101, "y101").await;
        fx.finish().await;
    })
    .await;
}
