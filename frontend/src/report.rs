//! The offline report: one HTML file of a run or a comparison, with its charts as inline
//! SVG, its tables and the metric definitions. It holds no script and no URL (styles are
//! inline, fonts are the system's, and its content security policy forbids loading
//! anything), so it opens from disk with no network and no server. Every text a user gave
//! (names, notes, tags) and every name a server gave (models, targets) is escaped.
//!
//! The tables are built here once, as HTML, for the report and for the comparison page.

use std::fmt::Write;

use crate::compare::{Metric, Stat, differences, prompt_lengths};
use crate::view::run_title;
use shared::api::RunSummary;
use shared::capacity::Capacity;
use shared::metrics::{METRICS, STATISTICS_NOTE};
use shared::{ModelInfo, PointStats, RunStatus, Summary, SweepSpec};

use crate::chart::fmt_ms;

/// Escapes text for HTML content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A file name's part made of `A-Z a-z 0-9 - _ .` only: anything else becomes `_`.
pub fn file_part(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect()
}

/// `tokenscope-ID` for one run, `tokenscope-compare-ID1-ID2...` for several: the stem of
/// every file the page saves for them.
pub fn file_stem(ids: &[String]) -> String {
    let ids: Vec<String> = ids.iter().map(|id| file_part(id)).collect();
    match ids.as_slice() {
        [one] => format!("tokenscope-{one}"),
        _ => format!("tokenscope-compare-{}", ids.join("-")),
    }
}

/// A run's status in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusWords {
    /// Its short name: `running`, `completed`, `cancelled`, `failed` or `interrupted`, as
    /// lists show it and pages' `data-state` holds it.
    pub name: &'static str,
    /// A sentence, lower case, that says also what a run that stopped early kept, and why.
    pub sentence: String,
}

impl StatusWords {
    /// The sentence with a capital first letter, as a heading shows it. Each sentence begins
    /// with a word of ours, in ASCII, so the page needs no Unicode case tables for it.
    pub fn capitalised(&self) -> String {
        let mut sentence = self.sentence.clone();
        if let Some(first) = sentence.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        sentence
    }
}

/// A run's status in words, as every page and the report show it.
pub fn status_words(status: &RunStatus) -> StatusWords {
    const KEPT: &str = "What finished before is kept";
    let (name, sentence) = match status {
        RunStatus::Running => ("running", "running".into()),
        RunStatus::Completed => ("completed", "completed".into()),
        RunStatus::Cancelled => ("cancelled", "cancelled: what finished before is kept".into()),
        RunStatus::Failed { error } => ("failed", format!("stopped by a fault: {error}. {KEPT}")),
        RunStatus::Interrupted => {
            ("interrupted", format!("interrupted: the dashboard stopped before the run ended. {KEPT}"))
        }
    };
    StatusWords { name, sentence }
}

/// The sweep in one line: model, target, streaming, tokens, requests, load, objectives.
pub fn spec_line(spec: &SweepSpec, model: Option<&ModelInfo>) -> String {
    let model = match model {
        Some(m) if m.inputs.is_empty() => m.name.clone(),
        Some(m) => format!("{} ({} style)", m.name, m.input_style),
        None => spec.model.clone(),
    };
    let objectives = spec.slo.map(|slo| format!(" · objectives {slo}")).unwrap_or_default();
    let measured = match spec.duration_s {
        Some(s) => format!("{s} s per point (at most {} requests)", spec.requests),
        None => format!("{} requests per point", spec.requests),
    };
    let warmup = match spec.warmup_s {
        Some(s) => format!("{s} s warm-up, at most {}", spec.warmup),
        None => format!("{} warm-up", spec.warmup),
    };
    format!(
        "{model} at {} over {} · {} · {}max_tokens {}{}{} · {measured} (+{warmup}) · {}{objectives}",
        spec.target,
        spec.protocol_words(),
        if spec.streaming { "streaming" } else { "non-streaming" },
        prompt_words(spec),
        spec.max_tokens,
        spec.output_stddev.map(|s| format!(" ± {s} (drawn per request)")).unwrap_or_default(),
        if spec.ignore_eos { ", ignore_eos" } else { "" },
        load_words(spec)
    )
}

/// How a sweep's prompts are made, in words, when not the usual way.
fn prompt_words(spec: &SweepSpec) -> String {
    let mut parts = Vec::new();
    if let Some(s) = spec.prompt_stddev {
        parts.push(format!("prompt lengths ± {s} (drawn per request)"));
    }
    if let Some(prefix) = spec.shared_prefix {
        let unit = if spec.tokenizer.is_some() { "tokens" } else { "words" };
        parts.push(format!("a shared prefix of {prefix} {unit}"));
    }
    parts.into_iter().map(|p| p + " · ").collect()
}

/// How a sweep loads the server, in words.
pub fn load_words(spec: &SweepSpec) -> String {
    let list = |values: Vec<String>| values.join(", ");
    let arrivals = || {
        let most = spec.max_concurrency.map(|m| format!(", at most {m} in flight")).unwrap_or_default();
        format!("{} arrivals, seed {}{most}", spec.arrival.name(), spec.seed)
    };
    if let Some(search) = &spec.capacity {
        format!(
            "capacity search: goodput at least {}, from {} req/s, at most {} probes ({})",
            shared::capacity::percent(search.goodput),
            shared::capacity::fmt_rate(search.start_rate),
            search.probes,
            arrivals()
        )
    } else if spec.open_loop() {
        format!(
            "request rates {} req/s ({})",
            list(spec.request_rates.iter().map(f64::to_string).collect()),
            arrivals()
        )
    } else if spec.concurrencies.is_empty() {
        format!("concurrency {}", spec.concurrency)
    } else {
        format!("concurrency {}", list(spec.concurrencies.iter().map(u32::to_string).collect()))
    }
}

/// `2026-11-28 14:05 UTC`.
pub fn fmt_utc(unix_ns: i64) -> String {
    let (year, month, day, hour, minute, _) = shared::civil::utc(unix_ns.div_euclid(1_000_000_000));
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

/// A signed difference in milliseconds: `+1.25`, `−0.500`.
pub fn fmt_delta_ms(value: f64) -> String {
    signed(value, fmt_ms(value.abs()))
}

/// A signed percentage: `+4.5 %`.
pub fn fmt_percent(value: f64) -> String {
    signed(value, format!("{:.1} %", value.abs()))
}

/// `magnitude` (the value's size as shown) with the value's sign; one that shows as zero
/// gets `±`, so a tiny difference never reads as `−0.0`.
fn signed(value: f64, magnitude: String) -> String {
    let shows_zero = !magnitude.chars().any(|c| ('1'..='9').contains(&c));
    let sign = if shows_zero || value == 0.0 {
        "±"
    } else if value > 0.0 {
        "+"
    } else {
        "−"
    };
    format!("{sign}{magnitude}")
}

/// What a table shows where a value is missing.
pub const MISSING: &str = "—";

/// One table per metric: every run after the first against the first (the baseline), per
/// prompt length of any run, each statistic's difference in ms and in percent; "—" where
/// a run lacks the length (or the metric) and, for the percentage, where the baseline is 0.
pub fn differences_tables(runs: &[RunSummary]) -> String {
    let Some((baseline, others)) = runs.split_first() else { return String::new() };
    let lengths = prompt_lengths(runs.iter().map(|r| r.points.as_slice()));
    let mut out = String::new();
    for metric in Metric::ALL {
        let _ = write!(
            out,
            "<table class=\"differences\" id=\"differences-{key}\" data-metric=\"{key}\">\
             <caption>{} against the baseline, {}</caption><thead><tr><th rowspan=\"2\">prompt length</th>\
             <th rowspan=\"2\">run</th>",
            metric.title(),
            escape(&run_title(baseline)),
            key = metric.key()
        );
        for stat in Stat::ALL {
            let _ = write!(out, "<th colspan=\"2\">{}</th>", stat.key());
        }
        out.push_str("</tr><tr>");
        for _ in Stat::ALL {
            out.push_str("<th>Δ ms</th><th>Δ %</th>");
        }
        out.push_str("</tr></thead><tbody>");
        for run in others {
            for row in differences(&baseline.points, &run.points, metric, &lengths) {
                let _ = write!(
                    out,
                    "<tr data-run=\"{}\" data-prompt-length=\"{length}\"><td>{length}</td><td>{}</td>",
                    escape(&run.id),
                    escape(&run_title(run)),
                    length = row.prompt_length
                );
                for (stat, diff) in Stat::ALL.iter().zip(row.differences) {
                    let (ms, ms_text) = diff.map_or((String::new(), MISSING.to_string()), |d| {
                        (d.absolute.to_string(), fmt_delta_ms(d.absolute))
                    });
                    let (pct, pct_text) = diff
                        .and_then(|d| d.percent)
                        .map_or_else(|| (String::new(), MISSING.to_string()), |p| (p.to_string(), fmt_percent(p)));
                    let title = if diff.is_some_and(|d| d.percent.is_none()) {
                        " title=\"the baseline is 0: no percentage\""
                    } else {
                        ""
                    };
                    let _ = write!(
                        out,
                        "<td data-diff=\"{k}-ms\" data-value=\"{ms}\">{ms_text}</td>\
                         <td data-diff=\"{k}-pct\" data-value=\"{pct}\"{title}>{pct_text}</td>",
                        k = stat.key()
                    );
                }
                out.push_str("</tr>");
            }
        }
        out.push_str("</tbody></table>");
    }
    out
}

/// A chart for the report: its caption and its SVG document.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportChart {
    /// `ttft`, `t2t`, ...
    pub key: String,
    pub caption: String,
    pub svg: String,
}

/// An SVG document as an element inside HTML, which needs no namespace declaration.
fn inline_svg(svg: &str) -> String {
    svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1).replacen(
        "<svg ",
        "<svg role=\"img\" preserveAspectRatio=\"xMinYMin meet\" ",
        1,
    )
}

const STYLE: &str = "\
:root{color-scheme:light;font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;line-height:1.5;color:#1d1f23;background:#fdfdfc}\
body{margin:0 auto;max-width:72rem;padding:2rem 1.5rem}\
h1{margin:0;color:#2f6fde;font-size:1.8rem}h2{font-size:1.25rem;margin:2rem 0 .25rem}\
.generated,.spec,.unit,.none{color:#5b6270}\
code{font-size:.85em;color:#5b6270}\
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;margin:.5rem 0}\
dl.facts dt{color:#5b6270}dl.facts dd{margin:0}\
.notes{white-space:pre-wrap}\
ul.tags{display:inline-flex;flex-wrap:wrap;gap:.3rem;list-style:none;padding:0;margin:0}\
ul.tags li{background:#f1f3f6;border:1px solid #d9dde4;border-radius:1rem;padding:0 .55rem;font-size:.8rem}\
.swatch{display:inline-block;width:1.2rem;height:.25rem;vertical-align:middle;margin-right:.4rem;border-radius:.1rem}\
figure{margin:1rem 0}figcaption{font-weight:600;margin-bottom:.25rem}\
figure svg{display:block;max-width:100%;height:auto;border:1px solid #d9dde4;border-radius:.5rem}\
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;font-size:.9rem;margin:.5rem 0 1.5rem}\
th,td{border-bottom:1px solid #d9dde4;padding:.3rem .5rem;text-align:right}\
th{color:#5b6270;font-weight:600;text-align:center}caption{text-align:left;font-weight:600;padding:.25rem 0}\
.glossary{background:#f1f3f6;border:1px solid #d9dde4;border-radius:.5rem;padding:.5rem 1.5rem 1rem;margin-top:2rem}\
.glossary dt{font-weight:600;margin-top:1rem}.glossary dd{margin:.25rem 0 0}\
@media print{body{max-width:none;padding:0}figure,table{break-inside:avoid}}";

/// The report of one run (`runs` has one) or of a comparison (the first run is the
/// baseline), with `charts` as drawn, as one self-contained HTML document.
pub fn html(runs: &[RunSummary], charts: &[ReportChart], generated_unix_ns: i64) -> String {
    let comparison = runs.len() > 1;
    let title = if comparison {
        format!("tokenscope: {}", runs.iter().map(run_title).collect::<Vec<_>>().join(" vs "))
    } else {
        format!("tokenscope: run {}", runs.first().map(run_title).unwrap_or_default())
    };
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n<header><h1>{}</h1>\
         <p class=\"generated\">Written by the tokenscope dashboard on {}. Every number is the proxy's, \
         measured on one monotonic clock; definitions at the end.</p></header>\n",
        escape(&title),
        escape(&title),
        fmt_utc(generated_unix_ns)
    );
    for (i, run) in runs.iter().enumerate() {
        let role = if comparison && i == 0 { " (baseline)" } else { "" };
        let _ = write!(
            out,
            "<section class=\"run\" data-run=\"{id}\"><h2>{}{role} <code>{id}</code></h2>\
             <p class=\"spec\">{}</p><dl class=\"facts\">",
            escape(&run_title(run)),
            escape(&spec_line(&run.spec, run.model.as_ref())),
            id = escape(&run.id)
        );
        let mut fact = |term: &str, value: String| {
            let _ = write!(out, "<dt>{term}</dt><dd>{value}</dd>");
        };
        fact("model", escape(&run.model.as_ref().map_or(run.spec.model.clone(), |m| m.name.clone())));
        fact("target", escape(&run.spec.target));
        fact("protocol", escape(&run.spec.protocol_words()));
        let mut status = status_words(&run.status).sentence;
        if run.status == RunStatus::Running {
            status.push_str(" (the report holds what had settled)");
        }
        fact("status", escape(&status));
        fact("started", fmt_utc(run.started_unix_ns));
        if let (Some(search), Some(capacity)) =
            (&run.spec.capacity, Capacity::of_run(&run.spec, run.points.iter().map(Some), run.status.ended_early()))
        {
            fact("capacity", escape(&capacity.headline(search)));
        }
        fact("prompt lengths", run.spec.prompt_lengths.iter().map(u32::to_string).collect::<Vec<_>>().join(", "));
        fact(
            "requests",
            format!("{} of {} finished, {} errors", run.finished_requests, run.total_requests, run.errors),
        );
        if run.simulated {
            fact("server", "the built-in simulated Triton".into());
        }
        if !run.tags.is_empty() {
            let tags: String = run.tags.iter().map(|t| format!("<li>{}</li>", escape(t))).collect();
            fact("tags", format!("<ul class=\"tags\">{tags}</ul>"));
        }
        if !run.notes.trim().is_empty() {
            fact("notes", format!("<span class=\"notes\">{}</span>", escape(&run.notes)));
        }
        out.push_str("</dl>");
        out.push_str(&crate::components::points_table::html(run));
        out.push_str("</section>\n");
    }
    if !charts.is_empty() {
        out.push_str("<section class=\"charts\"><h2>Charts</h2>");
        for chart in charts {
            let _ = writeln!(
                out,
                "<figure class=\"chart\" data-chart=\"{}\"><figcaption>{}</figcaption>{}</figure>",
                escape(&chart.key),
                escape(&chart.caption),
                inline_svg(&chart.svg)
            );
        }
        out.push_str("</section>\n");
    }
    if comparison {
        out.push_str("<section class=\"comparison\" id=\"differences\"><h2>Differences</h2>");
        out.push_str(&differences_tables(runs));
        out.push_str("</section>\n");
    }
    out.push_str("<section class=\"glossary\"><h2>What the numbers mean</h2><dl>");
    for metric in METRICS {
        let _ = write!(
            out,
            "<dt>{} <span class=\"unit\">({})</span></dt><dd>{}</dd>",
            escape(metric.name),
            escape(metric.unit),
            escape(metric.definition)
        );
    }
    let _ = write!(out, "</dl><p>{}</p></section>\n</body></html>\n", escape(STATISTICS_NOTE));
    out
}

/// The points a run's summary has settled, as the charts take them.
pub fn settled(points: &[PointStats], metric: Metric) -> Vec<(u32, Summary)> {
    points.iter().filter_map(|p| metric.summary(p).map(|s| (p.prompt_length, s.clone()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::api::RunSummary;

    fn summary(mean: f64) -> Summary {
        Summary {
            count: 4,
            mean,
            min: mean,
            max: mean,
            std: 0.0,
            p50: mean,
            p90: mean,
            p95: mean,
            p99: mean,
            p999: None,
        }
    }

    fn point(length: u32, ttft: f64, t2t: Option<f64>) -> PointStats {
        PointStats {
            prompt_length: length,
            count: 4,
            errors: 0,
            ttft_ms: Some(summary(ttft)),
            t2t_ms: t2t.map(summary),
            tpot_ms: None,
            e2e_ms: None,
            output_tokens: None,
            input_tokens: None,
            requests_per_s: 10.0,
            output_tokens_per_s: 80.5,
            ..PointStats::default()
        }
    }

    fn run(id: &str, name: &str, points: Vec<PointStats>) -> RunSummary {
        RunSummary {
            spec: SweepSpec {
                model: "m<odel>".into(),
                target: "http://127.0.0.1:8001".into(),
                prompt_lengths: points.iter().map(|p| p.prompt_length).collect(),
                ..SweepSpec::default()
            },
            started_unix_ns: 1_764_338_700_000_000_000,
            simulated: true,
            total_requests: 10,
            finished_requests: 10,
            points,
            name: name.into(),
            notes: "a <script>alert(1)</script> & 'quotes'".into(),
            tags: vec!["fp8\"><b>x</b>".into()],
            ..crate::view::blank_run(id)
        }
    }

    /// Nothing in the document would run or load anything.
    fn assert_offline(html: &str) {
        let lower = html.to_ascii_lowercase();
        for banned in [
            "<script",
            "<img",
            "<link",
            "<iframe",
            "<object",
            "<embed",
            "src=",
            "href=",
            "url(",
            "@import",
            "javascript:",
        ] {
            assert!(!lower.contains(banned), "the report holds {banned:?}");
        }
        // No attribute loads or runs anything: every `on...=` is inside escaped text.
        assert!(!lower.contains(" onload=") && !lower.contains(" onerror="));
        // The only `http` besides the policy's `http-equiv` is the target address, as text.
        assert_eq!(
            lower.matches("http").count(),
            lower.matches("http://127.0.0.1:8001").count() + lower.matches("http-equiv").count()
        );
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
        assert_eq!(file_part("a/b c.d"), "a_b_c.d");
        assert_eq!(file_stem(&["20261128-1".into()]), "tokenscope-20261128-1");
        assert_eq!(file_stem(&["a".into(), "b/c".into()]), "tokenscope-compare-a-b_c");
        assert_eq!(fmt_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(fmt_utc(1_764_338_700_000_000_000), "2025-11-28 14:05 UTC");
        assert_eq!(fmt_utc(951_782_400_000_000_000), "2000-02-29 00:00 UTC");
        assert_eq!(
            (fmt_delta_ms(1.25), fmt_delta_ms(-0.5), fmt_delta_ms(0.0)),
            ("+1.25".into(), "−0.500".into(), "±0.000".into())
        );
        assert_eq!(fmt_percent(-12.345), "−12.3 %");
        assert_eq!(
            (fmt_percent(-0.04), fmt_percent(0.04), fmt_percent(0.05)),
            ("±0.0 %".into(), "±0.0 %".into(), "+0.1 %".into())
        );
    }

    #[test]
    fn a_status_reads_the_same_everywhere() {
        let failed = status_words(&RunStatus::Failed { error: "no route".into() });
        assert_eq!(failed.name, "failed");
        assert_eq!(failed.capitalised(), "Stopped by a fault: no route. What finished before is kept");
        assert_eq!(status_words(&RunStatus::Completed).capitalised(), "Completed");
        let running = run("r", "", Vec::new());
        let html = html(&[RunSummary { status: RunStatus::Running, ..running }], &[], 0);
        assert!(html.contains("<dd>running (the report holds what had settled)</dd>"), "{html}");
    }

    #[test]
    fn a_run_report_is_self_contained() {
        let one = run("r-1", "base <b>", vec![point(16, 10.0, Some(2.0)), point(64, 12.0, None)]);
        let svg = "<svg width=\"10\" height=\"10\" viewBox=\"0 0 10 10\" xmlns=\"http://www.w3.org/2000/svg\">\n<polyline points=\"1,1 2,2\"/>\n</svg>\n";
        let charts = [ReportChart { key: "ttft".into(), caption: "TTFT <ms>".into(), svg: svg.into() }];
        let html = html(std::slice::from_ref(&one), &charts, 0);
        assert_offline(&html);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<title>tokenscope: run base &lt;b&gt;</title>"));
        assert!(html.contains("a &lt;script&gt;alert(1)&lt;/script&gt; &amp; &#39;quotes&#39;"));
        assert!(html.contains("<li>fp8&quot;&gt;&lt;b&gt;x&lt;/b&gt;</li>"));
        assert!(html.contains("m&lt;odel&gt;"));
        assert!(html.contains("<svg role=\"img\" preserveAspectRatio=\"xMinYMin meet\" width=\"10\""), "{html}");
        assert!(html.contains("<figcaption>TTFT &lt;ms&gt;</figcaption>"));
        // The table's values, exactly, and a dash for the missing token-to-token statistics.
        assert!(html.contains("<td data-metric=\"ttft-mean\" data-value=\"12\">12.00</td>"));
        assert!(html.contains("<td data-metric=\"t2t-p99\" data-value=\"\">—</td>"));
        // The definitions.
        for metric in METRICS {
            assert!(html.contains(&escape(metric.definition)), "{}", metric.key);
        }
        assert!(!html.contains("Differences"), "one run compares nothing");
    }

    #[test]
    fn a_comparison_report_has_the_differences() {
        let baseline = run("a", "", vec![point(16, 10.0, Some(2.0)), point(64, 0.0, Some(1.0))]);
        let other = run("b", "tuned", vec![point(16, 12.5, Some(1.5)), point(128, 40.0, None)]);
        let html = html(&[baseline, other], &[], 0);
        assert_offline(&html);
        assert!(html.contains("<title>tokenscope: a vs tuned</title>"));
        assert!(html.contains("a (baseline) <code>a</code>"));
        let tables = html.split("id=\"differences-").count() - 1;
        assert_eq!(tables, 2, "one table per metric");
        // 12.5 against 10: +2.5 ms, +25 %.
        assert!(html.contains("<td data-diff=\"mean-ms\" data-value=\"2.5\">+2.50</td><td data-diff=\"mean-pct\" data-value=\"25\">+25.0 %</td>"));
        // 1.5 against 2: -0.5 ms, -25 %.
        assert!(html.contains("<td data-diff=\"p99-ms\" data-value=\"-0.5\">−0.500</td><td data-diff=\"p99-pct\" data-value=\"-25\">−25.0 %</td>"));
        // 64 is the baseline's only (a zero mean there), 128 the other's only: dashes.
        let row = |metric: &str, length: u32| {
            let table = html.split(&format!("id=\"differences-{metric}\"")).nth(1).unwrap();
            let start = table.find(&format!("data-prompt-length=\"{length}\"")).unwrap();
            table[start..start + table[start..].find("</tr>").unwrap()].to_string()
        };
        for length in [64, 128] {
            let row = row("ttft", length);
            assert_eq!(row.matches(">—</td>").count(), 8, "{row}");
        }
        let row16 = row("ttft", 16);
        assert_eq!(row16.matches(">—</td>").count(), 0, "{row16}");
    }

    #[test]
    fn a_zero_baseline_shows_no_percentage() {
        let baseline = run("a", "", vec![point(16, 0.0, None)]);
        let other = run("b", "", vec![point(16, 3.0, None)]);
        let tables = differences_tables(&[baseline, other]);
        assert!(tables.contains(
            "<td data-diff=\"mean-ms\" data-value=\"3\">+3.00</td><td data-diff=\"mean-pct\" data-value=\"\" title=\"the baseline is 0: no percentage\">—</td>"
        ), "{tables}");
    }
}
