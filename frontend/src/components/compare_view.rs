//! Runs side by side: their latency charts overlaid, one colour per run, and each run's
//! statistics against the first run's (the baseline), from their settled points.

use leptos::html::Canvas;
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::api::{ApiError, ErrorCode, RunSummary};
use shared::view::{RunViewState, run_title};

use crate::api;
use crate::chart::draw;
use crate::components::ErrorBox;
use crate::components::charts::{
    self, ExportButtons, Metric, Resized, ViewControls, palette, shows, title, with_compare_chart,
};
use crate::components::glossary::metric_anchor;
use crate::components::runs_list::status_name;
use crate::components::throughput::{self, ThroughputChart};
use crate::report::{self, ReportChart};

/// What the link names that the server does not have, in words.
pub fn unknown_runs_message(unknown: &[String]) -> Option<String> {
    let quoted: Vec<String> = unknown.iter().map(|id| format!("\"{id}\"")).collect();
    match quoted.as_slice() {
        [] => None,
        [one] => Some(format!("There is no run {one}: the other runs are compared without it.")),
        [rest @ .., last] => {
            Some(format!("There are no runs {} and {last}: the other runs are compared without them.", rest.join(", ")))
        }
    }
}

/// The charts a comparison shows, as SVG for its report.
pub fn report_charts(runs: &[RunSummary], view: RunViewState) -> Result<Vec<ReportChart>, String> {
    let mut out = charts::report_charts(view, &|metric, shape, palette, draw| {
        with_compare_chart(runs, metric, shape, palette, draw)
    })?;
    if runs.iter().any(|r| throughput::shows(&r.spec)) {
        let y = crate::chart::YScale::chosen(view.y);
        out.extend(throughput::report_charts(view.charts, |metric, palette| {
            throughput::compare_chart(runs, metric, y, palette)
        })?);
    }
    Ok(out)
}

/// The comparison of the runs `ids` names.
#[component]
pub fn CompareView(
    /// The runs' ids, the baseline first.
    ids: Vec<String>,
    /// The charts' controls; the page keeps them in its address.
    view: RwSignal<RunViewState>,
    /// This view's address (path and query).
    #[prop(into)]
    address: Signal<String>,
) -> impl IntoView {
    // Each id's answer, in the link's order, once all have answered.
    let answers = RwSignal::new(None::<Vec<(String, Result<RunSummary, ApiError>)>>);
    {
        let ids = ids.clone();
        spawn_local(async move {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let answer = api::get_json::<RunSummary>(&format!("/api/runs/{}", api::encode(&id))).await;
                out.push((id, answer));
            }
            answers.set(Some(out));
        });
    }
    let runs = Memo::new(move |_| {
        answers.with(|a| a.iter().flatten().filter_map(|(_, r)| r.as_ref().ok().cloned()).collect::<Vec<_>>())
    });
    // A 404 is a run the server does not have; anything else is its own failure.
    let unknown = move || {
        answers.with(|a| {
            a.iter()
                .flatten()
                .filter(|(_, r)| r.as_ref().is_err_and(|e| e.code == ErrorCode::NoRun))
                .map(|(id, _)| id.clone())
                .collect::<Vec<_>>()
        })
    };
    let failures = move || {
        answers.with(|a| {
            a.iter()
                .flatten()
                .filter_map(|(_, r)| r.as_ref().err().filter(|e| e.code != ErrorCode::NoRun).cloned())
                .collect::<Vec<_>>()
        })
    };
    let stem = Signal::derive(move || {
        runs.with(|runs| report::file_stem(&runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>()))
    });
    let report_error = RwSignal::new(None::<String>);
    let download_report = move |_| {
        let runs = runs.get_untracked();
        let charts = report_charts(&runs, view.get_untracked());
        let now = js_sys::Date::now() as i64 * 1_000_000;
        let saved = charts
            .map(|charts| report::html(&runs, &charts, now))
            .and_then(|html| crate::download::save_text(&format!("{}.html", stem.get_untracked()), "text/html", &html));
        report_error.set(saved.err());
    };
    let colours = palette();
    view! {
        <section class="compare" id="compare">
            <div class="run-head">
                <h2 id="compare-title">{format!("Comparing {} runs", ids.len())}</h2>
                <button type="button" id="download-report" on:click=download_report disabled=move || runs.with(Vec::is_empty)
                    title="One HTML file with the charts, the tables and the definitions, that opens without a network">"Download report"</button>
            </div>
            {move || report_error.get().map(|f| view! { <p class="error">{f}</p> })}
            {move || unknown_runs_message(&unknown()).map(|text| view! {
                <div class="error" id="compare-unknown" role="alert"><strong>{text}</strong>
                    <p class="hint">"A run may have been deleted, or the link may come from another dashboard."</p></div>
            })}
            {move || failures().into_iter().map(|err| view! { <ErrorBox error=err/> }).collect_view()}
            {move || match answers.with(Option::is_none) {
                true => view! { <p class="placeholder">"Loading the runs…"</p> }.into_any(),
                false if runs.with(|r| r.len() < 2) => view! {
                    <p class="placeholder" id="compare-too-few">"A comparison needs two runs or more: tick them in the runs list."</p>
                }.into_any(),
                false => ().into_any(),
            }}
            <ul class="compare-legend" id="compare-legend">
                {move || runs.get().into_iter().enumerate().map(|(i, run)| {
                    let (r, g, b) = colours.run(i);
                    let href = format!("/runs/{}", run.id);
                    let model = run.model.as_ref().map_or(run.spec.model.clone(), |m| m.name.clone());
                    view! {
                        <li data-run=run.id.clone()>
                            <span class="swatch" style=format!("background:rgb({r},{g},{b})")></span>
                            <a href=href class="name">{run_title(&run)}</a>
                            {(!run.name.trim().is_empty()).then(|| view! { " " <code class="id">{run.id.clone()}</code> })}
                            " · " <span class="model">{model}</span>
                            " · " <span class="target">{run.spec.target.clone()}</span>
                            " · " <span class="status">{status_name(&run.status)}</span>
                            {(i == 0).then(|| view! { " · " <strong>"baseline"</strong> })}
                        </li>
                    }
                }).collect_view()}
            </ul>
            <ViewControls view=view address=address without_dots=true/>
            <div class="charts">
                {Metric::ALL.into_iter().map(|metric| view! {
                    <Show when=move || view.with(|v| shows(v.charts, metric))>
                        <CompareChart metric=metric runs=runs view=view stem=stem/>
                    </Show>
                }).collect_view()}
            </div>
            <Show when=move || runs.with(|r| r.iter().any(|r| throughput::shows(&r.spec)))>
                <div class="charts" id="throughput-charts">
                    {Metric::ALL.into_iter().map(|metric| {
                        let chart = Signal::derive(move || {
                            let y = crate::chart::YScale::chosen(view.with(|v| v.y));
                            runs.with(|runs| throughput::compare_chart(runs, metric, y, &palette()))
                        });
                        view! {
                            <Show when=move || view.with(|v| shows(v.charts, metric))>
                                <ThroughputChart metric=metric chart=chart stem=stem/>
                            </Show>
                        }
                    }).collect_view()}
                </div>
            </Show>
            <div class="differences" id="differences" inner_html=move || runs.with(|r| report::differences_tables(r))></div>
        </section>
    }
}

/// One metric of every run, overlaid.
#[component]
fn CompareChart(
    /// Which metric.
    metric: Metric,
    /// The runs, the baseline first.
    #[prop(into)]
    runs: Signal<Vec<RunSummary>>,
    /// The axes and series.
    view: RwSignal<RunViewState>,
    /// The stem of the chart's file names.
    #[prop(into)]
    stem: Signal<String>,
) -> impl IntoView {
    let canvas = NodeRef::<Canvas>::new();
    let resized = use_context::<Resized>().map(|r| r.0);
    let failure = RwSignal::new(None::<String>);
    let shape = Memo::new(move |_| view.with(|v| (v.x, v.y, v.series)));
    Effect::new(move |_| {
        if let Some(r) = resized {
            r.track();
        }
        let shape = shape.get();
        let Some(canvas) = canvas.get() else { return };
        let palette = palette();
        let drawn = runs.with(|runs| {
            with_compare_chart(runs, metric, shape, &palette, |chart| {
                // Each run's means (CSS pixels), for tools that read the chart.
                let drawn = draw::on_canvas(&canvas, &palette, |root, dpr| draw::latency(root, chart, &palette, dpr));
                if let Ok(Some(layers)) = &drawn {
                    let lines: Vec<String> = layers
                        .iter()
                        .map(|at| at.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(";"))
                        .collect();
                    let _ = canvas.set_attribute("data-markers", &lines.join("|"));
                    let colours: Vec<String> =
                        (0..layers.len()).map(|i| palette.run(i)).map(|(r, g, b)| format!("{r},{g},{b}")).collect();
                    let _ = canvas.set_attribute("data-colours", &colours.join(";"));
                }
                drawn
            })
        });
        failure.set(drawn.err());
    });
    let svg = Callback::new(move |()| {
        let palette = palette();
        runs.with_untracked(|runs| {
            with_compare_chart(runs, metric, shape.get_untracked(), &palette, |chart| {
                draw::to_svg(draw::EXPORT_SIZE, &palette, |root| draw::latency(root, chart, &palette, 1.0).map(drop))
            })
        })
    });
    let key = metric.key();
    view! {
        <figure class="chart" data-chart=key>
            <figcaption>
                {title(metric)} " against prompt length "
                <a class="define" href=format!("#{}", metric_anchor(key)) title="What this metric means">"definition"</a>
                <ExportButtons key=key canvas=canvas stem=stem svg=svg/>
                <span class="legend">"one colour per run: line, the mean; the legend in the chart names the runs"</span>
            </figcaption>
            <div class="canvas-box"><canvas node_ref=canvas id=format!("chart-{key}")/></div>
            {move || failure.get().map(|f| view! { <p class="error">{f}</p> })}
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_runs_are_named() {
        assert_eq!(unknown_runs_message(&[]), None);
        assert_eq!(
            unknown_runs_message(&["x".into()]).unwrap(),
            "There is no run \"x\": the other runs are compared without it."
        );
        assert_eq!(
            unknown_runs_message(&["x".into(), "y".into(), "z".into()]).unwrap(),
            "There are no runs \"x\", \"y\" and \"z\": the other runs are compared without them."
        );
    }
}
