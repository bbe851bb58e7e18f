// A test model for slow devices: a GGUF with only its first `layers` transformer blocks.
// Everything else (vocabulary, merges, chat template, embeddings, output head) is copied
// as it is, so the page tokenizes, templates and samples as with the whole model; only the
// answers change. SwiftShader runs SmolLM2-135M's 30 blocks at ~5 s per token; two blocks
// make an eight-question WebGPU session affordable in CI (soak.test.mjs).
//
// GGUF v2/v3 layout: magic, version, tensor count, key-value count, the key-values, the
// tensor infos (name, dims, type, offset into the data), then the data aligned to
// `general.alignment` (32 by default).
const SCALAR = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
const STRING = 8;
const ARRAY = 9;

class Reader {
  constructor(buf) {
    this.buf = buf;
    this.pos = 0;
  }
  u32() { const v = this.buf.readUInt32LE(this.pos); this.pos += 4; return v; }
  u64() { const v = this.buf.readBigUInt64LE(this.pos); this.pos += 8; return Number(v); }
  string() { const n = this.u64(); const s = this.buf.toString('utf8', this.pos, this.pos + n); this.pos += n; return s; }
  skip(type) {
    if (type === STRING) {
      const n = this.u64(); // before the sum: `pos +=` would read pos first
      this.pos += n;
    }
    else if (type === ARRAY) {
      const inner = this.u32();
      const n = this.u64();
      if (inner in SCALAR) this.pos += SCALAR[inner] * n;
      else for (let i = 0; i < n; i += 1) this.skip(inner);
    } else if (type in SCALAR) this.pos += SCALAR[type];
    else throw new Error(`GGUF value type ${type} unknown`);
  }
}

/** `gguf` (a Buffer) with blocks `layers` and up removed and `{arch}.block_count` set. */
export function trimLayers(gguf, layers) {
  const r = new Reader(gguf);
  if (gguf.toString('latin1', 0, 4) !== 'GGUF') throw new Error('not a GGUF file');
  r.pos = 8;
  const nTensors = r.u64();
  const nKv = r.u64();
  const out = Buffer.from(gguf); // the key-values are patched in place
  let arch = null;
  let blockCount = null; // [position of the value, its type]
  let alignment = 32;
  for (let i = 0; i < nKv; i += 1) {
    const key = r.string();
    const type = r.u32();
    if (key === 'general.architecture') arch = gguf.toString('utf8', r.pos + 8, r.pos + 8 + Number(gguf.readBigUInt64LE(r.pos)));
    if (key.endsWith('.block_count')) blockCount = [key, r.pos, type];
    if (key === 'general.alignment') alignment = gguf.readUInt32LE(r.pos);
    r.skip(type);
  }
  if (!blockCount || blockCount[0] !== `${arch}.block_count` || blockCount[2] !== 4) {
    throw new Error(`no u32 ${arch}.block_count`);
  }
  if (gguf.readUInt32LE(blockCount[1]) <= layers) throw new Error(`the model has ${layers} blocks or fewer`);
  out.writeUInt32LE(layers, blockCount[1]);
  const kvEnd = r.pos;
  const tensors = [];
  for (let i = 0; i < nTensors; i += 1) {
    const start = r.pos;
    const name = r.string();
    const dims = r.u32();
    r.pos += 8 * dims + 4;
    const offsetAt = r.pos;
    tensors.push({ name, start, offsetAt, end: offsetAt + 8, offset: r.u64() });
  }
  const dataStart = Math.ceil(r.pos / alignment) * alignment;
  // A tensor's bytes run to the next tensor's offset (offsets are aligned, so are the sizes).
  const byOffset = [...tensors].sort((a, b) => a.offset - b.offset);
  byOffset.forEach((t, i) => {
    t.size = (i + 1 < byOffset.length ? byOffset[i + 1].offset : gguf.length - dataStart) - t.offset;
  });
  const kept = tensors.filter((t) => {
    const m = /^blk\.(\d+)\./.exec(t.name);
    return !m || Number(m[1]) < layers;
  });
  const infos = [];
  let offset = 0;
  for (const t of kept) {
    const info = Buffer.from(gguf.subarray(t.start, t.end));
    info.writeBigUInt64LE(BigInt(offset), t.offsetAt - t.start);
    infos.push(info);
    t.newOffset = offset;
    offset += t.size;
  }
  const head = Buffer.concat([out.subarray(0, kvEnd), ...infos]);
  head.writeBigUInt64LE(BigInt(kept.length), 8);
  const pad = Buffer.alloc(Math.ceil(head.length / alignment) * alignment - head.length);
  return Buffer.concat([head, pad, ...kept.map((t) => gguf.subarray(dataStart + t.offset, dataStart + t.offset + t.size))]);
}
