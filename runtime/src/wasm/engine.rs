//! The wasmtime engine shared by all jobs of a process: configuration,
//! the epoch ticker that enforces CPU deadlines, the linker with the Sluice
//! and WASI imports, and loading (with validation) of job components.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, Store};

use super::bindings::{SluiceJobPre, StateKeying};
use super::cache::{ComponentCache, content_hash};
use super::host::{HostState, JobInfo};
use super::limits::JobLimits;
use crate::job::stages::{MAX_STAGE_NAME, MAX_STAGES};
use crate::metrics::TaskMetrics;

/// The ABI revision this runtime speaks (the SDK's `ABI_VERSION`).
pub const ABI_VERSION: u32 = 4;
/// The contract's package and version, as it appears in import/export names.
const CONTRACT: &str = "sluice:job";
const CONTRACT_VERSION: &str = "0.4.0";
/// Memory allowed to the throwaway instance that reads a component's ABI
/// revision at load (the largest a wasm32 memory can be).
const VALIDATION_MEMORY: usize = 4 << 30;
/// The bytes a component's `stages` may make the host copy: the most
/// stages at the longest names, with the list's own entries, and room to
/// spare.
const STAGES_FUEL: usize = 4 * MAX_STAGES * (MAX_STAGE_NAME + 8);
/// Granularity of CPU deadlines.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Why a component was refused. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read component {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("not a WebAssembly file: it does not start with the `\\0asm` magic bytes")]
    NotWasm,
    #[error(
        "this is a core WebAssembly module, not a component: build the job with \
         `cargo build --target wasm32-wasip2` (or `sluice build`), which produces a component"
    )]
    CoreModule,
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error(
        "the component does not export `{CONTRACT}/job@{CONTRACT_VERSION}` (its exports: {found}); \
         mark the job type with #[sluice_sdk::job]"
    )]
    MissingExport { found: String },
    #[error(
        "the component was built against `{found}`, this runtime speaks `{CONTRACT}@{CONTRACT_VERSION}`: \
         rebuild it with a matching sluice-sdk"
    )]
    WrongVersion { found: String },
    #[error(
        "the component imports `{0}`, which Sluice does not provide: a job may import only \
         `{CONTRACT}/*@{CONTRACT_VERSION}` and WASI 0.2 interfaces"
    )]
    UnknownImport(String),
    #[error("the component does not match the Sluice contract: {0}")]
    Mismatch(String),
    #[error("the component's stages (`Job::STAGES`) cannot run: {0}")]
    Stages(String),
    #[error(
        "the component speaks Sluice ABI revision {found}, this runtime needs {ABI_VERSION}: \
         rebuild it with a matching sluice-sdk"
    )]
    AbiVersion { found: u32 },
}

/// A validated, compiled job component, ready to instantiate.
#[derive(Clone)]
pub struct LoadedComponent {
    /// SHA-256 of the component bytes.
    pub hash: String,
    /// The job's declaration of how its state is keyed (`Job::STATE_KEYING`):
    /// whether it may run at parallelism above 1.
    pub state_keying: StateKeying,
    /// The job's repartition stages by name (`Job::STAGES`), checked
    /// (`job::stages::check_declared`); empty for a job of one stage.
    pub stages: Vec<String>,
    pub(crate) pre: SluiceJobPre<HostState>,
}

/// What a component declares of itself, read at load.
struct Declarations {
    abi: u32,
    state_keying: StateKeying,
    stages: Vec<String>,
}

/// One per process.
pub struct JobEngine {
    engine: Engine,
    linker: Linker<HostState>,
    cache: ComponentCache,
    ticker_stop: Arc<AtomicBool>,
}

impl JobEngine {
    /// An engine; `cache_dir` keeps compiled components across restarts.
    pub fn new(cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // `perf record` names JIT-compiled guest functions from /tmp/perf-PID.map.
        if std::env::var_os("SLUICE_PERF_MAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        // Cranelift also inlines the small guest functions that LLVM left as
        // calls: +10-13% on the JSON filter benchmark (docs/BENCHMARKS.md),
        // for ~4x the one-time compile (1.2 s for a 550 KB job), which the
        // content-hash cache keeps across restarts.
        config.compiler_inlining(wasmtime::Inlining::Yes);
        let engine = Engine::new(&config)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        super::host::add_to_linker(&mut linker, (CONTRACT, CONTRACT_VERSION))?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (stop, ticking) = (ticker_stop.clone(), engine.clone());
        std::thread::Builder::new().name("sluice-epoch".into()).spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                ticking.increment_epoch();
            }
        })?;
        Ok(JobEngine { engine, linker, cache: ComponentCache::new(cache_dir), ticker_stop })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub async fn load_file(&self, path: &Path) -> Result<LoadedComponent, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read { path: path.into(), source })?;
        self.load(&bytes).await
    }

    /// Validates and compiles a component: it must be a component, export
    /// the job interface of this contract version, import nothing but the
    /// contract and WASI, and report this ABI revision.
    pub async fn load(&self, bytes: &[u8]) -> Result<LoadedComponent, LoadError> {
        if !bytes.starts_with(b"\0asm") {
            return Err(LoadError::NotWasm);
        }
        // Byte 4..8 is the version/layer field: 1 is a core module.
        if bytes.get(4..8) == Some(&[1, 0, 0, 0]) {
            return Err(LoadError::CoreModule);
        }
        let hash = content_hash(bytes);
        let component =
            self.cache.get_or_compile(&self.engine, &hash, bytes).map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        self.check_names(&component)?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| LoadError::Mismatch(format!("{e:#}")))?;
        let pre = SluiceJobPre::new(pre).map_err(|e| LoadError::Mismatch(format!("{e:#}")))?;
        let Declarations { abi, state_keying, stages } = self.declarations(&pre).await?;
        if abi != ABI_VERSION {
            return Err(LoadError::AbiVersion { found: abi });
        }
        crate::job::stages::check_declared(&stages).map_err(LoadError::Stages)?;
        Ok(LoadedComponent { hash, state_keying, stages, pre })
    }

    fn check_names(&self, component: &wasmtime::component::Component) -> Result<(), LoadError> {
        let ty = component.component_type();
        let job_export = format!("{CONTRACT}/job@{CONTRACT_VERSION}");
        let exports: Vec<String> = ty.exports(&self.engine).map(|(name, _)| name.to_owned()).collect();
        if !exports.contains(&job_export) {
            if let Some(other) = exports.iter().find(|e| e.starts_with(&format!("{CONTRACT}/job@"))) {
                return Err(LoadError::WrongVersion { found: other.clone() });
            }
            let found = if exports.is_empty() { "none".to_owned() } else { exports.join(", ") };
            return Err(LoadError::MissingExport { found });
        }
        for (name, _) in ty.imports(&self.engine) {
            if let Some(rest) = name.strip_prefix(&format!("{CONTRACT}/")) {
                if !rest.ends_with(&format!("@{CONTRACT_VERSION}")) {
                    return Err(LoadError::WrongVersion { found: name.to_owned() });
                }
            } else if !name.starts_with("wasi:") {
                return Err(LoadError::UnknownImport(name.to_owned()));
            }
        }
        Ok(())
    }

    /// The component's ABI revision and, if that is this runtime's, its
    /// state keying and stages, from a throwaway instance (no `open`).
    async fn declarations(&self, pre: &SluiceJobPre<HostState>) -> Result<Declarations, LoadError> {
        // No spec yet at load time: the job's own memory limit applies when it runs.
        let limits = JobLimits { memory_bytes: VALIDATION_MEMORY, ..JobLimits::default() };
        let host = HostState::new(Arc::new(JobInfo::default()), Vec::new(), Arc::new(TaskMetrics::default()), limits);
        let mut store = self.new_store(host);
        store.data_mut().budget.start(Duration::from_secs(5));
        let instance = pre.instantiate_async(&mut store).await.map_err(|e| LoadError::Mismatch(format!("{e:#}")))?;
        let job = instance.sluice_job_job();
        let abi = job
            .call_abi_version(&mut store)
            .await
            .map_err(|e| LoadError::Mismatch(format!("calling abi-version failed: {e:#}")))?;
        if abi != ABI_VERSION {
            return Ok(Declarations { abi, state_keying: StateKeying::Global, stages: Vec::new() });
        }
        let state_keying = job
            .call_state_keying(&mut store)
            .await
            .map_err(|e| LoadError::Mismatch(format!("calling state-keying failed: {e:#}")))?;
        // Lifting the list copies every name into the host: the fuel bounds
        // what a guest can make it copy (a list of many entries pointing
        // at one long string would otherwise cost the host far more memory
        // than the guest's own).
        store.set_hostcall_fuel(STAGES_FUEL);
        let stages = job.call_stages(&mut store).await.map_err(|e| {
            LoadError::Stages(format!(
                "reading them failed ({e:#}); a job declares at most {MAX_STAGES} stages of at most \
                 {MAX_STAGE_NAME} bytes each"
            ))
        })?;
        Ok(Declarations { abi, state_keying, stages })
    }

    /// A store with the memory limiter and CPU budget every job store
    /// needs: at each epoch tick the guest yields, or stops when its call's
    /// budget (`HostState::budget`, started with every call) is spent.
    pub(crate) fn new_store(&self, host: HostState) -> Store<HostState> {
        let mut store = Store::new(&self.engine, host);
        store.limiter(|host| &mut host.limiter);
        store.epoch_deadline_callback(|store| Ok(store.data().budget.on_tick()));
        store.set_epoch_deadline(1);
        store
    }
}

impl Drop for JobEngine {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}
