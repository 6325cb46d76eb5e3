//! Reads a file of real prompts for `tokenscope sweep --prompts`: JSONL lines of text or of chat
//! messages, or a ShareGPT array. It only reads and checks the file, and reports every fault in
//! it at once, by line, so that a run never starts on a file that is partly wrong.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use shared::limits::{MAX_PROMPT_BYTES, MAX_REQUESTS};

/// The largest prompts file read: the whole file is held in memory while it is checked.
pub const MAX_FILE_BYTES: u64 = 1 << 30;
/// The most faults a malformed-file error lists; the rest are counted.
const MAX_SHOWN: usize = 20;

/// One prompt read from a prompts file.
#[derive(Debug, Clone, PartialEq)]
pub struct FilePrompt {
    /// Where it was in the file: the 1-based line number of a JSONL line, or the 1-based entry
    /// number in a JSON array file.
    pub place: usize,
    /// The text to send as the prompt, as it is in the file.
    pub text: String,
    /// The answer the file gives for it (an assistant / gpt turn after it), if any; its length
    /// can set an output length.
    pub reference_output: Option<String>,
}

/// A prompts file, read whole.
#[derive(Debug)]
pub struct PromptFile {
    pub path: PathBuf,
    pub format: Format,
    pub prompts: Vec<FilePrompt>,
}

/// How a prompts file is laid out, found from its first character and first non-blank line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One `{"text": ...}` (or `{"prompt": ...}`) object per line.
    JsonlText,
    /// One `{"messages": [{"role": ..., "content": ...}, ...]}` object per line.
    JsonlChat,
    /// One JSON array of `{"conversations": [{"from": ..., "value": ...}, ...]}` entries.
    ShareGpt,
}

impl Format {
    /// The format's name as messages show it.
    pub fn name(self) -> &'static str {
        match self {
            Format::JsonlText => "JSONL text",
            Format::JsonlChat => "JSONL chat messages",
            Format::ShareGpt => "ShareGPT",
        }
    }

    /// What one line (or entry) of this format is called in a mixed-format fault.
    fn kind(self) -> &'static str {
        match self {
            Format::JsonlText => "text",
            Format::JsonlChat => "chat",
            Format::ShareGpt => "ShareGPT",
        }
    }
}

/// Why a prompts file cannot be used; every message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum PromptFileError {
    #[error("cannot read prompts file {}: {reason}; check the path and its permissions", .path.display())]
    Unreadable { path: PathBuf, reason: std::io::Error },
    #[error(
        "prompts file {} has {bytes} bytes, over the limit of {MAX_FILE_BYTES}; split it or keep fewer prompts",
        .path.display()
    )]
    TooLarge { path: PathBuf, bytes: u64 },
    #[error(
        "prompts file {} is not UTF-8 text (a bad byte at offset {offset}, on line {line}); save it as UTF-8 \
         and run again",
        .path.display()
    )]
    NotUtf8 { path: PathBuf, offset: usize, line: usize },
    #[error(
        "prompts file {} starts with '[' but is not a JSON array ({reason}); a ShareGPT file is one array of \
         {{\"conversations\": [...]}} entries. Fix it and run again.",
        .path.display()
    )]
    NotJson { path: PathBuf, reason: String },
    #[error(
        "prompts file {} holds no prompts; give it one JSON object per line ({{\"text\": ...}} or \
         {{\"messages\": [...]}}), or a ShareGPT array",
        .path.display()
    )]
    Empty { path: PathBuf },
    #[error(
        "prompts file {} holds {count} prompts, over the limit of {MAX_REQUESTS}; keep at most {MAX_REQUESTS} \
         and run again",
        .path.display()
    )]
    TooMany { path: PathBuf, count: usize },
    #[error("{}", malformed_message(.path, .unit, *.count, .shown))]
    Malformed {
        path: PathBuf,
        /// "line" for JSONL, "entry" for ShareGPT.
        unit: &'static str,
        /// How many lines (or entries) are malformed.
        count: usize,
        /// The first few of them: place and reason.
        shown: Vec<(usize, String)>,
    },
}

fn malformed_message(path: &Path, unit: &str, count: usize, shown: &[(usize, String)]) -> String {
    let plural = if count == 1 {
        ""
    } else if unit == "entry" {
        "ies"
    } else {
        "s"
    };
    let noun = if count != 1 && unit == "entry" { "entr" } else { unit };
    let mut out = format!("prompts file {} has {count} malformed {noun}{plural} (nothing was run): ", path.display());
    for (i, (place, why)) in shown.iter().enumerate() {
        let sep = if i == 0 { "" } else { "; " };
        let _ = write!(out, "{sep}{unit} {place}: {why}");
    }
    if count > shown.len() {
        let _ = write!(out, "; ... and {} more", count - shown.len());
    }
    let those = if count == 1 { "that" } else { "those" };
    let _ = write!(out, ". Fix or remove {those} {noun}{plural} and run again.");
    out
}

/// Reads and checks a prompts file: at most [`MAX_FILE_BYTES`], UTF-8, then [`parse`]d.
pub fn read(path: &Path) -> Result<PromptFile, PromptFileError> {
    let unreadable = |reason| PromptFileError::Unreadable { path: path.to_owned(), reason };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    let too_large = |bytes| PromptFileError::TooLarge { path: path.to_owned(), bytes };
    if size > MAX_FILE_BYTES {
        return Err(too_large(size));
    }
    // The metadata of a pipe or device says nothing of its length, so the read is capped too.
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(unreadable)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    let content = String::from_utf8(bytes).map_err(|err| {
        let offset = err.utf8_error().valid_up_to();
        let line = err.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
        PromptFileError::NotUtf8 { path: path.to_owned(), offset, line }
    })?;
    parse(path, &content)
}

/// Parses a prompts file's text, its format found from it: a file that starts with `[` is
/// ShareGPT, any other is JSONL, of text or chat lines as its first non-blank line is.
pub fn parse(path: &Path, content: &str) -> Result<PromptFile, PromptFileError> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    let mut found = Found::default();
    let format = if content.trim_start().starts_with('[') {
        let entries: Vec<Value> = serde_json::from_str(content)
            .map_err(|err| PromptFileError::NotJson { path: path.to_owned(), reason: err.to_string() })?;
        for (i, entry) in entries.into_iter().enumerate() {
            // The public ShareGPT files hold conversations with no turns; vLLM's benchmark
            // passes over them too.
            if entry.get("conversations").and_then(Value::as_array).is_some_and(Vec::is_empty) {
                continue;
            }
            found.add(i + 1, sharegpt_entry(&entry));
        }
        Format::ShareGpt
    } else {
        let mut format = None;
        for (i, line) in content.lines().enumerate() {
            if !line.trim().is_empty() {
                found.add(i + 1, jsonl_line(line, &mut format));
            }
        }
        format.unwrap_or(Format::JsonlText)
    };
    let path = path.to_owned();
    if found.bad > 0 {
        let unit = if format == Format::ShareGpt { "entry" } else { "line" };
        return Err(PromptFileError::Malformed { path, unit, count: found.bad, shown: found.shown });
    }
    match found.good {
        0 => Err(PromptFileError::Empty { path }),
        count if count as u64 > MAX_REQUESTS => Err(PromptFileError::TooMany { path, count }),
        _ => Ok(PromptFile { path, format, prompts: found.prompts }),
    }
}

/// A prompt's text and reference output, or why its line is malformed.
type Parsed = Result<(String, Option<String>), String>;

/// The prompts and faults found so far. Prompts past the cap, or after a fault, are counted but
/// not kept, as they will not be used.
#[derive(Default)]
struct Found {
    prompts: Vec<FilePrompt>,
    good: usize,
    bad: usize,
    shown: Vec<(usize, String)>,
}

impl Found {
    fn add(&mut self, place: usize, parsed: Parsed) {
        let checked = parsed.and_then(|(text, reference_output)| {
            if text.trim().is_empty() {
                Err("the prompt is empty".to_owned())
            } else if text.len() as u64 > MAX_PROMPT_BYTES {
                Err(format!("the prompt has {} bytes, over the limit of {MAX_PROMPT_BYTES}", text.len()))
            } else {
                Ok(FilePrompt { place, text, reference_output })
            }
        });
        match checked {
            Ok(prompt) => {
                self.good += 1;
                if self.good as u64 <= MAX_REQUESTS && self.bad == 0 {
                    self.prompts.push(prompt);
                }
            }
            Err(why) => {
                self.bad += 1;
                self.prompts = Vec::new();
                if self.shown.len() < MAX_SHOWN {
                    self.shown.push((place, why));
                }
            }
        }
    }
}

/// serde_json's reason without its line, which is always 1 within a line.
fn json_reason(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let tail = format!(" at line {} column {}", err.line(), err.column());
    match text.strip_suffix(&tail) {
        Some(reason) => format!("{reason} at column {}", err.column()),
        None => text,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn jsonl_line(line: &str, format: &mut Option<Format>) -> Parsed {
    let value: Value = serde_json::from_str(line).map_err(|err| format!("not JSON ({})", json_reason(&err)))?;
    let Value::Object(obj) = value else {
        return Err(format!("not a JSON object but {}", type_name(&value)));
    };
    let this = if obj.contains_key("messages") {
        Format::JsonlChat
    } else if obj.contains_key("text") || obj.contains_key("prompt") {
        Format::JsonlText
    } else {
        return Err("no \"text\" field (a line needs \"text\", \"prompt\" or \"messages\")".into());
    };
    let first = *format.get_or_insert(this);
    if first != this {
        return Err(format!(
            "a {} line in a file of {} lines (the first line decides; keep to one kind)",
            this.kind(),
            first.kind()
        ));
    }
    if this == Format::JsonlChat {
        return chat_line(&obj);
    }
    let (field, value) = obj.get_key_value("text").or_else(|| obj.get_key_value("prompt")).expect("checked above");
    match value {
        Value::String(text) => Ok((text.clone(), None)),
        other => Err(format!("\"{field}\" is {}, not a string", type_name(other))),
    }
}

/// A chat line: what the model is asked is every message up to the last user message (empty
/// ones left out), and an assistant message right after it is the reference output.
fn chat_line(obj: &Map<String, Value>) -> Parsed {
    let Some(Value::Array(messages)) = obj.get("messages") else {
        return Err("\"messages\" is not a list".into());
    };
    let mut turns = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        let n = i + 1;
        let Value::Object(message) = message else {
            return Err(format!("message {n} is not an object"));
        };
        let role =
            message.get("role").and_then(Value::as_str).ok_or_else(|| format!("message {n} has no \"role\" string"))?;
        let content = message.get("content").filter(|c| !c.is_null());
        let content = content.ok_or_else(|| format!("message {n} has no \"content\""))?;
        turns.push((role, content_text(content).map_err(|why| format!("message {n} {why}"))?));
    }
    let last_user = turns.iter().rposition(|(role, _)| *role == "user").ok_or("no \"user\" message")?;
    let asked: Vec<&str> =
        turns[..=last_user].iter().map(|(_, text)| text.as_str()).filter(|t| !t.is_empty()).collect();
    let reference = turns.get(last_user + 1).filter(|(role, _)| *role == "assistant").map(|(_, text)| text.clone());
    Ok((asked.join("\n\n"), reference))
}

/// A message's content: a string, or a list of `{"type": "text", "text": ...}` parts.
fn content_text(content: &Value) -> Result<String, String> {
    let parts = match content {
        Value::String(text) => return Ok(text.clone()),
        Value::Array(parts) => parts,
        other => {
            return Err(format!("has a \"content\" that is {}, not a string or a list of parts", type_name(other)));
        }
    };
    let mut texts = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let n = i + 1;
        match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
            (Some("text"), Some(text)) => texts.push(text),
            (Some(kind), _) if kind != "text" => {
                return Err(format!("has a content part {n} of type \"{kind}\"; only text parts can be sent"));
            }
            _ => return Err(format!("has a content part {n} that is not a {{\"type\": \"text\", \"text\": ...}}")),
        }
    }
    Ok(texts.join("\n"))
}

/// A ShareGPT entry, as vLLM's benchmark reads one: the first human turn is the prompt, and
/// the first gpt turn after it the reference output; turns after that are not looked at.
fn sharegpt_entry(entry: &Value) -> Parsed {
    let Value::Object(obj) = entry else {
        return Err(format!("not a JSON object but {}", type_name(entry)));
    };
    let turns = match obj.get("conversations") {
        Some(Value::Array(turns)) => turns,
        Some(other) => return Err(format!("\"conversations\" is {}, not a list", type_name(other))),
        None => return Err("no \"conversations\" field".into()),
    };
    let mut prompt = None;
    for (i, turn) in turns.iter().enumerate() {
        let n = i + 1;
        let from =
            turn.get("from").and_then(Value::as_str).ok_or_else(|| format!("turn {n} has no \"from\" string"))?;
        let value =
            || turn.get("value").and_then(Value::as_str).ok_or_else(|| format!("turn {n} has no \"value\" string"));
        match (from, prompt.take()) {
            ("human" | "user", None) => prompt = Some(value()?.to_owned()),
            ("gpt" | "assistant", Some(asked)) => return Ok((asked, Some(value()?.to_owned()))),
            (_, asked) => prompt = asked,
        }
    }
    prompt.map(|asked| (asked, None)).ok_or_else(|| "no \"human\" turn".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(content: &str) -> PromptFile {
        parse(Path::new("p.jsonl"), content).unwrap()
    }

    fn err(content: &str) -> String {
        parse(Path::new("data/p.jsonl"), content).unwrap_err().to_string()
    }

    fn prompt(place: usize, text: &str, reference: Option<&str>) -> FilePrompt {
        FilePrompt { place, text: text.into(), reference_output: reference.map(Into::into) }
    }

    #[test]
    fn text_lines_skip_blank_lines_and_take_prompt_as_an_alias() {
        let file = ok("{\"text\": \"hello\", \"id\": 7}\n\n   \r\n{\"prompt\": \" world \"}\r\n");
        assert_eq!(file.format, Format::JsonlText);
        assert_eq!(file.format.name(), "JSONL text");
        assert_eq!(file.prompts, [prompt(1, "hello", None), prompt(4, " world ", None)]);
    }

    #[test]
    fn chat_lines_ask_everything_up_to_the_last_user_message() {
        let file = ok(concat!(
            r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},"#,
            r#" {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Why?"},"#,
            r#" {"role": "assistant", "content": "Because."}, {"role": "user", "content": "ok"}]}"#,
            "\n",
            r#"{"messages": [{"role": "system", "content": ""}, {"role": "user", "content":"#,
            r#" [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}, {"role": "assistant", "content": "c"}]}"#,
        ));
        assert_eq!(file.format, Format::JsonlChat);
        assert_eq!(file.prompts[0], prompt(1, "Be brief.\n\nHi\n\nHello\n\nWhy?\n\nBecause.\n\nok", None));
        assert_eq!(file.prompts[1], prompt(2, "a\nb", Some("c")));
    }

    #[test]
    fn sharegpt_takes_the_first_human_turn_and_the_gpt_turn_after_it() {
        let file = ok(r#"
            [{"id": "x", "conversations": [{"from": "system", "value": "s"}, {"from": "gpt", "value": "early"},
               {"from": "human", "value": "q1"}, {"from": "human", "value": "q2"}, {"from": "gpt", "value": "a"},
               {"from": "oops"}]},
             {"conversations": [{"from": "user", "value": "q"}, {"from": "assistant", "value": "r"}]},
             {"conversations": [{"from": "human", "value": "alone"}]}]"#);
        assert_eq!(file.format, Format::ShareGpt);
        assert_eq!(file.prompts, [prompt(1, "q1", Some("a")), prompt(2, "q", Some("r")), prompt(3, "alone", None)]);
    }

    #[test]
    fn every_malformed_line_is_reported_at_once_with_its_number() {
        let content = [
            r#"{"text": "fine"}"#,
            "oops",
            r#"{"text": "fine"}"#,
            "",
            r#"{"id": 1}"#,
            r#"{"text": 5}"#,
            r#"["text"]"#,
            r#"{"prompt": "fine"}"#,
            r#"{"text": "  "}"#,
        ]
        .join("\n");
        assert_eq!(
            err(&content),
            "prompts file data/p.jsonl has 5 malformed lines (nothing was run): line 2: not JSON (expected \
             value at column 1); line 5: no \"text\" field (a line needs \"text\", \"prompt\" or \"messages\"); \
             line 6: \"text\" is a number, not a string; line 7: not a JSON object but a list; line 9: the \
             prompt is empty. Fix or remove those lines and run again."
        );
    }

    #[test]
    fn malformed_chat_lines_and_entries_say_why() {
        let content = [
            r#"{"messages": [{"role": "system", "content": "s"}]}"#,
            r#"{"messages": [{"content": "x"}]}"#,
            r#"{"messages": [{"role": "user"}]}"#,
            r#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}"#,
            r#"{"messages": "hi"}"#,
            r#"{"text": "a text line"}"#,
        ]
        .join("\n");
        let message = err(&content);
        for part in [
            "line 1: no \"user\" message",
            "line 2: message 1 has no \"role\" string",
            "line 3: message 1 has no \"content\"",
            "line 4: message 1 has a content part 1 of type \"image_url\"",
            "line 5: \"messages\" is not a list",
            "line 6: a text line in a file of chat lines",
        ] {
            assert!(message.contains(part), "{part} is not in {message}");
        }
        // A conversation with no turns is passed over; one with no human turn is malformed.
        let message = err(
            r#"[{"conversations": [{"from": "human", "value": "q"}]}, {"conversations": [{"from": "gpt", "value": "a"}]},
               3, {"conversations": []}]"#,
        );
        assert_eq!(
            message,
            "prompts file data/p.jsonl has 2 malformed entries (nothing was run): entry 2: no \"human\" turn; \
             entry 3: not a JSON object but a number. Fix or remove those entries and run again."
        );
        assert!(err("[{\"conversations\": []},").contains("is not a JSON array (EOF while parsing"));
    }

    #[test]
    fn more_than_twenty_malformed_lines_are_counted_not_listed() {
        let message = err(&"{}\n".repeat(25));
        assert!(message.starts_with("prompts file data/p.jsonl has 25 malformed lines"), "{message}");
        assert!(message.contains("; line 20: no \"text\" field"), "{message}");
        assert!(!message.contains("line 21"), "{message}");
        assert!(message.ends_with("; ... and 5 more. Fix or remove those lines and run again."), "{message}");
        assert_eq!(
            err("x"),
            "prompts file data/p.jsonl has 1 malformed line (nothing was run): line 1: not JSON \
             (expected value at column 1). Fix or remove that line and run again."
        );
    }

    #[test]
    fn a_file_without_prompts_is_refused() {
        for content in ["", "\n \n\t\n", "[]", " [ ] ", "\u{feff}"] {
            assert!(err(content).contains("data/p.jsonl holds no prompts"), "{content:?}");
        }
    }

    #[test]
    fn a_prompt_over_the_byte_cap_is_refused() {
        let at_cap = "x".repeat(MAX_PROMPT_BYTES as usize);
        assert_eq!(ok(&format!("{{\"text\": \"{at_cap}\"}}")).prompts[0].text.len(), at_cap.len());
        let message = err(&format!("{{\"text\": \"{at_cap}y\"}}"));
        assert!(message.contains(&format!("line 1: the prompt has {} bytes, over the limit", at_cap.len() + 1)));
    }

    #[test]
    fn read_names_the_file_and_the_line_of_bad_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.jsonl");
        std::fs::write(&good, "{\"text\": \"hi\"}\n").unwrap();
        let file = read(&good).unwrap();
        assert_eq!((file.path, file.prompts), (good, vec![prompt(1, "hi", None)]));

        let bad = dir.path().join("bad.jsonl");
        std::fs::write(&bad, b"{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"\xff\"}\n").unwrap();
        let message = read(&bad).unwrap_err().to_string();
        assert!(message.contains("bad.jsonl is not UTF-8 text (a bad byte at offset 38, on line 3)"), "{message}");

        let missing = dir.path().join("missing.jsonl");
        let message = read(&missing).unwrap_err().to_string();
        assert!(message.starts_with(&format!("cannot read prompts file {}: ", missing.display())), "{message}");
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let alphabet = b"{}[]\":,\n \\0123456789abetxnulrfsmgpohuvcTXE\xc3\xa9\xff";
        let fragments = ["{\"text\":", "{\"messages\":[", "{\"role\":\"user\",\"content\":", "[{\"conversations\":["];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..500 {
            let mut bytes = Vec::new();
            for _ in 0..next() % 80 {
                let pick = next();
                if pick % 5 == 0 {
                    bytes.extend_from_slice(fragments[(pick / 5) as usize % fragments.len()].as_bytes());
                } else {
                    bytes.push(alphabet[(pick / 5) as usize % alphabet.len()]);
                }
            }
            let _ = parse(Path::new("fuzz"), &String::from_utf8_lossy(&bytes));
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = parse(Path::new("fuzz"), text);
            }
        }
    }
}
