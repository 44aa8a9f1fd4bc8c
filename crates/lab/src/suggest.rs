//! "Did you mean ...?": the known word nearest to a misspelled one, by edit
//! distance, ignoring case (`underlayMtu` → `underlayMTU`).

/// The candidate closest to `word`, if it is close enough to be a likely
/// misspelling: at most a third of the word's length in edits (at least 1,
/// at most 3). Ties go to the first candidate.
pub fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word_lower = word.to_lowercase();
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (edit_distance(&word_lower, &c.to_lowercase()), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance in characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["underlay", "underlayMTU", "podNetwork", "subnetLen"];
        assert_eq!(nearest("underlayMtu", &keys), Some("underlayMTU"));
        assert_eq!(nearest("podnetwork", &keys), Some("podNetwork"));
        assert_eq!(nearest("subnetLength", &keys), Some("subnetLen"));
        assert_eq!(nearest("undelray", &keys), Some("underlay"));
        assert_eq!(nearest("mtu", &keys), None);
        assert_eq!(nearest("completelyDifferent", &keys), None);
    }
}
