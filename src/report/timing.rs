//! How the tables print a duration: seconds with three significant digits, milliseconds below
//! one second, so that a run of 40 ms and one of 40 s read at a glance.

/// `seconds` as "1.23 s", "45.6 ms" or "789 µs" (three significant digits).
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return format!("{seconds} s");
    }
    let (value, unit) = if seconds >= 1.0 {
        (seconds, "s")
    } else if seconds >= 1e-3 {
        (seconds * 1e3, "ms")
    } else {
        (seconds * 1e6, "µs")
    };
    // Three significant digits: 1.23, 12.3, 123.
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.decimals$} {unit}")
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn durations_read_in_the_unit_that_fits() {
        assert_eq!(duration(2.5), "2.50 s");
        assert_eq!(duration(123.4), "123 s");
        assert_eq!(duration(0.0456), "45.6 ms");
        assert_eq!(duration(0.001), "1.00 ms");
        assert_eq!(duration(0.000789), "789 µs");
        assert_eq!(duration(0.0), "0.00 µs");
    }
}
