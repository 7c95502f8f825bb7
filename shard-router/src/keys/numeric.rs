//! PostgreSQL's integer and numeric input rules, exact: a key written as `5`, `+5`, `5.0`,
//! `50e-1` or `'0x5'` must come out as the same integer PostgreSQL computes, or as "not an
//! integer" — never a near miss.

/// Why integer input failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IntError {
    /// Not an integer spelling.
    Syntax,
    /// An integer, but beyond the type's range.
    Overflow,
}

/// Digits beyond this many are certainly out of any range we use; also bounds work per value.
const MAX_EXPONENT: i64 = 140_000;

/// `isspace` in the C locale, as PostgreSQL's input functions use it.
fn is_pg_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Trims C-locale whitespace on both ends.
pub(super) fn trim_pg(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_ascii() && is_pg_space(c as u8))
}

/// Splits an optional sign off.
fn split_sign(text: &str) -> (bool, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    }
}

/// Digits of `body` in `radix`, allowing single underscores between digits (PostgreSQL 16).
/// Returns the digit values, most significant first.
fn radix_digits(body: &str, radix: u32) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    let mut prev_underscore = true;
    for c in body.chars() {
        if c == '_' {
            if prev_underscore {
                return None;
            }
            prev_underscore = true;
            continue;
        }
        prev_underscore = false;
        out.push(u8::try_from(c.to_digit(radix)?).ok()?);
    }
    (!out.is_empty() && !prev_underscore).then_some(out)
}

/// int8 input (`pg_strtoint64`): surrounding whitespace, a sign, decimal digits or a
/// `0x`/`0o`/`0b` prefix, underscores between digits. Allocation-free: it runs per statement.
pub(super) fn parse_int(text: &str) -> Result<i64, IntError> {
    let (negative, body) = split_sign(trim_pg(text));
    let (radix, digits, prefixed) = match body.as_bytes() {
        [b'0', b'x' | b'X', rest @ ..] => (16, rest, true),
        [b'0', b'o' | b'O', rest @ ..] => (8, rest, true),
        [b'0', b'b' | b'B', rest @ ..] => (2, rest, true),
        all => (10, all, false),
    };
    let mut magnitude: u64 = 0;
    let mut any_digit = false;
    // An underscore may follow a prefix or a digit, never another underscore.
    let mut prev_underscore = !prefixed;
    for &b in digits {
        if b == b'_' {
            if prev_underscore {
                return Err(IntError::Syntax);
            }
            prev_underscore = true;
            continue;
        }
        prev_underscore = false;
        let d = char::from(b).to_digit(radix).ok_or(IntError::Syntax)?;
        any_digit = true;
        magnitude = magnitude
            .checked_mul(u64::from(radix))
            .and_then(|m| m.checked_add(u64::from(d)))
            .ok_or(IntError::Overflow)?;
    }
    if !any_digit || prev_underscore {
        return Err(IntError::Syntax);
    }
    if negative {
        0i64.checked_sub_unsigned(magnitude)
            .ok_or(IntError::Overflow)
    } else {
        i64::try_from(magnitude).map_err(|_| IntError::Overflow)
    }
}

/// A PostgreSQL numeric: finite `±coeff × 10^exp` with a display scale, or a special value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Numeric {
    /// NaN.
    NaN,
    /// +Infinity (`negative` false) or -Infinity.
    Infinity { negative: bool },
    /// A finite value.
    Finite(Finite),
}

/// A finite numeric, normalised: no leading or trailing zero digits (zero has no digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Finite {
    negative: bool,
    /// Decimal digits, most significant first.
    digits: Vec<u8>,
    /// Power of ten of the last digit.
    exp: i64,
    /// Digits shown after the decimal point.
    dscale: u32,
}

impl Finite {
    /// Builds a normalised value.
    fn new(negative: bool, mut digits: Vec<u8>, mut exp: i64, dscale: u32) -> Finite {
        let lead = digits.iter().take_while(|&&d| d == 0).count();
        digits.drain(..lead);
        while digits.last() == Some(&0) {
            digits.pop();
            exp += 1;
        }
        let negative = negative && !digits.is_empty();
        if digits.is_empty() {
            exp = 0;
        }
        Finite {
            negative,
            digits,
            exp,
            dscale,
        }
    }

    /// From an integer.
    pub(super) fn from_i64(v: i64) -> Finite {
        let digits = v
            .unsigned_abs()
            .to_string()
            .bytes()
            .map(|b| b - b'0')
            .collect();
        Finite::new(v < 0, digits, 0, 0)
    }

    /// The exact integer value, if integral and within i64.
    pub(super) fn to_i64_exact(&self) -> Option<i64> {
        if self.exp < 0 {
            return None;
        }
        self.integer_part_to_i64(false).ok()
    }

    /// Rounded half away from zero to an integer (numeric -> int8); `Err` when out of range.
    pub(super) fn round_to_i64(&self) -> Result<i64, IntError> {
        self.integer_part_to_i64(self.first_dropped_digit(0) >= 5)
    }

    /// Digit at fractional position `scale + 1` (0 when absent): decides rounding to `scale`.
    fn first_dropped_digit(&self, scale: i64) -> u8 {
        // Digit at power 10^-(scale+1) has index len-1 - (-(scale+1) - exp).
        let power = -(scale + 1);
        let from_end = power - self.exp; // index counted from the last digit
        if from_end < 0 {
            return 0;
        }
        usize::try_from(from_end)
            .ok()
            .and_then(|k| self.digits.len().checked_sub(k + 1))
            .and_then(|i| self.digits.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// Integer part (truncated), plus one in magnitude when `round_up`, as i64.
    fn integer_part_to_i64(&self, round_up: bool) -> Result<i64, IntError> {
        let frac_digits = usize::try_from(-self.exp.min(0)).unwrap_or(usize::MAX);
        let int_len = self.digits.len().saturating_sub(frac_digits);
        let zeros = usize::try_from(self.exp.max(0)).unwrap_or(usize::MAX);
        if int_len > 0 && int_len.saturating_add(zeros) > 19 {
            return Err(IntError::Overflow);
        }
        let mut magnitude: u64 = 0;
        let int_digits = self.digits.get(..int_len).unwrap_or(&[]);
        let zero_count = if int_len == 0 { 0 } else { zeros };
        for d in int_digits
            .iter()
            .copied()
            .chain(std::iter::repeat_n(0, zero_count))
        {
            magnitude = magnitude
                .checked_mul(10)
                .and_then(|m| m.checked_add(u64::from(d)))
                .ok_or(IntError::Overflow)?;
        }
        if round_up {
            magnitude = magnitude.checked_add(1).ok_or(IntError::Overflow)?;
        }
        if self.negative {
            0i64.checked_sub_unsigned(magnitude)
                .ok_or(IntError::Overflow)
        } else {
            i64::try_from(magnitude).map_err(|_| IntError::Overflow)
        }
    }

    /// Rounded half away from zero to `scale` fractional digits, shown with that scale, and
    /// checked against `precision` total digits (numeric(p, s)).
    pub(super) fn with_typmod(&self, precision: u32, scale: u32) -> Result<Finite, IntError> {
        let scale_i = i64::from(scale);
        let mut out = if self.exp >= -scale_i {
            self.clone()
        } else {
            let up = self.first_dropped_digit(scale_i) >= 5;
            let keep = usize::try_from(-scale_i - self.exp)
                .ok()
                .map_or(0, |drop| self.digits.len().saturating_sub(drop));
            let mut digits: Vec<u8> = self.digits.get(..keep).unwrap_or(&[]).to_vec();
            if up {
                increment(&mut digits);
            }
            Finite::new(self.negative, digits, -scale_i, scale)
        };
        out.dscale = scale;
        // Integer digits: digits above the decimal point.
        let int_digits = if out.digits.is_empty() {
            0
        } else {
            (out.digits.len() as i64 + out.exp).max(0)
        };
        if int_digits > i64::from(precision) - scale_i {
            return Err(IntError::Overflow);
        }
        Ok(out)
    }

    /// PostgreSQL's text output (`numeric_out`): plain notation with `dscale` fraction digits
    /// (digits hidden by a smaller `dscale` are truncated, as `numeric_recv` does).
    pub(super) fn to_pg_string(&self) -> String {
        let frac = usize::try_from(self.dscale).unwrap_or(0);
        // `scaled` = value * 10^frac as a digit string; its last digit sits at 10^(exp + frac).
        let shift = self.exp.saturating_add(i64::from(self.dscale));
        let mut scaled: Vec<u8> = self.digits.clone();
        match usize::try_from(shift) {
            // Bounded by MAX_EXPONENT at parse time.
            Ok(zeros) => scaled.extend(std::iter::repeat_n(0, zeros)),
            Err(_) => {
                let drop = usize::try_from(shift.unsigned_abs()).unwrap_or(usize::MAX);
                scaled.truncate(scaled.len().saturating_sub(drop));
            }
        }
        let zero = scaled.iter().all(|&d| d == 0);
        if scaled.len() < frac + 1 {
            let pad = frac + 1 - scaled.len();
            scaled.splice(0..0, std::iter::repeat_n(0, pad));
        }
        let int_len = scaled.len() - frac;
        let mut s = String::with_capacity(scaled.len() + 2);
        if self.negative && !zero {
            s.push('-');
        }
        for (i, d) in scaled.iter().enumerate() {
            if i == int_len {
                s.push('.');
            }
            s.push(char::from(b'0' + d));
        }
        s
    }
}

/// Adds one to a digit string (most significant first), growing it on carry.
fn increment(digits: &mut Vec<u8>) {
    for d in digits.iter_mut().rev() {
        if *d == 9 {
            *d = 0;
        } else {
            *d += 1;
            return;
        }
    }
    digits.insert(0, 1);
}

/// numeric input (`numeric_in`): whitespace, sign, digits with one optional point, exponent,
/// NaN / Infinity, and PostgreSQL 16 underscores and non-decimal integers.
pub(super) fn parse_numeric(text: &str) -> Result<Numeric, IntError> {
    let trimmed = trim_pg(text);
    let (negative, body) = split_sign(trimmed);
    let lower = body.to_ascii_lowercase();
    if lower == "nan" && trimmed.len() == body.len() {
        return Ok(Numeric::NaN);
    }
    if lower == "infinity" || lower == "inf" {
        return Ok(Numeric::Infinity { negative });
    }
    if matches!(lower.get(..2), Some("0x" | "0o" | "0b")) {
        return parse_int(trimmed).map(|v| Numeric::Finite(Finite::from_i64(v)));
    }
    let (mantissa, exponent) = match lower.find('e') {
        Some(at) => (&lower[..at], Some(&lower[at + 1..])),
        None => (lower.as_str(), None),
    };
    let (int_text, frac_text) = match mantissa.find('.') {
        Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
        None => (mantissa, ""),
    };
    let int_digits = if int_text.is_empty() {
        Vec::new()
    } else {
        radix_digits(int_text, 10).ok_or(IntError::Syntax)?
    };
    let frac_digits = if frac_text.is_empty() {
        Vec::new()
    } else {
        radix_digits(frac_text, 10).ok_or(IntError::Syntax)?
    };
    if int_digits.is_empty() && frac_digits.is_empty() {
        return Err(IntError::Syntax);
    }
    let exp_written: i64 = match exponent {
        None => 0,
        Some(e) => {
            let (neg, digits) = split_sign(e);
            let digits = radix_digits(digits, 10).ok_or(IntError::Syntax)?;
            let mut v: i64 = 0;
            for d in digits {
                v = v.saturating_mul(10).saturating_add(i64::from(d));
            }
            if v > MAX_EXPONENT {
                return Err(IntError::Overflow);
            }
            if neg {
                -v
            } else {
                v
            }
        }
    };
    let frac_len = i64::try_from(frac_digits.len()).map_err(|_| IntError::Overflow)?;
    let exp = exp_written - frac_len;
    if exp.abs() > MAX_EXPONENT {
        return Err(IntError::Overflow);
    }
    let dscale = u32::try_from((-exp).max(0)).map_err(|_| IntError::Overflow)?;
    let mut digits = int_digits;
    digits.extend(frac_digits);
    Ok(Numeric::Finite(Finite::new(negative, digits, exp, dscale)))
}

/// numeric binary format (`numeric_recv`): ndigits, weight, sign, dscale, base-10000 digits.
pub(super) fn numeric_from_binary(bytes: &[u8]) -> Option<Numeric> {
    let word = |i: usize| -> Option<u16> {
        let b = bytes.get(i * 2..i * 2 + 2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(i16::from_be_bytes(word(1)?.to_be_bytes()));
    let sign = word(2)?;
    let dscale = word(3)?;
    if bytes.len() != 8 + ndigits * 2 || dscale & 0xC000 != 0 {
        return None;
    }
    match sign {
        0xC000 => return Some(Numeric::NaN),
        0xD000 => return Some(Numeric::Infinity { negative: false }),
        0xF000 => return Some(Numeric::Infinity { negative: true }),
        0x0000 | 0x4000 => {}
        _ => return None,
    }
    let mut digits = Vec::with_capacity(ndigits * 4);
    for i in 0..ndigits {
        let group = word(4 + i)?;
        if group > 9999 {
            return None;
        }
        digits
            .extend([group / 1000, group / 100 % 10, group / 10 % 10, group % 10].map(|d| d as u8));
    }
    // The last group's units digit sits at 10^(4 * (weight - ndigits + 1)).
    let exp = 4 * (weight - ndigits as i64 + 1);
    Some(Numeric::Finite(Finite::new(
        sign == 0x4000,
        digits,
        exp,
        u32::from(dscale),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finite(text: &str) -> Finite {
        match parse_numeric(text).unwrap() {
            Numeric::Finite(f) => f,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn int_input_follows_postgres() {
        assert_eq!(parse_int(" 42 "), Ok(42));
        assert_eq!(parse_int("\t-42\n"), Ok(-42));
        assert_eq!(parse_int("+7"), Ok(7));
        assert_eq!(parse_int("0x1F"), Ok(31));
        assert_eq!(parse_int("-0b101"), Ok(-5));
        assert_eq!(parse_int("0o17"), Ok(15));
        assert_eq!(parse_int("1_000"), Ok(1000));
        assert_eq!(parse_int("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_int("9223372036854775808"), Err(IntError::Overflow));
        assert_eq!(parse_int("-9223372036854775809"), Err(IntError::Overflow));
        assert_eq!(
            parse_int("99999999999999999999999"),
            Err(IntError::Overflow)
        );
        for bad in [
            "", " ", "-", "5.0", "5e0", "1__0", "_1", "1_", "- 5", "5 5", "0x", "x5",
        ] {
            assert_eq!(parse_int(bad), Err(IntError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn numeric_integrality_and_rounding() {
        assert_eq!(finite("5.0").to_i64_exact(), Some(5));
        assert_eq!(finite("5e0").to_i64_exact(), Some(5));
        assert_eq!(finite("50e-1").to_i64_exact(), Some(5));
        assert_eq!(finite(".5e1").to_i64_exact(), Some(5));
        assert_eq!(finite("-0.0").to_i64_exact(), Some(0));
        assert_eq!(finite("5.5").to_i64_exact(), None);
        assert_eq!(finite("1e30").to_i64_exact(), None);
        assert_eq!(
            finite("-9223372036854775808.000").to_i64_exact(),
            Some(i64::MIN)
        );
        assert_eq!(finite("5.5").round_to_i64(), Ok(6));
        assert_eq!(finite("-5.5").round_to_i64(), Ok(-6));
        assert_eq!(finite("5.49").round_to_i64(), Ok(5));
        assert_eq!(finite("0.5").round_to_i64(), Ok(1));
        assert_eq!(finite("0.05").round_to_i64(), Ok(0));
        assert_eq!(finite("9.5").round_to_i64(), Ok(10));
        assert_eq!(
            finite("9223372036854775807.5").round_to_i64(),
            Err(IntError::Overflow)
        );
        assert_eq!(finite("1e19").round_to_i64(), Err(IntError::Overflow));
    }

    #[test]
    fn numeric_text_output() {
        for (input, shown) in [
            ("5", "5"),
            ("5.0", "5.0"),
            ("005.10", "5.10"),
            ("5e0", "5"),
            ("1.50e1", "15.0"),
            ("1e-2", "0.01"),
            ("-0.0", "0.0"),
            ("12e3", "12000"),
            ("0", "0"),
            (".000", "0.000"),
            ("-1.5e-3", "-0.0015"),
        ] {
            assert_eq!(finite(input).to_pg_string(), shown, "{input}");
        }
        assert_eq!(
            finite("5.55").with_typmod(3, 1).unwrap().to_pg_string(),
            "5.6"
        );
        assert_eq!(finite("5.5").with_typmod(2, 0).unwrap().to_pg_string(), "6");
        assert_eq!(
            finite("5").with_typmod(5, 2).unwrap().to_pg_string(),
            "5.00"
        );
        assert_eq!(finite("99.5").with_typmod(2, 0), Err(IntError::Overflow));
    }

    #[test]
    fn numeric_specials_and_errors() {
        assert_eq!(parse_numeric(" NaN "), Ok(Numeric::NaN));
        assert_eq!(
            parse_numeric("-Infinity"),
            Ok(Numeric::Infinity { negative: true })
        );
        for bad in ["", ".", "e5", "5e", "1.2.3", "5 5", "abc", "5e+"] {
            assert_eq!(parse_numeric(bad), Err(IntError::Syntax), "{bad:?}");
        }
        assert_eq!(parse_numeric("1e999999999"), Err(IntError::Overflow));
    }

    #[test]
    fn numeric_binary() {
        // 12345.678: ndigits 3, weight 1, dscale 3: groups 1, 2345, 6780.
        let bytes = [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1A, 0x7C];
        let Some(Numeric::Finite(f)) = numeric_from_binary(&bytes) else {
            panic!()
        };
        assert_eq!(f.to_pg_string(), "12345.678");
        // -5 (ndigits 1, weight 0, negative).
        let five = [0, 1, 0, 0, 0x40, 0, 0, 0, 0, 5];
        let Some(Numeric::Finite(f)) = numeric_from_binary(&five) else {
            panic!()
        };
        assert_eq!(f.to_i64_exact(), Some(-5));
        assert_eq!(numeric_from_binary(&[0, 1, 0, 0]), None);
        assert_eq!(
            numeric_from_binary(&[0, 0, 0, 0, 0xC0, 0, 0, 0]),
            Some(Numeric::NaN)
        );
    }
}
