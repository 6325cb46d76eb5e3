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
