//! The hourly-premium job's input: deterministic orders over 12 hours of
//! 2024-03-15 (UTC+8). Users order again and again, so the job retracts
//! and re-adds them across hours (deletes included).

/// 2024-03-15 00:00 in UTC+8.
pub const DAY_START_MS: u64 = 1_710_432_000_000;

/// `n` orders of `users` users, as (partition, key, JSON value); `seed`
/// picks another sequence.
pub fn orders(seed: u64, users: u64, n: usize) -> Vec<(i32, String, String)> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ seed;
    let mut next = |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    (0..n)
        .map(|_| {
            let id = 1 + next(users);
            let order = format!(
                r#"{{"id":{id},"order_no":"PO{:05}","customer_tel":"138{:08}","gmt_modified":{},"account_payble":{}.{:02}}}"#,
                next(3000),
                next(400),
                DAY_START_MS + next(12 * 3_600_000),
                1 + next(5000),
                next(100)
            );
            ((id % 2) as i32, id.to_string(), order)
        })
        .collect()
}
