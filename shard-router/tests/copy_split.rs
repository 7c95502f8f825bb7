//! COPY FROM STDIN splitting: rows, fields and keys in text and CSV formats, fed in any chunking.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use bytes::Bytes;
use config::{KeyType, KeyValue};
use proptest::prelude::*;
use shard_router::copy::{field, row_key, CopyError, CopyFormat, RowSplitter};
use shard_router::keys::KeyError;
use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// Rows (and header) from feeding `data` in the given chunk sizes, then finishing.
fn split_chunks(
    format: &CopyFormat,
    data: &[u8],
    sizes: &[usize],
    zero_copy: bool,
) -> Result<(Vec<Bytes>, Option<Bytes>), CopyError> {
    let mut s = RowSplitter::new(format.clone());
    let mut rows = Vec::new();
    let mut rest = data;
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        if zero_copy {
            rows.extend(s.push_bytes(Bytes::copy_from_slice(chunk))?);
        } else {
            rows.extend(s.push(chunk)?);
        }
    }
    rows.extend(s.finish()?);
    Ok((rows, s.header().cloned()))
}

fn split(format: &CopyFormat, data: &[u8]) -> Result<Vec<Bytes>, CopyError> {
    split_chunks(format, data, &[data.len().max(1)], false).map(|(rows, _)| rows)
}

/// The same rows however the input is cut: one byte at a time, and at every single split point.
fn assert_any_chunking(format: &CopyFormat, data: &[u8], expected: &[&[u8]]) {
    let want: Vec<Bytes> = expected.iter().map(|r| Bytes::copy_from_slice(r)).collect();
    for zero_copy in [false, true] {
        let (rows, _) = split_chunks(format, data, &[1], zero_copy).unwrap();
        assert_eq!(rows, want, "one byte at a time, zero_copy {zero_copy}");
        for cut in 0..=data.len() {
            let mut s = RowSplitter::new(format.clone());
            let mut rows = Vec::new();
            for part in [&data[..cut], &data[cut..]] {
                if zero_copy {
                    rows.extend(s.push_bytes(Bytes::copy_from_slice(part)).unwrap());
                } else {
                    rows.extend(s.push(part).unwrap());
                }
            }
            rows.extend(s.finish().unwrap());
            assert_eq!(rows, want, "cut at {cut}, zero_copy {zero_copy}");
        }
    }
}

fn f(row: &[u8], i: usize, format: &CopyFormat) -> Option<Vec<u8>> {
    field(row, i, format).unwrap()
}

#[test]
fn text_rows_and_escapes() {
    let text = CopyFormat::text();
    let data = b"1\ta\\tb\n2\tline\\\nbreak\n3\t\\N\n4\t\\\\N\n";
    assert_any_chunking(
        &text,
        data,
        &[
            b"1\ta\\tb\n",
            b"2\tline\\\nbreak\n",
            b"3\t\\N\n",
            b"4\t\\\\N\n",
        ],
    );
    let rows = split(&text, data).unwrap();
    assert_eq!(f(&rows[0], 1, &text), Some(b"a\tb".to_vec()));
    assert_eq!(f(&rows[1], 1, &text), Some(b"line\nbreak".to_vec()));
    assert_eq!(f(&rows[2], 1, &text), None);
    assert_eq!(f(&rows[3], 1, &text), Some(b"\\N".to_vec()));
    assert_eq!(
        f(b"\\101\\x41\\x4g\\q\\b\\f\\v\\r\\n\\7\n", 0, &text),
        Some(b"AA\x04gq\x08\x0c\x0b\r\n\x07".to_vec())
    );
    // An escaped delimiter does not split.
    assert_eq!(f(b"a\\\tb\tc\n", 1, &text), Some(b"c".to_vec()));
    assert_eq!(f(b"a\tb", 1, &text), Some(b"b".to_vec()));
    assert_eq!(f(b"\n", 0, &text), Some(Vec::new()));
    assert_eq!(
        field(b"a\tb\n", 2, &text),
        Err(CopyError::MissingColumn { index: 2, found: 2 })
    );
}

#[test]
fn csv_quotes_delimiters_and_newlines() {
    let csv = CopyFormat::csv();
    let data = b"1,\"a,b\",x\n2,\"say \"\"hi\"\"\",y\n3,\"two\nlines\r\nhere\",z\n4,,\"\"\n";
    assert_any_chunking(
        &csv,
        data,
        &[
            b"1,\"a,b\",x\n",
            b"2,\"say \"\"hi\"\"\",y\n",
            b"3,\"two\nlines\r\nhere\",z\n",
            b"4,,\"\"\n",
        ],
    );
    let rows = split(&csv, data).unwrap();
    assert_eq!(f(&rows[0], 1, &csv), Some(b"a,b".to_vec()));
    assert_eq!(f(&rows[0], 2, &csv), Some(b"x".to_vec()));
    assert_eq!(f(&rows[1], 1, &csv), Some(b"say \"hi\"".to_vec()));
    assert_eq!(f(&rows[2], 1, &csv), Some(b"two\nlines\r\nhere".to_vec()));
    assert_eq!(f(&rows[3], 1, &csv), None, "empty unquoted is NULL");
    assert_eq!(
        f(&rows[3], 2, &csv),
        Some(Vec::new()),
        "quoted empty is a value"
    );
    // A separate escape character.
    let opts = [
        ("format".to_owned(), Some("csv".to_owned())),
        ("escape".to_owned(), Some("\\".to_owned())),
    ];
    let esc = CopyFormat::from_options(&opts).unwrap();
    let data = b"\"a\\\"b\\\\\",\"c\"\"\"\n";
    assert_any_chunking(&esc, data, &[data]);
    assert_eq!(f(data, 0, &esc), Some(b"a\"b\\".to_vec()));
    assert!(field(b"\"open,1\n", 0, &csv).is_err());
}

#[test]
fn header_is_skipped_and_kept() {
    let mut csv = CopyFormat::csv();
    csv.header = true;
    let data = b"id,\"na\nme\"\n1,a\n2,b";
    let (rows, header) = split_chunks(&csv, data, &[1], false).unwrap();
    assert_eq!(header, Some(Bytes::from_static(b"id,\"na\nme\"\n")));
    assert_eq!(
        rows,
        vec![Bytes::from_static(b"1,a\n"), Bytes::from_static(b"2,b\n")]
    );
    let mut text = CopyFormat::text();
    text.header = true;
    assert_eq!(split(&text, b"id\n").unwrap(), Vec::<Bytes>::new());
}

#[test]
fn end_marker() {
    let text = CopyFormat::text();
    let data = b"1\ta\n\\.\nignored\tdata\n";
    assert_any_chunking(&text, data, &[b"1\ta\n"]);
    assert_any_chunking(&text, b"1\ta\n\\.", &[b"1\ta\n"]);
    assert_any_chunking(&text, b"1\r\n\\.\r\nx\r\n", &[b"1\r\n"]);
    assert!(split(&text, b"1\n\\.x\n").is_err(), "corrupt marker");
    assert!(
        split(&text, b"1\\.\n").is_err(),
        "marker not alone on its line"
    );
    assert!(
        split(&text, b"1\n\\.\r\n").is_err(),
        "marker with another newline style"
    );
    // `\\.` is an escaped backslash and a period.
    assert_any_chunking(&text, b"\\\\.\n", &[b"\\\\.\n"]);
    let csv = CopyFormat::csv();
    assert_any_chunking(&csv, b"1,a\n\\.\n2,b\n", &[b"1,a\n"]);
    assert_any_chunking(
        &csv,
        b"\\.x,1\n\"\n\\.\n\"\n",
        &[b"\\.x,1\n", b"\"\n\\.\n\"\n"],
    );
}

#[test]
fn newline_styles() {
    let text = CopyFormat::text();
    assert_any_chunking(&text, b"a\r\nb\r\nc", &[b"a\r\n", b"b\r\n", b"c\r\n"]);
    assert_any_chunking(&text, b"a\rb\rc\r", &[b"a\r", b"b\r", b"c\r"]);
    assert_any_chunking(&text, b"a\nb", &[b"a\n", b"b\n"]);
    assert!(split(&text, b"a\nb\r\n").is_err());
    assert!(split(&text, b"a\r\nb\n").is_err());
    assert!(split(&text, b"a\rb\n").is_err());
    assert_eq!(f(b"x\ty\r\n", 1, &text), Some(b"y".to_vec()));
}

#[test]
fn finish_errors() {
    assert!(split(&CopyFormat::csv(), b"1,\"open").is_err());
    // A dangling backslash at the very end is dropped, as PostgreSQL does.
    let text = CopyFormat::text();
    assert_any_chunking(&text, b"1\tend\\", &[b"1\tend\n"]);
    assert_any_chunking(&text, b"1\tend\\\\", &[b"1\tend\\\\\n"]);
    assert_any_chunking(&text, b"\\", &[b"\n"]);
    assert_eq!(
        split(&CopyFormat::text(), b"").unwrap(),
        Vec::<Bytes>::new()
    );
}

#[test]
fn row_size_limit() {
    let mut s = RowSplitter::with_max_row(CopyFormat::text(), 8);
    assert_eq!(s.push(b"1234567\n").unwrap().len(), 1);
    assert_eq!(s.push(b"12345").unwrap().len(), 0);
    assert_eq!(s.push(b"6789"), Err(CopyError::RowTooLarge { limit: 8 }));
    let mut s = RowSplitter::with_max_row(CopyFormat::text(), 8);
    assert!(s.push_bytes(Bytes::from_static(b"123456789")).is_err());
    assert_eq!(CopyError::RowTooLarge { limit: 8 }.sqlstate(), "54000");
}

#[test]
fn null_markers_and_keys() {
    let text = CopyFormat::text();
    assert_eq!(
        row_key(b"7\tx\n", 0, "id", KeyType::Bigint, &text),
        Ok(KeyValue::Int(7))
    );
    assert_eq!(
        row_key(b"\\N\tx\n", 0, "id", KeyType::Bigint, &text),
        Err(CopyError::Key(KeyError::Null))
    );
    let err = row_key(b"7.5\tx\n", 0, "id", KeyType::Bigint, &text).unwrap_err();
    assert_eq!(err.sqlstate(), "22P02");
    let route = err.to_route_error("events", "id");
    assert!(
        route.message.contains("events") && route.message.contains("7.5"),
        "{}",
        route.message
    );
    let null = CopyError::Key(KeyError::Null).to_route_error("orders", "user_id");
    assert_eq!(null.code, "23502");
    // Custom NULL marker.
    let opts = [("NULL".to_owned(), Some("nil".to_owned()))];
    let custom = CopyFormat::from_options(&opts).unwrap();
    assert_eq!(f(b"nil\t\\N\n", 0, &custom), None);
    assert_eq!(f(b"nil\t\\N\n", 1, &custom), Some(b"N".to_vec()));
    // CSV FORCE_NOT_NULL / FORCE_NULL apply to the named key column only.
    let opts = [
        ("format".to_owned(), Some("csv".to_owned())),
        ("force_not_null".to_owned(), Some("code".to_owned())),
        ("force_null".to_owned(), Some("\"Key\"".to_owned())),
    ];
    let csv = CopyFormat::from_options(&opts).unwrap();
    assert_eq!(
        row_key(b",1\n", 0, "code", KeyType::Text, &csv),
        Ok(KeyValue::Text(String::new()))
    );
    assert_eq!(
        row_key(b",1\n", 0, "other", KeyType::Text, &csv),
        Err(CopyError::Key(KeyError::Null))
    );
    assert_eq!(
        row_key(b"\"\",1\n", 0, "Key", KeyType::Text, &csv),
        Err(CopyError::Key(KeyError::Null))
    );
    assert_eq!(
        row_key(b"\"\",1\n", 0, "key", KeyType::Text, &csv),
        Ok(KeyValue::Text(String::new()))
    );
}

#[test]
fn options() {
    let o = |pairs: &[(&str, Option<&str>)]| {
        let pairs: Vec<(String, Option<String>)> = pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.map(str::to_owned)))
            .collect();
        CopyFormat::from_options(&pairs)
    };
    assert_eq!(o(&[]).unwrap(), CopyFormat::text());
    assert_eq!(o(&[("FORMAT", Some("CSV"))]).unwrap(), CopyFormat::csv());
    let f = o(&[
        ("csv", None),
        ("header", None),
        ("delimiter", Some(";")),
        ("quote", Some("'")),
    ])
    .unwrap();
    assert!(f.csv && f.header);
    assert_eq!((f.delimiter, f.quote, f.escape), (b';', b'\'', b'\''));
    assert!(o(&[("header", Some("match"))]).unwrap().header);
    assert!(!o(&[("header", Some("off"))]).unwrap().header);
    assert!(o(&[("encoding", Some("UTF-8"))]).is_ok());
    assert!(o(&[("freeze", Some("true"))]).is_ok());
    for (bad, code) in [
        (vec![("format", Some("binary"))], "0A000"),
        (vec![("binary", None)], "0A000"),
        (vec![("encoding", Some("LATIN1"))], "0A000"),
        (vec![("default", Some("\\D"))], "0A000"),
        (vec![("on_error", Some("ignore"))], "0A000"),
        (vec![("quote", Some("'"))], "0A000"),
        (vec![("delimiter", Some("ab"))], "22023"),
        (vec![("delimiter", Some("é"))], "22023"),
        (vec![("delimiter", Some("\\"))], "22023"),
        (vec![("delimiter", Some("x"))], "22023"),
        (vec![("csv", None), ("delimiter", Some("\""))], "22023"),
        (vec![("null", Some("a\tb"))], "22023"),
        (vec![("header", Some("maybe"))], "22023"),
        (vec![("format", Some("json"))], "22023"),
        (vec![("bogus", None)], "42601"),
        (vec![("delimiter", None)], "42601"),
    ] {
        assert_eq!(o(&bad).unwrap_err().code, code, "{bad:?}");
    }
}

fn parse_copy(sql: &str) -> Result<CopyFormat, shard_router::RouteError> {
    let sql = format!("{sql};\n\\.\n");
    let stmts = Parser::parse_sql(&PostgreSqlDialect {}, &sql).unwrap();
    match &stmts[0] {
        Statement::Copy {
            options,
            legacy_options,
            ..
        } => CopyFormat::from_sql_options(options, legacy_options),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sqlparser_options() {
    let f = parse_copy("COPY t FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER ';', FORCE_NOT_NULL (a, \"B\"))").unwrap();
    assert!(f.csv && f.header);
    assert_eq!(f.delimiter, b';');
    assert_eq!(f.force_not_null, vec!["a".to_owned(), "B".to_owned()]);
    let f = parse_copy("COPY t FROM STDIN CSV HEADER QUOTE AS '\"'").unwrap();
    assert!(f.csv && f.header);
    let f = parse_copy("COPY t (a, b) FROM STDIN WITH DELIMITER AS '|' NULL AS ''").unwrap();
    assert!(!f.csv);
    assert_eq!((f.delimiter, f.null.as_slice()), (b'|', &b""[..]));
    assert_eq!(
        parse_copy("COPY t FROM STDIN BINARY").unwrap_err().code,
        "0A000"
    );
}

/// Encodes one CSV field, quoting when needed.
fn csv_encode(v: &str) -> String {
    if v.is_empty() || v.contains([',', '"', '\n', '\r']) || v.starts_with("\\.") {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_owned()
    }
}

/// Encodes one text-format field.
fn text_encode(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Encoded rows come back whole and in order however the input is chunked, and every field
    /// decodes to what was encoded.
    #[test]
    fn rows_round_trip(
        rows in proptest::collection::vec(proptest::collection::vec("[a-c,\"\\\\\t\r\n .N]{0,6}", 1..4), 0..8),
        sizes in proptest::collection::vec(1usize..7, 1..5),
        csv in any::<bool>(),
        crlf in any::<bool>(),
        zero_copy in any::<bool>(),
    ) {
        let format = if csv { CopyFormat::csv() } else { CopyFormat::text() };
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut data = String::new();
        let mut lines = Vec::new();
        for row in &rows {
            let fields: Vec<String> = row.iter().map(|v| if csv { csv_encode(v) } else { text_encode(v) }).collect();
            let sep = if csv { "," } else { "\t" };
            let mut line = fields.join(sep);
            if line.is_empty() && csv {
                line = "\"\"".to_owned();
            }
            line.push_str(eol);
            data.push_str(&line);
            lines.push(line);
        }
        let (got, _) = split_chunks(&format, data.as_bytes(), &sizes, zero_copy).unwrap();
        let want: Vec<Bytes> = lines.iter().map(|l| Bytes::copy_from_slice(l.as_bytes())).collect();
        prop_assert_eq!(&got, &want);
        for (row, values) in got.iter().zip(&rows) {
            for (i, v) in values.iter().enumerate() {
                let decoded = field(row, i, &format).unwrap();
                // In CSV an unquoted empty field is NULL; csv_encode quotes empty values.
                prop_assert_eq!(decoded, Some(v.as_bytes().to_vec()));
            }
        }
    }

    /// Arbitrary bytes in arbitrary chunks never panic, in either format.
    #[test]
    fn arbitrary_bytes_never_panic(
        data in proptest::collection::vec(prop_oneof![Just(b'\\'), Just(b'"'), Just(b'\n'), Just(b'\r'), Just(b','), Just(b'\t'), Just(b'.'), any::<u8>()], 0..64),
        sizes in proptest::collection::vec(1usize..9, 1..4),
        csv in any::<bool>(),
        header in any::<bool>(),
    ) {
        let mut format = if csv { CopyFormat::csv() } else { CopyFormat::text() };
        format.header = header;
        for zero_copy in [false, true] {
            if let Ok((rows, _)) = split_chunks(&format, &data, &sizes, zero_copy) {
                for row in rows {
                    for i in 0..4 {
                        let _ = field(&row, i, &format);
                        let _ = row_key(&row, i, "k", KeyType::Bigint, &format);
                    }
                }
            }
        }
        for i in 0..3 {
            let _ = field(&data, i, &format);
        }
    }
}
