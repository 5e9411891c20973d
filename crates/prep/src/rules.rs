//! `[prep]` in strata.toml: the cleaning steps declared per table and field, and their
//! compilation into a checked plan. Everything that can be wrong with the rules (an unknown
//! field, a regex that does not compile, a range of the wrong type, a missing HMAC key) is
//! found here, before any data is read, and reported with the config line.

use crate::config::SourceConfig;
use crate::load::field_types;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use strata_core::{EntityKind, FieldType};
use toml::Spanned;

/// All preparation rules of a config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepConfig {
    #[serde(default)]
    pub customers: TablePrep,
    #[serde(default)]
    pub orders: TablePrep,
    #[serde(default)]
    pub events: TablePrep,
    pub pseudonymize: Option<Spanned<PseudonymizeConfig>>,
}

/// The steps for one table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TablePrep {
    /// Field name → its normalization, validation and imputation rules.
    #[serde(default)]
    pub fields: BTreeMap<Spanned<String>, FieldRules>,
    /// Rules between fields of a row, or against the customer a row belongs to.
    #[serde(default)]
    pub checks: Vec<CheckConfig>,
    pub currency: Option<Spanned<CurrencyConfig>>,
    pub dedup: Option<Spanned<DedupConfig>>,
    /// Neighbours used by `impute = "knn"`.
    #[serde(default)]
    pub knn: KnnConfig,
}

/// Text clean-ups, applied in the order written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalizer {
    Trim,
    Lowercase,
    Uppercase,
    /// First letter of each word upper case, the rest lower case.
    Title,
    /// Runs of white space become one space.
    CollapseSpaces,
    /// Trimmed and lower-cased.
    Email,
    /// E.164 (`+14155550123`), national numbers read in `phone_region`; a number that is
    /// not a valid phone number fails the field's validation.
    Phone,
    /// Only the digits.
    Digits,
}

/// A format a value must have (after normalization).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `local@domain.tld`, no spaces, one `@`.
    Email,
    /// E.164: `+` and 8–15 digits.
    Phone,
}

/// What happens to a row whose value breaks a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInvalid {
    /// The row is set aside in the quarantine with the rule, field and value.
    #[default]
    Quarantine,
    /// The value is nulled and the row keeps going, flagged in `prep_flags`.
    Null,
}

/// How missing values of a field are filled.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Impute {
    Mean,
    Median,
    /// The most frequent value (the smallest among equally frequent ones).
    Mode,
    /// Mean of the field over the k nearest complete neighbours (`[prep.<table>.knn]`).
    Knn,
    Constant(toml::Value),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRules {
    #[serde(default)]
    pub normalize: Vec<Normalizer>,
    /// Label map applied after normalization: `{ "NY" = "New York" }`.
    #[serde(default)]
    pub map: BTreeMap<String, String>,
    /// Default region for national phone numbers (ISO 3166 code, e.g. "US").
    pub phone_region: Option<Spanned<String>>,
    #[serde(default)]
    pub required: bool,
    pub format: Option<Format>,
    pub regex: Option<Spanned<String>>,
    /// Inclusive bounds: numbers for numeric fields, dates (`"2000-01-01"`) for dates.
    pub range: Option<Spanned<Vec<toml::Value>>>,
    pub allowed: Option<Vec<String>>,
    #[serde(default)]
    pub on_invalid: OnInvalid,
    pub impute: Option<Spanned<Impute>>,
    /// Adds a boolean `<field>_missing` column, true where the value was missing.
    #[serde(default)]
    pub missing_indicator: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// `left op right`: operands are fields, `customers.<field>` (the row's customer) or
    /// literals (numbers, quoted strings or dates); op is one of `< <= > >= == !=`.
    pub rule: Spanned<String>,
    #[serde(default)]
    pub on_invalid: OnInvalid,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurrencyConfig {
    /// The currency every amount is converted into.
    pub to: String,
    /// Units of `to` per unit of each currency: `{ EUR = 1.08 }`.
    pub rates: BTreeMap<String, f64>,
    /// The currency of rows whose currency is empty (default: `to`).
    pub default: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnnConfig {
    #[serde(default = "default_knn_k")]
    pub k: usize,
    /// Numeric fields distances are measured on (z-scored); default: every numeric field
    /// with `impute = "knn"`.
    #[serde(default)]
    pub features: Vec<String>,
}

fn default_knn_k() -> usize {
    5
}

impl Default for KnnConfig {
    fn default() -> Self {
        Self {
            k: default_knn_k(),
            features: Vec::new(),
        }
    }
}

/// A key made of one field or several.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum KeySpec {
    One(String),
    Many(Vec<String>),
}

impl KeySpec {
    pub fn fields(&self) -> Vec<String> {
        match self {
            Self::One(f) => vec![f.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

/// How two values are compared in fuzzy matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Exact,
    JaroWinkler,
    /// Normalized Levenshtein similarity: 1 − distance / longer length.
    Levenshtein,
    /// Dates within `within` days are similar.
    Date,
    /// Numbers within `within` of each other are similar.
    Numeric,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    /// One field, or two compared in either order (first and last name swapped).
    pub fields: Vec<String>,
    pub method: Method,
    /// Similarity from which two strings count as similar (Jaro-Winkler default 0.88,
    /// Levenshtein 0.8).
    pub similar: Option<f64>,
    /// Similarity from which two strings not similar count as partially agreeing
    /// (Jaro-Winkler default 0.7, Levenshtein 0.5); values below are different.
    pub partial: Option<f64>,
    /// Days (dates) or units (numbers) within which two values are similar.
    pub within: Option<f64>,
    /// Given m and u probabilities for the levels [exact, similar, partial, different];
    /// when absent u is measured on random pairs and m estimated by EM.
    pub m: Option<[f64; 4]>,
    pub u: Option<[f64; 4]>,
}

/// Which value of a field the merged record keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Survivorship {
    /// First non-missing in file order.
    First,
    /// Last non-missing in file order.
    Last,
    /// From the record with the most non-missing fields (ties: first in file order).
    MostComplete,
    /// From the record with the latest `recency_field` value.
    MostRecent,
    Max,
    Min,
    Longest,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    /// Exact keys: records sharing a value of any of them are one entity.
    #[serde(default)]
    pub exact: Vec<KeySpec>,
    /// Blocking rules: only records that share the whole key of at least one rule are
    /// compared. A key part is `field`, `field:soundex`, `field:prefixN`, and `a+b:…` for
    /// two fields taken in either order.
    #[serde(default)]
    pub blocking: Vec<Vec<String>>,
    #[serde(default)]
    pub compare: Vec<Comparison>,
    /// Posterior match probability from which a compared pair is merged.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Blocks with more records are skipped (and counted): they would dominate the run.
    #[serde(default = "default_max_block")]
    pub max_block: usize,
    /// Per-field survivorship; `default` for the rest.
    #[serde(default)]
    pub survivorship: BTreeMap<String, Survivorship>,
    /// The field `most_recent` orders by.
    pub recency_field: Option<String>,
    /// Random pairs drawn to measure u probabilities.
    #[serde(default = "default_u_pairs")]
    pub u_sample_pairs: usize,
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_threshold() -> f64 {
    0.9
}
fn default_max_block() -> usize {
    1000
}
fn default_u_pairs() -> usize {
    200_000
}
fn default_seed() -> u64 {
    42
}

/// Which columns are replaced by their keyed HMAC-SHA-256 pseudonym.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PseudonymizeConfig {
    /// Environment variable holding the key.
    pub key_env: Option<String>,
    /// File holding the key (relative to the config file).
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub customers: Vec<String>,
    #[serde(default)]
    pub orders: Vec<String>,
    #[serde(default)]
    pub events: Vec<String>,
}

/// A rule problem, with the config line when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct RuleError {
    pub line: Option<usize>,
    pub message: String,
}

/// 1-based line of a byte offset in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

pub(crate) struct Ctx<'a> {
    pub text: &'a str,
}

impl Ctx<'_> {
    pub fn err(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> RuleError {
        RuleError {
            line: Some(line_of(self.text, span.start)),
            message: message.into(),
        }
    }
}

// ------------------------------------------------------------------------------------------
// The compiled plan.

#[derive(Debug, Clone)]
pub enum Bound {
    Num(f64),
    Micros(i64),
}

#[derive(Debug, Clone)]
pub struct FieldPlan {
    pub field: String,
    pub ty: FieldType,
    pub normalize: Vec<Normalizer>,
    pub map: BTreeMap<String, String>,
    pub phone_region: phonenumber::country::Id,
    pub required: bool,
    pub format: Option<Format>,
    pub regex: Option<regex::Regex>,
    pub range: Option<(Bound, Bound)>,
    pub allowed: Option<Vec<String>>,
    pub on_invalid: OnInvalid,
    pub impute: Option<Impute>,
    pub missing_indicator: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Eq => "==",
            Self::Ne => "!=",
        }
    }
    pub fn holds(self, o: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Self::Lt => o == Less,
            Self::Le => o != Greater,
            Self::Gt => o == Greater,
            Self::Ge => o != Less,
            Self::Eq => o == Equal,
            Self::Ne => o != Equal,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Field(String),
    /// A field of the customer the row belongs to (by `customer_id`).
    Customer(String),
    Num(f64),
    Micros(i64),
    Text(String),
}

#[derive(Debug, Clone)]
pub struct CheckPlan {
    pub text: String,
    pub left: Operand,
    pub op: CmpOp,
    pub right: Operand,
    pub on_invalid: OnInvalid,
}

/// One blocking key part: the transformed value of one field, or of two in either order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transform {
    Value,
    Soundex,
    Prefix(usize),
}

#[derive(Debug, Clone)]
pub struct KeyPart {
    pub fields: Vec<String>,
    pub transform: Transform,
}

#[derive(Debug, Clone)]
pub struct ComparisonPlan {
    pub name: String,
    pub fields: Vec<String>,
    pub method: Method,
    pub similar: f64,
    pub partial: f64,
    pub within: f64,
    pub m: Option<[f64; 4]>,
    pub u: Option<[f64; 4]>,
}

#[derive(Debug, Clone)]
pub struct DedupPlan {
    pub exact: Vec<Vec<String>>,
    pub blocking: Vec<Vec<KeyPart>>,
    pub compare: Vec<ComparisonPlan>,
    pub threshold: f64,
    pub max_block: usize,
    pub survivorship: BTreeMap<String, Survivorship>,
    pub default_survivorship: Survivorship,
    pub recency_field: Option<String>,
    pub u_sample_pairs: usize,
    pub seed: u64,
    /// The id field whose values are re-pointed in other tables (customers: customer_id).
    pub id_field: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CurrencyPlan {
    pub to: String,
    pub rates: BTreeMap<String, f64>,
    pub default: String,
}

#[derive(Debug, Clone, Default)]
pub struct TablePlan {
    pub fields: Vec<FieldPlan>,
    pub checks: Vec<CheckPlan>,
    pub currency: Option<CurrencyPlan>,
    pub dedup: Option<DedupPlan>,
    pub knn_k: usize,
    pub knn_features: Vec<String>,
    pub pseudonymize: Vec<String>,
}

impl TablePlan {
    /// Fields whose unreadable or invalid values are nulled rather than quarantined.
    pub fn null_invalid_fields(&self) -> Vec<String> {
        self.fields
            .iter()
            .filter(|f| f.on_invalid == OnInvalid::Null)
            .map(|f| f.field.clone())
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
            && self.checks.is_empty()
            && self.currency.is_none()
            && self.dedup.is_none()
            && self.pseudonymize.is_empty()
    }
}

/// The checked rules for every table, with the HMAC key loaded.
#[derive(Clone, Default)]
pub struct PrepPlan {
    pub customers: TablePlan,
    pub orders: TablePlan,
    pub events: TablePlan,
    pub(crate) key: Option<Vec<u8>>,
}

impl std::fmt::Debug for PrepPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrepPlan")
            .field("customers", &self.customers)
            .field("orders", &self.orders)
            .field("events", &self.events)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl PrepPlan {
    pub fn table(&self, kind: EntityKind) -> &TablePlan {
        match kind {
            EntityKind::Customers => &self.customers,
            EntityKind::Orders => &self.orders,
            EntityKind::Events => &self.events,
        }
    }
    /// Whether exports must mask raw text (PII columns are pseudonymized).
    pub fn pseudonymizes(&self) -> bool {
        self.key.is_some()
    }
}

/// The sources a config declares, by kind.
pub type Sources<'a> = BTreeMap<&'static str, (EntityKind, &'a SourceConfig)>;

fn parse_bound(
    ctx: &Ctx<'_>,
    span: std::ops::Range<usize>,
    field: &str,
    ty: FieldType,
    v: &toml::Value,
) -> Result<Bound, RuleError> {
    match (ty, v) {
        (FieldType::Int | FieldType::Float, toml::Value::Integer(i)) => Ok(Bound::Num(*i as f64)),
        (FieldType::Int | FieldType::Float, toml::Value::Float(x)) if x.is_finite() => {
            Ok(Bound::Num(*x))
        }
        (FieldType::Date | FieldType::Timestamp, toml::Value::String(s)) => {
            crate::value::parse_timestamp_micros(s, &[])
                .map(Bound::Micros)
                .ok_or_else(|| ctx.err(span, format!("field `{field}`: range bound `{s}` is not a date (use YYYY-MM-DD)")))
        }
        (FieldType::Date | FieldType::Timestamp, toml::Value::Datetime(d)) => {
            crate::value::parse_timestamp_micros(&d.to_string(), &[])
                .map(Bound::Micros)
                .ok_or_else(|| ctx.err(span, format!("field `{field}`: range bound `{d}` is not a date")))
        }
        (ty, v) => Err(ctx.err(
            span,
            format!("field `{field}` is {ty}: a range bound `{v}` does not fit it (numbers for numbers, \"YYYY-MM-DD\" for dates)"),
        )),
    }
}

fn parse_operand(
    token: &str,
    ctx: &Ctx<'_>,
    span: std::ops::Range<usize>,
    types: &BTreeMap<String, FieldType>,
    customer_types: Option<&BTreeMap<String, FieldType>>,
) -> Result<(Operand, Option<FieldType>), RuleError> {
    let t = token.trim();
    if let Some(s) = t
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| t.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
    {
        return Ok(match crate::value::parse_timestamp_micros(s, &[]) {
            Some(m) if s.len() >= 8 => (Operand::Micros(m), Some(FieldType::Timestamp)),
            _ => (Operand::Text(s.to_string()), Some(FieldType::String)),
        });
    }
    if let Ok(x) = t.parse::<f64>()
        && x.is_finite()
    {
        return Ok((Operand::Num(x), Some(FieldType::Float)));
    }
    if let Some(f) = t.strip_prefix("customers.") {
        let Some(ct) = customer_types else {
            return Err(ctx.err(
                span,
                format!("`{t}` refers to the customers source, which is not configured (or this table has no customer_id)"),
            ));
        };
        let ty = ct.get(f).ok_or_else(|| {
            ctx.err(
                span.clone(),
                format!("unknown customers field `{f}`; known: {}", join_keys(ct)),
            )
        })?;
        return Ok((Operand::Customer(f.to_string()), Some(*ty)));
    }
    let ty = types.get(t).ok_or_else(|| {
        ctx.err(
            span.clone(),
            format!("unknown field `{t}` in check; known: {}", join_keys(types)),
        )
    })?;
    Ok((Operand::Field(t.to_string()), Some(*ty)))
}

fn join_keys(m: &BTreeMap<String, FieldType>) -> String {
    m.keys().cloned().collect::<Vec<_>>().join(", ")
}

fn family(ty: FieldType) -> u8 {
    match ty {
        FieldType::Int | FieldType::Float => 0,
        FieldType::Date | FieldType::Timestamp => 1,
        FieldType::Bool => 2,
        FieldType::String | FieldType::Json => 3,
    }
}

fn compile_check(
    c: &CheckConfig,
    ctx: &Ctx<'_>,
    types: &BTreeMap<String, FieldType>,
    customer_types: Option<&BTreeMap<String, FieldType>>,
) -> Result<CheckPlan, RuleError> {
    let text = c.rule.get_ref();
    let span = c.rule.span();
    // Longest operators first so `<=` is not read as `<`.
    let ops = [
        ("<=", CmpOp::Le),
        (">=", CmpOp::Ge),
        ("==", CmpOp::Eq),
        ("!=", CmpOp::Ne),
        ("<", CmpOp::Lt),
        (">", CmpOp::Gt),
    ];
    let Some((pos, sym, op)) = ops
        .iter()
        .filter_map(|(s, op)| text.find(s).map(|p| (p, *s, *op)))
        .min_by_key(|(p, s, _)| (*p, std::cmp::Reverse(s.len())))
    else {
        return Err(ctx.err(
            span,
            format!("check `{text}` has no comparison: write `left op right` with op one of < <= > >= == !="),
        ));
    };
    let (l, r) = (&text[..pos], &text[pos + sym.len()..]);
    let (left, lt) = parse_operand(l, ctx, span.clone(), types, customer_types)?;
    let (right, rt) = parse_operand(r, ctx, span.clone(), types, customer_types)?;
    if matches!(
        left,
        Operand::Num(_) | Operand::Micros(_) | Operand::Text(_)
    ) && matches!(
        right,
        Operand::Num(_) | Operand::Micros(_) | Operand::Text(_)
    ) {
        return Err(ctx.err(span, format!("check `{text}` compares two constants")));
    }
    if let (Some(a), Some(b)) = (lt, rt)
        && family(a) != family(b)
    {
        return Err(ctx.err(span, format!("check `{text}` compares a {a} with a {b}")));
    }
    Ok(CheckPlan {
        text: text.trim().to_string(),
        left,
        op,
        right,
        on_invalid: c.on_invalid,
    })
}

fn compile_key_part(
    part: &str,
    ctx: &Ctx<'_>,
    span: std::ops::Range<usize>,
    types: &BTreeMap<String, FieldType>,
) -> Result<KeyPart, RuleError> {
    let (fields, transform) = match part.split_once(':') {
        Some((f, t)) => (f, t),
        None => (part, ""),
    };
    let transform = match transform {
        "" => Transform::Value,
        "soundex" => Transform::Soundex,
        t if t.starts_with("prefix") => match t["prefix".len()..].parse::<usize>() {
            Ok(n) if n > 0 => Transform::Prefix(n),
            _ => {
                return Err(ctx.err(
                    span,
                    format!("blocking key `{part}`: `{t}` needs a length, e.g. prefix3"),
                ));
            }
        },
        t => {
            return Err(ctx.err(
                span,
                format!("blocking key `{part}`: unknown transform `{t}` (soundex, prefixN)"),
            ));
        }
    };
    let fields: Vec<String> = fields.split('+').map(|s| s.trim().to_string()).collect();
    if fields.len() > 2 {
        return Err(ctx.err(span, format!("blocking key `{part}`: at most two fields")));
    }
    for f in &fields {
        if !types.contains_key(f) {
            return Err(ctx.err(
                span,
                format!(
                    "blocking key `{part}`: unknown field `{f}`; known: {}",
                    join_keys(types)
                ),
            ));
        }
    }
    Ok(KeyPart { fields, transform })
}

fn compile_dedup(
    d: &Spanned<DedupConfig>,
    kind: EntityKind,
    ctx: &Ctx<'_>,
    types: &BTreeMap<String, FieldType>,
) -> Result<DedupPlan, RuleError> {
    let span = d.span();
    let d = d.get_ref();
    let known = |f: &str, what: &str| -> Result<(), RuleError> {
        if types.contains_key(f) {
            Ok(())
        } else {
            Err(ctx.err(
                span.clone(),
                format!(
                    "[prep.{kind}.dedup] {what}: unknown field `{f}`; known: {}",
                    join_keys(types)
                ),
            ))
        }
    };
    let mut exact = Vec::new();
    for k in &d.exact {
        let fields = k.fields();
        for f in &fields {
            known(f, "exact")?;
        }
        exact.push(fields);
    }
    let mut blocking = Vec::new();
    for rule in &d.blocking {
        if rule.is_empty() {
            return Err(ctx.err(
                span.clone(),
                format!("[prep.{kind}.dedup] blocking: an empty rule would compare every pair"),
            ));
        }
        blocking.push(
            rule.iter()
                .map(|p| compile_key_part(p, ctx, span.clone(), types))
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    if !blocking.is_empty() && d.compare.is_empty() {
        return Err(ctx.err(
            span.clone(),
            format!("[prep.{kind}.dedup] has blocking rules but no `compare` list"),
        ));
    }
    if blocking.is_empty() && !d.compare.is_empty() {
        return Err(ctx.err(span.clone(), format!("[prep.{kind}.dedup] has comparisons but no `blocking` rules: without blocking every pair would be compared")));
    }
    let mut compare = Vec::new();
    for c in &d.compare {
        if c.fields.is_empty() || c.fields.len() > 2 {
            return Err(ctx.err(span.clone(), format!("[prep.{kind}.dedup] compare: give one field, or two to compare in either order (got {})", c.fields.len())));
        }
        for f in &c.fields {
            known(f, "compare")?;
            let ty = types[f.as_str()];
            let ok = match c.method {
                Method::Exact => true,
                Method::JaroWinkler | Method::Levenshtein => ty == FieldType::String,
                Method::Date => matches!(ty, FieldType::Date | FieldType::Timestamp),
                Method::Numeric => matches!(ty, FieldType::Int | FieldType::Float),
            };
            if !ok {
                return Err(ctx.err(
                    span.clone(),
                    format!(
                        "[prep.{kind}.dedup] compare: method {:?} does not apply to `{f}`, a {ty}",
                        c.method
                    ),
                ));
            }
        }
        for probs in [c.m, c.u].into_iter().flatten() {
            if probs.iter().any(|p| !(0.0..=1.0).contains(p))
                || (probs.iter().sum::<f64>() - 1.0).abs() > 1e-6
            {
                return Err(ctx.err(span.clone(), format!("[prep.{kind}.dedup] compare `{}`: m and u are probabilities of [exact, similar, partial, different] and must sum to 1", c.fields.join("+"))));
            }
        }
        let similar = c.similar.unwrap_or(match c.method {
            Method::Levenshtein => 0.8,
            _ => 0.88,
        });
        let partial = c.partial.unwrap_or(match c.method {
            Method::Levenshtein => 0.5,
            _ => 0.7,
        });
        if !(0.0..=1.0).contains(&similar) || !(0.0..=similar).contains(&partial) {
            return Err(ctx.err(
                span.clone(),
                format!(
                    "[prep.{kind}.dedup] compare `{}`: need 0 ≤ partial ≤ similar ≤ 1",
                    c.fields.join("+")
                ),
            ));
        }
        compare.push(ComparisonPlan {
            name: c.fields.join("+"),
            fields: c.fields.clone(),
            method: c.method,
            similar,
            partial,
            within: c
                .within
                .unwrap_or(match c.method {
                    Method::Date => 3.0,
                    _ => 1.0,
                })
                .abs(),
            m: c.m,
            u: c.u,
        });
    }
    if exact.is_empty() && blocking.is_empty() {
        return Err(ctx.err(
            span.clone(),
            format!("[prep.{kind}.dedup] needs exact keys, or blocking rules with comparisons"),
        ));
    }
    if blocking.len() > 255 {
        return Err(ctx.err(
            span.clone(),
            format!("[prep.{kind}.dedup] at most 255 blocking rules"),
        ));
    }
    if compare.len() > 16 {
        return Err(ctx.err(
            span.clone(),
            format!("[prep.{kind}.dedup] at most 16 comparisons"),
        ));
    }
    if !(0.0 < d.threshold && d.threshold < 1.0) {
        return Err(ctx.err(
            span.clone(),
            format!(
                "[prep.{kind}.dedup] threshold is a probability in (0, 1), got {}",
                d.threshold
            ),
        ));
    }
    let mut survivorship = BTreeMap::new();
    let mut default_survivorship = Survivorship::MostComplete;
    for (f, s) in &d.survivorship {
        if f == "default" {
            default_survivorship = *s;
        } else {
            known(f, "survivorship")?;
            survivorship.insert(f.clone(), *s);
        }
    }
    let uses_recent = default_survivorship == Survivorship::MostRecent
        || survivorship
            .values()
            .any(|s| *s == Survivorship::MostRecent);
    if let Some(r) = &d.recency_field {
        known(r, "recency_field")?;
    } else if uses_recent {
        return Err(ctx.err(
            span.clone(),
            format!("[prep.{kind}.dedup] `most_recent` survivorship needs `recency_field`"),
        ));
    }
    let id_field = match kind {
        EntityKind::Customers => Some("customer_id".to_string()),
        EntityKind::Orders => Some("order_id".to_string()),
        EntityKind::Events => Some("message_id".to_string()),
    }
    .filter(|f| types.contains_key(f));
    Ok(DedupPlan {
        exact,
        blocking,
        compare,
        threshold: d.threshold,
        max_block: d.max_block.max(2),
        survivorship,
        default_survivorship,
        recency_field: d.recency_field.clone(),
        u_sample_pairs: d.u_sample_pairs.max(1000),
        seed: d.seed,
        id_field,
    })
}

fn compile_field(
    name: &Spanned<String>,
    rules: &FieldRules,
    kind: EntityKind,
    ctx: &Ctx<'_>,
    types: &BTreeMap<String, FieldType>,
) -> Result<FieldPlan, RuleError> {
    let span = name.span();
    let field = name.get_ref().clone();
    let Some(&ty) = types.get(&field) else {
        return Err(ctx.err(
            span,
            format!("[prep.{kind}.fields.{field}]: `{field}` is not a field of the {kind} source; known: {}", join_keys(types)),
        ));
    };
    let text_only = |what: &str| -> Result<(), RuleError> {
        if ty == FieldType::String {
            Ok(())
        } else {
            Err(ctx.err(
                span.clone(),
                format!(
                    "[prep.{kind}.fields.{field}]: {what} applies to text fields; `{field}` is {ty}"
                ),
            ))
        }
    };
    if !rules.normalize.is_empty() {
        text_only("normalize")?;
    }
    if !rules.map.is_empty() {
        text_only("map")?;
    }
    if rules.format.is_some() {
        text_only("format")?;
    }
    if rules.allowed.is_some() && !matches!(ty, FieldType::String | FieldType::Int) {
        return Err(ctx.err(span, format!("[prep.{kind}.fields.{field}]: allowed values apply to text and integer fields; `{field}` is {ty}")));
    }
    let regex = match &rules.regex {
        None => None,
        Some(r) => {
            text_only("regex")?;
            Some(regex::Regex::new(r.get_ref()).map_err(|e| {
                ctx.err(
                    r.span(),
                    format!("[prep.{kind}.fields.{field}]: regex does not compile: {e}"),
                )
            })?)
        }
    };
    let phone_region = match &rules.phone_region {
        None => phonenumber::country::Id::US,
        Some(r) => r.get_ref().to_ascii_uppercase().parse().map_err(|_| {
            ctx.err(r.span(), format!("[prep.{kind}.fields.{field}]: unknown phone_region `{}` (an ISO 3166 code such as \"US\" or \"GB\")", r.get_ref()))
        })?,
    };
    let range = match &rules.range {
        None => None,
        Some(r) => {
            let [lo, hi] = r.get_ref().as_slice() else {
                return Err(ctx.err(
                    r.span(),
                    format!("[prep.{kind}.fields.{field}]: range is [low, high]"),
                ));
            };
            let lo = parse_bound(ctx, r.span(), &field, ty, lo)?;
            let hi = parse_bound(ctx, r.span(), &field, ty, hi)?;
            let ordered = match (&lo, &hi) {
                (Bound::Num(a), Bound::Num(b)) => a <= b,
                (Bound::Micros(a), Bound::Micros(b)) => a <= b,
                _ => false,
            };
            if !ordered {
                return Err(ctx.err(
                    r.span(),
                    format!("[prep.{kind}.fields.{field}]: range low is above high"),
                ));
            }
            Some((lo, hi))
        }
    };
    let impute = match &rules.impute {
        None => None,
        Some(i) => {
            let ok = match i.get_ref() {
                Impute::Mean | Impute::Median | Impute::Knn => {
                    matches!(ty, FieldType::Int | FieldType::Float)
                }
                Impute::Mode => true,
                Impute::Constant(v) => matches!(
                    (ty, v),
                    (FieldType::Int, toml::Value::Integer(_))
                        | (
                            FieldType::Float,
                            toml::Value::Integer(_) | toml::Value::Float(_)
                        )
                        | (FieldType::String, toml::Value::String(_))
                        | (FieldType::Bool, toml::Value::Boolean(_))
                ),
            };
            if !ok {
                return Err(ctx.err(
                    i.span(),
                    format!(
                        "[prep.{kind}.fields.{field}]: impute {:?} does not fit a {ty} field",
                        i.get_ref()
                    ),
                ));
            }
            Some(i.get_ref().clone())
        }
    };
    Ok(FieldPlan {
        field,
        ty,
        normalize: rules.normalize.clone(),
        map: rules.map.clone(),
        phone_region,
        required: rules.required,
        format: rules.format,
        regex,
        range,
        allowed: rules.allowed.clone(),
        on_invalid: rules.on_invalid,
        impute,
        missing_indicator: rules.missing_indicator,
    })
}

impl PrepConfig {
    /// Checks every rule against the sources' fields and loads the HMAC key, without
    /// reading any data. `text` is the config text (for line numbers), `base_dir` anchors
    /// `key_file`.
    pub fn compile(
        &self,
        sources: &Sources<'_>,
        text: &str,
        base_dir: &Path,
    ) -> Result<PrepPlan, RuleError> {
        let ctx = Ctx { text };
        let mut types: BTreeMap<&str, BTreeMap<String, FieldType>> = BTreeMap::new();
        for (name, (kind, source)) in sources {
            let t = field_types(*kind, source).map_err(|e| RuleError {
                line: None,
                message: e.to_string(),
            })?;
            types.insert(name, t);
        }
        let mut plan = PrepPlan::default();
        for (kind, table) in [
            (EntityKind::Customers, &self.customers),
            (EntityKind::Orders, &self.orders),
            (EntityKind::Events, &self.events),
        ] {
            let configured = !table.fields.is_empty()
                || !table.checks.is_empty()
                || table.currency.is_some()
                || table.dedup.is_some();
            let Some(t) = types.get(kind.table_name()) else {
                if configured {
                    return Err(RuleError {
                        line: None,
                        message: format!(
                            "[prep.{kind}] has rules but there is no [sources.{kind}]"
                        ),
                    });
                }
                continue;
            };
            let customer_types = types
                .get("customers")
                .filter(|_| kind != EntityKind::Customers && t.contains_key("customer_id"));
            let out = match kind {
                EntityKind::Customers => &mut plan.customers,
                EntityKind::Orders => &mut plan.orders,
                EntityKind::Events => &mut plan.events,
            };
            for (name, rules) in &table.fields {
                out.fields.push(compile_field(name, rules, kind, &ctx, t)?);
            }
            for c in &table.checks {
                out.checks.push(compile_check(c, &ctx, t, customer_types)?);
            }
            if let Some(c) = &table.currency {
                let span = c.span();
                let c = c.get_ref();
                for f in ["amount", "currency"] {
                    if !t.contains_key(f) {
                        return Err(
                            ctx.err(span, format!("[prep.{kind}.currency] needs an `{f}` field"))
                        );
                    }
                }
                if let Some((cur, r)) = c.rates.iter().find(|(_, r)| !(r.is_finite() && **r > 0.0))
                {
                    return Err(ctx.err(span, format!("[prep.{kind}.currency] rate for {cur} must be a positive number, got {r}")));
                }
                let mut rates: BTreeMap<String, f64> = c
                    .rates
                    .iter()
                    .map(|(k, v)| (k.to_ascii_uppercase(), *v))
                    .collect();
                rates.insert(c.to.to_ascii_uppercase(), 1.0);
                out.currency = Some(CurrencyPlan {
                    to: c.to.to_ascii_uppercase(),
                    rates,
                    default: c
                        .default
                        .clone()
                        .unwrap_or_else(|| c.to.clone())
                        .to_ascii_uppercase(),
                });
            }
            if let Some(d) = &table.dedup {
                out.dedup = Some(compile_dedup(d, kind, &ctx, t)?);
            }
            out.knn_k = table.knn.k;
            if table.knn.k == 0 {
                return Err(RuleError {
                    line: None,
                    message: format!("[prep.{kind}.knn] k must be at least 1"),
                });
            }
            let knn_features = if table.knn.features.is_empty() {
                out.fields
                    .iter()
                    .filter(|f| f.impute == Some(Impute::Knn))
                    .map(|f| f.field.clone())
                    .collect()
            } else {
                table.knn.features.clone()
            };
            for f in &knn_features {
                match t.get(f) {
                    Some(FieldType::Int | FieldType::Float) => {}
                    _ => {
                        return Err(RuleError {
                            line: None,
                            message: format!(
                                "[prep.{kind}.knn] features: `{f}` is not a numeric field of {kind}"
                            ),
                        });
                    }
                }
            }
            out.knn_features = knn_features;
        }
        if let Some(p) = &self.pseudonymize {
            let span = p.span();
            let p = p.get_ref();
            let key = match (&p.key_env, &p.key_file) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(ctx.err(span, "[prep.pseudonymize] needs exactly one of key_env (an environment variable) or key_file; the key itself never goes in the config"));
                }
                (Some(var), None) => match std::env::var(var) {
                    Ok(k) if !k.trim().is_empty() => k.trim().as_bytes().to_vec(),
                    _ => {
                        return Err(ctx.err(span, format!("[prep.pseudonymize] the HMAC key variable {var} is not set (or empty)")));
                    }
                },
                (None, Some(file)) => {
                    let path = if file.is_absolute() {
                        file.clone()
                    } else {
                        base_dir.join(file)
                    };
                    match std::fs::read(&path) {
                        Ok(k) if !k.trim_ascii().is_empty() => k.trim_ascii().to_vec(),
                        Ok(_) => {
                            return Err(ctx.err(
                                span,
                                format!("[prep.pseudonymize] key file {} is empty", path.display()),
                            ));
                        }
                        Err(e) => {
                            return Err(ctx.err(
                                span,
                                format!(
                                    "[prep.pseudonymize] cannot read key file {}: {e}",
                                    path.display()
                                ),
                            ));
                        }
                    }
                }
            };
            if key.len() < 16 {
                return Err(ctx.err(span, "[prep.pseudonymize] the HMAC key is shorter than 16 bytes: use a long random key"));
            }
            for (kind, fields) in [
                (EntityKind::Customers, &p.customers),
                (EntityKind::Orders, &p.orders),
                (EntityKind::Events, &p.events),
            ] {
                let Some(t) = types.get(kind.table_name()) else {
                    if !fields.is_empty() {
                        return Err(ctx.err(
                            span,
                            format!("[prep.pseudonymize] {kind}: there is no [sources.{kind}]"),
                        ));
                    }
                    continue;
                };
                for f in fields {
                    if t.get(f) != Some(&FieldType::String) {
                        return Err(ctx.err(
                            span,
                            format!(
                                "[prep.pseudonymize] {kind}: `{f}` is not a text field of {kind}"
                            ),
                        ));
                    }
                }
                match kind {
                    EntityKind::Customers => plan.customers.pseudonymize = fields.clone(),
                    EntityKind::Orders => plan.orders.pseudonymize = fields.clone(),
                    EntityKind::Events => plan.events.pseudonymize = fields.clone(),
                }
            }
            plan.key = Some(key);
        }
        Ok(plan)
    }
}
