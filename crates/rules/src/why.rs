//! "Why is this profile in (or not in) this segment": every condition of a rule with its
//! value and what was found, evaluated as the batch evaluator does.

use crate::eval::{Event, Facts, evaluate};
use crate::lang::{Cmp, EventSel, Expr, TraitTest};
use serde_json::Value;

/// One condition's verdict, with the verdicts of its parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Why {
    pub holds: bool,
    /// The condition, written in the rule language.
    pub condition: String,
    /// What was found, e.g. "2 matching events in the window; needs ≥ 3".
    pub found: String,
    pub parts: Vec<Why>,
}

fn cmp_text(c: Cmp) -> &'static str {
    match c {
        Cmp::Eq => "=",
        Cmp::Ne => "!=",
        Cmp::Lt => "<",
        Cmp::Le => "<=",
        Cmp::Gt => ">",
        Cmp::Ge => ">=",
    }
}

fn duration(us: i64) -> String {
    let s = us / 1_000_000;
    for (unit, secs) in [
        ("y", 31_536_000),
        ("w", 604_800),
        ("d", 86_400),
        ("h", 3_600),
        ("m", 60),
    ] {
        if s % secs == 0 {
            return format!("{}{unit}", s / secs);
        }
    }
    format!("{s}s")
}

fn sel_text(sel: &EventSel) -> String {
    let mut t = format!("{:?}", sel.name);
    if !sel.filters.is_empty() {
        let filters: Vec<String> = sel
            .filters
            .iter()
            .map(|(p, c, v)| format!("{p} {} {v}", cmp_text(*c)))
            .collect();
        t.push_str(&format!(" with {}", filters.join(", ")));
    }
    t
}

/// The condition written back in the rule language.
pub fn describe(expr: &Expr) -> String {
    match expr {
        Expr::And(parts) => parts
            .iter()
            .map(|p| format!("({})", describe(p)))
            .collect::<Vec<_>>()
            .join(" and "),
        Expr::Or(parts) => parts
            .iter()
            .map(|p| format!("({})", describe(p)))
            .collect::<Vec<_>>()
            .join(" or "),
        Expr::Not(inner) => format!("not ({})", describe(inner)),
        Expr::Trait { path, test, .. } => match test {
            TraitTest::Compare(c, v) => format!("trait {path} {} {v}", cmp_text(*c)),
            TraitTest::Exists => format!("trait {path} exists"),
            TraitTest::Missing => format!("trait {path} is missing"),
            TraitTest::OneOf(vs) => format!(
                "trait {path} in ({})",
                vs.iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            TraitTest::WithinLast(w) => format!("trait {path} within last {}", duration(*w)),
            TraitTest::MoreThanAgo(w) => format!("trait {path} more than {} ago", duration(*w)),
        },
        Expr::Computed {
            name, cmp, value, ..
        } => format!("computed {name} {} {value}", cmp_text(*cmp)),
        Expr::Score {
            name, cmp, value, ..
        } => format!("score {name} {} {value}", cmp_text(*cmp)),
        Expr::InSegment { name, .. } => format!("in segment {name:?}"),
        Expr::Count {
            sel,
            cmp: Cmp::Eq,
            n: 0,
            window,
        } => {
            format!("no {} within {}", sel_text(sel), duration(*window))
        }
        Expr::Count {
            sel,
            cmp,
            n,
            window,
        } => format!(
            "{} {} {n} times within {}",
            sel_text(sel),
            match cmp {
                Cmp::Ge => "at least",
                Cmp::Le => "at most",
                Cmp::Eq => "exactly",
                Cmp::Gt => "more than",
                Cmp::Lt => "fewer than",
                Cmp::Ne => "not exactly",
            },
            duration(*window)
        ),
        Expr::Sum {
            sel,
            property,
            cmp,
            value,
            window,
        } => format!(
            "sum of {property} in {} {} {value} within {}",
            sel_text(sel),
            cmp_text(*cmp),
            duration(*window)
        ),
        Expr::Then {
            first,
            second,
            window,
        } => {
            format!(
                "{} then {} within {}",
                sel_text(first),
                sel_text(second),
                duration(*window)
            )
        }
        Expr::ThenNo {
            first,
            second,
            window,
        } => {
            format!(
                "{} then no {} within {}",
                sel_text(first),
                sel_text(second),
                duration(*window)
            )
        }
    }
}

fn iso(t: i64) -> String {
    chrono::DateTime::from_timestamp_micros(t).map_or_else(
        || t.to_string(),
        |d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// Explains `expr` for one profile at `now`.
pub fn explain(expr: &Expr, facts: &Facts<'_>, events: &[Event], now: i64) -> Why {
    let holds = evaluate(expr, facts, events, now);
    let matching = |sel: &EventSel| -> Vec<i64> {
        let mut v: Vec<i64> = events
            .iter()
            .filter(|e| e.time <= now && sel.matches(e))
            .map(|e| e.time)
            .collect();
        v.sort_unstable();
        v
    };
    let (found, parts) = match expr {
        Expr::And(ps) | Expr::Or(ps) => {
            let parts: Vec<Why> = ps.iter().map(|p| explain(p, facts, events, now)).collect();
            let n = parts.iter().filter(|p| p.holds).count();
            (format!("{n} of {} parts hold", parts.len()), parts)
        }
        Expr::Not(inner) => {
            let part = explain(inner, facts, events, now);
            (format!("the inner condition is {}", part.holds), vec![part])
        }
        Expr::Trait { path, .. } => (
            match facts.traits.get(path) {
                Some(v) => format!("{path} is {v}"),
                None => format!("{path} is not set"),
            },
            Vec::new(),
        ),
        Expr::Computed { name, .. } => (
            facts
                .computed
                .get(name)
                .map_or(format!("{name} has no value"), |v| format!("{name} is {v}")),
            Vec::new(),
        ),
        Expr::Score { name, .. } => (
            facts
                .scores
                .get(name)
                .map_or(format!("no {name} score"), |v| format!("{name} is {v:.2}")),
            Vec::new(),
        ),
        Expr::InSegment { name, .. } => (
            if facts.segments.contains(name) {
                format!("in {name:?}")
            } else {
                format!("not in {name:?}")
            },
            Vec::new(),
        ),
        Expr::Count { sel, window, .. } => {
            let times: Vec<i64> = matching(sel)
                .into_iter()
                .filter(|t| *t > now - window)
                .collect();
            let last = times
                .last()
                .map(|t| format!("; the latest at {}", iso(*t)))
                .unwrap_or_default();
            (
                format!(
                    "{} matching events in the last {}{last}",
                    times.len(),
                    duration(*window)
                ),
                Vec::new(),
            )
        }
        Expr::Sum {
            sel,
            property,
            window,
            ..
        } => {
            let sum: f64 = events
                .iter()
                .filter(|e| e.time <= now && e.time > now - window && sel.matches(e))
                .filter_map(|e| {
                    crate::eval::property(&e.properties, property).and_then(Value::as_f64)
                })
                .sum();
            (
                format!(
                    "the sum of {property} in the last {} is {sum}",
                    duration(*window)
                ),
                Vec::new(),
            )
        }
        Expr::Then {
            first,
            second,
            window,
        } => {
            let (a, b) = (matching(first), matching(second));
            let pair = b.iter().find_map(|tb| {
                let i = a.partition_point(|ta| ta < tb);
                (i > 0 && *tb <= a[i - 1] + window).then(|| (a[i - 1], *tb))
            });
            (
                match pair {
                    Some((ta, tb)) => {
                        format!("{} at {} was followed at {}", first.name, iso(ta), iso(tb))
                    }
                    None => format!(
                        "{} of {} and {} of {}, never within {} of each other",
                        a.len(),
                        first.name,
                        b.len(),
                        second.name,
                        duration(*window)
                    ),
                },
                Vec::new(),
            )
        }
        Expr::ThenNo {
            first,
            second,
            window,
        } => {
            let latest = matching(first).last().copied();
            (
                match latest {
                    None => format!("no {} yet", first.name),
                    Some(ta) => {
                        let followed = matching(second)
                            .into_iter()
                            .find(|tb| *tb > ta && *tb <= ta + window);
                        match followed {
                            Some(tb) => format!(
                                "the latest {} at {} was followed by {} at {}",
                                first.name,
                                iso(ta),
                                second.name,
                                iso(tb)
                            ),
                            None if ta + window > now => format!(
                                "the latest {} at {}: its {} end at {}",
                                first.name,
                                iso(ta),
                                duration(*window),
                                iso(ta + window)
                            ),
                            None => format!(
                                "the latest {} at {} was not followed within {}",
                                first.name,
                                iso(ta),
                                duration(*window)
                            ),
                        }
                    }
                },
                Vec::new(),
            )
        }
    };
    Why {
        holds,
        condition: describe(expr),
        found,
        parts,
    }
}
