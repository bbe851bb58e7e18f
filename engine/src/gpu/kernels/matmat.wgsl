// Y[t, row] = dot(W[row, :], X[t, :]) (+ bias[row]) for a batch of tokens: the prefill path.
// Composed after a quant file. Header constants: WG threads, TN rows and TM tokens per tile
// (WG = TN * TM / 16: each thread holds a 4 x 4 register tile).
// Rows are read from P.w_row on in the bound part, bias from P.b_row, and stored from P.y_row
// (so a dispatch can cover a row range of a fused weight, e.g. the k rows of [q; k; v]).
//
// Each K step of KS elements dequantizes the TN x KS weight tile once into workgroup memory
// and stages the TM x KS x tile (loaded as vec4), then every thread runs KS outer products of
// a row vec4 and a token vec4 (two workgroup loads per 16 multiply-adds). The tile is
// dequantized once per TM tokens: long prompts take TM = 64 (ops/matmul.rs), so the decode
// cost per token is a quarter of a 16-token tile's. Both tiles are stored k-major with the
// row (token) index fastest, so a thread's four rows (tokens) are one vec4.

const PARTS: u32 = QK / 16u;
const KS: u32 = 32u;            // K elements per step: two 16-element parts
const TN4: u32 = TN / 4u;
const TM4: u32 = TM / 4u;

var<workgroup> wt: array<vec4<f32>, KS * TN4>;
var<workgroup> xt: array<vec4<f32>, KS * TM4>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row0 = flat_group(wid, P.groups_x) * TN;
    let tok0 = wid.z * TM;
    let nb = P.k / QK;
    let n_gparts = P.k / 16u;
    let kv = P.k / 4u;
    let rq = lid % TN4;
    let tq = lid / TN4;
    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    for (var ks = 0u; ks < P.k; ks += KS) {
        for (var job = lid; job < TN * 2u; job += WG) {
            let r = job % TN;
            let hp = job / TN;
            let gp = (ks >> 4u) + hp;
            // Assigned on both branches: Chromium (Tint on SwiftShader) does not re-zero a
            // loop-local var on each iteration as WGSL requires (see attention.wgsl).
            var w: array<f32, 16>;
            if (row0 + r < P.rows && gp < n_gparts) {
                w = dequant16(P.pb, (P.w_row + row0 + r) * nb + gp / PARTS, gp % PARTS);
            } else {
                w = array<f32, 16>();
            }
            for (var i = 0u; i < 16u; i++) {
                wt[(hp * 16u + i) * TN4 + r / 4u][r % 4u] = w[i];
            }
        }
        for (var e = lid; e < TM * (KS / 4u); e += WG) {
            let tk = e % TM;
            let k4 = e / TM;
            var v = vec4<f32>(0.0);
            if (tok0 + tk < P.t && ks + 4u * k4 < P.k) {
                v = X[(tok0 + tk) * kv + (ks >> 2u) + k4];
            }
            for (var i = 0u; i < 4u; i++) {
                xt[(4u * k4 + i) * TM4 + tk / 4u][tk % 4u] = v[i];
            }
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KS; kk++) {
            let w4 = wt[kk * TN4 + rq];
            let x4 = xt[kk * TM4 + tq];
            for (var i = 0u; i < 4u; i++) {
                acc[i] += w4[i] * x4;
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + 4u * rq + i;
        if (row < P.rows) {
            var b = 0.0;
            if (P.has_bias != 0u) {
                b = BIAS[P.b_row + row];
            }
            for (var j = 0u; j < 4u; j++) {
                let tok = tok0 + 4u * tq + j;
                if (tok < P.t) {
                    Y[tok * P.n_out + P.y_row + row] = acc[i][j] + b;
                }
            }
        }
    }
}
