//! Text made safe inside XML: the JUnit report and the SVG pictures.

/// `s` with the five markup characters escaped and control characters (other than newline,
/// tab and carriage return, which XML 1.0 does not allow) replaced by spaces.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && !matches!(c, '\n' | '\t' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_and_control_characters_cannot_break_the_document() {
        assert_eq!(
            super::escape("a<b>&\"c\"'d'\u{1}\u{7f}\n"),
            "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;  \n"
        );
    }
}
