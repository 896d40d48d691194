//! Go `time.Time` on the wire: RFC3339 with nanoseconds (trailing zeros trimmed), and the zero
//! time `0001-01-01T00:00:00Z` for "unset".

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Seconds from 0001-01-01T00:00:00Z to the unix epoch, negated.
const ZERO_UNIX_SECONDS: i64 = -62_135_596_800;

/// A UTC instant with nanosecond precision. `Timestamp::ZERO` is Go's zero time (unset).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp {
    unix_seconds: i64,
    nanos: u32,
}

impl Default for Timestamp {
    fn default() -> Self {
        Timestamp::ZERO
    }
}

impl Timestamp {
    /// Go's zero `time.Time`: means "unset".
    pub const ZERO: Timestamp = Timestamp {
        unix_seconds: ZERO_UNIX_SECONDS,
        nanos: 0,
    };

    /// A timestamp from unix seconds and nanoseconds (nanos must be < 1e9).
    pub fn from_unix(unix_seconds: i64, nanos: u32) -> Timestamp {
        assert!(nanos < 1_000_000_000, "nanos out of range: {nanos}");
        Timestamp { unix_seconds, nanos }
    }

    /// From a `SystemTime` (under the simulator, the simulated clock).
    pub fn from_system(time: SystemTime) -> Timestamp {
        match time.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp {
                unix_seconds: d.as_secs() as i64,
                nanos: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                if d.subsec_nanos() == 0 {
                    Timestamp {
                        unix_seconds: -(d.as_secs() as i64),
                        nanos: 0,
                    }
                } else {
                    Timestamp {
                        unix_seconds: -(d.as_secs() as i64) - 1,
                        nanos: 1_000_000_000 - d.subsec_nanos(),
                    }
                }
            }
        }
    }

    /// The current time from the runtime clock.
    pub fn now() -> Timestamp {
        Timestamp::from_system(SystemTime::now())
    }

    /// Whether this is the zero time (unset).
    pub fn is_zero(&self) -> bool {
        *self == Timestamp::ZERO
    }

    /// Unix seconds.
    pub fn unix_seconds(&self) -> i64 {
        self.unix_seconds
    }

    /// Sub-second nanoseconds.
    pub fn subsec_nanos(&self) -> u32 {
        self.nanos
    }

    /// Unix nanoseconds (saturating), as Go's `UnixNano`.
    pub fn unix_nanos(&self) -> i64 {
        self.unix_seconds
            .saturating_mul(1_000_000_000)
            .saturating_add(self.nanos as i64)
    }

    /// This time plus `duration`.
    pub fn add(&self, duration: Duration) -> Timestamp {
        let total = self.nanos as u64 + duration.subsec_nanos() as u64;
        Timestamp {
            unix_seconds: self
                .unix_seconds
                .saturating_add(duration.as_secs() as i64 + (total / 1_000_000_000) as i64),
            nanos: (total % 1_000_000_000) as u32,
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a count of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl Timestamp {
    /// The RFC 3339 text written into `buf` without the formatting machinery (listings write
    /// millions); `None` for a year outside 0000..=9999, which [`fmt::Display`] writes slowly.
    pub(crate) fn write_text<'b>(&self, buf: &'b mut [u8; 30]) -> Option<&'b str> {
        let days = self.unix_seconds.div_euclid(86_400);
        let secs_of_day = self.unix_seconds.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        if !(0..=9999).contains(&year) {
            return None;
        }
        fn digits(out: &mut [u8], mut value: u32) {
            for slot in out.iter_mut().rev() {
                *slot = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        digits(&mut buf[0..4], year as u32);
        buf[4] = b'-';
        digits(&mut buf[5..7], month);
        buf[7] = b'-';
        digits(&mut buf[8..10], day);
        buf[10] = b'T';
        digits(&mut buf[11..13], secs_of_day / 3600);
        buf[13] = b':';
        digits(&mut buf[14..16], secs_of_day / 60 % 60);
        buf[16] = b':';
        digits(&mut buf[17..19], secs_of_day % 60);
        let mut end = 19;
        if self.nanos != 0 {
            buf[19] = b'.';
            digits(&mut buf[20..29], self.nanos);
            end = 29;
            while buf[end - 1] == b'0' {
                end -= 1;
            }
        }
        buf[end] = b'Z';
        std::str::from_utf8(&buf[..end + 1]).ok()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.write_text(&mut [0; 30]) {
            Some(text) => f.write_str(text),
            None => self.fmt_any_year(f),
        }
    }
}

impl Timestamp {
    fn fmt_any_year(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.unix_seconds.div_euclid(86_400);
        let secs_of_day = self.unix_seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            year,
            month,
            day,
            secs_of_day / 3600,
            secs_of_day / 60 % 60,
            secs_of_day % 60
        )?;
        if self.nanos != 0 {
            let digits = format!("{:09}", self.nanos);
            write!(f, ".{}", digits.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

/// Text that is not an RFC3339 time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC3339 time {0:?}")]
pub struct TimestampError(pub String);

fn parse_number(text: &str, what: &str) -> Result<u32, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad {what}"));
    }
    text.parse().map_err(|_| format!("bad {what}"))
}

/// Days in `month` (1-12) of `year`, in the proleptic Gregorian calendar.
fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn parse_rfc3339(text: &str) -> Result<Timestamp, String> {
    // Every field below is sliced by byte position: a multi-byte character would split.
    if !text.is_ascii() {
        return Err("not ASCII".into());
    }
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || !(bytes[10] == b'T' || bytes[10] == b't') {
        return Err("expected YYYY-MM-DDTHH:MM:SS".into());
    }
    if bytes[13] != b':' || bytes[16] != b':' {
        return Err("expected HH:MM:SS".into());
    }
    let year = parse_number(&text[0..4], "year")? as i64;
    let month = parse_number(&text[5..7], "month")?;
    let day = parse_number(&text[8..10], "day")?;
    let hour = parse_number(&text[11..13], "hour")?;
    let minute = parse_number(&text[14..16], "minute")?;
    let second = parse_number(&text[17..19], "second")?;
    // As Go's time.Parse: no day past the end of its month, no leap second.
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err("field out of range".into());
    }
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return Err("bad fraction".into());
        }
        let padded = format!("{:0<9}", &fraction[..digits]);
        nanos = parse_number(&padded, "fraction")?;
        rest = &fraction[digits..];
    }
    let offset_seconds: i64 = if rest == "Z" || rest == "z" {
        0
    } else {
        let sign = match rest.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Err("bad zone".into()),
        };
        if rest.len() != 6 || rest.as_bytes()[3] != b':' {
            return Err("bad zone".into());
        }
        let zone_hours = parse_number(&rest[1..3], "zone hour")? as i64;
        let zone_minutes = parse_number(&rest[4..6], "zone minute")? as i64;
        if zone_hours > 23 || zone_minutes > 59 {
            return Err("zone out of range".into());
        }
        sign * (zone_hours * 3600 + zone_minutes * 60)
    };
    let days = days_from_civil(year, month, day);
    let unix_seconds = days * 86_400 + hour as i64 * 3600 + minute as i64 * 60 + second as i64 - offset_seconds;
    Ok(Timestamp { unix_seconds, nanos })
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(text: &str) -> Result<Timestamp, TimestampError> {
        parse_rfc3339(text).map_err(|_| TimestampError(text.to_string()))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.write_text(&mut [0; 30]) {
            Some(text) => serializer.serialize_str(text),
            None => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `user_text` fuzz target (fuzz/regressions/user_text/): a character of two
    /// bytes across the seconds field panicked, and `expire-at` reaches this parser from a URL.
    #[test]
    fn a_timestamp_with_a_multibyte_character_is_refused_not_a_panic() {
        for text in [
            "2026-12-06T04:33:0\u{2ad}04:33:01Z",
            "2026-12-06T04:3\u{e9}:00Z",
            "\u{e9}026-12-06T04:33:00Z",
        ] {
            assert!(text.parse::<Timestamp>().is_err(), "{text}");
        }
    }

    /// The fast writer (listings) and the formatter agree wherever the fast one applies, and
    /// years it does not write still print.
    #[test]
    fn the_fast_text_matches_the_formatted_one() {
        struct Slow(Timestamp);
        impl fmt::Display for Slow {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt_any_year(f)
            }
        }
        let mut seconds: i64 = -62_135_596_800; // 0001-01-01
        let mut nanos: u32 = 0;
        while seconds < 253_402_300_800 {
            // 9999-12-31 and on
            let t = Timestamp::from_unix(seconds, nanos);
            let fast = t.write_text(&mut [0; 30]).expect("a year of four digits").to_string();
            assert_eq!(fast, Slow(t).to_string());
            assert_eq!(fast.parse::<Timestamp>().unwrap(), t);
            seconds += 79_999_977;
            nanos = [0, 100_000_000, 5, (nanos + 123_456_789) % 1_000_000_000][seconds.rem_euclid(4) as usize];
        }
        assert_eq!(
            Timestamp::from_unix(253_402_300_800, 0).to_string(),
            "10000-01-01T00:00:00Z"
        );
        assert!(Timestamp::from_unix(253_402_300_800, 0)
            .write_text(&mut [0; 30])
            .is_none());
    }

    #[test]
    fn zero_time_prints_like_go() {
        assert_eq!(Timestamp::ZERO.to_string(), "0001-01-01T00:00:00Z");
        assert_eq!("0001-01-01T00:00:00Z".parse::<Timestamp>().unwrap(), Timestamp::ZERO);
        assert!(Timestamp::default().is_zero());
    }

    #[test]
    fn nanoseconds_are_trimmed_and_offsets_normalized() {
        let t: Timestamp = "2026-05-11T10:17:41.1+02:00".parse().unwrap();
        assert_eq!(t.to_string(), "2026-05-11T08:17:41.1Z");
        let t: Timestamp = "2026-11-26T18:51:50.507Z".parse().unwrap();
        assert_eq!(t.to_string(), "2026-11-26T18:51:50.507Z");
        assert_eq!(Timestamp::from_unix(0, 0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Timestamp::from_unix(951_782_400, 5).to_string(),
            "2000-02-29T00:00:00.000000005Z"
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-01-01 00:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.Z",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
    }

    /// As Go's `time.Parse`: a day past the end of its month, a leap second or a zone offset
    /// of 24 hours or more is not a time.
    #[test]
    fn rejects_impossible_dates_as_go_does() {
        for bad in [
            "2027-02-30T00:00:00Z",
            "2027-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-31T12:00:00Z",
            "2026-12-31T23:59:60Z",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00+01:60",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
        for good in [
            "2028-02-29T00:00:00Z",
            "2000-02-29T00:00:00Z",
            "2026-01-31T23:59:59Z",
            "2026-12-31T00:00:00-23:59",
        ] {
            assert!(good.parse::<Timestamp>().is_ok(), "{good}");
        }
    }
}
