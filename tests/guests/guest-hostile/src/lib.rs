//! A hostile guest for the runtime's failure tests: an SDK job whose
//! behaviour depends on each record's value.
//!
//! - `ok`: emits `{"ok":true}` to the sink `out`;
//! - `panic`: panics with "hostile guest asked to panic";
//! - `loop`: spins forever (only the CPU deadline stops it);
//! - `alloc`: allocates and touches 1 MiB blocks forever (only the memory
//!   limit stops it).
//!
//! Any other value is rejected (dead letter).

use std::hint::black_box;

use sluice_sdk::prelude::*;

pub const SINK: &str = "out";

pub struct Hostile;

#[sluice_sdk::job]
impl Job for Hostile {
    fn open(_ctx: &mut Context) -> Result<Self> {
        Ok(Hostile)
    }

    fn process(&mut self, ctx: &mut Context, record: &Record) -> Result<()> {
        match record.value().trim_ascii() {
            b"ok" => ctx.emit(SINK, &serde_json::json!({ "ok": true })),
            b"panic" => panic!("hostile guest asked to panic"),
            b"loop" => spin(),
            b"alloc" => hog(),
            other => Err(Error::Record(format!("unknown command {:?}", String::from_utf8_lossy(other)))),
        }
    }
}

/// Never returns; `black_box` keeps the optimiser from proving the loop
/// side-effect free and deleting it.
fn spin() -> ! {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Never returns: keeps every block alive and writes to each page of it,
/// so the memory is really committed.
fn hog() -> ! {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        for page in block.chunks_mut(4096) {
            page[0] = 1;
        }
        blocks.push(black_box(block));
        black_box(&blocks);
    }
}
