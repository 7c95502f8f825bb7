//! Exact numeric values for ordering: PostgreSQL's `numeric` from its text or binary wire
//! format, compared as decimals (never through f64), with -Infinity < finite < Infinity < NaN.

use std::cmp::Ordering;

use super::compare::{utf8, CompareError, Result};

/// An exact numeric value in PostgreSQL's order: -Infinity < finite < Infinity < NaN.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Numeric {
    NegInf,
    /// `0.d1d2d3... × 10^exp`, digits without leading or trailing zeros (empty for zero).
    Finite {
        negative: bool,
        exp: i64,
        digits: Vec<u8>,
    },
    PosInf,
    NaN,
}

impl Numeric {
    /// Decodes a numeric from text or binary format.
    pub(super) fn parse(v: &[u8], binary: bool) -> Result<Numeric> {
        let parsed = if binary {
            Numeric::from_binary(v)
        } else {
            Numeric::from_text(utf8(v, "numeric")?)
        };
        parsed.ok_or(CompareError::Invalid("numeric"))
    }

    /// Parses `[+-]digits[.digits][e[+-]digits]`, `NaN` or `[+-]Infinity`.
    fn from_text(s: &str) -> Option<Numeric> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("nan") {
            return Some(Numeric::NaN);
        }
        let (negative, body) = if let Some(rest) = s.strip_prefix('-') {
            (true, rest)
        } else {
            (false, s.strip_prefix('+').unwrap_or(s))
        };
        if body.eq_ignore_ascii_case("infinity") || body.eq_ignore_ascii_case("inf") {
            return Some(if negative {
                Numeric::NegInf
            } else {
                Numeric::PosInf
            });
        }
        let (mantissa, exponent) = match body.split_once(['e', 'E']) {
            Some((m, e)) => (m, e.parse::<i64>().ok()?),
            None => (body, 0),
        };
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let all = int_part.bytes().chain(frac_part.bytes());
        let mut digits = Vec::with_capacity(int_part.len() + frac_part.len());
        for c in all {
            if !c.is_ascii_digit() {
                return None;
            }
            digits.push(c - b'0');
        }
        let point = i64::try_from(int_part.len()).ok()?.checked_add(exponent)?;
        Some(Numeric::finite(negative, point, digits))
    }

    /// Decodes PostgreSQL's binary numeric: ndigits, weight, sign, dscale, base-10000 digits.
    fn from_binary(v: &[u8]) -> Option<Numeric> {
        let (header, body) = v.split_first_chunk::<8>()?;
        let ndigits = usize::try_from(i16::from_be_bytes([header[0], header[1]])).ok()?;
        let weight = i64::from(i16::from_be_bytes([header[2], header[3]]));
        let negative = match u16::from_be_bytes([header[4], header[5]]) {
            0x0000 => false,
            0x4000 => true,
            0xC000 => return Some(Numeric::NaN),
            0xD000 => return Some(Numeric::PosInf),
            0xF000 => return Some(Numeric::NegInf),
            _ => return None,
        };
        if body.len() != ndigits * 2 {
            return None;
        }
        let mut digits = Vec::with_capacity(ndigits * 4);
        for pair in body.chunks_exact(2) {
            let d = u16::from_be_bytes([pair[0], pair[1]]);
            if d > 9999 {
                return None;
            }
            let d = d as u32;
            digits.extend([d / 1000, d / 100 % 10, d / 10 % 10, d % 10].map(|x| x as u8));
        }
        Some(Numeric::finite(negative, (weight + 1) * 4, digits))
    }

    /// Normalizes `0.digits × 10^point` (strips leading and trailing zeros).
    fn finite(negative: bool, point: i64, mut digits: Vec<u8>) -> Numeric {
        let leading = digits.iter().take_while(|&&d| d == 0).count();
        let trailing_end = digits.iter().rposition(|&d| d != 0).map_or(0, |i| i + 1);
        if trailing_end == 0 {
            return Numeric::Finite {
                negative: false,
                exp: 0,
                digits: Vec::new(),
            };
        }
        digits.truncate(trailing_end);
        digits.drain(..leading);
        Numeric::Finite {
            negative,
            exp: point - leading as i64,
            digits,
        }
    }

    /// -Infinity, negative, zero, positive, Infinity, NaN as 0..=5.
    fn class(&self) -> u8 {
        match self {
            Numeric::NegInf => 0,
            Numeric::Finite { negative: true, .. } => 1,
            Numeric::Finite { digits, .. } if digits.is_empty() => 2,
            Numeric::Finite { .. } => 3,
            Numeric::PosInf => 4,
            Numeric::NaN => 5,
        }
    }
}

impl Ord for Numeric {
    fn cmp(&self, other: &Numeric) -> Ordering {
        let by_class = self.class().cmp(&other.class());
        match (self, other) {
            (
                Numeric::Finite {
                    negative,
                    exp: ea,
                    digits: da,
                },
                Numeric::Finite {
                    exp: eb,
                    digits: db,
                    ..
                },
            ) if by_class.is_eq() => {
                // Digits are normalized: a larger exponent means a larger magnitude.
                let magnitude = ea.cmp(eb).then_with(|| da.cmp(db));
                if *negative {
                    magnitude.reverse()
                } else {
                    magnitude
                }
            }
            _ => by_class,
        }
    }
}

impl PartialOrd for Numeric {
    fn partial_cmp(&self, other: &Numeric) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
