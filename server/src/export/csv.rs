//! A run as CSV for spreadsheets and scripts: one row per request, or one row per settled
//! prompt length.
//!
//! Fields follow RFC 4180: rows end in CRLF, and a field holding a comma, a double quote, a
//! line break or leading or trailing white space is quoted, its quotes doubled. Headers name
//! each column's unit. Numbers are written with Rust's shortest round-trip formatting, so a
//! reader gets back exactly the `f64` the API serves; an absent value is an empty field.

use std::borrow::Cow;
use std::fmt::Display;

use shared::spec::LoadLevel;
use shared::stats::{RequestMetrics, push_token_gaps};
use shared::telemetry::MetricKind;
use shared::{RequestRecord, RunReport, Summary, TokenCountSource};

/// Nanoseconds in a millisecond, as `shared::stats` divides by.
const NS_PER_MS: f64 = 1e6;

/// The columns of `requests.csv`, in order.
pub const REQUEST_COLUMNS: &[&str] = &[
    "point",
    "prompt_words",
    "input_tokens",
    "seq",
    "request_id",
    "warmup",
    "counted",
    "send_ms",
    "intended_send_ms",
    "send_unix_ns",
    "ttft_ms",
    "t2t_mean_ms",
    "e2e_ms",
    "output_tokens",
    "token_source",
    "responses",
    "error",
    "finish_reason",
    "output_text",
];

/// The metrics of a point with a distribution, by their names in `PointStats`.
const POINT_METRICS: &[&str] = &[
    "ttft_ms",
    "t2t_ms",
    "tpot_ms",
    "e2e_ms",
    "output_tokens",
    "input_tokens",
    "prompt_lengths_sent",
    "schedule_lag_ms",
    "ttft_intended_ms",
    "e2e_intended_ms",
];

/// The fields of a [`Summary`], in the order of its JSON.
const SUMMARY_FIELDS: &[&str] = &["count", "mean", "min", "max", "std", "p50", "p90", "p95", "p99", "p999"];

/// The columns of `points.csv`, in order: `X_Y` is field `Y` of `points[i].X` in run.json.
/// A point's load level is in `concurrency` (closed loop) or `request_rate` (open loop,
/// requests per second); the other is empty.
pub fn point_columns() -> Vec<String> {
    let mut columns: Vec<String> =
        ["prompt_length", "concurrency", "request_rate", "count", "errors"].map(String::from).into();
    for metric in POINT_METRICS {
        columns.extend(SUMMARY_FIELDS.iter().map(|field| format!("{metric}_{field}")));
    }
    columns.extend(
        [
            "requests_per_s",
            "output_tokens_per_s",
            "sent_per_s",
            "waited_for_cap",
            "goodput_met",
            "goodput_measured",
            "goodput_share",
            "goodput_requests_per_s",
            "server_requests",
            "server_failed",
            "server_request_ms",
            "server_queue_ms",
            "server_compute_input_ms",
            "server_compute_infer_ms",
            "server_compute_output_ms",
            "server_missing",
            "metrics_scrapes",
            "metrics_failed_scrapes",
            "metrics_gpu_utilization",
            "metrics_kv_cache_usage",
            "metrics_queue_depth",
        ]
        .map(String::from),
    );
    columns
}

/// `requests.csv`: one row per request in the report's order, warm-up requests included
/// and marked. The metrics are `shared::stats`'s, per request; they are given wherever the
/// request produced a token, even when it then failed, and `counted` says whether the
/// request enters its point's statistics (measured, no error, at least one token).
/// `t2t_mean_ms` is the mean of the request's token-to-token samples; the gaps add up to the
/// time from the first token to the last, so it is also the request's TPOT.
pub fn requests_csv(report: &RunReport) -> String {
    let mut out = String::new();
    push_row(&mut out, REQUEST_COLUMNS.iter().copied());
    for record in &report.requests {
        push_row(&mut out, request_row(report, record).iter().map(String::as_str));
    }
    out
}

fn request_row(report: &RunReport, r: &RequestRecord) -> Vec<String> {
    let metrics = RequestMetrics::of(r);
    let mut gaps = Vec::new();
    push_token_gaps(r, &mut gaps);
    let tokens: u64 = gaps.iter().map(|&(_, w)| u64::from(w)).sum();
    let t2t_mean =
        (tokens > 0).then(|| gaps.iter().map(|&(ns, w)| ns / NS_PER_MS * f64::from(w)).sum::<f64>() / tokens as f64);
    let ms = |ns: u64| ns as f64 / NS_PER_MS;
    let m = metrics.as_ref();
    vec![
        r.point.to_string(),
        r.prompt_words.to_string(),
        opt(r.num_input_tokens),
        r.seq.to_string(),
        inert(r.id.clone()),
        r.warmup.to_string(),
        (!r.warmup && r.error.is_none() && metrics.is_some()).to_string(),
        ms(r.send_ns).to_string(),
        opt(r.intended_ns.map(ms)),
        report.started_unix_ns.wrapping_add(r.send_ns as i64).to_string(),
        opt(m.map(|m| ms(m.ttft_ns))),
        opt(t2t_mean),
        opt(m.map(|m| ms(m.e2e_ns))),
        r.output_tokens().to_string(),
        token_source(r.token_source).into(),
        r.responses.len().to_string(),
        inert(r.error.clone().unwrap_or_default()),
        inert(r.finish_reason.clone().unwrap_or_default()),
        inert(r.text().to_string()),
    ]
}

/// A text a server or a file gave, made inert for spreadsheets: one that starts as a formula
/// would (`=`, `+`, `-`, `@`, a tab or a carriage return) gets a `'` in front, which a
/// spreadsheet shows as text instead of running it.
fn inert(text: String) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text }
}

/// The name run.json gives a token count's source.
fn token_source(source: TokenCountSource) -> &'static str {
    match source {
        TokenCountSource::Responses => "responses",
        TokenCountSource::Server => "server",
        TokenCountSource::Words => "words",
        TokenCountSource::Tokenizer => "tokenizer",
    }
}

/// `points.csv`: one row per settled point, with every number of its `PointStats`; a point of
/// a run from before load levels has the spec's concurrency.
pub fn points_csv(report: &RunReport) -> String {
    let (spec, points) = (&report.spec, &report.points);
    let windows = report.telemetry_by_point();
    let mut out = String::new();
    push_row(&mut out, point_columns().iter().map(String::as_str));
    for (p, window) in points.iter().zip(windows) {
        let (concurrency, rate) = match p.load_level(spec) {
            LoadLevel::Concurrency(c) => (c.to_string(), String::new()),
            LoadLevel::Rate(rate) => (String::new(), rate.to_string()),
        };
        let mut row = vec![p.prompt_length.to_string(), concurrency, rate, p.count.to_string(), p.errors.to_string()];
        for summary in [
            &p.ttft_ms,
            &p.t2t_ms,
            &p.tpot_ms,
            &p.e2e_ms,
            &p.output_tokens,
            &p.input_tokens,
            &p.prompt_lengths_sent,
            &p.schedule_lag_ms,
            &p.ttft_intended_ms,
            &p.e2e_intended_ms,
        ] {
            row.extend(summary_fields(summary.as_ref()));
        }
        row.extend([
            p.requests_per_s.to_string(),
            p.output_tokens_per_s.to_string(),
            p.sent_per_s.to_string(),
            p.waited_for_cap.to_string(),
        ]);
        let goodput = p.goodput.as_ref();
        row.extend([
            opt(goodput.map(|g| g.met)),
            opt(goodput.map(|g| g.measured)),
            opt(goodput.map(|g| g.share)),
            opt(goodput.map(|g| g.requests_per_s)),
        ]);
        let server = p.server.as_ref();
        row.extend([
            opt(server.map(|s| s.requests)),
            opt(server.map(|s| s.failed)),
            opt(server.map(|s| s.request_ms)),
            opt(server.map(|s| s.queue_ms)),
            opt(server.map(|s| s.compute_input_ms)),
            opt(server.map(|s| s.compute_infer_ms)),
            opt(server.map(|s| s.compute_output_ms)),
            p.server_missing.clone().unwrap_or_default(),
        ]);
        row.extend([
            opt(window.map(|w| w.scrapes)),
            opt(window.map(|w| w.failed)),
            opt(window.and_then(|w| w.gpu_utilization)),
            opt(window.and_then(|w| w.kv_cache_usage)),
            opt(window.and_then(|w| w.queue_depth)),
        ]);
        push_row(&mut out, row.iter().map(String::as_str));
    }
    out
}

/// The columns of `metrics.csv`.
pub const METRICS_COLUMNS: &[&str] = &["at_ms", "series", "family", "kind", "value", "error"];

/// `metrics.csv`: the server's metrics over the run, one row per series per successful
/// scrape where the series had a value (`at_ms` since the run's start, when the scrape was
/// sent), and one row per failed scrape with its reason and no series. Counters are written
/// as read; a rate is the difference of two rows over their time.
pub fn metrics_csv(report: &RunReport, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut text = String::new();
    push_row(&mut text, METRICS_COLUMNS.iter().copied());
    let Some(telemetry) = &report.telemetry else { return out.write_all(text.as_bytes()) };
    let heads: Vec<(String, &str)> =
        telemetry.series.iter().map(|s| (s.head.display(), kind_name(s.head.kind))).collect();
    let mut cursors = vec![0usize; telemetry.series.len()];
    let mut values: Vec<Option<f64>> = vec![None; telemetry.series.len()];
    for (i, scrape) in telemetry.scrapes.iter().enumerate() {
        let at = (scrape.at_us as f64 / 1e3).to_string();
        for (s, series) in telemetry.series.iter().enumerate() {
            while let Some(&(at_scrape, value)) = series.changes.get(cursors[s]) {
                if at_scrape as usize > i {
                    break;
                }
                values[s] = value;
                cursors[s] += 1;
            }
        }
        if let Some(error) = &scrape.error {
            push_row(&mut text, [at.as_str(), "", "", "", "", error.as_str()]);
        } else {
            for (s, series) in telemetry.series.iter().enumerate() {
                if let Some(value) = values[s] {
                    let value = value.to_string();
                    let (name, kind) = (&heads[s].0, heads[s].1);
                    push_row(&mut text, [at.as_str(), name, &series.head.family, kind, &value, ""]);
                }
            }
        }
        if text.len() > 1 << 20 {
            out.write_all(text.as_bytes())?;
            text.clear();
        }
    }
    out.write_all(text.as_bytes())
}

fn kind_name(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Counter => "counter",
        MetricKind::Gauge => "gauge",
        MetricKind::Histogram => "histogram",
        MetricKind::Summary => "summary",
        MetricKind::Untyped => "untyped",
    }
}

/// A summary's fields in [`SUMMARY_FIELDS`] order; all empty when there is none.
fn summary_fields(summary: Option<&Summary>) -> Vec<String> {
    let Some(s) = summary else { return vec![String::new(); SUMMARY_FIELDS.len()] };
    let mut fields = vec![s.count.to_string()];
    fields.extend([s.mean, s.min, s.max, s.std, s.p50, s.p90, s.p95, s.p99].map(|v| v.to_string()));
    fields.push(opt(s.p999));
    fields
}

/// A value, or an empty field.
fn opt<T: Display>(value: Option<T>) -> String {
    value.map_or_else(String::new, |v| v.to_string())
}

/// Appends one row, quoting the fields that need it.
fn push_row<'a>(out: &mut String, fields: impl IntoIterator<Item = &'a str>) {
    for (i, value) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&field(value));
    }
    out.push_str("\r\n");
}

/// A field as RFC 4180 writes it. Fields with leading or trailing white space are quoted
/// too, so that readers that trim unquoted fields keep a token's leading space.
fn field(value: &str) -> Cow<'_, str> {
    let special = value.contains([',', '"', '\r', '\n']) || value.trim() != value;
    if special { Cow::Owned(format!("\"{}\"", value.replace('"', "\"\""))) } else { Cow::Borrowed(value) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use shared::{ResponseRecord, RunStatus, SweepSpec};

    /// Reads RFC 4180 text back into rows of fields.
    fn read(text: &str) -> Vec<Vec<String>> {
        let (mut rows, mut row, mut field, mut quoted, mut chars) =
            (Vec::new(), Vec::new(), String::new(), false, text.chars().peekable());
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut field)),
                (false, '\r') => {}
                (false, '\n') => {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                (false, c) => field.push(c),
            }
        }
        rows
    }

    fn response(at_ns: u64, tokens: u32, text: &str) -> ResponseRecord<'_> {
        ResponseRecord { at_ns, tokens, text, server_send_unix_ns: None }
    }

    fn record(point: u32, seq: u32, send_ns: u64, responses: Vec<ResponseRecord<'_>>) -> RequestRecord {
        RequestRecord {
            point,
            seq,
            warmup: false,
            id: format!("{point}-{seq}"),
            prompt_words: 8,
            num_input_tokens: None,
            send_ns,
            intended_ns: None,
            server_recv_unix_ns: None,
            final_ns: responses.last().map(|r| r.at_ns),
            responses: responses.into(),
            token_source: TokenCountSource::Responses,
            error: None,
            finish_reason: None,
        }
    }

    fn report(requests: Vec<RequestRecord>) -> RunReport {
        let mut report = RunReport {
            status: RunStatus::Completed,
            requests,
            ..RunReport::new(
                "tokenscope test".into(),
                SweepSpec { model: "m".into(), prompt_lengths: vec![8], warmup: 1, ..SweepSpec::default() },
                1_700_000_000_000_000_000,
            )
        };
        report.recompute_points();
        report
    }

    #[test]
    fn fields_are_quoted_as_rfc_4180_asks() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field(""), "");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field("cr\rhere"), "\"cr\rhere\"");
        assert_eq!(field(" leading"), "\" leading\"");
        let mut out = String::new();
        push_row(&mut out, ["a", "b,c", "", "\"q\""]);
        assert_eq!(out, "a,\"b,c\",,\"\"\"q\"\"\"\r\n");
        assert_eq!(read(&out), vec![vec!["a", "b,c", "", "\"q\""]]);
    }

    #[test]
    fn a_request_row_holds_its_metrics_and_a_failed_one_its_error() {
        let mut warm = record(0, 0, 0, vec![response(1_000_000, 1, "w")]);
        warm.warmup = true;
        // Sent at 2 ms; tokens at 3, 3.5 (two tokens) and 4 ms; an empty final at 9 ms.
        let mut ok = record(
            0,
            1,
            2_000_000,
            vec![
                response(3_000_000, 1, " a"),
                response(3_500_000, 2, ", b"),
                response(4_000_000, 1, " \"c\""),
                response(9_000_000, 0, ""),
            ],
        );
        ok.num_input_tokens = Some(11);
        ok.token_source = TokenCountSource::Server;
        let mut failed = record(0, 2, 10_000_000, vec![response(12_000_000, 1, " x")]);
        failed.error = Some("the server said: \"out of memory\", request 0-2\nretry later".into());
        let report = report(vec![warm, ok, failed]);
        let text = requests_csv(&report);
        assert!(text.ends_with("\r\n"));
        let rows = read(&text);
        assert_eq!(rows[0], REQUEST_COLUMNS);
        assert_eq!(rows.len(), 4, "a header and one row per request, warm-up included: {text}");
        let column = |row: &[String], name: &str| row[REQUEST_COLUMNS.iter().position(|c| *c == name).unwrap()].clone();
        let ok = &rows[2];
        let expected = [
            ("point", "0"),
            ("prompt_words", "8"),
            ("input_tokens", "11"),
            ("seq", "1"),
            ("request_id", "0-1"),
            ("warmup", "false"),
            ("counted", "true"),
            ("send_ms", "2"),
            ("send_unix_ns", "1700000000002000000"),
            ("ttft_ms", "1"),
            // 0.5 ms shared by two tokens, then 0.5 ms: (4 - 3) ms over 4 - 1 tokens, its TPOT.
            ("t2t_mean_ms", "0.3333333333333333"),
            ("e2e_ms", "2"),
            ("output_tokens", "4"),
            ("token_source", "server"),
            ("responses", "4"),
            ("error", ""),
            ("finish_reason", ""),
            ("output_text", " a, b \"c\""),
        ];
        for (name, value) in expected {
            assert_eq!(column(ok, name), value, "{name}");
        }
        assert_eq!((column(&rows[1], "warmup"), column(&rows[1], "counted")), ("true".into(), "false".into()));
        let failed = &rows[3];
        assert_eq!(column(failed, "error"), report.requests[2].error.clone().unwrap(), "quoted and read back whole");
        assert_eq!((column(failed, "counted"), column(failed, "ttft_ms")), ("false".into(), "2".into()));
        assert_eq!(column(failed, "t2t_mean_ms"), "", "one token: no gap");
        assert_eq!(report.points[0].errors, 1);
    }

    #[test]
    fn texts_from_a_server_never_run_as_formulas() {
        for (text, written) in [
            ("=HYPERLINK(\"http://evil.example\")", "'=HYPERLINK(\"http://evil.example\")"),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            (" a = b", " a = b"),
            ("", ""),
        ] {
            assert_eq!(inert(text.to_string()), written);
        }
        let mut record = record(0, 0, 0, vec![response(1_000, 1, "=1+1")]);
        record.error = Some("-cmd".into());
        let rows = read(&requests_csv(&report(vec![record])));
        let column = |name: &str| rows[1][REQUEST_COLUMNS.iter().position(|c| *c == name).unwrap()].clone();
        assert_eq!((column("output_text"), column("error")), ("'=1+1".to_string(), "'-cmd".to_string()));
    }

    #[test]
    fn token_sources_are_named_as_in_run_json() {
        for source in [
            TokenCountSource::Responses,
            TokenCountSource::Server,
            TokenCountSource::Words,
            TokenCountSource::Tokenizer,
        ] {
            assert_eq!(json!(token_source(source)), serde_json::to_value(source).unwrap());
        }
    }

    #[test]
    fn an_imported_run_has_no_server_counts() {
        let export = json!({ "version": "2.51", "experiments": [{
            "experiment": { "mode": "concurrency", "value": 1 },
            "requests": [
                { "timestamp": 1_000, "request_inputs": { "text_input": "a b c" },
                  "response_timestamps": [3_000, 4_000, 4_500],
                  "response_outputs": [{ "text_output": "x" }, { "text_output": "y" }, { "text_output": "" }] },
            ],
        }]});
        let report = crate::import::profile_to_report(&export, "pa.json").unwrap();
        let rows = read(&requests_csv(&report));
        // Sent at 0, tokens at 2 and 3 µs, an empty final at 3.5 µs; no prompt count.
        assert_eq!(rows[1].join(","), "0,3,,0,0-0,false,true,0,,1000,0.002,0.001,0.003,2,responses,3,,,xy");
        let points = read(&points_csv(&report));
        let input_tokens = point_columns().iter().position(|c| c == "input_tokens_count").unwrap();
        assert_eq!(points[1][input_tokens], "", "no prompt counts from the server");
    }

    #[test]
    fn point_rows_read_back_to_the_same_numbers() {
        let requests = (0..1200)
            .map(|seq| {
                let send = u64::from(seq) * 7_777_777;
                record(
                    0,
                    seq,
                    send,
                    vec![
                        response(send + 1_234_567 + u64::from(seq % 13) * 101, 1, "t"),
                        response(send + 3_000_001, 2, "u"),
                    ],
                )
            })
            .collect();
        let report = report(requests);
        let rows = read(&points_csv(&report));
        let columns = point_columns();
        assert_eq!(rows[0], columns);
        assert_eq!(rows.len(), 2);
        let value = |name: &str| rows[1][columns.iter().position(|c| c == name).unwrap()].as_str();
        let p = &report.points[0];
        let ttft = p.ttft_ms.as_ref().unwrap();
        assert_eq!(value("ttft_ms_count").parse::<u64>().unwrap(), ttft.count);
        for (name, expected) in [
            ("ttft_ms_mean", ttft.mean),
            ("ttft_ms_std", ttft.std),
            ("ttft_ms_p99", ttft.p99),
            ("ttft_ms_p999", ttft.p999.unwrap()),
            ("t2t_ms_p50", p.t2t_ms.as_ref().unwrap().p50),
            ("tpot_ms_mean", p.tpot_ms.as_ref().unwrap().mean),
            ("requests_per_s", p.requests_per_s),
            ("output_tokens_per_s", p.output_tokens_per_s),
        ] {
            assert_eq!(value(name).parse::<f64>().unwrap().to_bits(), expected.to_bits(), "{name}");
        }
        assert_eq!(value("input_tokens_mean"), "");
    }
}
