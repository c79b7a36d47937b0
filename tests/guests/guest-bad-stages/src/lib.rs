//! A guest that implements the current contract by hand and declares one
//! stage whose name is 1 MiB long: the runtime must refuse it with
//! `LoadError::Stages`, having copied no more than its bound of it.

// The generated ABI glue is unsafe by nature; the crate's own code is not.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        world: "sluice-job",
        path: "../../../sdk/wit",
    });
}

use bindings::exports::sluice::job::job::{Batch, Guest, JobError, Keying, Timer};

/// The length of the stage name it declares.
pub const NAME_BYTES: usize = 1 << 20;

pub struct BadStages;

impl Guest for BadStages {
    /// The revision of the contract above (`sluice_sdk::ABI_VERSION`).
    fn abi_version() -> u32 {
        4
    }

    fn state_keying() -> Keying {
        Keying::ByRecordKey
    }

    fn stages() -> Vec<String> {
        vec!["s".repeat(NAME_BYTES)]
    }

    fn open() -> Result<(), JobError> {
        Ok(())
    }

    fn process(_batch: Batch) -> Result<(), JobError> {
        Ok(())
    }

    fn on_timer(_timers: Vec<Timer>) -> Result<(), JobError> {
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
const _: () = {
    bindings::export!(BadStages with_types_in bindings);
};
