//! The scanner: which constants become pseudo-parameters, and which texts it declines.

use super::*;

fn norm(sql: &str) -> Option<(String, Vec<String>)> {
    normalize(sql).map(|n| {
        let values = n
            .constants
            .iter()
            .map(|c| c.value(sql).to_owned())
            .collect();
        (n.text().to_owned(), values)
    })
}

fn text(sql: &str) -> String {
    norm(sql).map_or_else(|| "-".to_owned(), |(t, _)| t)
}

#[test]
fn replaces_constants_in_expression_positions() {
    assert_eq!(
        norm("SELECT abalance FROM pgbench_accounts WHERE aid = 12345;"),
        Some((
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1;".to_owned(),
            vec!["12345".to_owned()]
        ))
    );
    let cases = [
        (
            "select * from t1 where id=5 and name <> 'it''s' or x >= 1.5e3",
            "select * from t1 where id=$1 and name <> $2 or x >= $3",
        ),
        (
            "SELECT * FROM t WHERE id IN (1, '2', -3) AND k = '5'::bigint",
            "SELECT * FROM t WHERE id IN ($1, $2, $3) AND k = $4::bigint",
        ),
        (
            "INSERT INTO t (a, b) VALUES (1, 'x'), (-2, 'y') RETURNING a",
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) RETURNING a",
        ),
        (
            "UPDATE a SET bal = bal + -12 WHERE aid = 7",
            "UPDATE a SET bal = bal + $1 WHERE aid = $2",
        ),
        (
            "DELETE FROM t WHERE id = 1e-3",
            "DELETE FROM t WHERE id = $1",
        ),
    ];
    for (sql, want) in cases {
        assert_eq!(text(sql), want, "{sql}");
    }
    let n = norm("SELECT 1 FROM t WHERE s = 'it''s' AND n = -5").unwrap();
    assert_eq!(n.1, vec!["it's", "-5"]);
    let n = normalize("SELECT * FROM t WHERE a = 'x' AND b = 2").unwrap();
    assert_eq!(n.key, "SELECT * FROM t WHERE a = $1 AND b = $2\0sn");
    assert_eq!(
        n.constants[0].written("SELECT * FROM t WHERE a = 'x' AND b = 2"),
        "'x'"
    );
}

#[test]
fn keeps_constants_outside_expression_positions() {
    let cases = [
        // LIMIT, ORDER BY positions, type modifiers, function arguments, typed strings.
        (
            "SELECT * FROM t WHERE id = 1 ORDER BY 2 LIMIT 10 OFFSET 5",
            "SELECT * FROM t WHERE id = $1 ORDER BY 2 LIMIT 10 OFFSET 5",
        ),
        (
            "SELECT x::varchar(10), f(3) FROM t WHERE d = DATE '2020-01-01' AND id = 1",
            "SELECT x::varchar(10), f(3) FROM t WHERE d = DATE '2020-01-01' AND id = $1",
        ),
        (
            "SELECT * FROM t WHERE e = E'a\\'b' AND u = U&'x' AND id = 1",
            "SELECT * FROM t WHERE e = E'a\\'b' AND u = U&'x' AND id = $1",
        ),
        (
            "SELECT * FROM t WHERE a = - 5 AND b = - -5 AND c = 5L AND d = 0x1F AND id = 2",
            "SELECT * FROM t WHERE a = - 5 AND b = - -5 AND c = 5L AND d = 0x1F AND id = $1",
        ),
        (
            "SELECT * FROM t WHERE a = -5::text AND b IN (-5 ::int8, -5[1]) AND id = -1",
            "SELECT * FROM t WHERE a = -5::text AND b IN (-5 ::int8, -5[1]) AND id = $1",
        ),
        (
            "SELECT * FROM t WHERE s = 'a' 'b' AND t = 'c\\d' AND id = 1",
            "SELECT * FROM t WHERE s = 'a' 'b' AND t = 'c\\d' AND id = $1",
        ),
        (
            "SELECT * FROM t WHERE j->>'k' = 'v' AND id IN (SELECT 1, 2) AND a = ANY('{1}')",
            "SELECT * FROM t WHERE j->>'k' = $1 AND id IN (SELECT 1, 2) AND a = ANY('{1}')",
        ),
        (
            "SELECT * FROM t WHERE a BETWEEN 1 AND 2 AND b = ARRAY[1, 2] AND id = 3",
            "SELECT * FROM t WHERE a BETWEEN 1 AND 2 AND b = ARRAY[1, 2] AND id = $1",
        ),
    ];
    for (sql, want) in cases {
        assert_eq!(text(sql), want, "{sql}");
    }
}

#[test]
fn respects_comments_quotes_and_dollar_quotes() {
    let sql = "SELECT /* id = 1 /* nested */ = 2 */ \"a = 3\" -- x = 4\n FROM t \
               WHERE b = $q$ = 5 $q$ AND c = $$'$$ AND id = 6";
    assert_eq!(
        text(sql),
        "SELECT /* id = 1 /* nested */ = 2 */ \"a = 3\" -- x = 4\n FROM t \
         WHERE b = $q$ = 5 $q$ AND c = $$'$$ AND id = $1"
    );
    assert_eq!(
        text("SELECT * FROM t1 WHERE c2=3"),
        "SELECT * FROM t1 WHERE c2=$1"
    );
}

#[test]
fn declines_what_it_should_not_normalize() {
    for sql in [
        "SELECT * FROM t WHERE id = $1 AND b = 2",
        "SELECT 1 FROM t WHERE a = 1; SELECT 2",
        "SET x = 5",
        "EXPLAIN SELECT * FROM t WHERE id = 1",
        "SELECT * FROM t WHERE a = 'unterminated",
        "SELECT * FROM t WHERE a = 1 /* unterminated",
        "SELECT * FROM t WHERE (a = 1",
        "SELECT * FROM t WHERE a = 1)",
        "SELECT * FROM t",
        "SELECT 1",
        "(SELECT * FROM t WHERE id = 1)",
        "SELECT * FROM t WHERE a = 1\0",
    ] {
        assert_eq!(normalize(sql), None, "{sql}");
    }
    assert!(normalize("SELECT * FROM t WHERE a = 1; -- done\n").is_some());
}

#[test]
fn operators_are_cut_like_postgresql() {
    assert_eq!(
        text("SELECT * FROM t WHERE a=-5"),
        "SELECT * FROM t WHERE a=$1"
    );
    assert_eq!(
        text("SELECT * FROM t WHERE a<>-5"),
        "SELECT * FROM t WHERE a<>$1"
    );
    assert_eq!(
        text("SELECT * FROM t WHERE a@-5 AND id = 1"),
        "SELECT * FROM t WHERE a@-5 AND id = $1"
    );
    assert_eq!(
        text("SELECT * FROM t WHERE a=5--c\n"),
        "SELECT * FROM t WHERE a=$1--c\n"
    );
}

#[test]
fn multibyte_text_is_kept_intact() {
    assert_eq!(
        norm("SELECT * FROM t WHERE é = 'ü''x' AND \"ß\" = 1"),
        Some((
            "SELECT * FROM t WHERE é = $1 AND \"ß\" = $2".to_owned(),
            vec!["ü'x".to_owned(), "1".to_owned()]
        ))
    );
}
