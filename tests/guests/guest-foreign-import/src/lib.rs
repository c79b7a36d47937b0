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
                include sluice:job/sluice-job@0.1.0;
                import acme:net/fetch;
            }
        ",
        world: "sluice:foreign-guest/foreign",
        generate_all,
    });
}

use bindings::exports::sluice::job::job::{Batch, Guest, JobError, Timer};

pub struct ForeignImport;

impl Guest for ForeignImport {
    fn abi_version() -> u32 {
        1
    }

    fn open() -> Result<(), JobError> {
        Ok(())
    }

    /// Calls the foreign import for every record, so it is reachable and
    /// stays in the component.
    fn process(batch: Batch) -> Result<(), JobError> {
        for meta in &batch.records {
            let start = meta.value.start as usize;
            let value = batch.data.get(start..start + meta.value.len as usize).unwrap_or_default();
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
