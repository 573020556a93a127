//! "Did you mean": the known key nearest to a misspelt one, so a typo (`polices`, `fromat`)
//! that upstream would silently ignore is named with its fix.

/// Edit distance counting a swap of two neighbours as one edit (optimal string alignment),
/// on ASCII-lowercased bytes.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<u8> = a.bytes().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<u8> = b.bytes().map(|c| c.to_ascii_lowercase()).collect();
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, v) in d[0].iter_mut().enumerate() {
        *v = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

/// The known key `key` most likely stands for: the nearest within two edits (one for keys of
/// four letters or fewer), if it is the only one that near. Patterns (`kafka.*`) are skipped.
pub fn nearest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = if key.len() <= 4 { 1 } else { 2 };
    let mut best: Option<(&str, usize)> = None;
    let mut tie = false;
    for k in known.iter().filter(|k| !k.ends_with('*')) {
        let d = distance(key, k);
        if d == 0 || d > limit {
            continue;
        }
        match best {
            Some((_, bd)) if d > bd => {}
            Some((_, bd)) if d == bd => tie = true,
            _ => {
                best = Some((k, d));
                tie = false;
            }
        }
    }
    match (best, tie) {
        (Some((k, _)), false) => Some(k),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_key() {
        assert_eq!(distance("fromat", "format"), 1, "a swap is one edit");
        assert_eq!(distance("polices", "policies"), 1);
        let known = ["policies", "mode", "format", "export", "kafka.*", "monitor"];
        assert_eq!(nearest("polices", &known), Some("policies"));
        assert_eq!(nearest("fromat", &known), Some("format"));
        assert_eq!(nearest("POLICES", &known), Some("policies"));
        assert_eq!(nearest("modes", &known), Some("mode"));
        assert_eq!(nearest("color", &known), None, "nothing near");
        assert_eq!(nearest("policies", &known), None, "a known key is no typo");
    }
}
