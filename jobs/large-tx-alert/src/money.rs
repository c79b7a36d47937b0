//! Money as integer cents. Amounts arrive as DECIMAL(18,2) text (`"1234.56"`)
//! or as JSON numbers; both are read as their decimal text, never through
//! a float sum, so comparisons with thresholds and averages are exact and
//! the batch SQL over `numeric` columns gives the same answers.

use serde_json::Value;

/// Larger amounts are refused, so that sums of a few of them (the recent
/// outflows) and products with small factors cannot overflow `i64`.
pub const MAX_CENTS: i64 = 1_000_000_000_000_000; // 10^13 yuan

/// The cents of a decimal amount with at most two decimals: `"12.5"`,
/// `12.5`, `"12.50"` and `12` all work; `"1e3"`, `"12.345"` and `"-0"` do
/// not. Negative amounts are allowed here; callers decide.
pub fn cents(value: &Value) -> Option<i64> {
    match value {
        Value::String(s) => text_cents(s),
        Value::Number(n) => number_cents(n),
        _ => None,
    }
}

/// The cents of a JSON number: its text, as serde_json writes it.
pub fn number_cents(n: &serde_json::Number) -> Option<i64> {
    // serde_json writes a float as its shortest round-trip text, which for
    // an amount with two decimals is those two decimals.
    text_cents(&n.to_string())
}

/// The cents of decimal text (surrounding whitespace allowed), without
/// copying it: this runs for every movement.
pub fn text_cents(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || fraction.len() > 2 || !(whole.bytes().chain(fraction.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    // Tenths and hundredths: "5" is 50 cents, "05" five.
    let fraction = fraction.bytes().zip([10, 1]).map(|(b, place)| i64::from(b - b'0') * place).sum::<i64>();
    let cents = whole.checked_mul(100)?.checked_add(fraction)?;
    if cents > MAX_CENTS || (negative && cents == 0) {
        return None;
    }
    Some(if negative { -cents } else { cents })
}

/// Cents as a JSON number of yuan. `cents / 100` in f64 prints as the exact
/// two-decimal text (shortest round trip), which a DECIMAL(18,2) column and
/// a Kafka consumer read back exactly.
pub fn yuan(cents: i64) -> f64 {
    cents as f64 / 100.0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn decimal_text_and_numbers() {
        assert_eq!(cents(&json!("1234.56")), Some(123_456));
        assert_eq!(cents(&json!("12.5")), Some(1250));
        assert_eq!(cents(&json!(" 7 ")), Some(700));
        assert_eq!(cents(&json!(0.1)), Some(10));
        assert_eq!(cents(&json!(99_999.99)), Some(9_999_999));
        assert_eq!(cents(&json!(50_000)), Some(5_000_000));
        assert_eq!(cents(&json!("-3.20")), Some(-320));
    }

    #[test]
    fn refuses_what_is_not_an_amount() {
        for bad in [
            json!("1e3"),
            json!("12.345"),
            json!("abc"),
            json!(""),
            json!("."),
            json!("-0"),
            json!(null),
            json!(true),
            json!("1.2.3"),
            json!(1.005),
        ] {
            assert_eq!(cents(&bad), None, "{bad}");
        }
        assert_eq!(cents(&json!("100000000000000000")), None);
    }

    #[test]
    fn text_and_values_agree() {
        for text in ["0.05", "0.5", "7.00", "12", " 3.1 ", "-0.01", "1.", "", "1.234", "99999999999999999999"] {
            assert_eq!(text_cents(text), cents(&json!(text)), "{text:?}");
        }
        assert_eq!(text_cents("0.05"), Some(5));
        assert_eq!(text_cents("0.5"), Some(50));
    }

    #[test]
    fn yuan_prints_two_decimals_exactly() {
        for c in [1, 10, 123_456, 9_999_999, 10_000_000_001, 5_000_000] {
            let text = serde_json::to_string(&yuan(c)).unwrap();
            assert_eq!(cents(&json!(text.parse::<f64>().unwrap())), Some(c), "{text}");
        }
    }
}
