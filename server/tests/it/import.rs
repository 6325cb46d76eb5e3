//! A profile export written by the real perf_analyzer, read as a run.

use serde_json::Value;
use server::import::profile_to_report;

use crate::support::assert_close;

/// `scripts/make-pa-fixture.sh` made it: perf_analyzer 2.51, streaming, against
/// `tokenscope sim --prefill-base-ms 5 --prefill-per-token-ms 0.1 --decode-ms 2`, with
/// prompts of 8, 32 and 128 words and max_tokens 8.
const FIXTURE: &str = include_str!("../fixtures/pa-sim-vllm.json");

#[test]
fn perf_analyzers_own_export_reads_as_the_schedule_it_measured() {
    let export: Value = serde_json::from_str(FIXTURE).unwrap();
    let report = profile_to_report(&export, "pa-sim-vllm.json").unwrap();
    assert_eq!(report.spec.prompt_lengths, vec![8, 32, 128]);
    assert_eq!((report.spec.max_tokens, report.spec.ignore_eos), (8, true));
    for point in &report.points {
        assert!(point.count >= 3, "{point:?}");
        assert_eq!(point.errors, 0);
        let words = f64::from(point.prompt_length);
        let ttft = point.ttft_ms.as_ref().unwrap();
        assert_close(&format!("TTFT at {words} words"), ttft.mean, 5.0 + 0.1 * words, 1.0, 0.05);
        assert_close("token-to-token", point.t2t_ms.as_ref().unwrap().mean, 2.0, 0.3, 0.05);
        // perf_analyzer sets no `triton_enable_empty_final_response`: eight responses, eight tokens.
        assert_eq!(point.output_tokens.as_ref().unwrap().mean, 8.0);
    }
}

/// `scripts/make-pa-fixture.sh triton` made it: perf_analyzer 2.51, streaming, against the real
/// tritonserver's `tutorial_like` model (server/tests/triton_models: first token 10 ms + 0.05 ms
/// per prompt word after the model receives the request, then one every 4 ms; cumulative
/// `TEXT` with the prompt in front; a separate empty final response; `send_ns` and `recv_ns` in
/// each response).
const TRITON_FIXTURE: &str = include_str!("../fixtures/pa-triton-tutorial.json");

#[test]
fn an_export_from_the_real_server_reads_as_its_models_schedule() {
    let export: Value = serde_json::from_str(TRITON_FIXTURE).unwrap();
    let report = profile_to_report(&export, "pa-triton-tutorial.json").unwrap();
    assert_eq!(report.spec.input_style, shared::InputStyle::Tutorial);
    assert_eq!(report.spec.prompt_lengths, vec![8, 32, 128]);
    for point in &report.points {
        assert_eq!((point.count, point.errors), (6, 0), "{point:?}");
        let prefill = 10.0 + 0.05 * f64::from(point.prompt_length);
        let ttft = point.ttft_ms.as_ref().unwrap();
        // The schedule starts when the model receives the request: TTFT adds the way in and
        // out through Triton, never less than nothing (see real_triton.rs).
        let over = ttft.p50 - prefill;
        assert!((-0.5..=4.0).contains(&over), "TTFT median {:.3} ms at {} words", ttft.p50, point.prompt_length);
        assert_close("token-to-token", point.t2t_ms.as_ref().unwrap().p50, 4.0, 0.5, 0.10);
        // Cumulative text: one new token per response; the empty final is no token.
        assert_eq!(point.output_tokens.as_ref().unwrap().mean, 8.0);
    }
    for record in &report.requests {
        assert_eq!(record.responses.len(), 9, "eight tokens and the empty final");
        assert_eq!(record.responses.last().unwrap().tokens, 0);
        // The model's receipt: from perf_analyzer's send to the model, a few ms at most.
        let received = record.server_recv_unix_ns.expect("recv_ns");
        let way_in = (received - (report.started_unix_ns + record.send_ns as i64)) as f64 / 1e6;
        assert!((-1.0..20.0).contains(&way_in), "{}: way in {way_in:.3} ms", record.id);
    }
    // The model's send times come through the import: the way out of the server, per token.
    let delays = report.arrival_delays_ms();
    assert_eq!(delays.len(), 18 * 8);
    let (p50, max) = (shared::stats::percentile(&delays, 50.0), delays[delays.len() - 1]);
    assert!((0.0..2.0).contains(&p50) && max < 50.0, "arrival delays: p50 {p50:.3} ms, max {max:.3} ms");
}

/// `scripts/make-pa-fixture.sh openai` made it: perf_analyzer 2.51's OpenAI service kind, as
/// GenAI-Perf runs it (the request body as the payload, `stream` in it), against the
/// simulator's `/v1/chat/completions` with the schedule above, max_tokens 8 with ignore_eos.
const OPENAI_FIXTURE: &str = include_str!("../fixtures/pa-sim-openai-chat.json");

#[test]
fn perf_analyzers_openai_export_reads_as_the_chat_it_measured() {
    let export: Value = serde_json::from_str(OPENAI_FIXTURE).unwrap();
    let report = profile_to_report(&export, "pa-sim-openai-chat.json").unwrap();
    let spec = &report.spec;
    assert_eq!((spec.protocol, spec.chat, spec.model.as_str()), (shared::Protocol::OpenAi, true, "sim-vllm"));
    assert_eq!(spec.prompt_lengths, vec![8, 32, 128]);
    assert_eq!((spec.max_tokens, spec.ignore_eos, spec.streaming), (8, true, true));
    for point in &report.points {
        assert_eq!((point.count, point.errors), (6, 0), "{point:?}");
        let words = f64::from(point.prompt_length);
        assert_close(
            &format!("TTFT at {words} words"),
            point.ttft_ms.as_ref().unwrap().mean,
            5.0 + 0.1 * words,
            1.0,
            0.05,
        );
        assert_close("token-to-token", point.t2t_ms.as_ref().unwrap().mean, 2.0, 0.3, 0.05);
        assert_eq!(point.output_tokens.as_ref().unwrap().mean, 8.0);
    }
    for record in &report.requests {
        // The first read brought the role-only chunk and the first token; the last, [DONE].
        let tokens: Vec<u32> = record.responses.iter().map(|r| r.tokens).collect();
        assert_eq!(tokens, [1, 1, 1, 1, 1, 1, 1, 1, 0], "{}", record.id);
        assert_eq!(record.text().split_whitespace().count(), 8, "{}", record.id);
    }
    // The simulator's send times in each chunk come through: the way out, per token.
    let delays = report.arrival_delays_ms();
    assert_eq!(delays.len(), 18 * 8);
    let (p50, max) = (shared::stats::percentile(&delays, 50.0), delays[delays.len() - 1]);
    assert!((0.0..2.0).contains(&p50) && max < 50.0, "arrival delays: p50 {p50:.3} ms, max {max:.3} ms");
}
