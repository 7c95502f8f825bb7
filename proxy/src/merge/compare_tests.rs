use std::cmp::Ordering::{self, Equal, Greater, Less};

use proptest::prelude::*;

use super::*;

const ASC: SortSpec = SortSpec {
    descending: false,
    nulls_first: false,
};

fn text(oid: u32) -> ColumnType {
    ColumnType { oid, binary: false }
}

fn bin(oid: u32) -> ColumnType {
    ColumnType { oid, binary: true }
}

/// Compares two text-format values ascending.
fn cmp_text(oid: u32, a: &str, b: &str) -> Ordering {
    compare(Some(a.as_bytes()), Some(b.as_bytes()), text(oid), ASC).unwrap()
}

/// Compares two binary-format values ascending.
fn cmp_bin(oid: u32, a: &[u8], b: &[u8]) -> Ordering {
    compare(Some(a), Some(b), bin(oid), ASC).unwrap()
}

/// Asserts that text values listed in ascending order (`=` joins equal neighbours) compare so.
fn assert_text_order(oid: u32, sorted: &[&str]) {
    let mut items = Vec::new();
    let mut equal_to_prev = Vec::new();
    for s in sorted {
        match s.strip_prefix('=') {
            Some(rest) => {
                items.push(rest);
                equal_to_prev.push(true);
            }
            None => {
                items.push(s);
                equal_to_prev.push(false);
            }
        }
    }
    for i in 0..items.len() {
        for j in 0..items.len() {
            let expected = if i == j || (i.min(j) + 1..=i.max(j)).all(|k| equal_to_prev[k]) {
                Equal
            } else {
                i.cmp(&j)
            };
            assert_eq!(
                cmp_text(oid, items[i], items[j]),
                expected,
                "type {oid}: {:?} vs {:?}",
                items[i],
                items[j]
            );
        }
    }
}

#[test]
fn sort_spec_defaults_follow_postgres() {
    assert_eq!(
        SortSpec::new(false, None),
        SortSpec {
            descending: false,
            nulls_first: false
        }
    );
    assert!(SortSpec::new(true, None).nulls_first);
    assert!(!SortSpec::new(true, Some(false)).nulls_first);
    assert!(SortSpec::new(false, Some(true)).nulls_first);
}

#[test]
fn nulls_follow_the_spec_regardless_of_direction() {
    let one = Some(&b"1"[..]);
    let two = Some(&b"2"[..]);
    let t = text(23);
    for descending in [false, true] {
        for nulls_first in [false, true] {
            let spec = SortSpec {
                descending,
                nulls_first,
            };
            let null_vs_value = if nulls_first { Less } else { Greater };
            assert_eq!(compare(None, one, t, spec).unwrap(), null_vs_value);
            assert_eq!(
                compare(one, None, t, spec).unwrap(),
                null_vs_value.reverse()
            );
            assert_eq!(compare(None, None, t, spec).unwrap(), Equal);
            let values = if descending { Greater } else { Less };
            assert_eq!(compare(one, two, t, spec).unwrap(), values);
        }
    }
}

#[test]
fn integers_in_both_formats() {
    assert_text_order(21, &["-32768", "-1", "0", "=0", "9", "10", "32767"]);
    assert_text_order(23, &["-2147483648", "-10", "-9", "2147483647"]);
    assert_text_order(
        20,
        &[
            "-9223372036854775808",
            "-1",
            "2",
            "10",
            "9223372036854775807",
        ],
    );
    assert_eq!(
        cmp_bin(21, &(-1i16).to_be_bytes(), &1i16.to_be_bytes()),
        Less
    );
    assert_eq!(
        cmp_bin(23, &i32::MIN.to_be_bytes(), &0i32.to_be_bytes()),
        Less
    );
    assert_eq!(
        cmp_bin(20, &i64::MAX.to_be_bytes(), &(-5i64).to_be_bytes()),
        Greater
    );
    // A wrong width is invalid, not silently reinterpreted.
    let err = compare(Some(&[0, 1][..]), Some(&[0, 0, 0, 1][..]), bin(23), ASC);
    assert_eq!(err, Err(CompareError::Invalid("int4")));
    let err = compare(Some(&b"x"[..]), Some(&b"1"[..]), text(20), ASC);
    assert_eq!(err, Err(CompareError::Invalid("int8")));
}

#[test]
fn oid_is_unsigned() {
    assert_text_order(26, &["0", "1", "2147483647", "2147483648", "4294967295"]);
    assert_eq!(
        cmp_bin(26, &0x8000_0000u32.to_be_bytes(), &1u32.to_be_bytes()),
        Greater
    );
}

#[test]
fn floats_put_nan_above_infinity_and_equate_zeros() {
    let order = [
        "-Infinity",
        "-1.7976931348623157e+308",
        "-1",
        "-5e-324",
        "-0",
        "=0",
        "5e-324",
        "0.1",
        "1e+100",
        "Infinity",
        "NaN",
        "=NaN",
    ];
    assert_text_order(701, &order);
    assert_text_order(
        700,
        &[
            "-Infinity",
            "-3.4028235e+38",
            "-0",
            "=0",
            "1.4e-45",
            "Infinity",
            "NaN",
        ],
    );
    let nan = f64::NAN.to_be_bytes();
    let inf = f64::INFINITY.to_be_bytes();
    assert_eq!(cmp_bin(701, &nan, &inf), Greater);
    assert_eq!(cmp_bin(701, &(-f64::NAN).to_be_bytes(), &nan), Equal);
    assert_eq!(
        cmp_bin(701, &(-0.0f64).to_be_bytes(), &0.0f64.to_be_bytes()),
        Equal
    );
    assert_eq!(
        cmp_bin(700, &f32::NAN.to_be_bytes(), &f32::MAX.to_be_bytes()),
        Greater
    );
}

#[test]
fn numeric_text_compares_exactly() {
    assert_text_order(
        1700,
        &[
            "-Infinity",
            "-100000000000000000000000000000000000001",
            "-100000000000000000000000000000000000000",
            "-1.5",
            "=-1.50",
            "-0.0000000000000000000000000000000000001",
            "0",
            "=-0.000",
            "=0e10",
            "0.00000000000000000000000000000000000001",
            "0.1",
            "=0.10000",
            "=1e-1",
            "0.10000000000000000000000000000000000001",
            "1",
            "9.99999999999999999999999999999999999999",
            "10",
            "=10.0",
            "=+1.0E1",
            "12345678901234567890123456789012345678901234567890",
            "Infinity",
            "NaN",
            "=nan",
        ],
    );
    for bad in ["", "-", ".", "1.2.3", "1e", "abc", "1x"] {
        let err = compare(Some(bad.as_bytes()), Some(&b"1"[..]), text(1700), ASC);
        assert_eq!(err, Err(CompareError::Invalid("numeric")), "{bad:?}");
    }
}

/// PostgreSQL's binary numeric from a decimal string (test-side encoder).
fn numeric_binary(s: &str) -> Vec<u8> {
    let header = |ndigits: usize, weight: i16, sign: u16| {
        let mut v = Vec::new();
        v.extend((ndigits as i16).to_be_bytes());
        v.extend(weight.to_be_bytes());
        v.extend(sign.to_be_bytes());
        v.extend(0u16.to_be_bytes());
        v
    };
    match s {
        "NaN" => return header(0, 0, 0xC000),
        "Infinity" => return header(0, 0, 0xD000),
        "-Infinity" => return header(0, 0, 0xF000),
        _ => {}
    }
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let int_pad = (4 - int.len() % 4) % 4;
    let frac_pad = (4 - frac.len() % 4) % 4;
    let all = format!("{}{int}{frac}{}", "0".repeat(int_pad), "0".repeat(frac_pad));
    let mut groups: Vec<u16> = all
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap().parse().unwrap())
        .collect();
    let mut weight = ((int.len() + int_pad) / 4) as i16 - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign = if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    };
    let mut v = header(groups.len(), weight, sign);
    for g in groups {
        v.extend(g.to_be_bytes());
    }
    v
}

#[test]
fn numeric_binary_compares_exactly() {
    let sorted = [
        "-Infinity",
        "-123456789.000000001",
        "-1",
        "-0.0001",
        "0",
        "0.00000001",
        "0.0001",
        "1",
        "1.00000001",
        "9999",
        "10000",
        "100000000000000000000.5",
        "Infinity",
        "NaN",
    ];
    for (i, a) in sorted.iter().enumerate() {
        for (j, b) in sorted.iter().enumerate() {
            let got = cmp_bin(1700, &numeric_binary(a), &numeric_binary(b));
            assert_eq!(got, i.cmp(&j), "{a} vs {b}");
        }
    }
    // Scale (trailing zero digits) does not matter: 1.5 = 1.5000.
    let with_zero_digit = [0, 2, 0, 0, 0x40, 0, 0, 4, 0, 1, 0x13, 0x88];
    assert_eq!(
        cmp_bin(1700, &with_zero_digit, &numeric_binary("-1.5")),
        Equal
    );
    // A digit over 9999 or a length mismatch is invalid.
    let bad = [0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10];
    let err = compare(Some(&bad[..]), Some(&bad[..]), bin(1700), ASC);
    assert_eq!(err, Err(CompareError::Invalid("numeric")));
    let short = [0, 2, 0, 0, 0, 0, 0, 0, 0, 1];
    let err = compare(Some(&short[..]), Some(&short[..]), bin(1700), ASC);
    assert_eq!(err, Err(CompareError::Invalid("numeric")));
}

#[test]
fn text_types_compare_by_bytes_and_bpchar_ignores_trailing_spaces() {
    for oid in [25, 1043, 19] {
        assert_text_order(oid, &["", "A", "Z", "a", "a ", "ab", "é", "한", "😀"]);
    }
    assert_text_order(
        1042,
        &["", "=  ", "\t", "a", "=a   ", "a\t", "a b", "ab", "é"],
    );
    assert_eq!(cmp_bin(1042, b"x  ", b"x"), Equal);
    assert_eq!(cmp_bin(25, b"x  ", b"x"), Greater);
}

#[test]
fn bool_false_before_true() {
    assert_text_order(16, &["f", "=false", "t", "=true"]);
    assert_eq!(cmp_bin(16, &[0], &[1]), Less);
    let err = compare(Some(&b"yes"[..]), Some(&b"t"[..]), text(16), ASC);
    assert_eq!(err, Err(CompareError::Invalid("bool")));
}

#[test]
fn dates_with_bc_and_infinities() {
    assert_text_order(
        1082,
        &[
            "-infinity",
            "4713-01-01 BC",
            "0001-12-31 BC",
            "0001-01-01",
            "1999-12-31",
            "2000-01-01",
            "2000-02-29",
            "2000-03-01",
            "9999-12-31",
            "10000-01-01",
            "5874897-12-31",
            "infinity",
        ],
    );
    let d = |x: i32| x.to_be_bytes();
    assert_eq!(cmp_bin(1082, &d(i32::MIN), &d(-2_451_545)), Less);
    assert_eq!(cmp_bin(1082, &d(i32::MAX), &d(2_000_000_000)), Greater);
}

#[test]
fn timestamps_with_fractions_and_bc() {
    assert_text_order(
        1114,
        &[
            "-infinity",
            "4713-01-01 00:00:00 BC",
            "0001-12-31 23:59:59.999999 BC",
            "0001-01-01 00:00:00",
            "2024-01-02 03:04:05",
            "=2024-01-02 03:04:05.000000",
            "2024-01-02 03:04:05.000001",
            "2024-01-02 03:04:05.1",
            "2024-01-02 03:04:05.12",
            "2024-01-02 03:04:06",
            "294276-12-31 23:59:59.999999",
            "infinity",
        ],
    );
    let t = |x: i64| x.to_be_bytes();
    assert_eq!(cmp_bin(1114, &t(i64::MIN), &t(-1)), Less);
    assert_eq!(cmp_bin(1184, &t(i64::MAX), &t(1)), Greater);
}

#[test]
fn timestamptz_compares_instants_across_offsets() {
    assert_text_order(
        1184,
        &[
            "-infinity",
            "0044-03-15 12:00:00+00:19:32 BC",
            "0044-03-15 12:00:00+00 BC",
            "2024-01-02 08:00:00+05:30",
            "2024-01-02 03:00:00+00",
            "=2024-01-01 23:30:00-03:30",
            "=2024-01-02 17:00:00+14",
            "2024-01-02 03:00:00.5+00",
            "=2024-01-02 08:30:00.5+05:30",
            "2024-01-02 03:00:00-00:00:01",
            "infinity",
        ],
    );
    // A timestamptz without its offset cannot be placed in time.
    let err = compare(
        Some(&b"2024-01-02 03:00:00"[..]),
        Some(&b"2024-01-02 03:00:00+00"[..]),
        text(1184),
        ASC,
    );
    assert_eq!(err, Err(CompareError::Invalid("timestamptz")));
}

#[test]
fn uuid_and_bytea_compare_as_unsigned_bytes() {
    assert_text_order(
        2950,
        &[
            "00000000-0000-0000-0000-000000000000",
            "00000000-0000-0000-0000-0000000000ff",
            "7fffffff-ffff-ffff-ffff-ffffffffffff",
            "80000000-0000-0000-0000-000000000000",
            "=80000000000000000000000000000000",
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "={a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
        ],
    );
    let mut hi = [0u8; 16];
    hi[0] = 0x80;
    assert_eq!(cmp_bin(2950, &hi, &[0x7f; 16]), Greater);
    assert_text_order(
        17,
        &[
            "\\x", "=", "\\x00", "=\\000", "\\x0000", "\\x41", "=A", "\\x5c", "=\\\\", "\\xff",
            "=\\377",
        ],
    );
    assert_eq!(cmp_bin(17, &[0xff], &[0x00, 0xff]), Greater);
    for bad in ["\\x0", "\\xzz", "\\9", "\\"] {
        let err = compare(Some(bad.as_bytes()), Some(&b"\\x"[..]), text(17), ASC);
        assert_eq!(err, Err(CompareError::Invalid("bytea")), "{bad:?}");
    }
}

#[test]
fn unsupported_types_are_refused() {
    for oid in [1186, 114, 3802, 1000, 0] {
        assert!(!supported(oid));
        let err = compare(Some(&b"x"[..]), Some(&b"y"[..]), text(oid), ASC);
        assert_eq!(err, Err(CompareError::Unsupported(oid)));
    }
    for oid in [
        16, 17, 19, 20, 21, 23, 25, 26, 700, 701, 1042, 1043, 1082, 1114, 1184, 1700, 2950,
    ] {
        assert!(supported(oid), "{oid}");
    }
}

/// A DataRow body from fields.
fn data_row(fields: &[Option<&[u8]>]) -> Vec<u8> {
    let mut body = (fields.len() as i16).to_be_bytes().to_vec();
    for f in fields {
        match f {
            None => body.extend((-1i32).to_be_bytes()),
            Some(v) => {
                body.extend((v.len() as i32).to_be_bytes());
                body.extend(*v);
            }
        }
    }
    body
}

#[test]
fn data_row_fields_splits_and_rejects_malformed_bodies() {
    let fields: Vec<Option<&[u8]>> = vec![Some(b"1"), None, Some(b""), Some(b"abc")];
    let body = data_row(&fields);
    assert_eq!(data_row_fields(&body).unwrap(), fields);
    assert_eq!(
        data_row_fields(&[0, 0]).unwrap(),
        Vec::<Option<&[u8]>>::new()
    );
    const BAD: CompareError = CompareError::Invalid("DataRow");
    assert_eq!(data_row_fields(&[]), Err(BAD));
    assert_eq!(data_row_fields(&body[..body.len() - 1]), Err(BAD));
    assert_eq!(data_row_fields(&[&body[..], &[0][..]].concat()), Err(BAD));
    assert_eq!(data_row_fields(&[0xff, 0xff]), Err(BAD));
    assert_eq!(data_row_fields(&[0, 1, 0xff, 0xff, 0xff, 0xfe]), Err(BAD));
    assert_eq!(data_row_fields(&[0x7f, 0xff, 0, 0, 0, 0]), Err(BAD));
}

/// Civil date of days since 1970-01-01 (inverse of `days_from_civil`, test side).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Formats UTC microseconds as PostgreSQL prints a timestamptz at `offset` seconds east.
fn format_timestamptz(micros: i64, offset: i64) -> String {
    let local = micros + offset * 1_000_000;
    let secs = local.div_euclid(1_000_000);
    let frac = local.rem_euclid(1_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let tod = secs.rem_euclid(86_400);
    let (year, bc) = if y <= 0 { (1 - y, " BC") } else { (y, "") };
    let mut s = format!(
        "{year:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        tod / 3600,
        tod / 60 % 60,
        tod % 60
    );
    if frac != 0 {
        s.push_str(format!(".{frac:06}").trim_end_matches('0'));
    }
    let (sign, off) = if offset < 0 {
        ('-', -offset)
    } else {
        ('+', offset)
    };
    s.push_str(&format!("{sign}{:02}", off / 3600));
    if off % 3600 != 0 {
        s.push_str(&format!(":{:02}", off / 60 % 60));
        if off % 60 != 0 {
            s.push_str(&format!(":{:02}", off % 60));
        }
    }
    s.push_str(bc);
    s
}

/// PostgreSQL's float order, stated independently of the module.
fn pg_float_order(a: f64, b: f64) -> Ordering {
    let key = |x: f64| if x.is_nan() { (1, 0.0) } else { (0, x + 0.0) };
    let (ka, kb) = (key(a), key(b));
    ka.0.cmp(&kb.0).then(ka.1.partial_cmp(&kb.1).unwrap())
}

proptest! {
    #[test]
    fn integers_match_i64_order(a: i64, b: i64) {
        prop_assert_eq!(cmp_text(20, &a.to_string(), &b.to_string()), a.cmp(&b));
        prop_assert_eq!(cmp_bin(20, &a.to_be_bytes(), &b.to_be_bytes()), a.cmp(&b));
    }

    #[test]
    fn floats_match_postgres_order_in_both_formats(
        a in prop::num::f64::ANY,
        b in prop::num::f64::ANY,
    ) {
        let expected = pg_float_order(a, b);
        prop_assert_eq!(cmp_text(701, &format!("{a:e}"), &format!("{b:e}")), expected);
        prop_assert_eq!(cmp_bin(701, &a.to_be_bytes(), &b.to_be_bytes()), expected);
    }

    #[test]
    fn numerics_match_scaled_integer_order(
        a in any::<i64>(), sa in 0u32..12, b in any::<i64>(), sb in 0u32..12,
    ) {
        let show = |v: i64, scale: u32| {
            let digits = format!("{:0>width$}", v.unsigned_abs(), width = scale as usize + 1);
            let (int, frac) = digits.split_at(digits.len() - scale as usize);
            let sign = if v < 0 { "-" } else { "" };
            if scale == 0 { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") }
        };
        let (ta, tb) = (show(a, sa), show(b, sb));
        let expected = (i128::from(a) * 10i128.pow(sb)).cmp(&(i128::from(b) * 10i128.pow(sa)));
        prop_assert_eq!(cmp_text(1700, &ta, &tb), expected, "{} vs {}", ta, tb);
        prop_assert_eq!(
            cmp_bin(1700, &numeric_binary(&ta), &numeric_binary(&tb)), expected, "{} vs {}", ta, tb
        );
    }

    #[test]
    fn timestamptz_text_orders_by_instant(
        a in -211_813_488_000_000_000i64..9_000_000_000_000_000_000,
        b in -211_813_488_000_000_000i64..9_000_000_000_000_000_000,
        oa in -57_600i64..57_600,
        ob in -57_600i64..57_600,
    ) {
        let (ta, tb) = (format_timestamptz(a, oa), format_timestamptz(b, ob));
        prop_assert_eq!(cmp_text(1184, &ta, &tb), a.cmp(&b), "{} vs {}", ta, tb);
    }
}
