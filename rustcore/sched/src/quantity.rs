//! Kubernetes resource quantities (`3000`, `3k`, `1Gi`, `1.5`, `2e3`) as whole numbers.

use crate::error::{Codec, Error, Result};

/// Parses a quantity and returns its value if it is a whole number.
pub fn parse_quantity(field: &str, s: &str) -> Result<i64> {
    let err = |msg: &str| Error::decode(Codec::Quantity, field, format!("{s:?}"), msg);
    let t = s.trim();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let num_end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, suffix) = t.split_at(num_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(err("expected a number such as 3000, 3k or 1Gi"));
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.len() + frac_part.len() > 30 {
        return Err(err("number too long"));
    }
    // value = digits / 10^frac_len * 2^bin * 10^dec
    let digits: i128 = format!("{int_part}{frac_part}")
        .parse()
        .map_err(|_| err("expected a number"))?;
    let (bin, dec): (u32, i32) = match suffix {
        "" => (0, 0),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        e if e.starts_with(['e', 'E']) => {
            let x: i32 = e[1..].parse().map_err(|_| err("bad exponent"))?;
            if !(-30..=30).contains(&x) {
                return Err(err("exponent out of range"));
            }
            (0, x)
        }
        _ => return Err(err("unknown suffix: use one of Ki Mi Gi Ti Pi Ei n u m k M G T P E")),
    };
    let scale = dec - frac_part.len() as i32;
    let mut value = digits.checked_mul(1i128 << bin).ok_or_else(|| err("too large"))?;
    if scale >= 0 {
        value = value
            .checked_mul(10i128.checked_pow(scale as u32).ok_or_else(|| err("too large"))?)
            .ok_or_else(|| err("too large"))?;
    } else {
        let div = 10i128.checked_pow((-scale) as u32).ok_or_else(|| err("too precise"))?;
        if value % div != 0 {
            return Err(err("must be a whole number"));
        }
        value /= div;
    }
    let value = if neg { -value } else { value };
    i64::try_from(value).map_err(|_| err("too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for (s, v) in [
            ("3000", 3000),
            ("3k", 3000),
            ("1Ki", 1024),
            ("1.5k", 1500),
            ("2e3", 2000),
            ("-2", -2),
            ("0.5Ki", 512),
        ] {
            assert_eq!(parse_quantity("x", s).unwrap(), v, "{s}");
        }
        for s in ["", "abc", "1.5", "3x", "1..2", "500m"] {
            assert!(parse_quantity("x", s).is_err(), "{s}");
        }
    }
}
