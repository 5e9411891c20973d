//! Checking a parsed rule against what is known: trait and computed-trait names and types,
//! segment names, and (over a set of segments) references that go round in a cycle. A rule
//! that passes is a [`Rule`]; nothing half-checked is ever returned.

use crate::lang::{Cmp, Expr, Pos, RuleError, TraitTest, error, parse};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The type of a trait's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Text,
    Number,
    Bool,
    /// RFC 3339 text, compared as a time.
    Time,
}

impl ValueType {
    fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Number => "a number",
            Self::Bool => "true or false",
            Self::Time => "a time",
        }
    }

    fn of(v: &Value) -> Option<Self> {
        match v {
            Value::String(_) => Some(Self::Text),
            Value::Number(_) => Some(Self::Number),
            Value::Bool(_) => Some(Self::Bool),
            _ => None,
        }
    }
}

/// What a rule may refer to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schema {
    pub traits: BTreeMap<String, ValueType>,
    pub computed: BTreeMap<String, ValueType>,
    /// Segments (rule segments and clusters) a rule may test membership of.
    pub segments: BTreeSet<String>,
    /// Scoring plans.
    pub scores: BTreeSet<String>,
}

/// A checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub expr: Expr,
    /// The segments it tests membership of.
    pub uses: BTreeSet<String>,
}

fn closest<'a>(name: &str, known: impl Iterator<Item = &'a String>) -> Option<String> {
    known
        .map(|k| (strsim::jaro_winkler(name, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!("did you mean `{k}`?"))
}

fn check_compare(
    what: &str,
    ty: ValueType,
    cmp: Cmp,
    value: &Value,
    pos: Pos,
) -> Result<(), RuleError> {
    let given = ValueType::of(value);
    let fits = match ty {
        ValueType::Time => false,
        ty => given == Some(ty),
    };
    if !fits {
        let hint = match ty {
            ValueType::Time => {
                "a time is tested with `within last 30d` or `more than 30d ago`".to_string()
            }
            ValueType::Text => "put the value in double quotes".into(),
            other => format!("compare it with {}", other.name()),
        };
        return Err(error(
            pos,
            format!(
                "{what} is {}, but is compared with {}",
                ty.name(),
                given.map_or("nothing", ValueType::name)
            ),
            Some(hint),
        ));
    }
    if ty != ValueType::Number && !matches!(cmp, Cmp::Eq | Cmp::Ne) {
        return Err(error(
            pos,
            format!("{what} is {}: only = and != apply", ty.name()),
            None,
        ));
    }
    Ok(())
}

fn check(expr: &Expr, schema: &Schema, uses: &mut BTreeSet<String>) -> Result<(), RuleError> {
    match expr {
        Expr::And(parts) | Expr::Or(parts) => parts.iter().try_for_each(|p| check(p, schema, uses)),
        Expr::Not(inner) => check(inner, schema, uses),
        Expr::Trait { path, test, pos } => {
            let Some(ty) = schema.traits.get(path).copied() else {
                return Err(error(
                    *pos,
                    format!("no profile has a trait `{path}`"),
                    closest(path, schema.traits.keys()),
                ));
            };
            let what = format!("trait `{path}`");
            match test {
                TraitTest::Compare(cmp, v) => check_compare(&what, ty, *cmp, v, *pos),
                TraitTest::OneOf(vs) => vs
                    .iter()
                    .try_for_each(|v| check_compare(&what, ty, Cmp::Eq, v, *pos)),
                TraitTest::WithinLast(_) | TraitTest::MoreThanAgo(_) if ty != ValueType::Time => {
                    Err(error(
                        *pos,
                        format!("{what} is {}, not a time", ty.name()),
                        Some("`within last` and `more than … ago` test times".into()),
                    ))
                }
                _ => Ok(()),
            }
        }
        Expr::Computed {
            name,
            cmp,
            value,
            pos,
        } => {
            let Some(ty) = schema.computed.get(name).copied() else {
                return Err(error(
                    *pos,
                    format!("there is no computed trait `{name}`"),
                    closest(name, schema.computed.keys()),
                ));
            };
            check_compare(&format!("computed trait `{name}`"), ty, *cmp, value, *pos)
        }
        Expr::InSegment { name, pos } => {
            if !schema.segments.contains(name) {
                return Err(error(
                    *pos,
                    format!("there is no segment \"{name}\""),
                    closest(name, schema.segments.iter()),
                ));
            }
            uses.insert(name.clone());
            Ok(())
        }
        Expr::Score { name, pos, .. } => {
            if schema.scores.contains(name) {
                Ok(())
            } else {
                Err(error(
                    *pos,
                    format!("there is no scoring plan `{name}`"),
                    closest(name, schema.scores.iter()),
                ))
            }
        }
        Expr::Count { .. } | Expr::Sum { .. } | Expr::Then { .. } | Expr::ThenNo { .. } => Ok(()),
    }
}

/// Parses and checks a rule.
pub fn compile(text: &str, schema: &Schema) -> Result<Rule, RuleError> {
    let expr = parse(text)?;
    let mut uses = BTreeSet::new();
    check(&expr, schema, &mut uses)?;
    Ok(Rule { expr, uses })
}

/// Checks that no segment reaches itself through `in segment` references; the error names
/// the cycle.
pub fn check_cycles(rules: &BTreeMap<String, Rule>) -> Result<(), RuleError> {
    fn visit(
        name: &str,
        rules: &BTreeMap<String, Rule>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Result<(), RuleError> {
        if let Some(start) = path.iter().position(|p| p == name) {
            let mut cycle = path[start..].to_vec();
            cycle.push(name.to_string());
            return Err(error(
                Pos::default(),
                format!(
                    "segments refer to each other in a cycle: {}",
                    cycle.join(" → ")
                ),
                Some("a segment cannot depend on itself; remove one `in segment` reference".into()),
            ));
        }
        if done.contains(name) {
            return Ok(());
        }
        path.push(name.to_string());
        if let Some(rule) = rules.get(name) {
            for used in &rule.uses {
                visit(used, rules, path, done)?;
            }
        }
        path.pop();
        done.insert(name.to_string());
        Ok(())
    }
    let mut done = BTreeSet::new();
    for name in rules.keys() {
        visit(name, rules, &mut Vec::new(), &mut done)?;
    }
    Ok(())
}
