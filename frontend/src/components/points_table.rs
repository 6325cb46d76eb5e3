//! The points table: every number the charts show, one row per settled point. One list of
//! columns serves the run's page, which draws it as elements, and the report, which writes
//! it as HTML.

use std::fmt::Write;

use leptos::prelude::*;
use shared::api::RunSummary;
use shared::telemetry::WindowSummary;
use shared::{LiveRun, PointStats, Summary};

use crate::chart::fmt_ms;
use crate::compare::{Metric, Stat};
use crate::components::glossary::metric_anchor;
use crate::components::telemetry as server_metrics;
use crate::report::{MISSING, escape};

/// Which of the optional columns a points table has; the default has none of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableShape {
    /// Each point's load: a sweep over load levels, or open loop.
    pub load: bool,
    /// The rate sent at, the schedule's lag and TTFT from the intended send: open loop.
    pub open_loop: bool,
    /// Goodput: a sweep with objectives.
    pub goodput: bool,
    /// Triton's own statistics of the model over each point.
    pub server: bool,
    /// The means of the server's metrics: GPU utilisation, KV cache in use and queue depth,
    /// each when the run's metrics have it.
    pub metrics: [bool; 3],
    /// Whether the GPU utilisation is the simulator's stand-in.
    pub simulated_gpu: bool,
}

impl TableShape {
    /// The columns a live run's table has.
    pub fn of(run: &LiveRun) -> TableShape {
        let spec = &run.spec;
        let (metrics, simulated_gpu) = run.telemetry.as_ref().map_or(([false; 3], false), |t| {
            let simulated = t.series.iter().any(|s| s.head.label("simulated") == Some("true"));
            (server_metrics::table_columns(t), simulated)
        });
        TableShape {
            load: spec.load_levels().len() > 1 || spec.open_loop(),
            open_loop: spec.open_loop(),
            goodput: spec.slo.is_some(),
            server: run.points.iter().flatten().any(|p| p.server.is_some()),
            metrics,
            simulated_gpu,
        }
    }
}

/// What one row shows: a settled point, and the means of the server's metrics over it.
pub struct Row<'a> {
    pub point: &'a PointStats,
    pub metrics: Option<WindowSummary>,
}

/// One cell: what tools read (`data-metric`, and `data-value`, the exact value) and its text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cell {
    pub metric: Option<String>,
    pub value: Option<String>,
    pub text: String,
}

/// A cell of a value that may be missing, shown by `text`; `data-value` is empty where it is.
fn cell(metric: impl Into<String>, value: Option<f64>, text: impl Fn(f64) -> String) -> Cell {
    Cell {
        metric: Some(metric.into()),
        value: Some(value.map(|v| v.to_string()).unwrap_or_default()),
        text: value.map_or(MISSING.to_string(), text),
    }
}

/// A cell of a count.
fn count(metric: &str, n: u64) -> Cell {
    Cell { metric: Some(metric.into()), value: Some(n.to_string()), text: n.to_string() }
}

/// How a value is shown with `decimals` decimals.
fn decimals(decimals: usize) -> impl Fn(f64) -> String {
    move |v| format!("{v:.decimals$}")
}

type CellOf = Box<dyn Fn(&Row<'_>) -> Cell>;

/// A column: its head under its group's heading (empty for a group of one column) with a
/// tooltip, and how a row fills it.
pub struct Column {
    pub head: &'static str,
    pub title: Option<&'static str>,
    pub cell: CellOf,
}

/// A heading over one column, spanning both heading rows, or over several with heads of
/// their own.
pub struct Group {
    pub heading: &'static str,
    /// The glossary entry the page links the heading to.
    pub define: Option<&'static str>,
    pub title: Option<&'static str>,
    pub columns: Vec<Column>,
}

impl Group {
    /// A group of one column without a head of its own.
    fn single(heading: &'static str, define: Option<&'static str>, cell: impl Fn(&Row<'_>) -> Cell + 'static) -> Group {
        Group { heading, define, title: None, columns: vec![Column { head: "", title: None, cell: Box::new(cell) }] }
    }

    /// Whether the heading spans both heading rows.
    pub fn spans_rows(&self) -> bool {
        matches!(self.columns.as_slice(), [only] if only.head.is_empty())
    }
}

/// A column with a head of its own.
fn column(head: &'static str, title: Option<&'static str>, cell: impl Fn(&Row<'_>) -> Cell + 'static) -> Column {
    Column { head, title, cell: Box::new(cell) }
}

/// The p50 and p99 of a distribution of `key`-named cells in ms.
fn percentiles(key: &'static str, summary: fn(&PointStats) -> Option<&Summary>) -> Vec<Column> {
    [("p50", (|s: &Summary| s.p50) as fn(&Summary) -> f64), ("p99", |s: &Summary| s.p99)]
        .into_iter()
        .map(|(stat, pick)| {
            column(stat, None, move |r| cell(format!("{key}-{stat}"), summary(r.point).map(pick), fmt_ms))
        })
        .collect()
}

/// The latency metrics' groups: each statistic of each metric, in ms.
fn latency_groups() -> impl Iterator<Item = Group> {
    Metric::ALL.into_iter().map(|metric| Group {
        heading: metric.axis(),
        define: Some(metric.key()),
        title: None,
        columns: Stat::ALL
            .into_iter()
            .map(|stat| {
                column(stat.key(), None, move |r| {
                    cell(
                        format!("{}-{}", metric.key(), stat.key()),
                        metric.summary(r.point).map(|s| stat.of(s)),
                        fmt_ms,
                    )
                })
            })
            .collect(),
    })
}

/// The open-loop groups: the rate sent at, the schedule's lag and TTFT from the intended send.
fn open_loop_groups() -> [Group; 3] {
    [
        Group::single("sent/s", None, |r| cell("sent-per-s", Some(r.point.sent_per_s), decimals(2))),
        Group {
            heading: "schedule lag (ms)",
            define: Some("lag"),
            title: None,
            columns: percentiles("lag", |p| p.schedule_lag_ms.as_ref()),
        },
        Group {
            heading: "TTFT from intended (ms)",
            define: Some("ttft_intended"),
            title: None,
            columns: percentiles("ttft-intended", |p| p.ttft_intended_ms.as_ref()),
        },
    ]
}

fn goodput_group() -> Group {
    Group {
        heading: "goodput",
        define: Some("goodput"),
        title: None,
        columns: vec![
            column("met", None, |r| {
                cell("goodput-share", r.point.goodput.map(|g| g.share), |v| format!("{:.1}%", v * 100.0))
            }),
            column("per s", None, |r| cell("goodput-per-s", r.point.goodput.map(|g| g.requests_per_s), decimals(2))),
        ],
    }
}

fn server_group() -> Group {
    Group {
        heading: "server, per request (ms)",
        define: None,
        title: Some("Triton's own statistics of the model over the point, warm-up included"),
        columns: vec![
            column("queue", None, |r| cell("server-queue", r.point.server.map(|s| s.queue_ms), fmt_ms)),
            column("compute", None, |r| cell("server-compute", r.point.server.map(|s| s.compute_ms()), fmt_ms)),
        ],
    }
}

/// The server metrics' means the shape asks for; percentages as percent.
fn metrics_group(shape: &TableShape) -> Group {
    let [gpu, kv, queue] = shape.metrics;
    let (gpu_head, gpu_title) = if shape.simulated_gpu {
        ("GPU util (%, simulated)", "the simulator's stand-in for a GPU's utilisation")
    } else {
        ("GPU util (%)", "nv_gpu_utilization, the mean over GPUs")
    };
    let percent = |share: Option<f64>| share.map(|v| v * 100.0);
    let columns = [
        gpu.then(|| {
            column(gpu_head, Some(gpu_title), move |r| {
                cell("gpu-util", percent(r.metrics.and_then(|m| m.gpu_utilization)), decimals(1))
            })
        }),
        kv.then(|| {
            column("KV cache (%)", Some("vLLM's share of KV-cache in use"), move |r| {
                cell("kv-cache", percent(r.metrics.and_then(|m| m.kv_cache_usage)), decimals(1))
            })
        }),
        queue.then(|| {
            column(
                "queue depth",
                Some("Requests waiting at the server: Triton's pending requests of the model, else vLLM's waiting requests"),
                |r| cell("queue-depth", r.metrics.and_then(|m| m.queue_depth), decimals(2)),
            )
        }),
    ];
    Group {
        heading: "server metrics (mean)",
        define: None,
        title: Some(
            "Means over the scrapes of the server's metrics during each point's measured requests, warm-up left out",
        ),
        columns: columns.into_iter().flatten().collect(),
    }
}

/// The table's columns for `shape`, in order.
pub fn columns(shape: &TableShape) -> Vec<Group> {
    let mut groups = Vec::new();
    if shape.load {
        groups.push(Group::single("load", None, |r| Cell {
            metric: Some("load".into()),
            value: None,
            text: r.point.load.map(|l| l.to_string()).unwrap_or_default(),
        }));
    }
    groups.push(Group::single("prompt length", None, |r| Cell {
        text: r.point.prompt_length.to_string(),
        ..Cell::default()
    }));
    groups.push(Group::single("requests", None, |r| count("count", r.point.count)));
    groups.push(Group::single("errors", None, |r| count("errors", r.point.errors)));
    groups.extend(latency_groups());
    groups.push(Group::single("output tokens/s", Some("throughput"), |r| {
        cell("tokens-per-s", Some(r.point.output_tokens_per_s), decimals(1))
    }));
    if shape.open_loop {
        groups.extend(open_loop_groups());
    }
    if shape.goodput {
        groups.push(goodput_group());
    }
    if shape.server {
        groups.push(server_group());
    }
    if shape.metrics.contains(&true) {
        groups.push(metrics_group(shape));
    }
    groups
}

/// An HTML attribute ` name="value"`, escaped, or nothing.
fn attribute(name: &str, value: Option<&str>) -> String {
    value.map(|v| format!(" {name}=\"{}\"", escape(v))).unwrap_or_default()
}

/// A run's settled points as an HTML table of the columns every run has, for the report.
pub fn html(run: &RunSummary) -> String {
    let groups = columns(&TableShape::default());
    let mut out = format!("<table class=\"points\" data-run=\"{}\"><thead><tr>", escape(&run.id));
    for group in &groups {
        let span = if group.spans_rows() {
            "rowspan=\"2\"".to_string()
        } else {
            format!("colspan=\"{}\"", group.columns.len())
        };
        let _ = write!(out, "<th {span}{}>{}</th>", attribute("title", group.title), escape(group.heading));
    }
    out.push_str("</tr><tr>");
    for column in groups.iter().filter(|g| !g.spans_rows()).flat_map(|g| &g.columns) {
        let _ = write!(out, "<th{}>{}</th>", attribute("title", column.title), escape(column.head));
    }
    out.push_str("</tr></thead><tbody>");
    for point in &run.points {
        let row = Row { point, metrics: None };
        let _ = write!(out, "<tr data-prompt-length=\"{}\">", point.prompt_length);
        for column in groups.iter().flat_map(|g| &g.columns) {
            let cell = (column.cell)(&row);
            let _ = write!(
                out,
                "<td{}{}>{}</td>",
                attribute("data-metric", cell.metric.as_deref()),
                attribute("data-value", cell.value.as_deref()),
                escape(&cell.text)
            );
        }
        out.push_str("</tr>");
    }
    if run.points.is_empty() {
        let width: usize = groups.iter().map(|g| g.columns.len()).sum();
        let _ = write!(out, "<tr><td colspan=\"{width}\" class=\"none\">no prompt length settled</td></tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A group's heading, linked to its definition.
fn heading(group: &Group) -> impl IntoView + use<> {
    let text = group.heading;
    let label = match group.define {
        Some(key) => view! { <a href=format!("#{}", metric_anchor(key))>{text}</a> }.into_any(),
        None => text.into_any(),
    };
    let title = group.title;
    if group.spans_rows() {
        view! { <th rowspan="2" title=title>{label}</th> }.into_any()
    } else {
        view! { <th colspan=group.columns.len().to_string() title=title>{label}</th> }.into_any()
    }
}

/// Every number the charts show, one row per settled point. A sweep over load levels shows
/// each point's load; an open-loop one the rate it sent at, its schedule lag and TTFT from
/// the intended send time; one with objectives its goodput; one that read the server's
/// metrics their means over the point's measured requests. Points whose client fell behind
/// its schedule are named under the table, in words.
#[component]
pub fn PointsTable(
    /// The run, rebuilt from its events.
    run: StoredValue<LiveRun, LocalStorage>,
    /// Bumped when `run` changes.
    version: RwSignal<u64>,
) -> impl IntoView {
    let rows = move || {
        version.track();
        run.with_value(|run| {
            run.points.iter().enumerate().filter_map(|(i, p)| p.clone().map(|p| (i as u32, p))).collect::<Vec<_>>()
        })
    };
    let shape = move || {
        version.track();
        run.with_value(TableShape::of)
    };
    let warnings = move || {
        rows()
            .into_iter()
            .filter_map(|(_, p)| {
                let load = p.load.map(|l| format!(" at {l}")).unwrap_or_default();
                p.lag_warning().map(|w| format!("Prompt length {}{load}: {w}.", p.prompt_length))
            })
            .collect::<Vec<_>>()
    };
    let head = move || {
        let groups = columns(&shape());
        let heads = groups.iter().filter(|g| !g.spans_rows()).flat_map(|g| &g.columns);
        view! {
            <tr>{groups.iter().map(heading).collect_view()}</tr>
            <tr>{heads.map(|c| view! { <th title=c.title>{c.head}</th> }).collect_view()}</tr>
        }
    };
    let body = move || {
        let shape = shape();
        let groups = columns(&shape);
        let with_metrics = shape.metrics.contains(&true);
        rows()
            .into_iter()
            .map(|(i, point)| {
                let metrics =
                    with_metrics.then(|| run.with_value(|run| server_metrics::point_summary(run, i))).flatten();
                let row = Row { point: &point, metrics };
                let cells = groups
                    .iter()
                    .flat_map(|g| &g.columns)
                    .map(|column| {
                        let Cell { metric, value, text } = (column.cell)(&row);
                        view! { <td data-metric=metric data-value=value>{text}</td> }
                    })
                    .collect_view();
                view! {
                    <tr data-prompt-length=point.prompt_length.to_string() class:behind=point.lag_warning().is_some()>
                        {cells}
                    </tr>
                }
            })
            .collect_view()
    };
    view! {
        <table class="points" id="points-table">
            <thead>{head}</thead>
            <tbody>{body}</tbody>
        </table>
        <ul class="lag-warnings" id="lag-warnings">
            {move || warnings().into_iter().map(|w| view! { <li class="warning">{w}</li> }).collect_view()}
        </ul>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_table_has_the_columns_every_run_has() {
        let run = crate::view::blank_run("r<1>");
        let html = html(&run);
        let stats = "<th>mean</th><th>p50</th><th>p90</th><th>p99</th>";
        assert_eq!(
            html,
            format!(
                "<table class=\"points\" data-run=\"r&lt;1&gt;\"><thead><tr><th rowspan=\"2\">prompt length</th>\
                 <th rowspan=\"2\">requests</th><th rowspan=\"2\">errors</th><th colspan=\"4\">TTFT (ms)</th>\
                 <th colspan=\"4\">token-to-token (ms)</th><th rowspan=\"2\">output tokens/s</th></tr><tr>{stats}{stats}</tr>\
                 </thead><tbody><tr><td colspan=\"12\" class=\"none\">no prompt length settled</td></tr></tbody></table>"
            )
        );
    }

    #[test]
    fn each_optional_column_comes_with_its_shape() {
        let keys = |shape: &TableShape| {
            let point = PointStats::default();
            let row = Row { point: &point, metrics: None };
            columns(shape).iter().flat_map(|g| &g.columns).map(|c| (c.cell)(&row).metric).collect::<Vec<_>>()
        };
        let all = TableShape {
            load: true,
            open_loop: true,
            goodput: true,
            server: true,
            metrics: [true, false, true],
            simulated_gpu: true,
        };
        let keys = keys(&all).into_iter().flatten().collect::<Vec<_>>().join(" ");
        assert_eq!(
            keys,
            "load count errors ttft-mean ttft-p50 ttft-p90 ttft-p99 t2t-mean t2t-p50 t2t-p90 t2t-p99 tokens-per-s \
             sent-per-s lag-p50 lag-p99 ttft-intended-p50 ttft-intended-p99 goodput-share goodput-per-s \
             server-queue server-compute gpu-util queue-depth"
        );
        let missing = cell("lag-p50", None, fmt_ms);
        assert_eq!((missing.value.as_deref(), missing.text.as_str()), (Some(""), MISSING));
        assert_eq!(metrics_group(&all).columns[0].head, "GPU util (%, simulated)");
    }
}
