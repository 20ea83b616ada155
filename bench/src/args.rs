//! Value parsers shared by the subcommands' options: a count of zero or a duration of no
//! time is refused on the command line, naming the option, instead of surfacing later as
//! a panic, a NaN in the figures or minutes of a testbed that measures nothing.

fn positive<T: std::str::FromStr + PartialEq + Default>(s: &str) -> Result<T, String> {
    match s.parse::<T>() {
        Ok(v) if v != T::default() => Ok(v),
        Ok(_) => Err("a count of at least 1 is needed".into()),
        Err(_) => Err(format!("'{s}' is not a whole number")),
    }
}

/// A count of at least 1.
pub fn count(s: &str) -> Result<usize, String> {
    positive(s)
}

/// A count of at least 1 (`u32`).
pub fn count32(s: &str) -> Result<u32, String> {
    positive(s)
}

/// Seconds: a positive, finite number.
pub fn seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if v > 0.0 && v.is_finite() {
        Ok(v)
    } else {
        Err("a positive number of seconds is needed".into())
    }
}
