//! Reads perf_analyzer's profile export (the file the guide's workflow leaves behind) as a
//! tokenscope run: requests grouped by prompt length, taken from their inputs. Triton's
//! requests list tensors; OpenAI-compatible ones (perf_analyzer's OpenAI service kind, as
//! GenAI-Perf runs it) their JSON body and the answer's bytes ([`openai`]). A tokenscope
//! run.json reads as itself ([`file_to_report`]).

mod openai;

use std::borrow::Cow;

use serde_json::Value;
use shared::Protocol;
use shared::prompt::word_count;
use shared::record::Arena;
use shared::{
    InputStyle, RequestRecord, ResponseRecord, Responses, RunReport, RunStatus, SweepSpec, TokenCountSource, limits,
};

use crate::convention::{
    Convention, MaxTokensInput, NewText, RECEIVE_TIME_KEY, SEND_TIME_KEY, TextForm, read_sampling, tokens_without_count,
};
use crate::export::profile::{self, ProfileFile, Tensors};
use crate::protocol::{Fit, Usage, fit_total};

/// Why a file could not be read as a run.
#[derive(Debug, thiserror::Error)]
#[error("{source_name} is not {kind}: {why}")]
pub struct ImportError {
    source_name: String,
    /// What the file was read as.
    kind: &'static str,
    why: String,
}

const PROFILE: &str = "a perf_analyzer profile export";
const RUN_JSON: &str = "a tokenscope run.json";
const RUN_JSON_WITHIN_LIMITS: &str = "a run within tokenscope's limits";
const PROFILE_WITHIN_LIMITS: &str = "a profile export within tokenscope's limits";

/// Reads a file a run can be opened from: tokenscope's run.json (as `tokenscope sweep --out`
/// and a run's `run.json` export write it), or perf_analyzer's profile export. A run.json
/// of a run that never ended (its writer was killed) reads as interrupted. A run beyond
/// any of `shared::limits`'s caps is refused, naming the cap.
pub fn file_to_report(file: Value, source_name: &str) -> Result<RunReport, ImportError> {
    let fail = |kind, why: String| ImportError { source_name: source_name.into(), kind, why };
    match (file.get("spec"), file.get("experiments")) {
        (Some(_), None) => {
            let report: RunReport = serde_json::from_value(file).map_err(|err| fail(RUN_JSON, err.to_string()))?;
            run_json_read(report, source_name)
        }
        (None, None) => Err(neither(source_name)),
        _ => profile_to_report(&file, source_name),
    }
}

/// [`file_to_report`] of a file's bytes, which it takes and drops as soon as it can: a
/// run.json or a profile export is read straight into its types, and only then converted.
pub fn bytes_to_report(bytes: impl AsRef<[u8]>, source_name: &str) -> Result<RunReport, ImportError> {
    /// Which kind of file it is, found without building anything.
    #[derive(serde::Deserialize)]
    struct Kind {
        spec: Option<serde::de::IgnoredAny>,
        experiments: Option<serde::de::IgnoredAny>,
    }
    let fail = |kind, why: String| ImportError { source_name: source_name.into(), kind, why };
    let not_json = |err: serde_json::Error| fail("a run", format!("it is not a JSON object: {err}"));
    let kind: Kind = serde_json::from_slice(bytes.as_ref()).map_err(not_json)?;
    match (kind.spec, kind.experiments) {
        (Some(_), None) => {
            let report: RunReport =
                serde_json::from_slice(bytes.as_ref()).map_err(|err| fail(RUN_JSON, err.to_string()))?;
            drop(bytes);
            run_json_read(report, source_name)
        }
        (None, None) => Err(neither(source_name)),
        _ => {
            let file = read_profile(&mut serde_json::Deserializer::from_slice(bytes.as_ref()), source_name)?;
            drop(bytes);
            profile_file_to_report(file, source_name)
        }
    }
}

fn neither(source_name: &str) -> ImportError {
    ImportError {
        source_name: source_name.into(),
        kind: "a run",
        why: "it has neither a \"spec\" (tokenscope's run.json) nor an \"experiments\" list (perf_analyzer's \
              profile export)"
            .into(),
    }
}

/// A run.json as read: an unfinished run reads as interrupted; one beyond a cap is refused.
fn run_json_read(mut report: RunReport, source_name: &str) -> Result<RunReport, ImportError> {
    if let Some(why) = limits::report_problem(&report) {
        return Err(ImportError { source_name: source_name.into(), kind: RUN_JSON_WITHIN_LIMITS, why });
    }
    if report.status == RunStatus::Running {
        report.status = RunStatus::Interrupted;
    }
    Ok(report)
}

/// Reads a profile export into its types; a value of the wrong type is named by its place
/// in the file.
fn read_profile<'de, D: serde::Deserializer<'de>>(file: D, source_name: &str) -> Result<ProfileFile, ImportError> {
    serde_path_to_error::deserialize(file).map_err(|err| {
        let why = match err.path().to_string() {
            path if path == "." => err.inner().to_string(),
            path => format!("{path}: {}", err.inner()),
        };
        ImportError { source_name: source_name.into(), kind: PROFILE, why }
    })
}

/// The prompt of a request and the style its inputs are named in: the convention whose prompt
/// input it has; between conventions naming their prompt alike, the one whose integer
/// max-tokens input it has.
fn prompt(inputs: &Tensors) -> Option<(&str, InputStyle)> {
    Convention::ALL
        .iter()
        .filter_map(|c| {
            let text = inputs.get(c.prompt)?.first_str()?;
            match c.max_tokens {
                MaxTokensInput::Int(name) if !inputs.contains_key(name) => None,
                MaxTokensInput::Int(_) => Some((0, text, c.style)),
                MaxTokensInput::Sampling(_) => Some((1, text, c.style)),
            }
        })
        .min_by_key(|&(rank, ..)| rank)
        .map(|(_, text, style)| (text, style))
}

/// The prompt inputs a request may have, for messages: "a or b".
fn prompt_inputs() -> String {
    let mut names: Vec<&str> = Vec::new();
    for c in Convention::ALL {
        if !names.contains(&c.prompt) {
            names.push(c.prompt);
        }
    }
    names.join(" or ")
}

/// `max_tokens` and `ignore_eos` as the request asked for them: an input of their own, or
/// inside the sampling-parameters JSON.
fn asked_limits(inputs: &Tensors) -> (Option<u32>, bool) {
    let sampling = Convention::ALL
        .iter()
        .find_map(|c| match c.max_tokens {
            MaxTokensInput::Sampling(name) => inputs.get(name)?.first_str(),
            MaxTokensInput::Int(_) => None,
        })
        .and_then(|text| read_sampling(text.as_bytes()).ok());
    let own = Convention::ALL.iter().find_map(|c| match c.max_tokens {
        MaxTokensInput::Int(name) => inputs.get(name)?.first_u64(),
        MaxTokensInput::Sampling(_) => None,
    });
    let max_tokens = own.or_else(|| sampling.as_ref()?.max_tokens.as_ref()?.first_u64()).map(|n| n as u32);
    let ignore_eos = sampling.as_ref().and_then(|s| s.ignore_eos.as_ref()?.as_bool()).unwrap_or(false);
    (max_tokens, ignore_eos)
}

/// Whether the request asked to stream, by any convention's stream input; true when it does
/// not say.
fn asked_streaming(inputs: &Tensors) -> bool {
    Convention::ALL.iter().find_map(|c| inputs.get(c.stream)?.first_bool()).unwrap_or(true)
}

/// The text a response carries, if the export kept it, and how it runs, by the convention
/// whose text output holds it.
fn output_text(outputs: &mut Tensors) -> Option<(String, TextForm)> {
    Convention::ALL.iter().find_map(|c| match outputs.remove(c.text_output)? {
        profile::TensorValue::Text(text) => Some((text, c.text_form)),
        _ => None,
    })
}

/// How far from its request's send time a server time may lie and still be believed.
const PLAUSIBLE_NS: i64 = 3_600 * 1_000_000_000;

/// A time the server wrote into a response's outputs (`send_ns`, `recv_ns`, as tokenscope's
/// test models do), for a request sent at `sent`. For a response that lacks the output,
/// perf_analyzer 2.51 writes whatever its buffer held (seen: 0, and numbers decades away), so
/// only a time within an hour of the request counts.
fn server_time(outputs: &Tensors, key: &str, sent: i64) -> Option<i64> {
    plausible(outputs.get(key)?.first_i64()?, sent)
}

/// A server's time `ns` if it lies within an hour of its request's send time `sent`.
fn plausible(ns: i64, sent: i64) -> Option<i64> {
    (ns > 0 && ns.abs_diff(sent) < PLAUSIBLE_NS as u64).then_some(ns)
}

/// One request as read from the file.
struct RawRequest {
    words: u32,
    send: i64,
    responses: Vec<RawResponse>,
    /// The server's counts, where the answer gave them (OpenAI's usage).
    usage: Option<Usage>,
    /// Why the request failed, where its answer says (an OpenAI error event, a cut stream).
    error: Option<String>,
    /// Why the server stopped generating, where its answer says (OpenAI's `finish_reason`).
    finish_reason: Option<String>,
    /// An OpenAI answer that reached its `[DONE]` without saying why it stopped.
    unexplained: bool,
}

struct RawResponse {
    at: i64,
    /// The text, and how it runs.
    text: Option<(String, TextForm)>,
    /// The server's send time, and when it says it received the request.
    sent: Option<i64>,
    received: Option<i64>,
}

/// What the requests asked for, as the last one read says, and the highest concurrency.
struct Asked {
    style: InputStyle,
    concurrency: u32,
    limits: (Option<u32>, bool),
    streaming: bool,
    /// OpenAI-compatible requests: whether they were chats, and the model they named.
    openai: Option<(bool, Option<String>)>,
}

/// The errors of one file.
struct Errors<'a> {
    source_name: &'a str,
}

impl Errors<'_> {
    /// Not a profile export: `why`.
    fn fail(&self, why: String) -> ImportError {
        ImportError { source_name: self.source_name.into(), kind: PROFILE, why }
    }

    /// Beyond one of tokenscope's caps: `why`.
    fn over(&self, why: String) -> ImportError {
        ImportError { source_name: self.source_name.into(), kind: PROFILE_WITHIN_LIMITS, why }
    }
}

/// Converts a profile export into a run. `source_name` names the file in messages and as the
/// run's target. Times keep perf_analyzer's nanoseconds, counted from its first send.
pub fn profile_to_report(export: &Value, source_name: &str) -> Result<RunReport, ImportError> {
    profile_file_to_report(read_profile(export, source_name)?, source_name)
}

/// [`profile_to_report`] of a file read into its types.
fn profile_file_to_report(file: ProfileFile, source_name: &str) -> Result<RunReport, ImportError> {
    let errors = Errors { source_name };
    let ProfileFile { experiments, version, endpoint, .. } = file;
    let experiments = experiments.ok_or_else(|| errors.fail("it has no \"experiments\" list".into()))?;
    let (mut raw, asked) = read_requests(experiments, &errors)?;
    judge_unexplained(&mut raw);
    if raw.is_empty() {
        return Err(errors.fail("it holds no requests".into()));
    }
    let base = raw.iter().map(|r| r.send).min().expect("requests");
    let mut lengths: Vec<u32> = raw.iter().map(|r| r.words).collect();
    lengths.sort_unstable();
    lengths.dedup();
    let (requests, seqs) = records(raw, &lengths, base, asked.streaming);
    let (protocol, chat, model) = match asked.openai {
        Some((chat, model)) => (Protocol::OpenAi, chat, model),
        None => (Protocol::TritonGrpc, false, endpoint.filter(|e| !e.is_empty())),
    };
    let spec = SweepSpec {
        target: source_name.into(),
        protocol,
        chat,
        model: model.unwrap_or_else(|| "perf_analyzer import".into()),
        input_style: asked.style,
        max_tokens: asked.limits.0.unwrap_or(SweepSpec::default().max_tokens),
        ignore_eos: asked.limits.1,
        streaming: asked.streaming,
        prompt_lengths: lengths,
        requests: seqs.iter().copied().max().unwrap_or(0),
        concurrency: asked.concurrency,
        ..SweepSpec::default()
    };
    let tool = version.map_or("perf_analyzer".into(), |v| format!("imported from {v}"));
    let mut report = RunReport { status: RunStatus::Completed, requests, ..RunReport::new(tool, spec, base) };
    // Checked before any statistic is computed from it.
    if let Some(why) = limits::report_problem(&report) {
        return Err(errors.over(why));
    }
    report.recompute_points();
    Ok(report)
}

/// Fails each OpenAI answer that reached its `[DONE]` without saying why it stopped, as cut
/// short, as the engine judges a live one, where the file shows that its answers say why they
/// stop: some answer in it does. A file where none does holds no such evidence (tokenscope
/// wrote its exports without the reasons before it kept them), and its answers stand.
fn judge_unexplained(raw: &mut [RawRequest]) {
    if raw.iter().any(|r| r.finish_reason.is_some()) {
        for r in raw.iter_mut().filter(|r| r.unexplained) {
            r.error.get_or_insert_with(crate::protocol::openai::cut_short);
        }
    }
}

/// Every request of every experiment, with what they asked for.
fn read_requests(
    experiments: Vec<profile::Experiment>,
    errors: &Errors,
) -> Result<(Vec<RawRequest>, Asked), ImportError> {
    let mut raw = Vec::new();
    let mut asked =
        Asked { style: InputStyle::Vllm, concurrency: 1, limits: (None, false), streaming: true, openai: None };
    for (e, experiment) in experiments.into_iter().enumerate() {
        if let Some(value) = experiment.experiment.and_then(|load| load.value?.as_u64()) {
            asked.concurrency = asked.concurrency.max(value as u32);
        }
        let requests =
            experiment.requests.ok_or_else(|| errors.fail(format!("experiment {e} has no \"requests\" list")))?;
        for (i, request) in requests.into_iter().enumerate() {
            let request = read_request(request, raw.len(), &mut asked, errors, &|what| {
                format!("request {i} of experiment {e} {what}")
            })?;
            raw.push(request);
        }
    }
    Ok((raw, asked))
}

/// One request, checked against the caps with `held` requests read before it; what it asked
/// for goes to `asked`. `at` puts the request's place in front of a complaint.
fn read_request(
    request: profile::Request,
    held: usize,
    asked: &mut Asked,
    errors: &Errors,
    at: &dyn Fn(&str) -> String,
) -> Result<RawRequest, ImportError> {
    let lacks = |what: &str| errors.fail(at(&format!("has no {what}")));
    let profile::Request { timestamp, request_inputs, response_timestamps, response_outputs } = request;
    let send = timestamp.ok_or_else(|| lacks("\"timestamp\""))?;
    let inputs = request_inputs.ok_or_else(|| lacks("\"request_inputs\""))?;
    // An OpenAI request's answer is read whole; `None` for a Triton request.
    let (text, mut answer) = match openai::Payload::of(&inputs) {
        Some(payload) => {
            let payload = payload.map_err(|why| errors.fail(at(&why)))?;
            (asked.limits, asked.streaming) = ((payload.max_tokens, payload.ignore_eos), payload.stream);
            asked.openai = Some((payload.chat, payload.model));
            (Cow::Owned(payload.prompt), Some(openai::Answer::new(payload.stream)))
        }
        None => {
            let (text, style) = prompt(&inputs).ok_or_else(|| lacks(&format!("{} input", prompt_inputs())))?;
            (asked.style, asked.limits, asked.streaming) = (style, asked_limits(&inputs), asked_streaming(&inputs));
            (Cow::Borrowed(text), None)
        }
    };
    if text.len() as u64 > limits::MAX_PROMPT_BYTES {
        let why =
            format!("has a prompt of {} bytes, above the limit of {} bytes", text.len(), limits::MAX_PROMPT_BYTES);
        return Err(errors.over(at(&why)));
    }
    let times = response_timestamps.ok_or_else(|| lacks("\"response_timestamps\""))?;
    if times.len() > limits::MAX_RESPONSES_PER_REQUEST {
        let why = format!("has {} responses, above the limit of {}", times.len(), limits::MAX_RESPONSES_PER_REQUEST);
        return Err(errors.over(at(&why)));
    }
    if held as u64 >= limits::MAX_REQUESTS {
        return Err(errors.over(format!("it holds more than the limit of {} requests", limits::MAX_REQUESTS)));
    }
    let mut outputs = response_outputs.unwrap_or_default().into_iter();
    let responses = times
        .into_iter()
        .map(|at| {
            let mut output = outputs.next();
            if let Some(answer) = answer.as_mut() {
                let read = output.as_ref().and_then(|o| answer.read(o));
                let sent = read.as_ref().and_then(|r| plausible(r.sent?, send));
                return RawResponse { at, text: read.map(|r| (r.text, TextForm::Delta)), sent, received: None };
            }
            let text = output.as_mut().and_then(output_text);
            let sent = output.as_ref().and_then(|o| server_time(o, SEND_TIME_KEY, send));
            let received = output.as_ref().and_then(|o| server_time(o, RECEIVE_TIME_KEY, send));
            RawResponse { at, text, sent, received }
        })
        .collect();
    let openai::Ending { usage, error, finish_reason, unexplained } =
        answer.map(openai::Answer::finish).unwrap_or_default();
    Ok(RawRequest { words: word_count(&text) as u32, send, responses, usage, error, finish_reason, unexplained })
}

/// The requests' records in order of sending, each numbered within its prompt length (one
/// of `lengths`), and how many each length has.
fn records(mut raw: Vec<RawRequest>, lengths: &[u32], base: i64, streaming: bool) -> (Vec<RequestRecord>, Vec<u32>) {
    let mut seqs = vec![0u32; lengths.len()];
    raw.sort_by_key(|r| r.send);
    let mut arena = Arena::default();
    let requests = raw
        .into_iter()
        .map(|r| {
            let point = lengths.binary_search(&r.words).expect("listed") as u32;
            let seq = seqs[point as usize];
            seqs[point as usize] += 1;
            record(r, point, seq, base, streaming, &mut arena)
        })
        .collect();
    (requests, seqs)
}

/// A request's record, its times counted from `base`.
fn record(r: RawRequest, point: u32, seq: u32, base: i64, streaming: bool, arena: &mut Arena) -> RequestRecord {
    let offset = |t: i64| t.saturating_sub(base).max(0) as u64;
    let received = r.responses.iter().find_map(|c| c.received);
    // The texts as the server sent them, prompt and all: only cumulative text is cut to
    // what is new.
    let mut new_text = NewText::new(None);
    let mut responses = Responses::default();
    for RawResponse { at, text, sent, .. } in r.responses {
        let text = text.map(|(text, form)| new_text.take(text, form));
        // Without outputs, every response counts as a token, as perf_analyzer counts them;
        // with them, as a response without a server count does.
        let tokens = text.as_deref().map_or(1, |t| tokens_without_count(t, !streaming).0);
        let text = text.as_deref().unwrap_or_default();
        responses.push(ResponseRecord { at_ns: offset(at), tokens, text, server_send_unix_ns: sent });
    }
    let mut token_source = if streaming { TokenCountSource::Responses } else { TokenCountSource::Words };
    // The server's total, as the engine takes it: for an answer that did not fail.
    let total = r.usage.filter(|_| r.error.is_none()).and_then(|u| u.completion_tokens);
    match total.map(|total| fit_total(&responses, total)) {
        Some(Fit::Confirms) => token_source = TokenCountSource::Server,
        Some(Fit::Spread(counted)) => (responses, token_source) = (counted, TokenCountSource::Server),
        Some(Fit::Unusable) | None => {}
    }
    responses.keep_in(arena);
    let last = responses.last().map(|c| c.at_ns);
    let mut record = RequestRecord {
        point,
        seq,
        warmup: false,
        id: format!("{point}-{seq}"),
        prompt_words: r.words,
        num_input_tokens: r.usage.and_then(|u| u.prompt_tokens),
        send_ns: offset(r.send),
        intended_ns: None,
        server_recv_unix_ns: received,
        responses,
        final_ns: last,
        token_source,
        error: r.error,
        finish_reason: r.finish_reason,
    };
    record.fail_without_token();
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// An OpenAI profile export of two streamed answers that reached their `[DONE]`; the
    /// first says why it stopped when `reason` is given, the second never does.
    fn two_answers(reason: Option<&str>) -> Value {
        let finish = reason.map_or(String::new(), |r| format!(",\"finish_reason\":\"{r}\""));
        let answer = |ts: i64, finish: &str| {
            json!({ "timestamp": ts,
                "request_inputs": { "payload": "{\"prompt\":\"a b\",\"max_tokens\":1,\"stream\":true}" },
                "response_timestamps": [ts + 1_000, ts + 2_000],
                "response_outputs": [
                    { "response": format!("data: {{\"choices\":[{{\"index\":0,\"text\":\"x\"{finish}}}]}}\n\n") },
                    { "response": "data: [DONE]\n\n" },
                ] })
        };
        json!({ "service_kind": "openai", "endpoint": "v1/completions",
            "experiments": [{ "experiment": { "mode": "concurrency", "value": 1 },
                "requests": [answer(1_000, &finish), answer(10_000, "")] }] })
    }

    #[test]
    fn answers_without_a_reason_are_cut_short_where_the_file_gives_reasons() {
        let errors = |export: &Value| -> Vec<Option<String>> {
            profile_to_report(export, "x.json").unwrap().requests.into_iter().map(|r| r.error).collect()
        };
        // Written before tokenscope kept reasons: no answer says, and none is held to it.
        assert_eq!(errors(&two_answers(None)), [None, None]);
        let reasons = profile_to_report(&two_answers(Some("length")), "x.json").unwrap();
        let reasons: Vec<Option<&str>> = reasons.requests.iter().map(|r| r.finish_reason.as_deref()).collect();
        assert_eq!(reasons, [Some("length"), None]);
        assert_eq!(errors(&two_answers(Some("length"))), [None, Some(crate::protocol::openai::cut_short())]);
    }

    #[test]
    fn requests_group_by_prompt_length_and_empty_finals_are_not_tokens() {
        let export = json!({
            "version": "2.51",
            "experiments": [{
                "experiment": { "mode": "concurrency", "value": 2 },
                "requests": [
                    { "timestamp": 1000, "request_inputs": { "text_input": "a b c", "stream": true },
                      "response_timestamps": [4000, 5000, 5100],
                      "response_outputs": [{ "text_output": "x", "send_ns": 3500, "recv_ns": 1200 }, { "text_output": "y", "send_ns": [4800] },
                                           { "text_output": "", "send_ns": 139_882_655_645_840_i64, "recv_ns": 0 }] },
                    { "timestamp": 2000, "request_inputs": { "text_input": ["a b c d e"] },
                      "response_timestamps": [9000], "response_outputs": [{ "text_output": "z" }] },
                    { "timestamp": 3000, "request_inputs": { "text_input": "c b a" },
                      "response_timestamps": [5000, 7000] },
                ],
            }],
        });
        let report = profile_to_report(&export, "pa.json").unwrap();
        assert_eq!(report.spec.prompt_lengths, vec![3, 5]);
        assert_eq!((report.spec.concurrency, report.spec.requests), (2, 2));
        assert_eq!(report.started_unix_ns, 1000);
        let short = &report.points[0];
        assert_eq!(short.count, 2);
        // TTFT: 3000 ns and 2000 ns.
        assert_eq!(short.ttft_ms.as_ref().unwrap().mean, 0.0025);
        // The empty final is not a token; responses without outputs each count as one.
        assert_eq!(short.output_tokens.as_ref().unwrap().mean, 2.0);
        assert_eq!(report.points[1].ttft_ms.as_ref().unwrap().mean, 0.007);
        // The model's send times, where it wrote them: arrival minus send, in ms.
        assert_eq!(report.arrival_delays_ms(), vec![0.0002, 0.0005]);
        let received: Vec<_> = report.requests.iter().map(|r| r.server_recv_unix_ns).collect();
        assert_eq!(received, vec![Some(1200), None, None]);
    }

    #[test]
    fn cumulative_text_counts_only_new_text() {
        let export = json!({ "experiments": [{ "requests": [
            { "timestamp": 0, "request_inputs": { "PROMPT": "hi" },
              "response_timestamps": [10, 20, 30],
              "response_outputs": [{ "TEXT": "hi there" }, { "TEXT": "hi there" }, { "TEXT": "hi there you" }] },
        ]}]});
        let report = profile_to_report(&export, "f").unwrap();
        assert_eq!(report.spec.input_style, InputStyle::Tutorial);
        let inputs = |value: Value| -> Tensors { serde_json::from_value(value).unwrap() };
        assert_eq!(
            asked_limits(&inputs(json!({ "sampling_parameters": "{\"max_tokens\": 256, \"ignore_eos\": true}" }))),
            (Some(256), true)
        );
        assert_eq!(asked_limits(&inputs(json!({ "max_tokens": [8] }))), (Some(8), false));
        let tokens: Vec<u32> = report.requests[0].responses.iter().map(|r| r.tokens).collect();
        assert_eq!(tokens, vec![1, 0, 1]);
    }

    #[test]
    fn without_streaming_the_one_response_counts_its_words() {
        let export = json!({ "experiments": [{ "requests": [
            { "timestamp": 0, "request_inputs": { "text_input": "hi", "stream": [false] },
              "response_timestamps": [50], "response_outputs": [{ "text_output": " one two three" }] },
        ]}]});
        let report = profile_to_report(&export, "f").unwrap();
        assert!(!report.spec.streaming);
        assert_eq!(report.requests[0].output_tokens(), 3);
        assert_eq!(report.requests[0].token_source, TokenCountSource::Words);
    }

    /// JSON values built from the names the two formats use, so that generated files get
    /// deep into both readers.
    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let number = prop_oneof![
            any::<u32>().prop_map(|n| json!(n)),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            Just(json!(4_294_967_295u64)),
            Just(json!(0)),
        ];
        let leaf = prop_oneof![
            number,
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
            prop::sample::select(vec!["a b c", "", "hi there", "{\"max_tokens\": 4}"]).prop_map(|s| json!(s)),
        ];
        let keys = prop::sample::select(vec![
            "spec",
            "experiments",
            "requests",
            "experiment",
            "value",
            "timestamp",
            "request_inputs",
            "text_input",
            "PROMPT",
            "stream",
            "max_tokens",
            "sampling_parameters",
            "response_timestamps",
            "response_outputs",
            "text_output",
            "TEXT",
            "send_ns",
            "recv_ns",
            "prompt_lengths",
            "concurrency",
            "tokens",
            "prompt_words",
            "responses",
            "at_ns",
            "point",
            "seq",
        ]);
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(keys.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            ]
        })
    }

    /// A valid run.json of two requests, whose numbers the test below replaces.
    fn small_run() -> Value {
        json!({
            "tool": "t", "started_unix_ns": 0, "model": null, "status": { "state": "completed" },
            "prompt_lengths_approximate": true, "points": [],
            "spec": { "model": "m", "prompt_lengths": [16], "requests": 2, "concurrency": 1, "max_tokens": 4 },
            "requests": [
                { "point": 0, "seq": 0, "warmup": false, "id": "0-0", "prompt_words": 16, "send_ns": 0,
                  "responses": [{ "at_ns": 10, "tokens": 1 }, { "at_ns": 20, "tokens": 2 }] },
                { "point": 0, "seq": 1, "warmup": false, "id": "0-1", "prompt_words": 16, "send_ns": 5,
                  "responses": [{ "at_ns": 30, "tokens": 1 }] },
            ],
        })
    }

    /// Whatever was read is within every cap, and its statistics and exports can be made.
    fn accepted_is_within_caps(result: Result<RunReport, ImportError>) {
        if let Ok(report) = result {
            assert_eq!(limits::report_problem(&report), None);
            let mut again = report.clone();
            again.recompute_points();
            let _ = crate::export::csv::requests_csv(&report);
            let _ = shared::live::events_from_report("r", &report, false);
        }
    }

    proptest::proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Any JSON, as bytes or as a tree, is read or refused without a panic.
        #[test]
        fn any_json_is_read_or_refused_cleanly(file in arbitrary_json()) {
            accepted_is_within_caps(bytes_to_report(file.to_string(), "f"));
            accepted_is_within_caps(file_to_report(file, "f"));
        }

        /// A run.json with any number in any of its counts and times.
        #[test]
        fn a_run_json_with_any_numbers_is_read_or_refused_cleanly(
            at in 0usize..10,
            value in prop_oneof![any::<u32>().prop_map(u64::from), any::<u64>(), Just(u64::from(u32::MAX))],
        ) {
            let mut file = small_run();
            let slot = match at {
                0 => &mut file["requests"][0]["responses"][1]["tokens"],
                1 => &mut file["requests"][0]["prompt_words"],
                2 => &mut file["requests"][1]["seq"],
                3 => &mut file["requests"][1]["point"],
                4 => &mut file["requests"][0]["send_ns"],
                5 => &mut file["requests"][0]["responses"][0]["at_ns"],
                6 => &mut file["spec"]["concurrency"],
                7 => &mut file["spec"]["requests"],
                8 => &mut file["spec"]["prompt_lengths"][0],
                _ => &mut file["started_unix_ns"],
            };
            *slot = json!(value);
            accepted_is_within_caps(bytes_to_report(file.to_string(), "run.json"));
        }
    }

    #[test]
    fn other_files_are_refused_with_a_reason() {
        let err = profile_to_report(&json!({ "points": [] }), "run.json").unwrap_err();
        assert_eq!(err.to_string(), "run.json is not a perf_analyzer profile export: it has no \"experiments\" list");
        let err =
            profile_to_report(&json!({ "experiments": [{ "requests": [{ "timestamp": 1 }] }] }), "x").unwrap_err();
        assert!(err.to_string().contains("request 0 of experiment 0 has no \"request_inputs\""), "{err}");
        let file = json!({ "experiments": [{ "requests": [{ "timestamp": "soon" }] }] });
        let err = profile_to_report(&file, "x").unwrap_err().to_string();
        assert!(err.contains("experiments[0].requests[0].timestamp: invalid type: string \"soon\""), "{err}");
    }

    #[test]
    fn a_run_json_reads_as_itself_and_other_files_say_what_they_lack() {
        let mut report = RunReport {
            status: RunStatus::Completed,
            requests: Vec::new(),
            ..RunReport::new(
                "tokenscope test".into(),
                SweepSpec { model: "m".into(), prompt_lengths: vec![4], ..SweepSpec::default() },
                1_700_000_000_000_000_000,
            )
        };
        let read = |report: &RunReport| file_to_report(serde_json::to_value(report).unwrap(), "run.json");
        assert_eq!(read(&report).unwrap(), report);
        report.status = RunStatus::Running;
        assert_eq!(read(&report).unwrap().status, RunStatus::Interrupted, "a run.json of a run cut short");

        let mut broken = serde_json::to_value(&report).unwrap();
        broken["requests"] = json!("none");
        let err = file_to_report(broken, "run.json").unwrap_err().to_string();
        assert!(err.starts_with("run.json is not a tokenscope run.json: "), "{err}");
        let err = file_to_report(json!({ "runs": [] }), "x.json").unwrap_err().to_string();
        assert!(err.contains("x.json is not a run") && err.contains("\"experiments\""), "{err}");
        let err = file_to_report(json!({ "experiments": 3 }), "pa.json").unwrap_err().to_string();
        assert!(err.starts_with("pa.json is not a perf_analyzer profile export"), "{err}");
    }
}
