//! RFC 3339 times as upstream writes them, and the calendar arithmetic behind them.

/// Appends `ts` (nanoseconds since the epoch) as a quoted RFC 3339 UTC time with the
/// fraction's trailing zeros removed, as Go's `time.RFC3339Nano` (upstream's `ToIsoTimeStr`):
/// `2018-07-16T21:31:22.123456Z`, `1970-01-01T00:00:00Z`.
pub fn write_time(out: &mut Vec<u8>, ts: i64) {
    let secs = ts.div_euclid(1_000_000_000);
    let nanos = ts.rem_euclid(1_000_000_000) as u32;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u32;
    let two = |out: &mut Vec<u8>, v: u32| {
        out.push(b'0' + (v / 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    };
    out.push(b'"');
    // Nanosecond timestamps span the years 1677 to 2262: always four digits.
    let y = y.clamp(0, 9999) as u32;
    two(out, y / 100);
    two(out, y % 100);
    out.push(b'-');
    two(out, m);
    out.push(b'-');
    two(out, d);
    out.push(b'T');
    two(out, sod / 3600);
    out.push(b':');
    two(out, sod / 60 % 60);
    out.push(b':');
    two(out, sod % 60);
    if nanos != 0 {
        let mut digits = [0u8; 9];
        let mut n = nanos;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        let len = 9 - digits.iter().rev().take_while(|&&c| c == b'0').count();
        out.push(b'.');
        out.extend_from_slice(&digits[..len]);
    }
    out.extend_from_slice(b"Z\"");
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian calendar).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
