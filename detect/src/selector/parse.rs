//! The selector grammar: an optional metric name, then an optional `{...}` of matchers separated by commas
//! (a trailing comma allowed). Names are identifiers or, as in Prometheus 3, quoted strings; values are
//! `"..."` or `'...'` with Go's escapes, or `` `...` `` taken raw.

use regex::RegexBuilder;

use super::{MatchOp, Matcher};

/// Compiled regexes are bounded: selectors come from the query API too, and a pathological pattern must
/// be refused rather than take the process' memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Why a selector did not parse, and where (1-based character position).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parse error at char {position}: {problem}")]
pub struct SelectorError {
    pub position: usize,
    pub problem: String,
}

struct Parser {
    chars: Vec<char>,
    at: usize,
}

pub(super) fn parse(text: &str) -> Result<Vec<Matcher>, SelectorError> {
    let mut p = Parser { chars: text.chars().collect(), at: 0 };
    p.skip_space();
    let name_at = p.at;
    let metric = if p.peek().is_some_and(is_metric_start) { Some(p.identifier(true)) } else { None };
    p.skip_space();
    let mut matchers = Vec::new();
    let mut braced_name: Option<(usize, String)> = None;
    if p.peek() == Some('{') {
        p.at += 1;
        p.matchers(&mut matchers, &mut braced_name)?;
    } else if metric.is_none() {
        return Err(p.error(match p.peek() {
            None => "empty selector: expected a metric name or '{'".into(),
            Some(c) => format!("unexpected character {c:?}: expected a metric name or '{{'"),
        }));
    }
    p.skip_space();
    if let Some(c) = p.peek() {
        return Err(p.error(format!("unexpected character {c:?} after the selector")));
    }
    let name = match (metric, braced_name) {
        (Some(_), Some((at, _))) => return Err(error_at(at, "metric name must not be set twice")),
        (Some(name), None) => Some((name_at, name)),
        (None, braced) => braced,
    };
    if let Some((at, name)) = name {
        if let Some(m) = matchers.iter().find(|m| m.name == "__name__") {
            return Err(error_at(at, format!("metric name must not be set twice: {name:?} and {:?}", m.value)));
        }
        matchers.insert(0, matcher("__name__".into(), MatchOp::Equal, name, at)?);
    }
    if matchers.iter().all(|m| m.matches("")) {
        return Err(error_at(0, "vector selector must contain at least one non-empty matcher"));
    }
    Ok(matchers)
}

fn error_at(index: usize, problem: impl Into<String>) -> SelectorError {
    SelectorError { position: index + 1, problem: problem.into() }
}

fn matcher(name: String, op: MatchOp, value: String, at: usize) -> Result<Matcher, SelectorError> {
    let regex = match op {
        MatchOp::Regex | MatchOp::NotRegex => Some(
            RegexBuilder::new(&format!("^(?s:{value})$"))
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| error_at(at, format!("invalid regular expression for label {name:?}: {e}")))?,
        ),
        MatchOp::Equal | MatchOp::NotEqual => None,
    };
    Ok(Matcher { name, op, value, regex })
}

fn is_metric_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_label_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn error(&self, problem: impl Into<String>) -> SelectorError {
        error_at(self.at, problem)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    /// A metric name (`:` allowed) or a label name; the caller saw a valid first character.
    fn identifier(&mut self, metric: bool) -> String {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || (metric && c == ':')) {
            self.at += 1;
        }
        self.chars[start..self.at].iter().collect()
    }

    /// The matchers after `{`, through the closing `}`. A quoted string not followed by an operator is the
    /// metric name (Prometheus 3's `{"my.metric"}`).
    fn matchers(
        &mut self,
        out: &mut Vec<Matcher>,
        braced_name: &mut Option<(usize, String)>,
    ) -> Result<(), SelectorError> {
        loop {
            self.skip_space();
            let name_at = self.at;
            let (name, quoted) = match self.peek() {
                Some('}') => {
                    self.at += 1;
                    return Ok(());
                }
                Some(c) if is_label_start(c) => (self.identifier(false), false),
                Some('"' | '\'' | '`') => (self.string()?, true),
                Some(c) => return Err(self.error(format!("unexpected character {c:?} in label matchers"))),
                None => return Err(self.error("unexpected end of selector: expected a label matcher or '}'")),
            };
            self.skip_space();
            if quoted && matches!(self.peek(), Some(',' | '}')) {
                if braced_name.is_some() {
                    return Err(error_at(name_at, "metric name must not be set twice"));
                }
                *braced_name = Some((name_at, name));
            } else {
                if name.is_empty() {
                    return Err(error_at(name_at, "label name must not be empty"));
                }
                let op = self.op()?;
                self.skip_space();
                let value_at = self.at;
                let value = match self.peek() {
                    Some('"' | '\'' | '`') => self.string()?,
                    _ => return Err(self.error(format!("expected a quoted value for label {name:?}"))),
                };
                out.push(matcher(name, op, value, value_at)?);
            }
            self.skip_space();
            match self.peek() {
                Some(',') => self.at += 1,
                Some('}') => {}
                Some(c) => return Err(self.error(format!("unexpected character {c:?}: expected ',' or '}}'"))),
                None => return Err(self.error("unexpected end of selector: expected ',' or '}'")),
            }
        }
    }

    fn op(&mut self) -> Result<MatchOp, SelectorError> {
        let two = (self.peek(), self.chars.get(self.at + 1).copied());
        let (op, len) = match two {
            (Some('='), Some('~')) => (MatchOp::Regex, 2),
            (Some('!'), Some('~')) => (MatchOp::NotRegex, 2),
            (Some('!'), Some('=')) => (MatchOp::NotEqual, 2),
            (Some('='), _) => (MatchOp::Equal, 1),
            (Some(c), _) => {
                return Err(self.error(format!("unexpected character {c:?}: expected one of =, !=, =~, !~")));
            }
            (None, _) => return Err(self.error("unexpected end of selector: expected one of =, !=, =~, !~")),
        };
        self.at += len;
        Ok(op)
    }

    /// A quoted string starting at the current character.
    fn string(&mut self) -> Result<String, SelectorError> {
        let start = self.at;
        let Some(quote) = self.peek() else { return Err(self.error("expected a string")) };
        self.at += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(error_at(start, "unterminated string"));
            };
            self.at += 1;
            match c {
                _ if c == quote => return Ok(out),
                '\\' if quote != '`' => out.push(self.escape()?),
                '\n' if quote != '`' => return Err(error_at(start, "unterminated string (newline in string)")),
                _ => out.push(c),
            }
        }
    }

    /// The character a backslash escape stands for; the backslash is consumed.
    fn escape(&mut self) -> Result<char, SelectorError> {
        let at = self.at - 1;
        let Some(c) = self.peek() else { return Err(error_at(at, "unterminated escape sequence")) };
        self.at += 1;
        let simple = match c {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' | '"' | '\'' | '`' => Some(c),
            _ => None,
        };
        if let Some(s) = simple {
            return Ok(s);
        }
        let (digits, radix) = match c {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => {
                self.at -= 1;
                (3, 8)
            }
            _ => return Err(error_at(at, format!("unknown escape sequence \\{c}"))),
        };
        let end = self.at + digits;
        let text: String = self.chars.get(self.at..end).map(|s| s.iter().collect()).unwrap_or_default();
        let code = u32::from_str_radix(&text, radix)
            .ok()
            .filter(|_| text.len() == digits)
            .ok_or_else(|| error_at(at, format!("escape sequence \\{c} needs {digits} base-{radix} digits")))?;
        self.at = end;
        char::from_u32(code).ok_or_else(|| error_at(at, format!("escape sequence is not a valid character: {code:#x}")))
    }
}
