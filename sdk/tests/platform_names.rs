//! The native test host refuses what the runtime refuses: state names
//! starting with `sluice.` belong to the platform, and a stage before the
//! last writes none of the job's sinks.

use sluice_sdk::prelude::*;
use sluice_sdk::testing::{JobTester, TestRecord};

struct Sneaky;

impl Job for Sneaky {
    fn open(ctx: &mut Context) -> Result<Self> {
        let _marks: ValueState<u64> = ctx.value_state("sluice.applied_origins")?;
        Ok(Sneaky)
    }

    fn process(&mut self, _: &mut Context, _: &Record) -> Result<()> {
        Ok(())
    }
}

#[test]
fn a_job_cannot_declare_a_platform_state() {
    let Err(error) = JobTester::<Sneaky>::builder().open() else { panic!("open must fail") };
    assert!(error.contains("names starting with `sluice.` are the platform's"), "{error}");
}

/// Two stages; the first also writes `out` directly, which only the last
/// stage may.
struct Leaky;

impl Job for Leaky {
    const STATE_KEYING: StateKeying = StateKeying::ByRecordKey;
    const STAGES: &'static [&'static str] = &["first", "last"];

    fn open(_: &mut Context) -> Result<Self> {
        Ok(Leaky)
    }

    fn process(&mut self, ctx: &mut Context, record: &Record) -> Result<()> {
        let row = serde_json::json!({ "n": 1 });
        if ctx.stage() == 1 || record.value() == b"leak" {
            return ctx.emit("out", &row);
        }
        ctx.to_next_stage("k", &row)
    }
}

#[test]
fn a_stage_before_the_last_writes_only_to_the_next_stage() {
    let record = |value: &[u8]| TestRecord { key: Some(b"k".to_vec()), value: value.to_vec(), ..Default::default() };
    let mut first = JobTester::<Leaky>::builder().sink("out").open().unwrap();
    first.send_batch(vec![record(b"pass")]).unwrap();
    assert_eq!(first.emitted(NEXT_STAGE).len(), 1, "what it sends on is seen without declaring the sink");
    let error = first.send_batch(vec![record(b"leak")]).expect_err("a job sink written by the first stage");
    assert!(error.contains("`out` is not a sink of stage 0") && error.contains("ctx.to_next_stage"), "{error}");
    let mut last = JobTester::<Leaky>::builder().stage(1).sink("out").open().unwrap();
    last.send_batch(vec![record(b"pass")]).unwrap();
    assert_eq!(last.emitted("out").len(), 1);
}
