//! Conservation through every preparation step, on random dirty tables.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use strata_core::EntityKind;
use strata_prep::{ColumnRef, ColumnSpec, PrepConfig, SourceConfig, load_source, prepare};

const RULES: &str = r#"
[customers.fields.email]
normalize = ["email"]
format = "email"
on_invalid = "null"

[customers.fields.age]
range = [18, 120]
on_invalid = "quarantine"
impute = "median"

[customers.fields.first_name]
normalize = ["trim", "title"]
required = true

[customers.dedup]
exact = ["email"]
blocking = [["first_name:prefix2"]]
compare = [
  { fields = ["first_name"], method = "jaro_winkler" },
  { fields = ["age"], method = "numeric", within = 1 },
]
threshold = 0.5

[[orders.checks]]
rule = "timestamp >= customers.signup_date"

[orders.currency]
to = "USD"
rates = { EUR = 1.1 }
"#;

fn cell(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_row_is_kept_quarantined_or_merged(
        customers in prop::collection::vec(
            (0u8..6, prop::sample::select(vec!["ann", " Ann ", "anna", "bob", "", "bo"]),
             prop::sample::select(vec!["30", "31", "150", "x", "", "45"]),
             prop::sample::select(vec!["2024-01-01", "2024-02-30", "", "03/04/2024", "2024-03-01"])),
            1..40),
        orders in prop::collection::vec(
            (0u8..8, prop::sample::select(vec!["2023-12-01", "2024-06-01", "bad"]),
             prop::sample::select(vec!["1.5", "N/A", "10"]),
             prop::sample::select(vec!["USD", "EUR", "XYZ", ""])),
            1..60),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = String::from("id,email,first_name,age,signup\n");
        for (i, (e, name, age, date)) in customers.iter().enumerate() {
            let email = match e { 0 => "a@x.com", 1 => " A@X.COM ", 2 => "bad", 3 => "", _ => "b@y.org" };
            c.push_str(&format!("c{i},{},{},{age},{date}\n", cell(email), cell(name)));
        }
        let mut o = String::from("customer_id,ts,amount,currency\n");
        for (cust, ts, amount, cur) in &orders {
            o.push_str(&format!("c{cust},{ts},{amount},{cur}\n"));
        }
        std::fs::write(dir.path().join("c.csv"), c).unwrap();
        std::fs::write(dir.path().join("o.csv"), o).unwrap();
        let col = |n: &str| ColumnSpec::plain(ColumnRef::Name(n.into()));
        let mut cs = SourceConfig::new(dir.path().join("c.csv"));
        cs.columns = BTreeMap::from([
            ("customer_id".to_string(), col("id")),
            ("email".to_string(), col("email")),
            ("first_name".to_string(), col("first_name")),
            ("age".to_string(), ColumnSpec { ty: Some(strata_core::FieldType::Int), ..col("age") }),
            ("signup_date".to_string(), col("signup")),
        ]);
        let mut os = SourceConfig::new(dir.path().join("o.csv"));
        os.columns = BTreeMap::from([
            ("customer_id".to_string(), col("customer_id")),
            ("timestamp".to_string(), col("ts")),
            ("amount".to_string(), col("amount")),
            ("currency".to_string(), col("currency")),
        ]);
        let config: PrepConfig = toml::from_str(RULES).unwrap();
        let sources = BTreeMap::from([
            ("customers", (EntityKind::Customers, &cs)),
            ("orders", (EntityKind::Orders, &os)),
        ]);
        let plan = config.compile(&sources, RULES, Path::new(".")).unwrap();
        cs.null_invalid = plan.customers.null_invalid_fields();
        let loaded = vec![
            load_source(EntityKind::Orders, &os).unwrap(),
            load_source(EntityKind::Customers, &cs).unwrap(),
        ];
        let prepared = prepare(loaded, &plan).unwrap();
        prop_assert_eq!(prepared.sources[0].kind, EntityKind::Orders);
        for p in &prepared.sources {
            prop_assert_eq!(
                p.rows_read,
                p.batch.num_rows() as u64 + p.quarantined.len() as u64 + p.rows_merged,
                "{}", p.kind
            );
            prop_assert_eq!(p.quality.rows_read, p.rows_read);
            prop_assert_eq!(p.quality.rows_kept + p.quality.rows_quarantined + p.quality.rows_merged, p.rows_read);
            // Every quarantined row says where it was and why.
            for q in &p.quarantined {
                prop_assert!(q.location.line >= 2 && !q.reason.is_empty(), "{:?}", q);
            }
        }
        let customers = &prepared.sources[1];
        let merged_in_clusters: usize = customers.merges.iter().map(|c| c.merged.len()).sum();
        prop_assert_eq!(merged_in_clusters as u64, customers.rows_merged);
        // Survivors keep unique emails: exact-key dedup leaves no two rows with one address.
        use arrow::array::AsArray;
        let emails = customers.batch.column_by_name("email").unwrap().as_string::<i32>();
        let mut seen = std::collections::BTreeSet::new();
        for e in emails.iter().flatten() {
            prop_assert!(seen.insert(e.to_string()), "duplicate email {e} survived");
        }
    }
}

#[test]
fn survivorship_rules_pick_each_field_from_the_right_record() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.csv"),
        "id,email,name,city,spend,updated\n\
         a,ann@x.com,Ann,,10,2024-01-01\n\
         b,other@y.org,Bob,Paris,5,2024-01-01\n\
         c,ANN@X.COM,Ann Lee,Berlin,30,2024-03-01\n\
         d,ann@x.com,,Rome,20,2024-02-01\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("o.csv"),
        "customer_id,timestamp,amount\nc,2024-05-01,1\n",
    )
    .unwrap();
    let rules = r#"
[customers.fields.email]
normalize = ["email"]

[customers.dedup]
exact = ["email"]
recency_field = "updated"
survivorship = { default = "first", name = "longest", city = "most_recent", spend = "max", updated = "min" }
"#;
    let col = |n: &str| ColumnSpec::plain(ColumnRef::Name(n.into()));
    let mut cs = SourceConfig::new(dir.path().join("c.csv"));
    cs.columns = BTreeMap::from([
        ("customer_id".to_string(), col("id")),
        ("email".to_string(), col("email")),
        ("name".to_string(), col("name")),
        ("city".to_string(), col("city")),
        (
            "spend".to_string(),
            ColumnSpec {
                ty: Some(strata_core::FieldType::Float),
                ..col("spend")
            },
        ),
        (
            "updated".to_string(),
            ColumnSpec {
                ty: Some(strata_core::FieldType::Date),
                ..col("updated")
            },
        ),
    ]);
    let os = SourceConfig::new(dir.path().join("o.csv"));
    let config: PrepConfig = toml::from_str(rules).unwrap();
    let sources = BTreeMap::from([
        ("customers", (EntityKind::Customers, &cs)),
        ("orders", (EntityKind::Orders, &os)),
    ]);
    let plan = config.compile(&sources, rules, Path::new(".")).unwrap();
    let loaded = vec![
        load_source(EntityKind::Orders, &os).unwrap(),
        load_source(EntityKind::Customers, &cs).unwrap(),
    ];
    let prepared = prepare(loaded, &plan).unwrap();
    let customers = &prepared.sources[1];
    use arrow::array::AsArray;
    let text = |f: &str, i: usize| {
        let c = customers
            .batch
            .column_by_name(f)
            .unwrap()
            .as_string::<i32>()
            .clone();
        c.is_valid(i).then(|| c.value(i).to_string())
    };
    use arrow::array::Array;
    assert_eq!(customers.batch.num_rows(), 2);
    assert_eq!(customers.rows_merged, 2);
    // a survives (first in the file) and keeps its id; c and d merge into it.
    assert_eq!(text("customer_id", 0).as_deref(), Some("a"));
    assert_eq!(text("name", 0).as_deref(), Some("Ann Lee"), "longest");
    assert_eq!(
        text("city", 0).as_deref(),
        Some("Berlin"),
        "from the most recently updated record"
    );
    let spend = customers
        .batch
        .column_by_name("spend")
        .unwrap()
        .as_primitive::<arrow::datatypes::Float64Type>()
        .value(0);
    assert_eq!(spend, 30.0, "max");
    let updated = customers
        .batch
        .column_by_name("updated")
        .unwrap()
        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
        .value(0);
    assert_eq!(
        updated,
        strata_prep::parse_timestamp_micros("2024-01-01", &[]).unwrap(),
        "min"
    );
    // The explanation names the key and both values.
    let cluster = &customers.merges[0];
    assert_eq!(
        (cluster.survivor.as_str(), cluster.merged.clone()),
        ("a", vec!["c".to_string(), "d".to_string()])
    );
    assert!(cluster.edges.iter().all(|e| e.rule == "exact:email"));
    // The order of c now belongs to a.
    let orders = &prepared.sources[0];
    assert_eq!(
        orders
            .batch
            .column_by_name("customer_id")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "a"
    );
}
