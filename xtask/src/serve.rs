//! Builds the app with Trunk and serves it. A small server of our own rather than
//! `trunk serve`: multi-GB models are served straight from their folders (never copied
//! into dist/), with HTTP Range so an interrupted download can resume, and with the same
//! strict Content-Security-Policy the page declares. `--dir` serves a folder written by
//! `cargo xtask dist` as it is, as any static host would.

use std::fs;
use std::io::{Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::http::{self, Body, Request, Response};

use crate::sh;
use crate::{models, root, step, threaded, tools};

/// The page's Content-Security-Policy, the one source of it: this server sends it, and
/// `cargo xtask dist` writes it into the header files of the static hosts (index.html's
/// meta tag repeats it less `frame-ancestors`, which a meta tag cannot set).
pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
style-src 'self'; img-src 'self' data: blob:; connect-src 'self' https:; worker-src 'self'; \
object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Cross-origin isolation: with these two headers the browser lets the page's workers share
/// memory, which the CPU path's threads need (without them the page runs one thread). The
/// cost: every resource from another origin must allow it (CORS or
/// Cross-Origin-Resource-Policy), as the model hosts the page fetches from do (CORS).
pub const ISOLATION: [(&str, &str); 2] = [
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Embedder-Policy", "require-corp"),
];

#[derive(Debug, PartialEq)]
struct Options {
    port: u16,
    build: bool,
    extra_models: Vec<PathBuf>,
    /// A folder from `cargo xtask dist`, served as it is.
    dir: Option<PathBuf>,
    /// Send the [`ISOLATION`] headers (off: how a host without them serves the page).
    isolation: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        port: 8080,
        build: true,
        extra_models: Vec::new(),
        dir: None,
        isolation: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" => {
                let v = it.next().ok_or("--port needs a number")?;
                o.port = v
                    .parse()
                    .map_err(|_| format!("--port: not a port number: {v}"))?;
            }
            "--no-build" => o.build = false,
            "--no-isolation" => o.isolation = false,
            "--models" => o
                .extra_models
                .push(PathBuf::from(it.next().ok_or("--models needs a folder")?)),
            "--dir" => o.dir = Some(PathBuf::from(it.next().ok_or("--dir needs a folder")?)),
            other => return Err(format!("serve: unknown option `{other}`")),
        }
    }
    if o.dir.is_some() && !o.extra_models.is_empty() {
        return Err(
            "serve: --dir serves its folder as it is, with the models in its \
                    models/; add more with `cargo xtask dist --model FILE`, not --models"
                .into(),
        );
    }
    Ok(o)
}

pub fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    let mut site = match o.dir {
        Some(dir) => Site::folder(dir),
        None => {
            if o.build {
                tools::ensure_build_tools()?;
                build_app()?;
            }
            models::ensure_default_model()?;
            let mut dirs = vec![root().join("www/models")];
            dirs.extend(o.extra_models);
            Site::new(dirs)
        }
    };
    site.isolation = o.isolation;
    let port = o.port;
    let server = start(&site, port)?;
    println!("\nm1 is served at http://127.0.0.1:{port}/  (Ctrl-C to stop)");
    server
        .join()
        .map_err(|_| "the server thread panicked".to_string())
}

/// `trunk build --release` of the UI and worker into dist/, then the threaded worker.
pub fn build_app() -> Result<(), String> {
    step("building the app (trunk build --release)");
    sh::run("trunk", &["build", "--release", "--offline"])?;
    threaded::build(&root().join("dist"))
}

/// What is served: dist/ at `/`, and `/models/` from one or more folders (the app's own
/// www/models first; tests add their model cache). With no model folders, `/models/` is
/// dist's own, index.json included, as a static host serves it.
#[derive(Clone)]
pub struct Site {
    pub dist: PathBuf,
    pub model_dirs: Vec<PathBuf>,
    /// Every response carries the [`ISOLATION`] headers.
    pub isolation: bool,
}

impl Site {
    pub fn new(model_dirs: Vec<PathBuf>) -> Self {
        Self {
            dist: root().join("dist"),
            model_dirs,
            isolation: true,
        }
    }

    /// A folder written by `cargo xtask dist`: every file, models and their list, from it.
    pub fn folder(dir: PathBuf) -> Self {
        Self {
            dist: dir,
            model_dirs: Vec::new(),
            isolation: true,
        }
    }
}

/// Starts the server on 127.0.0.1:port in a background thread.
pub fn start(site: &Site, port: u16) -> Result<std::thread::JoinHandle<()>, String> {
    if !site.dist.join("index.html").exists() {
        return Err(format!(
            "{} has no index.html: not a built app (build it with `cargo xtask serve` or \
             write a site with `cargo xtask dist`)",
            site.dist.display()
        ));
    }
    let listener = TcpListener::bind(("127.0.0.1", port))
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let site = site.clone();
    Ok(http::serve(
        listener,
        Arc::new(move |req| handle(&site, req)),
    ))
}

fn handle(site: &Site, req: &Request) -> Response {
    let url = req
        .target
        .split(['?', '#'])
        .next()
        .unwrap_or("/")
        .to_string();
    let path = percent_decode(&url);
    if path == "/models/index.json" && !site.model_dirs.is_empty() {
        let body = Body::Bytes(model_index(site).into_bytes());
        return with_common(Response::new(200, body), "application/json", site.isolation);
    }
    let file = match path.strip_prefix("/models/") {
        Some(rest) if !site.model_dirs.is_empty() => site
            .model_dirs
            .iter()
            .filter_map(|d| safe_join(d, rest))
            .find(|p| p.is_file()),
        _ => {
            let rel = path.trim_start_matches('/');
            let rel = if rel.is_empty() { "index.html" } else { rel };
            safe_join(&site.dist, rel).filter(|p| p.is_file())
        }
    };
    match file {
        Some(f) => serve_file(req, &f, site.isolation),
        None => {
            let body = Body::Bytes(b"not found".to_vec());
            with_common(Response::new(404, body), "text/plain", site.isolation)
        }
    }
}

/// Lists every `*.gguf` in the model folders, so a file a user drops there is offered.
fn model_index(site: &Site) -> String {
    let mut seen = std::collections::BTreeMap::new();
    for d in &site.model_dirs {
        let Ok(rd) = fs::read_dir(d) else { continue };
        for e in rd.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".gguf") {
                if let Ok(m) = e.metadata() {
                    seen.entry(name).or_insert(m.len());
                }
            }
        }
    }
    index_json(seen.iter().map(|(n, s)| (n.as_str(), *s)))
}

/// `/models/index.json`, the folder listing the page reads: `[{"file": NAME, "size": BYTES}]`.
pub fn index_json<'a>(files: impl IntoIterator<Item = (&'a str, u64)>) -> String {
    let items: Vec<String> = files
        .into_iter()
        .map(|(n, s)| format!("{{\"file\":{},\"size\":{s}}}", json_str(n)))
        .collect();
    format!("[{}]", items.join(","))
}

fn serve_file(req: &Request, path: &Path, isolation: bool) -> Response {
    let Ok(mut f) = fs::File::open(path) else {
        return Response::text(404, "not found");
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let ctype = content_type(path);
    let range = req.header("Range").and_then(|v| parse_range(v, len));
    let (start, end, status) = match range {
        Some(Ok((s, e))) => (s, e, 206),
        Some(Err(())) => {
            return Response::new(416, Body::Bytes(Vec::new()))
                .with_header("Content-Range", &format!("bytes */{len}"));
        }
        None => (0, len, 200),
    };
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Response::text(500, "cannot seek");
    }
    let mut resp = with_common(
        Response::new(status, Body::File(f, end - start)),
        ctype,
        isolation,
    )
    .with_header("Accept-Ranges", "bytes");
    if status == 206 {
        resp = resp.with_header(
            "Content-Range",
            &format!("bytes {start}-{}/{len}", end.saturating_sub(1)),
        );
    }
    resp
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` (one range only); Err for an unsatisfiable one.
fn parse_range(v: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let r = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        (len.saturating_sub(n), len)
    } else {
        let s: u64 = a.parse().ok()?;
        let e = if b.is_empty() {
            len
        } else {
            b.parse::<u64>().ok()?.saturating_add(1).min(len)
        };
        (s, e)
    };
    Some(if r.0 >= r.1 || r.0 >= len {
        Err(())
    } else {
        Ok(r)
    })
}

fn with_common(resp: Response, ctype: &str, isolation: bool) -> Response {
    let mut resp = resp
        .with_header("Content-Type", ctype)
        .with_header("Content-Security-Policy", CSP)
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Cache-Control", "no-cache");
    if isolation {
        for (k, v) in ISOLATION {
            resp = resp.with_header(k, v);
        }
    }
    resp
}

/// The media type of each file extension the site holds (anything else, `*.gguf` included,
/// is `application/octet-stream`); `cargo xtask dist` writes the same table for nginx.
pub const MIME_TYPES: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("js", "text/javascript"),
    ("mjs", "text/javascript"),
    ("wasm", "application/wasm"),
    ("css", "text/css"),
    ("json", "application/json"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("webmanifest", "application/manifest+json"),
];

fn content_type(p: &Path) -> &'static str {
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    MIME_TYPES
        .iter()
        .find(|(e, _)| *e == ext)
        .map_or("application/octet-stream", |(_, t)| t)
}

/// Joins a URL path under a folder, refusing `..` and absolute components.
fn safe_join(base: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    if p.components().all(|c| matches!(c, Component::Normal(_))) {
        Some(base.join(p))
    } else {
        None
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 10))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 100))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 100))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
    }

    #[test]
    fn no_escape_from_root() {
        assert!(safe_join(Path::new("/srv"), "../etc/passwd").is_none());
        assert!(safe_join(Path::new("/srv"), "/etc/passwd").is_none());
        assert!(safe_join(Path::new("/srv"), "a/b.js").is_some());
    }

    #[test]
    fn options() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let o = parse(&args(&["--dir", "site", "--port", "9000"])).unwrap();
        assert_eq!(o.dir, Some(PathBuf::from("site")));
        assert_eq!(o.port, 9000);
        assert!(parse(&args(&["--dir"]))
            .unwrap_err()
            .contains("--dir needs a folder"));
        let e = parse(&args(&["--dir", "site", "--models", "m"])).unwrap_err();
        assert!(e.contains("--dir serves its folder as it is"), "{e}");
        assert!(parse(&args(&["--port", "x"])).is_err());
    }

    #[test]
    fn media_types() {
        assert_eq!(
            content_type(Path::new("a/worker_bg.wasm")),
            "application/wasm"
        );
        assert_eq!(
            content_type(Path::new("m.gguf")),
            "application/octet-stream"
        );
        assert_eq!(
            index_json([("a \"b\".gguf", 3)]),
            r#"[{"file":"a \"b\".gguf","size":3}]"#
        );
        assert_eq!(index_json([]), "[]");
    }

    #[test]
    fn page_meta_csp_is_this_one_less_frame_ancestors() {
        let html = fs::read_to_string(root().join("index.html")).unwrap();
        let meta = html
            .split("http-equiv=\"Content-Security-Policy\" content=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("index.html has a CSP meta tag");
        assert_eq!(
            CSP.strip_suffix("; frame-ancestors 'none'"),
            Some(meta),
            "index.html's CSP meta tag and serve::CSP differ"
        );
    }

    #[test]
    fn decodes_percent() {
        assert_eq!(
            percent_decode("/models/my%20model.gguf"),
            "/models/my model.gguf"
        );
        assert_eq!(percent_decode("/a%2"), "/a%2");
    }
}
