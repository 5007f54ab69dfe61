//! Prometheus label-set syntax (`{job="api", level="error"}`), as Loki's push protobuf carries stream labels
//! and as Vigil stores and forwards them.
//!
//! The parser follows LogQL's stream selector grammar for the equality matchers a push may carry: names
//! `[a-zA-Z_][a-zA-Z0-9_]*`, values in double quotes with Go escapes (`\"`, `\\`, `\n`, `\t`, `\r`, `\a`,
//! `\b`, `\f`, `\v`, `\xHH` below 0x80, `\uXXXX`, `\UXXXXXXXX`) or in backticks without escapes.

/// A label set as parsed: pairs in the sender's order.
pub(crate) type LabelPairs = Vec<(String, String)>;

/// Why a label set did not parse; `at` is a byte offset, so the message never echoes values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}")]
pub(crate) struct ParseError {
    pub(crate) what: &'static str,
    pub(crate) at: usize,
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
            self.pos += c.len_utf8();
        }
    }

    fn fail<T>(&self, what: &'static str) -> Result<T, ParseError> {
        Err(ParseError { what, at: self.pos })
    }

    fn expect(&mut self, c: char, what: &'static str) -> Result<(), ParseError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            self.fail(what)
        }
    }

    fn name(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        match self.peek() {
            Some(c) if c.is_ascii_alphabetic() || c == '_' => self.pos += 1,
            _ => return self.fail("expected a label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
        }
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            self.pos += 1;
        }
        Ok(self.s[start..self.pos].to_owned())
    }

    fn hex(&mut self, digits: usize) -> Result<u32, ParseError> {
        let start = self.pos;
        let Some(text) = self.s.get(start..start + digits) else { return self.fail("truncated escape") };
        let v = u32::from_str_radix(text, 16).or_else(|_| self.fail("invalid hex digits in escape"))?;
        self.pos += digits;
        Ok(v)
    }

    fn quoted(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        match self.bump() {
            Some('`') => {
                let start = self.pos;
                let Some(len) = self.s[start..].find('`') else { return self.fail("unterminated `value`") };
                self.pos = start + len + 1;
                Ok(self.s[start..start + len].to_owned())
            }
            Some('"') => {
                let mut out = String::new();
                loop {
                    match self.bump() {
                        None => return self.fail("unterminated \"value\""),
                        Some('"') => return Ok(out),
                        Some('\n') => return self.fail("newline in a quoted value"),
                        Some('\\') => out.push(self.escape()?),
                        Some(c) => out.push(c),
                    }
                }
            }
            _ => Err(ParseError { what: "expected a quoted label value", at: start }),
        }
    }

    fn escape(&mut self) -> Result<char, ParseError> {
        let c = match self.bump() {
            Some('"') => '"',
            Some('\\') => '\\',
            Some('\'') => '\'',
            Some('n') => '\n',
            Some('t') => '\t',
            Some('r') => '\r',
            Some('a') => '\x07',
            Some('b') => '\x08',
            Some('f') => '\x0c',
            Some('v') => '\x0b',
            // \xHH is a byte in Go; only ASCII bytes keep the value valid UTF-8.
            Some('x') => char::from_u32(self.hex(2)?)
                .filter(char::is_ascii)
                .map_or_else(|| self.fail("\\x escape above 0x7f"), Ok)?,
            Some('u') => char::from_u32(self.hex(4)?).map_or_else(|| self.fail("invalid \\u escape"), Ok)?,
            Some('U') => char::from_u32(self.hex(8)?).map_or_else(|| self.fail("invalid \\U escape"), Ok)?,
            _ => return self.fail("unknown escape sequence"),
        };
        Ok(c)
    }
}

/// Parses `{name="value", ...}`. An empty set `{}` parses (the caller decides that it is not allowed);
/// a trailing comma is accepted, as Prometheus does.
pub(crate) fn parse(s: &str) -> Result<LabelPairs, ParseError> {
    let mut c = Cursor { s, pos: 0 };
    let mut out = Vec::new();
    c.skip_ws();
    c.expect('{', "expected '{'")?;
    loop {
        c.skip_ws();
        if c.peek() == Some('}') {
            c.pos += 1;
            break;
        }
        let name = c.name()?;
        c.skip_ws();
        c.expect('=', "expected '=' after a label name")?;
        c.skip_ws();
        let value = c.quoted()?;
        out.push((name, value));
        c.skip_ws();
        match c.bump() {
            Some(',') => {}
            Some('}') => break,
            _ => return Err(ParseError { what: "expected ',' or '}'", at: c.pos.saturating_sub(1) }),
        }
    }
    c.skip_ws();
    if c.pos != s.len() {
        return c.fail("unexpected text after '}'");
    }
    Ok(out)
}

/// Writes a label set in canonical form: sorted by name, `{a="b", c="d"}`, values escaped so that [`parse`]
/// (and Loki's Go parser) read them back unchanged.
pub(crate) fn format(labels: &mut [(String, String)]) -> String {
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::with_capacity(2 + labels.iter().map(|(n, v)| n.len() + v.len() + 5).sum::<usize>());
    out.push('{');
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push_str("=\"");
        for ch in value.chars() {
            match ch {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => {
                    use std::fmt::Write as _;
                    let _ = write!(out, "\\u{:04x}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// Loki's label-name rule, `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An attribute name made into a label name the way Loki's OTLP ingestion does: every character outside
/// `[a-zA-Z0-9_]` becomes `_`, and a leading digit gets a `_` prefix.
pub(crate) fn sanitize_name(name: &str) -> String {
    let mut out: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert(0, '_');
    }
    out
}
