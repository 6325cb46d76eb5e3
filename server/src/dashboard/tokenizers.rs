//! The tokenizers a dashboard's sweeps may use: ones uploaded to it, kept in the data
//! folder's `tokenizers` folder (`POST /api/tokenizers?name=NAME`, listed by
//! `GET /api/tokenizers`), and ones of the proxy's machine in folders the person who started
//! it allowed (`serve --tokenizer-dir`). A spec's `tokenizer` is opened only once its path,
//! links and `..` resolved, lies inside one of those places, and so is the `tokenizer.json`
//! found there; any other path gets one answer, whether or not something is there, so
//! starting a run can neither read nor probe any other file of the machine.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use shared::SweepSpec;
use shared::api::{ErrorCode, KeptTokenizer, Tokenizers};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::AppState;
use super::api::{BodyLimits, HttpError, RETRY_AFTER_S, read_body};
use crate::tokenizer::{ExactPrompts, Tokenizer, TokenizerError};

/// The folder of the data folder that keeps uploaded tokenizers, one folder each, named as
/// the tokenizer is: a chart names a tokenizer by the folder of its `tokenizer.json`.
pub const FOLDER: &str = "tokenizers";

/// The file a kept tokenizer is.
const FILE: &str = "tokenizer.json";

/// The largest `tokenizer.json` the dashboard takes, uploaded or by path; the largest
/// models' are about 30 MiB. Read whole and parsed, a file takes a few times its size.
pub const TOKENIZER_LIMIT: usize = 64 << 20;

/// The most tokenizers the dashboard keeps.
pub const MOST_KEPT: usize = 64;

/// The longest name of a kept tokenizer, in characters.
pub const MAX_NAME: usize = 64;

/// How long an upload's body may take to arrive: a body that trickles in would hold the one
/// upload's turn.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// An upload is written to a file of this name and its own in the tokenizers folder, then
/// moved into place; no tokenizer's name starts with a dot, so none is ever taken for one.
const PARTIAL: &str = ".upload-";

const UPLOAD_HINT: &str = "upload a Hugging Face tokenizer.json, the file of that name in a model's folder";

/// Where tokenizers may be opened from, and what is known of the kept ones.
pub struct TokenizerPlaces {
    /// The data folder's tokenizers folder, links resolved.
    kept: PathBuf,
    /// The folders the dashboard was started with, links resolved.
    allowed: Vec<PathBuf>,
    /// One upload is read at a time, so only one file's worth of memory is ever taken.
    uploads: Arc<Semaphore>,
    /// The special tokens of kept tokenizers by name, with the size and time of the file
    /// they were counted in: a list reads only files it has not seen as they are.
    known: Mutex<HashMap<String, Known>>,
}

/// Why a tokenizer path is not opened.
enum Unopened {
    /// It leads out of every allowed place, or nowhere outside them.
    Outside,
    /// It is in an allowed place, and this is wrong with it.
    Unusable(TokenizerError),
    /// Its file's path is not UTF-8, so a spec could not name it.
    NotUtf8(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Known {
    bytes: u64,
    modified: Option<SystemTime>,
    specials: u32,
}

impl TokenizerPlaces {
    /// Creates the tokenizers folder in `data_dir` if it is missing (and removes uploads an
    /// earlier process left half written), and resolves the `allowed` folders; one that
    /// cannot be resolved (gone since the command line was read) is left out, with a warning.
    pub fn open(data_dir: &Path, allowed: &[PathBuf]) -> std::io::Result<TokenizerPlaces> {
        let kept = data_dir.join(FOLDER);
        std::fs::create_dir_all(&kept)?;
        let kept = kept.canonicalize()?;
        for entry in std::fs::read_dir(&kept)?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(PARTIAL) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let allowed = allowed
            .iter()
            .filter_map(|folder| match folder.canonicalize() {
                Ok(resolved) => Some(resolved),
                Err(err) => {
                    tracing::warn!(folder = %folder.display(), cause = %err, "a tokenizer folder is left out");
                    None
                }
            })
            .collect();
        Ok(TokenizerPlaces { kept, allowed, uploads: Arc::new(Semaphore::new(1)), known: Mutex::default() })
    }

    /// The folder that keeps uploads.
    pub fn kept_folder(&self) -> &Path {
        &self.kept
    }

    /// The folders of `--tokenizer-dir`, links resolved.
    pub fn allowed_folders(&self) -> &[PathBuf] {
        &self.allowed
    }

    /// Whether `resolved` (links resolved) lies in the tokenizers folder or an allowed one.
    fn inside(&self, resolved: &Path) -> bool {
        std::iter::once(&self.kept).chain(&self.allowed).any(|place| resolved.starts_with(place))
    }

    /// The `tokenizer.json` a spec's `tokenizer` names, links resolved, if it lies in an
    /// allowed place; a relative path is taken in the tokenizers folder, so a kept tokenizer
    /// is also named by its name. A path outside, whatever is there, gets one refusal.
    pub fn resolve(&self, given: &str) -> Result<PathBuf, HttpError> {
        self.find(given).map_err(|unopened| match unopened {
            Unopened::Outside => self.refusal(given),
            Unopened::Unusable(err) => unusable(err),
            Unopened::NotUtf8(file) => HttpError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the tokenizer {given} is at a path that is not UTF-8 text ({})", file.display()),
                "give a path of UTF-8 names",
            ),
        })
    }

    fn find(&self, given: &str) -> Result<PathBuf, Unopened> {
        let path = Path::new(given.trim());
        let path = if path.is_absolute() { path.to_path_buf() } else { self.kept.join(path) };
        let place = resolved(&path).filter(|p| self.inside(p)).ok_or(Unopened::Outside)?;
        let file = Tokenizer::locate(&place).map_err(Unopened::Unusable)?;
        // The file found in a folder may be a link to elsewhere.
        let file = file.canonicalize().ok().filter(|f| self.inside(f)).ok_or(Unopened::Outside)?;
        if file.to_str().is_none() {
            return Err(Unopened::NotUtf8(file));
        }
        Ok(file)
    }

    /// Opens the tokenizer a spec names, once [`TokenizerPlaces::resolve`] allows it.
    pub fn open_for_spec(&self, given: &str, most_bytes: usize) -> Result<Tokenizer, HttpError> {
        let file = self.resolve(given)?;
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        if size > most_bytes as u64 {
            return Err(HttpError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "{} has {} MiB, more than the {} MiB the dashboard reads as a tokenizer",
                    file.display(),
                    size >> 20,
                    most_bytes >> 20
                ),
                "give the tokenizer.json of a model (they have tens of MiB at most)",
            ));
        }
        Tokenizer::open(&file).map_err(unusable)
    }

    /// The answer for a tokenizer path outside every allowed place.
    fn refusal(&self, given: &str) -> HttpError {
        let folders = if self.allowed.is_empty() {
            "it was started with no --tokenizer-dir".to_string()
        } else {
            let shown: Vec<String> = self.allowed.iter().map(|f| f.display().to_string()).collect();
            format!("from this machine, only those in {}", shown.join(", "))
        };
        HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the dashboard does not open the tokenizer {given}: it opens tokenizers uploaded to it and, {folders}"
            ),
            "upload its tokenizer.json (the form's Upload, or POST /api/tokenizers?name=NAME with the file as the \
             body), or start the dashboard with --tokenizer-dir DIR to allow a folder of this machine; \
             `tokenscope sweep --tokenizer PATH` opens any path on that machine",
        )
    }

    /// Leave to read an upload now, or `None` while another is read.
    fn upload_permit(&self) -> Option<OwnedSemaphorePermit> {
        self.uploads.clone().try_acquire_owned().ok()
    }

    /// The kept tokenizers, by name. A file that cannot be read is left out, with a warning.
    pub fn list(&self) -> Vec<KeptTokenizer> {
        let mut kept = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.kept) else {
            tracing::warn!(folder = %self.kept.display(), "the tokenizers folder cannot be read");
            return kept;
        };
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
            if kept_name(Some(&name)).as_deref() != Ok(name.as_str()) {
                continue;
            }
            let file = self.kept.join(&name).join(FILE);
            // Only folders and files of its own: a link could lead out of the data folder.
            let real = |path: &Path| std::fs::symlink_metadata(path).ok().filter(|m| !m.file_type().is_symlink());
            let (Some(folder), Some(meta)) = (real(&entry.path()), real(&file)) else { continue };
            if !folder.is_dir() || !meta.is_file() {
                continue;
            }
            let seen = Known { bytes: meta.len(), modified: meta.modified().ok(), specials: 0 };
            let cached = self.known.lock().unwrap_or_else(|e| e.into_inner()).get(&name).copied();
            let specials = match cached.filter(|k| (k.bytes, k.modified) == (seen.bytes, seen.modified)) {
                Some(known) => known.specials,
                None => match Tokenizer::open(&file) {
                    Ok(tokenizer) => {
                        let known = Known { specials: tokenizer.specials(), ..seen };
                        self.known.lock().unwrap_or_else(|e| e.into_inner()).insert(name.clone(), known);
                        known.specials
                    }
                    Err(err) => {
                        tracing::warn!(cause = %err, "a kept tokenizer is left out of the list");
                        continue;
                    }
                },
            };
            kept.push(entry_of(&name, &file, seen.bytes, specials));
        }
        kept.sort_by(|a, b| a.name.cmp(&b.name));
        kept
    }

    /// Refuses a new name once [`MOST_KEPT`] (or `most`) are kept.
    fn check_room(&self, name: &str, most: usize) -> Result<(), HttpError> {
        if self.kept.join(name).join(FILE).exists() {
            return Ok(());
        }
        let count = self.list_names().len();
        if count >= most {
            return Err(HttpError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the dashboard keeps {count} tokenizers, the most it keeps"),
                "upload under the name of one it keeps (GET /api/tokenizers lists them), or ask its operator to \
                 remove some from the tokenizers folder of its data folder",
            ));
        }
        Ok(())
    }

    fn list_names(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.kept) else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|name| kept_name(Some(name)).as_deref() == Ok(name.as_str()))
            .collect()
    }

    /// Keeps `bytes` as the tokenizer `name`, once they are read as a tokenizer that makes
    /// prompts of exact lengths; `true` with it when it is new, `false` when the same bytes
    /// were kept under the name already. Nothing is kept from a file that is refused.
    fn keep(&self, name: &str, bytes: &[u8], most: usize) -> Result<(bool, KeptTokenizer), HttpError> {
        let folder = self.kept.join(name);
        let file = folder.join(FILE);
        if let Ok(existing) = std::fs::read(&file) {
            if existing != bytes {
                return Err(HttpError::new(
                    StatusCode::CONFLICT,
                    format!("another tokenizer is kept as {name}"),
                    "upload this one under another name",
                ));
            }
            let specials = match self.known.lock().unwrap_or_else(|e| e.into_inner()).get(name) {
                Some(known) if known.bytes == bytes.len() as u64 => Some(known.specials),
                _ => None,
            };
            let specials = match specials {
                Some(specials) => specials,
                None => Tokenizer::open(&file).map_err(unusable)?.specials(),
            };
            return Ok((false, entry_of(name, &file, bytes.len() as u64, specials)));
        }
        self.check_room(name, most)?;
        let tokenizer = Tokenizer::from_bytes(bytes, &format!("the file uploaded as {name}"), &file)
            .map_err(|err| HttpError::new(StatusCode::UNPROCESSABLE_ENTITY, err.to_string(), UPLOAD_HINT))?;
        let specials = tokenizer.specials();
        // The dashboard uses a tokenizer to make prompts of exact lengths: one that cannot is
        // refused now, not when a run starts.
        ExactPrompts::new(tokenizer).map_err(|err| {
            HttpError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                err.to_string(),
                "prompts of exact lengths need a tokenizer that splits text into words before tokens (a \
                 pre-tokenizer), as language models' tokenizers do",
            )
        })?;
        self.write(name, &folder, &file, bytes)?;
        let modified = std::fs::metadata(&file).and_then(|m| m.modified()).ok();
        let known = Known { bytes: bytes.len() as u64, modified, specials };
        self.known.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), known);
        Ok((true, entry_of(name, &file, known.bytes, specials)))
    }

    /// Writes the file whole beside the folders, then moves it into its folder, so a
    /// tokenizer is never seen half written.
    fn write(&self, name: &str, folder: &Path, file: &Path, bytes: &[u8]) -> Result<(), HttpError> {
        let partial = self.kept.join(format!("{PARTIAL}{name}"));
        let written = (|| {
            use std::io::Write as _;
            let mut out = std::fs::File::create(&partial)?;
            out.write_all(bytes)?;
            out.sync_all()?;
            std::fs::create_dir_all(folder)?;
            std::fs::rename(&partial, file)
        })();
        written.map_err(|err| {
            let _ = std::fs::remove_file(&partial);
            tracing::error!(cause = %err, folder = %folder.display(), "keeping a tokenizer failed");
            HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the tokenizer could not be kept: {err}"),
                "check that the dashboard's data folder (its log names it) is writable and that its disk has \
                 space, then upload it again",
            )
            .code(ErrorCode::Store)
        })
    }
}

fn entry_of(name: &str, file: &Path, bytes: u64, specials: u32) -> KeptTokenizer {
    KeptTokenizer { name: name.to_string(), path: file.display().to_string(), bytes, specials }
}

/// A tokenizer that is in an allowed place but cannot be used: the error names the file and
/// what is wrong with it.
fn unusable(err: TokenizerError) -> HttpError {
    HttpError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        err.to_string(),
        "give a Hugging Face tokenizer.json, or a folder that holds one, or pick a tokenizer the dashboard keeps",
    )
}

/// `path` with links resolved in the part of it that exists, and the rest as given; `None`
/// when the rest steps back (`..`), where a folder that does not exist yet could not be
/// resolved.
fn resolved(path: &Path) -> Option<PathBuf> {
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        if let Ok(found) = existing.canonicalize() {
            return Some(rest.iter().rev().fold(found, |path, part| path.join(part)));
        }
        rest.push(existing.file_name()?);
        existing = existing.parent()?;
    }
}

/// The name a tokenizer is kept under: the one given, trimmed, with every character but
/// letters, digits, `.`, `_` and `-` made `_`; or why it cannot be one.
pub fn kept_name(given: Option<&str>) -> Result<String, String> {
    let given = given.map(str::trim).unwrap_or_default();
    if given.is_empty() {
        return Err("the tokenizer needs a name: send it as POST /api/tokenizers?name=NAME".into());
    }
    let name: String =
        given.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    if name.chars().count() > MAX_NAME {
        return Err(format!("the name has {} characters; a tokenizer's has at most {MAX_NAME}", name.chars().count()));
    }
    if name.starts_with('.') {
        return Err(format!("the name {given:?} starts with a dot, which a tokenizer's may not"));
    }
    Ok(name)
}

/// Checks a spec's tokenizer and names it by its file, links resolved, so the run opens the
/// file that was checked: a path outside the allowed places is refused, a tokenizer that
/// cannot be read or is too short for a prompt length gets the reason.
pub async fn check_spec(state: &AppState, spec: &mut SweepSpec) -> Result<(), HttpError> {
    let Some(given) = spec.tokenizer.clone() else { return Ok(()) };
    let most = state.limits().tokenizer_bytes;
    let open = {
        let state = state.clone();
        move || state.tokenizers().open_for_spec(&given, most)
    };
    let tokenizer = tokio::task::spawn_blocking(open).await.map_err(|err| {
        HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the tokenizer failed: {err}"), "")
    })??;
    let specials = tokenizer.specials();
    if let Some(&length) = spec.prompt_lengths.iter().find(|&&length| length <= specials) {
        let err = TokenizerError::TooShort { name: tokenizer.name().into(), specials, length };
        return Err(HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            err.to_string(),
            format!("ask for prompt lengths above {specials}"),
        ));
    }
    spec.tokenizer = tokenizer.path().to_str().map(str::to_string);
    Ok(())
}

/// Whether the profile export may make a run's prompts again from its tokenizer, which
/// the run's spec names by `given`: it may when that is the very file an allowed place
/// holds, as a dashboard's run names its own. `Err(None)` when it is elsewhere (or is a
/// folder or link, which may lead elsewhere by now), `Err(Some)` with what is wrong when it
/// is in an allowed place but cannot be read now.
pub fn for_export(state: &AppState, given: &str) -> Result<(), Option<HttpError>> {
    match state.tokenizers().find(given) {
        Ok(file) if file.as_os_str() == given => Ok(()),
        Ok(_) | Err(Unopened::Outside | Unopened::NotUtf8(_)) => Err(None),
        Err(Unopened::Unusable(err)) => Err(Some(HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("this run's prompts cannot be made again: {err}"),
            "the profile export makes them with the run's tokenizer, which must be where it was when the run started",
        ))),
    }
}

/// `GET /api/tokenizers`: the kept tokenizers and the allowed folders.
pub async fn list(State(state): State<AppState>) -> Result<Json<Tokenizers>, HttpError> {
    let most = state.limits().tokenizers_kept;
    let listed = {
        let state = state.clone();
        move || state.tokenizers().list()
    };
    let kept = tokio::task::spawn_blocking(listed).await.map_err(|err| {
        HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("listing the tokenizers failed: {err}"), "")
    })?;
    let folders = state.tokenizers().allowed_folders().iter().map(|f| f.display().to_string()).collect();
    Ok(Json(Tokenizers { kept, folders, most: most as u32 }))
}

/// `POST /api/tokenizers?name=NAME`.
#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    name: Option<String>,
}

/// `POST /api/tokenizers?name=NAME` with a `tokenizer.json` as the body: kept as NAME once
/// it reads as a tokenizer that makes prompts of exact lengths (else 422, saying what is
/// wrong, and nothing kept). 201 with the new entry; 200 with the entry when the same file
/// is kept under that name; 409 when another is. One upload is read at a time (else 503
/// with Retry-After), within [`TOKENIZER_LIMIT`] (413) and [`READ_TIMEOUT`] (408), and read
/// off the async runtime.
pub async fn upload(
    State(state): State<AppState>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<KeptTokenizer>), HttpError> {
    let Query(query) = query.map_err(|rejection| {
        HttpError::new(rejection.status(), rejection.body_text(), "name the tokenizer: ?name=NAME")
    })?;
    let name = kept_name(query.name.as_deref()).map_err(|error| {
        HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            error,
            format!(
                "a name has 1 to {MAX_NAME} letters, digits, dots, dashes and underscores, and does not start with a \
                 dot; charts call the tokenizer by it"
            ),
        )
    })?;
    let Some(permit) = state.tokenizers().upload_permit() else {
        return Err(HttpError::busy(
            "another tokenizer is being uploaded; the dashboard reads one at a time".into(),
            format!("send it again in {RETRY_AFTER_S} seconds"),
        ));
    };
    let (most_bytes, most) = (state.limits().tokenizer_bytes, state.limits().tokenizers_kept);
    {
        let (state, name) = (state.clone(), name.clone());
        tokio::task::spawn_blocking(move || state.tokenizers().check_room(&name, most)).await.map_err(|err| {
            HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("listing the tokenizers failed: {err}"), "")
        })??;
    }
    let limits = BodyLimits {
        most_bytes,
        timeout: READ_TIMEOUT,
        what: " as a tokenizer",
        slow_hint: "send it again over a faster link",
        large_hint: "a model's tokenizer.json has tens of MiB at most: check that it is the right file",
        hint: UPLOAD_HINT,
    };
    let bytes = read_body(body, &limits).await?;
    let kept = {
        let (state, name) = (state.clone(), name.clone());
        move || state.tokenizers().keep(&name, &bytes, most)
    };
    let (new, entry) = tokio::task::spawn_blocking(kept).await.map_err(|err| {
        HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the tokenizer failed: {err}"), "")
    })??;
    drop(permit);
    if new {
        tracing::info!(tokenizer = %entry.name, bytes = entry.bytes, "tokenizer kept");
    }
    Ok((if new { StatusCode::CREATED } else { StatusCode::OK }, Json(entry)))
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;

    use super::*;

    #[test]
    fn names_are_made_safe_or_refused() {
        assert_eq!(kept_name(Some(" Llama 3/8B ")).unwrap(), "Llama_3_8B");
        assert_eq!(kept_name(Some("gpt2.v1-x_y")).unwrap(), "gpt2.v1-x_y");
        assert_eq!(
            kept_name(Some("../etc")).unwrap_err(),
            "the name \"../etc\" starts with a dot, which a tokenizer's may not"
        );
        assert_eq!(kept_name(Some("a/../../b")).unwrap(), "a_.._.._b");
        assert!(kept_name(None).unwrap_err().contains("?name=NAME"));
        assert!(kept_name(Some("  ")).unwrap_err().contains("needs a name"));
        assert!(kept_name(Some(&"x".repeat(65))).unwrap_err().contains("at most 64"));
        assert_eq!(kept_name(Some(&"x".repeat(64))).unwrap().len(), 64);
    }

    #[cfg(unix)]
    #[test]
    fn paths_resolve_through_links_and_never_step_out() {
        let scratch = tempfile::tempdir().unwrap();
        let root = scratch.path().canonicalize().unwrap();
        let data = root.join("data");
        let allowed = root.join("models");
        let elsewhere = root.join("elsewhere");
        for folder in [&data, &allowed, &elsewhere] {
            std::fs::create_dir_all(folder).unwrap();
        }
        let file = crate::tokenizer::fixture::bpe(&allowed);
        crate::tokenizer::fixture::wordpiece(&elsewhere);
        let places = TokenizerPlaces::open(&data, &[allowed.clone(), root.join("gone")]).unwrap();
        assert_eq!(places.allowed_folders(), std::slice::from_ref(&allowed));
        assert!(places.kept_folder().ends_with(FOLDER) && places.kept_folder().is_dir());

        let path = |p: &Path| p.to_str().unwrap().to_string();
        assert_eq!(places.resolve(&path(&file)).unwrap(), file);
        // A folder is searched for its one tokenizer.json.
        assert_eq!(places.resolve(&path(&allowed.join("bpe"))).unwrap(), file);
        let refused = |given: &Path| places.resolve(&path(given)).unwrap_err().into_response().status();
        assert_eq!(refused(&elsewhere.join("wordpiece/tokenizer.json")), StatusCode::UNPROCESSABLE_ENTITY);
        let escape = allowed.join("../elsewhere/wordpiece/tokenizer.json");
        let answer = places.resolve(&path(&escape)).unwrap_err();
        assert!(answer.text().contains("does not open the tokenizer"), "{}", answer.text());
        assert!(answer.text().contains(allowed.to_str().unwrap()), "the allowed folders are named");
        // A link inside that leads out, as a file or in a folder, is out.
        std::os::unix::fs::symlink(elsewhere.join("wordpiece/tokenizer.json"), allowed.join("link.json")).unwrap();
        assert!(places.resolve(&path(&allowed.join("link.json"))).unwrap_err().text().contains("does not open"));
        let linked = allowed.join("linked");
        std::fs::create_dir(&linked).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("wordpiece/tokenizer.json"), linked.join("tokenizer.json")).unwrap();
        assert!(places.resolve(&path(&linked)).unwrap_err().text().contains("does not open"));
        // What is missing outside gets the same answer as what is there; inside, what is wrong.
        let outside = places.resolve(&path(&elsewhere.join("nothing"))).unwrap_err().text();
        assert!(outside.contains("does not open the tokenizer"), "{outside}");
        let missing = places.resolve(&path(&allowed.join("nothing/tokenizer.json"))).unwrap_err().text();
        assert!(missing.contains("there is no tokenizer at") && missing.contains("nothing"), "{missing}");
        assert!(places.resolve(&path(&allowed.join("nothing/../../elsewhere"))).is_err());
        // A relative path names a kept tokenizer.
        std::fs::create_dir(places.kept_folder().join("mine")).unwrap();
        std::fs::copy(&file, places.kept_folder().join("mine/tokenizer.json")).unwrap();
        assert_eq!(places.resolve("mine").unwrap(), places.kept_folder().join("mine/tokenizer.json"));
        assert!(places.resolve("../../elsewhere/wordpiece").is_err());
    }
}
