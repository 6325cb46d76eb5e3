//! Compiles `proto/inference.proto` with a pure-Rust protobuf compiler (no `protoc` needed),
//! and embeds the built browser app from `dist/` (with a Brotli and a gzip copy of each file)
//! so that the binary serves the dashboard from anywhere.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../proto/inference.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["../proto"])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(descriptors)?;
    embed_frontend()
}

/// Writes `assets.rs` into OUT_DIR: a table of every file under `dist/`. Without `dist/`
/// the table is empty and the server says how to build the app.
fn embed_frontend() -> Result<(), Box<dyn std::error::Error>> {
    let dist = std::env::var_os("TOKENSCOPE_DIST").map_or_else(|| PathBuf::from("../dist"), PathBuf::from);
    println!("cargo:rerun-if-env-changed=TOKENSCOPE_DIST");
    println!("cargo:rerun-if-changed={}", dist.display());
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &dist, &mut files)?;
    }
    files.sort();
    move_inline_scripts(&out, &mut files)?;
    let mut table = String::from("pub static ASSETS: &[Asset] = &[\n");
    for (i, (route, path)) in files.iter().enumerate() {
        let body = std::fs::read(path)?;
        let gz_path = out.join(format!("asset-{i}.gz"));
        let mut gzip = Vec::new();
        zopfli::compress(zopfli::Options::default(), zopfli::Format::Gzip, &body[..], &mut gzip)?;
        std::fs::write(&gz_path, gzip)?;
        let br_path = out.join(format!("asset-{i}.br"));
        std::fs::write(&br_path, brotli(&body)?)?;
        writeln!(
            table,
            "    Asset {{ path: {route:?}, body: include_bytes!({:?}), gzip: include_bytes!({:?}), brotli: include_bytes!({:?}) }},",
            path.canonicalize()?,
            gz_path,
            br_path
        )?;
    }
    table.push_str("];\n");
    std::fs::write(out.join("assets.rs"), table)?;
    Ok(())
}

/// `body` compressed with Brotli at its best (quality 11, a window of 4 MiB).
fn brotli(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let params = brotli::enc::BrotliEncoderParams { quality: 11, lgwin: 22, ..Default::default() };
    let mut compressed = Vec::new();
    brotli::BrotliCompress(&mut &body[..], &mut compressed, &params)?;
    Ok(compressed)
}

/// Moves each inline script of the page (Trunk writes its loader inline) into a file of its
/// own, so the page's content security policy can forbid inline scripts: an injected one
/// then never runs.
fn move_inline_scripts(out: &Path, files: &mut Vec<(String, PathBuf)>) -> Result<(), Box<dyn std::error::Error>> {
    let Some(index) = files.iter().position(|(route, _)| route == "/index.html") else { return Ok(()) };
    let mut page = std::fs::read_to_string(&files[index].1)?;
    let mut moved = Vec::new();
    let mut from = 0;
    while let Some(start) = page[from..].find("<script").map(|at| from + at) {
        let Some(tag_end) = page[start..].find('>').map(|at| start + at + 1) else { break };
        let tag = &page[start..tag_end];
        let Some(close) = page[tag_end..].find("</script>").map(|at| tag_end + at) else { break };
        let body = &page[tag_end..close];
        if tag.contains(" src=") || body.trim().is_empty() {
            from = close;
            continue;
        }
        let module = tag.contains("module");
        let name = format!("/inline-{:016x}.js", fnv1a(body.as_bytes()));
        let path = out.join(&name[1..]);
        std::fs::write(&path, body)?;
        let replacement = format!("<script{} src=\"{name}\"></script>", if module { " type=\"module\"" } else { "" });
        page.replace_range(start..close + "</script>".len(), &replacement);
        from = start + replacement.len();
        moved.push((name, path));
    }
    let rewritten = out.join("index.html");
    std::fs::write(&rewritten, page)?;
    files[index].1 = rewritten;
    files.extend(moved);
    files.sort();
    Ok(())
}

/// A content hash for the moved scripts' names, so a new build never meets an old cached one.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(root, &path, out)?;
        } else {
            let relative = path.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
            out.push((format!("/{relative}"), path));
        }
    }
    Ok(())
}
