//! Benchmark: what a large run costs the run store on disk, and how long it takes to write
//! and read back.
//!
//! A synthetic run of 100 prompt lengths × 100 requests × 256 tokens, one response per token
//! plus an empty final one, with the simulator's token texts, nanosecond arrival times with
//! jitter and server send times on every response (as the simulator stamps them). It is
//! written in batches as a live run writes it, the database's size is compared with the same
//! run as `run.json` (goal: under 30 MB), and it is read back and checked to be identical.
//! A second run with random-letter words shows the size when texts repeat little. Each export
//! of the run is rendered and timed against run.json's.
//!
//! Run with `cargo bench -p server --bench store`.

use std::path::Path;
use std::time::Instant;

use server::export::Export;
use server::sim::model::token_text;
use server::store::codec::encode;
use server::store::{Db, FILE_NAME, NewRun};
use shared::{RequestRecord, ResponseRecord, Responses, RunReport, RunStatus, SweepSpec, TokenCountSource};

const POINTS: u32 = 100;
const REQUESTS: u32 = 100;
const TOKENS: u32 = 256;
/// Records per transaction: about what 50 ms of a busy run finishes.
const BATCH: usize = 16;
const GOAL_MB: f64 = 30.0;
const BASE_UNIX_NS: i64 = 1_764_000_000_000_000_000;

fn main() {
    println!("store benchmark: {POINTS} prompt lengths × {REQUESTS} requests × {TOKENS} tokens");
    measure("simulator texts", &report(|_, i| format!(" {}", token_text(i))));
    measure(
        "random words",
        &report(|rng, _| {
            let len = 1 + next(rng) % 8;
            std::iter::once(' ').chain((0..len).map(|_| (b'a' + (next(rng) % 26) as u8) as char)).collect()
        }),
    );
}

/// A xorshift generator: deterministic, and enough for jitter.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn report(text: impl Fn(&mut u64, u32) -> String) -> RunReport {
    let spec = SweepSpec {
        model: "sim-vllm".into(),
        prompt_lengths: (1..=POINTS).map(|p| p * 16).collect(),
        max_tokens: TOKENS,
        ignore_eos: true,
        requests: REQUESTS,
        warmup: 0,
        ..SweepSpec::default()
    };
    let mut rng = 0x9e37_79b9_7f4a_7c15;
    let mut clock = 1_000_000u64;
    let mut requests = Vec::new();
    for (point, &length) in spec.prompt_lengths.iter().enumerate() {
        for seq in 0..REQUESTS {
            let send_ns = clock;
            // Prefill, then one decode step of about 12 ms per token, each a little off.
            let mut at = send_ns + 15_000_000 + u64::from(length) * 50_000 + next(&mut rng) % 1_000_000;
            let mut responses = Responses::default();
            for i in 0..TOKENS {
                at += 10_800_000 + next(&mut rng) % 2_400_000;
                let sent = BASE_UNIX_NS + at as i64 - (50_000 + (next(&mut rng) % 150_000) as i64);
                responses.push(ResponseRecord {
                    at_ns: at,
                    tokens: 1,
                    text: &text(&mut rng, i),
                    server_send_unix_ns: Some(sent),
                });
            }
            at += 20_000 + next(&mut rng) % 50_000;
            responses.push(ResponseRecord { at_ns: at, tokens: 0, text: "", server_send_unix_ns: None });
            requests.push(RequestRecord {
                point: point as u32,
                seq,
                warmup: false,
                id: format!("{point}-{seq}"),
                prompt_words: length,
                num_input_tokens: Some(length + 7),
                send_ns,
                intended_ns: None,
                server_recv_unix_ns: Some(BASE_UNIX_NS + send_ns as i64 + 40_000 + (next(&mut rng) % 20_000) as i64),
                responses,
                final_ns: Some(at),
                token_source: TokenCountSource::Responses,
                error: None,
                finish_reason: None,
            });
            clock = at + 100_000;
        }
    }
    let mut report = RunReport {
        status: RunStatus::Completed,
        requests,
        ..RunReport::new("tokenscope bench".into(), spec, BASE_UNIX_NS)
    };
    report.recompute_points();
    report
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn measure(label: &str, report: &RunReport) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let json = serde_json::to_vec(report).expect("a report serializes").len() as u64;
    let run = NewRun {
        id: "bench".into(),
        spec: report.spec.clone(),
        started_unix_ns: report.started_unix_ns,
        simulated: true,
        tool: report.tool.clone(),
    };

    let started = Instant::now();
    let mut db = Db::open(dir.path()).expect("the store opens");
    db.insert_run(&run).unwrap();
    let per_point = REQUESTS as usize;
    for (point, records) in report.requests.chunks(per_point).enumerate() {
        for batch in records.chunks(BATCH) {
            db.add_requests("bench", batch).unwrap();
        }
        db.set_point("bench", point as u32, &report.points[point]).unwrap();
    }
    db.finish("bench", report).unwrap();
    // Closing checkpoints the write-ahead log into the database file.
    drop(db);
    let write = started.elapsed();
    let path = dir.path().join(FILE_NAME);
    let wal = dir.path().join(format!("{FILE_NAME}-wal"));
    let size = file_size(&path) + file_size(&wal);

    let started = Instant::now();
    let mut db = Db::open(dir.path()).expect("the store opens");
    let read = db.report("bench").unwrap();
    let read_time = started.elapsed();
    assert!(read == *report, "the run reads back identical");

    let tokens = (POINTS * REQUESTS * TOKENS) as f64;
    let encoded: usize = report.requests.iter().map(|r| encode(r, report.started_unix_ns).len()).sum();
    println!("{label}:");
    println!(
        "  records encoded: {:.1} MB ({:.1} bytes per token response, {} bytes per request)",
        mb(encoded as u64),
        encoded as f64 / tokens,
        encoded / report.requests.len()
    );
    println!(
        "  store: {:.1} MB ({:.1} bytes per token response); run.json: {:.1} MB; store/json = {:.3}",
        mb(size),
        size as f64 / tokens,
        mb(json),
        size as f64 / json as f64
    );
    println!(
        "  write {:.2} s ({} records in transactions of {BATCH}), read back {:.2} s",
        write.as_secs_f64(),
        report.requests.len(),
        read_time.as_secs_f64()
    );
    let verdict = if mb(size) < GOAL_MB { "meets" } else { "MISSES" };
    println!("  goal under {GOAL_MB} MB: {verdict} ({:.2} of the goal)", mb(size) / GOAL_MB);
    // Each export as the dashboard serves it and the command line writes it; run.json, which
    // serde writes straight from the report, is the baseline.
    let mut baseline = None;
    for export in Export::ALL {
        let started = Instant::now();
        let bytes = export.render(report).len();
        let took = started.elapsed().as_secs_f64();
        let base = *baseline.get_or_insert(took);
        println!(
            "  export {}: {:.1} MB in {took:.2} s ({:.2}× run.json's time)",
            export.file_name(),
            mb(bytes as u64),
            took / base
        );
    }
}
