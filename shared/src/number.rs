//! Decimal numbers read from text as Rust's `f64::from_str` reads them. In the page, the
//! browser's own conversion does the arithmetic once the text is known to be a number:
//! Rust's carries a 10 KB table of powers of five that the page would otherwise download.
//! Browsers round to the nearest double as Rust does (the language leaves digits past the
//! twentieth to them, and the ones tokenscope runs in round them correctly).

/// `text` as a number, or `None` where `f64::from_str` would refuse it: an optional sign,
/// then digits with an optional point and exponent, or `inf`, `infinity` or `nan` in any case.
pub fn parse_f64(text: &str) -> Option<f64> {
    #[cfg(target_arch = "wasm32")]
    {
        let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
        let sign = if text.starts_with('-') { -1.0 } else { 1.0 };
        if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
            return Some(sign * f64::INFINITY);
        }
        if unsigned.eq_ignore_ascii_case("nan") {
            return Some(if sign < 0.0 { -f64::NAN } else { f64::NAN });
        }
        // Within this grammar the browser's `parseFloat` reads every character, rounding
        // to the nearest double as Rust does.
        is_decimal(unsigned).then(|| js_sys::parse_float(text))
    }
    #[cfg(not(target_arch = "wasm32"))]
    text.parse().ok()
}

/// Digits with an optional point (at least one digit before or after it), then an optional
/// exponent: `e` or `E`, an optional sign and at least one digit.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn is_decimal(text: &str) -> bool {
    let digits = |s: &str| s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let whole = digits(text);
    let mut rest = &text[whole..];
    let mut fraction = 0;
    if let Some(after) = rest.strip_prefix('.') {
        fraction = digits(after);
        rest = &after[fraction..];
    }
    if whole + fraction == 0 {
        return false;
    }
    match rest.strip_prefix(['e', 'E']) {
        None => rest.is_empty(),
        Some(exponent) => {
            let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            !exponent.is_empty() && digits(exponent) == exponent.len()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page's reading accepts exactly what Rust's does: the grammar, with the words.
    #[test]
    fn the_grammar_is_rusts() {
        let words = |s: &str| {
            let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
            ["inf", "infinity", "nan"].iter().any(|w| unsigned.eq_ignore_ascii_case(w))
        };
        for text in [
            "0",
            "1",
            "+1",
            "-1",
            "1.",
            ".5",
            "-.5",
            "1.5",
            "007",
            "1e5",
            "1E5",
            "1e+5",
            "1e-5",
            "1.5e3",
            ".5e1",
            "1.e2",
            "12345678901234567890123",
            "1e400",
            "1e-400",
            "inf",
            "-Infinity",
            "NaN",
            "+nan",
            "",
            ".",
            "-",
            "+",
            "e5",
            ".e5",
            "1e",
            "1e+",
            "1e5.0",
            "1.2.3",
            " 1",
            "1 ",
            "0x10",
            "1_000",
            "1,5",
            "--1",
            "+-1",
            "∞",
            "1e٣",
            "١",
            "infinit",
            "nanx",
            "in f",
        ] {
            let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
            let ours = words(text) || is_decimal(unsigned);
            assert_eq!(ours, text.parse::<f64>().is_ok(), "{text:?}");
        }
    }

    #[test]
    fn numbers_read_as_rust_reads_them() {
        assert_eq!(parse_f64("0.1"), Some(0.1));
        assert_eq!(parse_f64("-2.5e3"), Some(-2500.0));
        assert_eq!(parse_f64("1 000"), None);
        assert!(parse_f64("nan").unwrap().is_nan());
    }
}
