//! Exact `numeric` arithmetic for finishing aggregates: PostgreSQL's values with their display
//! scale (dscale), read from and written to the text and binary wire formats, added and divided
//! exactly as PostgreSQL's `numeric` does (no floating point anywhere).
//!
//! A finite value is `unscaled × 10^-dscale`. PostgreSQL stores base-10000 digits, which matters
//! for two things only: the binary wire layout and the division scale rule (`select_div_scale`
//! looks at the first base-10000 digit and its weight); both are derived here on demand.

use std::cmp::Ordering;

use num_bigint::BigInt;
use num_integer::Integer;
use num_traits::{Signed, Zero};

/// NUMERIC_DSCALE_MAX: the largest display scale a numeric can carry.
const DSCALE_MAX: u32 = 0x3FFF;
/// Decimal digits per base-10000 digit (DEC_DIGITS).
const DEC_DIGITS: i64 = 4;
/// NUMERIC_MIN_SIG_DIGITS: a quotient gets at least this many significant digits.
const MIN_SIG_DIGITS: i64 = 16;
/// NUMERIC_MAX_DISPLAY_SCALE: the largest scale a quotient gets.
const MAX_DISPLAY_SCALE: i64 = 1000;
/// Most digits read from text: more than any numeric PostgreSQL can hold (131072 + 16383).
const MAX_TEXT_DIGITS: usize = 150_000;
/// Largest |exponent| read from text (bounds the work; larger values overflow numeric anyway).
const MAX_EXPONENT: i64 = 150_000;

/// Binary sign words.
const SIGN_POS: u16 = 0x0000;
const SIGN_NEG: u16 = 0x4000;
const SIGN_NAN: u16 = 0xC000;
const SIGN_PINF: u16 = 0xD000;
const SIGN_NINF: u16 = 0xF000;
/// The dscale PostgreSQL sends with ±Infinity (see [`Decimal::write_binary`]).
const SPECIAL_INF_DSCALE: u32 = 32;

/// A PostgreSQL numeric value with its display scale.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Decimal {
    /// Not a number (absorbs every sum; equal to itself and above everything in comparisons).
    NaN,
    /// +Infinity.
    PosInf,
    /// -Infinity.
    NegInf,
    /// `unscaled × 10^-dscale` (zero is never negative).
    Finite {
        /// The digits as an integer.
        unscaled: BigInt,
        /// Digits shown after the point.
        dscale: u32,
    },
}

/// `10^n`.
fn pow10(n: u32) -> BigInt {
    BigInt::from(10u32).pow(n)
}

impl Decimal {
    /// An integer value (dscale 0).
    pub(super) fn from_int(v: impl Into<BigInt>) -> Decimal {
        Decimal::Finite {
            unscaled: v.into(),
            dscale: 0,
        }
    }

    /// Decodes a numeric from its text or binary wire format (None if invalid).
    pub(super) fn parse(v: &[u8], binary: bool) -> Option<Decimal> {
        if binary {
            Decimal::from_binary(v)
        } else {
            Decimal::from_text(std::str::from_utf8(v).ok()?)
        }
    }

    /// Parses PostgreSQL's numeric input: `[+-]digits[.digits][e[+-]digits]`, `NaN`,
    /// `[+-]Infinity` / `[+-]inf` (case-insensitive), surrounding whitespace allowed.
    pub(super) fn from_text(s: &str) -> Option<Decimal> {
        let s = s.trim_matches(|c: char| c.is_ascii_whitespace());
        if s.eq_ignore_ascii_case("nan") {
            return Some(Decimal::NaN);
        }
        let (negative, body) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        if body.eq_ignore_ascii_case("infinity") || body.eq_ignore_ascii_case("inf") {
            return Some(if negative {
                Decimal::NegInf
            } else {
                Decimal::PosInf
            });
        }
        let (mantissa, exponent) = match body.split_once(['e', 'E']) {
            Some((m, e)) => {
                let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                (m, e.parse::<i64>().ok()?)
            }
            None => (body, 0),
        };
        if exponent.abs() > MAX_EXPONENT {
            return None;
        }
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = int_part.bytes().chain(frac_part.bytes());
        if int_part.len() + frac_part.len() == 0
            || int_part.len() + frac_part.len() > MAX_TEXT_DIGITS
            || !all_digits.clone().all(|c| c.is_ascii_digit())
        {
            return None;
        }
        let digits: String = all_digits.map(char::from).collect();
        let mantissa = BigInt::parse_bytes(digits.as_bytes(), 10)?;
        // value = mantissa × 10^(exponent - frac); PostgreSQL shows max(frac - exponent, 0) digits.
        let shift = exponent - i64::try_from(frac_part.len()).ok()?;
        let dscale = u32::try_from((-shift).max(0)).ok()?;
        if dscale > DSCALE_MAX {
            return None;
        }
        let up = u32::try_from(shift + i64::from(dscale)).ok()?;
        let magnitude = mantissa * pow10(up);
        Some(Decimal::finite(
            if negative { -magnitude } else { magnitude },
            dscale,
        ))
    }

    /// Decodes PostgreSQL's binary numeric: ndigits, weight, sign, dscale, base-10000 digits.
    /// Digits past dscale are truncated, as the server's `numeric_recv` does.
    pub(super) fn from_binary(v: &[u8]) -> Option<Decimal> {
        let (header, body) = v.split_first_chunk::<8>()?;
        let ndigits = usize::try_from(i16::from_be_bytes([header[0], header[1]])).ok()?;
        let weight = i64::from(i16::from_be_bytes([header[2], header[3]]));
        let sign = u16::from_be_bytes([header[4], header[5]]);
        let dscale = u32::from(u16::from_be_bytes([header[6], header[7]]));
        if body.len() != ndigits * 2 || dscale > DSCALE_MAX {
            return None;
        }
        let negative = match sign {
            SIGN_POS => false,
            SIGN_NEG => true,
            SIGN_NAN => return Some(Decimal::NaN),
            SIGN_PINF => return Some(Decimal::PosInf),
            SIGN_NINF => return Some(Decimal::NegInf),
            _ => return None,
        };
        let mut text = String::with_capacity(ndigits * 4);
        for pair in body.chunks_exact(2) {
            let d = u16::from_be_bytes([pair[0], pair[1]]);
            if d > 9999 {
                return None;
            }
            text.push_str(&format!("{d:04}"));
        }
        let digits = if text.is_empty() {
            BigInt::zero()
        } else {
            BigInt::parse_bytes(text.as_bytes(), 10)?
        };
        // The last digit is worth 10000^(weight - ndigits + 1).
        let last_exp = (weight + 1 - i64::try_from(ndigits).ok()?) * DEC_DIGITS;
        let shift = last_exp + i64::from(dscale);
        let magnitude = if shift >= 0 {
            digits * pow10(u32::try_from(shift).ok()?)
        } else {
            digits / pow10(u32::try_from(-shift).ok()?)
        };
        Some(Decimal::finite(
            if negative { -magnitude } else { magnitude },
            dscale,
        ))
    }

    /// A finite value (normalizes nothing: zero is simply zero).
    fn finite(unscaled: BigInt, dscale: u32) -> Decimal {
        Decimal::Finite { unscaled, dscale }
    }

    /// The sum, as PostgreSQL's numeric addition: NaN absorbs, +Inf + -Inf is NaN, and a finite
    /// result shows the larger display scale.
    pub(super) fn add(&self, other: &Decimal) -> Decimal {
        use Decimal::*;
        match (self, other) {
            (NaN, _) | (_, NaN) | (PosInf, NegInf) | (NegInf, PosInf) => NaN,
            (PosInf, _) | (_, PosInf) => PosInf,
            (NegInf, _) | (_, NegInf) => NegInf,
            (
                Finite {
                    unscaled: a,
                    dscale: sa,
                },
                Finite {
                    unscaled: b,
                    dscale: sb,
                },
            ) => {
                let dscale = (*sa).max(*sb);
                let sum = a * pow10(dscale - sa) + b * pow10(dscale - sb);
                Decimal::finite(sum, dscale)
            }
        }
    }

    /// `self / divisor` as PostgreSQL's `numeric_div(self, divisor::numeric)`: the scale from
    /// `select_div_scale`, rounded half away from zero. None when dividing by zero.
    pub(super) fn div_int(&self, divisor: i64) -> Option<Decimal> {
        if divisor == 0 {
            return None;
        }
        let (unscaled, dscale) = match self {
            Decimal::NaN => return Some(Decimal::NaN),
            Decimal::PosInf | Decimal::NegInf => {
                let positive = matches!(self, Decimal::PosInf) == (divisor > 0);
                return Some(if positive {
                    Decimal::PosInf
                } else {
                    Decimal::NegInf
                });
            }
            Decimal::Finite { unscaled, dscale } => (unscaled, *dscale),
        };
        let divisor = BigInt::from(divisor);
        let rscale = div_scale(unscaled, dscale, &divisor);
        // num / den = self × 10^rscale / divisor, all integers.
        let (num, den) = if rscale >= dscale {
            (unscaled * pow10(rscale - dscale), divisor)
        } else {
            (unscaled.clone(), divisor * pow10(dscale - rscale))
        };
        let (mut quotient, remainder) = num.div_rem(&den);
        if remainder.abs() * 2u32 >= den.abs() {
            if num.is_negative() != den.is_negative() {
                quotient -= 1;
            } else {
                quotient += 1;
            }
        }
        Some(Decimal::finite(quotient, rscale))
    }

    /// PostgreSQL's numeric order: -Infinity < finite < Infinity < NaN, NaN equal to NaN,
    /// finite values by value (scale ignored: 1.5 = 1.50).
    pub(super) fn cmp_value(&self, other: &Decimal) -> Ordering {
        let class = |d: &Decimal| match d {
            Decimal::NegInf => 0,
            Decimal::Finite { .. } => 1,
            Decimal::PosInf => 2,
            Decimal::NaN => 3,
        };
        match (self, other) {
            (
                Decimal::Finite {
                    unscaled: a,
                    dscale: sa,
                },
                Decimal::Finite {
                    unscaled: b,
                    dscale: sb,
                },
            ) => {
                let scale = (*sa).max(*sb);
                (a * pow10(scale - sa)).cmp(&(b * pow10(scale - sb)))
            }
            _ => class(self).cmp(&class(other)),
        }
    }

    /// The nearest float8, as PostgreSQL's numeric-to-float8 cast (through the text form).
    pub(super) fn to_f64(&self) -> f64 {
        match self {
            Decimal::NaN => f64::NAN,
            Decimal::PosInf => f64::INFINITY,
            Decimal::NegInf => f64::NEG_INFINITY,
            Decimal::Finite { .. } => self.to_text().parse().unwrap_or(f64::NAN),
        }
    }

    /// PostgreSQL's `numeric_out`: exactly dscale digits after the point, `NaN`, `Infinity`,
    /// `-Infinity`.
    pub(super) fn to_text(&self) -> String {
        let (unscaled, dscale) = match self {
            Decimal::NaN => return "NaN".into(),
            Decimal::PosInf => return "Infinity".into(),
            Decimal::NegInf => return "-Infinity".into(),
            Decimal::Finite { unscaled, dscale } => (unscaled, *dscale as usize),
        };
        let digits = unscaled.magnitude().to_string();
        let mut out = String::with_capacity(digits.len() + dscale + 3);
        if unscaled.is_negative() {
            out.push('-');
        }
        if dscale == 0 {
            out.push_str(&digits);
            return out;
        }
        let padded = if digits.len() <= dscale {
            format!("{}{digits}", "0".repeat(dscale + 1 - digits.len()))
        } else {
            digits
        };
        let (int, frac) = padded.split_at(padded.len() - dscale);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
        out
    }

    /// PostgreSQL's `numeric_send` layout, appended to `out`; None if the value does not fit
    /// the format (more than 32767 base-10000 digits or weight out of range).
    pub(super) fn write_binary(&self, out: &mut Vec<u8>) -> Option<()> {
        // numeric_send reads a special value's dscale through the short-header mask
        // (0x1F80 >> 7), so ±Infinity (0xD000 / 0xF000) go out with dscale 32 and NaN with 0.
        let (sign, digits, weight, dscale) = match self {
            Decimal::NaN => (SIGN_NAN, Vec::new(), 0, 0),
            Decimal::PosInf => (SIGN_PINF, Vec::new(), 0, SPECIAL_INF_DSCALE),
            Decimal::NegInf => (SIGN_NINF, Vec::new(), 0, SPECIAL_INF_DSCALE),
            Decimal::Finite { unscaled, dscale } => {
                let (digits, weight) = nbase_digits(unscaled, *dscale);
                let sign = if unscaled.is_negative() {
                    SIGN_NEG
                } else {
                    SIGN_POS
                };
                (sign, digits, weight, *dscale)
            }
        };
        let ndigits = i16::try_from(digits.len()).ok()?;
        let weight = i16::try_from(weight).ok()?;
        let dscale = u16::try_from(dscale).ok()?;
        out.extend_from_slice(&ndigits.to_be_bytes());
        out.extend_from_slice(&weight.to_be_bytes());
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            out.extend_from_slice(&d.to_be_bytes());
        }
        Some(())
    }
}

/// The magnitude's base-10000 digits as PostgreSQL stores them (no leading or trailing zero
/// digits) and the weight of the first; zero is no digits and weight 0.
fn nbase_digits(unscaled: &BigInt, dscale: u32) -> (Vec<u16>, i64) {
    if unscaled.is_zero() {
        return (Vec::new(), 0);
    }
    // Align the point to a base-10000 digit boundary.
    let pad = (4 - dscale % 4) % 4;
    let text = (unscaled.magnitude() * pow10(pad).magnitude()).to_string();
    let frac_digits = i64::from((dscale + pad) / 4);
    let lead = (4 - text.len() % 4) % 4;
    let padded = format!("{}{text}", "0".repeat(lead));
    let mut digits: Vec<u16> = padded
        .as_bytes()
        .chunks(4)
        .map(|c| c.iter().fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0')))
        .collect();
    let weight = digits.len() as i64 - 1 - frac_digits;
    while digits.last() == Some(&0) {
        digits.pop();
    }
    (digits, weight)
}

/// PostgreSQL's `select_div_scale` for `value / divisor` (value with display scale `dscale`,
/// divisor an integer): at least 16 significant digits, no fewer than either scale, at most 1000.
fn div_scale(value: &BigInt, dscale: u32, divisor: &BigInt) -> u32 {
    let first = |v: &BigInt, scale: u32| {
        let (digits, weight) = nbase_digits(v, scale);
        digits.first().map_or((0, 0), |&d| (weight, d))
    };
    let (weight1, first1) = first(value, dscale);
    let (weight2, first2) = first(divisor, 0);
    // If the first digits are equal we can't be sure, but assume value < divisor.
    let mut qweight = weight1 - weight2;
    if first1 <= first2 {
        qweight -= 1;
    }
    let rscale = (MIN_SIG_DIGITS - qweight * DEC_DIGITS)
        .max(i64::from(dscale))
        .clamp(0, MAX_DISPLAY_SCALE);
    u32::try_from(rscale).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
#[path = "decimal_tests.rs"]
mod tests;
