// The browser benchmark: drives the built app in Chromium as a visitor would and prints
// the figures the native `m1 bench` prints: load time and MB/s, prefill and decode tok/s,
// time to first token, the browser's peak memory (PSS of all its processes), the adapter,
// and on the GPU path the host's cost per decoded token.
//
//   cargo xtask serve --port 8090 --models .cache/models      # in another terminal
//   cd tests && M1_BASE_URL=http://127.0.0.1:8090 node bench/browser.mjs \
//       [--gpu | --cpu] [--threads N] [--model NAME-PREFIX] [--budget N] [--sample I]
//       [--no-load-sampler] [--json]
//
// --threads N caps the CPU path's threads (the page's ?threads=N); without it the page uses
// one per core where it is cross-origin isolated (`serve` sends the headers), else one.
// --no-load-sampler leaves the memory sampler off while the model loads (it costs 20-30% of
// a core, which a 2-core machine's load pays for); the peak is then read after the load.
// load_cpu_s is the CPU time (user + system) of the browser's processes during the load:
// on N cores no load can take less than load_cpu_s / N.
//
// It measures; it asserts nothing (speed goals are read from its figures, not enforced as
// timed tests). On this project's CI-class machine the adapter is SwiftShader (software).
import { readdirSync, readFileSync } from 'node:fs';
import { launch, BASE, SIZE_TEXT, bytesOf } from '../e2e/harness.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const device = args.includes('--cpu') ? 'cpu' : args.includes('--gpu') ? 'gpu' : 'auto';
const model = opt('model', 'Qwen2.5-Coder-0.5B');
const budget = parseInt(opt('budget', '64'), 10);
const sample = opt('sample', '2');
const threads = opt('threads', null);

/** The sum of `read(pid)` over every process whose command line names `marker`. */
function sumOver(marker, read) {
  let total = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(marker)) total += read(pid);
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return total;
}

/** Proportional set size of every process whose command line names `marker`, in bytes. */
function pssOf(marker) {
  return sumOver(marker, (pid) => {
    const m = readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1').match(/^Pss:\s+(\d+) kB/m);
    return m ? parseInt(m[1], 10) * 1024 : 0;
  });
}

/** CPU seconds (user + system, all threads) of every process whose command line names
 * `marker`. */
function cpuOf(marker) {
  const ticks = sumOver(marker, (pid) => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return parseInt(f[11], 10) + parseInt(f[12], 10);
  });
  return ticks / 100; // USER_HZ
}

/** The GPU path's host ms and dispatches per decoded token, from "About this device". */
async function hostFigures(page) {
  const line = await page.getByTestId('run-stats').textContent({ timeout: 5_000 }).catch(() => '');
  const host = line.match(/host ([\d.]+) ms per token/);
  const dispatches = line.match(/\((\d+) dispatches in one pass\)/);
  return {
    host_ms_per_token: host ? parseFloat(host[1]) : null,
    dispatches_per_token: dispatches ? parseInt(dispatches[1], 10) : null,
  };
}

const b = await launch();
let peak = 0;
// Reading every process's smaps_rollup costs 20-30% of a core (measured per thread while a
// question ran): sampled every 200 ms while the model loads, where the peak is, and once
// before and after the answer, so the sampler takes no core from the decode it times.
let sampler = args.includes('--no-load-sampler')
  ? null
  : setInterval(() => { peak = Math.max(peak, pssOf(b.profileDir)); }, 200);
const pauseSampler = () => {
  if (sampler) clearInterval(sampler);
  sampler = null;
  peak = Math.max(peak, pssOf(b.profileDir));
};
try {
  const params = new URLSearchParams({ budget: String(budget), max_answer: '32' });
  if (device === 'gpu') params.set('gpu', '1');
  if (device === 'cpu') params.set('cpu', '1');
  if (threads) params.set('threads', threads);
  await b.page.goto(`${BASE}/?${params}`);
  await b.page.getByTestId('engine-status').filter({ hasText: 'Engine ready' }).waitFor({ timeout: 60_000 });
  const engine = (await b.page.getByTestId('engine-status').textContent()).trim();
  await b.page.getByText('About this device').click();
  const adapter = (await b.page.getByTestId('adapter-name').textContent().catch(() => '')).trim();
  const backend = (await b.page.getByTestId('device-backend').textContent()).replace(/^Backend:\s*/, '').trim();
  const cpuThreads = await b.page.getByTestId('cpu-threads').getAttribute('data-threads', { timeout: 1000 }).catch(() => null);

  const cpu0 = cpuOf(b.profileDir);
  const t0 = Date.now();
  await b.page.getByRole('button', { name: new RegExp(`^Load ${model}`, 'i') }).first().click();
  await b.page.getByTestId('loaded-model').waitFor({ timeout: 900_000 });
  const loadWallS = (Date.now() - t0) / 1000;
  const loadCpuS = cpuOf(b.profileDir) - cpu0;
  const loaded = (await b.page.getByTestId('loaded-model').textContent()).trim();
  const loadS = parseFloat(loaded.match(/loaded in ([\d.]+) s/)?.[1] ?? 'NaN');
  // "on the GPU: 463 MB of weights, 60 MB of cache and activations"; absent on the CPU path.
  const mb = (re) => {
    const m = loaded.match(new RegExp(re.replace('SIZE', `(${SIZE_TEXT})`)));
    return m ? bytesOf(m[1]) / 1e6 : null;
  };
  const gpuWeightsMb = mb('on the GPU: SIZE of weights');
  const gpuStateMb = mb('SIZE of cache and activations');
  const fileBytes = await b.page.evaluate(async (name) => {
    const list = await (await fetch('models/index.json')).json();
    return list.find((m) => m.file.toLowerCase().startsWith(name.toLowerCase().replace(/\s.*/, '')))?.size ?? null;
  }, model);

  pauseSampler();
  await b.page.locator('select').first().selectOption(sample);
  await b.page.getByRole('button', { name: 'Ask' }).click();
  await b.page.getByTestId('stats').waitFor({ timeout: 3_600_000 });
  const stats = (await b.page.getByTestId('stats').textContent()).trim();
  const num = (re) => parseFloat(stats.match(re)?.[1] ?? 'NaN');
  const result = {
    engine,
    backend,
    adapter,
    cpu_threads: cpuThreads === null ? null : Number(cpuThreads),
    model: (await b.page.getByTestId('loaded-model').locator('strong').textContent()).trim(),
    load_s: loadS,
    load_wall_s: loadWallS,
    load_mb_per_s: fileBytes ? fileBytes / 1e6 / loadS : null,
    load_cpu_s: loadCpuS,
    gpu_weights_mb: gpuWeightsMb,
    gpu_state_mb: gpuStateMb,
    // The worker's WebAssembly memory after the load, and what the load added to it.
    worker_memory_mb: mb('engine memory SIZE'),
    worker_memory_added_mb: mb('this load added SIZE'),
    file_mb: fileBytes ? fileBytes / 1e6 : null,
    time_to_first_token_ms: num(/first token (\d+) ms/),
    prefill_tok_per_s: num(/prefill ([\d.]+) tok\/s/),
    decode_tok_per_s: num(/decode ([\d.]+) tok\/s/),
    tokens: stats.split('·')[0].trim(),
    // The GPU path's per-token host cost (encode + submit in the engine worker) from "About
    // this device": "host 0.21 ms per token (245 dispatches in one pass)".
    ...(await hostFigures(b.page)),
    peak_browser_pss_mb: Math.round(Math.max(peak, pssOf(b.profileDir)) / 1e6),
  };
  if (args.includes('--json')) {
    console.log(JSON.stringify(result));
  } else {
    for (const [k, v] of Object.entries(result)) console.log(`${k.padEnd(24)} ${typeof v === 'number' ? +v.toFixed(2) : v}`);
  }
} finally {
  if (sampler) clearInterval(sampler);
  await b.close();
}
