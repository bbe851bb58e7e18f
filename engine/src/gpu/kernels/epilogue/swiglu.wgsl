// Mat-vec epilogue over a [gate; up] weight (P.rows = 2 * n, gate rows first): each workgroup
// reads ROWS / 2 gate rows and the matching up rows, so y[j] = silu(gate_j . x) * (up_j . x)
// is written straight from the reduction, with no gate or up vector in memory.

const HALF: u32 = ROWS / 2u;

fn row_of(group: u32, r: u32) -> u32 {
    let n = P.rows / 2u;
    let j = group * HALF + r % HALF;
    if (j >= n) {
        return 0xFFFFFFFFu;
    }
    return select(j, n + j, r >= HALF);
}

fn epilogue(lid: u32, group: u32) {
    for (var r = lid; r < HALF; r += WG) {
        let j = group * HALF + r;
        if (j < P.rows / 2u) {
            let g = result(r);
            let u = result(r + HALF);
            Y[P.y_row + j] = g / (1.0 + exp(-g)) * u;
        }
    }
}
