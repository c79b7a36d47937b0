//! A guest that implements the current contract (`sluice:job@0.4.0`) by
//! hand, without the SDK, but reports ABI revision 99: the runtime must
//! refuse it with `LoadError::AbiVersion`.

// The generated ABI glue is unsafe by nature; the crate's own code is not.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        world: "sluice-job",
        path: "../../../sdk/wit",
    });
}

use bindings::exports::sluice::job::job::{Batch, Guest, JobError, Keying, Timer};

/// The ABI revision this guest claims; the runtime speaks another.
pub const CLAIMED_ABI_VERSION: u32 = 99;

pub struct AbiMismatch;

impl Guest for AbiMismatch {
    fn abi_version() -> u32 {
        CLAIMED_ABI_VERSION
    }

    fn state_keying() -> Keying {
        Keying::Global
    }

    fn stages() -> Vec<String> {
        Vec::new()
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
    bindings::export!(AbiMismatch with_types_in bindings);
};
