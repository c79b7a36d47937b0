//! A guest built against an older contract, `sluice:job@0.0.9`: it exports
//! `sluice:job/job@0.0.9` instead of `@0.4.0`, so the runtime must refuse it
//! with `LoadError::WrongVersion`.

// The generated ABI glue is unsafe by nature; the crate's own code is not.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        inline: r"
            package sluice:job@0.0.9;

            interface job {
                abi-version: func() -> u32;
            }

            world sluice-job {
                export job;
            }
        ",
        world: "sluice-job",
    });
}

use bindings::exports::sluice::job::job::Guest;

pub struct OldContract;

impl Guest for OldContract {
    fn abi_version() -> u32 {
        1
    }
}

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
const _: () = {
    bindings::export!(OldContract with_types_in bindings);
};
