//! A simulated Triton: the same gRPC protocol, with LLMs of every convention whose latency
//! follows a schedule set on the command line; on listeners of their own, Triton's HTTP
//! protocol with the generate extension ([`http`]) and OpenAI-compatible completions
//! ([`openai`]), whose requests go through the same scheduler.

mod chunks;
mod events;
mod http;
mod metrics;
pub mod model;
mod openai;
mod scheduler;
mod tensors;
mod wire;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc as std_mpsc};
use std::time::Instant;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::codegen::http as hyper_http;
use tonic::codegen::{BoxFuture, Context, Poll, Service, StdError};
use tonic::server::NamedService;
use tonic::transport::Identity;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

use model::Ask;
pub use model::{MODELS, SimConfig, SimModel};
use scheduler::{HttpItem, Job, Sink, Stats};

use crate::clock::unix_now_ns;
use crate::pb;
use crate::pb::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use crate::tokenizer::{SharedTokenizer, Tokenizer};
use wire::Encoded;

/// The simulated server's state; cheap to clone.
#[derive(Clone)]
pub struct Sim {
    jobs: std_mpsc::Sender<Job>,
    /// The scheduler's counts, which ModelStatistics and the metrics report.
    stats: Arc<Stats>,
    /// When the scheduler started: the first scrape's utilisation is since then.
    started: Instant,
    /// Models reported as failed to load.
    unavailable: Arc<Vec<String>>,
    /// What counts prompt tokens, if not words.
    tokenizer: Option<SharedTokenizer>,
    /// Whether ModelStatistics is refused (`--no-statistics`).
    no_statistics: bool,
}

impl Sim {
    /// Starts the scheduler thread; it ends when the last clone of the returned `Sim` is dropped
    /// and every started request has finished.
    pub fn new(config: SimConfig) -> Self {
        let (jobs, receiver) = std_mpsc::channel();
        let stats = Arc::new(Stats::default());
        let thread_stats = stats.clone();
        let unavailable = Arc::new(config.unavailable.clone());
        let tokenizer = config.tokenizer.clone();
        let no_statistics = config.no_statistics;
        std::thread::Builder::new()
            .name("sim-scheduler".into())
            .spawn(move || scheduler::run(config, receiver, thread_stats))
            .expect("the scheduler thread starts");
        Self { jobs, stats, started: Instant::now(), unavailable, tokenizer, no_statistics }
    }

    fn is_available(&self, name: &str) -> bool {
        !self.unavailable.iter().any(|n| n == name)
    }

    /// A model that can answer, or Triton's error for one that is unknown or failed to load.
    fn model(&self, name: &str) -> Result<&'static SimModel, Status> {
        self.find(name).map_err(|message| {
            if model::find(name).is_some() { Status::unavailable(message) } else { Status::not_found(message) }
        })
    }

    fn counter(&self) -> Option<&Tokenizer> {
        self.tokenizer.as_ref().map(|t| &*t.0)
    }

    fn find(&self, name: &str) -> Result<&'static SimModel, String> {
        match model::find(name) {
            Some(model) if self.is_available(name) => Ok(model),
            Some(_) => Err(format!("Request for unknown model: '{name}' has no available versions")),
            None => Err(format!("Request for unknown model: '{name}' is not found")),
        }
    }

    /// Hands a request received over HTTP to the scheduler, as ModelStreamInfer hands its
    /// own: its responses come on the returned channel, which ends with the request. Refused
    /// with Triton's message when it does not fit the model.
    fn submit(
        &self,
        model: &'static SimModel,
        request: &pb::ModelInferRequest,
        arrived: Instant,
    ) -> Result<(Ask, mpsc::UnboundedReceiver<HttpItem>), String> {
        let ask = model.ask(request, self.counter())?;
        let (tx, rx) = mpsc::unbounded_channel();
        let job = Job { model, ask: ask.clone(), arrived, sink: Sink::Http(tx) };
        self.jobs.send(job).map_err(|_| "the simulator is shutting down; start it again".to_string())?;
        Ok((ask, rx))
    }
}

/// Why a model given with `--unavailable` is not ready.
const UNAVAILABLE_REASON: &str = "simulated load failure (tokenscope sim --unavailable)";

/// Where the simulator serves besides gRPC, each over plain HTTP/1.1 with its own listener.
#[derive(Debug, Default)]
pub struct Listeners {
    /// Triton's Prometheus metrics at `/metrics`, as Triton serves them on port 8002.
    pub metrics: Option<TcpListener>,
    /// Triton's HTTP/REST protocol with the generate extension, as on Triton's port 8000.
    pub http: Option<TcpListener>,
    /// OpenAI-compatible completions and chat completions, as vLLM's server answers them.
    pub openai: Option<TcpListener>,
}

/// Serves the simulator on `listener` until `shutdown` is cancelled; over TLS with `tls`.
pub async fn serve(
    listener: TcpListener,
    config: SimConfig,
    tls: Option<Identity>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    serve_all(listener, None, config, tls, shutdown).await
}

/// [`serve`], and with `metrics` Triton's Prometheus metrics at `/metrics` on that listener,
/// over plain HTTP as Triton serves them, from the same scheduler. Both stop when `shutdown`
/// is cancelled, and the metrics also when the gRPC service ends.
pub async fn serve_all(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    config: SimConfig,
    tls: Option<Identity>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    serve_listeners(listener, Listeners { metrics, ..Listeners::default() }, config, tls, shutdown).await
}

/// [`serve`], and beside it on each of `others` what [`Listeners`] says, from the same
/// scheduler. All stop when `shutdown` is cancelled, and the others also when the gRPC
/// service ends. TLS is for gRPC only.
pub async fn serve_listeners(
    listener: TcpListener,
    others: Listeners,
    config: SimConfig,
    tls: Option<Identity>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    // Small responses must leave at once: no Nagle delay on accepted connections.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut builder = tonic::transport::Server::builder();
    if let Some(identity) = tls {
        builder = builder.tls_config(crate::tls::server_config(identity))?;
    }
    let sim = Sim::new(config);
    let others_stop = shutdown.child_token();
    let routers = [
        (others.metrics, metrics::router as fn(&Sim) -> axum::Router, "metrics"),
        (others.http, http::router, "HTTP protocol"),
        (others.openai, openai::router, "OpenAI-compatible server"),
    ];
    let others: Vec<_> = routers
        .into_iter()
        .filter_map(|(listener, router, what)| Some(serve_http(listener?, router(&sim), others_stop.clone(), what)))
        .collect();
    let served = builder
        .max_concurrent_streams(Some(4096))
        .initial_stream_window_size(Some(crate::triton::STREAM_WINDOW))
        .initial_connection_window_size(Some(crate::triton::CONNECTION_WINDOW))
        .add_service(SimService::new(sim))
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await;
    others_stop.cancel();
    for other in others {
        let _ = other.await;
    }
    served
}

/// Serves `app` on `listener` until `stop` is cancelled; `what` names it in an error.
fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    stop: CancellationToken,
    what: &'static str,
) -> tokio::task::JoinHandle<()> {
    // Each event must leave as it is written: no Nagle delay on accepted connections.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(cause = %err, "TCP_NODELAY could not be set on an accepted connection");
        }
    });
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await {
            tracing::error!(cause = %err, "the simulated Triton's {what} stopped");
        }
    })
}

/// Starts the simulator on a loopback port chosen by the system; for tests, demos and the
/// dashboard's built-in target. Cancel the token to stop it.
pub async fn spawn(config: SimConfig) -> std::io::Result<(SocketAddr, CancellationToken)> {
    spawn_with(config, None).await
}

/// [`spawn`], serving TLS with `tls`.
pub async fn spawn_with(config: SimConfig, tls: Option<Identity>) -> std::io::Result<(SocketAddr, CancellationToken)> {
    let (addr, _, shutdown) = spawn_all(config, tls, [false; 3]).await?;
    Ok((addr, shutdown))
}

/// [`spawn`], also serving Triton's Prometheus metrics at `http://METRICS/metrics`; returns
/// the gRPC address, then the metrics one. The token stops both.
pub async fn spawn_with_metrics(config: SimConfig) -> std::io::Result<(SocketAddr, SocketAddr, CancellationToken)> {
    let (addr, [metrics, _, _], shutdown) = spawn_all(config, None, [true, false, false]).await?;
    Ok((addr, metrics.expect("a metrics listener was asked for"), shutdown))
}

/// [`spawn`], also serving Triton's HTTP protocol with the generate extension
/// (`http://HTTP/v2/...`) and OpenAI-compatible completions (`http://OPENAI/v1/...`) on
/// loopback ports of their own; returns the gRPC, HTTP and OpenAI addresses. The token
/// stops all three.
pub async fn spawn_protocols(
    config: SimConfig,
) -> std::io::Result<(SocketAddr, SocketAddr, SocketAddr, CancellationToken)> {
    let (addr, [_, http, openai], shutdown) = spawn_all(config, None, [false, true, true]).await?;
    Ok((
        addr,
        http.expect("an HTTP listener was asked for"),
        openai.expect("an OpenAI listener was asked for"),
        shutdown,
    ))
}

/// [`spawn`] with every listener: Triton's Prometheus metrics, Triton's HTTP protocol and
/// OpenAI-compatible completions, as the dashboard's built-in simulator serves them; returns
/// the gRPC address, then the metrics, HTTP and OpenAI ones. The token stops them all.
pub async fn spawn_everything(config: SimConfig) -> std::io::Result<(SocketAddr, [SocketAddr; 3], CancellationToken)> {
    let (addr, [metrics, http, openai], shutdown) = spawn_all(config, None, [true; 3]).await?;
    let every = [metrics, http, openai].map(|a| a.expect("every listener was asked for"));
    Ok((addr, every, shutdown))
}

/// Starts the simulator on loopback ports, with the metrics, HTTP and OpenAI listeners
/// `wanted` says; returns the gRPC address and those of the others.
async fn spawn_all(
    config: SimConfig,
    tls: Option<Identity>,
    wanted: [bool; 3],
) -> std::io::Result<(SocketAddr, [Option<SocketAddr>; 3], CancellationToken)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut bound = Vec::with_capacity(3);
    for wanted in wanted {
        bound.push(if wanted { Some(TcpListener::bind("127.0.0.1:0").await?) } else { None });
    }
    let mut addrs = [None; 3];
    for (addr, listener) in addrs.iter_mut().zip(&bound) {
        *addr = listener.as_ref().map(TcpListener::local_addr).transpose()?;
    }
    let [metrics, http, openai]: [Option<TcpListener>; 3] = bound.try_into().expect("three listeners");
    let others = Listeners { metrics, http, openai };
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        if let Err(err) = serve_listeners(listener, others, config, tls, token).await {
            tracing::error!(cause = %err, "the simulated Triton stopped");
        }
    });
    Ok((addr, addrs, shutdown))
}

/// Requests of up to this size are taken.
const MAX_REQUEST_BYTES: usize = 64 << 20;

const STREAM_PATH: &str = "/inference.GRPCInferenceService/ModelStreamInfer";

/// The gRPC service: ModelStreamInfer sends responses encoded ahead of time ([`wire`]), every
/// other method is the generated server's.
#[derive(Clone)]
struct SimService {
    sim: Sim,
    generated: GrpcInferenceServiceServer<Sim>,
}

impl SimService {
    fn new(sim: Sim) -> Self {
        let generated = GrpcInferenceServiceServer::new(sim.clone()).max_decoding_message_size(MAX_REQUEST_BYTES);
        Self { sim, generated }
    }
}

impl NamedService for SimService {
    const NAME: &'static str = pb::grpc_inference_service_server::SERVICE_NAME;
}

impl<B> Service<hyper_http::Request<B>> for SimService
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = hyper_http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: hyper_http::Request<B>) -> Self::Future {
        if request.uri().path() != STREAM_PATH {
            return self.generated.call(request);
        }
        let streams = StreamInfer(self.sim.clone());
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(wire::StreamCodec)
                .apply_max_message_size_config(Some(MAX_REQUEST_BYTES), None);
            Ok(grpc.streaming(streams, request).await)
        })
    }
}

/// ModelStreamInfer.
struct StreamInfer(Sim);

impl tonic::server::StreamingService<pb::ModelInferRequest> for StreamInfer {
    type Response = Encoded;
    type ResponseStream = UnboundedReceiverStream<Result<Encoded, Status>>;
    type Future = std::future::Ready<Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<Streaming<pb::ModelInferRequest>>) -> Self::Future {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::unbounded_channel();
        let sim = self.0.clone();
        tokio::spawn(async move {
            // Errors about one request go on the stream, which stays open, as Triton does.
            while let Ok(Some(request)) = inbound.message().await {
                let arrived = Instant::now();
                let admitted = sim
                    .find(&request.model_name)
                    .and_then(|model| model.ask(&request, sim.counter()).map(|ask| (model, ask)));
                match admitted {
                    Ok((model, ask)) => {
                        if sim.jobs.send(Job { model, ask, arrived, sink: Sink::Stream(tx.clone()) }).is_err() {
                            break;
                        }
                    }
                    Err(message) => {
                        let response = pb::ModelStreamInferResponse {
                            error_message: message,
                            infer_response: Some(pb::ModelInferResponse { id: request.id, ..Default::default() }),
                        };
                        if tx.send(Ok(Encoded::plain(&response))).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        // Each response is stamped with its send time as it is encoded (wire::StampingEncoder).
        std::future::ready(Ok(Response::new(UnboundedReceiverStream::new(rx))))
    }
}

type Unused = tokio_stream::Empty<Result<pb::ModelStreamInferResponse, Status>>;

#[tonic::async_trait]
impl GrpcInferenceService for Sim {
    async fn server_live(&self, _: Request<pb::ServerLiveRequest>) -> Result<Response<pb::ServerLiveResponse>, Status> {
        Ok(Response::new(pb::ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<pb::ServerReadyRequest>,
    ) -> Result<Response<pb::ServerReadyResponse>, Status> {
        Ok(Response::new(pb::ServerReadyResponse { ready: true }))
    }

    async fn model_ready(
        &self,
        request: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        let name = &request.get_ref().name;
        Ok(Response::new(pb::ModelReadyResponse { ready: self.find(name).is_ok() }))
    }

    async fn server_metadata(
        &self,
        _: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        Ok(Response::new(pb::ServerMetadataResponse {
            name: "tokenscope-sim".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: ["model_configuration", "model_repository", "statistics", "binary_tensor_data"]
                .map(String::from)
                .to_vec(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        Ok(Response::new(self.model(&request.get_ref().name)?.metadata()))
    }

    async fn model_config(
        &self,
        request: Request<pb::ModelConfigRequest>,
    ) -> Result<Response<pb::ModelConfigResponse>, Status> {
        let config = self.model(&request.get_ref().name)?.config();
        Ok(Response::new(pb::ModelConfigResponse { config: Some(config) }))
    }

    async fn model_statistics(
        &self,
        request: Request<pb::ModelStatisticsRequest>,
    ) -> Result<Response<pb::ModelStatisticsResponse>, Status> {
        if self.no_statistics {
            return Err(Status::unimplemented("ModelStatistics is not served here (--no-statistics)"));
        }
        let name = &request.get_ref().name;
        if !name.is_empty() {
            self.model(name)?;
        }
        let model_stats = MODELS
            .iter()
            .filter(|m| name.is_empty() || m.name == name)
            .map(|m| {
                let c = &self.stats.models[m.name];
                let success = c.success.load(Ordering::Relaxed);
                pb::ModelStatistics {
                    name: m.name.into(),
                    version: "1".into(),
                    last_inference: 0,
                    inference_count: success,
                    execution_count: success,
                    inference_stats: Some(pb::InferStatistics {
                        success: Some(pb::StatisticDuration {
                            count: success,
                            ns: c.success_ns.load(Ordering::Relaxed),
                        }),
                        fail: Some(pb::StatisticDuration { count: c.fail.load(Ordering::Relaxed), ns: 0 }),
                        queue: Some(pb::StatisticDuration { count: success, ns: c.queue_ns.load(Ordering::Relaxed) }),
                        compute_input: Some(pb::StatisticDuration { count: success, ns: 0 }),
                        compute_infer: Some(pb::StatisticDuration {
                            count: success,
                            ns: c.compute_ns.load(Ordering::Relaxed),
                        }),
                        compute_output: Some(pb::StatisticDuration { count: success, ns: 0 }),
                    }),
                }
            })
            .collect();
        Ok(Response::new(pb::ModelStatisticsResponse { model_stats }))
    }

    async fn repository_index(
        &self,
        _: Request<pb::RepositoryIndexRequest>,
    ) -> Result<Response<pb::RepositoryIndexResponse>, Status> {
        let models = MODELS
            .iter()
            .map(|m| pb::repository_index_response::ModelIndex {
                name: m.name.into(),
                version: "1".into(),
                state: if self.is_available(m.name) { "READY" } else { "UNAVAILABLE" }.into(),
                reason: if self.is_available(m.name) { String::new() } else { UNAVAILABLE_REASON.into() },
            })
            .collect();
        Ok(Response::new(pb::RepositoryIndexResponse { models }))
    }

    async fn model_infer(
        &self,
        request: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        let arrived = Instant::now();
        let request = request.into_inner();
        let model = self.model(&request.model_name)?;
        if model.decoupled {
            return Err(Status::unimplemented(
                "ModelInfer RPC doesn't support models with decoupled transaction policy",
            ));
        }
        let ask = model.ask(&request, self.counter()).map_err(Status::invalid_argument)?;
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job { model, ask, arrived, sink: Sink::Unary(tx) })
            .map_err(|_| Status::unavailable("the simulator is shutting down"))?;
        let mut response = rx.await.map_err(|_| Status::internal("the simulator dropped the request"))??;
        scheduler::stamp(&mut response, unix_now_ns());
        Ok(Response::new(response))
    }

    type ModelStreamInferStream = Unused;

    /// Never called: [`SimService`] answers ModelStreamInfer itself, with [`StreamInfer`].
    async fn model_stream_infer(
        &self,
        _: Request<Streaming<pb::ModelInferRequest>>,
    ) -> Result<Response<Self::ModelStreamInferStream>, Status> {
        Err(Status::internal("ModelStreamInfer is served by SimService"))
    }
}
