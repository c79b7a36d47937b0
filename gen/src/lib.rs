//! Event generators for the scenarios of the domain documents. Each is
//! seeded and reproducible: the same options give the same events, in the
//! same order, whatever the rate they are sent at. Generators include the
//! dirt real feeds carry — late, duplicated and malformed records — in the
//! proportions the options ask for.
//!
//! `sluice gen SCENARIO` sends them to Kafka or files; the end-to-end tests
//! use the same generators and compare each job's sink tables with a batch
//! SQL computation over the generated events.

pub mod insurance;
pub mod jinpan;
pub mod large_tx;
pub mod lending;
mod support;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// How much to generate, and how dirty.
#[derive(Debug, Clone)]
pub struct GenOptions {
    pub seed: u64,
    /// Events to generate (across all the scenario's streams).
    pub count: u64,
    /// Event time of the first event, in ms since the epoch.
    pub start_ms: i64,
    /// Mean gap of event time between consecutive events, in ms.
    pub step_ms: i64,
    /// Share of events whose event time lies well behind the others.
    pub late: f64,
    /// Share of events sent twice.
    pub duplicated: f64,
    /// Share of events replaced by a value that is not valid JSON.
    pub malformed: f64,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            seed: 1,
            count: 10_000,
            // 2024-03-15 00:00 UTC+8
            start_ms: 1_710_432_000_000,
            step_ms: 1000,
            late: 0.01,
            duplicated: 0.01,
            malformed: 0.001,
        }
    }
}

/// One generated event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The logical stream (a topic name, before any prefix).
    pub stream: &'static str,
    pub key: String,
    /// JSON, except for malformed events.
    pub value: Vec<u8>,
    pub event_time_ms: i64,
}

/// A scenario's generator.
pub trait Scenario: Sync {
    /// The name `sluice gen` knows it by.
    fn name(&self) -> &'static str;
    /// One line for `sluice gen --list`.
    fn description(&self) -> &'static str;
    /// The streams it writes, in order.
    fn streams(&self) -> &'static [&'static str];
    /// The events, in sending order.
    fn generate(&self, options: &GenOptions) -> Vec<Event>;
}

/// Every scenario, in one explicit list.
pub fn scenarios() -> Vec<&'static dyn Scenario> {
    vec![
        &insurance::InsuranceOrders,
        &insurance::PremiumUpdates,
        &insurance::PageViews,
        &jinpan::Jinpan,
        &large_tx::LargeTx,
        &lending::Lending,
    ]
}

/// The scenario called `name`.
pub fn scenario(name: &str) -> Option<&'static dyn Scenario> {
    scenarios().into_iter().find(|s| s.name() == name)
}

/// The seeded random source of a generator, with the dirt helpers every
/// scenario shares.
#[derive(Debug)]
pub struct Dice {
    rng: SmallRng,
}

impl Dice {
    pub fn new(seed: u64) -> Self {
        Dice { rng: SmallRng::seed_from_u64(seed) }
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.rng.random_range(0..n.max(1))
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p.min(1.0))
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Pushes `event`, adding the dirt `options` ask for: a duplicate right
    /// after it, or a malformed value in its place. Late events are the
    /// scenario's business (it knows which time field is event time).
    pub fn push(&mut self, out: &mut Vec<Event>, event: Event, options: &GenOptions) {
        if self.chance(options.malformed) {
            let mut bad = event;
            bad.value = b"{\"broken\": ".to_vec();
            out.push(bad);
            return;
        }
        let twice = self.chance(options.duplicated);
        if twice {
            out.push(event.clone());
        }
        out.push(event);
    }
}
