use proptest::prelude::*;

use super::*;

fn dec(s: &str) -> Decimal {
    Decimal::from_text(s).unwrap_or_else(|| panic!("parse {s:?}"))
}

fn binary(d: &Decimal) -> Vec<u8> {
    let mut out = Vec::new();
    d.write_binary(&mut out).unwrap();
    out
}

/// Binary numeric from its header fields and digits.
fn wire(ndigits: i16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for d in digits {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out
}

#[test]
fn text_keeps_display_scale() {
    for (input, shown) in [
        ("0", "0"),
        ("-0.000", "0.000"),
        ("1.50", "1.50"),
        ("  -12.5  ", "-12.5"),
        ("+.5", "0.5"),
        ("5.", "5"),
        ("15e-1", "1.5"),
        ("1.5e3", "1500"),
        ("1.25E+1", "12.5"),
        ("0.000001e2", "0.0001"),
        ("nan", "NaN"),
        ("-inf", "-Infinity"),
        ("+Infinity", "Infinity"),
        ("00012.3400", "12.3400"),
    ] {
        assert_eq!(dec(input).to_text(), shown, "{input:?}");
    }
    for bad in [
        "",
        " ",
        ".",
        "-",
        "1e",
        "e5",
        "1.2.3",
        "abc",
        "1 2",
        "-NaN",
        "1e+",
        "0x10",
        "1e99999999",
    ] {
        assert_eq!(Decimal::from_text(bad), None, "{bad:?}");
    }
}

#[test]
fn binary_layout_is_postgres() {
    assert_eq!(binary(&dec("0.00")), wire(0, 0, 0, 2, &[]));
    assert_eq!(binary(&dec("1.5")), wire(2, 0, 0, 1, &[1, 5000]));
    assert_eq!(binary(&dec("10000")), wire(1, 1, 0, 0, &[1]));
    assert_eq!(binary(&dec("0.0001")), wire(1, -1, 0, 4, &[1]));
    assert_eq!(binary(&dec("0.00010")), wire(1, -1, 0, 5, &[1]));
    assert_eq!(
        binary(&dec("-123456.789")),
        wire(3, 1, 0x4000, 3, &[12, 3456, 7890])
    );
    assert_eq!(binary(&dec("100000000")), wire(1, 2, 0, 0, &[1]));
    assert_eq!(binary(&Decimal::NaN), wire(0, 0, 0xC000, 0, &[]));
    assert_eq!(binary(&Decimal::PosInf), wire(0, 0, 0xD000, 32, &[]));
    assert_eq!(binary(&Decimal::NegInf), wire(0, 0, 0xF000, 32, &[]));
}

#[test]
fn binary_input_truncates_past_dscale() {
    // 1.23456 sent with dscale 2 reads as 1.23, as numeric_recv does.
    let v = Decimal::from_binary(&wire(3, 0, 0, 2, &[1, 2345, 6000])).unwrap();
    assert_eq!(v.to_text(), "1.23");
    assert_eq!(Decimal::from_binary(&wire(1, 0, 0, 0, &[10000])), None);
    assert_eq!(Decimal::from_binary(&wire(1, 0, 0x1234, 0, &[1])), None);
    assert_eq!(Decimal::from_binary(&wire(2, 0, 0, 0, &[1])), None);
    assert_eq!(Decimal::from_binary(&[0, 0, 0]), None);
}

#[test]
fn add_like_postgres() {
    let sum = |a: &str, b: &str| dec(a).add(&dec(b)).to_text();
    assert_eq!(sum("1.5", "1.50"), "3.00");
    assert_eq!(sum("-1.5", "1.5"), "0.0");
    assert_eq!(sum("99999999999999999999", "1"), "100000000000000000000");
    assert_eq!(sum("0.001", "-2"), "-1.999");
    assert_eq!(sum("NaN", "Infinity"), "NaN");
    assert_eq!(sum("Infinity", "-Infinity"), "NaN");
    assert_eq!(sum("Infinity", "5"), "Infinity");
    assert_eq!(sum("-5", "-Infinity"), "-Infinity");
    assert_eq!(sum("Infinity", "Infinity"), "Infinity");
}

#[test]
fn division_scale_and_rounding_like_postgres() {
    // Each expected value is what PostgreSQL 15 prints for `a::numeric / b`.
    for (a, b, want) in [
        ("3", 2, "1.5000000000000000"),
        ("1", 3, "0.33333333333333333333"),
        ("2", 3, "0.66666666666666666667"),
        ("-2", 3, "-0.66666666666666666667"),
        ("0", 7, "0.00000000000000000000"),
        ("1000000", 3, "333333.333333333333"),
        ("0.00001", 3, "0.000003333333333333333333"),
        ("10", 1, "10.0000000000000000"),
        ("9999", 1, "9999.0000000000000000"),
        ("10000", 1, "10000.0000000000000000"),
        ("1", 1, "1.00000000000000000000"),
        ("5", 10, "0.50000000000000000000"),
        (
            "1.000000000000000000000000",
            3,
            "0.333333333333333333333333",
        ),
        ("7", -2, "-3.5000000000000000"),
        ("-5", 2, "-2.5000000000000000"),
        (
            "123456789012345678901234567890",
            7,
            "17636684144620811271604938270",
        ),
        (
            "0.00000000000000000005",
            2,
            "0.000000000000000000025000000000000000",
        ),
        (
            "0.0000000000000000000000000000000000000003",
            2,
            "0.00000000000000000000000000000000000000015000000000000000",
        ),
    ] {
        assert_eq!(dec(a).div_int(b).unwrap().to_text(), want, "{a} / {b}");
    }
    assert_eq!(dec("NaN").div_int(3), Some(Decimal::NaN));
    assert_eq!(dec("Infinity").div_int(-3), Some(Decimal::NegInf));
    assert_eq!(dec("-Infinity").div_int(3), Some(Decimal::NegInf));
    assert_eq!(dec("1").div_int(0), None);
    // The scale is capped at 1000 digits.
    let tiny = format!("0.{}1", "0".repeat(1100));
    let q = dec(&tiny).div_int(3).unwrap();
    assert_eq!(q.to_text(), format!("0.{}", "0".repeat(1000)));
}

#[test]
fn half_rounds_away_from_zero() {
    // The exact quotients end in a 5 one digit past the result scale (40).
    let q = dec("1.0000000000000000000000000000000000000001")
        .div_int(2)
        .unwrap();
    assert_eq!(q.to_text(), "0.5000000000000000000000000000000000000001");
    let q = dec("-1.0000000000000000000000000000000000000001")
        .div_int(2)
        .unwrap();
    assert_eq!(q.to_text(), "-0.5000000000000000000000000000000000000001");
}

#[test]
fn order_like_postgres() {
    let sorted = [
        "-Infinity",
        "-1e10",
        "-1.5",
        "0",
        "0.0001",
        "1.5",
        "1e10",
        "Infinity",
        "NaN",
    ];
    for (i, a) in sorted.iter().enumerate() {
        for (j, b) in sorted.iter().enumerate() {
            assert_eq!(dec(a).cmp_value(&dec(b)), i.cmp(&j), "{a} vs {b}");
        }
    }
    assert_eq!(dec("1.5").cmp_value(&dec("1.500")), Ordering::Equal);
    assert_eq!(dec("0").cmp_value(&dec("-0.00")), Ordering::Equal);
}

#[test]
fn to_f64_rounds_correctly() {
    assert_eq!(dec("0.1").to_f64(), 0.1);
    assert_eq!(dec("-2.5").to_f64(), -2.5);
    assert!(dec("NaN").to_f64().is_nan());
    assert_eq!(dec("-Infinity").to_f64(), f64::NEG_INFINITY);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn text_and_binary_round_trip(
        negative in any::<bool>(),
        int in "[0-9]{0,40}",
        frac in "[0-9]{0,40}",
        exp in -60i64..60,
    ) {
        prop_assume!(!(int.is_empty() && frac.is_empty()));
        let sign = if negative { "-" } else { "" };
        let input = format!("{sign}{int}.{frac}e{exp}");
        let value = dec(&input);
        let text = value.to_text();
        let from_text = dec(&text);
        prop_assert_eq!(&from_text, &value);
        prop_assert_eq!(from_text.to_text(), text.clone());
        let bytes = binary(&value);
        let from_binary = Decimal::from_binary(&bytes).unwrap();
        prop_assert_eq!(&from_binary, &value);
        prop_assert_eq!(binary(&from_binary), bytes);
        prop_assert_eq!(value.cmp_value(&from_binary), Ordering::Equal);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = Decimal::parse(&bytes, false);
        if let Some(v) = Decimal::parse(&bytes, true) {
            let _ = v.to_text();
            let mut out = Vec::new();
            let _ = v.write_binary(&mut out);
            let _ = v.div_int(7);
        }
    }

    #[test]
    fn division_is_exact_rounding(a in -1_000_000_000i64..1_000_000_000, b in 1i64..100_000) {
        // At scale s the quotient q satisfies |a×10^s - q×b| <= b/2.
        let q = Decimal::from_int(a).div_int(b).unwrap();
        let Decimal::Finite { unscaled, dscale } = q else { panic!("finite") };
        let diff = BigInt::from(a) * pow10(dscale) - unscaled * BigInt::from(b);
        prop_assert!(diff.abs() * 2 <= BigInt::from(b));
    }
}
