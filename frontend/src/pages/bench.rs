//! `/bench`: times redrawing the latency chart with 10,000 samples, with the same code the
//! dashboard uses, and writes the figures into the page for a benchmark to read.

use crate::view::SeriesSet;
use leptos::html::Canvas;
use leptos::prelude::*;
use shared::Summary;

use crate::chart::{XScale, YScale, draw};
use crate::components::charts::palette;

/// Samples in the benchmark chart.
pub const SAMPLES: usize = 10_000;
/// Timed redraws (after one untimed).
pub const REDRAWS: usize = 30;

/// Deterministic samples that look like a sweep: latency grows with prompt length, with spread.
pub fn samples(lengths: &[u32], count: usize) -> Vec<(u32, f64)> {
    let mut state = 0x2545_f491_u64;
    (0..count)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let length = lengths[i % lengths.len()];
            let noise = (state % 10_000) as f64 / 10_000.0;
            (length, 15.0 + 0.05 * f64::from(length) + 8.0 * noise * noise)
        })
        .collect()
}

/// The page.
#[component]
pub fn BenchPage() -> impl IntoView {
    let canvas = NodeRef::<Canvas>::new();
    let result = RwSignal::new(String::from("running"));
    Effect::new(move |_| {
        let Some(canvas) = canvas.get() else { return };
        let lengths: Vec<u32> = (4..14).map(|p| 1u32 << p).collect();
        let samples = samples(&lengths, SAMPLES);
        let points: Vec<(u32, Summary)> = lengths
            .iter()
            .map(|&l| {
                let mut values: Vec<f64> = samples.iter().filter(|s| s.0 == l).map(|s| s.1).collect();
                (l, Summary::of(&mut values).expect("samples"))
            })
            .collect();
        let palette = palette();
        let chart = draw::LatencyChart {
            x_desc: shared::SweepSpec::default().prompt_length_axis(),
            y_desc: "TTFT (ms)",
            scale: XScale::for_lengths(&lengths),
            y_scale: YScale::Linear,
            series: SeriesSet::default(),
            lengths: &lengths,
            layers: vec![draw::Layer {
                label: String::new(),
                points,
                samples,
                line: palette.line,
                band: palette.band,
                dots: palette.dots,
            }],
            empty_note: "",
        };
        let performance = web_sys::window().and_then(|w| w.performance()).expect("performance");
        let mut times = Vec::with_capacity(REDRAWS);
        for i in 0..=REDRAWS {
            let start = performance.now();
            if let Err(err) = draw::on_canvas(&canvas, &palette, |root, dpr| draw::latency(root, &chart, &palette, dpr))
            {
                result.set(format!("{{\"error\":{err:?}}}"));
                return;
            }
            if i > 0 {
                times.push(performance.now() - start);
            }
        }
        let summary = Summary::of(&mut times).expect("timed redraws");
        result.set(format!(
            "{{\"samples\":{SAMPLES},\"redraws\":{REDRAWS},\"median_ms\":{:.3},\"p90_ms\":{:.3},\"max_ms\":{:.3},\"canvas_px\":[{},{}]}}",
            summary.p50,
            summary.p90,
            summary.max,
            canvas.width(),
            canvas.height()
        ));
    });
    view! {
        <main class="bench">
            <h1>"Chart redraw benchmark"</h1>
            <div class="canvas-box"><canvas node_ref=canvas id="bench-canvas"/></div>
            <pre id="bench-result">{move || result.get()}</pre>
        </main>
    }
}
