//! A small SPDX licence-expression parser and evaluator: enough of the SPDX grammar for the
//! `license` field of Cargo manifests (`OR`, `AND`, `WITH`, parentheses, a trailing `+`),
//! plus the legacy `/` separator that old crates use for `OR`.

use std::fmt;

/// A parsed licence expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// One licence, possibly "or later" (`GPL-2.0+`) and possibly with an exception
    /// (`Apache-2.0 WITH LLVM-exception`).
    Licence {
        id: String,
        or_later: bool,
        exception: Option<String>,
    },
    /// Both sides apply.
    And(Box<Expr>, Box<Expr>),
    /// The user may choose either side.
    Or(Box<Expr>, Box<Expr>),
}

/// Why a licence expression could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

impl Expr {
    /// Parses an SPDX expression. `AND` binds tighter than `OR`; operators are accepted in
    /// any case, since a licence identifier can never be spelt `and`, `or` or `with`.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            tokens,
            position: 0,
        };
        let expr = parser.or_expr()?;
        match parser.peek() {
            None => Ok(expr),
            Some(token) => Err(ParseError(format!(
                "expected AND, OR or end of expression, found {token}"
            ))),
        }
    }

    /// Whether the expression can be satisfied by choosing only licences that `allowed`
    /// accepts: any side of an `OR`, every side of an `AND`. `allowed` gets the licence
    /// identifier and its exception, if any; an "or later" licence is satisfied by its
    /// named version.
    pub fn is_satisfied_by(&self, allowed: &dyn Fn(&str, Option<&str>) -> bool) -> bool {
        match self {
            Expr::Licence { id, exception, .. } => allowed(id, exception.as_deref()),
            Expr::And(left, right) => {
                left.is_satisfied_by(allowed) && right.is_satisfied_by(allowed)
            }
            Expr::Or(left, right) => {
                left.is_satisfied_by(allowed) || right.is_satisfied_by(allowed)
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Identifier(String),
    And,
    Or,
    With,
    Open,
    Close,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Identifier(id) => write!(f, "`{id}`"),
            Token::And => f.write_str("AND"),
            Token::Or => f.write_str("OR"),
            Token::With => f.write_str("WITH"),
            Token::Open => f.write_str("`(`"),
            Token::Close => f.write_str("`)`"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | '/' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Or,
                });
            }
            c if is_identifier_char(c) => {
                let mut end = start;
                while let Some(&(index, c)) = chars.peek() {
                    if !is_identifier_char(c) {
                        break;
                    }
                    end = index + c.len_utf8();
                    chars.next();
                }
                tokens.push(word_token(&text[start..end])?);
            }
            c => return Err(ParseError(format!("unexpected character `{c}`"))),
        }
    }
    if tokens.is_empty() {
        return Err(ParseError("empty licence expression".to_owned()));
    }
    Ok(tokens)
}

fn is_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | ':')
}

fn word_token(word: &str) -> Result<Token, ParseError> {
    if word.eq_ignore_ascii_case("AND") {
        return Ok(Token::And);
    }
    if word.eq_ignore_ascii_case("OR") {
        return Ok(Token::Or);
    }
    if word.eq_ignore_ascii_case("WITH") {
        return Ok(Token::With);
    }
    // `DocumentRef-x:LicenseRef-y` is the only place a colon may appear, and `+` may only
    // end an identifier.
    let body = word.strip_suffix('+').unwrap_or(word);
    let well_formed = !body.is_empty()
        && !body.contains('+')
        && body.split(':').count() <= 2
        && body.split(':').all(|part| !part.is_empty());
    if !well_formed {
        return Err(ParseError(format!("malformed licence identifier `{word}`")));
    }
    Ok(Token::Identifier(word.to_owned()))
}

/// Recursive descent over the tokens:
/// `or := and (OR and)*`, `and := with (AND with)*`, `with := primary (WITH id)?`,
/// `primary := id | '(' or ')'`.
struct Parser {
    tokens: Vec<Token>,
    position: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        token
    }

    fn or_expr(&mut self) -> Result<Expr, ParseError> {
        let mut expr = self.and_expr()?;
        while self.peek() == Some(&Token::Or) {
            self.next();
            expr = Expr::Or(Box::new(expr), Box::new(self.and_expr()?));
        }
        Ok(expr)
    }

    fn and_expr(&mut self) -> Result<Expr, ParseError> {
        let mut expr = self.with_expr()?;
        while self.peek() == Some(&Token::And) {
            self.next();
            expr = Expr::And(Box::new(expr), Box::new(self.with_expr()?));
        }
        Ok(expr)
    }

    fn with_expr(&mut self) -> Result<Expr, ParseError> {
        let expr = self.primary()?;
        if self.peek() != Some(&Token::With) {
            return Ok(expr);
        }
        self.next();
        let Expr::Licence {
            id,
            or_later,
            exception: None,
        } = expr
        else {
            return Err(ParseError("WITH must follow a single licence".to_owned()));
        };
        match self.next() {
            Some(Token::Identifier(exception)) if !exception.ends_with('+') => Ok(Expr::Licence {
                id,
                or_later,
                exception: Some(exception),
            }),
            other => Err(expected("an exception identifier after WITH", other)),
        }
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        match self.next() {
            Some(Token::Identifier(word)) => {
                let (id, or_later) = match word.strip_suffix('+') {
                    Some(id) => (id.to_owned(), true),
                    None => (word, false),
                };
                Ok(Expr::Licence {
                    id,
                    or_later,
                    exception: None,
                })
            }
            Some(Token::Open) => {
                let expr = self.or_expr()?;
                match self.next() {
                    Some(Token::Close) => Ok(expr),
                    other => Err(expected("`)`", other)),
                }
            }
            other => Err(expected("a licence identifier or `(`", other)),
        }
    }
}

fn expected(what: &str, found: Option<Token>) -> ParseError {
    match found {
        Some(token) => ParseError(format!("expected {what}, found {token}")),
        None => ParseError(format!("expected {what}, found end of expression")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn licence(id: &str) -> Expr {
        Expr::Licence {
            id: id.to_owned(),
            or_later: false,
            exception: None,
        }
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let parsed = Expr::parse("MIT OR Apache-2.0 AND Zlib").unwrap();
        let expected = Expr::Or(
            Box::new(licence("MIT")),
            Box::new(Expr::And(
                Box::new(licence("Apache-2.0")),
                Box::new(licence("Zlib")),
            )),
        );
        assert_eq!(parsed, expected);
    }

    #[test]
    fn parentheses_group() {
        let parsed = Expr::parse("(MIT OR Apache-2.0) AND Zlib").unwrap();
        let expected = Expr::And(
            Box::new(Expr::Or(
                Box::new(licence("MIT")),
                Box::new(licence("Apache-2.0")),
            )),
            Box::new(licence("Zlib")),
        );
        assert_eq!(parsed, expected);
    }

    #[test]
    fn slash_is_legacy_or() {
        assert_eq!(
            Expr::parse("MIT/Apache-2.0").unwrap(),
            Expr::parse("MIT OR Apache-2.0").unwrap()
        );
    }

    #[test]
    fn with_and_or_later_are_kept() {
        let parsed = Expr::parse("GPL-2.0+ WITH Classpath-exception-2.0").unwrap();
        let expected = Expr::Licence {
            id: "GPL-2.0".to_owned(),
            or_later: true,
            exception: Some("Classpath-exception-2.0".to_owned()),
        };
        assert_eq!(parsed, expected);
    }

    #[test]
    fn document_refs_parse() {
        assert!(Expr::parse("DocumentRef-spdx-tool-1.2:LicenseRef-MIT-Style-2").is_ok());
    }

    #[test]
    fn malformed_expressions_are_errors() {
        for text in [
            "",
            "   ",
            "MIT OR",
            "OR MIT",
            "(MIT",
            "MIT)",
            "MIT Apache-2.0",
            "MIT AND AND Zlib",
            "MIT, Apache-2.0",
            "MIT WITH",
            "(MIT OR Zlib) WITH LLVM-exception",
            "GPL+2.0",
            "a::b",
            "MIT WITH x+",
        ] {
            assert!(Expr::parse(text).is_err(), "{text:?} should not parse");
        }
    }

    #[test]
    fn satisfiable_takes_any_or_and_every_and() {
        let only_mit = |id: &str, exception: Option<&str>| id == "MIT" && exception.is_none();
        assert!(
            Expr::parse("GPL-3.0 OR MIT")
                .unwrap()
                .is_satisfied_by(&only_mit)
        );
        assert!(
            !Expr::parse("GPL-3.0 AND MIT")
                .unwrap()
                .is_satisfied_by(&only_mit)
        );
        assert!(
            !Expr::parse("MIT WITH LLVM-exception")
                .unwrap()
                .is_satisfied_by(&only_mit)
        );
        assert!(Expr::parse("MIT+").unwrap().is_satisfied_by(&only_mit));
    }
}
