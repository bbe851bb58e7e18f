//! `cargo xtask dist`: the app as one folder that any static server with HTTP Range can
//! serve (a class's web space, a kiosk's nginx, Netlify, Cloudflare Pages): Trunk's release
//! build, the chosen models and the list the page reads for them, the header rules of the
//! common hosts (generated from serve.rs's CSP and media types, never written twice), and
//! HOSTING.md for whoever hosts it.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::serve::{self, CSP, ISOLATION, MIME_TYPES};
use crate::{root, step, tools};

/// The hosting guide, kept beside this file and copied into every site.
const HOSTING: &str = include_str!("../HOSTING.md");
/// Marks a folder this command wrote: the next run may replace it, and no other folder.
const MARKER: &str = ".m1-dist";
/// What the page reads from its own origin; a build without it is not the app.
const DATA: &str = "data/pubmedqa-test.jsonl";

#[derive(Debug, PartialEq)]
pub struct Options {
    pub out: PathBuf,
    pub models: Vec<PathBuf>,
    pub build: bool,
}

pub fn default_out() -> PathBuf {
    root().join("target/m1-dist")
}

pub fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        out: default_out(),
        models: Vec::new(),
        build: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => o.out = PathBuf::from(it.next().ok_or("--out needs a folder")?),
            "--model" => o.models.push(PathBuf::from(
                it.next().ok_or("--model needs a .gguf file")?,
            )),
            "--no-build" => o.build = false,
            other => return Err(format!("dist: unknown option `{other}`")),
        }
    }
    Ok(o)
}

pub fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    if o.build {
        tools::ensure_build_tools()?;
        serve::build_app()?;
    }
    step(&format!("writing the site to {}", o.out.display()));
    let site = assemble(&root().join("dist"), &o.out, &o.models)?;
    println!(
        "app: {} files, {:.1} MB (release build from dist/)",
        site.app_files,
        site.app_bytes as f64 / 1e6
    );
    if site.models.is_empty() {
        println!("models: none; the page offers models.json's entries at their URLs");
    }
    for m in &site.models {
        println!(
            "model: models/{} ({:.1} MB, {})",
            m.name,
            m.bytes as f64 / 1e6,
            if m.linked { "hard link" } else { "copied" }
        );
    }
    println!("headers: _headers (Netlify, Cloudflare Pages), nginx.conf, .htaccess (Apache)");
    println!(
        "\nread {}; try it here with `cargo xtask serve --dir {}`",
        o.out.join("HOSTING.md").display(),
        o.out.display()
    );
    Ok(())
}

/// A model that passed the checks, and how it reached the site.
#[derive(Debug)]
pub struct Model {
    path: PathBuf,
    pub name: String,
    pub bytes: u64,
    pub linked: bool,
}

#[derive(Debug)]
pub struct Written {
    pub app_files: usize,
    pub app_bytes: u64,
    pub models: Vec<Model>,
}

/// Writes the site from a Trunk build folder. Every input is checked before the output
/// folder is touched, so a typo never costs the previous site.
pub fn assemble(build: &Path, out: &Path, models: &[PathBuf]) -> Result<Written, String> {
    check_build(build)?;
    let mut checked: Vec<Model> = Vec::new();
    for p in models {
        let m = check_model(p)?;
        if let Some(other) = checked.iter().find(|o| o.name == m.name) {
            return Err(format!(
                "--model {} and --model {} would both be models/{}: rename one",
                other.path.display(),
                p.display(),
                m.name
            ));
        }
        checked.push(m);
    }
    prepare_out(build, out)?;
    write(
        &out.join(MARKER),
        "Written by `cargo xtask dist`; its next run with this --out replaces this folder.\n",
    )?;
    let (app_files, app_bytes) = copy_dir(build, out)?;
    if !checked.is_empty() {
        let dir = out.join("models");
        fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        for m in &mut checked {
            m.linked = link_or_copy(&m.path, &dir.join(&m.name))?;
        }
        let index = serve::index_json(checked.iter().map(|m| (m.name.as_str(), m.bytes)));
        write(&dir.join("index.json"), &index)?;
    }
    let wasm = wasm_files(out)?;
    write(&out.join("_headers"), &static_headers(CSP, &wasm))?;
    write(&out.join("nginx.conf"), &nginx_conf(CSP))?;
    write(&out.join(".htaccess"), &htaccess(CSP))?;
    write(&out.join("HOSTING.md"), HOSTING)?;
    Ok(Written {
        app_files,
        app_bytes,
        models: checked,
    })
}

fn check_build(build: &Path) -> Result<(), String> {
    let fix = "build it with `cargo xtask dist` (without --no-build)";
    if !build.join("index.html").is_file() {
        return Err(format!(
            "{} holds no build of the app (no index.html): {fix}",
            build.display()
        ));
    }
    if !build.join(DATA).is_file() {
        return Err(format!(
            "{} lacks {DATA} (index.html copies www/data into the build): {fix}",
            build.display()
        ));
    }
    if wasm_files(build)?.is_empty() {
        return Err(format!("{} holds no .wasm file: {fix}", build.display()));
    }
    Ok(())
}

/// A `.gguf` file (the page's list and the service worker know models by that ending),
/// whose name is a plain URL path segment and whose first bytes are GGUF's magic.
fn check_model(p: &Path) -> Result<Model, String> {
    let meta = fs::metadata(p).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("--model {}: no such file", p.display()),
        _ => format!("--model {}: {e}", p.display()),
    })?;
    if !meta.is_file() {
        return Err(format!("--model {}: not a file", p.display()));
    }
    let name = p
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("--model {}: the file name is not UTF-8", p.display()))?
        .to_string();
    check_model_name(&name).map_err(|why| format!("--model {}: {why}", p.display()))?;
    let mut magic = [0u8; 4];
    fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map_err(|e| {
            format!(
                "--model {}: cannot read its first 4 bytes: {e}",
                p.display()
            )
        })?;
    if &magic != b"GGUF" {
        return Err(format!(
            "--model {}: not a GGUF file (it starts with {:?}, a GGUF file with \"GGUF\")",
            p.display(),
            String::from_utf8_lossy(&magic)
        ));
    }
    Ok(Model {
        path: p.to_path_buf(),
        name,
        bytes: meta.len(),
        linked: false,
    })
}

fn check_model_name(name: &str) -> Result<(), String> {
    if !name.ends_with(".gguf") {
        return Err(
            "the name must end in .gguf (the page's list and the service worker \
                    recognise models by it)"
                .into(),
        );
    }
    // The page fetches `models/<name>`: these would end or change that URL's path.
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '#' | '?' | '%' | '\\') || c.is_control())
    {
        return Err(format!(
            "the name holds {c:?}, which a URL path cannot carry as is: rename the file"
        ));
    }
    Ok(())
}

/// The output folder rules: a new folder, an empty one, or one this command wrote before
/// (replaced whole); never the build folder, a folder inside it or one holding it.
fn prepare_out(build: &Path, out: &Path) -> Result<(), String> {
    let build = build
        .canonicalize()
        .map_err(|e| format!("{}: {e}", build.display()))?;
    let target = match out.canonicalize() {
        Ok(p) => p,
        // Not there yet: where it will be, through its parent.
        Err(_) => match (out.parent().map(|p| p.canonicalize()), out.file_name()) {
            (Some(Ok(parent)), Some(name)) => parent.join(name),
            _ => std::path::absolute(out).map_err(|e| format!("{}: {e}", out.display()))?,
        },
    };
    if target.starts_with(&build) || build.starts_with(&target) {
        return Err(format!(
            "--out {} overlaps the build folder {}: choose a folder outside it",
            out.display(),
            build.display()
        ));
    }
    if out.exists() {
        if !out.is_dir() {
            return Err(format!(
                "--out {}: exists and is not a folder",
                out.display()
            ));
        }
        let mut entries = fs::read_dir(out).map_err(|e| format!("{}: {e}", out.display()))?;
        if entries.next().is_some() {
            if !out.join(MARKER).is_file() {
                return Err(format!(
                    "--out {} is not empty and was not written by `cargo xtask dist` (it has \
                     no {MARKER}): choose a new or empty folder",
                    out.display()
                ));
            }
            println!("replacing the site written there before");
            fs::remove_dir_all(out).map_err(|e| format!("removing {}: {e}", out.display()))?;
        }
    }
    fs::create_dir_all(out).map_err(|e| format!("creating {}: {e}", out.display()))
}

/// Copies every file under `from` into `to`; returns how many and their bytes.
fn copy_dir(from: &Path, to: &Path) -> Result<(usize, u64), String> {
    let mut n = (0, 0);
    let rd = fs::read_dir(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
    for e in rd {
        let e = e.map_err(|e| format!("reading {}: {e}", from.display()))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            fs::create_dir_all(&dst).map_err(|e| format!("creating {}: {e}", dst.display()))?;
            let sub = copy_dir(&src, &dst)?;
            n = (n.0 + sub.0, n.1 + sub.1);
        } else {
            let bytes = fs::copy(&src, &dst)
                .map_err(|e| format!("copying {} to {}: {e}", src.display(), dst.display()))?;
            n = (n.0 + 1, n.1 + bytes);
        }
    }
    Ok(n)
}

/// A hard link where the filesystem allows (a 5 GB model appears at once, with no second
/// copy on the disk; `m1 quantize` replaces files by renaming, so the link keeps the bytes
/// it was made with), else a copy. True when linked.
fn link_or_copy(src: &Path, dst: &Path) -> Result<bool, String> {
    if fs::hard_link(src, dst).is_ok() {
        return Ok(true);
    }
    fs::copy(src, dst)
        .map(|_| false)
        .map_err(|e| format!("copying {} to {}: {e}", src.display(), dst.display()))
}

fn wasm_files(dir: &Path) -> Result<Vec<String>, String> {
    let rd = fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut v: Vec<String> = rd
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wasm"))
        .collect();
    v.sort();
    Ok(v)
}

fn write(p: &Path, text: &str) -> Result<(), String> {
    fs::write(p, text).map_err(|e| format!("writing {}: {e}", p.display()))
}

/// Netlify's and Cloudflare Pages' `_headers` (one format). Both answer Range requests and
/// send `application/wasm` already; the wasm rules make it explicit, by name, since
/// `filehash = false` keeps the names stable.
pub fn static_headers(csp: &str, wasm: &[String]) -> String {
    let mut s = String::from(
        "# Response headers for Netlify and Cloudflare Pages (written by `cargo xtask dist`;\n\
         # HOSTING.md says what each is for). Both hosts answer HTTP Range requests themselves.\n\
         # Every response: the page's strict CSP, no MIME sniffing, and revalidation, because\n\
         # the app's file names never change between versions (sw.js included).\n",
    );
    s += &format!(
        "/*\n  Content-Security-Policy: {csp}\n  X-Content-Type-Options: nosniff\n  \
         Cache-Control: no-cache\n"
    );
    for (k, v) in ISOLATION {
        s += &format!("  {k}: {v}\n");
    }
    s += "\n# WebAssembly compiles while it downloads only when served as application/wasm.\n";
    for w in wasm {
        s += &format!("/{w}\n  Content-Type: application/wasm\n");
    }
    s += "\n# Models: no recompression on the way, which would break byte ranges (joined with\n\
          # the no-cache above).\n/models/*\n  Cache-Control: no-transform\n";
    s
}

/// An nginx server block. `add_header` in a `location` drops the server's own, so the
/// models' location repeats them.
pub fn nginx_conf(csp: &str) -> String {
    let headers = |cache: &str| {
        let mut h = format!(
            "add_header Content-Security-Policy \"{csp}\" always;\n    \
             add_header X-Content-Type-Options \"nosniff\" always;\n    \
             add_header Cache-Control \"{cache}\" always;"
        );
        for (k, v) in ISOLATION {
            h += &format!("\n    add_header {k} \"{v}\" always;");
        }
        h
    };
    let types: String = MIME_TYPES
        .iter()
        .map(|(ext, t)| {
            // nginx's types are bare media types; `charset` below adds utf-8 to text/html.
            let bare = t.split(';').next().unwrap_or(t);
            format!("        {bare} {ext};\n")
        })
        .collect();
    format!(
        "# nginx server block for the m1 site (written by `cargo xtask dist`; HOSTING.md says\n\
         # what each header is for). Put it in /etc/nginx/conf.d/, set `root` to this folder and\n\
         # `listen`/`server_name` to yours (HTTPS: see HOSTING.md), then\n\
         # `nginx -t && nginx -s reload`. nginx answers HTTP Range requests for files itself.\n\
         server {{\n    \
         listen 80;\n    \
         server_name _;\n    \
         root /srv/m1;\n    \
         index index.html;\n    \
         charset utf-8;\n\n    \
         # This server's media types (they replace mime.types here); anything else, models\n    \
         # included, is application/octet-stream.\n    \
         types {{\n{types}    }}\n    \
         default_type application/octet-stream;\n\n    \
         # Every response: the page's strict CSP, no MIME sniffing, and revalidation, because\n    \
         # the app's file names never change between versions (sw.js included).\n    \
         {}\n\n    \
         location /models/ {{\n        \
         # No compression: a compressed response cannot answer a byte range.\n        \
         gzip off;\n        \
         {}\n    \
         }}\n\
         }}\n",
        headers("no-cache"),
        headers("no-cache, no-transform").replace("\n    ", "\n        "),
    )
}

/// Apache httpd's `.htaccess` (needs mod_headers and `AllowOverride FileInfo`).
pub fn htaccess(csp: &str) -> String {
    let isolation: String = ISOLATION
        .iter()
        .map(|(k, v)| format!("Header always set {k} \"{v}\"\n"))
        .collect();
    let types: String = MIME_TYPES
        .iter()
        .filter(|(ext, _)| *ext != "html")
        .map(|(ext, t)| format!("AddType {t} .{ext}\n"))
        .collect();
    format!(
        "# Apache httpd headers for the m1 site (written by `cargo xtask dist`; HOSTING.md says\n\
         # what each is for). Needs mod_headers and `AllowOverride FileInfo` for this folder.\n\
         # Apache answers HTTP Range requests for files itself.\n\
         {types}\
         AddDefaultCharset utf-8\n\n\
         # Every response: the page's strict CSP, no MIME sniffing, and revalidation, because\n\
         # the app's file names never change between versions (sw.js included).\n\
         Header always set Content-Security-Policy \"{csp}\"\n\
         Header always set X-Content-Type-Options \"nosniff\"\n\
         Header always set Cache-Control \"no-cache\"\n\
         {isolation}\n\
         # Models: no compression, which would break byte ranges.\n\
         <FilesMatch \"\\.gguf$\">\n    \
         SetEnv no-gzip 1\n    \
         Header always set Cache-Control \"no-cache, no-transform\"\n\
         </FilesMatch>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// A scratch folder under the system's temp dir, removed when dropped.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(name: &str) -> Self {
            let p = std::env::temp_dir().join(format!("xtask-dist-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            Self(p)
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// The shape of Trunk's output, in miniature.
    fn fake_build(dir: &Path) {
        fs::create_dir_all(dir.join("data")).unwrap();
        for f in [
            "index.html",
            "sw.js",
            "models.json",
            "m1-app_bg.wasm",
            "worker_bg.wasm",
        ] {
            fs::write(dir.join(f), f).unwrap();
        }
        fs::write(dir.join(DATA), "{}\n").unwrap();
    }

    fn gguf(path: &Path, len: usize) {
        let mut b = b"GGUF".to_vec();
        b.resize(len, 0);
        fs::write(path, b).unwrap();
    }

    #[test]
    fn options() {
        let o = parse(&args(&[
            "--out", "site", "--model", "a.gguf", "--model", "b.gguf",
        ]))
        .unwrap();
        assert_eq!(o.out, PathBuf::from("site"));
        assert_eq!(o.models, [PathBuf::from("a.gguf"), PathBuf::from("b.gguf")]);
        assert!(o.build);
        let o = parse(&args(&["--no-build"])).unwrap();
        assert_eq!((o.out, o.build), (default_out(), false));
        assert!(parse(&args(&["--model"]))
            .unwrap_err()
            .contains("--model needs"));
        assert!(parse(&args(&["--out"]))
            .unwrap_err()
            .contains("--out needs"));
        assert!(parse(&args(&["--force"]))
            .unwrap_err()
            .contains("unknown option `--force`"));
    }

    #[test]
    fn header_files_carry_the_csp_exactly() {
        // The files quote it in double quotes (nginx, Apache) or to the line's end (_headers).
        assert!(!CSP.contains('"') && !CSP.contains('\n'));
        let wasm = ["m1-app_bg.wasm".to_string(), "worker_bg.wasm".to_string()];
        let h = static_headers(CSP, &wasm);
        assert!(
            h.contains(&format!("/*\n  Content-Security-Policy: {CSP}\n")),
            "{h}"
        );
        assert!(
            h.contains("/worker_bg.wasm\n  Content-Type: application/wasm\n"),
            "{h}"
        );
        assert!(
            h.contains("/models/*\n  Cache-Control: no-transform\n"),
            "{h}"
        );
        let n = nginx_conf(CSP);
        assert_eq!(
            n.matches(&format!(
                "add_header Content-Security-Policy \"{CSP}\" always;"
            ))
            .count(),
            2,
            "{n}"
        );
        assert!(
            n.contains("application/wasm wasm;") && n.contains("text/html html;"),
            "{n}"
        );
        assert_eq!(n.matches('{').count(), n.matches('}').count(), "{n}");
        let a = htaccess(CSP);
        assert!(a.contains(&format!(
            "Header always set Content-Security-Policy \"{CSP}\"\n"
        )));
        assert!(a.contains("AddType application/wasm .wasm\n"), "{a}");
        // Cross-origin isolation on every response (the CPU path's threads need it); nginx
        // repeats it in the models' location, as it must every add_header.
        for (k, v) in ISOLATION {
            assert!(h.contains(&format!("  {k}: {v}\n")), "{h}");
            assert_eq!(
                n.matches(&format!("add_header {k} \"{v}\" always;"))
                    .count(),
                2,
                "{n}"
            );
            assert!(
                a.contains(&format!("Header always set {k} \"{v}\"\n")),
                "{a}"
            );
        }
    }

    #[test]
    fn site_with_a_model_lists_it() {
        let s = Scratch::new("model");
        let build = s.0.join("build");
        fake_build(&build);
        let model = s.0.join("tiny model.gguf");
        gguf(&model, 100);
        let out = s.0.join("site");
        let w = assemble(&build, &out, std::slice::from_ref(&model)).unwrap();
        assert_eq!(w.app_files, 6);
        assert_eq!(
            fs::read_to_string(out.join("models/index.json")).unwrap(),
            r#"[{"file":"tiny model.gguf","size":100}]"#
        );
        assert_eq!(
            fs::read(out.join("models/tiny model.gguf")).unwrap().len(),
            100
        );
        for f in [
            "index.html",
            DATA,
            "_headers",
            "nginx.conf",
            ".htaccess",
            "HOSTING.md",
        ] {
            assert!(out.join(f).is_file(), "{f} missing");
        }
        // Written by us: the next run replaces it, and with no model leaves no list, so the
        // page offers models.json's entries.
        assemble(&build, &out, &[]).unwrap();
        assert!(!out.join("models").exists());
        assert!(out.join("index.html").is_file());
    }

    #[test]
    fn refuses_bad_inputs_before_writing() {
        let s = Scratch::new("bad");
        let build = s.0.join("build");
        fake_build(&build);
        let out = s.0.join("site");
        let err = |models: &[PathBuf]| assemble(&build, &out, models).unwrap_err();

        let e = err(&[s.0.join("missing.gguf")]);
        assert!(e.contains("missing.gguf: no such file"), "{e}");
        let text = s.0.join("notes.gguf");
        fs::write(&text, "hello, not a model").unwrap();
        assert!(err(&[text]).contains("not a GGUF file (it starts with \"hell\""));
        let short = s.0.join("short.gguf");
        fs::write(&short, "GG").unwrap();
        assert!(err(&[short]).contains("cannot read its first 4 bytes"));
        let bin = s.0.join("model.bin");
        gguf(&bin, 8);
        assert!(err(&[bin]).contains("must end in .gguf"));
        let hash = s.0.join("a#b.gguf");
        gguf(&hash, 8);
        assert!(err(&[hash]).contains("holds '#'"));
        assert!(err(std::slice::from_ref(&s.0)).contains("not a file"));
        let a = s.0.join("m.gguf");
        gguf(&a, 8);
        fs::create_dir_all(s.0.join("other")).unwrap();
        let b = s.0.join("other/m.gguf");
        gguf(&b, 8);
        assert!(err(&[a, b]).contains("would both be models/m.gguf"));
        assert!(!out.exists(), "a refused run wrote the output folder");

        // A folder someone else filled is never replaced; the build folder is never a target.
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join("keep.txt"), "mine").unwrap();
        assert!(err(&[]).contains("is not empty and was not written by `cargo xtask dist`"));
        assert!(out.join("keep.txt").is_file());
        let inside = assemble(&build, &build.join("site"), &[]).unwrap_err();
        assert!(inside.contains("overlaps the build folder"), "{inside}");
        assert!(assemble(&build, &s.0, &[])
            .unwrap_err()
            .contains("overlaps"));
        let empty = s.0.join("empty");
        fs::create_dir_all(&empty).unwrap();
        let no_build = assemble(&empty, &s.0.join("x"), &[]).unwrap_err();
        assert!(no_build.contains("no index.html"), "{no_build}");
        fs::remove_file(build.join(DATA)).unwrap();
        assert!(err(&[]).contains("lacks data/pubmedqa-test.jsonl"));
    }
}
