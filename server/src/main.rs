//! The `tokenscope` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use server::cli::{Cli, Command, DemoArgs, ServeArgs, SimArgs};
use server::dashboard::runs::Retention;
use server::dashboard::{self, AppState, DashboardConfig, Limits};
use server::store::StoreError;
use server::{sim, sweep};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Every response allocates a few small buffers on both sides of the wire; mimalloc makes
/// that churn several times cheaper than glibc's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    server::small_pages();
    let result = match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Sweep(args) => sweep::command(args).await,
        Command::Sim(args) => run_sim(args).await,
        Command::Demo(args) => demo(args).await,
        Command::Import(args) => sweep::import_command(args),
    };
    result.unwrap_or_else(|err| {
        eprintln!("error: {err:#}");
        ExitCode::FAILURE
    })
}

/// Cancelled on Ctrl-C (SIGINT) or SIGTERM.
fn interrupt_token() -> CancellationToken {
    server::signals::stop_token(|name| tracing::info!("{name}: stopping"))
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Access rules that cannot work are refused before anything listens.
    let placeholder = args.target.clone().unwrap_or_else(|| "http://127.0.0.1:8001".into());
    args.access.access(&args.listen, &[placeholder]).map_err(anyhow::Error::msg)?;
    let tokenizer_dirs = args.tokenizer_dirs().map_err(anyhow::Error::msg)?;
    args.tls.apply()?;
    let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}: {e}; pick another address with --listen (port 0 picks a free one)",
            args.listen
        )
    })?;
    let shutdown = interrupt_token();
    let data_dir = args.data_dir();
    let (default_target, simulator, simulator_protocols, simulator_metrics) = match args.target {
        Some(target) => (target, None, Vec::new(), None),
        None => {
            let (addr, [metrics, http, openai], sim_shutdown) = sim::spawn_everything(args.sim).await?;
            let stop_sim = shutdown.clone();
            tokio::spawn(async move {
                stop_sim.cancelled().await;
                sim_shutdown.cancel();
            });
            let target = format!("http://{addr}");
            let others = vec![format!("triton-http://{http}"), format!("openai://{openai}")];
            tracing::info!(target = %target, http = %others[0], openai = %others[1], "no --target given: a simulated Triton runs in this process; its numbers measure the simulator, not a model");
            (target.clone(), Some(target), others, Some(format!("http://{metrics}/metrics")))
        }
    };
    let measurable: Vec<String> = std::iter::once(default_target.clone()).chain(simulator_protocols.clone()).collect();
    let start = args.access.access(&args.listen, &measurable).map_err(anyhow::Error::msg)?;
    let access = start.access;
    let retention = Retention { keep_runs: args.keep_runs, keep_days: args.keep_days };
    let limits = Limits { retention, ..Limits::default() };
    let config = DashboardConfig {
        default_target,
        simulator,
        simulator_protocols,
        simulator_metrics,
        data_dir,
        access,
        tokenizer_dirs,
    };
    let state = AppState::open_with(config, limits, shutdown.clone()).await.map_err(store_error)?;
    let url = format!("http://{}/", listener.local_addr()?);
    if let Some(token) = &start.generated {
        println!(
            "operator token (shown once; sign in at {url}signin or send Authorization: Bearer): {}",
            token.reveal()
        );
    }
    if args.access.insecure_open && !args.listen.ip().is_loopback() {
        tracing::warn!(
            "--insecure-open: anyone who can reach {} may start, cancel, change, delete and import runs",
            args.listen
        );
    }
    if !dashboard::has_frontend() {
        tracing::warn!("this binary has no dashboard page (dist/ was missing at build time); run scripts/dashboard.sh");
    }
    tracing::info!(url = %url, "dashboard listening; press Ctrl-C to stop");
    println!("tokenscope dashboard: {url}");
    println!("runs are stored in {}", state.runs().store().path().display());
    dashboard::serve(listener, state.clone(), shutdown).await?;
    // Let a cancelled run write its end, so it is not taken for an interrupted one next time.
    if tokio::time::timeout(CLOSE_WAIT, state.close()).await.is_err() {
        tracing::warn!("the run in progress did not stop in time; it will show as interrupted");
    }
    Ok(ExitCode::SUCCESS)
}

/// How long a stopping dashboard waits for its run to end.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A store that cannot be opened, with what to do about it.
fn store_error(err: StoreError) -> anyhow::Error {
    let hint = if err.is_locked() {
        "another tokenscope dashboard is using it: stop that one, or pass another folder with --data-dir"
    } else if matches!(err, StoreError::TooNew { .. }) {
        "run the newer tokenscope, or pass another folder with --data-dir"
    } else {
        "check that the folder exists, is writable and has space, or pass another folder with --data-dir \
         (or TOKENSCOPE_DATA_DIR)"
    };
    anyhow::anyhow!("{err}; {hint}")
}

async fn run_sim(args: SimArgs) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}; is another server using that port?", args.listen))?;
    let others = sim::Listeners {
        metrics: bind_side(args.metrics_listen, "metrics", "--metrics-listen").await?,
        http: bind_side(args.http_listen, "Triton's HTTP protocol", "--http-listen").await?,
        openai: bind_side(args.openai_listen, "OpenAI-compatible completions", "--openai-listen").await?,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(server::tls::identity_files(cert, key)?),
        _ => None,
    };
    let shutdown = interrupt_token();
    let names: Vec<&str> = sim::MODELS.iter().map(|m| m.name).collect();
    let protocol = if tls.is_some() { "gRPC over TLS" } else { "gRPC" };
    let address = listener.local_addr()?;
    match &others.metrics {
        Some(metrics) => {
            let url = format!("http://{}/metrics", metrics.local_addr()?);
            tracing::info!(%address, metrics = %url, models = names.join(", "), "simulated Triton listening ({protocol})");
        }
        None => tracing::info!(%address, models = names.join(", "), "simulated Triton listening ({protocol})"),
    }
    if let Some(http) = &others.http {
        let url = format!("http://{}/v2", http.local_addr()?);
        tracing::info!(address = %url, "simulated Triton listening (HTTP/REST with generate_stream)");
    }
    if let Some(openai) = &others.openai {
        let url = format!("http://{}/v1", openai.local_addr()?);
        tracing::info!(address = %url, "simulated OpenAI-compatible server listening (completions, chat completions)");
    }
    sim::serve_listeners(listener, others, args.config, tls, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Binds the simulator's listener for `what` where `addr` (from `flag`) asks for one.
async fn bind_side(
    addr: Option<std::net::SocketAddr>,
    what: &str,
    flag: &str,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let Some(addr) = addr else { return Ok(None) };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {addr} for {what}: {e}; is another server using that port? ({flag} with port 0 picks a free one)"
        )
    })?;
    Ok(Some(listener))
}

/// Starts a simulator in-process and runs the guide's two benchmarks against it.
async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let (addr, _shutdown) = sim::spawn(args.config).await?;
    let target = format!("http://{addr}");
    eprintln!("simulated Triton on {target}: the numbers below measure the simulator, not a real model");
    let base = shared::SweepSpec { target, model: "sim-vllm".into(), ..shared::SweepSpec::default() };
    eprintln!("\nPrefill benchmark (max_tokens 1): time to first token against prompt length");
    let prefill = shared::SweepSpec {
        prompt_lengths: vec![16, 64, 256, 1024, 2048],
        requests: 5,
        ..base.clone().prefill_preset()
    };
    let code = sweep::run_and_report(prefill, None, &sweep::RunFiles::default()).await?;
    if code != ExitCode::SUCCESS {
        return Ok(code);
    }
    eprintln!("\nGeneration benchmark (max_tokens 256, ignore_eos): token-to-token latency against prompt length");
    let generation = shared::SweepSpec { prompt_lengths: vec![16, 512, 2048], requests: 3, ..base.generation_preset() };
    sweep::run_and_report(generation, None, &sweep::RunFiles::default()).await
}
