use proptest::prelude::*;
use shard_router::merge::{CmpOp, Filter, Literal, Operand};

use super::*;

const T: Option<bool> = Some(true);
const F: Option<bool> = Some(false);
const N: Option<bool> = None;

fn text(oid: u32) -> ColumnType {
    ColumnType { oid, binary: false }
}

fn bin(oid: u32) -> ColumnType {
    ColumnType { oid, binary: true }
}

fn col(i: usize) -> Operand {
    Operand::Column(i)
}

fn num(s: &str) -> Operand {
    Operand::Literal(Literal::Number(s.into()))
}

fn string(s: &str) -> Operand {
    Operand::Literal(Literal::Text(s.into()))
}

fn cmp(op: CmpOp, left: Operand, right: Operand) -> Filter {
    Filter::Cmp { op, left, right }
}

/// `column 0 <op> right` over one value of type `ty`.
fn check(ty: ColumnType, value: Option<&[u8]>, op: CmpOp, right: Operand) -> Option<bool> {
    eval(&cmp(op, col(0), right), &[value], &[ty], &[]).unwrap()
}

fn check_err(ty: ColumnType, value: &str, right: Operand) -> FilterError {
    eval(
        &cmp(CmpOp::Eq, col(0), right),
        &[Some(value.as_bytes())],
        &[ty],
        &[],
    )
    .unwrap_err()
}

/// A constant condition with the given truth value.
fn constant(v: Option<bool>) -> Filter {
    match v {
        Some(b) => cmp(CmpOp::Eq, num("1"), num(if b { "1" } else { "2" })),
        None => cmp(CmpOp::Eq, num("1"), Operand::Literal(Literal::Null)),
    }
}

#[test]
fn three_valued_logic() {
    let run = |f: &Filter| eval(f, &[], &[], &[]).unwrap();
    for a in [T, F, N] {
        assert_eq!(run(&Filter::Not(Box::new(constant(a)))), a.map(|b| !b));
        for b in [T, F, N] {
            let and = run(&Filter::And(vec![constant(a), constant(b)]));
            let or = run(&Filter::Or(vec![constant(a), constant(b)]));
            let want_and = match (a, b) {
                (F, _) | (_, F) => F,
                (T, T) => T,
                _ => N,
            };
            let want_or = match (a, b) {
                (T, _) | (_, T) => T,
                (F, F) => F,
                _ => N,
            };
            assert_eq!((and, or), (want_and, want_or), "{a:?} {b:?}");
        }
    }
    assert_eq!(run(&Filter::And(vec![])), T);
    assert_eq!(run(&Filter::Or(vec![])), F);
}

#[test]
fn is_null() {
    let row = [None, Some(&b"1"[..])];
    let types = [text(23), text(23)];
    let params = [None, Some("x".to_string())];
    let run = |operand, negated| {
        eval(&Filter::IsNull { operand, negated }, &row, &types, &params).unwrap()
    };
    assert_eq!(run(col(0), false), T);
    assert_eq!(run(col(1), false), F);
    assert_eq!(run(col(1), true), T);
    assert_eq!(run(Operand::Param(0), false), T);
    assert_eq!(run(Operand::Param(1), false), F);
    assert_eq!(run(Operand::Literal(Literal::Null), false), T);
    assert_eq!(run(num("3"), true), T);
}

#[test]
fn integers_compare_exactly() {
    let v = Some(&b"9007199254740993"[..]);
    assert_eq!(check(text(20), v, CmpOp::Eq, num("9007199254740993")), T);
    assert_eq!(check(text(20), v, CmpOp::Gt, num("9007199254740992.0")), T);
    assert_eq!(check(text(23), Some(b"2"), CmpOp::Lt, num("2.5")), T);
    assert_eq!(check(text(23), Some(b"-7"), CmpOp::LtEq, num("-7")), T);
    assert_eq!(
        check(bin(21), Some(&5i16.to_be_bytes()), CmpOp::GtEq, num("5")),
        T
    );
    assert_eq!(
        check(
            bin(20),
            Some(&5i64.to_be_bytes()),
            CmpOp::NotEq,
            string(" 5 ")
        ),
        F
    );
    assert_eq!(
        check(text(26), Some(b"4294967295"), CmpOp::Eq, string("-1")),
        T
    );
    assert_eq!(check(text(23), None, CmpOp::Eq, num("1")), N);
}

#[test]
fn numeric_and_float_rules() {
    let v = Some(&b"1.50"[..]);
    assert_eq!(check(text(1700), v, CmpOp::Eq, num("1.5")), T);
    assert_eq!(check(text(1700), v, CmpOp::Eq, string("15e-1")), T);
    assert_eq!(
        check(text(1700), Some(b"NaN"), CmpOp::Gt, string("Infinity")),
        T
    );
    // float8 vs numeric constant: as float8.
    assert_eq!(check(text(701), Some(b"0.1"), CmpOp::Eq, num("0.1")), T);
    // float4 vs numeric constant: float4 widened to float8, so 0.1::real <> 0.1.
    assert_eq!(check(text(700), Some(b"0.1"), CmpOp::Eq, num("0.1")), F);
    // ... but a string constant is read as real.
    assert_eq!(check(text(700), Some(b"0.1"), CmpOp::Eq, string("0.1")), T);
    assert_eq!(check(text(701), Some(b"NaN"), CmpOp::Eq, string("nan")), T);
    assert_eq!(
        check(text(701), Some(b"NaN"), CmpOp::Gt, string("Infinity")),
        T
    );
    assert_eq!(
        check(
            bin(701),
            Some(&(-0.0f64).to_be_bytes()),
            CmpOp::Eq,
            num("0")
        ),
        T
    );
    // Integer columns against floats compare as float8.
    let row = [
        Some(&b"9007199254740993"[..]),
        Some(&b"9007199254740992"[..]),
    ];
    let f = cmp(CmpOp::Eq, col(0), col(1));
    assert_eq!(eval(&f, &row, &[text(20), text(701)], &[]).unwrap(), T);
    assert_eq!(eval(&f, &row, &[text(20), text(1700)], &[]).unwrap(), F);
}

#[test]
fn text_bool_and_time() {
    assert_eq!(check(text(25), Some(b"abc"), CmpOp::Lt, string("abd")), T);
    assert_eq!(check(text(25), Some(b"a "), CmpOp::Eq, string("a")), F);
    assert_eq!(check(text(1042), Some(b"a  "), CmpOp::Eq, string("a")), T);
    assert_eq!(
        check(text(25), Some("é".as_bytes()), CmpOp::Gt, string("z")),
        T
    );
    assert_eq!(
        check(
            text(16),
            Some(b"t"),
            CmpOp::Eq,
            Operand::Literal(Literal::Bool(true))
        ),
        T
    );
    assert_eq!(check(bin(16), Some(&[0]), CmpOp::Eq, string(" OFF ")), T);
    assert_eq!(check(text(16), Some(b"f"), CmpOp::Lt, string("y")), T);
    assert_eq!(
        check(
            text(1082),
            Some(b"2024-01-02"),
            CmpOp::Gt,
            string("2024-01-01")
        ),
        T
    );
    let days: i32 = (2024 - 2000) * 365 + 6 + 1; // 2024-01-02 in days since 2000-01-01
    let date = Some(&days.to_be_bytes()[..]);
    assert_eq!(check(bin(1082), date, CmpOp::Eq, string("2024-01-02")), T);
    assert_eq!(check(bin(1082), date, CmpOp::Lt, string("infinity")), T);
    let ts = Some(&b"2024-01-02 00:00:00"[..]);
    assert_eq!(check(text(1114), ts, CmpOp::Eq, string("2024-01-02")), T);
    assert_eq!(
        check(text(1114), ts, CmpOp::Lt, string("2024-01-02T00:01")),
        T
    );
    let tz = Some(&b"2024-01-02 03:00:00+03"[..]);
    assert_eq!(
        check(text(1184), tz, CmpOp::Eq, string("2024-01-02 00:00:00Z")),
        T
    );
    assert_eq!(
        check(text(1184), tz, CmpOp::Eq, string("2024-01-01 21:00-03")),
        T
    );
    let micros = 24 * 365 * 86_400_000_000i64 + 7 * 86_400_000_000;
    let tzb = Some(&micros.to_be_bytes()[..]);
    assert_eq!(
        check(bin(1184), tzb, CmpOp::Eq, string("2024-01-02 00:00:00+00")),
        T
    );
    let id = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    assert_eq!(
        check(
            text(2950),
            Some(id.as_bytes()),
            CmpOp::Eq,
            string(&id.to_uppercase())
        ),
        T
    );
    // Date against timestamp: the date is midnight.
    let row = [Some(&b"2024-01-02"[..]), Some(&b"2024-01-02 00:00:00"[..])];
    let f = cmp(CmpOp::Eq, col(0), col(1));
    assert_eq!(eval(&f, &row, &[text(1082), text(1114)], &[]).unwrap(), T);
}

#[test]
fn params_take_the_column_type() {
    let params = [Some("10".to_string()), None, Some("abc".to_string())];
    let run = |p| {
        let f = cmp(CmpOp::Lt, col(0), Operand::Param(p));
        eval(&f, &[Some(b"9")], &[text(23)], &params)
    };
    assert_eq!(run(0).unwrap(), T);
    assert_eq!(run(1).unwrap(), N);
    assert_eq!(
        run(2).unwrap_err(),
        FilterError::Invalid("invalid input syntax for type integer: \"abc\"".into())
    );
    assert_eq!(
        run(3).unwrap_err(),
        FilterError::Invalid("there is no parameter $4".into())
    );
}

#[test]
fn errors_like_postgres() {
    let invalid = |s: &str| FilterError::Invalid(s.to_string());
    let e = check_err(text(23), "1", string("abc"));
    assert_eq!(e, invalid("invalid input syntax for type integer: \"abc\""));
    assert_eq!(e.sqlstate(), "22P02");
    assert_eq!(
        check_err(text(23), "1", string("2.5")),
        invalid("invalid input syntax for type integer: \"2.5\"")
    );
    assert_eq!(
        check_err(text(21), "1", string("99999")),
        invalid("value \"99999\" is out of range for type smallint")
    );
    assert_eq!(
        check_err(text(1700), "1", string("x1")),
        invalid("invalid input syntax for type numeric: \"x1\"")
    );
    assert_eq!(
        check_err(text(701), "1", string("1e400")),
        invalid("\"1e400\" is out of range for type double precision")
    );
    assert_eq!(
        check_err(text(700), "1", string("1e-50")),
        invalid("\"1e-50\" is out of range for type real")
    );
    assert_eq!(
        check_err(text(16), "t", string("maybe")),
        invalid("invalid input syntax for type boolean: \"maybe\"")
    );
    assert_eq!(
        check_err(
            text(2950),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            string("x")
        ),
        invalid("invalid input syntax for type uuid: \"x\"")
    );
    // A bad constant fails even when the column is NULL.
    let f = cmp(CmpOp::Eq, col(0), string("abc"));
    assert!(eval(&f, &[None], &[text(20)], &[]).is_err());
    let unsupported = |e: FilterError| {
        assert_eq!(e.sqlstate(), "0A000", "{e}");
        e.to_string()
    };
    assert_eq!(
        unsupported(check_err(text(25), "a", num("1"))),
        "operator does not exist: text = integer"
    );
    assert_eq!(
        unsupported(check_err(text(16), "t", num("1.5"))),
        "operator does not exist: boolean = numeric"
    );
    unsupported(check_err(text(1186), "1 day", string("1 day")));
    unsupported(check_err(
        text(1184),
        "2024-01-01 00:00:00+00",
        string("2024-01-01"),
    ));
    unsupported(check_err(text(1082), "2024-01-01", string("Jan 1 2024")));
    let f = cmp(CmpOp::Eq, col(3), num("1"));
    unsupported(eval(&f, &[None], &[text(23)], &[]).unwrap_err());
}

#[test]
fn bool_input_spellings() {
    for s in ["t", "TRUE", "tr", "y", "yes", "on", "1", " true "] {
        assert_eq!(parse_input(s, SqlType::Bool), Ok(Key::Bool(true)), "{s}");
    }
    for s in ["f", "False", "n", "no", "off", "of", "0"] {
        assert_eq!(parse_input(s, SqlType::Bool), Ok(Key::Bool(false)), "{s}");
    }
    for s in ["", "o", "truex", "2", "yess"] {
        assert!(parse_input(s, SqlType::Bool).is_err(), "{s}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_values_never_panic(
        oid in prop::sample::select(vec![16u32, 20, 21, 23, 25, 26, 700, 701, 1042, 1082, 1114,
            1184, 1700, 2950]),
        binary in any::<bool>(),
        value in prop::option::of(prop::collection::vec(any::<u8>(), 0..20)),
        constant in "\\PC{0,12}",
        op in 0usize..6,
    ) {
        let op = [CmpOp::Eq, CmpOp::NotEq, CmpOp::Lt, CmpOp::LtEq, CmpOp::Gt, CmpOp::GtEq][op];
        let ty = ColumnType { oid, binary };
        for right in [string(&constant), num(&constant), Operand::Param(0)] {
            let f = cmp(op, col(0), right);
            let _ = eval(&f, &[value.as_deref()], &[ty], &[Some(constant.clone())]);
        }
    }
}
