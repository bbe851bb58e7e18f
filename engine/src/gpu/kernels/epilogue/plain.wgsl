// Mat-vec epilogue: y = W x (+ bias), each workgroup's rows consecutive.

fn row_of(group: u32, r: u32) -> u32 {
    return group * ROWS + r;
}

fn epilogue(lid: u32, group: u32) {
    for (var r = lid; r < ROWS; r += WG) {
        let row = row_of(group, r);
        if (row < P.rows) {
            var v = result(r);
            if (P.has_bias != 0u) {
                v += BIAS[P.b_row + row];
            }
            Y[P.y_row + row] = v;
        }
    }
}
