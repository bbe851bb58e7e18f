// The engine worker's downloads (app/src/worker/source.rs): Range requests for the blocks it
// reads ahead, fetched on this worker's own event loop. A response body is read by the event
// loop of the thread that fetched it, and the engine worker's loop is busy placing weights
// between its awaits, so there the network waited for it; here it does not. Each block goes
// back as a transferred ArrayBuffer (no copy).
const inFlight = new Map();

self.onmessage = async ({ data }) => {
  if (data.abort !== undefined) {
    inFlight.get(data.abort)?.abort();
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
    const bytes = await resp.arrayBuffer();
    self.postMessage({ id, bytes }, [bytes]);
  } catch (e) {
    self.postMessage({ id, error: String(e?.message ?? e) });
  } finally {
    inFlight.delete(id);
  }
};
