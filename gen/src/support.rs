//! What the seed-003/004 generators share: continuous distributions over
//! [`Dice`], money in integer cents, and civil dates in a fixed time zone.
//! Kept out of `lib.rs` so the scenario list there stays the only shared edit.

use crate::Dice;

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// UTC+8, the business time zone of every seed (dates, months).
pub const CST_OFFSET_MS: i64 = 8 * HOUR_MS;

/// A uniform number in `[0, 1)`.
pub fn unit(dice: &mut Dice) -> f64 {
    dice.below(1 << 53) as f64 / (1u64 << 53) as f64
}

/// A standard normal number (Box–Muller).
pub fn normal(dice: &mut Dice) -> f64 {
    let u1 = 1.0 - unit(dice); // (0, 1]: ln is finite
    let u2 = unit(dice);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A number in `lo..=hi`.
pub fn between(dice: &mut Dice, lo: i64, hi: i64) -> i64 {
    lo + dice.below((hi - lo + 1) as u64) as i64
}

/// Index into `weights`, chosen with probability proportional to its weight.
pub fn weighted(dice: &mut Dice, weights: &[u64]) -> usize {
    let mut roll = dice.below(weights.iter().sum());
    for (i, w) in weights.iter().enumerate() {
        if roll < *w {
            return i;
        }
        roll -= w;
    }
    weights.len() - 1
}

/// Integer cents as the decimal text a DECIMAL(18,2) column gives
/// (`123456` -> `"1234.56"`).
pub fn yuan(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian; Howard
/// Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day number counted from 1970-01-01.
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

/// The UTC+8 day number of an instant.
pub fn cst_day(ms: i64) -> i64 {
    (ms + CST_OFFSET_MS).div_euclid(DAY_MS)
}

/// The instant a UTC+8 day starts, plus `offset_ms` into it.
pub fn cst_instant(day: i64, offset_ms: i64) -> i64 {
    day * DAY_MS - CST_OFFSET_MS + offset_ms
}

/// `YYYY-MM-DD` of a day number.
pub fn date_text(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day `months` calendar months after `day`, clamped to the end of a
/// shorter month (Jan 31 + 1 month = Feb 29 in a leap year), as loan
/// schedules do.
pub fn add_months(day: i64, months: i64) -> i64 {
    let (y, m, d) = civil_from_days(day);
    let index = y * 12 + (m - 1) + months;
    let (ny, nm) = (index.div_euclid(12), index.rem_euclid(12) + 1);
    let last = days_from_civil(ny + i64::from(nm == 12), nm % 12 + 1, 1) - days_from_civil(ny, nm, 1);
    days_from_civil(ny, nm, d.min(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for day in [-1, 0, 19_782, 19_783, 11_016, 20_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(date_text(19_782), "2024-02-29");
        // 2024-03-15 00:00 +08:00 is 2024-03-14 16:00 UTC
        assert_eq!(date_text(cst_day(1_710_432_000_000)), "2024-03-15");
        assert_eq!(date_text(cst_day(1_710_432_000_000 - 1)), "2024-03-14");
        assert_eq!(cst_instant(cst_day(1_710_432_000_000), 0), 1_710_432_000_000);
    }

    #[test]
    fn months_clamp_to_the_month_end() {
        let jan31 = days_from_civil(2024, 1, 31);
        assert_eq!(date_text(add_months(jan31, 1)), "2024-02-29");
        assert_eq!(date_text(add_months(jan31, 2)), "2024-03-31");
        assert_eq!(date_text(add_months(days_from_civil(2024, 11, 30), 3)), "2025-02-28");
    }

    #[test]
    fn money_text() {
        assert_eq!(yuan(123_456), "1234.56");
        assert_eq!(yuan(5), "0.05");
        assert_eq!(yuan(-250), "-2.50");
    }

    #[test]
    fn distributions_stay_in_range() {
        let mut dice = Dice::new(3);
        for _ in 0..10_000 {
            let u = unit(&mut dice);
            assert!((0.0..1.0).contains(&u));
            assert!(normal(&mut dice).is_finite());
            assert!((5..=9).contains(&between(&mut dice, 5, 9)));
        }
        let mut counts = [0; 3];
        for _ in 0..30_000 {
            counts[weighted(&mut dice, &[1, 0, 2])] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!((9_000..11_000).contains(&counts[0]), "{counts:?}");
    }
}
