//! Shop amounts, pure: the decimal strings of Shopify and WooCommerce (`"398.00"`) into
//! integer minor units of their currency (`39800`), exactly — never through a float.

/// Digits after the decimal point in a currency's minor unit (ISO 4217).
pub fn exponent(currency: &str) -> u32 {
    match currency.to_ascii_uppercase().as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND"
        | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    }
}

/// `amount` (a decimal string such as `"398.00"`, `"-5"`, `"1234.5"`) in minor units of
/// `currency`. More decimals than the currency has are an error unless they are zeros
/// (`"100.00"` JPY is 100), so no amount is silently rounded.
pub fn minor_units(amount: &str, currency: &str) -> Result<i64, String> {
    let exponent = exponent(currency) as usize;
    let text = amount.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !is_digits(whole) || !is_digits(fraction) {
        return Err(format!("`{amount}` is not a decimal amount"));
    }
    let (kept, dropped) = fraction.split_at(fraction.len().min(exponent));
    if dropped.bytes().any(|b| b != b'0') {
        return Err(format!("`{amount}` has more decimals than {currency} has minor units"));
    }
    let mut text = String::with_capacity(whole.len() + exponent);
    text.push_str(whole);
    text.push_str(kept);
    text.extend(std::iter::repeat_n('0', exponent - kept.len()));
    let units: i64 = text.trim_start_matches('0').parse().or_else(|e| {
        if text.bytes().all(|b| b == b'0') { Ok(0) } else { Err(format!("`{amount}` is out of range: {e}")) }
    })?;
    Ok(if negative { -units } else { units })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_become_minor_units_of_their_currency() {
        assert_eq!(minor_units("398.00", "USD"), Ok(39_800));
        assert_eq!(minor_units("1234.5", "CNY"), Ok(123_450));
        assert_eq!(minor_units("0.00", "EUR"), Ok(0));
        assert_eq!(minor_units("12", "usd"), Ok(1_200));
        assert_eq!(minor_units("-5.00", "USD"), Ok(-500));
        assert_eq!(minor_units("4500", "JPY"), Ok(4_500));
        assert_eq!(minor_units("4500.00", "JPY"), Ok(4_500), "zero decimals are fine");
        assert_eq!(minor_units("1.234", "KWD"), Ok(1_234));
        assert_eq!(minor_units(".5", "USD"), Ok(50));
        assert_eq!(minor_units("0.1", "USD"), Ok(10), "never 9.999… through a float");
    }

    #[test]
    fn amounts_that_would_be_rounded_or_are_not_numbers_are_refused() {
        assert!(minor_units("10.005", "USD").is_err());
        assert!(minor_units("4500.5", "JPY").is_err());
        for bad in ["", ".", "abc", "1,000.00", "1.2.3", "1e3", "--1", "99999999999999999999.00"] {
            assert!(minor_units(bad, "USD").is_err(), "{bad}");
        }
    }
}
