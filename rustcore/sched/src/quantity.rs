//! Kubernetes resource quantities (`3000`, `3k`, `1Gi`, `1.5k`, `2e3`) as whole numbers.

use crate::error::{Codec, Error, Result};

/// Why a text is not a whole-number quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantityError {
    /// Not a quantity at all; the text says what was expected.
    Syntax(&'static str),
    /// A quantity with a fraction left over (`1.5`, `500m`).
    NotWhole,
    /// A quantity beyond 64 bits (`1e30`), or with an exponent beyond ±30.
    TooLarge,
}

impl QuantityError {
    pub fn as_str(self) -> &'static str {
        match self {
            QuantityError::Syntax(s) => s,
            QuantityError::NotWhole => "must be a whole number",
            QuantityError::TooLarge => "too large",
        }
    }
}

/// A quantity's value when it is a whole number that fits 64 bits.
pub fn quantity_value(s: &str) -> std::result::Result<i64, QuantityError> {
    use QuantityError::{NotWhole, Syntax, TooLarge};
    let t = s.trim();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let num_end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, suffix) = t.split_at(num_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(Syntax("expected a number such as 3000, 3k or 1Gi"));
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.len() + frac_part.len() > 30 {
        return Err(TooLarge);
    }
    // value = digits / 10^frac_len * 2^bin * 10^dec
    let digits: i128 = format!("{int_part}{frac_part}")
        .parse()
        .map_err(|_| Syntax("expected a number"))?;
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
            let x: i32 = e[1..].parse().map_err(|_| Syntax("bad exponent"))?;
            if !(-30..=30).contains(&x) {
                return Err(TooLarge);
            }
            (0, x)
        }
        _ => return Err(Syntax("unknown suffix: use one of Ki Mi Gi Ti Pi Ei n u m k M G T P E")),
    };
    let scale = dec - frac_part.len() as i32;
    let mut value = digits.checked_mul(1i128 << bin).ok_or(TooLarge)?;
    if scale >= 0 {
        value = value
            .checked_mul(10i128.checked_pow(scale as u32).ok_or(TooLarge)?)
            .ok_or(TooLarge)?;
    } else {
        let div = 10i128.checked_pow((-scale) as u32).ok_or(NotWhole)?;
        if value % div != 0 {
            return Err(NotWhole);
        }
        value /= div;
    }
    let value = if neg { -value } else { value };
    i64::try_from(value).map_err(|_| TooLarge)
}

/// Whether a quantity's suffix scales it by a million or more (`Mi`, `Gi`, `M`, `G`, ...):
/// the way bytes are written, never a count of MiB.
pub fn has_byte_suffix(s: &str) -> bool {
    let t = s.trim();
    ["Mi", "Gi", "Ti", "Pi", "Ei", "M", "G", "T", "P", "E"]
        .iter()
        .any(|suffix| t.ends_with(suffix))
}

/// Parses a quantity and returns its value if it is a whole number; the error names `field`.
pub fn parse_quantity(field: &str, s: &str) -> Result<i64> {
    quantity_value(s).map_err(|e| Error::decode(Codec::Quantity, field, format!("{s:?}"), e.as_str()))
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

    #[test]
    fn errors_say_which_kind() {
        assert_eq!(quantity_value("1.5"), Err(QuantityError::NotWhole));
        assert_eq!(quantity_value("1e30"), Err(QuantityError::TooLarge));
        assert_eq!(quantity_value("9Ei"), Err(QuantityError::TooLarge));
        assert!(matches!(quantity_value("lots"), Err(QuantityError::Syntax(_))));
    }

    #[test]
    fn byte_suffixes() {
        for s in ["4Gi", "4096Mi", "4G", "1E"] {
            assert!(has_byte_suffix(s), "{s}");
        }
        for s in ["4096", "4k", "4Ki", "1e3"] {
            assert!(!has_byte_suffix(s), "{s}");
        }
    }
}
