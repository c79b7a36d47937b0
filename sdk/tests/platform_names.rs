//! The native test host refuses what the runtime refuses: state names
//! starting with `sluice.` belong to the platform.

use sluice_sdk::prelude::*;
use sluice_sdk::testing::JobTester;

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
