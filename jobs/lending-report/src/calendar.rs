//! Business dates in a fixed time zone (UTC+8 by default, as the seeds'
//! systems run): day numbers, `YYYY-MM-DD`, and month indexes for months on
//! book. Integer arithmetic only, so the job and the batch SQL agree to the
//! millisecond at midnight.

pub const DAY_MS: i64 = 86_400_000;

/// Converts instants to local days.
#[derive(Debug, Clone, Copy)]
pub struct Calendar {
    pub offset_ms: i64,
}

impl Calendar {
    /// The local day number (days since 1970-01-01) of an instant.
    pub fn day(&self, ms: i64) -> i64 {
        ms.saturating_add(self.offset_ms).div_euclid(DAY_MS)
    }
}

/// `YYYY-MM-DD` of a day number.
pub fn date_text(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day number of `YYYY-MM-DD`, if it is a real date.
pub fn parse_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (text[..4].parse().ok()?, text[5..7].parse().ok()?, text[8..].parse().ok()?);
    let day = days_from_civil(y, m, d);
    // Rejects 2024-02-30 and friends: they would not survive the round trip.
    (civil_from_days(day) == (y, m, d)).then_some(day)
}

/// Months since year 0 of a day number: `year * 12 + month - 1`. Months on
/// book are differences of these.
pub fn month_index(day: i64) -> i64 {
    let (y, m, _) = civil_from_days(day);
    y * 12 + m - 1
}

/// `YYYY-MM` of a month index.
pub fn month_text(index: i64) -> String {
    format!("{:04}-{:02}", index.div_euclid(12), index.rem_euclid(12) + 1)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// (year, month, day) of a day number (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_days_and_texts() {
        let cst = Calendar { offset_ms: 8 * 3_600_000 };
        // 2024-03-15 00:00 +08:00 and one ms before
        assert_eq!(date_text(cst.day(1_710_432_000_000)), "2024-03-15");
        assert_eq!(date_text(cst.day(1_710_431_999_999)), "2024-03-14");
        assert_eq!(date_text(Calendar { offset_ms: 0 }.day(1_710_432_000_000)), "2024-03-14");
        assert_eq!(parse_date("2024-02-29"), Some(days_from_civil(2024, 2, 29)));
        assert_eq!(date_text(parse_date("2024-02-29").unwrap()), "2024-02-29");
        for bad in ["2023-02-29", "2024-13-01", "2024-3-01", "20240301", "2024-03-0x", "2024-03-01T"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn months_on_book() {
        let m = |t: &str| month_index(parse_date(t).unwrap());
        assert_eq!(m("2024-04-01") - m("2024-03-31"), 1);
        assert_eq!(m("2025-01-15") - m("2024-12-31"), 1);
        assert_eq!(m("2024-03-31") - m("2024-03-01"), 0);
        assert_eq!(month_text(m("2024-12-31")), "2024-12");
        assert_eq!(month_text(m("2025-01-01")), "2025-01");
    }
}
