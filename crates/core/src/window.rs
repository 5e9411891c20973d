//! Durations written as a whole number and a unit (`45s`, `90m`, `24h`, `30d`, `12w`, `2y`),
//! as computed traits and rule segments write their windows.

/// The units, for messages.
pub const WINDOW_UNITS: &str =
    "s (seconds), m (minutes), h (hours), d (days), w (weeks) or y (years)";

/// Seconds in one `unit`; `y` is 365 days.
pub fn unit_seconds(unit: &str) -> Option<i64> {
    Some(match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        "y" => 31_536_000,
        _ => return None,
    })
}

/// `n` units in µs; `None` on overflow.
pub fn window_micros(n: i64, unit_seconds: i64) -> Option<i64> {
    n.checked_mul(unit_seconds)?.checked_mul(1_000_000)
}
