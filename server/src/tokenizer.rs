//! Prompts of an exact length in tokens, as a Hugging Face tokenizer counts them.
//!
//! A tokenizer splits text into words (its pre-tokenizer) and each word into tokens on its
//! own, so a run of whole words of a text has as many tokens as those words had in it. The
//! corpus (public-domain prose shipped with tokenscope, see `server/corpus/`) is encoded once;
//! a prompt of N tokens is then a run of its words that holds N tokens with the tokenizer's
//! special tokens, found on the corpus's running token count without encoding anything. Each
//! prompt of a run starts at a word of its own, so no two share a beginning (nor a prefix a
//! server could cache); a run that would need more prompts than the corpus has starts for is
//! refused. The corpus is read as if it went round: a prompt that starts near its end goes
//! on from its beginning. One prompt in [`CHECK_EVERY`] is encoded to check its count, and a
//! few of each length before a run; a tokenizer for which a run of words does not count as
//! its words did has every prompt checked, a start that misses giving way to the next.

use std::path::{Path, PathBuf};

use shared::SweepSpec;

/// The corpus prompts are cut from.
pub const CORPUS: &str = include_str!("../corpus/the-adventures-of-sherlock-holmes.txt");

/// The corpus twice, so that a prompt starting near the end of the first goes on into the
/// second.
static ROUND: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| format!("{CORPUS}\n\n{CORPUS}"));

/// One prompt in this many is encoded to check its length, once the first of its length was.
pub const CHECK_EVERY: u64 = 64;

/// A word a prompt can start at is one of this many, the rest kept for the prompts before and
/// after it, so a start can move forward to find an exact length and still be its own.
const WORDS_PER_START: usize = 2;

/// The number of the prompt of request `seq` of point `point`, the same wherever it is asked
/// for (the engine, an export), and different for every request of the run.
pub fn prompt_number(spec: &SweepSpec, point: u32, seq: u32) -> u64 {
    u64::from(point) * spec.requests_per_point() + u64::from(seq)
}

/// What went wrong with a tokenizer file.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("there is no tokenizer at {0}: give a tokenizer.json file or a folder that holds one")]
    Missing(PathBuf),
    #[error(
        "{0} holds no tokenizer.json (looked up to three folders deep): give the file, or the folder of a \
         Hugging Face model or of a Triton model's tokenizer"
    )]
    NoneInFolder(PathBuf),
    #[error("{folder} holds more than one tokenizer.json ({}): give the one to use", .found.join(", "))]
    SeveralInFolder { folder: PathBuf, found: Vec<String> },
    /// `file` names the file: its path, or how it came (an upload).
    #[error("{file} is not a tokenizer tokenscope can read: {why}")]
    Unreadable { file: String, why: String },
    #[error("the tokenizer {name} cannot {what}: {why}")]
    Failed { name: String, what: &'static str, why: String },
    #[error(
        "the tokenizer {name} adds {specials} special tokens to every prompt, as many as or more than the \
         {length} tokens asked for"
    )]
    TooShort { name: String, specials: u32, length: u32 },
    #[error("the corpus is too short for prompts of {length} tokens by the tokenizer {name}; the longest is {most}")]
    TooLong { name: String, length: u32, most: u32 },
}

/// A Hugging Face tokenizer, read from its `tokenizer.json`.
pub struct Tokenizer {
    /// What the tokenizer is called: its folder's name, or the file's where that says more.
    name: String,
    path: PathBuf,
    inner: tokenizers::Tokenizer,
    /// Special tokens it adds to every text (a beginning-of-sequence token, say).
    specials: u32,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer").field("name", &self.name).field("path", &self.path).finish()
    }
}

impl Tokenizer {
    /// Reads a `tokenizer.json`, given as the file or as a folder holding exactly one, up to
    /// three folders deep (a Hugging Face model folder or cache entry, a Triton model's
    /// tokenizer folder).
    pub fn open(path: &Path) -> Result<Tokenizer, TokenizerError> {
        let file = Tokenizer::locate(path)?;
        let shown = file.display().to_string();
        let text = std::fs::read_to_string(&file)
            .map_err(|e| TokenizerError::Unreadable { file: shown.clone(), why: e.to_string() })?;
        Tokenizer::from_json(&text, shown, file)
    }

    /// The `tokenizer.json` that [`Tokenizer::open`] reads for `path`, found without reading
    /// any file: `path` itself, or the one file of that name in its folder.
    pub fn locate(path: &Path) -> Result<PathBuf, TokenizerError> {
        if path.is_dir() {
            let mut found = Vec::new();
            find_files(path, "tokenizer.json", 3, &mut found);
            match found.len() {
                0 => Err(TokenizerError::NoneInFolder(path.into())),
                1 => Ok(found.remove(0)),
                _ => Err(TokenizerError::SeveralInFolder {
                    folder: path.into(),
                    found: found.iter().map(|f| f.display().to_string()).collect(),
                }),
            }
        } else if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(TokenizerError::Missing(path.into()))
        }
    }

    /// Reads a tokenizer from the bytes of a `tokenizer.json` that came as `shown` (its
    /// errors name it so) and is to be kept at `path`, which names it as [`Tokenizer::open`]
    /// would.
    pub fn from_bytes(bytes: &[u8], shown: &str, path: &Path) -> Result<Tokenizer, TokenizerError> {
        let text = std::str::from_utf8(bytes).map_err(|e| TokenizerError::Unreadable {
            file: shown.to_string(),
            why: format!("it is not UTF-8 text, as a tokenizer.json is ({e})"),
        })?;
        Tokenizer::from_json(text, shown.to_string(), path.to_path_buf())
    }

    fn from_json(text: &str, shown: String, file: PathBuf) -> Result<Tokenizer, TokenizerError> {
        let unreadable = |why: String| TokenizerError::Unreadable { file: shown.clone(), why };
        let mut inner: tokenizers::Tokenizer =
            text.parse().map_err(|e: tokenizers::Error| unreadable(e.to_string()))?;
        // Counts are of the whole text: a file's truncation (BERT's keep 512) and padding are
        // for feeding a model, not for counting.
        inner.with_truncation(None).map_err(|e| unreadable(e.to_string()))?;
        inner.with_padding(None);
        let name = file
            .parent()
            .and_then(Path::file_name)
            .or_else(|| file.file_name())
            .map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
        let mut tokenizer = Tokenizer { name, path: file, inner, specials: 0 };
        tokenizer.specials = tokenizer.count("")?;
        Ok(tokenizer)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Special tokens it adds to every text.
    pub fn specials(&self) -> u32 {
        self.specials
    }

    /// Tokens in `text`, special tokens included, as a completion request's prompt is
    /// counted (vLLM's completions path adds them).
    pub fn count(&self, text: &str) -> Result<u32, TokenizerError> {
        Ok(self.encode(text, true, "count a prompt's tokens")?.len() as u32)
    }

    /// Tokens in `text` as generated output: no special tokens added.
    pub fn count_output(&self, text: &str) -> Result<u32, TokenizerError> {
        Ok(self.encode(text, false, "count output tokens")?.len() as u32)
    }

    /// Output tokens of a text that arrived in pieces (a stream's responses), each put to the
    /// piece its first byte is in: a token split across two responses counts in the first,
    /// and a piece of only what the tokenizer drops (spaces, to a WordPiece) carries none. The
    /// counts add up to [`Tokenizer::count_output`] of the whole text.
    pub fn count_pieces<'a>(&self, pieces: impl Iterator<Item = &'a str>) -> Result<Vec<u32>, TokenizerError> {
        let mut text = String::new();
        let mut ends = Vec::new();
        for piece in pieces {
            text.push_str(piece);
            ends.push(text.len());
        }
        let mut counts = vec![0u32; ends.len()];
        if counts.is_empty() {
            return Ok(counts);
        }
        let last = counts.len() - 1;
        for &(start, _) in self.encode(&text, false, "count output tokens")?.get_offsets() {
            counts[ends.partition_point(|&end| end <= start).min(last)] += 1;
        }
        Ok(counts)
    }

    fn encode(&self, text: &str, specials: bool, what: &'static str) -> Result<tokenizers::Encoding, TokenizerError> {
        self.inner.encode(text, specials).map_err(|e| TokenizerError::Failed {
            name: self.name.clone(),
            what,
            why: e.to_string(),
        })
    }
}

/// Files named `name` under `folder`, up to `depth` folders down, in name order.
fn find_files(folder: &Path, name: &str, depth: u32, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(folder) else { return };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for entry in entries {
        if entry.is_file() && entry.file_name().is_some_and(|n| n == name) {
            found.push(entry);
        } else if entry.is_dir()
            && depth > 0
            && !entry.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            // Hidden folders left out: the Hugging Face cache marks files a model lacks with
            // empty ones under `.no_exist`.
            find_files(&entry, name, depth - 1, found);
        }
    }
}

/// A tokenizer read once and shared by whatever counts with it; two are equal when read from
/// the same file. Read from a command line's path by [`SharedTokenizer::parse`].
#[derive(Debug, Clone)]
pub struct SharedTokenizer(pub std::sync::Arc<Tokenizer>);

impl SharedTokenizer {
    /// Reads the tokenizer at `path` (a file or a folder, as [`Tokenizer::open`] takes).
    pub fn parse(path: &str) -> Result<SharedTokenizer, String> {
        Tokenizer::open(Path::new(path)).map(|t| SharedTokenizer(t.into())).map_err(|e| e.to_string())
    }
}

impl PartialEq for SharedTokenizer {
    fn eq(&self, other: &Self) -> bool {
        self.0.path() == other.0.path()
    }
}

/// The corpus as a tokenizer counts it, to cut prompts of exact lengths from.
#[derive(Debug)]
pub struct ExactPrompts {
    tokenizer: Tokenizer,
    text: &'static str,
    /// Per word of the corpus (in order), the byte where it ends: a run of words `p..q` is
    /// the text from the end of word `p - 1` (what separates it from `p` included) to the end
    /// of word `q - 1`.
    ends: Vec<u32>,
    /// The corpus's tokens before each word: `before[q] - before[p]` are the tokens of words
    /// `p..q`. One entry more than words.
    before: Vec<u32>,
    /// The words a prompt can start at: those after a single space.
    starts: Vec<u32>,
    /// How far apart consecutive prompts' slots are ([`golden_stride`] of the slots).
    stride: usize,
    /// Whether every prompt is checked, since one checked before the run was not as counted.
    check_all: bool,
}

/// A prompt of an exact length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub text: &'static str,
    /// Its tokens, special tokens included.
    pub tokens: u32,
}

impl ExactPrompts {
    /// Encodes the corpus with `tokenizer`, and checks a few prompts by encoding them.
    pub fn new(tokenizer: Tokenizer) -> Result<ExactPrompts, TokenizerError> {
        let mut prompts = ExactPrompts::of_text(tokenizer, ROUND.as_str(), CORPUS.len())?;
        // Checked before any prompt is made, so that a prompt is the same whoever makes it.
        let specials = prompts.tokenizer.specials;
        for (n, length) in (0..8).zip([16, 100, 333, 1024].iter().cycle()) {
            let prompt = prompts.prompt(n, length + specials)?;
            if prompts.tokenizer.count(prompt.text)? != prompt.tokens {
                prompts.check_all = true;
                break;
            }
        }
        Ok(prompts)
    }

    /// `text`'s words as `tokenizer` counts them; prompts start in its first `first` bytes.
    fn of_text(tokenizer: Tokenizer, text: &'static str, first: usize) -> Result<ExactPrompts, TokenizerError> {
        let encoding = tokenizer.encode(text, false, "read the prompt corpus")?;
        let (mut ends, mut before) = (Vec::new(), vec![0u32]);
        for (word, &(_, end)) in encoding.get_word_ids().iter().zip(encoding.get_offsets()) {
            let Some(word) = word else { continue };
            let word = *word as usize;
            if word >= ends.len() {
                // Words without tokens of their own are part of the next one's run.
                let last = before.last().copied().unwrap_or(0);
                ends.resize(word + 1, 0);
                before.resize(word + 2, last);
            }
            ends[word] = ends[word].max(end as u32);
            before[word + 1] += 1;
        }
        // A word with no tokens ends where the one before it does.
        for w in 1..ends.len() {
            ends[w] = ends[w].max(ends[w - 1]);
        }
        let bytes = text.as_bytes();
        let starts: Vec<u32> = (1..ends.len() as u32)
            .filter(|&w| {
                let at = ends[w as usize - 1] as usize;
                at < first
                    && bytes.get(at) == Some(&b' ')
                    && bytes.get(at + 1).is_some_and(|b| !b.is_ascii_whitespace())
            })
            .collect();
        if starts.len() < 1000 {
            return Err(TokenizerError::Failed {
                name: tokenizer.name.clone(),
                what: "make prompts of an exact length",
                why: format!(
                    "it splits the corpus into {} words, too few to start prompts at (it likely has no pre-tokenizer); \
                     prompts of exact lengths need a tokenizer that splits text into words",
                    ends.len()
                ),
            });
        }
        let stride = golden_stride((starts.len() / WORDS_PER_START).max(1));
        Ok(ExactPrompts { tokenizer, text, ends, before, starts, stride, check_all: false })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Words in the corpus, as the tokenizer splits it.
    pub fn words(&self) -> usize {
        self.ends.len()
    }

    /// The memory the corpus's per-word counts and the corpus twice round hold, in bytes
    /// (the corpus once is part of the program).
    pub fn held_bytes(&self) -> usize {
        let counts = self.ends.capacity() + self.before.capacity() + self.starts.capacity();
        counts * std::mem::size_of::<u32>() + self.text.len()
    }

    /// How many prompts start at words of their own before they start to repeat.
    pub fn distinct(&self) -> u64 {
        (self.starts.len() / WORDS_PER_START) as u64
    }

    /// Prompt number `n` of a run, of `length` tokens, special tokens included: the same
    /// for the same `n` and `length`, and starting at a word no other `n` below
    /// [`ExactPrompts::distinct`] starts at.
    pub fn prompt(&self, n: u64, length: u32) -> Result<Prompt, TokenizerError> {
        let name = || self.tokenizer.name.clone();
        let specials = self.tokenizer.specials;
        let Some(words_tokens) = length.checked_sub(specials).filter(|&t| t > 0) else {
            return Err(TokenizerError::TooShort { name: name(), specials, length });
        };
        let most = self.most_tokens();
        if words_tokens > most - specials {
            return Err(TokenizerError::TooLong { name: name(), length, most });
        }
        let slots = self.distinct().max(1) as usize;
        // Spread over the corpus: consecutive prompts start far apart.
        let slot = ((n as u128 * self.stride as u128) % slots as u128) as usize;
        let check = n.is_multiple_of(CHECK_EVERY) || self.check_all;
        let mut missed = 0;
        // Its own starts first, then the ones after.
        for k in 0..self.starts.len() {
            let start = self.starts[(slot * WORDS_PER_START + k) % self.starts.len()] as usize;
            let Some(end) = self.end_after(start, words_tokens) else { continue };
            let Some(text) = self.text.get(self.ends[start - 1] as usize..self.ends[end - 1] as usize) else {
                continue;
            };
            if !check || self.tokenizer.count(text)? == length {
                return Ok(Prompt { text, tokens: length });
            }
            missed += 1;
            if missed == 64 {
                break;
            }
        }
        Err(TokenizerError::Failed {
            name: name(),
            what: "make prompts of an exact length",
            why: format!(
                "64 runs of the corpus's words meant to hold {length} tokens each held another number: its words do \
                 not keep their counts in a run of them"
            ),
        })
    }

    /// A run of the corpus's words of exactly `tokens` tokens (special tokens not counted),
    /// the same every time: the text every prompt of a run with a shared prefix starts with.
    pub fn prefix(&self, tokens: u32) -> Result<&'static str, TokenizerError> {
        let most = self.most_tokens() - self.tokenizer.specials;
        if tokens == 0 || tokens > most {
            return Err(TokenizerError::TooLong { name: self.tokenizer.name.clone(), length: tokens, most });
        }
        for &start in self.starts.iter().take(1000) {
            let start = start as usize;
            let Some(end) = self.end_after(start, tokens) else { continue };
            if let Some(text) = self.text.get(self.ends[start - 1] as usize..self.ends[end - 1] as usize) {
                return Ok(text);
            }
        }
        Err(TokenizerError::Failed {
            name: self.tokenizer.name.clone(),
            what: "make a shared prefix",
            why: format!("no run of the corpus's words from 1,000 starts holds exactly {tokens} tokens"),
        })
    }

    /// Prompt number `n` of `length` tokens, special tokens included, that starts with
    /// `prefix` (from [`ExactPrompts::prefix`], of `prefix_tokens` tokens): the prefix, then
    /// a prompt of its own of the tokens left. Checked as [`ExactPrompts::prompt`] checks.
    pub fn prompt_after(
        &self,
        prefix: &str,
        prefix_tokens: u32,
        n: u64,
        length: u32,
    ) -> Result<String, TokenizerError> {
        let rest = self.prompt(n, length.saturating_sub(prefix_tokens))?;
        let text = format!("{prefix}{}", rest.text);
        if (n.is_multiple_of(CHECK_EVERY) || self.check_all) && self.tokenizer.count(&text)? != length {
            return Err(TokenizerError::Failed {
                name: self.tokenizer.name.clone(),
                what: "make prompts with a shared prefix",
                why: format!(
                    "a prefix of {prefix_tokens} tokens and a prompt of {} together held another number than {length}: \
                     it does not count the two apart",
                    rest.tokens
                ),
            });
        }
        Ok(text)
    }

    /// The longest prompt, in tokens: the corpus once round, and the special tokens.
    pub fn most_tokens(&self) -> u32 {
        let once = self.before.last().copied().unwrap_or(0) / 2;
        once.saturating_add(self.tokenizer.specials)
    }

    /// The word after the last of a run from `start` that holds exactly `tokens` tokens, if
    /// one does.
    fn end_after(&self, start: usize, tokens: u32) -> Option<usize> {
        let want = self.before[start].checked_add(tokens)?;
        let end = self.before.partition_point(|&b| b < want);
        (end < self.before.len() && self.before[end] == want).then_some(end)
    }
}

/// A stride near `slots` over the golden ratio that shares no factor with `slots`, so that
/// `n * stride % slots` visits every slot once in `slots` steps, far from the last.
fn golden_stride(slots: usize) -> usize {
    if slots <= 2 {
        return 1;
    }
    let mut stride = ((slots as f64 * 0.618_033_988_75) as usize).max(1);
    while gcd(stride, slots) != 1 {
        stride += 1;
    }
    stride
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Small tokenizers learnt from the corpus's first 200 kB, for tests and benchmarks: one of
/// each kind a model's `tokenizer.json` holds most often. Each is saved as `tokenizer.json`
/// in a folder of its kind's name under the folder given, and its path answered.
pub mod fixture {
    use std::path::{Path, PathBuf};

    use tokenizers::models::TrainerWrapper;
    use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
    use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainerBuilder};
    use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::processors::bert::BertProcessing;
    use tokenizers::processors::template::TemplateProcessing;
    use tokenizers::{AddedToken, decoders};

    use super::CORPUS;

    /// A byte-level BPE like GPT-2's and Llama 3's, with a beginning-of-sequence token as
    /// Llama's adds, learnt from the corpus's first 200 kB.
    pub fn bpe(folder: &Path) -> PathBuf {
        let mut tokenizer = tokenizers::Tokenizer::new(BPE::default());
        tokenizer.with_pre_tokenizer(Some(ByteLevel::default()));
        tokenizer.with_decoder(Some(decoders::byte_level::ByteLevel::default()));
        let mut trainer = TrainerWrapper::BpeTrainer(
            BpeTrainerBuilder::new()
                .vocab_size(2000)
                .show_progress(false)
                .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
                .special_tokens(vec![AddedToken::from("<s>", true)])
                .build(),
        );
        tokenizer.train(&mut trainer, learn_from()).expect("trains");
        let bos = TemplateProcessing::builder()
            .try_single("<s> $A")
            .unwrap()
            .special_tokens(vec![("<s>", tokenizer.token_to_id("<s>").expect("<s> is known"))])
            .build()
            .unwrap();
        tokenizer.with_post_processor(Some(bos));
        save(tokenizer, &folder.join("bpe"))
    }

    /// A WordPiece like BERT's, which adds [CLS] and [SEP].
    pub fn wordpiece(folder: &Path) -> PathBuf {
        let mut tokenizer = tokenizers::Tokenizer::new(WordPiece::default());
        tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
        let specials = ["[UNK]", "[CLS]", "[SEP]"].map(|t| AddedToken::from(t, true)).to_vec();
        let mut trainer = TrainerWrapper::WordPieceTrainer(
            WordPieceTrainerBuilder::new().vocab_size(2000).show_progress(false).special_tokens(specials).build(),
        );
        tokenizer.train(&mut trainer, learn_from()).expect("trains");
        let id = |t: &str| (t.to_string(), tokenizer.token_to_id(t).expect("known"));
        let (sep, cls) = (id("[SEP]"), id("[CLS]"));
        tokenizer.with_post_processor(Some(BertProcessing::new(sep, cls)));
        save(tokenizer, &folder.join("wordpiece"))
    }

    fn learn_from() -> impl Iterator<Item = &'static str> + Send {
        CORPUS[..200_000].split_inclusive('\n')
    }

    fn save(tokenizer: tokenizers::Tokenizer, folder: &Path) -> PathBuf {
        std::fs::create_dir_all(folder).unwrap();
        let file = folder.join("tokenizer.json");
        tokenizer.save(&file, false).expect("saves");
        file
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::fixture::{bpe, wordpiece};
    use super::*;

    #[test]
    fn every_prompt_has_exactly_its_tokens_and_no_two_are_alike() {
        let scratch = tempfile::tempdir().unwrap();
        for (file, specials) in [(bpe(scratch.path()), 1), (wordpiece(scratch.path()), 2)] {
            let prompts = ExactPrompts::new(Tokenizer::open(&file).unwrap()).unwrap();
            assert_eq!(prompts.tokenizer().specials(), specials);
            assert!(prompts.distinct() > 10_000, "{}", prompts.distinct());
            let mut seen = HashSet::new();
            let mut n = 0;
            for length in [16, 32, 64, 128, 256, 512, 1024, 2048, 4096] {
                for _ in 0..12 {
                    let prompt = prompts.prompt(n, length).unwrap();
                    n += 1;
                    assert_eq!(prompts.tokenizer().count(prompt.text).unwrap(), length, "{file:?}: {:?}", prompt.text);
                    assert!(seen.insert(prompt.text), "prompt {n} is another's");
                }
            }
            assert!(!prompts.check_all, "{file:?}: every prompt checked before the run was as counted");
            // Long prompts from starts near the corpus's end go round it, and stay apart.
            let starts: HashSet<&str> = (0..3000).map(|n| &prompts.prompt(n, 4096).unwrap().text[..80]).collect();
            assert_eq!(starts.len(), 3000);
        }
    }

    #[test]
    fn prompts_that_cannot_be_made_say_why() {
        let scratch = tempfile::tempdir().unwrap();
        let file = wordpiece(scratch.path());
        let prompts = ExactPrompts::new(Tokenizer::open(&file).unwrap()).unwrap();
        let short = prompts.prompt(0, 2).unwrap_err().to_string();
        assert!(short.contains("adds 2 special tokens") && short.contains("2 tokens asked for"), "{short}");
        let long = prompts.prompt(0, 10_000_000).unwrap_err().to_string();
        assert!(long.contains("the corpus is too short for prompts of 10000000 tokens"), "{long}");
        // The corpus goes round: the longest prompt is all of it once.
        let most = prompts.most_tokens();
        assert!(most > 100_000, "{most}");
        assert_eq!(prompts.tokenizer().count(prompts.prompt(7, most).unwrap().text).unwrap(), most);

        // A file's truncation and padding do not cut counts; a tokenizer that does not split
        // text into words is refused, saying why.
        let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        json["truncation"] =
            serde_json::json!({"direction": "Right", "max_length": 512, "strategy": "LongestFirst", "stride": 0});
        let truncating = scratch.path().join("truncating.json");
        std::fs::write(&truncating, json.to_string()).unwrap();
        let prompts = ExactPrompts::new(Tokenizer::open(&truncating).unwrap()).unwrap();
        assert_eq!(prompts.tokenizer().count(prompts.prompt(3, 2048).unwrap().text).unwrap(), 2048);
        json["pre_tokenizer"] = serde_json::Value::Null;
        let wordless = scratch.path().join("wordless.json");
        std::fs::write(&wordless, json.to_string()).unwrap();
        let refused = ExactPrompts::new(Tokenizer::open(&wordless).unwrap()).unwrap_err().to_string();
        assert!(refused.contains("too few to start prompts at"), "{refused}");
    }

    #[test]
    fn a_tokenizer_is_found_in_a_folder_and_a_bad_one_is_named() {
        let scratch = tempfile::tempdir().unwrap();
        let file = wordpiece(scratch.path());
        // A Hugging Face cache entry keeps it a few folders down.
        let cache = scratch.path().join("models--org--name/snapshots/abc123");
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::copy(&file, cache.join("tokenizer.json")).unwrap();
        let found = Tokenizer::open(&scratch.path().join("models--org--name")).unwrap();
        assert_eq!((found.name(), found.path()), ("abc123", cache.join("tokenizer.json").as_path()));
        let several = Tokenizer::open(scratch.path()).unwrap_err().to_string();
        assert!(several.contains("more than one tokenizer.json"), "{several}");

        let missing = Tokenizer::open(&scratch.path().join("nowhere")).unwrap_err().to_string();
        assert!(missing.contains("there is no tokenizer at") && missing.contains("nowhere"), "{missing}");
        let empty = scratch.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let none = Tokenizer::open(&empty).unwrap_err().to_string();
        assert!(none.contains("holds no tokenizer.json"), "{none}");
        for (name, body) in [("garbage.json", "{ not json"), ("wrong.json", r#"{"model": {"type": "Nothing"}}"#)] {
            let bad = scratch.path().join(name);
            std::fs::write(&bad, body).unwrap();
            let error = Tokenizer::open(&bad).unwrap_err().to_string();
            assert!(error.contains(name) && error.contains("is not a tokenizer tokenscope can read: "), "{error}");
        }
    }

    #[test]
    fn a_tokenizer_reads_from_bytes_as_from_its_file_and_a_bad_one_is_named_as_it_came() {
        let scratch = tempfile::tempdir().unwrap();
        let file = bpe(scratch.path());
        let bytes = std::fs::read(&file).unwrap();
        let kept = scratch.path().join("kept/my-bpe/tokenizer.json");
        let read = Tokenizer::from_bytes(&bytes, "the upload my-bpe", &kept).unwrap();
        let opened = Tokenizer::open(&file).unwrap();
        assert_eq!((read.name(), read.path(), read.specials()), ("my-bpe", kept.as_path(), opened.specials()));
        let text = " It is a capital mistake to theorize before one has data.";
        assert_eq!(read.count(text).unwrap(), opened.count(text).unwrap());
        for (body, why) in [
            (&b"\xff\xfe{}"[..], "it is not UTF-8 text"),
            (&b"{ not json"[..], "at line 1 column"),
            (&br#"{"vocab": {}}"#[..], ""),
        ] {
            let error = Tokenizer::from_bytes(body, "the upload x", &kept).unwrap_err().to_string();
            assert!(error.starts_with("the upload x is not a tokenizer tokenscope can read: "), "{error}");
            assert!(error.contains(why), "{error}");
        }
    }

    #[test]
    fn output_is_counted_without_special_tokens() {
        let scratch = tempfile::tempdir().unwrap();
        let tokenizer = Tokenizer::open(&bpe(scratch.path())).unwrap();
        let text = " It is a capital mistake to theorize before one has data.";
        assert_eq!(tokenizer.count_output(text).unwrap() + 1, tokenizer.count(text).unwrap());
        assert_eq!(tokenizer.count_output("").unwrap(), 0);
    }

    #[test]
    fn a_streamed_text_counts_each_token_in_the_response_it_starts_in() {
        let scratch = tempfile::tempdir().unwrap();
        for file in [bpe(scratch.path()), wordpiece(scratch.path())] {
            let tokenizer = Tokenizer::open(&file).unwrap();
            let text = " It is a capital mistake to theorize before one has data. Insensibly one begins";
            // Pieces cut anywhere, words split and spaces alone included, add up to the whole.
            for cut in [1, 2, 3, 5, 7, 11] {
                let pieces: Vec<&str> = text.as_bytes().chunks(cut).map(|c| std::str::from_utf8(c).unwrap()).collect();
                let counts = tokenizer.count_pieces(pieces.iter().copied()).unwrap();
                assert_eq!(counts.len(), pieces.len());
                assert_eq!(counts.iter().sum::<u32>(), tokenizer.count_output(text).unwrap(), "{file:?} by {cut}");
                // The first token starts by the first piece of more than spaces (at its space
                // before, to a byte-level BPE), so a stream's first token is where it was.
                let first = pieces.iter().position(|p| !p.trim().is_empty()).unwrap();
                assert!(counts[..=first].iter().sum::<u32>() >= 1, "{file:?}: {counts:?}");
            }
            let words: Vec<&str> = text.split_inclusive(' ').collect();
            let counts = tokenizer.count_pieces(words.iter().copied()).unwrap();
            for (word, count) in words.iter().zip(&counts) {
                let alone = tokenizer.count_output(word).unwrap();
                // A word and its space make the same tokens alone as in the text, but for a
                // byte-level BPE's space, which goes with the next word's token.
                assert!(count.abs_diff(alone) <= 1, "{file:?}: {word:?} {count} vs {alone}");
            }
            assert!(tokenizer.count_pieces(std::iter::empty()).unwrap().is_empty());
            assert_eq!(
                tokenizer.count_pieces(["", " ", ""].into_iter()).unwrap().iter().sum::<u32>(),
                tokenizer.count_output(" ").unwrap()
            );
        }
    }

    #[test]
    fn strides_visit_every_slot() {
        for slots in [1, 2, 3, 10, 97, 1000] {
            let stride = golden_stride(slots);
            let seen: HashSet<usize> = (0..slots).map(|n| n * stride % slots).collect();
            assert_eq!(seen.len(), slots);
        }
    }
}
