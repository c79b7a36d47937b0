//! A guest that speaks the current contract but also imports an interface
//! Sluice does not provide, `acme:net/fetch`: the runtime must refuse it
//! with `LoadError::UnknownImport` naming that interface.

// The generated ABI glue is unsafe by nature; the crate's own code is not.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../sdk/wit",
        inline: r"
            package sluice:foreign-guest;

            package acme:net {
                interface fetch {
                    get: func(url: string) -> string;
                }
            }

            world foreign {
                include sluice:job/sluice-job@0.4.0;
                import acme:net/fetch;
            }
        ",
        world: "sluice:foreign-guest/foreign",
        generate_all,
    });
}

use bindings::exports::sluice::job::job::{Batch, Guest, JobError, Keying, Timer};

pub struct ForeignImport;

impl Guest for ForeignImport {
    /// The revision of the contract above (`sluice_sdk::ABI_VERSION`).
    fn abi_version() -> u32 {
        4
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

    /// Calls the foreign import for every record, so it is reachable and
    /// stays in the component.
    fn process(batch: Batch) -> Result<(), JobError> {
        for meta in batch.meta.chunks_exact(6) {
            let start = meta[2] as usize;
            let value = batch.data.get(start..start + meta[3] as usize).unwrap_or_default();
            let body = bindings::acme::net::fetch::get(&String::from_utf8_lossy(value));
            if body.is_empty() {
                return Err(JobError { message: "empty response".into() });
            }
        }
        Ok(())
    }

    fn on_timer(_timers: Vec<Timer>) -> Result<(), JobError> {
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
const _: () = {
    bindings::export!(ForeignImport with_types_in bindings);
};
