// Mat-vec epilogue: y = W x (+ bias), each workgroup's rows consecutive.

fn row_of(group: u32, r: u32) -> u32 {
    return group * ROWS + r;
}

fn epilogue(lid: u32, group: u32) {
    if (lid < ROWS) {
        let row = row_of(group, lid);
        if (row < P.rows) {
            var v = red[lid * WG];
            if (P.has_bias != 0u) {
                v += BIAS[P.b_row + row];
            }
            Y[P.y_row + row] = v;
        }
    }
}
