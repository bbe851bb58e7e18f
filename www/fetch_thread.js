// The engine worker's downloads (app/src/worker/source.rs). The engine asks for 8 MiB blocks
// in file order, a few ahead of its loader; each request names where the bytes it will want
// stop (`until`: the file's end, or bytes the cache copy holds). Here the blocks that follow
// one another are read from one streamed response, a run, of up to RUN bytes: a Range
// request per block cost Chromium ~30 ms each and twice the CPU (491 MB in a bare worker:
// 2.2-2.5 s a block at a time, 0.93 s in 64 MiB runs). A run is opened where a block does not
// continue one (the first, a jump, a retry) and let go once no block will continue it.
// Responses are read on this worker's event loop, not the engine's, which is busy placing
// weights between its awaits. Each block goes back as a transferred ArrayBuffer (no copy),
// and the engine sends it back once the loader is past it, to be read into again.
const RUN = 64 << 20;
const IDLE_MS = 5_000;

// Buffers back from the engine: with three blocks in flight and one being read, one or two
// wait here at a time. They are let go once the downloads stop, not kept for the page's life.
const spare = [];
const SPARE = 4;

/** Open runs; a block request joins the one whose next byte is its first. */
const runs = new Set();
/** Requests not yet answered, by id: `{ cancelled, run }`. */
const jobs = new Map();

let idle = null;
function whenIdle() {
  clearTimeout(idle);
  idle = setTimeout(() => {
    spare.length = 0;
    for (const run of runs) if (run.queued === 0) close(run);
  }, IDLE_MS);
}

/** A buffer of at least `len` bytes: a spare one when it is big enough. */
function buffer(len) {
  const i = spare.findIndex((b) => b.byteLength >= len);
  return i >= 0 ? spare.splice(i, 1)[0] : new ArrayBuffer(len);
}

/** A response of bytes `start` to `until` (exclusive), read as blocks ask for them. */
function open(url, start, until) {
  const abort = new AbortController();
  const run = { url, next: start, until, abort, queued: 0, broken: false, tail: Promise.resolve() };
  run.ready = fetch(url, {
    headers: { Range: `bytes=${start}-${until - 1}` },
    // The model's bytes go to OPFS; the HTTP cache would keep a second copy.
    cache: 'no-store',
    signal: abort.signal,
  }).then((resp) => {
    if (resp.status !== 206) throw new Error(`HTTP ${resp.status} for a Range request`);
    const from = /^bytes (\d+)-/.exec(resp.headers.get('Content-Range') ?? '');
    if (from && Number(from[1]) !== start) throw new Error(`asked for byte ${start}, the server sent from ${from[1]}`);
    run.reader = resp.body.getReader({ mode: 'byob' });
  });
  // A failure is the first block's to report.
  run.ready.catch(() => {});
  runs.add(run);
  return run;
}

/** Lets a run go: its connection is closed, whatever it had not sent is never read. */
function close(run) {
  runs.delete(run);
  run.broken = true;
  run.abort.abort();
}

/** The next `len` bytes of the run, read into `into`. */
async function readBlock(run, into, len) {
  let filled = 0;
  while (filled < len) {
    const { done, value } = await run.reader.read(new Uint8Array(into, filled, len - filled));
    if (done) throw new Error(`asked for ${len} bytes, the response ended after ${filled}`);
    into = value.buffer;
    filled += value.byteLength;
  }
  return into;
}

/** Sends block `job` (`start`..`end` of `url`) when it is read: from the run it continues, or
 * from a new one, after the blocks queued before it. */
function serve(job) {
  let run = [...runs].find((r) => r.url === job.url && r.next === job.start && job.end <= r.until && !r.broken);
  if (!run) {
    // Runs of this file that no queued block continues will not be continued now.
    for (const r of runs) if (r.url === job.url && r.queued === 0) close(r);
    run = open(job.url, job.start, Math.min(job.until, job.start + RUN));
  }
  run.next = job.end;
  run.queued += 1;
  job.run = run;
  const len = job.end - job.start;
  run.tail = run.tail.then(async () => {
    if (job.cancelled) return;
    // The run broke before this block's turn (a failure, a block before it stopped): the
    // block is read from a new run, not reported failed.
    if (run.broken) return serve(job);
    try {
      await run.ready;
      const bytes = await readBlock(run, buffer(len), len);
      jobs.delete(job.id);
      self.postMessage({ id: job.id, bytes, len }, [bytes]);
    } catch (e) {
      if (job.cancelled) return;
      // Closed for a block queued behind this one: this one is read again from a new run.
      if (run.broken) return serve(job);
      // Bytes after a failed read are not where the next block starts.
      run.broken = true;
      jobs.delete(job.id);
      self.postMessage({ id: job.id, error: String(e?.message ?? e) });
    }
  }).finally(() => {
    run.queued -= 1;
    if (run.queued === 0 && (run.broken || run.next >= run.until)) close(run);
  });
}

self.onmessage = ({ data }) => {
  whenIdle();
  if (data.abort !== undefined) {
    const job = jobs.get(data.abort);
    if (!job) return;
    job.cancelled = true;
    jobs.delete(job.id);
    // Its bytes will not be read, so the run no longer lines up with the blocks after it:
    // those still wanted move to a new run (the engine stops blocks in file order, so
    // usually none is).
    if (job.run) close(job.run);
    return;
  }
  if (data.recycle !== undefined) {
    if (spare.length < SPARE) spare.push(data.recycle);
    return;
  }
  const { id, url, start, end } = data;
  const job = { id, url, start, end, until: data.until ?? end, cancelled: false, run: null };
  jobs.set(id, job);
  serve(job);
};
