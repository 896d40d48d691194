//! Go duration strings as used in `service.json` and `expire-in`: `"2m0s"`, `"1h30m"`, `"500ms"`.

use std::time::Duration;

/// Text that is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}")]
pub struct DurationError(pub String);

/// Parses a Go duration (`time.ParseDuration`): a sequence of decimal numbers with units
/// `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`. Negative durations are refused.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let err = || DurationError(text.to_string());
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(err());
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
        if number_len == 0 {
            return Err(err());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| err())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .chars()
            .take_while(|c| !(c.is_ascii_digit() || *c == '.'))
            .map(|c| c.len_utf8())
            .sum();
        let unit_nanos: f64 = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(err()),
        };
        rest = &rest[unit_len..];
        // A float cast saturates: an overlong number or their sum must be refused, not wrap.
        let nanos = (number * unit_nanos).round();
        if !nanos.is_finite() || nanos >= u64::MAX as f64 {
            return Err(err());
        }
        total_nanos = total_nanos.checked_add(nanos as u128).ok_or_else(err)?;
    }
    let nanos = u64::try_from(total_nanos).map_err(|_| err())?;
    Ok(Duration::from_nanos(nanos))
}

/// Formats like Go's `Duration.String()`: `"0s"`, `"1.5s"`, `"2m0s"`, `"24h0m0s"`, `"500ms"`.
pub fn format(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (unit, scale) = if nanos < 1_000 {
            ("ns", 1u128)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", fraction(nanos, scale));
    }
    let total_seconds = nanos / 1_000_000_000;
    let sub_nanos = nanos % 1_000_000_000;
    let hours = total_seconds / 3600;
    let minutes = total_seconds / 60 % 60;
    let seconds_text = fraction((total_seconds % 60) * 1_000_000_000 + sub_nanos, 1_000_000_000);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds_text}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds_text}s")
    } else {
        format!("{seconds_text}s")
    }
}

fn fraction(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let part = value % scale;
    if part == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{part:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// serde adapter: `#[serde(with = "cluster_types::duration::serde_go")]`.
pub mod serde_go {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes a Go duration string.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format(*duration))
    }

    /// Reads a Go duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `service_config` fuzz target (fuzz/regressions/service_config/): durations
    /// past the float-to-integer cast overflowed the sum (a panic with overflow checks, a wrapped
    /// duration without them). Go refuses them as invalid.
    #[test]
    fn durations_too_long_for_a_u64_of_nanoseconds_are_refused() {
        let huge = "9".repeat(400);
        for text in [
            format!("{huge}h"),
            format!("{huge}h{huge}h"),
            "99999999999999999999h".to_string(),
            "18446744073709551615ns1ns".to_string(),
            "5124096h".to_string(),
            "3000000h3000000h".to_string(),
        ] {
            assert!(parse(&text).is_err(), "{text:.40}");
        }
        assert_eq!(parse("5124095h").unwrap(), Duration::from_secs(5_124_095 * 3600));
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_secs(120)), "2m0s");
        assert_eq!(format(Duration::from_secs(86_400)), "24h0m0s");
        assert_eq!(format(Duration::from_secs(3 * 3600)), "3h0m0s");
        assert_eq!(format(Duration::from_millis(500)), "500ms");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format(Duration::from_secs(15)), "15s");
        assert_eq!(format(Duration::from_secs(12 * 60)), "12m0s");
    }

    #[test]
    fn parses_go_forms() {
        assert_eq!(parse("2m0s").unwrap(), Duration::from_secs(120));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert_eq!(parse("24h0m0s").unwrap(), Duration::from_secs(86_400));
        for bad in ["", "5", "1x", "-1s", "s", "1h-2m"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn format_then_parse_is_identity() {
        for nanos in [1u64, 999, 1_000, 1_500_000, 59_999_999_999, 3_600_000_000_001] {
            let d = Duration::from_nanos(nanos);
            assert_eq!(parse(&format(d)).unwrap(), d, "{}", format(d));
        }
    }
}
