//! float4 / float8 text output exactly as PostgreSQL 12+ prints it with the default
//! `extra_float_digits = 1`: the shortest digits that read back to the same value, in fixed
//! notation when the decimal exponent is in -4..15 (float4: -4..6), else `1e+20` / `1.5e-05`.
//!
//! PostgreSQL's Ryū is built with `STRICTLY_SHORTEST 0`: a decimal lying exactly on the midpoint
//! between two floats is never printed (even when it would read back correctly), and among the
//! shortest candidates the closest wins, exact ties going to the even digit. Rust's own
//! shortest formatting accepts such midpoints and rounds ties up, so the digits are found here
//! with exact integer arithmetic instead.

use num_bigint::BigInt;
use num_integer::Integer;
use num_traits::{Signed, Zero};

/// PostgreSQL's text form of a float8 value.
pub(super) fn float8_text(x: f64) -> String {
    if let Some(special) = special(x.is_nan(), x.is_infinite(), x.is_sign_negative(), x == 0.0) {
        return special.to_string();
    }
    let bits = x.to_bits();
    let exp_bits = ((bits >> 52) & 0x7FF) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (m, e) = if exp_bits == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), exp_bits - 1075)
    };
    let rust = format!("{:e}", x.abs());
    let (digits, exponent) = shortest(m, e, fraction == 0 && exp_bits > 1, &rust);
    layout(&digits, exponent, x.is_sign_negative(), 15)
}

/// PostgreSQL's text form of a float4 value.
pub(super) fn float4_text(x: f32) -> String {
    if let Some(special) = special(x.is_nan(), x.is_infinite(), x.is_sign_negative(), x == 0.0) {
        return special.to_string();
    }
    let bits = x.to_bits();
    let exp_bits = ((bits >> 23) & 0xFF) as i32;
    let fraction = u64::from(bits & ((1 << 23) - 1));
    let (m, e) = if exp_bits == 0 {
        (fraction, -149)
    } else {
        (fraction | (1 << 23), exp_bits - 150)
    };
    let rust = format!("{:e}", x.abs());
    let (digits, exponent) = shortest(m, e, fraction == 0 && exp_bits > 1, &rust);
    layout(&digits, exponent, x.is_sign_negative(), 6)
}

/// The text of NaN, the infinities and the zeros (None for other values).
fn special(nan: bool, infinite: bool, negative: bool, zero: bool) -> Option<&'static str> {
    Some(match (nan, infinite, zero, negative) {
        (true, ..) => "NaN",
        (_, true, _, false) => "Infinity",
        (_, true, _, true) => "-Infinity",
        (_, _, true, false) => "0",
        (_, _, true, true) => "-0",
        _ => return None,
    })
}

/// The digits and the decimal exponent of the last digit of Rust's shortest form
/// (`d.ddde[-]x`). Rust accepts midpoints that PostgreSQL refuses, so PostgreSQL's digits end
/// there or further right.
fn split_scientific(scientific: &str) -> (String, i32) {
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((scientific, "0"));
    let fraction_digits = mantissa.split_once('.').map_or(0, |(_, f)| f.len());
    let digits = mantissa.chars().filter(char::is_ascii_digit).collect();
    (
        digits,
        exponent.parse::<i32>().unwrap_or(0) - fraction_digits as i32,
    )
}

/// `2^n` (n >= 0).
fn pow2(n: i32) -> BigInt {
    BigInt::from(1u8) << usize::try_from(n).unwrap_or(0)
}

/// `10^n` (n >= 0).
fn pow10(n: i32) -> BigInt {
    BigInt::from(10u8).pow(u32::try_from(n).unwrap_or(0))
}

/// The digits and the decimal exponent of the last digit of the shortest decimal strictly
/// inside the rounding interval of the positive value `m × 2^e` (closest to the value; exact
/// ties to even). `lower_closer`: the float below is half as far as the one above (the value
/// is a power of two). `rust`: Rust's shortest form of the value, where the search starts.
fn shortest(m: u64, e: i32, lower_closer: bool, rust: &str) -> (String, i32) {
    let (rust_digits, start) = split_scientific(rust);
    // Everything times 2^shift so that the half gaps (2^(e-1), 2^(e-2)) are integers.
    let shift = (2 - e).max(0);
    let value = BigInt::from(m) * pow2(e + shift);
    let high = pow2(e - 1 + shift);
    let low = if lower_closer {
        pow2(e - 2 + shift)
    } else {
        high.clone()
    };
    // A float never needs more than 17 significant digits: a few steps past `start` suffice.
    for p in (start - 20..=start).rev() {
        // Candidates are multiples of 10^p; scale so that 10^p is an integer too.
        let (scale, step) = if p >= 0 {
            (BigInt::from(1u8), pow10(p) * pow2(shift))
        } else {
            (pow10(-p), pow2(shift))
        };
        let (r, lo, hi) = (&value * &scale, &low * &scale, &high * &scale);
        let below = r.div_floor(&step);
        let mut best: Option<(BigInt, BigInt)> = None;
        for q in [below.clone(), below + 1u8] {
            let v = &q * &step;
            if v <= &r - &lo || v >= &r + &hi || q.is_zero() {
                continue;
            }
            let distance = (&v - &r).abs();
            let better = match &best {
                None => true,
                Some((bq, bd)) => distance < *bd || (distance == *bd && bq.is_odd()),
            };
            if better {
                best = Some((q, distance));
            }
        }
        if let Some((q, _)) = best {
            let text = q.to_string();
            let trimmed = text.trim_end_matches('0');
            let zeros = (text.len() - trimmed.len()) as i32;
            return (trimmed.to_string(), p + zeros);
        }
    }
    // Not reached: 17 significant digits always leave a candidate strictly inside.
    (rust_digits, start)
}

/// Lays out `digits × 10^last` (no trailing zeros) as PostgreSQL does: fixed notation when the
/// decimal exponent of the first digit is in `-4..fixed_below`, else `d.ddde±XX`.
fn layout(digits: &str, last: i32, negative: bool, fixed_below: i32) -> String {
    let exponent = last + digits.len() as i32 - 1;
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if (-4..fixed_below).contains(&exponent) {
        let int_len = usize::try_from(exponent + 1).unwrap_or(0);
        if exponent < 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n(
                '0',
                exponent.unsigned_abs() as usize - 1,
            ));
            out.push_str(digits);
        } else if digits.len() <= int_len {
            out.push_str(digits);
            out.extend(std::iter::repeat_n('0', int_len - digits.len()));
        } else {
            let (int, frac) = digits.split_at(int_len);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        }
        return out;
    }
    let (first, rest) = digits.split_at(digits.len().min(1));
    out.push_str(first);
    if !rest.is_empty() {
        out.push('.');
        out.push_str(rest);
    }
    out.push_str(if exponent < 0 { "e-" } else { "e+" });
    out.push_str(&format!("{:02}", exponent.unsigned_abs()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float8_like_postgres() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (1.0, "1"),
            (-1.5, "-1.5"),
            (0.1, "0.1"),
            (100.0, "100"),
            (1e14, "100000000000000"),
            (123456789012345.0, "123456789012345"),
            (1e15, "1e+15"),
            (1.5e15, "1.5e+15"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (0.00001, "1e-05"),
            (1.5e-5, "1.5e-05"),
            (1e100, "1e+100"),
            (1e-100, "1e-100"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (2.0 / 3.0, "0.6666666666666666"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-12.375, "-12.375"),
            // Exactly halfway between two 17-digit candidates: the even one, as Ryū picks.
            (16075936539.0 + 61.0 / 128.0, "16075936539.476562"),
            (16291736926.0 + 81.0 / 128.0, "16291736926.632812"),
            // The 16-digit 5.147594039660038e16 is exactly a midpoint: never printed.
            (-51475940396600384.0, "-5.1475940396600384e+16"),
        ];
        for (x, want) in cases {
            assert_eq!(float8_text(*x), *want, "{x:e}");
        }
    }

    #[test]
    fn float4_like_postgres() {
        let cases: &[(f32, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (f32::NAN, "NaN"),
            (f32::NEG_INFINITY, "-Infinity"),
            (100000.0, "100000"),
            (123456.0, "123456"),
            (1000000.0, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (1.5e-5, "1.5e-05"),
            (0.1, "0.1"),
            (f32::MAX, "3.4028235e+38"),
            (1e-45, "1e-45"),
            (-0.125, "-0.125"),
        ];
        for (x, want) in cases {
            assert_eq!(float4_text(*x), *want, "{x:e}");
        }
    }

    #[test]
    fn text_reads_back_exactly() {
        let mut bits = 0x0123_4567_89ab_cdefu64;
        for _ in 0..10_000 {
            // xorshift: many exponents and mantissas without a dependency.
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            let x = f64::from_bits(bits);
            let y = f32::from_bits(bits as u32);
            if !x.is_nan() {
                let back: f64 = float8_text(x).parse().unwrap();
                assert_eq!(back.to_bits(), x.to_bits(), "{x:e}");
            }
            if !y.is_nan() {
                let back: f32 = float4_text(y).parse().unwrap();
                assert_eq!(back.to_bits(), y.to_bits(), "{y:e}");
            }
        }
    }
}
