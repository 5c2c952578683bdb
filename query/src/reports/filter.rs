//! The query strings of reports: clauses in the search grammar, values quoted and escaped, and
//! the glob matching of the system-component lists.
//!
//! A report's filter and each row's drill-down query are lists of clauses joined by spaces
//! under the parser's AND-by-default; a clause with an `OR` inside is parenthesised, so that
//! joining never changes its meaning.

/// Both stages at which a request is complete: `ResponseComplete`, or `Panic` when the API
/// server failed while serving it. Counting only these counts each request once.
pub(crate) const COMPLETE: &str = r#"(stage:"ResponseComplete" OR stage:"Panic")"#;

/// `value` as a quoted phrase of the grammar: `"system:admin"`, with `"` and `\` escaped.
pub(crate) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `field` equal to `value` (a keyword field); the empty value means the field is absent, as
/// in the documents (an empty string is never indexed).
pub(crate) fn eq(field: &str, value: &str) -> String {
    if value.is_empty() {
        format!("-{field}:*")
    } else {
        format!("{field}:{}", quote(value))
    }
}

/// `field` equal to one of `values` (keyword field, none of them empty).
pub(crate) fn any_of(field: &str, values: &[&str]) -> String {
    match values {
        [one] => eq(field, one),
        _ => {
            let alternatives: Vec<String> = values.iter().map(|v| eq(field, v)).collect();
            format!("({})", alternatives.join(" OR "))
        }
    }
}

/// Several clauses of which one must hold, parenthesised.
pub(crate) fn either(clauses: &[String]) -> String {
    format!("({})", clauses.join(" OR "))
}

/// The clauses joined into one query string (all must hold).
pub(crate) fn join(clauses: &[String]) -> String {
    clauses.join(" ")
}

/// A `*` glob (any run of characters, possibly empty; no other metacharacter), matched against
/// the whole of `text`.
pub(crate) fn glob_match(glob: &str, text: &str) -> bool {
    let mut parts = glob.split('*');
    // `split` always yields at least one part.
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    let Some((last, middle)) = middle.split_last() else {
        // No `*`: the glob is a literal.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_quotes_and_backslashes() {
        assert_eq!(quote("system:admin"), r#""system:admin""#);
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(eq("user", "bob smith"), r#"user:"bob smith""#);
        assert_eq!(eq("namespace", ""), "-namespace:*");
        assert_eq!(any_of("verb", &["get"]), r#"verb:"get""#);
        assert_eq!(
            any_of("verb", &["get", "list"]),
            r#"(verb:"get" OR verb:"list")"#
        );
        assert_eq!(
            join(&[COMPLETE.to_string(), eq("user", "x")]),
            r#"(stage:"ResponseComplete" OR stage:"Panic") user:"x""#
        );
    }

    #[test]
    fn globs() {
        let cases = [
            ("system:node:*", "system:node:n1", true),
            ("system:node:*", "system:node:", true),
            ("system:node:*", "system:nodes", false),
            ("system:apiserver", "system:apiserver", true),
            ("system:apiserver", "system:apiserver2", false),
            ("*", "", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "a-b-b-c", true),
            ("a*b*c", "a-c-b", false),
            (
                "*:kube-system:*",
                "system:serviceaccount:kube-system:x",
                true,
            ),
            ("ab*ba", "aba", false),
        ];
        for (glob, text, expected) in cases {
            assert_eq!(glob_match(glob, text), expected, "{glob} ~ {text}");
        }
    }
}
