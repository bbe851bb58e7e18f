//! Sizes as people read them.

/// Bytes in decimal units to three significant digits: "512 B", "8.39 MB", "98.4 MB",
/// "485 MB", "4.68 GB". The one format for every size the CLI, the page and the error
/// messages show, so that one model's sizes read alike everywhere: decimal, as browsers,
/// file managers and model hubs show file sizes.
pub fn fmt_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    // 999.5 rounds to "1000" at no decimals, so it is already the next unit's 1.00.
    while value >= 999.5 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let decimals = match value {
        _ if unit == 0 => 0,
        v if v < 9.995 => 2,
        v if v < 99.95 => 1,
        _ => 0,
    };
    format!("{value:.decimals$} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::fmt_bytes;

    #[test]
    fn three_significant_digits_in_decimal_units() {
        for (bytes, text) in [
            (0, "0 B"),
            (999, "999 B"),
            (1_000, "1.00 kB"),
            (8 << 20, "8.39 MB"),
            (98_436_608, "98.4 MB"),
            (128 << 20, "134 MB"),
            (485_000_000, "485 MB"),
            (999_499_999, "999 MB"),
            (999_500_000, "1.00 GB"),
            (4_677_000_000, "4.68 GB"),
            (15_200_000_000, "15.2 GB"),
            (u64::MAX, "18447 PB"),
        ] {
            assert_eq!(fmt_bytes(bytes), text, "{bytes} bytes");
        }
    }
}
