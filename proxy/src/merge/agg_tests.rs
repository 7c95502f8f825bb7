use proptest::prelude::*;

use super::*;

const TEXT: bool = false;
const BINARY: bool = true;

fn ty(oid: u32, binary: bool) -> ColumnType {
    ColumnType { oid, binary }
}

fn int8_ty(binary: bool) -> Option<ColumnType> {
    Some(ty(oids::INT8, binary))
}

/// Combines text partials and returns the text and binary results (None = NULL).
fn combine(
    func: AggFunc,
    oid: u32,
    partials: &[(Option<&str>, Option<&str>)],
) -> (Option<String>, Option<Vec<u8>>) {
    let mut acc = Accumulator::new(func, ty(oid, TEXT), int8_ty(TEXT)).unwrap();
    for (arg, count) in partials {
        acc.add(arg.map(str::as_bytes), count.map(str::as_bytes))
            .unwrap();
    }
    finish_both(&acc)
}

fn finish_both(acc: &Accumulator) -> (Option<String>, Option<Vec<u8>>) {
    let mut text = Vec::new();
    let text = acc
        .finish(TEXT, &mut text)
        .unwrap()
        .then(|| String::from_utf8(text).unwrap());
    let mut bin = Vec::new();
    let bin = acc.finish(BINARY, &mut bin).unwrap().then_some(bin);
    (text, bin)
}

fn text_of(func: AggFunc, oid: u32, partials: &[Option<&str>]) -> Option<String> {
    let pairs: Vec<_> = partials.iter().map(|p| (*p, None)).collect();
    combine(func, oid, &pairs).0
}

#[test]
fn count_sums_and_starts_at_zero() {
    let acc = Accumulator::new(AggFunc::Count, ty(oids::INT8, TEXT), None).unwrap();
    assert_eq!(finish_both(&acc), (Some("0".into()), Some(vec![0; 8])));
    assert_eq!(
        text_of(
            AggFunc::Count,
            oids::INT8,
            &[Some("3"), Some("0"), Some("4")]
        ),
        Some("7".into())
    );
    assert_eq!(acc.output_oid(), 20);
    assert_eq!(acc.output_typlen(), 8);
}

#[test]
fn int8_sum_overflow_is_bigint_out_of_range() {
    let mut acc = Accumulator::new(AggFunc::Sum, ty(oids::INT8, BINARY), None).unwrap();
    acc.add(Some(&i64::MAX.to_be_bytes()), None).unwrap();
    let err = acc.add(Some(&1i64.to_be_bytes()), None).unwrap_err();
    assert_eq!(err, AggError::OutOfRange("bigint"));
    assert_eq!(err.to_string(), "bigint out of range");
    assert_eq!(err.sqlstate(), "22003");
    assert_eq!(
        text_of(AggFunc::Sum, oids::INT8, &[None, Some("-5"), None]),
        Some("-5".into())
    );
    assert_eq!(text_of(AggFunc::Sum, oids::INT8, &[None, None]), None);
}

#[test]
fn numeric_sum_keeps_largest_scale_and_special_values() {
    let sum = |p: &[Option<&str>]| text_of(AggFunc::Sum, oids::NUMERIC, p);
    assert_eq!(sum(&[Some("1.5"), None, Some("2.25")]), Some("3.75".into()));
    assert_eq!(sum(&[Some("1.50"), Some("-1.5")]), Some("0.00".into()));
    assert_eq!(
        sum(&[Some("1"), Some("NaN"), Some("Infinity")]),
        Some("NaN".into())
    );
    assert_eq!(
        sum(&[Some("Infinity"), Some("-Infinity")]),
        Some("NaN".into())
    );
    assert_eq!(
        sum(&[Some("-Infinity"), Some("7")]),
        Some("-Infinity".into())
    );
    assert_eq!(sum(&[None]), None);
    let acc = Accumulator::new(AggFunc::Sum, ty(oids::NUMERIC, BINARY), None).unwrap();
    assert_eq!((acc.output_oid(), acc.output_typlen()), (1700, -1));
}

#[test]
fn float_sums_and_overflow() {
    assert_eq!(
        text_of(
            AggFunc::Sum,
            oids::FLOAT8,
            &[Some("0.5"), Some("0.25"), Some("-0")]
        ),
        Some("0.75".into())
    );
    assert_eq!(
        text_of(AggFunc::Sum, oids::FLOAT8, &[Some("Infinity"), Some("1")]),
        Some("Infinity".into())
    );
    assert_eq!(
        text_of(AggFunc::Sum, oids::FLOAT4, &[Some("1e+06"), Some("0.5")]),
        Some("1.0000005e+06".into())
    );
    let mut acc = Accumulator::new(AggFunc::Sum, ty(oids::FLOAT8, TEXT), None).unwrap();
    acc.add(Some(b"1e308"), None).unwrap();
    assert_eq!(
        acc.add(Some(b"1e308"), None).unwrap_err().sqlstate(),
        "22003"
    );
    let mut acc = Accumulator::new(AggFunc::Sum, ty(oids::FLOAT4, BINARY), None).unwrap();
    acc.add(Some(&3e38f32.to_be_bytes()), None).unwrap();
    assert!(acc.add(Some(&3e38f32.to_be_bytes()), None).is_err());
    assert_eq!(acc.output_typlen(), 4);
}

#[test]
fn min_max_keep_bytes_and_postgres_tie_rules() {
    let max = |oid, p: &[Option<&str>]| text_of(AggFunc::Max, oid, p);
    let min = |oid, p: &[Option<&str>]| text_of(AggFunc::Min, oid, p);
    assert_eq!(
        max(oids::INT4, &[Some("-3"), None, Some("12"), Some("7")]),
        Some("12".into())
    );
    assert_eq!(
        min(oids::INT4, &[Some("-3"), None, Some("12")]),
        Some("-3".into())
    );
    assert_eq!(
        max(oids::FLOAT8, &[Some("Infinity"), Some("NaN"), Some("1")]),
        Some("NaN".into())
    );
    // Ties: the later value wins (numeric_larger, float8smaller, ...).
    assert_eq!(
        max(oids::NUMERIC, &[Some("1.5"), Some("1.50")]),
        Some("1.50".into())
    );
    assert_eq!(
        min(oids::FLOAT8, &[Some("0"), Some("-0")]),
        Some("-0".into())
    );
    // ... except bpchar, whose larger / smaller keep the first.
    assert_eq!(
        max(oids::BPCHAR, &[Some("a "), Some("a")]),
        Some("a ".into())
    );
    assert_eq!(
        min(oids::TEXT, &[Some("b"), Some("ab"), Some("b")]),
        Some("ab".into())
    );
    assert_eq!(max(oids::TEXT, &[None, None]), None);
    let acc = Accumulator::new(AggFunc::Max, ty(oids::TIMESTAMPTZ, BINARY), None).unwrap();
    assert_eq!((acc.output_oid(), acc.output_typlen()), (1184, 8));
    let mut acc = Accumulator::new(AggFunc::Min, ty(oids::INT4, BINARY), None).unwrap();
    assert_eq!(acc.add(Some(b"xyz"), None), Err(AggError::Invalid("int4")));
}

#[test]
fn avg_of_integers_is_numeric_with_division_scale() {
    let avg = |p: &[(Option<&str>, Option<&str>)]| combine(AggFunc::Avg, oids::INT8, p);
    let (text, bin) = avg(&[(Some("1"), Some("1")), (Some("2"), Some("1"))]);
    assert_eq!(text.as_deref(), Some("1.5000000000000000"));
    // 1.5 at dscale 16: weight 0, digits 1 5000, positive.
    assert_eq!(bin.unwrap(), [0, 2, 0, 0, 0, 0, 0, 16, 0, 1, 0x13, 0x88]);
    let (text, _) = avg(&[(Some("1"), Some("3")), (None, Some("0"))]);
    assert_eq!(text.as_deref(), Some("0.33333333333333333333"));
    assert_eq!(avg(&[(None, Some("0")), (None, Some("0"))]), (None, None));
    let acc = Accumulator::new(AggFunc::Avg, ty(oids::INT8, TEXT), int8_ty(TEXT)).unwrap();
    assert_eq!(acc.output_oid(), 1700);
}

#[test]
fn avg_of_numeric_and_special_values() {
    let avg = |p: &[(Option<&str>, Option<&str>)]| combine(AggFunc::Avg, oids::NUMERIC, p).0;
    assert_eq!(
        avg(&[(Some("0.00001"), Some("2")), (Some("0"), Some("1"))]),
        Some("0.000003333333333333333333".into())
    );
    assert_eq!(
        avg(&[(Some("NaN"), Some("1")), (Some("3"), Some("1"))]),
        Some("NaN".into())
    );
    assert_eq!(
        avg(&[
            (Some("Infinity"), Some("1")),
            (Some("-Infinity"), Some("1"))
        ]),
        Some("NaN".into())
    );
    assert_eq!(
        avg(&[(Some("-Infinity"), Some("2"))]),
        Some("-Infinity".into())
    );
}

#[test]
fn avg_of_floats_is_float8() {
    let (text, bin) = combine(
        AggFunc::Avg,
        oids::FLOAT4,
        &[(Some("1.5"), Some("2")), (Some("0.5"), Some("1"))],
    );
    assert_eq!(text.as_deref(), Some("0.6666666666666666"));
    assert_eq!(bin.unwrap(), (2.0f64 / 3.0).to_be_bytes());
    let acc = Accumulator::new(AggFunc::Avg, ty(oids::FLOAT4, TEXT), int8_ty(TEXT)).unwrap();
    assert_eq!((acc.output_oid(), acc.output_typlen()), (701, 8));
}

#[test]
fn bool_and_or_ignore_nulls() {
    let and = |p: &[Option<&str>]| text_of(AggFunc::BoolAnd, oids::BOOL, p);
    let or = |p: &[Option<&str>]| text_of(AggFunc::BoolOr, oids::BOOL, p);
    assert_eq!(and(&[Some("t"), None, Some("f")]), Some("f".into()));
    assert_eq!(and(&[Some("t"), None]), Some("t".into()));
    assert_eq!(or(&[Some("f"), None, Some("t")]), Some("t".into()));
    assert_eq!(or(&[None]), None);
    let mut acc = Accumulator::new(AggFunc::BoolOr, ty(oids::BOOL, BINARY), None).unwrap();
    acc.add(Some(&[0]), None).unwrap();
    assert_eq!(finish_both(&acc), (Some("f".into()), Some(vec![0])));
    assert_eq!(acc.output_typlen(), 1);
}

#[test]
fn reset_starts_over() {
    let mut acc = Accumulator::new(AggFunc::Count, ty(oids::INT8, TEXT), None).unwrap();
    acc.add(Some(b"5"), None).unwrap();
    acc.reset();
    acc.add(Some(b"2"), None).unwrap();
    assert_eq!(finish_both(&acc).0.as_deref(), Some("2"));
    let mut acc = Accumulator::new(AggFunc::Avg, ty(oids::NUMERIC, TEXT), int8_ty(TEXT)).unwrap();
    acc.add(Some(b"NaN"), Some(b"1")).unwrap();
    acc.reset();
    assert_eq!(finish_both(&acc), (None, None));
}

#[test]
fn unsupported_combinations() {
    let refuse = |func, oid, count| {
        assert!(matches!(
            Accumulator::new(func, ty(oid, TEXT), count),
            Err(AggError::Unsupported { .. })
        ));
    };
    refuse(AggFunc::Sum, 1186, None); // interval
    refuse(AggFunc::Sum, 790, None); // money
    refuse(AggFunc::Sum, oids::INT4, None);
    refuse(AggFunc::Count, oids::INT4, None);
    refuse(AggFunc::Max, 1186, None);
    refuse(AggFunc::Avg, oids::INT8, None);
    refuse(AggFunc::Avg, oids::INT8, Some(ty(oids::INT4, TEXT)));
    refuse(AggFunc::Avg, oids::TEXT, int8_ty(TEXT));
    refuse(AggFunc::BoolAnd, oids::INT4, None);
    let err = Accumulator::new(AggFunc::Sum, ty(1186, TEXT), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "sum over type 1186 across shards is not supported"
    );
    assert_eq!(err.sqlstate(), "0A000");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_partials_never_panic(
        func in 0usize..7,
        oid in prop::sample::select(vec![16u32, 20, 21, 23, 25, 700, 701, 1042, 1082, 1114, 1700]),
        binary in any::<bool>(),
        partials in prop::collection::vec(
            (prop::option::of(prop::collection::vec(any::<u8>(), 0..12)),
             prop::option::of(prop::collection::vec(any::<u8>(), 0..9))),
            0..6),
    ) {
        let func = [AggFunc::Count, AggFunc::Sum, AggFunc::Min, AggFunc::Max, AggFunc::Avg,
            AggFunc::BoolAnd, AggFunc::BoolOr][func];
        if let Ok(mut acc) = Accumulator::new(func, ty(oid, binary), int8_ty(binary)) {
            for (arg, count) in &partials {
                let _ = acc.add(arg.as_deref(), count.as_deref());
            }
            let mut out = Vec::new();
            let _ = acc.finish(binary, &mut out);
            let _ = acc.finish(!binary, &mut out);
        }
    }
}
