//! Where a run's prompts come from: synthetic words, natural text of exact lengths cut by a
//! tokenizer ([`ExactPrompts`]), or a user's file ([`FilePrompts`]). The engine and the profile
//! export both ask [`RunPrompts::prompt`], so an export lists what was sent.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use shared::prompt::{synthetic_prompt, word_count};
use shared::{SweepSpec, limits};

use crate::prompt_file::{self, PromptFile};
use crate::tokenizer::{ExactPrompts, Tokenizer, prompt_number};

/// A prompt as sent, and its length in the run's unit: tokens by its tokenizer, else words.
pub struct SentPrompt<'a> {
    pub text: Cow<'a, str>,
    pub length: u32,
}

/// The prompts of one run: where they come from, and the prefix they share, if any.
pub struct RunPrompts {
    source: Source,
    /// The shared prefix's text, ending where a word does, and its length.
    prefix: Option<(String, u32)>,
}

impl std::fmt::Debug for RunPrompts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.source {
            Source::Synthetic => "synthetic".to_string(),
            Source::Exact(exact) => format!("exact lengths by {}", exact.tokenizer().name()),
            Source::File(file) => format!("{} prompts of {}", file.count(), file.path),
        };
        f.debug_struct("RunPrompts")
            .field("source", &source)
            .field("prefix", &self.prefix.as_ref().map(|p| p.1))
            .finish()
    }
}

enum Source {
    /// Synthetic English words, a different text for every request.
    Synthetic,
    Exact(ExactPrompts),
    File(FilePrompts),
}

impl RunPrompts {
    /// The prompts `spec` asks for, read and checked before anything is sent: a tokenizer or
    /// prompts file that cannot be used, or a sweep that needs more prompts of exact lengths
    /// than the corpus holds, is refused with the reason.
    pub fn open(spec: &SweepSpec) -> Result<RunPrompts, String> {
        let tokenizer = match spec.tokenizer.as_deref() {
            Some(path) => Some(Tokenizer::open(Path::new(path)).map_err(|e| e.to_string())?),
            None => None,
        };
        if let Some(path) = spec.prompts_file.as_deref() {
            let file = prompt_file::read(Path::new(path)).map_err(|e| e.to_string())?;
            let prompts = FilePrompts::new(file, tokenizer, &spec.prompt_lengths)?;
            // The cap on prompt bytes in flight, with the file's longest prompt in every one.
            let in_flight = u64::from(spec.most_in_flight()).saturating_mul(prompts.most_bytes() as u64);
            if in_flight > limits::MAX_PROMPT_BYTES_IN_FLIGHT {
                return Err(format!(
                    "{} requests in flight with prompts of up to {} bytes from {path} may hold {} MiB of prompts, \
                     over the limit of {} MiB: send fewer at once or leave out the longest prompts",
                    spec.most_in_flight(),
                    prompts.most_bytes(),
                    in_flight >> 20,
                    limits::MAX_PROMPT_BYTES_IN_FLIGHT >> 20
                ));
            }
            return Ok(RunPrompts { source: Source::File(prompts), prefix: None });
        }
        let Some(tokenizer) = tokenizer else {
            let prefix = spec.shared_prefix.map(|words| (synthetic_prompt(u32::MAX, u32::MAX, words), words));
            return Ok(RunPrompts { source: Source::Synthetic, prefix });
        };
        let exact = ExactPrompts::new(tokenizer).map_err(|e| e.to_string())?;
        let prefix = match spec.shared_prefix {
            Some(tokens) => Some((exact.prefix(tokens).map_err(|e| e.to_string())?.to_string(), tokens)),
            None => None,
        };
        let prompts = RunPrompts { source: Source::Exact(exact), prefix };
        // Every length at both ends of its draws, so none fails once the run goes.
        for &length in &spec.prompt_lengths {
            let least = prompts.least_length().max(shared::lengths::least(length, spec.prompt_stddev));
            let most = shared::lengths::most(length, spec.prompt_stddev);
            for length in [least, length, most] {
                prompts.make(spec, 0, 0, length)?;
            }
        }
        let needed = spec.total_requests();
        let Source::Exact(exact) = &prompts.source else { unreachable!("made above") };
        if needed > exact.distinct() {
            return Err(format!(
                "this sweep can send {needed} requests, and the prompt corpus holds {} different prompts for the \
                 tokenizer {}: ask for fewer requests or fewer points (with --duration, give --requests to cap them)",
                exact.distinct(),
                exact.tokenizer().name()
            ));
        }
        Ok(prompts)
    }

    /// The prompt of request `seq` of point `point`, whose prompts are `length` long: of that
    /// length, or of one drawn around it when the spec asks (a prompts file's keep their own).
    pub fn prompt(&self, spec: &SweepSpec, point: u32, seq: u32, length: u32) -> Result<SentPrompt<'_>, String> {
        if let Source::File(file) = &self.source {
            // The points of one length go on through its prompts, rather than each sending
            // the same ones, which a prefix cache would answer faster.
            let sent_before = spec.level_of(point as usize) as u64 * spec.requests_per_point();
            return file.prompt(length, sent_before + u64::from(seq));
        }
        let length = spec.prompt_length_of(point, seq, length, self.least_length());
        self.make(spec, point, seq, length)
    }

    /// The made prompt of request `seq` of point `point`, of exactly `length`.
    fn make(&self, spec: &SweepSpec, point: u32, seq: u32, length: u32) -> Result<SentPrompt<'_>, String> {
        let prefix = self.prefix.as_ref().map(|(text, length)| (text.as_str(), *length));
        let text: Cow<'_, str> = match (&self.source, prefix) {
            (Source::Exact(exact), None) => {
                exact.prompt(prompt_number(spec, point, seq), length).map_err(|e| e.to_string())?.text.into()
            }
            (Source::Exact(exact), Some((prefix, tokens))) => exact
                .prompt_after(prefix, tokens, prompt_number(spec, point, seq), length)
                .map_err(|e| e.to_string())?
                .into(),
            (_, None) => synthetic_prompt(point, seq, length).into(),
            (_, Some((prefix, words))) => {
                format!("{prefix} {}", synthetic_prompt(point, seq, length.saturating_sub(words))).into()
            }
        };
        Ok(SentPrompt { text, length })
    }

    /// The shortest prompt that can be made: one token or word, the tokenizer's special tokens
    /// and the shared prefix besides.
    fn least_length(&self) -> u32 {
        let specials = self.tokenizer().map_or(0, Tokenizer::specials);
        1 + specials + self.prefix.as_ref().map_or(0, |(_, length)| *length)
    }

    /// The tokenizer that counts the run's tokens, if it has one.
    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        match &self.source {
            Source::Synthetic => None,
            Source::Exact(exact) => Some(exact.tokenizer()),
            Source::File(file) => file.tokenizer.as_ref(),
        }
    }

    /// A prompts file's prompts, when they are the run's.
    pub fn file(&self) -> Option<&FilePrompts> {
        match &self.source {
            Source::File(file) => Some(file),
            _ => None,
        }
    }

    /// The same prompts, a prompts file's grouped by `lengths` instead.
    pub fn grouped(self, lengths: &[u32]) -> Result<RunPrompts, String> {
        match self.source {
            Source::File(file) => Ok(RunPrompts { source: Source::File(file.grouped(lengths)?), ..self }),
            source => Ok(RunPrompts { source, ..self }),
        }
    }
}

/// A prompts file's prompts, each measured and put to the sweep's prompt length nearest its
/// own by ratio (2,000 tokens goes to 2,048 rather than 1,024), so each point sends prompts
/// of about its length. A sweep of one length takes them all, as one mixed point.
pub struct FilePrompts {
    path: String,
    texts: Vec<String>,
    /// Each prompt's length: tokens by the tokenizer, special tokens included, else words.
    lengths: Vec<u32>,
    /// The prompts of each of the sweep's lengths, in file order.
    groups: BTreeMap<u32, Vec<u32>>,
    tokenizer: Option<Tokenizer>,
}

impl FilePrompts {
    /// Measures and groups `file`'s prompts; a sweep length that no prompt is nearest to is
    /// refused, naming the lengths the file has.
    pub fn new(file: PromptFile, tokenizer: Option<Tokenizer>, lengths: &[u32]) -> Result<FilePrompts, String> {
        let mut measured = Vec::with_capacity(file.prompts.len());
        for prompt in &file.prompts {
            let length = match &tokenizer {
                Some(tokenizer) => tokenizer.count(&prompt.text).map_err(|e| format!("line {}: {e}", prompt.place))?,
                None => word_count(&prompt.text) as u32,
            };
            if length > limits::MAX_PROMPT_WORDS {
                return Err(format!(
                    "prompt {} of {} is {length} long, over the limit of {}: leave it out",
                    prompt.place,
                    file.path.display(),
                    limits::MAX_PROMPT_WORDS
                ));
            }
            measured.push(length);
        }
        let path = file.path.display().to_string();
        let texts = file.prompts.into_iter().map(|p| p.text).collect();
        FilePrompts { path, texts, lengths: measured, groups: BTreeMap::new(), tokenizer }.grouped(lengths)
    }

    /// The same prompts grouped by `lengths` instead.
    pub fn grouped(mut self, lengths: &[u32]) -> Result<FilePrompts, String> {
        let measured = &self.lengths;
        let mut groups: BTreeMap<u32, Vec<u32>> = lengths.iter().map(|&l| (l, Vec::new())).collect();
        for (i, &length) in measured.iter().enumerate() {
            let nearest = lengths.iter().copied().min_by(|&a, &b| ratio(length, a).total_cmp(&ratio(length, b)));
            if let Some(group) = nearest.and_then(|l| groups.get_mut(&l)) {
                group.push(i as u32);
            }
        }
        if let Some((&empty, _)) = groups.iter().find(|(_, group)| group.is_empty()) {
            let (least, most) = (measured.iter().min().copied(), measured.iter().max().copied());
            let unit = self.unit();
            return Err(format!(
                "no prompt of {} is nearer {empty} {unit} than another of the sweep's lengths (its {} prompts have {} \
                 to {} {unit}): leave that length out, or leave out --prompt-lengths to send them all as one point",
                self.path,
                measured.len(),
                least.unwrap_or(0),
                most.unwrap_or(0)
            ));
        }
        self.groups = groups;
        Ok(self)
    }

    /// What the prompts' lengths count.
    pub fn unit(&self) -> String {
        self.tokenizer.as_ref().map_or_else(|| "words".to_string(), |t| format!("tokens (tokenizer {})", t.name()))
    }

    /// How many prompts the file holds.
    pub fn count(&self) -> usize {
        self.texts.len()
    }

    /// The `n`th prompt sent at `length`: its group's prompts in file order, from the first
    /// again once all were sent.
    fn prompt(&self, length: u32, n: u64) -> Result<SentPrompt<'_>, String> {
        let group = self.groups.get(&length).ok_or_else(|| format!("the prompts file has no prompts for {length}"))?;
        let i = group[(n % group.len() as u64) as usize] as usize;
        Ok(SentPrompt { text: Cow::Borrowed(&self.texts[i]), length: self.lengths[i] })
    }

    /// For each of the sweep's lengths: how many prompts it sends, and their least, median and
    /// most lengths.
    pub fn groups(&self) -> impl Iterator<Item = (u32, usize, [u32; 3])> + '_ {
        self.groups.iter().map(|(&length, group)| {
            let mut sizes: Vec<u32> = group.iter().map(|&i| self.lengths[i as usize]).collect();
            sizes.sort_unstable();
            (length, sizes.len(), [sizes[0], sizes[sizes.len() / 2], sizes[sizes.len() - 1]])
        })
    }

    /// The median length of all the file's prompts: the length of the one point a sweep of
    /// them all is shown at.
    pub fn median_length(&self) -> u32 {
        let mut sizes = self.lengths.clone();
        sizes.sort_unstable();
        sizes[sizes.len() / 2].max(1)
    }

    /// The most bytes a prompt of the file has.
    pub fn most_bytes(&self) -> usize {
        self.texts.iter().map(String::len).max().unwrap_or(0)
    }
}

/// How far apart two lengths are, as the size of the log of their ratio.
fn ratio(a: u32, b: u32) -> f64 {
    (f64::from(a.max(1)) / f64::from(b.max(1))).ln().abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(texts: &[&str]) -> PromptFile {
        let content: String = texts.iter().map(|t| format!("{}\n", serde_json::json!({ "text": t }))).collect();
        prompt_file::parse(Path::new("p.jsonl"), &content).unwrap()
    }

    fn words(n: usize) -> String {
        vec!["word"; n].join(" ")
    }

    #[test]
    fn prompts_go_to_the_nearest_length_and_come_round_again() {
        let texts = [words(10), words(15), words(30), words(100), words(130), words(900)];
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let prompts = FilePrompts::new(file(&refs), None, &[16, 128, 1024]).unwrap();
        let groups: Vec<_> = prompts.groups().collect();
        // 30 is nearer 16 than 128 by ratio (1.9 times against 4.3).
        assert_eq!(groups, vec![(16, 3, [10, 15, 30]), (128, 2, [100, 130, 130]), (1024, 1, [900, 900, 900])]);
        let sent: Vec<u32> = (0..4u64).map(|n| prompts.prompt(128, n).unwrap().length).collect();
        assert_eq!(sent, vec![100, 130, 100, 130]);
        assert_eq!(prompts.prompt(16, 1).unwrap().text, texts[1]);
        assert_eq!(prompts.median_length(), 100);
        // One length takes every prompt.
        let mixed = FilePrompts::new(file(&refs), None, &[100]).unwrap();
        assert_eq!(mixed.groups().next(), Some((100, 6, [10, 100, 900])));
    }

    #[test]
    fn a_length_no_prompt_is_near_is_refused() {
        let error = FilePrompts::new(file(&["a b c", "d e f g"]), None, &[4, 4096]).err().unwrap();
        assert!(
            error.contains("nearer 4096 words") && error.contains("p.jsonl") && error.contains("3 to 4"),
            "{error}"
        );
    }

    #[test]
    fn prompts_with_a_shared_prefix_start_alike_and_keep_their_lengths() {
        let scratch = tempfile::tempdir().unwrap();
        for file in
            [crate::tokenizer::fixture::bpe(scratch.path()), crate::tokenizer::fixture::wordpiece(scratch.path())]
        {
            let spec = SweepSpec {
                prompt_lengths: vec![100, 1000],
                prompt_stddev: Some(40.0),
                shared_prefix: Some(64),
                requests: 50,
                tokenizer: Some(file.display().to_string()),
                ..SweepSpec::default()
            };
            let prompts = RunPrompts::open(&spec).unwrap();
            let counter = Tokenizer::open(&file).unwrap();
            let mut seen = std::collections::HashSet::new();
            let first = prompts.prompt(&spec, 0, 0, 100).unwrap().text.into_owned();
            for (point, length) in [(0, 100), (1, 1000)] {
                for seq in 0..50 {
                    let sent = prompts.prompt(&spec, point, seq, length).unwrap();
                    assert_eq!(counter.count(&sent.text).unwrap(), sent.length, "{}: exact", file.display());
                    assert_eq!(sent.length, spec.prompt_length_of(point, seq, length, 1 + counter.specials() + 64));
                    let common = first.bytes().zip(sent.text.bytes()).take_while(|(a, b)| a == b).count();
                    let prefix = counter.count(&first[..common]).unwrap() - counter.specials();
                    assert!(prefix >= 64, "{}: the first 64 tokens are shared, not {prefix}", file.display());
                    assert!(seen.insert(sent.text.into_owned()) || (point, seq) == (0, 0), "no two alike");
                }
            }
        }
        // Synthetic words share theirs too.
        let spec = SweepSpec { prompt_lengths: vec![20], shared_prefix: Some(8), ..SweepSpec::default() };
        let prompts = RunPrompts::open(&spec).unwrap();
        let [a, b] = [0, 1].map(|seq| prompts.prompt(&spec, 0, seq, 20).unwrap().text.into_owned());
        assert_eq!((word_count(&a), word_count(&b)), (20, 20));
        assert_eq!(a.split(' ').take(8).collect::<Vec<_>>(), b.split(' ').take(8).collect::<Vec<_>>());
        assert_ne!(a, b);
    }

    #[test]
    fn a_tokenizer_measures_file_prompts_in_its_tokens() {
        let scratch = tempfile::tempdir().unwrap();
        let tokenizer = Tokenizer::open(&crate::tokenizer::fixture::bpe(scratch.path())).unwrap();
        let text = "It is a capital mistake to theorize before one has data.";
        let count = tokenizer.count(text).unwrap();
        let prompts = FilePrompts::new(file(&[text]), Some(tokenizer), &[count]).unwrap();
        let sent = prompts.prompt(count, 0).unwrap();
        assert_eq!((sent.text.as_ref(), sent.length), (text, count));
    }
}
