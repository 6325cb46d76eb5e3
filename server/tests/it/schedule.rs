//! The latency schedule of a test model for the real Triton server, read from its
//! `config.pbtxt` so tests and benchmarks follow the models. Shared by the integration tests
//! and `benches/side_by_side.rs`.

use std::path::Path;

/// A model's schedule, in milliseconds from the moment `execute` receives the request.
pub struct Schedule {
    pub prefill_base_ms: f64,
    pub prefill_per_token_ms: f64,
    pub decode_ms: f64,
}

impl Schedule {
    /// The schedule of `model` in `server/tests/triton_models`.
    pub fn of(model: &str) -> Schedule {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/triton_models").join(model).join("config.pbtxt");
        let config = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let param = |key: &str| -> f64 {
            let after_key = config.split(&format!("key: \"{key}\"")).nth(1);
            let value =
                after_key.and_then(|rest| rest.split("string_value: \"").nth(1)).and_then(|v| v.split('"').next());
            value.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{}: no number for {key}", path.display()))
        };
        Schedule {
            prefill_base_ms: param("prefill_base_ms"),
            prefill_per_token_ms: param("prefill_per_token_ms"),
            decode_ms: param("decode_ms"),
        }
    }

    /// When the first token is sent for a prompt of `prompt_words` words.
    pub fn prefill_ms(&self, prompt_words: u32) -> f64 {
        self.prefill_base_ms + self.prefill_per_token_ms * f64::from(prompt_words)
    }
}
