//! The sweep form: target and model, the guide's presets, prompt lengths and load, with
//! inline validation; Run starts the sweep on the server.

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::api::{ApiError, MetricsCheck, ModelChoice, RunCreated, TargetModels};
use shared::capacity::CapacitySearch;
use shared::goodput::Slo;
use shared::number::parse_f64;
use shared::protocol::Protocol;
use shared::schedule::Arrival;
use shared::spec::{parse_concurrencies, parse_prompt_lengths, parse_request_rates};
use shared::{InputStyle, SweepSpec};

use crate::api;
use crate::components::ErrorBox;
use crate::components::copy_link::CopyLink;
use crate::components::run_view::rerun_path;
use crate::components::tokenizer::{TokenizerPicker, length_unit};

/// How the form's load is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// Closed loop: concurrencies.
    Concurrency,
    /// Open loop: request rates.
    Rates,
    /// Open loop: the highest rate whose goodput meets a target.
    Capacity,
}

impl LoadMode {
    fn of(spec: &SweepSpec) -> LoadMode {
        if spec.capacity.is_some() {
            LoadMode::Capacity
        } else if spec.open_loop() {
            LoadMode::Rates
        } else {
            LoadMode::Concurrency
        }
    }
}

/// The form's fields as typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Fields {
    pub target: String,
    /// OpenAI protocol: chat completions rather than completions.
    pub chat: bool,
    pub model: String,
    pub input_style: InputStyle,
    /// The tokenizer's path on the proxy's machine; empty for none.
    pub tokenizer: String,
    pub prompt_lengths: String,
    /// Standard deviations of drawn prompt and output lengths, and the shared prefix's
    /// length; each empty when not asked for.
    pub prompt_stddev: String,
    pub output_stddev: String,
    pub shared_prefix: String,
    pub max_tokens: String,
    pub ignore_eos: bool,
    pub streaming: bool,
    pub requests: String,
    pub warmup: String,
    /// Seconds a point measures, and warms up, for; each empty when the count alone decides.
    pub duration: String,
    pub warmup_duration: String,
    /// One concurrency, or a list or range of them (closed loop).
    pub concurrency: String,
    /// How the load is given: concurrencies, request rates, or a capacity search.
    pub load: LoadMode,
    /// Request rates per second: a list or range (open loop).
    pub rates: String,
    pub arrival: Arrival,
    pub burstiness: String,
    pub seed: String,
    /// The most requests in flight in open loop; empty for the engine's most.
    pub max_concurrency: String,
    /// A capacity search's goodput target (0 to 1), first rate and most probes.
    pub goodput: String,
    pub start_rate: String,
    pub probes: String,
    /// Where the server's metrics are read, empty for the target's host on Triton's metrics
    /// port; the time between scrapes in ms, empty for the default; and whether to read none.
    pub metrics_url: String,
    pub metrics_interval: String,
    pub no_metrics: bool,
    /// Objectives in ms, each empty when not asked for.
    pub slo_ttft: String,
    pub slo_t2t: String,
    pub slo_e2e: String,
    /// The spec the form started from: what the form has no field for (the model version,
    /// the request timeout) comes from it.
    pub rest: SweepSpec,
}

impl Fields {
    /// The fields of a spec, as the form shows them.
    pub fn of(spec: &SweepSpec) -> Fields {
        let search = spec.capacity.unwrap_or_default();
        Fields {
            target: spec.target.clone(),
            chat: spec.chat,
            model: spec.model.clone(),
            input_style: spec.input_style,
            tokenizer: spec.tokenizer.clone().unwrap_or_default(),
            prompt_lengths: spec.prompt_lengths.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            prompt_stddev: spec.prompt_stddev.map(|s| s.to_string()).unwrap_or_default(),
            output_stddev: spec.output_stddev.map(|s| s.to_string()).unwrap_or_default(),
            shared_prefix: spec.shared_prefix.map(|p| p.to_string()).unwrap_or_default(),
            max_tokens: spec.max_tokens.to_string(),
            ignore_eos: spec.ignore_eos,
            streaming: spec.streaming,
            requests: spec.requests.to_string(),
            warmup: spec.warmup.to_string(),
            duration: spec.duration_s.map(|s| s.to_string()).unwrap_or_default(),
            warmup_duration: spec.warmup_s.map(|s| s.to_string()).unwrap_or_default(),
            concurrency: if spec.concurrencies.is_empty() {
                spec.concurrency.to_string()
            } else {
                join(&spec.concurrencies)
            },
            load: LoadMode::of(spec),
            rates: if spec.request_rates.is_empty() || spec.capacity.is_some() {
                "1,2,4".into()
            } else {
                join(&spec.request_rates)
            },
            arrival: spec.arrival,
            burstiness: spec.burstiness.to_string(),
            seed: spec.seed.to_string(),
            max_concurrency: spec.max_concurrency.map(|c| c.to_string()).unwrap_or_default(),
            goodput: search.goodput.to_string(),
            start_rate: search.start_rate.to_string(),
            probes: search.probes.to_string(),
            metrics_url: spec.metrics_url.clone().unwrap_or_default(),
            metrics_interval: spec.metrics_interval_ms.map(|ms| ms.to_string()).unwrap_or_default(),
            no_metrics: spec.no_metrics,
            slo_ttft: objective(spec.slo.and_then(|s| s.ttft_ms)),
            slo_t2t: objective(spec.slo.and_then(|s| s.t2t_ms)),
            slo_e2e: objective(spec.slo.and_then(|s| s.e2e_ms)),
            rest: spec.clone(),
        }
    }

    /// The spec these fields ask for, or every problem with them as a sentence.
    pub fn spec(&self) -> Result<SweepSpec, Vec<String>> {
        let mut problems = Vec::new();
        let mut number = |text: &str, what: &str| -> u32 {
            text.trim().parse::<u32>().unwrap_or_else(|_| {
                problems.push(format!("{what} must be a whole number, not {:?}", text.trim()));
                0
            })
        };
        let max_tokens = number(&self.max_tokens, "max_tokens");
        let requests = number(&self.requests, "requests per prompt length");
        let warmup = number(&self.warmup, "warm-up requests");
        let concurrencies = parse_concurrencies(&self.concurrency).unwrap_or_else(|err| {
            problems.push(format!("concurrency: {err}"));
            Vec::new()
        });
        let mut load =
            SweepSpec { concurrencies: Vec::new(), request_rates: Vec::new(), capacity: None, ..self.rest.clone() };
        match concurrencies.as_slice() {
            [one] => load.concurrency = *one,
            [] => {}
            many => load.concurrencies = many.to_vec(),
        }
        if self.load != LoadMode::Concurrency {
            load.concurrencies.clear();
            load.concurrency = 1;
        }
        if self.load == LoadMode::Rates {
            load.request_rates = parse_request_rates(&self.rates).unwrap_or_else(|err| {
                problems.push(format!("request rates: {err}"));
                Vec::new()
            });
        }
        if self.load == LoadMode::Capacity {
            let mut decimal = |text: &str, what: &str| -> f64 {
                parse_f64(text.trim()).unwrap_or_else(|| {
                    problems.push(format!("{what} must be a number, not {:?}", text.trim()));
                    1.0
                })
            };
            let (goodput, start_rate) =
                (decimal(&self.goodput, "the goodput target"), decimal(&self.start_rate, "the first rate"));
            let probes = self.probes.trim().parse().unwrap_or_else(|_| {
                problems.push(format!("the most probes must be a whole number, not {:?}", self.probes.trim()));
                0
            });
            load.capacity = Some(CapacitySearch { goodput, start_rate, probes });
        }
        // Drawn lengths use the seed in any load.
        load.seed = self.seed.trim().parse().unwrap_or_else(|_| {
            problems.push(format!("the seed must be a whole number, not {:?}", self.seed.trim()));
            0
        });
        let mut optional = |text: &str, what: &str| match text.trim() {
            "" => None,
            text => parse_f64(text).map(Some).unwrap_or_else(|| {
                problems.push(format!("{what} must be a number, not {text:?}"));
                None
            }),
        };
        load.prompt_stddev = optional(&self.prompt_stddev, "the prompt length's standard deviation");
        load.output_stddev = optional(&self.output_stddev, "the output length's standard deviation");
        load.shared_prefix = match self.shared_prefix.trim() {
            "" => None,
            text => Some(text.parse().unwrap_or_else(|_| {
                problems.push(format!("the shared prefix must be a whole number of tokens, not {text:?}"));
                0
            })),
        };
        if self.load != LoadMode::Concurrency {
            load.arrival = self.arrival;
            load.burstiness = parse_f64(self.burstiness.trim()).unwrap_or_else(|| {
                problems.push(format!("burstiness must be a number, not {:?}", self.burstiness.trim()));
                1.0
            });
            load.max_concurrency = match self.max_concurrency.trim() {
                "" => None,
                text => Some(text.parse().unwrap_or_else(|_| {
                    problems.push(format!("the most in flight must be a whole number, not {text:?}"));
                    0
                })),
            };
        } else {
            load.max_concurrency = None;
        }
        let mut slo = Slo::default();
        for (text, what, slot) in [
            (&self.slo_ttft, "the TTFT objective", &mut slo.ttft_ms),
            (&self.slo_t2t, "the token-to-token objective", &mut slo.t2t_ms),
            (&self.slo_e2e, "the end-to-end objective", &mut slo.e2e_ms),
        ] {
            match text.trim() {
                "" => {}
                text => match parse_f64(text) {
                    Some(ms) => *slot = Some(ms),
                    None => problems.push(format!("{what} must be a number of ms, not {text:?}")),
                },
            }
        }
        let mut seconds = |text: &str, what: &str| match text.trim() {
            "" => None,
            text => parse_f64(text).map(Some).unwrap_or_else(|| {
                problems.push(format!("{what} must be a number of seconds, not {text:?}"));
                None
            }),
        };
        let duration_s = seconds(&self.duration, "the duration");
        let warmup_s = seconds(&self.warmup_duration, "the warm-up time");
        let metrics_interval_ms = match self.metrics_interval.trim() {
            "" => None,
            text => text.parse().map(Some).unwrap_or_else(|_| {
                problems.push(format!("the time between metrics scrapes must be a whole number of ms, not {text:?}"));
                None
            }),
        };
        let prompt_lengths = parse_prompt_lengths(&self.prompt_lengths).unwrap_or_else(|err| {
            problems.push(format!("prompt lengths: {err}"));
            Vec::new()
        });
        let spec = SweepSpec {
            target: self.target.trim().to_string(),
            chat: self.chat,
            model: self.model.clone(),
            // A version belongs to its model.
            model_version: self.rest.model_version.clone().filter(|_| self.model == self.rest.model),
            input_style: self.input_style,
            tokenizer: Some(self.tokenizer.trim().to_string()).filter(|t| !t.is_empty()),
            prompt_lengths,
            max_tokens,
            ignore_eos: self.ignore_eos,
            requests,
            warmup,
            duration_s,
            warmup_s,
            streaming: self.streaming,
            slo: (!slo.is_empty()).then_some(slo),
            metrics_url: Some(self.metrics_url.trim().to_string()).filter(|u| !u.is_empty()),
            metrics_interval_ms,
            no_metrics: self.no_metrics,
            ..load
        };
        if problems.is_empty() {
            problems = spec.problems();
        }
        if problems.is_empty() { Ok(spec) } else { Err(problems) }
    }
}

/// Numbers as a comma-separated list.
fn join<T: ToString>(values: &[T]) -> String {
    values.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// An objective as its field shows it: empty when not asked for.
fn objective(ms: Option<f64>) -> String {
    ms.map(|ms| ms.to_string()).unwrap_or_default()
}

/// Why the chosen model cannot be measured the way the spec asks, if it cannot: streaming
/// needs a decoupled model, and Triton serves a decoupled model only by streaming.
pub fn model_mismatch(spec: &SweepSpec, models: &[ModelChoice]) -> Option<String> {
    let model = models.iter().find(|m| m.name == spec.model)?;
    match (model.streaming?, spec.streaming) {
        (false, true) => Some(format!(
            "{} is not decoupled, so it cannot stream: untick Streaming to time whole responses \
             (TTFT is then each request's whole latency), or pick a model that streams",
            model.name
        )),
        (true, false) => {
            Some(format!("{} is decoupled, and Triton serves it only by streaming: tick Streaming", model.name))
        }
        _ => None,
    }
}

/// The metrics check in words, and a short name for its state: `off` when the run reads no
/// metrics, `checking` until the answer, `answers` with what the server exposes, `silent` with
/// why it does not answer, or `failed` with why the check could not be made.
pub fn metrics_status(no_metrics: bool, check: Option<&Result<MetricsCheck, ApiError>>) -> (&'static str, String) {
    match check {
        _ if no_metrics => ("off", "off: the run reads no metrics from the server".into()),
        None => ("checking", "checking the metrics address…".into()),
        Some(Ok(check)) if check.answers => (
            "answers",
            format!(
                "answers: {} series in {} families (took {} ms)",
                check.series,
                check.families.len(),
                crate::chart::fmt_ms(check.took_ms)
            ),
        ),
        Some(Ok(check)) => (
            "silent",
            format!(
                "{} does not answer: {}; the run goes on without metrics (its charts then show gaps)",
                check.url,
                check.error.as_deref().unwrap_or("no metrics in its answer")
            ),
        ),
        Some(Err(err)) => {
            let hint = err.hint.as_deref().map(|h| format!(" ({h})")).unwrap_or_default();
            ("failed", format!("the metrics address could not be checked: {}{hint}", err.error))
        }
    }
}

/// What the form shows first: the prefill preset over a few lengths.
pub fn default_spec(target: String) -> SweepSpec {
    let base = SweepSpec { target, ..SweepSpec::default() }.prefill_preset();
    SweepSpec { prompt_lengths: vec![16, 64, 256, 1024], requests: 10, ..base }
}

/// The model to choose instead of `current` when the server has no usable model of that
/// name: the first usable one that can be measured as the form asks (`streaming` or not),
/// else the first usable one, else none (empty). `None` keeps `current`.
fn replacement_model(models: &[ModelChoice], current: &str, streaming: bool) -> Option<String> {
    let usable = |m: &&ModelChoice| m.ready && m.problem.is_none();
    if models.iter().filter(usable).any(|m| m.name == current) {
        return None;
    }
    let mut candidates = models.iter().filter(usable);
    let fits = candidates.clone().find(|m| m.streaming.unwrap_or(true) == streaming);
    Some(fits.or_else(|| candidates.next()).map(|m| m.name.clone()).unwrap_or_default())
}

/// One model as the dropdown shows it.
fn model_label(model: &ModelChoice) -> String {
    let mut label = model.name.clone();
    if let Some(style) = model.input_style {
        label.push_str(&format!(" ({style})"));
    }
    if !model.ready {
        label.push_str(&format!(" [{}]", model.state));
    } else if model.problem.is_some() {
        label.push_str(" [cannot be used]");
    } else if model.streaming == Some(false) {
        label.push_str(" [no streaming]");
    }
    label
}

/// A labelled input bound to one of the form's fields.
#[derive(Clone, Copy)]
struct Input {
    id: &'static str,
    label: &'static str,
    /// The label's tooltip.
    title: Option<&'static str>,
    /// A number's least value; without one, the input takes text.
    min: Option<&'static str>,
    placeholder: Option<&'static str>,
    get: fn(&Fields) -> String,
    set: fn(&mut Fields, String),
}

impl Input {
    fn view(self, fields: RwSignal<Fields>) -> impl IntoView {
        let kind = if self.min.is_some() { "number" } else { "text" };
        view! {
            <label title=self.title>{self.label}
                <input id=self.id type=kind min=self.min placeholder=self.placeholder
                    prop:value=value_of(fields, self.get) on:input=write_to(fields, self.set)/>
            </label>
        }
    }
}

/// A labelled select of every value of a choice, each by its name, bound to one field.
fn select_of<T: Copy + PartialEq + std::str::FromStr + Send + Sync + 'static>(
    fields: RwSignal<Fields>,
    id: &'static str,
    label: &'static str,
    all: &'static [T],
    name: fn(T) -> &'static str,
    get: fn(&Fields) -> T,
    set: fn(&mut Fields, T),
) -> impl IntoView {
    view! {
        <label>{label}
            <select id=id on:change=move |ev| {
                if let Ok(value) = event_target_value(&ev).parse() { fields.update(|f| set(f, value)) }
            }>
                {all.iter().map(|&value| view! {
                    <option value=name(value) selected=move || fields.with(|f| get(f) == value)>{name(value)}</option>
                }).collect_view()}
            </select>
        </label>
    }
}

/// What a field holds, for an input's value.
fn value_of(fields: RwSignal<Fields>, get: fn(&Fields) -> String) -> impl Fn() -> String + Copy + 'static {
    move || fields.with(get)
}

/// Writes an input's value to a field.
fn write_to(fields: RwSignal<Fields>, apply: fn(&mut Fields, String)) -> impl Fn(leptos::ev::Event) + Copy + 'static {
    move |ev| fields.update(|f| apply(f, event_target_value(&ev)))
}

#[rustfmt::skip]
const MAX_TOKENS: Input = Input { id: "max-tokens", label: "max_tokens", title: None, min: Some("1"), placeholder: None, get: |f| f.max_tokens.clone(), set: |f, v| f.max_tokens = v };

/// The sweep's counts, drawn lengths, seed and durations.
#[rustfmt::skip]
const SWEEP_INPUTS: [Input; 8] = [
    Input { id: "requests", label: "Requests per length", title: None, min: Some("1"), placeholder: None, get: |f| f.requests.clone(), set: |f, v| f.requests = v },
    Input { id: "warmup", label: "Warm-up per length", title: None, min: Some("0"), placeholder: None, get: |f| f.warmup.clone(), set: |f, v| f.warmup = v },
    Input { id: "prompt-stddev", label: "Prompt length ±", title: Some("Draw each request's prompt length around its point's from a normal distribution of this standard deviation, cut at three"), min: None, placeholder: Some("none"), get: |f| f.prompt_stddev.clone(), set: |f, v| f.prompt_stddev = v },
    Input { id: "output-stddev", label: "max_tokens ±", title: Some("Draw each request's max_tokens around max_tokens from a normal distribution of this standard deviation, cut at three; with ignore_eos it is the output length"), min: None, placeholder: Some("none"), get: |f| f.output_stddev.clone(), set: |f, v| f.output_stddev = v },
    Input { id: "shared-prefix", label: "Shared prefix", title: Some("Start every prompt with the same text of this many tokens (words without a tokenizer), which a prefix cache can keep; prompt lengths include it"), min: None, placeholder: Some("none"), get: |f| f.shared_prefix.clone(), set: |f, v| f.shared_prefix = v },
    Input { id: "seed", label: "Seed", title: Some("The same seed sends at the same instants (open loop) and the same drawn lengths"), min: Some("0"), placeholder: None, get: |f| f.seed.clone(), set: |f, v| f.seed = v },
    Input { id: "duration", label: "Duration s", title: Some("Measure each point for this long (from its first measured send); the request count still caps it"), min: None, placeholder: Some("by count"), get: |f| f.duration.clone(), set: |f, v| f.duration = v },
    Input { id: "warmup-duration", label: "Warm-up s", title: Some("Warm each point up for this long; the warm-up count still caps it"), min: None, placeholder: Some("by count"), get: |f| f.warmup_duration.clone(), set: |f, v| f.warmup_duration = v },
];

/// A capacity search's goodput target, first rate and most probes.
#[rustfmt::skip]
const CAPACITY_INPUTS: [Input; 3] = [
    Input { id: "capacity-goodput", label: "Goodput target", title: Some("The share of a probe's requests that must meet every objective: 0.99 is 99%"), min: None, placeholder: None, get: |f| f.goodput.clone(), set: |f, v| f.goodput = v },
    Input { id: "capacity-start", label: "First rate /s", title: Some("The first probe's rate, requests per second"), min: None, placeholder: None, get: |f| f.start_rate.clone(), set: |f, v| f.start_rate = v },
    Input { id: "capacity-probes", label: "Most probes", title: Some("The most probes the search sends"), min: Some("2"), placeholder: None, get: |f| f.probes.clone(), set: |f, v| f.probes = v },
];

#[rustfmt::skip]
const BURSTINESS: Input = Input { id: "burstiness", label: "Burstiness", title: Some("The gamma shape: 1 is Poisson, below 1 burstier, above more regular"), min: None, placeholder: None, get: |f| f.burstiness.clone(), set: |f, v| f.burstiness = v };

#[rustfmt::skip]
const MAX_IN_FLIGHT: Input = Input { id: "max-concurrency", label: "Most in flight", title: Some("A request due while this many are in flight waits, and its schedule lag shows it"), min: Some("1"), placeholder: Some("1024"), get: |f| f.max_concurrency.clone(), set: |f, v| f.max_concurrency = v };

/// The objectives, in ms.
#[rustfmt::skip]
const OBJECTIVE_INPUTS: [Input; 3] = [
    Input { id: "slo-ttft", label: "TTFT ≤", title: None, min: None, placeholder: None, get: |f| f.slo_ttft.clone(), set: |f, v| f.slo_ttft = v },
    Input { id: "slo-t2t", label: "token-to-token ≤", title: None, min: None, placeholder: None, get: |f| f.slo_t2t.clone(), set: |f, v| f.slo_t2t = v },
    Input { id: "slo-e2e", label: "end-to-end ≤", title: None, min: None, placeholder: None, get: |f| f.slo_e2e.clone(), set: |f, v| f.slo_e2e = v },
];

/// The metrics check's answer, as the form shows it.
#[derive(Clone, Copy)]
struct CheckState {
    /// A short name of its state (see [`metrics_status`]).
    state: RwSignal<String>,
    /// The answer in words.
    words: RwSignal<String>,
    /// The address the check read, the address field's placeholder.
    address: RwSignal<String>,
}

/// The target, its models and the input style.
#[component]
fn ServerFieldset(
    fields: RwSignal<Fields>,
    /// The target's models, once they have come.
    models: RwSignal<Option<Result<TargetModels, ApiError>>>,
    /// Asks the target again for its models and its metrics.
    reload: Callback<()>,
) -> impl IntoView {
    view! {
    <fieldset class="target">
        <legend>"Server"</legend>
        <label title="http://HOST:8001 is Triton's gRPC; triton-http://HOST:8000 Triton's HTTP generate stream; openai://HOST:PORT an OpenAI-compatible server; https, triton-https and openai-https add TLS">
            "Server address"
            <input id="target" type="text" spellcheck="false" prop:value=value_of(fields, |f| f.target.clone())
                on:input=write_to(fields, |f, v| f.target = v) on:change=move |_| reload.run(())/>
        </label>
        <span class="protocol" id="target-protocol">{move || fields.with(|f| {
            shared::protocol::read_target(&f.target, f.rest.protocol).map_or_else(|problem| problem, |e| e.protocol.label().to_string())
        })}</span>
        <Show when=move || fields.with(|f| shared::protocol::read_target(&f.target, f.rest.protocol).is_ok_and(|e| e.protocol == Protocol::OpenAi))>
            <label title="Ask /v1/chat/completions with the prompt as one user message, rather than /v1/completions">
                <input id="chat" type="checkbox" prop:checked=move || fields.with(|f| f.chat)
                    on:change=move |ev| fields.update(|f| f.chat = event_target_checked(&ev))/>"chat"</label>
        </Show>
        <button type="button" id="load-models" on:click=move |_| reload.run(())>"Load models"</button>
        <label>
            "Model"
            <select id="model" on:change=write_to(fields, |f, v| f.model = v)>
                {move || match models.get() {
                    None => view! { <option value="">"loading…"</option> }.into_any(),
                    Some(Err(_)) => view! { <option value="">"no models"</option> }.into_any(),
                    Some(Ok(list)) => list.models.into_iter().map(|m| {
                        let selected = fields.with_untracked(|f| f.model == m.name);
                        let usable = m.ready && m.problem.is_none();
                        view! {
                            <option value=m.name.clone() selected=selected disabled=!usable
                                title=m.problem.clone().unwrap_or_default()>{model_label(&m)}</option>
                        }
                    }).collect_view().into_any(),
                }}
            </select>
        </label>
        {select_of(fields, "input-style", "Input style", &InputStyle::ALL, InputStyle::name, |f| f.input_style, |f, v| f.input_style = v)}
        {move || models.get().map(|result| match result {
            Err(err) => view! { <ErrorBox error=err/> }.into_any(),
            Ok(list) if list.simulated => {
                // The same simulator over its other protocols, to compare them out of the box.
                let elsewhere = (!list.simulator_elsewhere.is_empty()).then(|| {
                    let addresses = list.simulator_elsewhere.iter().enumerate().map(|(i, address)| {
                        let glue = if i == 0 { "" } else { " and " };
                        view! { {glue}<code>{address.clone()}</code> }
                    }).collect_view();
                    view! {
                        <span id="simulator-elsewhere">" It also answers at " {addresses}
                            ": give one as the server address to measure that protocol."</span>
                    }
                });
                view! {
                    <p class="note">"This is tokenscope's built-in simulated Triton: its numbers measure the simulator, not a model."
                        {elsewhere}</p>
                }.into_any()
            }
            Ok(_) => ().into_any(),
        })}
    </fieldset>
    }
}

/// Where and how often the server's metrics are read, and whether they answer.
#[component]
fn MetricsFieldset(
    fields: RwSignal<Fields>,
    check_state: CheckState,
    /// Checks the metrics address again.
    check: Callback<()>,
) -> impl IntoView {
    view! {
    <fieldset class="metrics">
        <legend>"Server metrics"</legend>
        <label title="Where the server's Prometheus metrics are read during the run, over plain HTTP; empty: the target's host on Triton's metrics port">"Metrics address"
            <input id="metrics-url" type="text" spellcheck="false" placeholder=move || check_state.address.get()
                prop:value=value_of(fields, |f| f.metrics_url.clone())
                on:input=write_to(fields, |f, v| f.metrics_url = v) on:change=move |_| check.run(())/></label>
        <label title="The time between scrapes, from 50 to 60000 ms">"Every ms"
            <input id="metrics-interval" type="number" min="50" max="60000" placeholder="250"
                prop:value=value_of(fields, |f| f.metrics_interval.clone()) on:input=write_to(fields, |f, v| f.metrics_interval = v)/></label>
        <label class="check" title="Measure without reading the server's metrics">
            <input id="no-metrics" type="checkbox" prop:checked=move || fields.with(|f| f.no_metrics)
                on:change=move |ev| { fields.update(|f| f.no_metrics = event_target_checked(&ev)); check.run(()); }/>"read no metrics"</label>
        <p class="hint" id="metrics-status" role="status" data-state=move || check_state.state.get()>{move || check_state.words.get()}</p>
    </fieldset>
    }
}

/// The presets, the tokenizer, the prompt lengths and the requests of each point.
#[component]
fn SweepFieldset(fields: RwSignal<Fields>) -> impl IntoView {
    let preset = move |generation: bool| {
        fields.update(|f| {
            let spec = if generation {
                SweepSpec::default().generation_preset()
            } else {
                SweepSpec::default().prefill_preset()
            };
            f.max_tokens = spec.max_tokens.to_string();
            f.ignore_eos = spec.ignore_eos;
            f.concurrency = spec.concurrency.to_string();
            f.load = LoadMode::Concurrency;
        });
    };
    view! {
    <fieldset class="load">
        <legend>"Sweep"</legend>
        <div class="presets">
            "Presets: "
            <button type="button" id="preset-prefill" on:click=move |_| preset(false)
                title="max_tokens 1, one request at a time: time to first token against prompt length">"Prefill"</button>
            <button type="button" id="preset-generation" on:click=move |_| preset(true)
                title="max_tokens 256 with ignore_eos, one at a time: token-to-token latency against prompt length">"Generation"</button>
        </div>
        <TokenizerPicker chosen=Signal::derive(move || fields.with(|f| f.tokenizer.clone()))
            on_choose=Callback::new(move |path: String| fields.update(|f| f.tokenizer = path))/>
        <label class="wide">
            {move || format!("Prompt lengths ({}): a list, FROM..TO:STEP or FROM..TO:x2",
                fields.with(|f| length_unit(&f.tokenizer)))}
            <input id="prompt-lengths" type="text" spellcheck="false" prop:value=value_of(fields, |f| f.prompt_lengths.clone())
                on:input=write_to(fields, |f, v| f.prompt_lengths = v)/>
        </label>
        <p class="hint">{move || match parse_prompt_lengths(&fields.with(|f| f.prompt_lengths.clone())) {
            Ok(lengths) if lengths.len() <= 12 => format!("{} lengths: {lengths:?}", lengths.len()),
            Ok(lengths) => format!("{} lengths, {} to {}", lengths.len(), lengths[0], lengths[lengths.len() - 1]),
            Err(_) => String::new(),
        }}</p>
        {MAX_TOKENS.view(fields)}
        <label class="check"><input id="ignore-eos" type="checkbox" prop:checked=move || fields.with(|f| f.ignore_eos)
            on:change=move |ev| fields.update(|f| f.ignore_eos = event_target_checked(&ev))/>"ignore_eos"</label>
        <label class="check" title="Streaming (ModelStreamInfer) times every token and needs a decoupled model. Without it, each request is one ModelInfer call: TTFT is its whole latency.">
            <input id="streaming" type="checkbox" prop:checked=move || fields.with(|f| f.streaming)
                on:change=move |ev| fields.update(|f| f.streaming = event_target_checked(&ev))/>"Streaming"</label>
        {SWEEP_INPUTS.into_iter().map(|input| input.view(fields)).collect_view()}
    </fieldset>
    }
}

/// How the load is given: concurrencies, request rates or a capacity search, with the
/// arrivals of an open loop and the objectives.
#[component]
fn LoadFieldset(fields: RwSignal<Fields>) -> impl IntoView {
    let mode = move || fields.with(|f| f.load);
    view! {
    <fieldset class="load-levels">
        <legend>"Load"</legend>
        <label class="check" title="Keep a number of requests in flight: each is sent as one finishes (closed loop)">
            <input id="load-closed" type="radio" name="load" prop:checked=move || mode() == LoadMode::Concurrency
                on:change=move |_| fields.update(|f| f.load = LoadMode::Concurrency)/>"Concurrency"</label>
        <label class="check" title="Send requests on a schedule at a rate, whatever the server's pace (open loop)">
            <input id="load-open" type="radio" name="load" prop:checked=move || mode() == LoadMode::Rates
                on:change=move |_| fields.update(|f| f.load = LoadMode::Rates)/>"Request rate"</label>
        <label class="check" title="Search for the highest request rate at which enough requests meet the objectives: doubling while probes pass, then bisecting to within 5%">
            <input id="load-capacity" type="radio" name="load" prop:checked=move || mode() == LoadMode::Capacity
                on:change=move |_| fields.update(|f| f.load = LoadMode::Capacity)/>"Find capacity"</label>
        <Show when=move || mode() == LoadMode::Concurrency>
            <label class="wide">"Concurrency: one, a list or a range (1,2,4..64:x2), each measured in turn"
                <input id="concurrency" type="text" spellcheck="false" prop:value=value_of(fields, |f| f.concurrency.clone())
                    on:input=write_to(fields, |f, v| f.concurrency = v)/></label>
        </Show>
        <Show when=move || mode() == LoadMode::Rates>
            <label class="wide">"Request rates per second: a list or a range (0.5..16:x2), each measured in turn"
                <input id="request-rates" type="text" spellcheck="false" prop:value=value_of(fields, |f| f.rates.clone())
                    on:input=write_to(fields, |f, v| f.rates = v)/></label>
        </Show>
        <Show when=move || mode() == LoadMode::Capacity>
            <p class="hint">"Each probe is a point at one rate; the answer is the highest rate whose goodput met the target. Needs at least one objective and one prompt length."</p>
            {CAPACITY_INPUTS.into_iter().map(|input| input.view(fields)).collect_view()}
        </Show>
        <Show when=move || mode() != LoadMode::Concurrency>
            {select_of(fields, "arrival", "Arrivals", &Arrival::ALL, Arrival::name, |f| f.arrival, |f, v| f.arrival = v)}
            <Show when=move || fields.with(|f| f.arrival == Arrival::Gamma)>
                {BURSTINESS.view(fields)}
            </Show>
            {MAX_IN_FLIGHT.view(fields)}
        </Show>
        <p class="hint">"Objectives (ms, optional): each point then reports its goodput, the requests that met them all."</p>
        {OBJECTIVE_INPUTS.into_iter().map(|input| input.view(fields)).collect_view()}
    </fieldset>
    }
}

/// Asks the server for the target's models (into `models`), keeping the chosen model when
/// the target has it and else picking one; answers may come back out of order, and only the
/// latest question's answer counts.
fn model_loader(
    fields: RwSignal<Fields>,
    models: RwSignal<Option<Result<TargetModels, ApiError>>>,
) -> impl Fn() + Copy + 'static {
    let asked = StoredValue::new(0u64);
    move || {
        let target = fields.with_untracked(|f| f.target.clone());
        models.set(None);
        asked.update_value(|n| *n += 1);
        let question = asked.get_value();
        spawn_local(async move {
            let result =
                api::get_json::<TargetModels>(&format!("/api/targets/models?target={}", api::encode(&target))).await;
            if asked.get_value() != question {
                return;
            }
            if let Ok(list) = &result {
                let (current, streaming) = fields.with_untracked(|f| (f.model.clone(), f.streaming));
                if let Some(model) = replacement_model(&list.models, &current, streaming) {
                    fields.update(|f| f.model = model);
                }
            }
            models.set(Some(result));
        });
    }
}

/// Checks where the server's metrics are read, as the target's models are loaded: on a
/// change, and only the latest question's answer counts. Its words are kept as text, in
/// signal types the page already has, which keeps it lighter; the address it read is the
/// field's placeholder.
fn metrics_checker(fields: RwSignal<Fields>) -> (CheckState, impl Fn() + Copy + 'static) {
    let check_state = CheckState {
        state: RwSignal::new(String::new()),
        words: RwSignal::new(String::new()),
        address: RwSignal::new(String::new()),
    };
    let metrics_asked = StoredValue::new(0u64);
    let check = move || {
        let (target, address, off) =
            fields.with_untracked(|f| (f.target.trim().to_string(), f.metrics_url.trim().to_string(), f.no_metrics));
        metrics_asked.update_value(|n| *n += 1);
        let show = move |(state, words): (&str, String)| {
            check_state.state.set(state.to_string());
            check_state.words.set(words);
        };
        show(metrics_status(off, None));
        check_state.address.set(String::new());
        if off {
            return;
        }
        let question = metrics_asked.get_value();
        spawn_local(async move {
            let mut url = format!("/api/targets/metrics?target={}", api::encode(&target));
            if !address.is_empty() {
                url.push_str(&format!("&url={}", api::encode(&address)));
            }
            let result = api::get_json::<MetricsCheck>(&url).await;
            if metrics_asked.get_value() == question {
                show(metrics_status(false, Some(&result)));
                check_state.address.set(result.map(|c| c.url).unwrap_or_default());
            }
        });
    };
    (check_state, check)
}

/// The sweep form.
#[component]
pub fn SweepForm(
    /// The target to start with.
    default_target: String,
    /// Whether a run is in progress; Run waits until it ends.
    #[prop(into)]
    running: Signal<bool>,
    /// Called with the new run's id once the server has started it.
    on_started: Callback<String>,
    /// A spec to start from instead of the defaults, such as one from a link.
    initial: Option<SweepSpec>,
) -> impl IntoView {
    let base = initial.unwrap_or_else(|| default_spec(default_target));
    let fields = RwSignal::new(Fields::of(&base));
    let models = RwSignal::new(None::<Result<TargetModels, ApiError>>);
    let submit_error = RwSignal::new(None::<ApiError>);
    let submitting = RwSignal::new(false);

    let load_models = model_loader(fields, models);
    load_models();
    let (check_state, check_metrics) = metrics_checker(fields);
    check_metrics();
    let checked = Memo::new(move |_| {
        let spec = fields.with(Fields::spec)?;
        let mismatch = models.with(|m| match m {
            Some(Ok(list)) => model_mismatch(&spec, &list.models),
            _ => None,
        });
        mismatch.map_or(Ok(spec), |problem| Err(vec![problem]))
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Ok(spec) = checked.get_untracked() else { return };
        submitting.set(true);
        submit_error.set(None);
        spawn_local(async move {
            match api::post_json::<RunCreated>("/api/runs", &spec).await {
                Ok(created) => on_started.run(created.id),
                Err(err) => submit_error.set(Some(err)),
            }
            submitting.set(false);
        });
    };

    view! {
        <form class="sweep-form" on:submit=submit novalidate>
            <ServerFieldset fields=fields models=models reload=Callback::new(move |()| { load_models(); check_metrics(); })/>
            <MetricsFieldset fields=fields check_state=check_state check=Callback::new(move |()| check_metrics())/>
            <SweepFieldset fields=fields/>
            <LoadFieldset fields=fields/>
            {move || checked.get().err().map(|problems| view! {
                <ul class="problems" id="form-problems">{problems.into_iter().map(|p| view! { <li>{p}</li> }).collect_view()}</ul>
            })}
            {move || submit_error.get().map(|err| view! { <ErrorBox error=err/> })}
            <div class="actions">
                <button type="submit" id="run" class="primary"
                    disabled=move || checked.with(Result::is_err) || running.get() || submitting.get()>
                    {move || if running.get() { "A run is in progress" } else if submitting.get() { "Starting…" } else { "Run" }}
                </button>
                <CopyLink id="copy-sweep-link" label="Link to this sweep"
                    path=Signal::derive(move || checked.with(|c| c.as_ref().map(rerun_path).unwrap_or_default()))/>
            </div>
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_a_spec() {
        let spec = SweepSpec { model: "m".into(), ..SweepSpec::default() }.generation_preset();
        assert_eq!(Fields::of(&spec).spec().unwrap(), spec);
        let spec = SweepSpec { model_version: Some("3".into()), request_timeout_ms: 5_000, ..spec };
        let timed = SweepSpec { duration_s: Some(30.0), warmup_s: Some(2.5), ..spec.clone() };
        assert_eq!(Fields::of(&timed).spec().unwrap(), timed);
        assert_eq!(Fields::of(&spec).spec().unwrap(), spec, "what the form has no field for is kept");
        let mut fields = Fields::of(&spec);
        fields.model = "other".into();
        assert_eq!(fields.spec().unwrap().model_version, None, "a version belongs to its model");
    }

    #[test]
    fn drawn_lengths_and_a_shared_prefix_round_trip() {
        let spec = SweepSpec {
            model: "m".into(),
            prompt_stddev: Some(12.5),
            output_stddev: Some(4.0),
            shared_prefix: Some(8),
            seed: 7,
            ..SweepSpec::default()
        };
        assert_eq!(Fields::of(&spec).spec().unwrap(), spec, "a closed-loop run keeps its seed too");
        let mut fields = Fields::of(&spec);
        fields.prompt_stddev = "wide".into();
        fields.shared_prefix = "-1".into();
        let problems = fields.spec().unwrap_err().join("\n");
        assert!(problems.contains("standard deviation must be a number") && problems.contains("shared prefix"));
        fields.prompt_stddev = String::new();
        fields.shared_prefix = "16".into();
        assert!(fields.spec().unwrap_err().iter().any(|p| p.contains("above its 16 tokens")), "16 is a prompt length");
    }

    #[test]
    fn the_server_metrics_fields_round_trip() {
        let base = SweepSpec { model: "m".into(), ..SweepSpec::default() };
        assert_eq!(Fields::of(&base).spec().unwrap(), base, "empty fields: the derived address, the default pace");
        let fields = Fields::of(&base);
        assert_eq!((fields.metrics_url.as_str(), fields.metrics_interval.as_str(), fields.no_metrics), ("", "", false));
        let elsewhere = SweepSpec {
            metrics_url: Some("http://gpu-box:9400/metrics".into()),
            metrics_interval_ms: Some(1000),
            ..base.clone()
        };
        assert_eq!(Fields::of(&elsewhere).spec().unwrap(), elsewhere);
        let off = SweepSpec { no_metrics: true, ..base.clone() };
        assert_eq!(Fields::of(&off).spec().unwrap(), off);
        let mut fields = Fields::of(&base);
        fields.metrics_url = "  ".into();
        fields.metrics_interval = " 500 ".into();
        assert_eq!(fields.spec().unwrap().metrics_url, None, "blank is the derived address");
        assert_eq!(fields.spec().unwrap().metrics_interval_ms, Some(500));
        fields.metrics_interval = "often".into();
        fields.metrics_url = "https://gpu-box/metrics".into();
        let problems = fields.spec().unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("metrics scrapes must be a whole number of ms"), "{problems:?}");
        fields.metrics_interval = "10".into();
        let problems = fields.spec().unwrap_err().join("\n");
        assert!(problems.contains("http://") && problems.contains("50 to 60000 ms"), "{problems}");
        fields.no_metrics = true;
        assert!(fields.spec().is_ok(), "nothing to check when no metrics are read");
        // The interval field's hints, written out in the page.
        use shared::telemetry::{DEFAULT_INTERVAL_MS, INTERVAL_MS_RANGE};
        assert_eq!((DEFAULT_INTERVAL_MS, INTERVAL_MS_RANGE), (250, 50..=60_000));
    }

    #[test]
    fn the_metrics_check_reads_as_words() {
        let check = |answers: bool, error: Option<&str>| MetricsCheck {
            url: "http://h:8002/metrics".into(),
            answers,
            series: 120,
            families: vec!["a".into(), "b".into(), "c".into()],
            took_ms: 4.25,
            error: error.map(Into::into),
        };
        assert_eq!(
            metrics_status(false, Some(&Ok(check(true, None)))),
            ("answers", "answers: 120 series in 3 families (took 4.25 ms)".to_string())
        );
        let (state, text) = metrics_status(false, Some(&Ok(check(false, Some("connection refused")))));
        assert_eq!(state, "silent");
        assert!(text.starts_with("http://h:8002/metrics does not answer: connection refused"), "{text}");
        assert_eq!(metrics_status(true, Some(&Ok(check(true, None)))).0, "off");
        assert_eq!(metrics_status(false, None).0, "checking");
        let err = ApiError::new(shared::api::ErrorCode::Other, "no such endpoint", Some("update the dashboard"));
        let (state, text) = metrics_status(false, Some(&Err(err)));
        assert_eq!(state, "failed");
        assert_eq!(text, "the metrics address could not be checked: no such endpoint (update the dashboard)");
    }

    #[test]
    fn a_tokenizer_round_trips_and_an_empty_one_is_none() {
        let spec = SweepSpec {
            model: "m".into(),
            tokenizer: Some("/data/tokenizers/llama-3/tokenizer.json".into()),
            ..SweepSpec::default()
        };
        let fields = Fields::of(&spec);
        assert_eq!(fields.tokenizer, "/data/tokenizers/llama-3/tokenizer.json");
        assert_eq!(fields.spec().unwrap(), spec);
        let mut fields = Fields::of(&spec);
        fields.tokenizer = "  ".into();
        assert_eq!(fields.spec().unwrap().tokenizer, None, "none chosen");
        fields.tokenizer = " /models/gpt2 ".into();
        assert_eq!(fields.spec().unwrap().tokenizer.as_deref(), Some("/models/gpt2"));
        assert_eq!(Fields::of(&SweepSpec::default()).tokenizer, "");
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut fields = Fields::of(&SweepSpec { model: "m".into(), ..SweepSpec::default() });
        fields.max_tokens = "many".into();
        fields.prompt_lengths = "5..1:2".into();
        let problems = fields.spec().unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("max_tokens"));
        assert!(problems[1].contains("prompt lengths"));
        fields.max_tokens = "8".into();
        fields.prompt_lengths = "16".into();
        fields.concurrency = "0".into();
        assert_eq!(fields.spec().unwrap_err(), vec!["concurrency: numbers and steps must be at least 1".to_string()]);
    }

    #[test]
    fn load_levels_and_objectives_round_trip() {
        let base = SweepSpec { model: "m".into(), ..SweepSpec::default() };
        let levels = SweepSpec { concurrencies: vec![1, 2, 4], slo: Slo::parse("ttft_ms=500").ok(), ..base.clone() };
        assert_eq!(Fields::of(&levels).spec().unwrap(), levels);
        let open = SweepSpec {
            request_rates: vec![0.5, 2.0],
            arrival: Arrival::Gamma,
            burstiness: 0.5,
            seed: 9,
            max_concurrency: Some(64),
            slo: Slo::parse("t2t_ms=50,e2e_ms=20000").ok(),
            ..base.clone()
        };
        assert_eq!(Fields::of(&open).spec().unwrap(), open);
        let mut fields = Fields::of(&open);
        fields.load = LoadMode::Concurrency;
        fields.concurrency = "8".into();
        let closed = fields.spec().unwrap();
        assert!(closed.request_rates.is_empty() && closed.max_concurrency.is_none() && closed.concurrency == 8);
        fields.load = LoadMode::Rates;
        fields.rates = "fast".into();
        fields.slo_ttft = "soon".into();
        let problems = fields.spec().unwrap_err();
        assert!(problems.iter().any(|p| p.starts_with("request rates:")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("TTFT objective")), "{problems:?}");
    }

    #[test]
    fn a_capacity_search_round_trips_and_its_bad_fields_are_named() {
        let search = SweepSpec {
            model: "m".into(),
            prompt_lengths: vec![256],
            capacity: Some(CapacitySearch { goodput: 0.95, start_rate: 4.0, probes: 9 }),
            slo: Slo::parse("ttft_ms=500").ok(),
            arrival: Arrival::Poisson,
            ..SweepSpec::default()
        };
        assert_eq!(Fields::of(&search).spec().unwrap(), search);
        // A finished search's spec holds its probes; the form starts a new search.
        let finished = SweepSpec { request_rates: vec![4.0, 8.0], ..search.clone() };
        assert_eq!(Fields::of(&finished).spec().unwrap(), search);
        let mut fields = Fields::of(&search);
        fields.goodput = "most".into();
        fields.slo_ttft = String::new();
        let problems = fields.spec().unwrap_err();
        assert!(problems.iter().any(|p| p.contains("goodput target")), "{problems:?}");
        fields.goodput = "0.9".into();
        let problems = fields.spec().unwrap_err();
        assert!(problems.iter().any(|p| p.contains("needs objectives")), "{problems:?}");
        fields.load = LoadMode::Rates;
        assert!(fields.spec().unwrap().capacity.is_none());
    }

    #[test]
    fn a_model_must_be_asked_the_way_it_answers() {
        let model = |name: &str, streaming: Option<bool>| ModelChoice {
            name: name.into(),
            version: None,
            state: "READY".into(),
            ready: true,
            reason: None,
            input_style: Some(InputStyle::Vllm),
            streaming,
            problem: None,
        };
        let models = [model("llm", Some(true)), model("unary", Some(false)), model("loading", None)];
        let spec = |name: &str, streaming: bool| SweepSpec { model: name.into(), streaming, ..SweepSpec::default() };
        assert_eq!(model_mismatch(&spec("llm", true), &models), None);
        assert_eq!(model_mismatch(&spec("unary", false), &models), None);
        assert_eq!(model_mismatch(&spec("loading", false), &models), None, "unknown: the server decides");
        let problem = model_mismatch(&spec("unary", true), &models).unwrap();
        assert!(problem.contains("unary is not decoupled") && problem.contains("untick Streaming"), "{problem}");
        let problem = model_mismatch(&spec("llm", false), &models).unwrap();
        assert!(problem.contains("tick Streaming"), "{problem}");
        assert_eq!(model_label(&models[1]), "unary (vllm) [no streaming]");
    }
}
