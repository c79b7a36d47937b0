//! A component that exports nothing of Sluice's contract, only an unrelated
//! interface `acme:other/thing`: the runtime must refuse it with
//! `LoadError::MissingExport`, listing what it does export.

// The generated ABI glue is unsafe by nature; the crate's own code is not.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        inline: r"
            package acme:other;

            interface thing {
                answer: func() -> u32;
            }

            world no-job {
                export thing;
            }
        ",
        world: "no-job",
    });
}

use bindings::exports::acme::other::thing::Guest;

pub struct NoExport;

impl Guest for NoExport {
    fn answer() -> u32 {
        42
    }
}

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
const _: () = {
    bindings::export!(NoExport with_types_in bindings);
};
