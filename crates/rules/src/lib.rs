//! Rule segments (issue 7, first part): a condition language for marketers and analysts,
//! checked into a typed plan, and two evaluators that must agree at every instant: batch
//! over a profile's history ([`evaluate`]) and incremental on each event and timer
//! ([`Live`]). The language with examples: `docs/rules.md`.

pub mod engine;
mod eval;
mod lang;
mod plan;
pub mod score;
mod why;

pub use eval::{Event, Facts, Live, evaluate};
pub use lang::{Cmp, EventSel, Expr, Pos, RuleError, TraitTest, parse, parse_event};
pub use plan::{Rule, Schema, ValueType, check_cycles, compile};
pub use why::{Why, describe, explain};
