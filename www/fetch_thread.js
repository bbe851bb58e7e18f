// The engine worker's downloads (app/src/worker/source.rs): Range requests for the blocks it
// reads ahead, fetched on this worker's own event loop. A response body is read by the event
// loop of the thread that fetched it, and the engine worker's loop is busy placing weights
// between its awaits, so there the network waited for it; here it does not. Each block goes
// back as a transferred ArrayBuffer (no copy), and the engine sends it back once the loader
// is past it. Bodies are read straight into those buffers: `arrayBuffer()` grows its buffer
// as the body arrives (750K page faults on this thread for a 491 MB model, 519K this way).
const inFlight = new Map();
// Buffers back from the engine: with three blocks in flight and one being read, one or two
// wait here at a time. They are let go once the downloads stop, not kept for the page's life.
const spare = [];
const SPARE = 4;
const IDLE_MS = 5_000;
let idle = null;
function keepSpares() {
  clearTimeout(idle);
  idle = setTimeout(() => { spare.length = 0; }, IDLE_MS);
}

/** A buffer of at least `len` bytes: a spare one when it is big enough. */
function buffer(len) {
  const i = spare.findIndex((b) => b.byteLength >= len);
  return i >= 0 ? spare.splice(i, 1)[0] : new ArrayBuffer(len);
}

/** The body's `len` bytes, read into `into`; a longer or shorter body is an error. */
async function readBody(resp, into, len) {
  const reader = resp.body.getReader({ mode: 'byob' });
  let filled = 0;
  while (filled < len) {
    const { done, value } = await reader.read(new Uint8Array(into, filled, len - filled));
    if (done) break;
    into = value.buffer;
    filled += value.byteLength;
  }
  if (filled < len) throw new Error(`asked for ${len} bytes, got ${filled}`);
  const { done } = await reader.read(new Uint8Array(new ArrayBuffer(1)));
  if (!done) throw new Error(`asked for ${len} bytes, got more`);
  return into;
}

self.onmessage = async ({ data }) => {
  keepSpares();
  if (data.abort !== undefined) {
    inFlight.get(data.abort)?.abort();
    return;
  }
  if (data.recycle !== undefined) {
    if (spare.length < SPARE) spare.push(data.recycle);
    return;
  }
  const { id, url, start, end } = data;
  const abort = new AbortController();
  inFlight.set(id, abort);
  try {
    // The model's bytes go to OPFS; the HTTP cache would keep a second copy.
    const resp = await fetch(url, {
      headers: { Range: `bytes=${start}-${end - 1}` },
      cache: 'no-store',
      signal: abort.signal,
    });
    if (resp.status !== 206) throw new Error(`HTTP ${resp.status} for a Range request`);
    const len = end - start;
    const bytes = await readBody(resp, buffer(len), len);
    self.postMessage({ id, bytes, len }, [bytes]);
  } catch (e) {
    self.postMessage({ id, error: String(e?.message ?? e) });
  } finally {
    inFlight.delete(id);
  }
};
