// The peer in the browser: wllama (llama.cpp compiled to wasm, npm @wllama/wllama) on the
// same GGUF, in the same Chromium, on the CPU, so the CPU path's figures from
// bench/browser.mjs have a same-machine, same-run comparison. It serves wllama's files and
// the model itself (cross-origin isolated, so wllama may use threads), loads the model
// from a URL as our page does, and runs a greedy completion with llama-server's own
// timings.
//
//   cd tests && node bench/wllama.mjs [--model FILE.gguf] [--threads N] [--repeat N]
//       [--tokens N] [--json]
//
// It measures; it asserts nothing. The prompt is a clinical vignette repeated --repeat
// times (2: 77 tokens for Qwen2.5); it prints the count.
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch } from '../e2e/harness.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const MODELS = fileURLToPath(new URL('../../.cache/models/', import.meta.url));
const WLLAMA = fileURLToPath(new URL('../node_modules/@wllama/wllama/esm/', import.meta.url));
const model = opt('model', 'qwen2.5-coder-0.5b-instruct.gguf');
const threads = parseInt(opt('threads', '2'), 10);
const repeat = parseInt(opt('repeat', '2'), 10);
const tokens = parseInt(opt('tokens', '64'), 10);

const PAGE = `<!doctype html><meta charset="utf-8"><title>wllama bench</title>
<script type="module">
import { Wllama } from '/wllama/index.js';
window.bench = async ({ url, threads, repeat, tokens }) => {
  const w = new Wllama({ default: '/wllama/wasm/wllama.wasm' }, { suppressNativeLog: true });
  const t0 = performance.now();
  await w.loadModelFromUrl(url, { n_threads: threads, n_ctx: 1024, n_gpu_layers: 0, useCache: false });
  const loadS = (performance.now() - t0) / 1000;
  const text = 'A 45-year-old man presents with fatigue, weight gain and cold intolerance. '
    + 'Laboratory studies show an elevated TSH and a low free T4. Which is the most likely diagnosis? ';
  const prompt = text.repeat(repeat);
  const r = await w.createCompletion({ prompt, max_tokens: tokens, temperature: 0, ignore_eos: true });
  return { load_s: loadS, multithread: w.isMultithread(), threads: w.getNumThreads(), timings: r.timings };
};
window.benchReady = true;
</script>`;

const TYPES = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html' };

/** Serves the page, wllama's files and the models (with Range), cross-origin isolated. */
function serve() {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
    if (path === '/') {
      res.setHeader('Content-Type', 'text/html');
      return res.end(PAGE);
    }
    const [root, rest] = path.startsWith('/wllama/') ? [WLLAMA, path.slice(8)]
      : path.startsWith('/models/') ? [MODELS, path.slice(8)] : [null, null];
    const file = root && normalize(join(root, rest));
    if (!file || !file.startsWith(root)) {
      res.statusCode = 404;
      return res.end();
    }
    let size;
    try {
      size = statSync(file).size;
    } catch {
      res.statusCode = 404;
      return res.end();
    }
    res.setHeader('Content-Type', TYPES[extname(file)] ?? 'application/octet-stream');
    res.setHeader('Accept-Ranges', 'bytes');
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let [start, end] = [0, size - 1];
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
      res.statusCode = 206;
      res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
    }
    res.setHeader('Content-Length', String(end - start + 1));
    if (req.method === 'HEAD') return res.end();
    createReadStream(file, { start, end }).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

readFileSync(join(WLLAMA, 'index.js')); // fails early, with the path, when npm ci has not run
const server = await serve();
const base = `http://127.0.0.1:${server.address().port}`;
const b = await launch();
try {
  await b.page.goto(`${base}/`);
  await b.page.waitForFunction(() => window.benchReady === true, null, { timeout: 30_000 });
  const r = await b.page.evaluate((o) => window.bench(o), {
    url: `${base}/models/${model}`, threads, repeat, tokens,
  });
  const fileMb = statSync(join(MODELS, model)).size / 1e6;
  const result = {
    peer: 'wllama 3.13.0',
    model,
    threads: r.threads,
    multithread: r.multithread,
    load_s: r.load_s,
    load_mb_per_s: fileMb / r.load_s,
    prompt_tokens: r.timings.prompt_n,
    prefill_tok_per_s: r.timings.prompt_per_second,
    decode_tokens: r.timings.predicted_n,
    decode_tok_per_s: r.timings.predicted_per_second,
  };
  if (args.includes('--json')) {
    console.log(JSON.stringify(result));
  } else {
    for (const [k, v] of Object.entries(result)) console.log(`${k.padEnd(20)} ${typeof v === 'number' ? +v.toFixed(2) : v}`);
  }
} catch (e) {
  console.error(b.consoleLines.join('\n'));
  throw e;
} finally {
  await b.close();
  server.close();
}
