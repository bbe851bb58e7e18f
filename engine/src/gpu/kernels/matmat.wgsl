// Y[t, row] = dot(W[row, :], X[t, :]) (+ bias[row]) for a batch of tokens: the prefill path.
// Composed after a quant file. Header constants: WG threads, TN rows and TM tokens per tile.
// Rows are read from P.w_row on in the bound part, bias from P.b_row, and stored from P.y_row
// (so a dispatch can cover a row range of a fused weight, e.g. the k rows of [q; k; v]).
// Each K step dequantizes TN rows x 32 elements once into workgroup memory and reuses them for
// all TM tokens, instead of re-decoding the weights per token. Each thread accumulates an
// RT x CT register tile (rows strided by RG, tokens by TG), so one workgroup-memory read feeds
// several multiply-adds.

const PARTS: u32 = QK / 16u;
const KS: u32 = 32u;       // K elements per step: two 16-element parts
const LD: u32 = KS + 1u;   // odd stride: threads walking rows hit distinct banks
const RG: u32 = 16u;       // row groups: a thread's rows are RG apart
const TG: u32 = WG / RG;   // token groups: a thread's tokens are TG apart
const RT: u32 = TN / RG;   // rows per thread
const CT: u32 = TM / TG;   // tokens per thread

var<workgroup> wt: array<f32, TN * LD>;
var<workgroup> xt: array<f32, TM * LD>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row0 = flat_group(wid, P.groups_x) * TN;
    let tok0 = wid.z * TM;
    let n_gparts = P.k / 16u;
    let rg = lid % RG;
    let tg = lid / RG;
    var acc: array<f32, RT * CT>;
    for (var ks = 0u; ks < P.k; ks += KS) {
        for (var job = lid; job < TN * 2u; job += WG) {
            let r = job >> 1u;
            let hp = job & 1u;
            let gp = (ks >> 4u) + hp;
            // Assigned on both branches: Chromium (Tint on SwiftShader) does not re-zero a
            // loop-local var on each iteration as WGSL requires (see attention.wgsl).
            var w: array<f32, 16>;
            if (row0 + r < P.rows && gp < n_gparts) {
                w = dequant16((P.w_row + row0 + r) * P.row_bytes + (gp / PARTS) * BLOCK_BYTES, gp % PARTS);
            } else {
                w = array<f32, 16>();
            }
            for (var i = 0u; i < 16u; i++) {
                wt[r * LD + hp * 16u + i] = w[i];
            }
        }
        for (var e = lid; e < TM * KS; e += WG) {
            let tk = e / KS;
            let kk = e % KS;
            var v = 0.0;
            if (tok0 + tk < P.t && ks + kk < P.k) {
                v = X[(tok0 + tk) * P.k + ks + kk];
            }
            xt[tk * LD + kk] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KS; kk++) {
            var wr: array<f32, RT>;
            for (var i = 0u; i < RT; i++) {
                wr[i] = wt[(rg + i * RG) * LD + kk];
            }
            for (var j = 0u; j < CT; j++) {
                let x = xt[(tg + j * TG) * LD + kk];
                for (var i = 0u; i < RT; i++) {
                    acc[i * CT + j] += wr[i] * x;
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < RT; i++) {
        let row = row0 + rg + i * RG;
        if (row < P.rows) {
            var b = 0.0;
            if (P.has_bias != 0u) {
                b = BIAS[P.b_row + row];
            }
            for (var j = 0u; j < CT; j++) {
                let tok = tok0 + tg + j * TG;
                if (tok < P.t) {
                    Y[tok * P.n_out + P.y_row + row] = acc[i * CT + j] + b;
                }
            }
        }
    }
}
