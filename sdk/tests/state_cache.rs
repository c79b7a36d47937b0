//! Value state kept decoded within a call: a key read and written by every
//! record of a batch is decoded and encoded once per batch, not once per
//! record (issue 17's regression guard counts the work, not seconds), and
//! the host ends up with the same state as without the cache.

use std::cell::Cell;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::json;
use sluice_sdk::prelude::*;
use sluice_sdk::testing::{JobTester, TestRecord};

thread_local! {
    static DECODED: Cell<u64> = const { Cell::new(0) };
    static ENCODED: Cell<u64> = const { Cell::new(0) };
}

/// A total that counts how often it is decoded and encoded.
#[derive(Clone, Default)]
struct Total(u64);

/// A total that does not serialize, to see where the failure goes.
const POISON: u64 = 666;

impl Serialize for Total {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        ENCODED.with(|n| n.set(n.get() + 1));
        if self.0 == POISON {
            return Err(serde::ser::Error::custom("poisoned total"));
        }
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Total {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        DECODED.with(|n| n.set(n.get() + 1));
        u64::deserialize(d).map(Total)
    }
}

/// Adds each record's `n` to its group's total; `fail` rejects the record
/// after adding (its write stays, as a record error always kept them).
struct Totals {
    totals: ValueState<Total>,
    /// The same state through a second handle of another type.
    as_number: ValueState<u64>,
}

#[derive(Deserialize)]
struct Add {
    group: String,
    n: u64,
    #[serde(default)]
    fail: bool,
    #[serde(default)]
    remove: bool,
}

impl Job for Totals {
    fn open(ctx: &mut Context) -> Result<Self> {
        Ok(Totals { totals: ctx.value_state("totals")?, as_number: ctx.value_state("totals")? })
    }

    fn process(&mut self, ctx: &mut Context, record: &Record) -> Result<()> {
        let add: Add = record.json()?;
        if add.remove {
            self.totals.remove(ctx, &add.group);
            return Ok(());
        }
        let total = self.totals.get(ctx, &add.group)?.unwrap_or_default();
        self.totals.set(ctx, &add.group, &Total(total.0 + add.n))?;
        if add.fail {
            return Err(Error::record("asked to fail"));
        }
        Ok(())
    }

    fn finish_batch(&mut self, ctx: &mut Context) -> Result<()> {
        // Read through the other handle: the cached `Total` as a `u64`.
        let a = self.as_number.get(ctx, "a")?;
        ctx.emit("seen", &json!({ "a": a }))
    }
}

fn counts() -> (u64, u64) {
    (DECODED.with(Cell::get), ENCODED.with(Cell::get))
}

fn batch(records: &[serde_json::Value]) -> Vec<TestRecord> {
    records.iter().map(TestRecord::json).collect()
}

#[test]
fn a_key_updated_by_every_record_is_decoded_and_encoded_once_per_batch() {
    let mut t = JobTester::<Totals>::builder().sink("seen").open().unwrap();
    let adds: Vec<_> = (1..=1000).map(|n| json!({ "group": "a", "n": n })).collect();

    let before = counts();
    t.send_batch(batch(&adds)).unwrap();
    let after = counts();
    // New key: nothing to decode; one encode at the end of the batch (the
    // other handle's read in `finish_batch` decodes nothing either: it is
    // read through the stored form, which is one more encode).
    assert_eq!((after.0 - before.0, after.1 - before.1), (0, 2), "(decodes, encodes) of batch 1");
    assert_eq!(t.value_state::<u64>("totals", "a"), Some(500_500));
    assert_eq!(t.emitted("seen"), [json!({ "a": 500_500 })], "a second handle sees the cached value");

    t.clear_emitted();
    let before = counts();
    t.send_batch(batch(&adds)).unwrap();
    let after = counts();
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 2), "the next batch decodes the host's value once");
    assert_eq!(t.value_state::<u64>("totals", "a"), Some(1_001_000));
}

#[test]
fn writes_before_a_record_error_and_removals_reach_the_host() {
    let mut t = JobTester::<Totals>::builder().sink("seen").open().unwrap();
    t.send_batch(batch(&[
        json!({ "group": "a", "n": 1 }),
        json!({ "group": "b", "n": 5, "fail": true }),
        json!({ "group": "a", "n": 2 }),
        json!({ "group": "c", "n": 7 }),
        json!({ "group": "c", "remove": true, "n": 0 }),
    ]))
    .unwrap();
    assert_eq!(t.value_state::<u64>("totals", "a"), Some(3));
    assert_eq!(t.value_state::<u64>("totals", "b"), Some(5), "kept, as before the cache");
    assert_eq!(t.value_state::<u64>("totals", "c"), None, "set then removed in one batch");
    assert_eq!(t.dead_letters().len(), 1);

    // Removed in a later batch than it was written.
    t.send_batch(batch(&[json!({ "group": "a", "remove": true, "n": 0 }), json!({ "group": "b", "n": 1 })])).unwrap();
    assert_eq!(t.value_state::<u64>("totals", "a"), None);
    assert_eq!(t.value_state::<u64>("totals", "b"), Some(6));
    assert_eq!(t.emitted("seen").last(), Some(&json!({ "a": null })));
}

#[test]
fn a_batch_past_the_cache_limit_spills_and_keeps_every_write() {
    let mut t = JobTester::<Totals>::builder().sink("seen").open().unwrap();
    // 20,000 keys, more than the 16 Ki the cache keeps in a call, then
    // the first 100 again: read back from the spilled writes, written anew.
    let mut adds: Vec<_> = (0..20_000).map(|g| json!({ "group": format!("g{g}"), "n": 1 })).collect();
    adds.extend((0..100).map(|g| json!({ "group": format!("g{g}"), "n": 1 })));
    t.send_batch(batch(&adds)).unwrap();
    for g in [0, 99] {
        assert_eq!(t.value_state::<u64>("totals", &format!("g{g}")), Some(2), "g{g}");
    }
    for g in [100, 16_383, 16_384, 19_999] {
        assert_eq!(t.value_state::<u64>("totals", &format!("g{g}")), Some(1), "g{g}");
    }
}

#[test]
fn a_kept_value_that_does_not_serialize_fails_the_batch_naming_state_and_key() {
    let mut t = JobTester::<Totals>::builder().sink("seen").open().unwrap();
    let failed = t
        .send_batch(batch(&[json!({ "group": "a", "n": 1 }), json!({ "group": "p", "n": POISON })]))
        .expect_err("the poisoned total fails the batch");
    assert!(failed.contains("state `totals`, key `p`") && failed.contains("poisoned total"), "{failed}");
    assert_eq!(t.value_state::<u64>("totals", "a"), Some(1), "the batch's other writes reach the host");
    assert_eq!(t.value_state::<u64>("totals", "p"), None);
}
