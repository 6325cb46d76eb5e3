//! What a page shows, as its URL's query string: a run's chart controls, the runs list's
//! filters and a sweep spec to open in the form. Encoding leaves defaults out; decoding
//! never fails, it falls back to the default for anything unknown or malformed.

use shared::api::RunSummary;

/// Percent-encodes a query value: every byte outside `A-Z a-z 0-9 - . _ ~` becomes `%XX`.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes a percent-encoded query value (`+` is a space). `None` when an escape is
/// malformed or the bytes are not UTF-8.
pub fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The decoded `key=value` pairs of a query string, with or without its leading `?`.
/// Pairs that cannot be decoded are left out.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .trim_start_matches('?')
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(key)?, percent_decode(value)?))
        })
        .collect()
}

/// The last value of `key` in decoded pairs: a later repetition wins.
fn last<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A query string (`?a=1&b=2`, or empty when there are no pairs) with every value encoded.
pub fn to_query(pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", percent_encode(v))).collect();
    format!("?{}", joined.join("&"))
}

/// Which latency charts a run's page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Charts {
    #[default]
    Both,
    Ttft,
    T2t,
}

/// How prompt lengths map onto the horizontal axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XAxis {
    /// Log when the lengths span a factor of 8 or more, linear otherwise.
    #[default]
    Auto,
    Linear,
    Log,
}

/// How latencies map onto the vertical axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum YAxis {
    /// From zero.
    #[default]
    Linear,
    /// Log: small and large latencies both readable.
    Log,
}

/// The names each choice has in the query and in the page's controls; the first is the
/// default.
macro_rules! named {
    ($ty:ty { $($variant:ident = $key:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$(<$ty>::$variant),+];

            pub fn key(self) -> &'static str {
                match self { $(<$ty>::$variant => $key),+ }
            }

            /// The choice named `key` (any case), if any.
            pub fn parse(key: &str) -> Option<$ty> {
                Self::ALL.iter().copied().find(|c| c.key().eq_ignore_ascii_case(key.trim()))
            }
        }
    };
}

named!(Charts { Both = "both", Ttft = "ttft", T2t = "t2t" });
named!(XAxis { Auto = "auto", Linear = "linear", Log = "log" });
named!(YAxis { Linear = "linear", Log = "log" });

/// One thing a latency chart can draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    /// The mean, as a line with markers.
    Mean,
    P50,
    P90,
    P99,
    /// The band from p50 to p99.
    Band,
    /// Single requests as dots.
    Dots,
}

impl Series {
    /// Every series, in the order the controls and the query list them.
    pub const ALL: [Series; 6] = [Self::Mean, Self::P50, Self::P90, Self::P99, Self::Band, Self::Dots];

    /// The name in the query string and in element ids.
    pub fn key(self) -> &'static str {
        match self {
            Self::Mean => "mean",
            Self::P50 => "p50",
            Self::P90 => "p90",
            Self::P99 => "p99",
            Self::Band => "band",
            Self::Dots => "dots",
        }
    }

    /// The label next to its checkbox.
    pub fn label(self) -> &'static str {
        match self {
            Self::Mean => "mean",
            Self::P50 => "p50",
            Self::P90 => "p90",
            Self::P99 => "p99",
            Self::Band => "p50–p99 band",
            Self::Dots => "single requests",
        }
    }

    fn bit(self) -> u8 {
        1 << Self::ALL.iter().position(|&s| s == self).unwrap_or(0)
    }
}

/// The series a chart draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesSet(u8);

impl Default for SeriesSet {
    /// The mean line, the band and the dots.
    fn default() -> Self {
        Self::of(&[Series::Mean, Series::Band, Series::Dots])
    }
}

impl SeriesSet {
    pub const NONE: SeriesSet = SeriesSet(0);

    pub fn of(series: &[Series]) -> Self {
        Self(series.iter().fold(0, |bits, s| bits | s.bit()))
    }

    pub fn contains(self, series: Series) -> bool {
        self.0 & series.bit() != 0
    }

    /// This set with `series` shown or hidden.
    pub fn with(self, series: Series, shown: bool) -> Self {
        if shown { Self(self.0 | series.bit()) } else { Self(self.0 & !series.bit()) }
    }

    /// `mean,band,dots`, or `none`.
    pub fn encode(self) -> String {
        let keys: Vec<&str> = Series::ALL.into_iter().filter(|&s| self.contains(s)).map(Series::key).collect();
        if keys.is_empty() { "none".into() } else { keys.join(",") }
    }

    /// Reads [`SeriesSet::encode`]'s form; unknown names are skipped, and a list with no
    /// known name is `None`.
    pub fn decode(text: &str) -> Option<Self> {
        if text.trim() == "none" {
            return Some(Self::NONE);
        }
        let known: Vec<Series> = text
            .split(',')
            .filter_map(|key| Series::ALL.into_iter().find(|s| s.key().eq_ignore_ascii_case(key.trim())))
            .collect();
        (!known.is_empty()).then(|| Self::of(&known))
    }
}

/// The longest `server=` value a view keeps: a metric family's name or a series' number,
/// with its prefix.
pub const MAX_SERVER_METRIC_BYTES: usize = 200;

/// Everything that changes what a run's page shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunViewState {
    /// `metric=ttft|t2t`: one latency chart only; both by default.
    pub charts: Charts,
    /// `x=linear|log`; automatic by default.
    pub x: XAxis,
    /// `y=log`; linear by default.
    pub y: YAxis,
    /// `series=mean,p50,p90,p99,band,dots` (or `none`); mean, band and dots by default.
    pub series: SeriesSet,
    /// `len=256`: the prompt length the inspector shows; by default it follows the run.
    pub length: Option<u32>,
    /// `pt=4`: the point (0-based: a prompt length at a load level) the inspector shows, for
    /// a sweep over load levels; it wins over `len`.
    pub point: Option<u32>,
    /// `req=3`: the request (1-based) the inspector's timeline shows; by default the latest
    /// finished one.
    pub request: Option<u32>,
    /// `server=family:nv_gpu_utilization` or `server=series:3`: the server metric the
    /// telemetry charts show; by default the most telling one the run read.
    pub server_metric: Option<String>,
}

impl RunViewState {
    /// The query's pairs for every value that is not the default, in a fixed order.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if self.charts != Charts::default() {
            pairs.push(("metric", self.charts.key().to_string()));
        }
        if self.x != XAxis::default() {
            pairs.push(("x", self.x.key().to_string()));
        }
        if self.y != YAxis::default() {
            pairs.push(("y", self.y.key().to_string()));
        }
        if self.series != SeriesSet::default() {
            pairs.push(("series", self.series.encode()));
        }
        if let Some(length) = self.length {
            pairs.push(("len", length.to_string()));
        }
        if let Some(point) = self.point {
            pairs.push(("pt", point.to_string()));
        }
        if let Some(request) = self.request {
            pairs.push(("req", request.to_string()));
        }
        if let Some(metric) = &self.server_metric {
            pairs.push(("server", metric.clone()));
        }
        pairs
    }

    /// Reads the state from decoded pairs; other keys are ignored, so a query may carry
    /// more than one state.
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let get = |key| last(pairs, key).map(|v| v.trim().to_ascii_lowercase());
        Self {
            charts: get("metric").and_then(|v| Charts::parse(&v)).unwrap_or_default(),
            x: get("x").and_then(|v| XAxis::parse(&v)).unwrap_or_default(),
            y: get("y").and_then(|v| YAxis::parse(&v)).unwrap_or_default(),
            series: get("series").and_then(|s| SeriesSet::decode(&s)).unwrap_or_default(),
            length: get("len").and_then(|v| v.parse().ok()),
            point: get("pt").and_then(|v| v.parse().ok()),
            request: get("req").and_then(|v| v.parse().ok()).filter(|&n: &u32| n >= 1),
            server_metric: last(pairs, "server").and_then(server_metric),
        }
    }

    pub fn to_query(&self) -> String {
        to_query(&self.pairs())
    }

    pub fn from_query(query: &str) -> Self {
        Self::from_pairs(&query_pairs(query))
    }
}

/// A `server=` value the telemetry charts can use: `family:NAME` (a metric name's characters)
/// or `series:N`, and not longer than [`MAX_SERVER_METRIC_BYTES`].
fn server_metric(value: &str) -> Option<String> {
    let value = value.trim();
    let fits = |name: &str| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    let good = value.len() <= MAX_SERVER_METRIC_BYTES
        && match (value.strip_prefix("family:"), value.strip_prefix("series:")) {
            (Some(name), _) => fits(name),
            (_, Some(n)) => n.parse::<u32>().is_ok(),
            _ => false,
        };
    good.then(|| value.to_string())
}

/// The runs list's filters: a run is listed when each non-empty filter matches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListFilter {
    /// `model=`: part of the model's name.
    pub model: String,
    /// `target=`: part of the target's address.
    pub target: String,
    /// `tag=`: part of one of the run's tags.
    pub tag: String,
}

impl ListFilter {
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        [("model", &self.model), ("target", &self.target), ("tag", &self.tag)]
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| (k, v.clone()))
            .collect()
    }

    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let get = |key| last(pairs, key).unwrap_or_default().to_string();
        Self { model: get("model"), target: get("target"), tag: get("tag") }
    }

    pub fn is_empty(&self) -> bool {
        self.pairs().is_empty()
    }

    /// Whether the run passes every filter; each compares without regard to case.
    pub fn matches(&self, run: &RunSummary) -> bool {
        let has = |text: &str, part: &str| lower_case(text).contains(lower_case(part.trim()).as_str());
        has(&run.spec.model, &self.model)
            && has(&run.spec.target, &self.target)
            && (self.tag.trim().is_empty() || run.tags.iter().any(|tag| has(tag, &self.tag)))
    }
}

/// `text` in lower case, by the browser's Unicode tables in the page (so that the page's
/// WebAssembly carries none of its own), by Rust's elsewhere.
fn lower_case(text: &str) -> String {
    #[cfg(target_arch = "wasm32")]
    return js_sys::JsString::from(text).to_lower_case().into();
    #[cfg(not(target_arch = "wasm32"))]
    text.to_lowercase()
}

/// The runs that pass `filter`, newest first.
pub fn list_runs<'a>(runs: &'a [RunSummary], filter: &ListFilter) -> Vec<&'a RunSummary> {
    let mut listed: Vec<&RunSummary> = runs.iter().filter(|run| filter.matches(run)).collect();
    // Run ids are unique, so the order is total and an unstable sort gives the one answer.
    listed.sort_unstable_by(|a, b| b.started_unix_ns.cmp(&a.started_unix_ns).then_with(|| b.id.cmp(&a.id)));
    listed
}

/// What a comparison's page shows: `runs=ID1,ID2,...` (the first is the baseline) and the
/// chart keys of a run's page (`metric`, `x`, `y`, `series`); the inspector's keys do not
/// apply to a comparison and are left out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompareState {
    /// The runs' ids in the order given, each once.
    pub runs: Vec<String>,
    /// The charts' controls.
    pub view: RunViewState,
}

impl CompareState {
    pub fn new(runs: Vec<String>, view: RunViewState) -> Self {
        let mut unique: Vec<String> = Vec::with_capacity(runs.len());
        for id in runs.into_iter().map(|id| id.trim().to_string()).filter(|id| !id.is_empty()) {
            if !unique.contains(&id) {
                unique.push(id);
            }
        }
        Self { runs: unique, view: RunViewState { length: None, point: None, request: None, ..view } }
    }

    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if !self.runs.is_empty() {
            pairs.push(("runs", self.runs.join(",")));
        }
        pairs.extend(RunViewState { length: None, point: None, request: None, ..self.view.clone() }.pairs());
        pairs
    }

    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let runs = last(pairs, "runs").unwrap_or_default().split(',').map(str::to_string).collect();
        Self::new(runs, RunViewState::from_pairs(pairs))
    }

    /// `/compare?runs=...`.
    pub fn path(&self) -> String {
        format!("/compare{}", to_query(&self.pairs()))
    }
}

/// `spec=<the spec's JSON, percent-encoded>`, the query of `/new` that opens the form
/// filled with a spec, serialised by the caller.
pub fn spec_query(spec_json: &str) -> String {
    to_query(&[("spec", spec_json.to_string())])
}

/// The `spec` value of a query, decoded but not parsed: `None` when there is none,
/// `Some(Err)` when it cannot be decoded.
pub fn spec_in_query(query: &str) -> Option<Result<String, String>> {
    let raw = query.trim_start_matches('?').split('&').rev().find_map(|pair| pair.strip_prefix("spec="))?;
    Some(percent_decode(raw).ok_or_else(|| "its percent-encoding is broken".to_string()))
}

/// A run's name for lists and titles: the name the user gave, else its id.
pub fn run_title(run: &RunSummary) -> String {
    if run.name.trim().is_empty() { run.id.clone() } else { run.name.clone() }
}

/// A completed run of the default spec with nothing measured and no name, for tests.
#[cfg(test)]
pub fn blank_run(id: &str) -> RunSummary {
    RunSummary {
        status: shared::RunStatus::Completed,
        total_requests: 0,
        ..RunSummary::starting(id.into(), shared::SweepSpec::default(), 0, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::spec::SweepSpec;

    #[test]
    fn percent_encoding_round_trips_anything() {
        for text in ["", "plain", "a b&c=d?e#f/g", "http://127.0.0.1:8001", "ünïcödé ✓", "100%", "+"] {
            let encoded = percent_encode(text);
            assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)), "{encoded}");
            assert_eq!(percent_decode(&encoded).as_deref(), Some(text));
        }
        assert_eq!(percent_encode("a b"), "a%20b");
        assert_eq!(percent_decode("a+b%2Bc").as_deref(), Some("a b+c"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%FF"), None, "not UTF-8");
    }

    #[test]
    fn queries_split_into_decoded_pairs() {
        let pairs = query_pairs("?a=1&b=x%20y&&c&bad=%zz");
        assert_eq!(pairs, vec![("a".into(), "1".into()), ("b".into(), "x y".into()), ("c".into(), String::new())]);
        assert!(query_pairs("").is_empty());
        assert_eq!(to_query(&[]), "");
        assert_eq!(to_query(&[("t", "a&b".into())]), "?t=a%26b");
    }

    #[test]
    fn the_default_view_has_an_empty_query() {
        assert_eq!(RunViewState::default().to_query(), "");
        assert_eq!(RunViewState::from_query(""), RunViewState::default());
        assert_eq!(RunViewState::from_query("?"), RunViewState::default());
    }

    #[test]
    fn every_view_round_trips() {
        let views = [
            RunViewState { x: XAxis::Log, ..Default::default() },
            RunViewState { x: XAxis::Linear, y: YAxis::Log, ..Default::default() },
            RunViewState { charts: Charts::T2t, series: SeriesSet::NONE, ..Default::default() },
            RunViewState {
                charts: Charts::Ttft,
                x: XAxis::Linear,
                y: YAxis::Log,
                series: SeriesSet::of(&[Series::Mean, Series::P50, Series::P99]),
                length: Some(256),
                point: Some(2),
                request: Some(3),
                server_metric: None,
            },
            RunViewState { server_metric: Some("family:nv_gpu_utilization".into()), ..Default::default() },
            RunViewState { y: YAxis::Log, server_metric: Some("series:12".into()), ..Default::default() },
        ];
        for view in &views {
            assert_eq!(&RunViewState::from_query(&view.to_query()), view, "{}", view.to_query());
        }
        assert_eq!(views[4].to_query(), "?server=family%3Anv_gpu_utilization");
        let view = views[3].clone();
        assert_eq!(view.to_query(), "?metric=ttft&x=linear&y=log&series=mean%2Cp50%2Cp99&len=256&pt=2&req=3");
        // Hand-written links may leave the commas unencoded.
        assert_eq!(
            RunViewState::from_query("?metric=ttft&x=linear&y=log&series=mean,p50,p99&len=256&pt=2&req=3"),
            view
        );
    }

    #[test]
    fn bad_values_fall_back_to_defaults() {
        let view = RunViewState::from_query("?metric=tpot&x=sideways&y=&series=bogus&len=-4&req=0&zoom=9");
        assert_eq!(view, RunViewState::default());
        let view = RunViewState::from_query("?len=abc&req=2&series=P99,nope&x=LOG");
        assert_eq!(view.length, None);
        assert_eq!(view.request, Some(2));
        assert_eq!(view.series, SeriesSet::of(&[Series::P99]));
        assert_eq!(view.x, XAxis::Log);
        assert_eq!(RunViewState::from_query("?x=log&x=linear").x, XAxis::Linear, "the last one wins");
    }

    #[test]
    fn a_server_metric_is_kept_only_when_it_names_a_family_or_a_series() {
        let kept = |query: &str| RunViewState::from_query(query).server_metric;
        assert_eq!(kept("?server=family:nv_Inference_count"), Some("family:nv_Inference_count".into()));
        assert_eq!(kept("?server=series:0"), Some("series:0".into()));
        for bad in
            ["nv_gpu_utilization", "family:", "family:a b", "family:<script>", "series:-1", "series:x", "other:1"]
        {
            assert_eq!(kept(&format!("?server={}", percent_encode(bad))), None, "{bad}");
        }
        let long = format!("family:{}", "a".repeat(MAX_SERVER_METRIC_BYTES));
        assert_eq!(kept(&format!("?server={long}")), None, "too long");
        let most = format!("family:{}", "a".repeat(MAX_SERVER_METRIC_BYTES - "family:".len()));
        assert_eq!(kept(&format!("?server={most}")), Some(most));
    }

    #[test]
    fn series_sets_toggle_and_encode() {
        let set = SeriesSet::default();
        assert!(set.contains(Series::Mean) && set.contains(Series::Band) && set.contains(Series::Dots));
        assert!(!set.contains(Series::P90));
        let set = set.with(Series::P90, true).with(Series::Dots, false);
        assert_eq!(set.encode(), "mean,p90,band");
        assert_eq!(SeriesSet::decode("mean,p90,band"), Some(set));
        assert_eq!(SeriesSet::NONE.encode(), "none");
        assert_eq!(SeriesSet::decode("none"), Some(SeriesSet::NONE));
        assert_eq!(SeriesSet::decode(""), None);
    }

    fn run(id: &str, started: i64, model: &str, target: &str, tags: &[&str]) -> RunSummary {
        RunSummary {
            spec: SweepSpec { model: model.into(), target: target.into(), ..SweepSpec::default() },
            started_unix_ns: started,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..blank_run(id)
        }
    }

    #[test]
    fn the_list_is_filtered_and_newest_first() {
        let runs = [
            run("a", 1, "llama-8b", "http://gpu1:8001", &["baseline"]),
            run("b", 3, "llama-70b", "http://gpu2:8001", &["fp8", "Nightly"]),
            run("c", 2, "mistral", "http://gpu1:8001", &[]),
        ];
        let ids = |filter: &ListFilter| list_runs(&runs, filter).iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&ListFilter::default()), ["b", "c", "a"]);
        assert_eq!(ids(&ListFilter { model: "LLAMA".into(), ..Default::default() }), ["b", "a"]);
        assert_eq!(ids(&ListFilter { target: "gpu1".into(), ..Default::default() }), ["c", "a"]);
        assert_eq!(ids(&ListFilter { tag: "night".into(), ..Default::default() }), ["b"]);
        assert_eq!(ids(&ListFilter { model: "llama".into(), target: "gpu1".into(), tag: String::new() }), ["a"]);
        assert!(ids(&ListFilter { tag: "x".into(), ..Default::default() }).is_empty());
    }

    #[test]
    fn list_filters_round_trip() {
        let filter = ListFilter { model: "llama 3".into(), target: "http://gpu:8001".into(), tag: "a&b".into() };
        let query = to_query(&filter.pairs());
        assert_eq!(query, "?model=llama%203&target=http%3A%2F%2Fgpu%3A8001&tag=a%26b");
        assert_eq!(ListFilter::from_pairs(&query_pairs(&query)), filter);
        assert!(ListFilter::from_pairs(&query_pairs("?model=%20")).is_empty());
        // Both states read the same query and ignore each other's keys.
        let both = format!("{}&model=m", RunViewState { y: YAxis::Log, ..Default::default() }.to_query());
        assert_eq!(RunViewState::from_query(&both).y, YAxis::Log);
        assert_eq!(ListFilter::from_pairs(&query_pairs(&both)).model, "m");
    }

    #[test]
    fn a_comparison_round_trips() {
        let view =
            RunViewState { x: XAxis::Log, series: SeriesSet::of(&[Series::Mean, Series::P99]), ..Default::default() };
        let state = CompareState::new(vec!["a-1".into(), "b 2".into()], view);
        assert_eq!(state.path(), "/compare?runs=a-1%2Cb%202&x=log&series=mean%2Cp99");
        assert_eq!(CompareState::from_pairs(&query_pairs(state.path().strip_prefix("/compare").unwrap())), state);
        // Hand-written: commas unencoded, blanks and repeats dropped, inspector keys ignored.
        let state = CompareState::from_pairs(&query_pairs("?runs=x,,y,x%20&len=64&req=2&metric=t2t"));
        assert_eq!(state.runs, ["x", "y"]);
        assert_eq!(state.view, RunViewState { charts: Charts::T2t, ..Default::default() });
        assert_eq!(state.path(), "/compare?runs=x%2Cy&metric=t2t");
        assert_eq!(CompareState::from_pairs(&[]).path(), "/compare");
    }

    #[test]
    fn a_spec_travels_in_a_query() {
        let json = r#"{"target":"http://h:8001","model":"m","prompt_lengths":[16,256]}"#;
        let query = spec_query(json);
        assert!(query.starts_with("?spec=%7B%22target%22"), "{query}");
        assert_eq!(spec_in_query(&query), Some(Ok(json.to_string())));
        assert_eq!(spec_in_query("?x=1"), None);
        assert!(matches!(spec_in_query("?spec=%7"), Some(Err(_))));
    }
}
