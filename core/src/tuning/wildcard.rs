//! `*` patterns, as ContainerMonitors write image and container names.

/// Whether `text` matches `pattern`, where `*` stands for any run of characters (including
/// none) and every other character for itself. Linear in the common case, never worse than
/// `pattern.len() * text.len()` steps, whatever the input.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it currently absorbs up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::wildcard_match;

    #[test]
    fn stars_match_any_run() {
        assert!(wildcard_match(
            "quay.io/cilium/*",
            "quay.io/cilium/cilium:v1.15"
        ));
        assert!(wildcard_match(
            "docker.io/library/docker:*-dind",
            "docker.io/library/docker:27-dind"
        ));
        assert!(!wildcard_match(
            "docker.io/library/docker:*-dind",
            "docker.io/library/docker:27"
        ));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("worker-*", "worker-"));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "aXXbYY"));
        assert!(wildcard_match("exact", "exact"));
        assert!(!wildcard_match("exact", "exactly"));
        assert!(!wildcard_match("", "x"));
    }

    #[test]
    fn hostile_patterns_stay_bounded() {
        let text = "a".repeat(4096);
        let pattern = format!("{}b", "*a".repeat(64));
        assert!(!wildcard_match(&pattern, &text));
    }
}
