// The model cache's writer (app/src/worker/cache.rs): holds a download's OPFS file and
// writes its blocks on this worker's thread, so the engine worker places weights while the
// disk takes the bytes (a 491 MB model spent 2.6-3.0 s of its load in these writes there).
// Messages are handled one at a time, in order: a read or a close sees every write sent
// before it. Each answer carries the request's id, and `error` when it failed.
const handles = new Map();
let queue = Promise.resolve();

function handleOf(file) {
  const h = handles.get(file);
  if (!h) throw new Error(`${file} is not open in the cache thread`);
  return h;
}

const ops = {
  // The file's exclusive handle (refused while another tab holds it), emptied for a fresh
  // download; answers its size.
  async open({ dir, file, fresh }) {
    const root = await navigator.storage.getDirectory();
    const folder = await root.getDirectoryHandle(dir, { create: true });
    const file_handle = await folder.getFileHandle(file, { create: true });
    const h = await file_handle.createSyncAccessHandle();
    handles.set(file, h);
    if (fresh) h.truncate(0);
    return { size: h.getSize() };
  },
  // The first `len` bytes of `bytes`, at `at`; the buffer goes back for the next block.
  write({ file, at, bytes, len }) {
    const n = handleOf(file).write(new Uint8Array(bytes, 0, len), { at });
    if (n !== len) throw new Error(`the cache accepted ${n} of ${len} bytes`);
    return { bytes };
  },
  read({ file, at, len }) {
    const bytes = new Uint8Array(len);
    const n = handleOf(file).read(bytes, { at });
    if (n !== len) throw new Error(`the partial cache copy gave ${n} of ${len} bytes at byte ${at}`);
    return { bytes: bytes.buffer };
  },
  // Flushes and lets go of the file; answers its size.
  close({ file }) {
    const h = handles.get(file);
    if (!h) return { size: null };
    handles.delete(file);
    try {
      h.flush();
      return { size: h.getSize() };
    } finally {
      h.close();
    }
  },
};

self.onmessage = ({ data }) => {
  queue = queue.then(async () => {
    try {
      const answer = await ops[data.op](data);
      self.postMessage({ id: data.id, ...answer }, answer.bytes ? [answer.bytes] : []);
    } catch (e) {
      self.postMessage({ id: data.id, error: String(e?.message ?? e), name: e?.name });
    }
  });
};
