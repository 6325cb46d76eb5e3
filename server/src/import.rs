//! Reads perf_analyzer's profile export (the file the guide's workflow leaves behind) as a
//! tokenscope run: requests grouped by prompt length, taken from their inputs. A tokenscope
//! run.json reads as itself ([`file_to_report`]).

use serde_json::Value;
use shared::prompt::word_count;
use shared::record::Arena;
use shared::{
    InputStyle, RequestRecord, ResponseRecord, Responses, RunReport, RunStatus, SweepSpec, TokenCountSource, limits,
};

use crate::style::{RECEIVE_TIME_KEY, SEND_TIME_KEY};

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
/// run.json is read straight into its types, a profile export into a JSON tree, and only
/// then converted.
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
            let file: Value = serde_json::from_slice(bytes.as_ref()).map_err(not_json)?;
            drop(bytes);
            profile_to_report(&file, source_name)
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

/// The prompt of a request, by whichever input name its model uses.
fn prompt(inputs: &Value) -> Option<(&str, InputStyle)> {
    [("text_input", InputStyle::Vllm), ("PROMPT", InputStyle::Tutorial)].into_iter().find_map(|(name, style)| {
        let value = inputs.get(name)?;
        // Either the string itself or a one-element list of it.
        let text = value.as_str().or_else(|| value.as_array()?.first()?.as_str())?;
        let style =
            if style == InputStyle::Vllm && inputs.get("max_tokens").is_some() { InputStyle::Trtllm } else { style };
        Some((text, style))
    })
}

/// `max_tokens` and `ignore_eos` as the request asked for them: an input of their own, or
/// inside the sampling-parameters JSON.
fn asked_limits(inputs: &Value) -> (Option<u32>, bool) {
    let number = |v: &Value| v.as_u64().or_else(|| v.as_array()?.first()?.as_u64()).map(|n| n as u32);
    let sampling = ["sampling_parameters", "SAMPLING_PARAMETERS"]
        .into_iter()
        .find_map(|name| {
            let v = inputs.get(name)?;
            v.as_str().or_else(|| v.as_array()?.first()?.as_str())
        })
        .and_then(|text| serde_json::from_str::<Value>(text).ok());
    let max_tokens =
        inputs.get("max_tokens").and_then(number).or_else(|| sampling.as_ref()?.get("max_tokens").and_then(number));
    let ignore_eos = sampling.as_ref().and_then(|s| s.get("ignore_eos")?.as_bool()).unwrap_or(false);
    (max_tokens, ignore_eos)
}

/// Whether the request asked to stream (`stream` or `STREAM`); true when it does not say.
fn asked_streaming(inputs: &Value) -> bool {
    ["stream", "STREAM"]
        .into_iter()
        .find_map(|name| {
            let v = inputs.get(name)?;
            v.as_bool().or_else(|| v.as_array()?.first()?.as_bool())
        })
        .unwrap_or(true)
}

/// The text a response carries, if the export kept it, and whether it is cumulative (the
/// 2023 tutorial model's `TEXT` repeats everything so far, prompt included).
fn output_text(output: &Value) -> Option<(&str, bool)> {
    [("text_output", false), ("TEXT", true)]
        .into_iter()
        .find_map(|(name, cumulative)| Some((output.get(name)?.as_str()?, cumulative)))
}

/// How far from its request's send time a server time may lie and still be believed.
const PLAUSIBLE_NS: i64 = 3_600 * 1_000_000_000;

/// A time the server wrote into a response's outputs (`send_ns`, `recv_ns`, as tokenscope's
/// test models do), for a request sent at `sent`. For a response that lacks the output,
/// perf_analyzer 2.51 writes whatever its buffer held (seen: 0, and numbers decades away), so
/// only a time within an hour of the request counts.
fn server_time(output: &Value, key: &str, sent: i64) -> Option<i64> {
    let value = output.get(key)?;
    let ns = value.as_i64().or_else(|| value.as_array()?.first()?.as_i64())?;
    (ns > 0 && ns.abs_diff(sent) < PLAUSIBLE_NS as u64).then_some(ns)
}

/// Converts a profile export into a run. `source_name` names the file in messages and as the
/// run's target. Times keep perf_analyzer's nanoseconds, counted from its first send.
pub fn profile_to_report(export: &Value, source_name: &str) -> Result<RunReport, ImportError> {
    let fail = |why: String| ImportError { source_name: source_name.into(), kind: PROFILE, why };
    let over = |why: String| ImportError { source_name: source_name.into(), kind: PROFILE_WITHIN_LIMITS, why };
    let experiments = export
        .get("experiments")
        .and_then(Value::as_array)
        .ok_or_else(|| fail("it has no \"experiments\" list".into()))?;
    struct Raw {
        words: u32,
        send: i64,
        responses: Vec<RawResponse>,
    }
    struct RawResponse {
        at: i64,
        /// The text, and whether it is cumulative.
        text: Option<(String, bool)>,
        /// The server's send time, and when it says it received the request.
        sent: Option<i64>,
        received: Option<i64>,
    }
    let mut raw = Vec::new();
    let mut style = InputStyle::Vllm;
    let mut concurrency = 1;
    let mut limits = (None, false);
    let mut streaming = true;
    for (e, experiment) in experiments.iter().enumerate() {
        if let Some(value) = experiment.pointer("/experiment/value").and_then(Value::as_u64) {
            concurrency = concurrency.max(value as u32);
        }
        let requests = experiment
            .get("requests")
            .and_then(Value::as_array)
            .ok_or_else(|| fail(format!("experiment {e} has no \"requests\" list")))?;
        for (i, request) in requests.iter().enumerate() {
            let at = |what: &str| fail(format!("request {i} of experiment {e} has no {what}"));
            let send = request.get("timestamp").and_then(Value::as_i64).ok_or_else(|| at("\"timestamp\""))?;
            let inputs = request.get("request_inputs").ok_or_else(|| at("\"request_inputs\""))?;
            let (text, found) = prompt(inputs).ok_or_else(|| at("text_input or PROMPT input"))?;
            if text.len() as u64 > limits::MAX_PROMPT_BYTES {
                return Err(over(format!(
                    "request {i} of experiment {e} has a prompt of {} bytes, above the limit of {} bytes",
                    text.len(),
                    limits::MAX_PROMPT_BYTES
                )));
            }
            style = found;
            limits = asked_limits(inputs);
            streaming = asked_streaming(inputs);
            let times = request
                .get("response_timestamps")
                .and_then(Value::as_array)
                .ok_or_else(|| at("\"response_timestamps\""))?;
            if times.len() > limits::MAX_RESPONSES_PER_REQUEST {
                return Err(over(format!(
                    "request {i} of experiment {e} has {} responses, above the limit of {}",
                    times.len(),
                    limits::MAX_RESPONSES_PER_REQUEST
                )));
            }
            if raw.len() as u64 >= limits::MAX_REQUESTS {
                return Err(over(format!("it holds more than the limit of {} requests", limits::MAX_REQUESTS)));
            }
            let outputs = request.get("response_outputs").and_then(Value::as_array);
            let responses = times
                .iter()
                .enumerate()
                .map(|(k, t)| {
                    let output = outputs.and_then(|o| o.get(k));
                    let text = output.and_then(output_text).map(|(t, c)| (t.to_string(), c));
                    let sent = output.and_then(|o| server_time(o, SEND_TIME_KEY, send));
                    let received = output.and_then(|o| server_time(o, RECEIVE_TIME_KEY, send));
                    t.as_i64()
                        .map(|at| RawResponse { at, text, sent, received })
                        .ok_or_else(|| at("numeric response timestamps"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            raw.push(Raw { words: word_count(text) as u32, send, responses });
        }
    }
    if raw.is_empty() {
        return Err(fail("it holds no requests".into()));
    }
    let base = raw.iter().map(|r| r.send).min().expect("requests");
    let mut lengths: Vec<u32> = raw.iter().map(|r| r.words).collect();
    lengths.sort_unstable();
    lengths.dedup();
    let mut seqs = vec![0u32; lengths.len()];
    raw.sort_by_key(|r| r.send);
    let mut arena = Arena::default();
    let requests: Vec<RequestRecord> = raw
        .into_iter()
        .map(|r| {
            let point = lengths.binary_search(&r.words).expect("listed") as u32;
            let seq = seqs[point as usize];
            seqs[point as usize] += 1;
            let offset = |t: i64| t.saturating_sub(base).max(0) as u64;
            let mut previous = String::new();
            let mut responses = Responses::default();
            for RawResponse { at, text, sent, .. } in &r.responses {
                // Cumulative text: only what is new counts.
                let text = match text {
                    Some((text, true)) => {
                        let new = text.strip_prefix(previous.as_str()).unwrap_or(text);
                        previous.clone_from(text);
                        Some(new)
                    }
                    Some((text, false)) => Some(text.as_str()),
                    None => None,
                };
                // Without outputs, every response counts as a token, as perf_analyzer counts
                // them; without streaming, the one response's words are the count.
                let tokens = match text {
                    None => 1,
                    Some(t) if !streaming && !t.is_empty() => (t.split_whitespace().count() as u32).max(1),
                    Some(t) => u32::from(!t.is_empty()),
                };
                responses.push(ResponseRecord {
                    at_ns: offset(*at),
                    tokens,
                    text: text.unwrap_or_default(),
                    server_send_unix_ns: *sent,
                });
            }
            responses.keep_in(&mut arena);
            let last = responses.last().map(|c| c.at_ns);
            RequestRecord {
                point,
                seq,
                warmup: false,
                id: format!("{point}-{seq}"),
                prompt_words: r.words,
                num_input_tokens: None,
                send_ns: offset(r.send),
                intended_ns: None,
                server_recv_unix_ns: r.responses.iter().find_map(|c| c.received),
                responses,
                final_ns: last,
                token_source: if streaming { TokenCountSource::Responses } else { TokenCountSource::Words },
                error: None,
            }
        })
        .collect();
    let spec = SweepSpec {
        target: source_name.into(),
        model: export
            .get("endpoint")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
            .unwrap_or("perf_analyzer import")
            .into(),
        input_style: style,
        max_tokens: limits.0.unwrap_or(SweepSpec::default().max_tokens),
        ignore_eos: limits.1,
        streaming,
        prompt_lengths: lengths,
        requests: seqs.iter().copied().max().unwrap_or(0),
        concurrency,
        ..SweepSpec::default()
    };
    let tool =
        export.get("version").and_then(Value::as_str).map_or("perf_analyzer".into(), |v| format!("imported from {v}"));
    let mut report = RunReport { status: RunStatus::Completed, requests, ..RunReport::new(tool, spec, base) };
    // Checked before any statistic is computed from it.
    if let Some(why) = limits::report_problem(&report) {
        return Err(over(why));
    }
    report.recompute_points();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

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
        assert_eq!(
            asked_limits(&json!({ "sampling_parameters": "{\"max_tokens\": 256, \"ignore_eos\": true}" })),
            (Some(256), true)
        );
        assert_eq!(asked_limits(&json!({ "max_tokens": [8] })), (Some(8), false));
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
