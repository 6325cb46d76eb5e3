//! Benchmark: how fast exact-length prompts are built, and what they hold.
//!
//! For each tokenizer of `server::tokenizer::fixture` (a byte-level BPE and a WordPiece, learnt
//! from the corpus): the time to read the tokenizer and encode the corpus once, then to build
//! 10,000 prompts of 4,096 tokens each (goal: under 2 s, so that building never delays a run),
//! beside the time to build the same prompts by encoding each one, as checking all of them
//! would (a thousand of them, scaled to 10,000), and the memory the prompt set holds: the
//! corpus twice round and its per-word counts, and the prompts, which point into the corpus
//! rather than copy it.
//!
//! Then what counting a finished request's output costs the engine (`count_pieces`: one
//! encoding of the whole text, each token put to its response), for outputs of 256 tokens
//! streamed a word per response, beside a plain count of the same text.
//!
//! Run with `cargo bench -p server --bench prompts`.

use std::time::Instant;

use server::tokenizer::{ExactPrompts, Prompt, Tokenizer, fixture};

const PROMPTS: u64 = 10_000;
const LENGTH: u32 = 4096;
const BASELINE: u64 = 1_000;
const OUTPUTS: u64 = 1_000;
const OUTPUT_TOKENS: u32 = 256;

fn main() {
    let scratch = tempfile::tempdir().expect("a scratch folder");
    println!("prompts benchmark: {PROMPTS} prompts of {LENGTH} tokens from the corpus");
    println!(
        "{:>10} {:>10} {:>10} {:>12} {:>10} {:>12} {:>12}",
        "tokenizer", "words", "read s", "build s", "goal", "encoding s", "memory KiB"
    );
    let mut outputs = Vec::new();
    for (kind, file) in [("bpe", fixture::bpe(scratch.path())), ("wordpiece", fixture::wordpiece(scratch.path()))] {
        let started = Instant::now();
        let prompts =
            ExactPrompts::new(Tokenizer::open(&file).expect("the fixture reads")).expect("the corpus encodes");
        let read_s = started.elapsed().as_secs_f64();

        let started = Instant::now();
        let built: Vec<Prompt> = (0..PROMPTS).map(|n| prompts.prompt(n, LENGTH).expect("a prompt")).collect();
        let build_s = started.elapsed().as_secs_f64();

        // The baseline: every prompt encoded, as a builder that checks each one does.
        let started = Instant::now();
        for prompt in built.iter().take(BASELINE as usize) {
            assert_eq!(prompts.tokenizer().count(prompt.text).expect("counts"), LENGTH);
        }
        let encoding_s = started.elapsed().as_secs_f64() * (PROMPTS / BASELINE) as f64;

        let memory = prompts.held_bytes() + built.capacity() * std::mem::size_of::<Prompt>();
        println!(
            "{kind:>10} {:>10} {read_s:>10.3} {build_s:>12.3} {:>10} {encoding_s:>12.2} {:>12.0}",
            prompts.words(),
            if build_s < 2.0 { "met" } else { "missed" },
            memory as f64 / 1024.0,
        );
        println!("{:>21}building is {:.0}x faster than encoding every prompt", "", encoding_s / build_s);
        outputs.push((kind, prompts));
    }
    println!("\noutput counting: {OUTPUTS} outputs of {OUTPUT_TOKENS} tokens, a word per response");
    println!("{:>10} {:>14} {:>14} {:>8}", "tokenizer", "per request us", "plain count us", "ratio");
    for (kind, prompts) in &outputs {
        let tokenizer = prompts.tokenizer();
        let texts: Vec<&str> = (0..OUTPUTS).map(|n| prompts.prompt(n, OUTPUT_TOKENS).expect("a text").text).collect();
        let pieces: Vec<Vec<&str>> = texts.iter().map(|t| t.split_inclusive(' ').collect()).collect();
        let started = Instant::now();
        let mut counted = 0u64;
        for text in &pieces {
            counted += tokenizer
                .count_pieces(text.iter().copied())
                .expect("counts")
                .iter()
                .map(|&c| u64::from(c))
                .sum::<u64>();
        }
        let pieces_us = started.elapsed().as_secs_f64() * 1e6 / OUTPUTS as f64;
        let started = Instant::now();
        let mut plain = 0u64;
        for text in &texts {
            plain += u64::from(tokenizer.count_output(text).expect("counts"));
        }
        let plain_us = started.elapsed().as_secs_f64() * 1e6 / OUTPUTS as f64;
        assert_eq!(counted, plain, "pieces add up to the whole");
        println!("{kind:>10} {pieces_us:>14.1} {plain_us:>14.1} {:>8.2}", pieces_us / plain_us);
    }
    println!(
        "read s: reading the tokenizer and encoding the corpus once; build s: {PROMPTS} prompts, one in {} encoded to \
         check it; encoding s: encoding every prompt, measured on {BASELINE} and scaled; memory: the corpus twice \
         round, its per-word counts and the prompts",
        server::tokenizer::CHECK_EVERY
    );
}
