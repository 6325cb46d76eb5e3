//! "What the numbers mean": every metric definition from `shared::metrics`.

use leptos::prelude::*;
use shared::metrics::{METRICS, MetricDefinition, STATISTICS_NOTE};

/// The HTML id of a metric's glossary entry, so charts and tables can link to it.
pub fn metric_anchor(key: &str) -> String {
    format!("metric-{key}")
}

/// A definition list with one entry per metric in [`METRICS`], followed by how
/// distributions are summarised.
#[component]
pub fn Glossary() -> impl IntoView {
    view! {
        <section class="glossary" aria-labelledby="glossary-title">
            <h2 id="glossary-title">"What the numbers mean"</h2>
            <dl>{METRICS.iter().map(|metric| view! { <MetricEntry metric=*metric/> }).collect_view()}</dl>
            <p class="statistics-note">{STATISTICS_NOTE}</p>
        </section>
    }
}

/// One metric's name and unit as the term, its definition as the description.
#[component]
fn MetricEntry(
    /// The metric to describe.
    metric: MetricDefinition,
) -> impl IntoView {
    view! {
        <dt id=metric_anchor(metric.key)>
            {metric.name} " " <span class="unit">"(" {metric.unit} ")"</span>
        </dt>
        <dd>{metric.definition}</dd>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn anchor_is_prefixed_key() {
        assert_eq!(metric_anchor("ttft"), "metric-ttft");
    }

    #[test]
    fn every_metric_has_a_unique_anchor() {
        let anchors: HashSet<_> = METRICS.iter().map(|m| metric_anchor(m.key)).collect();
        assert_eq!(anchors.len(), METRICS.len());
    }
}
