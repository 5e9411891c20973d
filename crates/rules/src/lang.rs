//! The rule language: text → [`Expr`], with errors that point at a line and column and
//! suggest a fix. See `docs/rules.md` for the language with examples.
//!
//! ```text
//! rule     := or
//! or       := and ("or" and)*
//! and      := unary ("and" unary)*
//! unary    := "not" unary | primary
//! primary  := "(" or ")"
//!           | "trait" PATH trait_test
//!           | "computed" NAME CMP LITERAL
//!           | "no" EVENT "within" DURATION
//!           | "sum" "of" PATH "in" EVENT CMP NUMBER "within" DURATION
//!           | EVENT "then" ["no"] EVENT "within" DURATION
//!           | EVENT [TIMES] "within" DURATION
//!           | "in" "segment" STRING
//!           | "score" NAME CMP NUMBER
//! trait_test := CMP LITERAL | "exists" | "is" "missing" | "in" "(" LITERAL ("," LITERAL)* ")"
//!             | "within" "last" DURATION | "more" "than" DURATION "ago"
//! EVENT    := STRING ["with" PATH CMP LITERAL ("," PATH CMP LITERAL)*]
//! TIMES    := ("at" "least" | "at" "most" | "exactly" | "more" "than" | "fewer" "than") INT "times"
//! DURATION := INT ("s" | "m" | "h" | "d" | "w" | "y"), e.g. 90m, 24h, 30d
//! ```

use serde_json::Value;
use std::fmt;

/// A place in the rule's text (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// A rule that cannot be used: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}{}", hint.as_ref().map(|h| format!(" (hint: {h})")).unwrap_or_default())]
pub struct RuleError {
    pub pos: Pos,
    pub message: String,
    pub hint: Option<String>,
}

pub(crate) fn error(pos: Pos, message: impl Into<String>, hint: Option<String>) -> RuleError {
    RuleError {
        pos,
        message: message.into(),
        hint,
    }
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    /// `left cmp right` on numbers.
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Cmp::Eq => left == right,
            Cmp::Ne => left != right,
            Cmp::Lt => left < right,
            Cmp::Le => left <= right,
            Cmp::Gt => left > right,
            Cmp::Ge => left >= right,
        }
    }
}

/// Which events a condition looks at: a `track` event name and property tests.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSel {
    pub name: String,
    pub filters: Vec<(String, Cmp, Value)>,
}

/// How a trait is tested.
#[derive(Debug, Clone, PartialEq)]
pub enum TraitTest {
    Compare(Cmp, Value),
    Exists,
    Missing,
    OneOf(Vec<Value>),
    /// The trait (a time) lies within the last window.
    WithinLast(i64),
    /// The trait (a time) is more than the window before now.
    MoreThanAgo(i64),
}

/// A parsed rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Trait {
        path: String,
        test: TraitTest,
        pos: Pos,
    },
    Computed {
        name: String,
        cmp: Cmp,
        value: Value,
        pos: Pos,
    },
    /// Matching events in the window `(now − window, now]`, compared with `n`.
    Count {
        sel: EventSel,
        cmp: Cmp,
        n: u64,
        window: i64,
    },
    /// The sum of a numeric property of matching events in the window.
    Sum {
        sel: EventSel,
        property: String,
        cmp: Cmp,
        value: f64,
        window: i64,
    },
    /// `first then second within window`: some `first` is followed by a `second` at most
    /// `window` later.
    Then {
        first: EventSel,
        second: EventSel,
        window: i64,
    },
    /// `first then no second within window`: the latest `first` is at least `window` old and
    /// no `second` followed it within `window`.
    ThenNo {
        first: EventSel,
        second: EventSel,
        window: i64,
    },
    /// Membership of another segment (a rule segment or a cluster of a batch model).
    InSegment {
        name: String,
        pos: Pos,
    },
    /// A score of a scoring plan, compared with a number.
    Score {
        name: String,
        cmp: Cmp,
        value: f64,
        pos: Pos,
    },
}

impl Expr {
    /// Calls `f` on each condition of the rule (everything but `and`, `or` and `not`), depth
    /// first, in the order written.
    pub fn for_each_condition<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        match self {
            Expr::And(parts) | Expr::Or(parts) => {
                parts.iter().for_each(|p| p.for_each_condition(f));
            }
            Expr::Not(inner) => inner.for_each_condition(f),
            condition => f(condition),
        }
    }

    /// Whether any condition of the rule satisfies `f`.
    pub fn any_condition(&self, mut f: impl FnMut(&Expr) -> bool) -> bool {
        let mut found = false;
        self.for_each_condition(&mut |c| found = found || f(c));
        found
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    /// A duration in µs, with its text.
    Dur(i64, String),
    Cmp(Cmp),
    Open,
    Close,
    Comma,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Word(w) => format!("`{w}`"),
        Tok::Str(s) => format!("\"{s}\""),
        Tok::Num(n) => format!("{n}"),
        Tok::Dur(_, text) => text.clone(),
        Tok::Cmp(_) => "a comparison".into(),
        Tok::Open => "`(`".into(),
        Tok::Close => "`)`".into(),
        Tok::Comma => "`,`".into(),
    }
}

const UNITS: &str = strata_core::WINDOW_UNITS;

fn duration(n: u64, unit: &str, pos: Pos, text: &str) -> Result<i64, RuleError> {
    let Some(seconds) = strata_core::unit_seconds(unit) else {
        return Err(error(
            pos,
            format!("`{text}` is not a duration"),
            Some(format!(
                "write a whole number and a unit: {UNITS}, e.g. 24h"
            )),
        ));
    };
    if n == 0 {
        return Err(error(
            pos,
            format!("the window `{text}` is zero"),
            Some("a window must be longer than zero, e.g. 1h".into()),
        ));
    }
    i64::try_from(n)
        .ok()
        .and_then(|n| strata_core::window_micros(n, seconds))
        .ok_or_else(|| error(pos, format!("the window `{text}` is too long"), None))
}

fn lex(text: &str) -> Result<Vec<(Tok, Pos)>, RuleError> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    while i < chars.len() {
        let c = chars[i];
        let pos = Pos { line, column: col };
        let advance = |n: usize, i: &mut usize, col: &mut usize| {
            *i += n;
            *col += n;
        };
        if c == '\n' {
            i += 1;
            line += 1;
            col = 1;
        } else if c.is_whitespace() {
            advance(1, &mut i, &mut col);
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' {
            let mut s = String::new();
            let mut j = i + 1;
            loop {
                match chars.get(j) {
                    None | Some('\n') => {
                        return Err(error(
                            pos,
                            "this text has no closing quote",
                            Some("end it with \" on the same line".into()),
                        ));
                    }
                    Some('"') => break,
                    Some('\\') if matches!(chars.get(j + 1), Some('"' | '\\')) => {
                        s.push(chars[j + 1]);
                        j += 2;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        j += 1;
                    }
                }
            }
            let n = j + 1 - i;
            out.push((Tok::Str(s), pos));
            advance(n, &mut i, &mut col);
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let mut j = i + 1;
            while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
                j += 1;
            }
            let number: String = chars[i..j].iter().collect();
            let mut k = j;
            while k < chars.len() && chars[k].is_ascii_alphabetic() {
                k += 1;
            }
            if k > j {
                let unit: String = chars[j..k].iter().collect();
                let whole: String = chars[i..k].iter().collect();
                let n: u64 = number.parse().map_err(|_| {
                    error(
                        pos,
                        format!("`{whole}` is not a duration"),
                        Some(format!("write a whole number and a unit: {UNITS}")),
                    )
                })?;
                out.push((Tok::Dur(duration(n, &unit, pos, &whole)?, whole), pos));
                advance(k - i, &mut i, &mut col);
            } else {
                let n: f64 = number
                    .parse()
                    .map_err(|_| error(pos, format!("`{number}` is not a number"), None))?;
                out.push((Tok::Num(n), pos));
                advance(j - i, &mut i, &mut col);
            }
        } else if c.is_alphabetic() || c == '_' {
            let mut j = i + 1;
            while j < chars.len() && (chars[j].is_alphanumeric() || matches!(chars[j], '_' | '.')) {
                j += 1;
            }
            out.push((Tok::Word(chars[i..j].iter().collect()), pos));
            advance(j - i, &mut i, &mut col);
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let (tok, n) = match (c, two.as_str()) {
                (_, "<=") => (Tok::Cmp(Cmp::Le), 2),
                (_, ">=") => (Tok::Cmp(Cmp::Ge), 2),
                (_, "!=") => (Tok::Cmp(Cmp::Ne), 2),
                (_, "==") => (Tok::Cmp(Cmp::Eq), 2),
                ('<', _) => (Tok::Cmp(Cmp::Lt), 1),
                ('>', _) => (Tok::Cmp(Cmp::Gt), 1),
                ('=', _) => (Tok::Cmp(Cmp::Eq), 1),
                ('(', _) => (Tok::Open, 1),
                (')', _) => (Tok::Close, 1),
                (',', _) => (Tok::Comma, 1),
                _ => {
                    return Err(error(
                        pos,
                        format!("unexpected character `{c}`"),
                        Some("event names and text values go in double quotes".into()),
                    ));
                }
            };
            out.push((tok, pos));
            advance(n, &mut i, &mut col);
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, Pos)>,
    at: usize,
    end: Pos,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|(t, _)| t)
    }

    fn pos(&self) -> Pos {
        self.toks.get(self.at).map_or(self.end, |(_, p)| *p)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }

    fn eat_word(&mut self, w: &str) -> bool {
        let yes = self.is_word(w);
        if yes {
            self.at += 1;
        }
        yes
    }

    fn expected(&self, what: &str, hint: Option<&str>) -> RuleError {
        let found = self.peek().map_or("the end of the rule".into(), describe);
        error(
            self.pos(),
            format!("expected {what}, found {found}"),
            hint.map(str::to_string),
        )
    }

    fn word(&mut self, w: &str, hint: Option<&str>) -> Result<(), RuleError> {
        if self.eat_word(w) {
            Ok(())
        } else {
            Err(self.expected(&format!("`{w}`"), hint))
        }
    }

    fn name(&mut self, what: &str) -> Result<(String, Pos), RuleError> {
        let pos = self.pos();
        match self.peek() {
            Some(Tok::Word(w)) => {
                let w = w.clone();
                self.at += 1;
                Ok((w, pos))
            }
            _ => Err(self.expected(what, None)),
        }
    }

    fn string(&mut self, what: &str, hint: &str) -> Result<String, RuleError> {
        match self.peek() {
            Some(Tok::Str(s)) => {
                let s = s.clone();
                self.at += 1;
                Ok(s)
            }
            _ => Err(self.expected(what, Some(hint))),
        }
    }

    fn cmp(&mut self) -> Result<Cmp, RuleError> {
        match self.peek() {
            Some(Tok::Cmp(c)) => {
                let c = *c;
                self.at += 1;
                Ok(c)
            }
            _ => Err(self.expected("a comparison (=, !=, <, <=, >, >=)", None)),
        }
    }

    fn literal(&mut self) -> Result<Value, RuleError> {
        let v = match self.peek() {
            Some(Tok::Str(s)) => Value::String(s.clone()),
            Some(Tok::Num(n)) => {
                serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
            }
            Some(Tok::Word(w)) if w == "true" || w == "false" => Value::Bool(w == "true"),
            _ => {
                return Err(self.expected(
                    "a value",
                    Some("text in double quotes, a number, true or false"),
                ));
            }
        };
        self.at += 1;
        Ok(v)
    }

    fn number(&mut self) -> Result<f64, RuleError> {
        match self.peek() {
            Some(Tok::Num(n)) => {
                let n = *n;
                self.at += 1;
                Ok(n)
            }
            _ => Err(self.expected("a number", None)),
        }
    }

    fn window(&mut self) -> Result<i64, RuleError> {
        self.word(
            "within",
            Some("every event condition needs a window, e.g. `within 24h`"),
        )?;
        match self.peek() {
            Some(Tok::Dur(us, _)) => {
                let us = *us;
                self.at += 1;
                Ok(us)
            }
            _ => Err(self.expected(
                "a duration",
                Some(&format!("a whole number and a unit: {UNITS}, e.g. 24h")),
            )),
        }
    }

    fn event_sel(&mut self) -> Result<EventSel, RuleError> {
        let name = self.string("an event name in double quotes", "e.g. \"Product Viewed\"")?;
        let mut filters = Vec::new();
        if self.eat_word("with") {
            loop {
                let (path, _) = self.name("a property name")?;
                let cmp = self.cmp()?;
                let value = self.literal()?;
                filters.push((path, cmp, value));
                if self.peek() == Some(&Tok::Comma) {
                    self.at += 1;
                } else {
                    break;
                }
            }
        }
        Ok(EventSel { name, filters })
    }

    fn or(&mut self) -> Result<Expr, RuleError> {
        let mut parts = vec![self.and()?];
        while self.eat_word("or") {
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Expr, RuleError> {
        let mut parts = vec![self.unary()?];
        while self.eat_word("and") {
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Expr, RuleError> {
        if self.eat_word("not") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn times(&mut self) -> Result<Option<(Cmp, u64)>, RuleError> {
        let cmp = if self.is_word("at") {
            self.at += 1;
            if self.eat_word("least") {
                Cmp::Ge
            } else if self.eat_word("most") {
                Cmp::Le
            } else {
                return Err(self.expected("`least` or `most`", None));
            }
        } else if self.eat_word("exactly") {
            Cmp::Eq
        } else if self.is_word("more") {
            self.at += 1;
            self.word("than", None)?;
            Cmp::Gt
        } else if self.is_word("fewer") {
            self.at += 1;
            self.word("than", None)?;
            Cmp::Lt
        } else {
            return Ok(None);
        };
        let pos = self.pos();
        let n = self.number()?;
        if n < 0.0 || n.fract() != 0.0 {
            return Err(error(
                pos,
                format!("`{n}` is not a whole number of times"),
                None,
            ));
        }
        self.word("times", Some("e.g. `at least 3 times within 24h`"))?;
        Ok(Some((cmp, n as u64)))
    }

    fn primary(&mut self) -> Result<Expr, RuleError> {
        let pos = self.pos();
        match self.peek() {
            Some(Tok::Open) => {
                self.at += 1;
                let e = self.or()?;
                if self.peek() != Some(&Tok::Close) {
                    return Err(self.expected("`)`", Some("every ( needs a matching )")));
                }
                self.at += 1;
                Ok(e)
            }
            Some(Tok::Str(_)) => {
                let first = self.event_sel()?;
                if self.eat_word("then") {
                    let negated = self.eat_word("no");
                    let second = self.event_sel()?;
                    let window = self.window()?;
                    return Ok(if negated {
                        Expr::ThenNo {
                            first,
                            second,
                            window,
                        }
                    } else {
                        Expr::Then {
                            first,
                            second,
                            window,
                        }
                    });
                }
                let (cmp, n) = self.times()?.unwrap_or((Cmp::Ge, 1));
                let window = self.window()?;
                Ok(Expr::Count {
                    sel: first,
                    cmp,
                    n,
                    window,
                })
            }
            Some(Tok::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "trait" => {
                    self.at += 1;
                    let (path, pos) = self.name("a trait name")?;
                    let test = self.trait_test()?;
                    Ok(Expr::Trait { path, test, pos })
                }
                "computed" => {
                    self.at += 1;
                    let (name, pos) = self.name("a computed trait's name")?;
                    let cmp = self.cmp()?;
                    let value = self.literal()?;
                    Ok(Expr::Computed {
                        name,
                        cmp,
                        value,
                        pos,
                    })
                }
                "no" => {
                    self.at += 1;
                    let sel = self.event_sel()?;
                    let window = self.window()?;
                    Ok(Expr::Count {
                        sel,
                        cmp: Cmp::Eq,
                        n: 0,
                        window,
                    })
                }
                "sum" => {
                    self.at += 1;
                    self.word("of", Some("e.g. `sum of revenue in \"Order Completed\" >= 100 within 30d`"))?;
                    let (property, _) = self.name("a property name")?;
                    self.word("in", None)?;
                    let sel = self.event_sel()?;
                    let cmp = self.cmp()?;
                    let value = self.number()?;
                    let window = self.window()?;
                    Ok(Expr::Sum {
                        sel,
                        property,
                        cmp,
                        value,
                        window,
                    })
                }
                "score" => {
                    self.at += 1;
                    let (name, pos) = self.name("a scoring plan's name")?;
                    let cmp = self.cmp()?;
                    let value = self.number()?;
                    Ok(Expr::Score {
                        name,
                        cmp,
                        value,
                        pos,
                    })
                }
                "in" => {
                    self.at += 1;
                    self.word("segment", Some("e.g. `in segment \"VIP\"`"))?;
                    let name = self.string("a segment name in double quotes", "e.g. \"VIP\"")?;
                    Ok(Expr::InSegment { name, pos })
                }
                other => Err(error(
                    pos,
                    format!("`{other}` does not start a condition"),
                    Some(
                        "start with trait, computed, score, an event name in double quotes, no, sum, in segment, not or ("
                            .into(),
                    ),
                )),
            },
            _ => Err(self.expected(
                "a condition",
                Some("e.g. `\"Product Viewed\" at least 3 times within 24h`"),
            )),
        }
    }

    fn trait_test(&mut self) -> Result<TraitTest, RuleError> {
        if matches!(self.peek(), Some(Tok::Cmp(_))) {
            let cmp = self.cmp()?;
            return Ok(TraitTest::Compare(cmp, self.literal()?));
        }
        if self.eat_word("exists") {
            return Ok(TraitTest::Exists);
        }
        if self.eat_word("is") {
            self.word("missing", None)?;
            return Ok(TraitTest::Missing);
        }
        if self.eat_word("in") {
            if self.peek() != Some(&Tok::Open) {
                return Err(self.expected("`(`", Some("e.g. `in (\"DE\", \"FR\")`")));
            }
            self.at += 1;
            let mut values = vec![self.literal()?];
            while self.peek() == Some(&Tok::Comma) {
                self.at += 1;
                values.push(self.literal()?);
            }
            if self.peek() != Some(&Tok::Close) {
                return Err(self.expected("`)`", None));
            }
            self.at += 1;
            return Ok(TraitTest::OneOf(values));
        }
        if self.eat_word("within") {
            self.word("last", Some("e.g. `trait created_at within last 30d`"))?;
            return match self.peek() {
                Some(Tok::Dur(us, _)) => {
                    let us = *us;
                    self.at += 1;
                    Ok(TraitTest::WithinLast(us))
                }
                _ => Err(self.expected("a duration", Some("e.g. 30d"))),
            };
        }
        if self.eat_word("more") {
            self.word("than", None)?;
            let us = match self.peek() {
                Some(Tok::Dur(us, _)) => *us,
                _ => return Err(self.expected("a duration", Some("e.g. 90d"))),
            };
            self.at += 1;
            self.word("ago", None)?;
            return Ok(TraitTest::MoreThanAgo(us));
        }
        Err(self.expected(
            "a trait test",
            Some(
                "a comparison, exists, is missing, in (...), within last 30d or more than 90d ago",
            ),
        ))
    }
}

/// Parses an event selector alone, as a scoring signal names its events:
/// `"Page Viewed" with path = "/pricing"`.
pub fn parse_event(text: &str) -> Result<EventSel, RuleError> {
    let mut p = parser(text)?;
    let e = p.event_sel()?;
    if p.at < p.toks.len() {
        return Err(p.expected("`,` or the end of the event", None));
    }
    Ok(e)
}

fn parser(text: &str) -> Result<Parser, RuleError> {
    let toks = lex(text)?;
    let end = {
        let lines: Vec<&str> = text.split('\n').collect();
        Pos {
            line: lines.len(),
            column: lines.last().map_or(0, |l| l.chars().count()) + 1,
        }
    };
    if toks.is_empty() {
        return Err(error(
            end,
            "the rule is empty",
            Some("e.g. `trait plan = \"pro\"`".into()),
        ));
    }
    Ok(Parser { toks, at: 0, end })
}

/// Parses a rule's text.
pub fn parse(text: &str) -> Result<Expr, RuleError> {
    let mut p = parser(text)?;
    let e = p.or()?;
    if p.at < p.toks.len() {
        return Err(p.expected("`and`, `or` or the end of the rule", None));
    }
    Ok(e)
}
