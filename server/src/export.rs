//! A finished run's exports: run.json, CSV ([`csv`]) and perf_analyzer's profile-export
//! format, so scripts written for it read tokenscope's runs. The dashboard serves them
//! (`GET /api/runs/{id}/export/{file}`) and the command line writes them, both through
//! [`Export::render`], so a file is the same whichever wrote it.
//!
//! The profile export has one experiment per sweep point; its times are system-clock
//! nanoseconds since the epoch, converted from the run's monotonic offsets through its
//! single clock anchor. A run over Triton's protocols is written as perf_analyzer writes
//! Triton requests (tensors by name), an OpenAI run as its OpenAI service kind does (each
//! request's JSON body, each response's chunk as an event).

pub mod csv;
pub mod profile;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use shared::spec::LoadLevel;
use shared::{InputStyle, Protocol, RequestRecord, ResponseRecord, RunReport, SweepSpec, TokenCountSource};

use std::sync::Arc;

use crate::convention::{
    Convention, DELTA_TEXT_OUTPUT, MaxTokensInput, RECEIVE_TIME_KEY, SEND_TIME_KEY, sampling_json,
};
use crate::prompts::RunPrompts;
use crate::protocol::openai;
use profile::{Load, LoadMode, TensorValue, Tensors};

/// A file a finished run is exported as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    /// The whole run as `RunReport` JSON, as `tokenscope sweep --out` writes it.
    Run,
    /// One CSV row per request, warm-up requests included.
    Requests,
    /// One CSV row per settled prompt length: its statistics.
    Points,
    /// perf_analyzer's profile-export JSON, warm-up requests left out.
    Profile,
    /// One CSV row per series per scrape of the server's metrics.
    Metrics,
}

impl Export {
    pub const ALL: [Export; 5] = [Export::Run, Export::Requests, Export::Points, Export::Profile, Export::Metrics];

    /// Its name in `/api/runs/{id}/export/{file}`.
    pub fn file_name(self) -> &'static str {
        shared::api::EXPORTS[self as usize].0
    }

    /// The export a file name asks for.
    pub fn from_file_name(name: &str) -> Option<Export> {
        Export::ALL.into_iter().find(|e| e.file_name() == name)
    }

    /// What it is, for messages.
    pub fn description(self) -> &'static str {
        shared::api::EXPORTS[self as usize].1
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Export::Run | Export::Profile => "application/json",
            Export::Requests | Export::Points | Export::Metrics => "text/csv; charset=utf-8; header=present",
        }
    }

    /// The name a download is saved under: `tokenscope-<id>-<kind>.<ext>`. Characters that
    /// do not belong in a file name (none do in the ids the dashboard gives) become `_`.
    pub fn download_name(self, run_id: &str) -> String {
        let safe: String =
            run_id.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
        format!("tokenscope-{safe}-{}", self.file_name())
    }

    /// The file's bytes.
    pub fn render(self, report: &RunReport) -> Vec<u8> {
        let mut bytes = Vec::new();
        // Writing to memory fails only where a profile export's prompts come from a tokenizer
        // that cannot be read; the dashboard writes with `write_to` and answers why.
        self.write_to(report, &mut bytes).expect("writing to memory does not fail");
        bytes
    }

    /// Writes the file to `out`. The JSON exports are written as they are serialized, so a
    /// large run is never held twice.
    pub fn write_to(self, report: &RunReport, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        self.write_with(report, None, out)
    }

    /// [`Export::write_to`], with the run's prompts when they are still open: a profile
    /// export then lists them without reading their tokenizer or file again.
    pub fn write_with(
        self,
        report: &RunReport,
        prompts: Option<Arc<RunPrompts>>,
        out: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        match self {
            Export::Run => serde_json::to_writer(out, report).map_err(std::io::Error::from),
            Export::Requests => out.write_all(csv::requests_csv(report).as_bytes()),
            Export::Points => out.write_all(csv::points_csv(report).as_bytes()),
            Export::Metrics => csv::metrics_csv(report, out),
            Export::Profile => {
                serde_json::to_writer(out, &ProfileWriter::of(report, prompts)).map_err(std::io::Error::from)
            }
        }
    }
}

/// The profile export of a run as a JSON value. Warm-up requests are left out, as they are
/// from statistics. Fails only when the run's prompts came from a tokenizer that can no
/// longer be read.
pub fn profile_export(report: &RunReport) -> serde_json::Result<Value> {
    serde_json::to_value(ProfileWriter::of(report, None))
}

/// perf_analyzer's profile export of a run, serialized straight from its records into the
/// [`profile`] types, its lists as they are iterated. Built as a JSON value first, it took 14
/// to 23 times as long as run.json to write; this way, 1.1 to 1.6 times (store benchmark,
/// 2.56M responses).
struct ProfileWriter<'a> {
    report: &'a RunReport,
    /// The measured requests of each sweep point.
    points: Vec<Vec<&'a RequestRecord>>,
    style: InputStyle,
    /// An OpenAI run's requests as they were asked; `None` for Triton's protocols.
    openai: Option<openai::Options>,
    /// The run's prompts, made again as they were sent; why not, when the tokenizer or
    /// prompts file they came from cannot be read now.
    prompts: Result<Arc<RunPrompts>, String>,
}

impl<'a> ProfileWriter<'a> {
    fn of(report: &'a RunReport, prompts: Option<Arc<RunPrompts>>) -> Self {
        let spec = &report.spec;
        let mut points = vec![Vec::new(); spec.point_count()];
        for record in report.requests.iter().filter(|r| !r.warmup) {
            if let Some(point) = points.get_mut(record.point as usize) {
                point.push(record);
            }
        }
        let style = report.model.as_ref().map_or(spec.input_style, |m| m.input_style);
        let prompts = prompts
            .map_or_else(|| RunPrompts::open(spec).map(Arc::new), Ok)
            .map_err(|err| format!("the prompts of this run cannot be made again as they were sent: {err}"));
        // The usage was asked for where the server gave it: a server that refuses the field
        // is asked without, and gives none.
        let openai = (spec.speaks() == Protocol::OpenAi).then(|| openai::Options {
            chat: spec.chat,
            include_usage: report.requests.iter().any(|r| r.token_source == TokenCountSource::Server),
            ignore_eos: spec.ignore_eos,
        });
        Self { report, points, style, openai, prompts }
    }

    fn unix(&self, offset: u64) -> i64 {
        self.report.started_unix_ns.wrapping_add(offset as i64)
    }
}

impl Serialize for ProfileWriter<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let experiments =
            self.points.iter().enumerate().filter(|(_, records)| !records.is_empty()).map(|(point, records)| {
                let start = records.iter().map(|r| r.send_ns).min().unwrap_or(0);
                let end =
                    records.iter().map(|r| r.responses.last().map_or(r.send_ns, |c| c.at_ns)).max().unwrap_or(start);
                ExperimentWriter { export: self, point, records, window: [self.unix(start), self.unix(end)] }
            });
        profile::ProfileFile {
            experiments: Lazy(|| experiments.clone()),
            version: Some(self.report.tool.clone()),
            service_kind: Some(if self.openai.is_some() { profile::OPENAI } else { profile::TRITON }.into()),
            endpoint: Some(self.openai.map_or("", |o| openai::path(o.chat).trim_start_matches('/')).into()),
        }
        .serialize(serializer)
    }
}

/// One sweep point's measured requests.
struct ExperimentWriter<'a> {
    export: &'a ProfileWriter<'a>,
    point: usize,
    records: &'a [&'a RequestRecord],
    window: [i64; 2],
}

impl Serialize for ExperimentWriter<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let export = self.export;
        let spec = &export.report.spec;
        let requests = self.records.iter().map(|&record| RequestWriter { export, record });
        // perf_analyzer's two modes: a concurrency, or a request rate.
        let (mode, value) = match spec.point(self.point).map(|(_, load)| load) {
            Some(LoadLevel::Rate(rate)) => (LoadMode::RequestRate, serde_json::Number::from_f64(rate)),
            Some(LoadLevel::Concurrency(c)) => (LoadMode::Concurrency, Some(c.into())),
            None => (LoadMode::Concurrency, Some(spec.concurrency.into())),
        };
        profile::Experiment {
            experiment: Some(Load { mode: Some(mode), value }),
            requests: Lazy(|| requests.clone()),
            window_boundaries: Some(self.window.to_vec()),
        }
        .serialize(serializer)
    }
}

struct RequestWriter<'a> {
    export: &'a ProfileWriter<'a>,
    record: &'a RequestRecord,
}

impl Serialize for RequestWriter<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (export, r) = (self.export, self.record);
        let spec = &export.report.spec;
        let prompts = export.prompts.as_ref().map_err(serde::ser::Error::custom)?;
        // The point's length; a record from before points had loads has only its own.
        let length = spec.point(r.point as usize).map_or(r.prompt_words, |(length, _)| length);
        let prompt = prompts.prompt(spec, r.point, r.seq, length).map_err(serde::ser::Error::custom)?.text;
        let max_tokens = spec.max_tokens_of(r.point, r.seq);
        let inputs = match export.openai {
            Some(options) => {
                let body = openai::body(&spec.model, &prompt, max_tokens, options);
                Tensors::from([(
                    profile::PAYLOAD.into(),
                    TensorValue::Text(String::from_utf8(body).expect("JSON is UTF-8")),
                )])
            }
            None => request_inputs(export.style, prompt.into_owned(), max_tokens, spec),
        };
        // An OpenAI answer's end (its usage, then `[DONE]` or its error) is an output of its
        // own at the request's end, as perf_analyzer lists it, or else goes with the last
        // response.
        let end_apart = export.openai.and(r.final_ns);
        let end_after =
            if export.openai.is_some() && end_apart.is_none() { r.responses.len().checked_sub(1) } else { None };
        let responses = move || {
            r.responses.iter().enumerate().map(move |(i, c)| Outputs {
                export,
                request: r,
                response: Some(c),
                end: end_after == Some(i),
            })
        };
        let end = end_apart.map(|_| Outputs { export, request: r, response: None, end: true });
        profile::Request {
            timestamp: Some(export.unix(r.send_ns)),
            request_inputs: Some(inputs),
            response_timestamps: Lazy(|| {
                r.responses.iter().map(|c| c.at_ns).chain(end_apart).map(|at| export.unix(at))
            }),
            response_outputs: Lazy(|| responses().chain(end.clone())),
        }
        .serialize(serializer)
    }
}

/// A response's outputs as perf_analyzer lists them. Triton's: its text (new text, whatever
/// the run's style), and the server's send and receive times under the output names the test
/// models use, when the server gave them. OpenAI's: the response's chunk as an event, its
/// send time in it where the server gave one, and after the last, why the server stopped
/// and its usage where it said them, then `[DONE]`, or the request's error.
#[derive(Clone)]
struct Outputs<'a> {
    export: &'a ProfileWriter<'a>,
    request: &'a RequestRecord,
    /// The response; `None` for the end of an OpenAI answer alone.
    response: Option<ResponseRecord<'a>>,
    /// Whether the end of an OpenAI answer follows.
    end: bool,
}

impl Serialize for Outputs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Outputs { export, request, response, end } = self;
        let mut map = serializer.serialize_map(None)?;
        if let Some(options) = export.openai {
            let mut events = String::new();
            if let Some(response) = response {
                openai::write_text_event(&mut events, options.chat, response.text, response.server_send_unix_ns);
            }
            if *end {
                if let Some(reason) = &request.finish_reason {
                    openai::write_finish_event(&mut events, options.chat, reason);
                }
                if request.token_source == TokenCountSource::Server {
                    let total = u32::try_from(request.output_tokens()).unwrap_or(u32::MAX);
                    openai::write_usage_event(&mut events, request.num_input_tokens, total);
                }
                openai::write_end_event(&mut events, request.error.as_deref());
            }
            map.serialize_entry(profile::RESPONSE, &events)?;
            return map.end();
        }
        let Some(response) = response else { return map.end() };
        map.serialize_entry(DELTA_TEXT_OUTPUT, &response.text)?;
        if let Some(sent) = response.server_send_unix_ns {
            map.serialize_entry(SEND_TIME_KEY, &sent)?;
            if let Some(received) = request.server_recv_unix_ns {
                map.serialize_entry(RECEIVE_TIME_KEY, &received)?;
            }
        }
        map.end()
    }
}

/// A sequence serialized as it is iterated, never collected.
struct Lazy<F>(F);

impl<F, I> Serialize for Lazy<F>
where
    F: Fn() -> I,
    I: IntoIterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq((self.0)())
    }
}

/// The inputs of a request asking for `max_tokens` as perf_analyzer lists them, by the
/// model's own input names.
fn request_inputs(style: InputStyle, prompt: String, max_tokens: u32, spec: &SweepSpec) -> Tensors {
    let convention = Convention::of(style);
    let asked = match convention.max_tokens {
        MaxTokensInput::Sampling(_) => TensorValue::Text(sampling_json(max_tokens, spec.ignore_eos)),
        MaxTokensInput::Int(_) => TensorValue::Number(max_tokens.into()),
    };
    Tensors::from([
        (convention.prompt.into(), TensorValue::Text(prompt)),
        (convention.stream.into(), TensorValue::Bool(spec.streaming)),
        (convention.max_tokens.name().into(), asked),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use shared::{RunStatus, TokenCountSource};

    #[test]
    fn exports_are_named_for_their_run() {
        for export in Export::ALL {
            assert_eq!(Export::from_file_name(export.file_name()), Some(export));
        }
        assert_eq!(Export::ALL.map(Export::file_name), shared::api::EXPORTS.map(|(file, _)| file));
        assert_eq!(Export::from_file_name("run.csv"), None);
        assert_eq!(Export::Points.download_name("20250101-120000-1"), "tokenscope-20250101-120000-1-points.csv");
        assert_eq!(Export::Run.download_name("a\"b/c"), "tokenscope-a_b_c-run.json");
    }

    #[test]
    fn guide_average_matches_our_ttft() {
        let spec = SweepSpec { model: "m".into(), prompt_lengths: vec![4], warmup: 1, ..SweepSpec::default() };
        let record = |seq: u32, warmup: bool, send_ns: u64, first: u64| RequestRecord {
            point: 0,
            seq,
            warmup,
            id: format!("0-{seq}"),
            prompt_words: 4,
            num_input_tokens: None,
            send_ns,
            intended_ns: None,
            server_recv_unix_ns: Some(7),
            responses: vec![
                ResponseRecord { at_ns: first, tokens: 1, text: " a", server_send_unix_ns: Some(9) },
                ResponseRecord { at_ns: first + 10, tokens: 0, text: "", server_send_unix_ns: None },
            ]
            .into(),
            final_ns: Some(first + 10),
            token_source: TokenCountSource::Responses,
            error: None,
            finish_reason: None,
        };
        let mut report = RunReport {
            status: RunStatus::Completed,
            requests: vec![record(0, true, 0, 99), record(1, false, 1000, 3000), record(2, false, 5000, 9000)],
            ..RunReport::new("tokenscope test".into(), spec, 1_700_000_000_000_000_000)
        };
        report.recompute_points();
        let export = profile_export(&report).unwrap();
        let requests = export["experiments"][0]["requests"].as_array().unwrap();
        assert_eq!(requests.len(), 2, "warm-up is left out");
        // The guide's method: mean of (first response - send).
        let mean_ns: f64 = requests
            .iter()
            .map(|r| (r["response_timestamps"][0].as_i64().unwrap() - r["timestamp"].as_i64().unwrap()) as f64)
            .sum::<f64>()
            / requests.len() as f64;
        assert_eq!(mean_ns / 1e6, report.points[0].ttft_ms.as_ref().unwrap().mean);
        assert_eq!(requests[0]["response_outputs"][0], json!({ "text_output": " a", "send_ns": 9, "recv_ns": 7 }));
        assert_eq!(
            requests[0]["response_outputs"][1],
            json!({ "text_output": "" }),
            "times only where the server gave them"
        );
        assert_eq!(requests[0]["request_inputs"]["text_input"].as_str().unwrap().split(' ').count(), 4);
    }
}
