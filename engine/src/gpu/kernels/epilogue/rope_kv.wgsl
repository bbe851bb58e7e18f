// Mat-vec epilogue over a [q; k; v] weight (regions of P.q_rows, P.k_rows, then v up to
// P.rows; any may be empty) for one token at position pos = P.pos + S.pos: adds the bias,
// rotates q and k (RoPE) and stores q, and k and v straight into the KV cache at pos. Each
// workgroup reads ROWS / 2 pairs of rows, so both halves of a rotation meet here: the pairs
// of NEOX rotation (qwen2) are (i, i + n_rot / 2) of a head, of NORMAL (llama) (2i, 2i + 1);
// dims past n_rot, and v, pair up unrotated. The cache holds f16 pairs of adjacent dims in
// one word (kv.rs), so each thread stores two consecutive pairs (ROWS is a multiple of 4):
// between them they hold two whole words whichever way the rows pair.

const PAIRS: u32 = ROWS / 2u;
const NO_ROT: u32 = 0xFFFFFFFFu;

// Rows a and b of pair p of the tensor, and the rotation frequency index (or NO_ROT).
fn pair_rows(p: u32) -> vec3<u32> {
    let d = P.head_dim;
    let head = p / (d / 2u);
    let i = p % (d / 2u);
    let base = head * d;
    let half = P.n_rot / 2u;
    if (base >= P.q_rows + P.k_rows) {
        return vec3<u32>(base + 2u * i, base + 2u * i + 1u, NO_ROT);
    }
    if (P.neox != 0u) {
        if (i < half) {
            return vec3<u32>(base + i, base + i + half, i);
        }
        let m = i - half;
        return vec3<u32>(base + P.n_rot + 2u * m, base + P.n_rot + 2u * m + 1u, NO_ROT);
    }
    return vec3<u32>(base + 2u * i, base + 2u * i + 1u, select(NO_ROT, i, i < half));
}

fn row_of(group: u32, r: u32) -> u32 {
    let p = group * PAIRS + r / 2u;
    if (2u * p >= P.rows) {
        return 0xFFFFFFFFu;
    }
    let rows = pair_rows(p);
    return select(rows.x, rows.y, (r & 1u) == 1u);
}

// Pair p's two values, bias added and rotated.
fn finish_pair(rows: vec3<u32>, x: vec2<f32>, pos: u32) -> vec2<f32> {
    var v = x;
    if (P.has_bias != 0u) {
        v += vec2<f32>(BIAS[P.b_row + rows.x], BIAS[P.b_row + rows.y]);
    }
    if (rows.z != NO_ROT) {
        let turns = TURNS[rows.z];
        let sc = sincos_turns(pos * turns.x + mul_hi(pos, turns.y));
        v = vec2<f32>(v.x * sc.y - v.y * sc.x, v.x * sc.x + v.y * sc.y);
    }
    return v;
}

// Rows `row` and `row + 1` (even `row`, both in one region).
fn store2(row: u32, pos: u32, v: vec2<f32>) {
    let kv_start = P.q_rows + P.k_rows;
    if (row < P.q_rows) {
        Q[P.y_row + row] = v.x;
        Q[P.y_row + row + 1u] = v.y;
    } else if (row < kv_start) {
        K_DST[k_word(row - P.q_rows, pos, P.n_ctx)] = pack2x16float(v);
    } else {
        V_DST[v_word(row - kv_start, pos, P.kv_width)] = pack2x16float(v);
    }
}

fn epilogue(lid: u32, group: u32) {
    let pos = P.pos + S.pos;
    for (var t = lid; 2u * t < PAIRS; t += WG) {
        let p = group * PAIRS + 2u * t;
        if (2u * p >= P.rows) {
            break;
        }
        let ra = pair_rows(p);
        let rb = pair_rows(p + 1u);
        let a = finish_pair(ra, vec2<f32>(result(4u * t), result(4u * t + 1u)), pos);
        let b = finish_pair(rb, vec2<f32>(result(4u * t + 2u), result(4u * t + 3u)), pos);
        if (ra.y == ra.x + 1u) {
            store2(ra.x, pos, a);
            store2(rb.x, pos, b);
        } else {
            // Rotated NEOX pairs (i, i + half) and (i + 1, i + 1 + half).
            store2(ra.x, pos, vec2<f32>(a.x, b.x));
            store2(ra.y, pos, vec2<f32>(a.y, b.y));
        }
    }
}
