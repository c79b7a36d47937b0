//! The host half of the WIT world. `HostState` is the data of a job's
//! wasmtime `Store`; each submodule implements one WIT interface on it.

mod context;
mod dimension;
mod output;
mod state;
mod stderr;
mod timers;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub use self::output::{Output, RowRef};
use self::stderr::StderrTail;
use super::bindings::sluice::job as imports;
use super::budget::CallBudget;
use super::limits::{JobLimits, LimitHit, MemoryLimiter};
use crate::connectors::DimensionStore;
use crate::job::timers::TimerService;
use crate::metrics::TaskMetrics;
use crate::state::StateBackend;

/// What a job instance may see of its job: names from the spec.
#[derive(Debug, Clone, Default)]
pub struct JobInfo {
    pub name: String,
    pub parameters: Vec<(String, String)>,
    pub sources: Vec<String>,
    pub sinks: Vec<String>,
    pub dimensions: Vec<String>,
    /// The stage the instance runs (`context.stage`), 0 for a job of one.
    pub stage: u32,
}

/// Everything a job instance's imports act on.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    stderr: StderrTail,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) limits: JobLimits,
    /// CPU budget of the call in progress.
    pub(crate) budget: CallBudget,
    /// The limit the current call went past, if any (its trap is reported
    /// as this).
    pub(crate) limit_hit: Option<LimitHit>,
    /// Log lines the current call wrote.
    logs_in_call: usize,
    pub(crate) job: Arc<JobInfo>,
    pub(crate) state: StateBackend,
    pub(crate) timers: TimerService,
    pub(crate) dimensions: Vec<Arc<dyn DimensionStore>>,
    pub(crate) metrics: Arc<TaskMetrics>,
    /// Processing time of the current call, ms; fixed for the call so a
    /// batch sees one consistent "now".
    pub(crate) now_ms: i64,
    pub(crate) watermark: Option<i64>,
    /// Bytes of the batch of the current `process` call (0 in other calls):
    /// forwarded rows must point inside it.
    input_len: usize,
    /// Records of the batch of the current `process` call (0 in other calls).
    input_records: usize,
    /// Output of the calls since the task last routed and cleared it.
    output: Output,
    /// Whether `open` has returned: state is declared there only, so what a
    /// job keeps is known once it is open (function jobs, declared
    /// `ByRecordKey` as stateless, cannot keep state behind that).
    pub(crate) opened: bool,
}

impl HostState {
    pub fn new(
        job: Arc<JobInfo>,
        dimensions: Vec<Arc<dyn DimensionStore>>,
        metrics: Arc<TaskMetrics>,
        limits: JobLimits,
    ) -> Self {
        let stderr = StderrTail::default();
        // No preopened directories, no sockets, no environment: a job reaches
        // the world only through the Sluice imports.
        let wasi = WasiCtx::builder().stderr(stderr.clone()).allow_tcp(false).allow_udp(false).build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            stderr,
            limiter: MemoryLimiter::new(limits.memory_bytes),
            limits,
            budget: CallBudget::default(),
            limit_hit: None,
            logs_in_call: 0,
            job,
            state: StateBackend::default(),
            timers: TimerService::default(),
            dimensions,
            metrics,
            now_ms: 0,
            watermark: None,
            input_len: 0,
            input_records: 0,
            output: Output::default(),
            opened: false,
        }
    }

    /// Sets the processing time of the next calls; state entries it expires
    /// are dropped.
    pub fn set_now(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
        self.state.set_now(now_ms);
    }

    /// The guest's recent stderr (where a Rust panic message lands), taken
    /// so the next report starts afresh.
    pub fn take_stderr(&self) -> String {
        self.stderr.take()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Defines the Sluice imports. `sluice:job/state` and `sluice:job/output` are
/// written by hand (see their modules), the other interfaces come from
/// `bindgen!`. `contract`: the package and version that the imports'
/// names (`PACKAGE/INTERFACE@VERSION`) are made of.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>, contract: (&str, &str)) -> wasmtime::Result<()> {
    imports::types::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)?;
    imports::dimension::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)?;
    imports::timers::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)?;
    imports::context::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)?;
    let (package, version) = contract;
    state::add_to_linker(linker, &format!("{package}/state@{version}"))?;
    output::add_to_linker(linker, &format!("{package}/output@{version}"))
}

impl HostState {
    /// Records that the call went past `limit` and returns the trap that
    /// ends it.
    pub(crate) fn hit(&mut self, limit: LimitHit) -> wasmtime::Error {
        let message = limit.to_string();
        self.limit_hit = Some(limit);
        wasmtime::Error::msg(message)
    }

    /// Fails the call when the state grew past its limit.
    pub(crate) fn check_state_size(&mut self) -> wasmtime::Result<()> {
        if self.state.bytes() <= self.limits.state_bytes {
            return Ok(());
        }
        let keys = self.state.tables().iter().map(|t| t.len()).sum();
        Err(self.hit(LimitHit::State { mb: self.limits.state_bytes >> 20, keys }))
    }
}

/// A handle the host never gave out: a guest bug, raised as a trap.
pub(crate) fn bad_handle(kind: &str, handle: u32) -> wasmtime::Error {
    wasmtime::Error::msg(format!("the job used unknown {kind} handle {handle}"))
}

impl super::bindings::sluice::job::types::Host for HostState {}
