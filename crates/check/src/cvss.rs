//! CVSS v3.0/v3.1 base scores from vector strings (`CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H`),
//! following the FIRST specification's base-score equations.

/// The base score (0.0–10.0) of a CVSS v3.x vector. Metric names and values are matched
/// case-insensitively (upstream advisories sometimes write `av:N`); temporal and environmental
/// metrics are ignored.
pub fn base_score(vector: &str) -> Result<f64, String> {
    let vector = vector.trim();
    let mut parts = vector.split('/');
    let head = parts.next().unwrap_or_default().to_ascii_uppercase();
    let v30 = match head.as_str() {
        "CVSS:3.1" => false,
        "CVSS:3.0" => true,
        _ => return Err(format!("not a CVSS v3 vector: {vector:?}")),
    };
    let (mut av, mut ac, mut pr, mut ui, mut s, mut c, mut i, mut a) =
        (None, None, None, None, None, None, None, None);
    for part in parts {
        let Some((k, v)) = part.split_once(':') else {
            return Err(format!("malformed metric {part:?} in {vector:?}"));
        };
        let v = v.to_ascii_uppercase();
        let slot = match k.to_ascii_uppercase().as_str() {
            "AV" => &mut av,
            "AC" => &mut ac,
            "PR" => &mut pr,
            "UI" => &mut ui,
            "S" => &mut s,
            "C" => &mut c,
            "I" => &mut i,
            "A" => &mut a,
            _ => continue,
        };
        *slot = Some(v);
    }
    let need = |m: Option<String>, name: &str| {
        m.ok_or_else(|| format!("metric {name} missing in {vector:?}"))
    };
    let (av, ac, pr, ui, s, c, i, a) = (
        need(av, "AV")?,
        need(ac, "AC")?,
        need(pr, "PR")?,
        need(ui, "UI")?,
        need(s, "S")?,
        need(c, "C")?,
        need(i, "I")?,
        need(a, "A")?,
    );
    let bad = |m: &str, v: &str| format!("invalid value {v:?} of {m} in {vector:?}");
    let changed = match s.as_str() {
        "U" => false,
        "C" => true,
        v => return Err(bad("S", v)),
    };
    let av = match av.as_str() {
        "N" => 0.85,
        "A" => 0.62,
        "L" => 0.55,
        "P" => 0.2,
        v => return Err(bad("AV", v)),
    };
    let ac = match ac.as_str() {
        "L" => 0.77,
        "H" => 0.44,
        v => return Err(bad("AC", v)),
    };
    let pr = match (pr.as_str(), changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        ("H", false) => 0.27,
        ("H", true) => 0.5,
        (v, _) => return Err(bad("PR", v)),
    };
    let ui = match ui.as_str() {
        "N" => 0.85,
        "R" => 0.62,
        v => return Err(bad("UI", v)),
    };
    let cia = |m: &str, v: &str| match v {
        "H" => Ok(0.56),
        "L" => Ok(0.22),
        "N" => Ok(0.0),
        v => Err(bad(m, v)),
    };
    let (c, i, a) = (cia("C", &c)?, cia("I", &i)?, cia("A", &a)?);
    let iss = 1.0 - (1.0 - c) * (1.0 - i) * (1.0 - a);
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02_f64).powi(15)
    } else {
        6.42 * iss
    };
    let exploitability = 8.22 * av * ac * pr * ui;
    if impact <= 0.0 {
        return Ok(0.0);
    }
    let raw = if changed {
        (1.08 * (impact + exploitability)).min(10.0)
    } else {
        (impact + exploitability).min(10.0)
    };
    Ok(if v30 {
        roundup_30(raw)
    } else {
        roundup_31(raw)
    })
}

/// CVSS v3.1 Roundup: the smallest number with one decimal that is >= the input, computed on
/// integers to avoid floating-point artefacts.
fn roundup_31(x: f64) -> f64 {
    let int = (x * 100_000.0).round() as i64;
    if int % 10_000 == 0 {
        int as f64 / 100_000.0
    } else {
        ((int / 10_000) + 1) as f64 / 10.0
    }
}

/// CVSS v3.0 round up to one decimal.
fn roundup_30(x: f64) -> f64 {
    (x * 10.0).ceil() / 10.0
}

/// Finds the first CVSS v3 vector in free text (e.g. an advisory's markdown).
pub fn find_vector(text: &str) -> Option<String> {
    let upper = text.to_ascii_uppercase();
    let start = upper.find("CVSS:3.")?;
    let vector: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '.'))
        .collect();
    base_score(&vector).ok().map(|_| vector)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_scores() {
        for (vector, score) in [
            ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 8.8),
            ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:N", 8.1),
            ("CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H", 7.2),
            ("CVSS:3.1/AV:N/AC:H/PR:H/UI:N/S:U/C:H/I:H/A:N", 5.9),
            ("CVSS:3.1/AV:L/AC:L/PR:H/UI:N/S:U/C:L/I:L/A:N", 3.4),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
            ("CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:N/I:N/A:N", 0.0),
            ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L", 5.3),
            // Lower-case metric names as in some upstream advisories.
            ("CVSS:3.1/av:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 8.8),
        ] {
            assert_eq!(base_score(vector).unwrap(), score, "{vector}");
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(base_score("CVSS:2.0/AV:N").is_err());
        assert!(base_score("CVSS:3.1/AV:X/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H").is_err());
        assert!(base_score("CVSS:3.1/AV:N/AC:L").is_err());
    }

    #[test]
    fn finds_vector_in_markdown() {
        let text =
            "rated High ([CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:N](https://x)) (score: 8.1)";
        assert_eq!(
            find_vector(text).as_deref(),
            Some("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:N")
        );
        assert_eq!(find_vector("no vector here"), None);
    }
}
