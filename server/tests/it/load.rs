//! Load beyond one request at a time, against the simulator: closed-loop concurrency levels,
//! open-loop request rates with their schedule lag and latency from the intended send time,
//! and goodput.

use std::process::Command;

use server::sim::SimConfig;
use shared::capacity::{Capacity, CapacitySearch};
use shared::goodput::Slo;
use shared::schedule::Arrival;
use shared::spec::LoadLevel;
use shared::{RunReport, RunStatus, SweepSpec};

use crate::dashboard::fast_sim;
use crate::support::{spec, start_sim, sweep, timing_attempts, timing_lock};

fn open_loop(target: &str, rate: f64, requests: u32) -> SweepSpec {
    SweepSpec { request_rates: vec![rate], requests, max_tokens: 4, ..spec(target, "sim-vllm") }
}

/// Each request's intended send time, in the order they were due, from the first.
fn intended_offsets(report: &RunReport) -> Vec<u64> {
    let mut requests: Vec<_> = report.requests.iter().map(|r| (r.point, r.seq, r.intended_ns)).collect();
    requests.sort_unstable();
    let intended: Vec<u64> = requests.iter().map(|r| r.2.expect("open loop")).collect();
    intended.iter().map(|&at| at - intended[0]).collect()
}

#[tokio::test]
async fn a_constant_rate_point_sends_at_its_rate() {
    let _serial = timing_lock().await;
    let sim = start_sim(fast_sim()).await;
    timing_attempts(|| async {
        let report = sweep(open_loop(&sim.target, 50.0, 100)).await;
        assert_eq!(report.status, RunStatus::Completed, "{:?}", report.status);
        let offsets = intended_offsets(&report);
        for (k, &offset) in offsets.iter().enumerate() {
            assert_eq!(offset, k as u64 * 20_000_000, "request {k} is due k / 50 s after the first");
        }
        let point = &report.points[0];
        assert_eq!(point.load, Some(LoadLevel::Rate(50.0)));
        let sent = point.sent_per_s;
        assert!((sent / 50.0 - 1.0).abs() < 0.01, "sent {sent:.3} requests/s against 50");
        // How late sends were is a figure for the load benchmark, not a check: it depends on
        // how busy the machine is.
        let lag = point.schedule_lag_ms.as_ref().unwrap();
        println!("50 requests/s: sent {sent:.3}/s; schedule lag p50 {:.3} ms, p99 {:.3} ms", lag.p50, lag.p99);
    })
    .await;
}

#[tokio::test]
async fn latency_from_the_intended_time_is_never_below_the_usual_one() {
    let _serial = timing_lock().await;
    let sim = start_sim(fast_sim()).await;
    let spec = SweepSpec { arrival: Arrival::Poisson, seed: 3, warmup: 2, ..open_loop(&sim.target, 100.0, 40) };
    let report = sweep(spec).await;
    assert_eq!(report.status, RunStatus::Completed, "{:?}", report.status);
    assert_eq!(report.requests.len(), 42);
    for record in &report.requests {
        let intended = record.intended_ns.unwrap();
        assert!(intended <= record.send_ns, "{} was sent before it was due", record.id);
    }
    let point = &report.points[0];
    let (usual, due) = (point.ttft_ms.as_ref().unwrap(), point.ttft_intended_ms.as_ref().unwrap());
    let lag = point.schedule_lag_ms.as_ref().unwrap();
    assert_eq!((due.count, lag.count), (40, 40), "warm-up requests are left out");
    assert!(due.min >= usual.min && due.p50 >= usual.p50 && due.max >= usual.max);
    let e2e = (point.e2e_ms.as_ref().unwrap(), point.e2e_intended_ms.as_ref().unwrap());
    assert!(e2e.1.mean >= e2e.0.mean);
    assert!((due.mean - usual.mean - lag.mean).abs() < 1e-6, "the difference is the lag");
}

#[tokio::test]
async fn two_runs_with_one_seed_send_at_the_same_intended_instants() {
    let _serial = timing_lock().await;
    let sim = start_sim(fast_sim()).await;
    let poisson = |seed| SweepSpec { arrival: Arrival::Poisson, seed, ..open_loop(&sim.target, 200.0, 30) };
    let first = intended_offsets(&sweep(poisson(11)).await);
    let again = intended_offsets(&sweep(poisson(11)).await);
    let other = intended_offsets(&sweep(poisson(12)).await);
    assert_eq!(first, again);
    assert_ne!(first, other);
    assert!(first.windows(2).any(|w| w[1] - w[0] != first[1] - first[0]), "Poisson gaps vary");
}

/// A client capped at one request in flight, asked for more than one server-paced request
/// at a time, falls behind its schedule: the point is flagged, in the table too.
#[tokio::test]
async fn a_client_that_falls_behind_its_schedule_is_flagged() {
    let _serial = timing_lock().await;
    let sim = start_sim(SimConfig { decode_ms: 5.0, ..fast_sim() }).await;
    let spec = SweepSpec { max_concurrency: Some(1), max_tokens: 8, ..open_loop(&sim.target, 100.0, 20) };
    let report = sweep(spec).await;
    assert_eq!(report.status, RunStatus::Completed, "{:?}", report.status);
    let point = &report.points[0];
    let lag = point.schedule_lag_ms.as_ref().unwrap();
    assert!(lag.max > 100.0, "each request waits for the one before: lag max {:.1} ms", lag.max);
    let warning = point.lag_warning().expect("a lag this long is flagged");
    assert!(warning.starts_with("the client fell behind the schedule by"), "{warning}");
    assert!(point.waited_for_cap >= 15, "most requests fell due while one was out: {}", point.waited_for_cap);
    assert!(warning.contains("requests fell due while the most allowed were in flight"), "{warning}");
    assert!(point.ttft_intended_ms.as_ref().unwrap().p99 > point.ttft_ms.as_ref().unwrap().p99 + 100.0);
    let table = server::sweep::format_table(&report);
    assert!(table.contains("prompt 16 at 100 req/s: the client fell behind the schedule by"), "{table}");
    assert!(table.contains("lag p99") && table.contains("TTFT*"), "{table}");
}

#[tokio::test]
async fn each_concurrency_of_a_closed_loop_sweep_is_a_point() {
    let _serial = timing_lock().await;
    let sim = start_sim(SimConfig { decode_ms: 2.0, max_sequences: 2, ..fast_sim() }).await;
    let spec = SweepSpec {
        prompt_lengths: vec![16, 64],
        concurrencies: vec![1, 2, 4],
        requests: 8,
        max_tokens: 8,
        ..spec(&sim.target, "sim-vllm")
    };
    let report = sweep(spec).await;
    assert_eq!(report.status, RunStatus::Completed, "{:?}", report.status);
    let loads: Vec<(u32, Option<LoadLevel>)> = report.points.iter().map(|p| (p.prompt_length, p.load)).collect();
    let c = |n| Some(LoadLevel::Concurrency(n));
    assert_eq!(loads, vec![(16, c(1)), (16, c(2)), (16, c(4)), (64, c(1)), (64, c(2)), (64, c(4))]);
    assert!(report.requests.iter().all(|r| r.intended_ns.is_none()), "closed loop has no schedule");
    let rate = |i: usize| report.points[i].requests_per_s;
    assert!(rate(1) > rate(0) * 1.5, "two slots serve two at once: {:.1} vs {:.1}/s", rate(1), rate(0));
    let ttft = |i: usize| report.points[i].ttft_ms.as_ref().unwrap().mean;
    assert!(ttft(2) > ttft(1) * 2.0, "beyond the two slots requests queue: {:.1} vs {:.1} ms", ttft(2), ttft(1));
}

#[tokio::test]
async fn goodput_counts_the_requests_that_met_every_objective() {
    let _serial = timing_lock().await;
    let sim = start_sim(fast_sim()).await;
    let run = |slo: &str| {
        let spec = SweepSpec { slo: Some(Slo::parse(slo).unwrap()), ..open_loop(&sim.target, 100.0, 20) };
        sweep(spec)
    };
    let easy = run("ttft_ms=10000,e2e_ms=10000").await;
    let goodput = easy.points[0].goodput.unwrap();
    assert_eq!((goodput.met, goodput.measured, goodput.share), (20, 20, 1.0));
    assert!((goodput.requests_per_s - easy.points[0].requests_per_s).abs() < 1e-9, "all good: goodput = throughput");
    let impossible = run("ttft_ms=0.001").await;
    let goodput = impossible.points[0].goodput.unwrap();
    assert_eq!((goodput.met, goodput.share, goodput.requests_per_s), (0, 0.0, 0.0));
    let table = server::sweep::format_table(&impossible);
    assert!(table.contains("good/s") && table.contains("(ttft_ms=0.001)"), "{table}");
}

/// `tokenscope sweep --request-rate` as a user runs it: a rate sweep with objectives, its
/// table and its CSV.
#[tokio::test]
async fn the_command_line_runs_a_rate_sweep_with_objectives() {
    let _serial = timing_lock().await;
    let sim = start_sim(fast_sim()).await;
    let dir = tempfile::tempdir().unwrap();
    let (out, csv) = (dir.path().join("run.json"), dir.path().join("requests.csv"));
    let target = sim.target.clone();
    let (out_arg, csv_arg) = (out.clone(), csv.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tokenscope"))
            .args(["sweep", "--target", &target, "--model", "sim-vllm", "--prompt-lengths", "16"])
            .args(["--max-tokens", "4", "--requests", "10", "--request-rate", "20,40", "--arrival", "poisson"])
            .args(["--seed", "5", "--slo", "ttft_ms=5000", "--out"])
            .arg(&out_arg)
            .arg("--requests-csv")
            .arg(&csv_arg)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("20/s") && stdout.contains("40/s") && stdout.contains("sent/s"), "{stdout}");
    assert!(stdout.contains("100.0%"), "every request met a 5 s TTFT: {stdout}");
    let run: RunReport = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(run.spec.request_rates, vec![20.0, 40.0]);
    assert_eq!((run.spec.arrival, run.spec.seed), (Arrival::Poisson, 5));
    let csv = std::fs::read_to_string(&csv).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let column = header.iter().position(|&c| c == "intended_send_ms").expect("an intended_send_ms column");
    assert_eq!(header[column - 1], "send_ms", "beside send_ms");
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    assert!(row[column].parse::<f64>().unwrap() <= row[column - 1].parse::<f64>().unwrap());
}

#[test]
fn the_command_line_refuses_rates_with_concurrencies_and_bad_objectives() {
    let sweep = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_tokenscope"))
            .args(["sweep", "--target", "127.0.0.1:1", "--model", "m"])
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).to_string()
    };
    assert!(sweep(&["--request-rate", "1", "--concurrency", "2"]).contains("cannot be used with"));
    assert!(sweep(&["--slo", "ttft=5"]).contains("ttft_ms"));
    assert!(sweep(&["--request-rate", "0"]).contains("above 0"));
    assert!(sweep(&["--arrival", "poisson"]).contains("--request-rate"));
}

/// The dashboard's API takes the same load levels and objectives as the command line, and its
/// exports carry them.
#[tokio::test]
async fn the_dashboard_runs_a_rate_sweep_with_objectives() {
    use crate::dashboard::{get, post, wait_finished};
    let _serial = timing_lock().await;
    let dash = crate::support::start_dashboard(fast_sim()).await;
    let body = serde_json::json!({
        "model": "sim-vllm", "prompt_lengths": [16], "max_tokens": 4, "requests": 10,
        "request_rates": [40, 20], "arrival": "poisson", "seed": 4, "max_concurrency": 8,
        "slo": { "ttft_ms": 5000 },
    });
    let (status, created) = post(&format!("{}/api/runs", dash.base), &body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let summary = wait_finished(&dash.base, id).await;
    assert_eq!(summary.status, RunStatus::Completed);
    let loads: Vec<Option<LoadLevel>> = summary.points.iter().map(|p| p.load).collect();
    assert_eq!(loads, vec![Some(LoadLevel::Rate(40.0)), Some(LoadLevel::Rate(20.0))], "in the order given");
    assert!(summary.points.iter().all(|p| p.goodput.is_some_and(|g| g.measured == 10)));
    let csv =
        reqwest::get(format!("{}/api/runs/{id}/export/points.csv", dash.base)).await.unwrap().text().await.unwrap();
    assert!(csv.lines().next().unwrap().contains("request_rate") && csv.contains(",40,"), "{csv}");
    let (status, refused) = post(
        &format!("{}/api/runs", dash.base),
        &serde_json::json!({
            "model": "sim-vllm", "request_rates": [1], "concurrencies": [2],
        }),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("not both"), "{refused}");
    let (status, _) = get(&format!("{}/api/info", dash.base)).await;
    assert_eq!(status, 200);
}

/// A simulator with four slots and no jitter: 10 ms of prefill and 7 decode steps of 10 ms
/// (8 tokens a request), so each request holds a slot 80 ms and the server completes 50
/// requests/s at most.
pub fn four_slots() -> SimConfig {
    SimConfig {
        prefill_base_ms: 10.0,
        prefill_per_token_ms: 0.0,
        decode_ms: 10.0,
        decode_per_sequence_ms: 0.0,
        max_sequences: 4,
        jitter: 0.0,
        ..fast_sim()
    }
}

fn capacity_spec(target: &str, search: CapacitySearch) -> SweepSpec {
    SweepSpec {
        max_tokens: 8,
        ignore_eos: true,
        requests: 60,
        warmup: 10,
        // A request that waited for a slot more than 30 ms misses.
        slo: Some(Slo { ttft_ms: Some(40.0), ..Slo::default() }),
        capacity: Some(search),
        ..spec(target, "sim-vllm")
    }
}

#[tokio::test]
async fn the_capacity_search_finds_the_simulators_known_capacity() {
    let _serial = timing_lock().await;
    let config = four_slots();
    let known = config.capacity_rps(16, 8);
    assert!((known - 50.0).abs() < 1e-9, "{known}");
    let sim = start_sim(config).await;
    timing_attempts(|| async {
        let search = CapacitySearch { goodput: 0.95, start_rate: 16.0, probes: 12 };
        let report = sweep(capacity_spec(&sim.target, search)).await;
        assert_eq!(report.status, RunStatus::Completed, "{:?}", report.status);
        let capacity = Capacity::of_run(&report.spec, report.points.iter().map(Some), false).unwrap();
        let probes: Vec<String> = report
            .points
            .iter()
            .map(|p| format!("{} ({:.0}%)", p.load.unwrap(), p.goodput.unwrap().share * 100.0))
            .collect();
        println!("capacity search: {}; probes {}", capacity.headline(&search), probes.join(", "));
        assert!(capacity.finished, "{capacity:?}");
        let (passed, missed) = (capacity.passed.unwrap(), capacity.missed.unwrap());
        assert!((missed.rate - passed.rate) / missed.rate <= 0.05, "the bracket is within 5%: {probes:?}");
        let found = passed.rate;
        assert!(
            (found / known - 1.0).abs() <= 0.10,
            "found {found:.1} req/s against a capacity of {known:.1}: {probes:?}"
        );
        assert_eq!(report.spec.request_rates.len(), report.points.len(), "each probe is a point with its rate");
        assert_eq!(&report.spec.request_rates[..3], &[16.0, 32.0, 64.0]);
    })
    .await;
}

/// `tokenscope sweep --find-capacity` prints each probe and the answer, and refuses what a
/// search cannot do, in words.
#[tokio::test]
async fn the_command_line_searches_for_capacity() {
    let _serial = timing_lock().await;
    let sim = start_sim(four_slots()).await;
    let target = sim.target.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tokenscope"))
            .args(["sweep", "--target", &target, "--model", "sim-vllm", "--prompt-lengths", "16"])
            .args(["--max-tokens", "8", "--ignore-eos", "--requests", "20", "--slo", "ttft_ms=40"])
            .args(["--find-capacity", "--start-rate", "20", "--probes", "3", "--goodput", "0.9"])
            .arg("--out")
            .arg(std::env::temp_dir().join(format!("capacity-{}.json", std::process::id())))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("20/s") && stdout.contains("40/s"), "{stdout}");
    assert!(stdout.contains("at 90% goodput"), "the answer closes the table: {stdout}");
    let refused = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_tokenscope"))
            .args(["sweep", "--target", "127.0.0.1:1", "--model", "m", "--find-capacity"])
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).to_string()
    };
    assert!(refused(&[]).contains("--slo"), "objectives are needed");
    assert!(refused(&["--slo", "ttft_ms=5", "--request-rate", "3"]).contains("cannot be used with"));
    let two = refused(&["--slo", "ttft_ms=5", "--prompt-lengths", "16,32"]);
    assert!(two.contains("one prompt length"), "{two}");
    assert!(refused(&["--slo", "ttft_ms=5", "--goodput", "99"]).contains("0.99 is 99%"));
}

/// With time limits, a constant-rate point warms up for its warm-up time and measures for its
/// duration: exactly the requests whose intended sends fall inside each.
#[tokio::test]
async fn an_open_loop_point_lasts_its_duration() {
    let _serial = timing_lock().await;
    let sim = start_sim(fast_sim()).await;
    let spec =
        SweepSpec { warmup: 1000, warmup_s: Some(0.2), duration_s: Some(0.5), ..open_loop(&sim.target, 100.0, 1000) };
    let report = sweep(spec).await;
    assert_eq!(report.status, RunStatus::Completed, "{:?}", report.status);
    let warm: Vec<u32> = report.requests.iter().filter(|r| r.warmup).map(|r| r.seq).collect();
    let measured: Vec<u32> = report.requests.iter().filter(|r| !r.warmup).map(|r| r.seq).collect();
    assert_eq!(warm.len(), 20, "due at 0, 10, ... 190 ms: inside the 0.2 s warm-up");
    assert_eq!(measured.len(), 50, "due in the half second from the first measured one");
    assert_eq!(measured.iter().min(), Some(&1000), "measured requests keep their numbers after the warm-up's cap");
    assert_eq!(report.points[0].count, 50);
    assert_eq!(intended_offsets(&report).last(), Some(&690_000_000), "the last is due 0.69 s after the first");
}

#[tokio::test]
async fn a_closed_loop_point_lasts_its_duration() {
    let _serial = timing_lock().await;
    let sim = start_sim(SimConfig { decode_ms: 2.0, ..fast_sim() }).await;
    let spec = SweepSpec {
        concurrency: 2,
        requests: 10_000,
        duration_s: Some(0.3),
        max_tokens: 4,
        ..spec(&sim.target, "sim-vllm")
    };
    let started = std::time::Instant::now();
    let report = sweep(spec).await;
    assert_eq!(report.status, RunStatus::Completed, "{:?}", report.status);
    let count = report.requests.len();
    assert!(count > 10 && count < 10_000, "{count} requests in 0.3 s");
    let sends: Vec<u64> = report.requests.iter().map(|r| r.send_ns).collect();
    let span = sends.iter().max().unwrap() - sends.iter().min().unwrap();
    assert!(span < 300_000_000, "no request is sent after the duration: the last {span} ns after the first");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// `--duration` without `--requests` sends for the duration, its count capped by the rate.
#[tokio::test]
async fn the_command_line_measures_for_a_duration() {
    let _serial = timing_lock().await;
    let sim = start_sim(fast_sim()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let (target, out_arg) = (sim.target.clone(), out.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tokenscope"))
            .args(["sweep", "--target", &target, "--model", "sim-vllm", "--prompt-lengths", "16"])
            .args(["--max-tokens", "4", "--request-rate", "40", "--duration", "0.5", "--out"])
            .arg(&out_arg)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let run: RunReport = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!((run.spec.duration_s, run.spec.requests), (Some(0.5), 41), "1.25 x 40/s x 0.5 s + 16");
    assert_eq!(run.points[0].count, 20, "40 requests/s for half a second");
}

/// The scheduling policy of this process's threads named `name` (as the system truncates
/// it), read from /proc: 0 is ordinary, 1 first in first out (real-time).
fn thread_policies(name: &str) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    tasks
        .filter_map(|task| {
            let path = task.ok()?.path();
            let comm = std::fs::read_to_string(path.join("comm")).ok()?;
            if comm.trim() != name {
                return None;
            }
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            // Fields after the name's closing parenthesis start at the third; the policy is
            // the 41st.
            stat.rsplit_once(')')?.1.split_whitespace().nth(41 - 3)?.parse().ok()
        })
        .collect()
}

/// The engine asks for real-time priority unless told not to, says in its report what it
/// got, and its pacing thread runs as the engine does.
#[tokio::test]
async fn the_engine_says_how_its_threads_were_scheduled() {
    use shared::report::Scheduling;
    let _serial = timing_lock().await;
    let sim = start_sim(fast_sim()).await;
    let run = tokio::spawn(sweep(open_loop(&sim.target, 100.0, 100)));
    let mut pacer = Vec::new();
    while pacer.is_empty() && !run.is_finished() {
        pacer = thread_policies("tokenscope-pace");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let report = run.await.unwrap();
    assert_eq!(report.status, RunStatus::Completed, "{:?}", report.status);
    let engine = report.engine.expect("the engine reports");
    let scheduling = engine.scheduling.clone().expect("how its threads ran");
    assert!(!pacer.is_empty(), "the pacing thread was seen while the point ran");
    // Other tests' pacers, if any are running, were started by engines with the same rights.
    match &scheduling {
        Scheduling::Realtime => assert!(pacer.iter().all(|&p| p == 1), "first in first out, as the engine: {pacer:?}"),
        Scheduling::Refused { reason } => {
            assert!(!reason.is_empty());
            assert!(pacer.iter().all(|&p| p == 0), "an ordinary pacer: {pacer:?}");
        }
        Scheduling::Normal => panic!("real-time was not asked for"),
    }
    println!("{}", engine.describe());

    let normal = sweep(SweepSpec { normal_priority: true, ..open_loop(&sim.target, 100.0, 10) }).await;
    assert_eq!(normal.engine.and_then(|e| e.scheduling), Some(Scheduling::Normal));
}
