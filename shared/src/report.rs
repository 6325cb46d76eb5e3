//! A finished (or stopped) run: what was asked, what the model is, and what was measured.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::live::needed;
use crate::record::RequestRecord;
use crate::spec::{InputStyle, SweepSpec};
use crate::stats::PointStats;
use crate::telemetry::{Telemetry, WindowSummary};

/// What the proxy learned about the model before sending anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    /// The version the server reported, if any.
    #[serde(default)]
    pub version: Option<String>,
    /// The style requests were built in (never `auto`).
    pub input_style: InputStyle,
    /// Whether the model is decoupled, i.e. can stream several responses per request.
    pub decoupled: bool,
    /// Whether inputs carry a leading batch dimension (`max_batch_size > 0`).
    pub batched: bool,
    /// Inputs the model declares, as `name: DATATYPE [shape]`.
    pub inputs: Vec<String>,
    /// Outputs the model declares, as `name: DATATYPE [shape]`.
    pub outputs: Vec<String>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", try_from = "StatusFields")]
pub enum RunStatus {
    Running,
    Completed,
    Cancelled,
    /// Stopped by a fault; everything finished before it is kept.
    Failed {
        error: String,
    },
    /// The dashboard stopped (it was killed or its machine went down) before the run ended;
    /// everything finished before is kept.
    Interrupted,
}

/// A [`RunStatus`] as read: `state` and the failure's `error`, in either order, decoded
/// once (see `live::EventFields` for why not as serde reads a tagged enum).
#[derive(Deserialize)]
struct StatusFields {
    state: StatusKind,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum StatusKind {
    Running,
    Completed,
    Cancelled,
    Failed,
    Interrupted,
}

impl TryFrom<StatusFields> for RunStatus {
    type Error = String;

    fn try_from(fields: StatusFields) -> Result<Self, String> {
        Ok(match fields.state {
            StatusKind::Running => RunStatus::Running,
            StatusKind::Completed => RunStatus::Completed,
            StatusKind::Cancelled => RunStatus::Cancelled,
            StatusKind::Failed => RunStatus::Failed { error: needed(fields.error, "error")? },
            StatusKind::Interrupted => RunStatus::Interrupted,
        })
    }
}

impl RunStatus {
    /// Whether the run stopped before its end: cancelled, failed or interrupted.
    pub fn ended_early(&self) -> bool {
        matches!(self, RunStatus::Cancelled | RunStatus::Failed { .. } | RunStatus::Interrupted)
    }
}

/// The whole result of a sweep, as written to `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub tool: String,
    pub spec: SweepSpec,
    /// Wall-clock time of the run's start (its monotonic zero), nanoseconds since the Unix epoch.
    pub started_unix_ns: i64,
    pub model: Option<ModelInfo>,
    pub status: RunStatus,
    /// Prompt lengths are approximate (words of synthetic text), not tokenizer counts.
    pub prompt_lengths_approximate: bool,
    pub points: Vec<PointStats>,
    pub requests: Vec<RequestRecord>,
    /// What the run cost the engine that measured it; absent for imported runs and runs from
    /// before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineReport>,
    /// The server's own metrics, read while the run went; absent when none were read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<Telemetry>,
}

/// The engine's share of a core from which its timings are said to be at risk.
pub const BUSY_WARNING: f64 = 0.8;

/// What a run cost the engine's thread. A thread near a full core reads its sockets late, and
/// so stamps arrivals late.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineReport {
    /// CPU time the engine's thread used, seconds.
    pub cpu_s: f64,
    /// How long the thread ran the sweep, seconds.
    pub wall_s: f64,
    /// Responses received.
    pub responses: u64,
    /// How long responses waited for the engine between the socket read that stamped their
    /// arrival and their record (an upper bound within 12.5%): time their recorded arrivals
    /// leave out, and would include had they been stamped once decoded.
    pub waited_p99_ms: f64,
    pub waited_max_ms: f64,
    /// In open loop, where the schedule lag came from; absent in closed loop and for runs
    /// from before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacing: Option<PacingReport>,
    /// How the engine's and the pacing thread's threads were scheduled; absent for runs from
    /// before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<Scheduling>,
}

/// How the threads that send and receive were scheduled. Real-time threads run as soon as
/// they wake, ahead of every ordinary thread of the machine, so a busy machine (a server or
/// simulator beside the client, other work) delays sends by microseconds, not by the
/// milliseconds of an ordinary thread's turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "SchedulingFields")]
pub enum Scheduling {
    /// Real-time, first in first out, at the lowest real-time priority.
    Realtime,
    /// Ordinary, as the spec asked (`normal_priority`).
    Normal,
    /// Ordinary, because the system refused real-time scheduling, for `reason`.
    Refused { reason: String },
}

/// A [`Scheduling`] as read: `kind` and the refusal's `reason`, in either order.
#[derive(Deserialize)]
struct SchedulingFields {
    kind: SchedulingKind,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum SchedulingKind {
    Realtime,
    Normal,
    Refused,
}

impl TryFrom<SchedulingFields> for Scheduling {
    type Error = String;

    fn try_from(fields: SchedulingFields) -> Result<Self, String> {
        Ok(match fields.kind {
            SchedulingKind::Realtime => Scheduling::Realtime,
            SchedulingKind::Normal => Scheduling::Normal,
            SchedulingKind::Refused => Scheduling::Refused { reason: needed(fields.reason, "reason")? },
        })
    }
}

impl Scheduling {
    /// How the threads ran, in words, with what to do when the system refused.
    pub fn describe(&self) -> String {
        match self {
            Scheduling::Realtime => "its threads ran at real-time priority".into(),
            Scheduling::Normal => "its threads ran at normal priority, as asked".into(),
            Scheduling::Refused { reason } => format!(
                "its threads ran at normal priority: the system refused real-time priority ({reason}); on a busy \
                 machine sends can then come milliseconds late: run tokenscope as root or grant it CAP_SYS_NICE \
                 (or an rtprio limit) for sends within a fraction of a millisecond"
            ),
        }
    }
}

/// Where an open-loop run's schedule lag came from: a request's lag is the time its pacing
/// thread woke late (the operating system's scheduler: a busy or oversubscribed machine) and
/// the time from then to its send (the engine, busy with responses). Each is an upper bound
/// within 12.5% at p99.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PacingReport {
    pub woke_late_p99_ms: f64,
    pub woke_late_max_ms: f64,
    pub handoff_p99_ms: f64,
    pub handoff_max_ms: f64,
}

impl EngineReport {
    /// The share of one core the thread kept busy.
    pub fn busy(&self) -> f64 {
        self.cpu_s / self.wall_s.max(1e-9)
    }

    /// The engine's load in one line, with a warning when it neared a full core.
    pub fn describe(&self) -> String {
        let mut line = format!(
            "engine: {:.2} s of CPU in {:.2} s ({:.0}% of one core), {:.1} µs per response; after their arrival \
             was stamped, responses waited for it {:.3} ms at p99, {:.3} ms at most",
            self.cpu_s,
            self.wall_s,
            self.busy() * 100.0,
            self.cpu_s * 1e6 / self.responses.max(1) as f64,
            self.waited_p99_ms,
            self.waited_max_ms,
        );
        if let Some(pacing) = self.pacing {
            let _ = write!(
                line,
                "; the pacing thread woke {:.3} ms late at p99 ({:.3} ms at most), and requests were sent {:.3} ms \
                 after it woke at p99 ({:.3} ms at most)",
                pacing.woke_late_p99_ms, pacing.woke_late_max_ms, pacing.handoff_p99_ms, pacing.handoff_max_ms
            );
        }
        if let Some(scheduling) = &self.scheduling {
            let _ = write!(line, "; {}", scheduling.describe());
        }
        if self.busy() >= BUSY_WARNING {
            line.push_str(
                "; near a full core, the engine reads its sockets late and the arrival times it records come \
                 late: lower the concurrency or the token rate for exact timings",
            );
        }
        line
    }
}

impl RunReport {
    /// A run of `spec` by `tool` that has just started: nothing measured, the model not known.
    pub fn new(tool: String, spec: SweepSpec, started_unix_ns: i64) -> RunReport {
        RunReport {
            tool,
            spec,
            started_unix_ns,
            model: None,
            status: RunStatus::Running,
            prompt_lengths_approximate: true,
            points: Vec::new(),
            requests: Vec::new(),
            engine: None,
            telemetry: None,
        }
    }

    /// Whether the prompt lengths of `spec`'s run are approximate: words of synthetic text, with
    /// no tokenizer to count them and no count from the server in `requests`.
    pub fn lengths_approximate(spec: &SweepSpec, requests: &[RequestRecord]) -> bool {
        spec.tokenizer.is_none() && !requests.iter().any(|r| r.num_input_tokens.is_some())
    }

    /// What the prompt lengths count.
    pub fn prompt_length_unit(&self) -> String {
        match self.spec.tokenizer_name() {
            Some(name) => format!("tokens (tokenizer {name})"),
            None if self.prompt_lengths_approximate => "approximate tokens (words)".into(),
            None => "tokens as the server counted them".into(),
        }
    }

    /// Recomputes every point's statistics from the raw records.
    pub fn recompute_points(&mut self) {
        let spec = &self.spec;
        // A capacity search's points are the probes it started.
        self.points = (0..spec.point_count())
            .take_while(|&i| spec.point(i).is_some())
            .map(|i| PointStats::of_point(spec, i, self.requests.iter().filter(|r| r.point as usize == i)))
            .collect();
    }

    /// When a point's measured requests ran: from the first send to the last end,
    /// microseconds since the run's start; warm-up left out.
    pub fn measured_window_us(&self, point: u32) -> Option<(u64, u64)> {
        let measured = self.requests.iter().filter(|r| r.point == point && !r.warmup);
        let (from, to) = measured.fold((u64::MAX, 0), |(from, to), r| (from.min(r.send_ns), to.max(r.end_ns())));
        (from <= to).then_some((from / 1000, to / 1000))
    }

    /// The server's metrics over each point's measured requests, by point: `None` where the
    /// run read no metrics or the point has no measured request.
    pub fn telemetry_by_point(&self) -> Vec<Option<WindowSummary>> {
        let model = self.model.as_ref().map_or(self.spec.model.as_str(), |m| m.name.as_str());
        (0..self.points.len() as u32)
            .map(|point| {
                let telemetry = self.telemetry.as_ref()?;
                let (from, to) = self.measured_window_us(point)?;
                Some(telemetry.summary(model, from, to))
            })
            .collect()
    }

    /// For every token-bearing response of a measured request whose server stamped its send
    /// time: arrival (the run's wall-clock anchor plus the arrival offset) minus that send
    /// time, in milliseconds, sorted. When server and client share a machine (and so a wall
    /// clock), this is the way from the server's send to the client's timestamp; across
    /// machines it also holds the difference between their clocks.
    pub fn arrival_delays_ms(&self) -> Vec<f64> {
        let mut delays: Vec<f64> = self
            .requests
            .iter()
            .filter(|r| !r.warmup)
            .flat_map(|r| r.token_responses())
            .filter_map(|c| {
                let sent = c.server_send_unix_ns?;
                Some(self.started_unix_ns.wrapping_add(c.at_ns as i64).wrapping_sub(sent) as f64 / 1e6)
            })
            .collect();
        delays.sort_unstable_by(f64::total_cmp);
        delays
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ResponseRecord, TokenCountSource};

    fn response(at_ns: u64, tokens: u32, sent: Option<i64>) -> ResponseRecord<'static> {
        ResponseRecord { at_ns, tokens, text: "", server_send_unix_ns: sent }
    }

    #[test]
    fn the_engines_cost_is_told_per_response_and_a_busy_engine_is_warned_of() {
        let load = EngineReport {
            cpu_s: 0.5,
            wall_s: 1.0,
            responses: 100_000,
            waited_p99_ms: 0.42,
            waited_max_ms: 1.95,
            pacing: None,
            scheduling: None,
        };
        assert_eq!(
            load.describe(),
            "engine: 0.50 s of CPU in 1.00 s (50% of one core), 5.0 µs per response; after their arrival was \
             stamped, responses waited for it 0.420 ms at p99, 1.950 ms at most"
        );
        let busy = EngineReport { cpu_s: 0.85, responses: 1, ..load.clone() };
        let paced = EngineReport {
            pacing: Some(PacingReport {
                woke_late_p99_ms: 0.08,
                woke_late_max_ms: 2.5,
                handoff_p99_ms: 0.3,
                handoff_max_ms: 4.0,
            }),
            ..load.clone()
        };
        assert!(
            paced.describe().ends_with(
                "; the pacing thread woke 0.080 ms late at p99 (2.500 ms at most), and requests were sent 0.300 ms \
                 after it woke at p99 (4.000 ms at most)"
            ),
            "{}",
            paced.describe()
        );
        assert!(busy.describe().contains("(85% of one core)") && busy.describe().contains("come late"));
        let scheduled = |scheduling| EngineReport { scheduling: Some(scheduling), ..load.clone() }.describe();
        assert!(scheduled(Scheduling::Realtime).ends_with("; its threads ran at real-time priority"));
        assert!(scheduled(Scheduling::Normal).ends_with("; its threads ran at normal priority, as asked"));
        let refused = scheduled(Scheduling::Refused { reason: "not permitted".into() });
        assert!(refused.contains("refused real-time priority (not permitted)"), "{refused}");
        assert!(refused.contains("CAP_SYS_NICE"), "what to do: {refused}");
    }

    #[test]
    fn scheduling_is_kept_tagged_and_older_reports_have_none() {
        let json = serde_json::to_string(&Scheduling::Refused { reason: "no".into() }).unwrap();
        assert_eq!(json, r#"{"kind":"refused","reason":"no"}"#);
        assert_eq!(serde_json::from_str::<Scheduling>(r#"{"kind":"realtime"}"#).unwrap(), Scheduling::Realtime);
        let old = r#"{"cpu_s":1.0,"wall_s":2.0,"responses":3,"waited_p99_ms":0.1,"waited_max_ms":0.2}"#;
        assert_eq!(serde_json::from_str::<EngineReport>(old).unwrap().scheduling, None);
    }

    #[test]
    fn arrival_delays_count_measured_token_responses_with_a_send_time() {
        let record = |seq: u32, warmup: bool, responses: Vec<ResponseRecord<'static>>| RequestRecord {
            point: 0,
            seq,
            warmup,
            id: format!("0-{seq}"),
            prompt_words: 4,
            num_input_tokens: None,
            send_ns: 0,
            intended_ns: None,
            server_recv_unix_ns: None,
            responses: responses.into(),
            final_ns: None,
            token_source: TokenCountSource::Responses,
            error: None,
            finish_reason: None,
        };
        let report = RunReport {
            status: RunStatus::Completed,
            requests: vec![
                record(0, true, vec![response(5_000_000, 1, Some(1_004_000_000))]),
                record(
                    1,
                    false,
                    vec![
                        // Arrived at 1.003 s wall clock, sent at 1.0025 s: 0.5 ms.
                        response(3_000_000, 1, Some(1_002_500_000)),
                        response(7_000_000, 2, Some(1_004_000_000)),
                        response(8_000_000, 1, None),
                        response(9_000_000, 0, Some(0)),
                    ],
                ),
            ],
            ..RunReport::new("t".into(), SweepSpec::default(), 1_000_000_000)
        };
        assert_eq!(report.arrival_delays_ms(), vec![0.5, 3.0]);
    }
}
