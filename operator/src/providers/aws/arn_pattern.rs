//! ARN patterns as IAM writes them: `*` is any run of characters, `?` any one character.

pub fn matches(pattern: &str, arn: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), arn.chars().collect());
    // Iterative wildcard matching with one backtrack point: linear in practice, no recursion.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_question_marks_match_as_in_iam() {
        let pattern = "arn:*:iam::*:role/chatroom-*";
        assert!(matches(
            pattern,
            "arn:aws:iam::123456789012:role/chatroom-default-lobby"
        ));
        assert!(matches(
            pattern,
            "arn:aws-cn:iam::123456789012:role/chatroom-"
        ));
        assert!(!matches(pattern, "arn:aws:iam::123456789012:role/admin"));
        assert!(!matches(
            pattern,
            "arn:aws:iam::123456789012:role/team/chatroom-x"
        ));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "ac"));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "aXbYbZc"));
    }
}
