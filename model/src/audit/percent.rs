//! Percent-decoding of URI query components, as Go's `url.QueryUnescape` does it, but lenient.

/// Decodes one `key` or `value` of a query string: `%XX` (either case of hex digit) is the
/// byte 0xXX and `+` is a space. Never fails: a `%` not followed by two hex digits is kept as
/// it is (Go would refuse the whole query), and bytes that do not form UTF-8 once decoded
/// become U+FFFD.
pub(super) fn decode_query_component(text: &str) -> String {
    if !text.contains(['%', '+']) {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let high = bytes.get(i + 1).copied().and_then(hex_value);
                let low = bytes.get(i + 2).copied().and_then(hex_value);
                if let (Some(high), Some(low)) = (high, low) {
                    out.push(high << 4 | low);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::decode_query_component as decode;

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(decode("ls"), "ls");
        assert_eq!(decode(""), "");
        assert_eq!(decode("-la"), "-la");
    }

    #[test]
    fn escapes_and_plus() {
        assert_eq!(decode("echo%20hi"), "echo hi");
        assert_eq!(decode("echo+hi"), "echo hi");
        assert_eq!(decode("a%2Bb%2bc"), "a+b+c");
        assert_eq!(decode("%2Fetc%2fshadow"), "/etc/shadow");
        assert_eq!(decode("cat%20%3E%20%2Ftmp%2Fx%3B%26"), "cat > /tmp/x;&");
        assert_eq!(decode("%25"), "%");
    }

    #[test]
    fn multibyte_utf8() {
        assert_eq!(decode("caf%C3%A9"), "café");
        assert_eq!(decode("%E2%9C%93"), "✓");
    }

    #[test]
    fn invalid_escapes_are_kept() {
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(decode("%4"), "%4");
        assert_eq!(decode("%%41"), "%A");
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(decode("a%FFb"), "a\u{FFFD}b");
        assert_eq!(decode("%C3"), "\u{FFFD}");
    }
}
