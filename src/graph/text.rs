//! Text that must fit a width: cut with `…`, or wrapped at spaces.

/// `text` cut to `max` characters, with `…` when cut.
pub fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `text` broken at spaces into lines of at most `max` characters (a word
/// longer than that is cut), at most `lines` of them, the last one cut
/// with `…` when text is left.
pub fn wrap(text: &str, max: usize, lines: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split(' ') {
        let len = current.chars().count();
        if len > 0 && len + 1 + word.chars().count() > max {
            out.push(std::mem::take(&mut current));
            current.push_str("  ");
        } else if len > 0 {
            current.push(' ');
        }
        current.push_str(word);
    }
    out.push(current);
    let cut = out.len() > lines;
    out.truncate(lines);
    if let Some(last) = out.last_mut() {
        *last = fit(last, max);
        if cut && !last.ends_with('…') {
            if last.chars().count() >= max {
                last.pop();
            }
            last.push('…');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_wrapped_then_cut_to_the_box() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
        assert_eq!(wrap("ab cd ef", 5, 3), ["ab cd", "  ef"]);
        assert_eq!(wrap("ab cd ef gh ij", 5, 2), ["ab cd", "  ef…"]);
        assert_eq!(wrap("abcdefgh", 5, 2), ["abcd…"]);
    }
}
