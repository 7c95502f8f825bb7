use super::*;

use KeyContext::{Assign, Compare};
use KeyType::{Bigint, Text, Uuid};

const U: &str = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";

fn int(v: i64) -> KeyValue {
    KeyValue::Int(v)
}

fn text(s: &str) -> KeyValue {
    KeyValue::Text(s.to_owned())
}

fn uuid() -> KeyValue {
    KeyValue::parse(Uuid, U).unwrap()
}

fn lit(
    key_type: KeyType,
    text: &str,
    is_string: bool,
    cast: Option<&str>,
) -> Result<KeyValue, KeyError> {
    key_from_literal(key_type, text, is_string, cast)
}

fn code(r: Result<KeyValue, KeyError>) -> &'static str {
    r.unwrap_err().sqlstate()
}

#[test]
fn bigint_literals() {
    for (text, is_string, cast) in [
        ("5", false, None),
        ("5", true, None),
        (" 5 ", true, None),
        ("+5", false, None),
        ("5", false, Some("int8")),
        ("5", false, Some("BIGINT")),
        ("5", true, Some("bigint")),
        ("5", true, Some("pg_catalog.int8")),
        ("5", false, Some("integer")),
        ("5", true, Some("int4")),
        ("5", false, Some("SMALLINT")),
        ("5.0", false, None),
        ("5e0", false, None),
        ("0.5e1", false, None),
        ("5.4", false, Some("bigint")),
        ("4.5", false, Some("int8")),
        ("5.0", true, Some("numeric")),
        ("5", false, Some("numeric(10,2)")),
        ("0x5", true, None),
    ] {
        assert_eq!(
            lit(Bigint, text, is_string, cast),
            Ok(int(5)),
            "{text} {is_string} {cast:?}"
        );
    }
    assert_eq!(lit(Bigint, "-5", false, None), Ok(int(-5)));
    assert_eq!(lit(Bigint, "- 5", false, None), Ok(int(-5)));
    assert_eq!(
        lit(Bigint, "-9223372036854775808", false, None),
        Ok(int(i64::MIN))
    );
}

#[test]
fn bigint_literal_errors_and_no_match() {
    // '5.0' is read by int8 input, which rejects it (as PostgreSQL does).
    assert_eq!(code(lit(Bigint, "5.0", true, None)), "22P02");
    assert_eq!(code(lit(Bigint, "abc", true, None)), "22P02");
    assert_eq!(code(lit(Bigint, "", true, None)), "22P02");
    assert_eq!(
        code(lit(Bigint, "9223372036854775808", true, None)),
        "22003"
    );
    assert_eq!(code(lit(Bigint, "70000", false, Some("int2"))), "22003");
    assert_eq!(code(lit(Bigint, "3000000000", true, Some("int4"))), "22003");
    // Compared, a non-integral or huge numeric equals no bigint.
    for v in ["5.5", "1e30", "9223372036854775808", "-9223372036854775809"] {
        assert!(
            matches!(lit(Bigint, v, false, None), Err(KeyError::NoMatch { .. })),
            "{v}"
        );
    }
    assert!(matches!(
        lit(Bigint, "NaN", true, Some("numeric")),
        Err(KeyError::NoMatch { .. })
    ));
    // Casts that cannot meet a bigint column.
    let err = lit(Bigint, "5", true, Some("uuid")).unwrap_err();
    assert_eq!(err.sqlstate(), "22023");
    assert_eq!(code(lit(Bigint, U, true, Some("uuid"))), "22023");
    assert_eq!(code(lit(Bigint, "5", true, Some("text"))), "22023");
    assert_eq!(code(lit(Bigint, "5", false, Some("float8"))), "22023");
    assert_eq!(
        code(lit(Bigint, "5", false, Some("double precision"))),
        "22023"
    );
    assert_eq!(code(lit(Bigint, "5", false, Some("regclass"))), "22023");
    assert_eq!(
        lit(Bigint, "5", true, Some("uuid"))
            .unwrap_err()
            .to_string(),
        "a value cast to uuid cannot be used as a bigint shard key"
    );
    assert_eq!(
        lit(Bigint, "abc", true, None).unwrap_err().to_string(),
        "invalid bigint shard key \"abc\": not a valid bigint"
    );
}

#[test]
fn assignment_rounds_like_postgres() {
    let assign = |t: &str| literal_key(Assign, Bigint, t, false, None);
    assert_eq!(assign("5.5"), Ok(int(6)));
    assert_eq!(assign("-5.5"), Ok(int(-6)));
    assert_eq!(assign("5.49"), Ok(int(5)));
    assert_eq!(code(assign("1e30")), "22003");
    assert_eq!(code(assign("9223372036854775808")), "22003");
    // Into a text column, numbers and uuids are stored through their output functions.
    assert_eq!(literal_key(Assign, Text, "5", false, None), Ok(text("5")));
    assert_eq!(
        literal_key(Assign, Text, "05.10", false, None),
        Ok(text("5.10"))
    );
    assert_eq!(
        literal_key(Assign, Text, U, true, Some("UUID")),
        Ok(text(U))
    );
    // Compared, they are type errors.
    assert_eq!(code(literal_key(Compare, Text, "5", false, None)), "22023");
}

#[test]
fn text_literals() {
    assert_eq!(lit(Text, "KR", true, None), Ok(text("KR")));
    assert_eq!(lit(Text, "KR", true, Some("text")), Ok(text("KR")));
    assert_eq!(lit(Text, "KR", true, Some("varchar")), Ok(text("KR")));
    assert_eq!(
        lit(Text, "KR", true, Some("CHARACTER VARYING")),
        Ok(text("KR"))
    );
    assert_eq!(lit(Text, "KRX", true, Some("varchar(2)")), Ok(text("KR")));
    assert_eq!(lit(Text, "KR  ", true, Some("char(4)")), Ok(text("KR")));
    assert_eq!(lit(Text, "KR", true, Some("char")), Ok(text("K")));
    assert_eq!(lit(Text, "KR ", true, Some("bpchar")), Ok(text("KR")));
    assert_eq!(lit(Text, " KR ", true, None), Ok(text(" KR ")));
    assert_eq!(lit(Text, "5", false, Some("text")), Ok(text("5")));
    assert_eq!(lit(Text, "5.50", false, Some("text")), Ok(text("5.50")));
    assert_eq!(
        lit(Text, "1.50e1", false, Some("varchar")),
        Ok(text("15.0"))
    );
    assert_eq!(lit(Text, "1.5e1", false, Some("varchar")), Ok(text("15")));
    let long = "n".repeat(70);
    assert_eq!(lit(Text, &long, true, Some("name")), Ok(text(&long[..63])));
    assert_eq!(code(lit(Text, "a\0b", true, None)), "22P02");
    assert_eq!(code(lit(Text, "5", true, Some("int8"))), "22023");
}

#[test]
fn uuid_literals() {
    for spelling in [
        U.to_owned(),
        U.to_uppercase(),
        U.replace('-', ""),
        format!("{{{U}}}"),
        format!("{{{}}}", U.replace('-', "").to_uppercase()),
    ] {
        assert_eq!(lit(Uuid, &spelling, true, None), Ok(uuid()), "{spelling}");
        assert_eq!(
            lit(Uuid, &spelling, true, Some("uuid")),
            Ok(uuid()),
            "{spelling}"
        );
    }
    assert_eq!(code(lit(Uuid, "not-a-uuid", true, None)), "22P02");
    assert_eq!(code(lit(Uuid, "5", false, None)), "22023");
    assert_eq!(code(lit(Uuid, U, true, Some("text"))), "22023");
}

fn param(key_type: KeyType, value: &[u8], format: i16, oid: u32) -> Result<KeyValue, KeyError> {
    key_from_param(key_type, Some(value), format, oid)
}

#[test]
fn bigint_params() {
    for oid in [
        oid::INT2,
        oid::INT4,
        oid::INT8,
        oid::UNSPECIFIED,
        oid::UNKNOWN,
        oid::NUMERIC,
    ] {
        assert_eq!(param(Bigint, b"5", 0, oid), Ok(int(5)), "{oid}");
    }
    assert_eq!(param(Bigint, &5i16.to_be_bytes(), 1, oid::INT2), Ok(int(5)));
    assert_eq!(param(Bigint, &5i32.to_be_bytes(), 1, oid::INT4), Ok(int(5)));
    assert_eq!(param(Bigint, &5i64.to_be_bytes(), 1, oid::INT8), Ok(int(5)));
    for bytes in [
        &(-5i16).to_be_bytes()[..],
        &(-5i32).to_be_bytes(),
        &(-5i64).to_be_bytes(),
    ] {
        assert_eq!(param(Bigint, bytes, 1, oid::UNSPECIFIED), Ok(int(-5)));
    }
    // numeric binary 5 (ndigits 1, weight 0, positive, dscale 0).
    assert_eq!(
        param(Bigint, &[0, 1, 0, 0, 0, 0, 0, 0, 0, 5], 1, oid::NUMERIC),
        Ok(int(5))
    );
    assert!(matches!(
        param(Bigint, b"5.5", 0, oid::NUMERIC),
        Err(KeyError::NoMatch { .. })
    ));
    assert_eq!(
        param_key(Assign, Bigint, Some(b"5.5"), 0, oid::NUMERIC),
        Ok(int(6))
    );
    assert_eq!(
        code(param(Bigint, &5i32.to_be_bytes(), 1, oid::INT8)),
        "22P02"
    );
    assert_eq!(
        code(param(Bigint, &[1, 2, 3], 1, oid::UNSPECIFIED)),
        "22P02"
    );
    assert_eq!(code(param(Bigint, b"40000", 0, oid::INT2)), "22003");
    assert_eq!(code(param(Bigint, b"5.0", 0, oid::INT8)), "22P02");
    assert_eq!(code(param(Bigint, b"5", 0, oid::FLOAT8)), "22023");
    assert_eq!(code(param(Bigint, b"5", 0, oid::TEXT)), "22023");
    assert_eq!(code(param(Bigint, b"5", 0, 1184)), "22023");
    assert_eq!(code(param(Bigint, b"5", 2, oid::INT8)), "08P01");
    assert_eq!(code(param(Bigint, b"\xff", 0, oid::INT8)), "22P02");
    assert_eq!(
        key_from_param(Bigint, None, 0, oid::INT8),
        Err(KeyError::Null)
    );
}

#[test]
fn params_with_casts() {
    // `$1::int4` with an unspecified type: the parameter is an int4.
    let cast =
        |v: &[u8], format, oid, c| cast_param_key(Compare, Bigint, Some(v), format, oid, Some(c));
    assert_eq!(cast(b"5", 0, oid::UNSPECIFIED, "int4"), Ok(int(5)));
    assert_eq!(
        cast(&5i32.to_be_bytes(), 1, oid::UNSPECIFIED, "int4"),
        Ok(int(5))
    );
    assert_eq!(
        code(cast(b"3000000000", 0, oid::UNSPECIFIED, "int4")),
        "22003"
    );
    // A declared numeric cast to bigint rounds.
    assert_eq!(cast(b"5.5", 0, oid::NUMERIC, "bigint"), Ok(int(6)));
    assert_eq!(code(cast(b"5", 0, oid::UNSPECIFIED, "float8")), "22023");
    let t = cast_param_key(Compare, Text, Some(b"abc"), 0, 0, Some("varchar(2)"));
    assert_eq!(t, Ok(text("ab")));
}

#[test]
fn text_and_uuid_params() {
    for oid in [
        oid::TEXT,
        oid::VARCHAR,
        oid::NAME,
        oid::UNSPECIFIED,
        oid::UNKNOWN,
    ] {
        assert_eq!(param(Text, b"KR", 0, oid), Ok(text("KR")), "{oid}");
        assert_eq!(param(Text, b"KR", 1, oid), Ok(text("KR")), "{oid}");
    }
    assert_eq!(param(Text, b"KR  ", 0, oid::BPCHAR), Ok(text("KR")));
    assert_eq!(param(Text, b"KR  ", 1, oid::BPCHAR), Ok(text("KR")));
    assert_eq!(param(Text, b"KR  ", 0, oid::TEXT), Ok(text("KR  ")));
    assert_eq!(code(param(Text, b"\xff", 1, oid::TEXT)), "22P02");
    assert_eq!(code(param(Text, b"5", 0, oid::INT8)), "22023");
    assert_eq!(
        param_key(Assign, Text, Some(b"5"), 0, oid::INT8),
        Ok(text("5"))
    );
    let raw = uuid_raw();
    for (bytes, format, oid) in [
        (U.as_bytes().to_vec(), 0, oid::UUID),
        (U.to_uppercase().into_bytes(), 0, oid::UNSPECIFIED),
        (format!("{{{U}}}").into_bytes(), 0, oid::UNKNOWN),
        (raw.to_vec(), 1, oid::UUID),
        (raw.to_vec(), 1, oid::UNSPECIFIED),
    ] {
        assert_eq!(param(Uuid, &bytes, format, oid), Ok(uuid()), "{bytes:?}");
    }
    assert_eq!(code(param(Uuid, &raw[..15], 1, oid::UUID)), "22P02");
    assert_eq!(code(param(Uuid, U.as_bytes(), 0, oid::TEXT)), "22023");
}

fn uuid_raw() -> [u8; 16] {
    match uuid() {
        KeyValue::Uuid(b) => b,
        _ => unreachable!(),
    }
}

#[test]
fn array_params() {
    let keys = |v: &[u8], format, oid| keys_from_array_param(Bigint, Some(v), format, oid);
    assert_eq!(
        keys(b"{1,2,\"3\",NULL}", 0, oid::INT8_ARRAY),
        Ok(vec![int(1), int(2), int(3)])
    );
    assert_eq!(
        keys(b"{{1,2},{3,4}}", 0, oid::UNSPECIFIED),
        Ok(vec![int(1), int(2), int(3), int(4)])
    );
    assert_eq!(keys(b"{}", 0, oid::INT4_ARRAY), Ok(vec![]));
    assert_eq!(keys(b"{1.0,1.5}", 0, oid::NUMERIC_ARRAY), Ok(vec![int(1)]));
    assert_eq!(
        code(keys(b"{1,x}", 0, oid::INT8_ARRAY).map(|_| int(0))),
        "22P02"
    );
    assert_eq!(
        code(keys(b"{1,2", 0, oid::INT8_ARRAY).map(|_| int(0))),
        "22P02"
    );
    assert_eq!(code(keys(b"{1}", 0, oid::INT8).map(|_| int(0))), "22023");
    assert_eq!(
        keys_from_array_param(Bigint, None, 0, oid::INT8_ARRAY),
        Ok(vec![])
    );
    // Binary int4[] {7, NULL, 9}.
    let mut bin = Vec::new();
    for word in [1i32, 1, oid::INT4 as i32, 3, 1, 4, 7, -1, 4, 9] {
        bin.extend(word.to_be_bytes());
    }
    assert_eq!(keys(&bin, 1, oid::INT4_ARRAY), Ok(vec![int(7), int(9)]));
    assert_eq!(keys(&bin, 1, oid::UNSPECIFIED), Ok(vec![int(7), int(9)]));
    assert_eq!(
        code(keys(&bin[..bin.len() - 1], 1, oid::INT4_ARRAY).map(|_| int(0))),
        "22P02"
    );
    let texts = keys_from_array_param(Text, Some(br#"{KR,"U S",NULL,"NULL"}"#), 0, oid::TEXT_ARRAY);
    assert_eq!(texts, Ok(vec![text("KR"), text("U S"), text("NULL")]));
    let uuids = keys_from_array_param(
        Uuid,
        Some(format!("{{{U}}}").as_bytes()),
        0,
        oid::UUID_ARRAY,
    );
    assert_eq!(uuids, Ok(vec![uuid()]));
}

#[test]
fn copy_fields_use_the_column_input_function() {
    assert_eq!(key_from_copy_field(Bigint, b"5"), Ok(int(5)));
    assert_eq!(code(key_from_copy_field(Bigint, b"5.0")), "22P02");
    assert_eq!(key_from_copy_field(Text, b" x "), Ok(text(" x ")));
    assert_eq!(key_from_copy_field(Uuid, U.as_bytes()), Ok(uuid()));
}

#[test]
fn key_sources_and_route_errors() {
    let src = KeySource::Literal {
        text: "5",
        is_string: true,
        cast: None,
    };
    assert_eq!(src.to_key(Bigint, Compare), Ok(int(5)));
    let p = KeySource::Param {
        value: Some(b"5"),
        format: 0,
        type_oid: 0,
        cast: None,
    };
    assert_eq!(p.to_key(Bigint, Assign), Ok(int(5)));
    assert_eq!(KeySource::Null.to_key(Bigint, Assign), Err(KeyError::Null));
    let e = KeyError::Null.to_route_error("orders", "user_id");
    assert_eq!(e.code, "23502");
    assert!(
        e.message.contains("\"user_id\"") && e.message.contains("\"orders\""),
        "{}",
        e.message
    );
    let e = lit(Bigint, "abc", true, None)
        .unwrap_err()
        .to_route_error("orders", "user_id");
    assert_eq!(e.code, "22P02");
    assert!(e.message.contains("abc"), "{}", e.message);
    let long = "x".repeat(500);
    let e = lit(Bigint, &long, true, None).unwrap_err().to_string();
    assert!(e.len() < 200, "{e}");
}
