//! The preparation stage through the engine: rules, deduplication against known truth,
//! conservation, pseudonymization, and config errors found before any data is read.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use std::collections::{BTreeSet, HashMap};
use strata_engine::{Config, NoProgress};

mod common;
use common::{config_error, generated_config as generated, read_parquet};

fn pair(a: &str, b: &str) -> (String, String) {
    if a < b {
        (a.into(), b.into())
    } else {
        (b.into(), a.into())
    }
}

/// Fixed seed; the default threshold of the generated config.
#[test]
fn fuzzy_dedup_finds_the_injected_duplicates_and_explains_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = generated(dir.path(), 20_000, 3);
    let out = dir.path().join("out");
    let summary = strata_engine::run(&config, &out, &NoProgress).unwrap();

    let truth_text = std::fs::read_to_string(dir.path().join("truth.csv")).unwrap();
    let truth: BTreeSet<(String, String)> = truth_text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (!f[2].is_empty()).then(|| pair(f[0], f[2]))
        })
        .collect();
    assert!(truth.len() > 300, "the generator injects duplicates");

    let merges = std::fs::read_to_string(out.join("merges.jsonl")).unwrap();
    let mut predicted = BTreeSet::new();
    let mut fuzzy_edges = 0;
    for line in merges.lines() {
        let c: serde_json::Value = serde_json::from_str(line).unwrap();
        let mut ids = vec![c["survivor"].as_str().unwrap().to_string()];
        ids.extend(
            c["merged"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string()),
        );
        for i in 0..ids.len() {
            for j in i + 1..ids.len() {
                predicted.insert(pair(&ids[i], &ids[j]));
            }
        }
        // Every merge is explained: the edges join all members, each with its evidence.
        let edges = c["edges"].as_array().unwrap();
        assert_eq!(edges.len(), ids.len() - 1, "{line}");
        for e in edges {
            let evidence = e["evidence"].as_array().unwrap();
            assert!(!evidence.is_empty(), "{line}");
            if e["rule"] == "fuzzy" {
                fuzzy_edges += 1;
                assert!(e["probability"].as_f64().unwrap() >= 0.9, "{line}");
                assert_eq!(evidence.len(), 7, "one entry per comparison: {line}");
                let total: f64 = evidence.iter().map(|f| f["weight"].as_f64().unwrap()).sum();
                assert!(
                    (total - e["weight"].as_f64().unwrap()).abs() < 1e-9,
                    "{line}"
                );
            }
        }
    }
    assert!(fuzzy_edges > 50, "{fuzzy_edges} fuzzy merges");
    let tp = predicted.intersection(&truth).count() as f64;
    let precision = tp / predicted.len() as f64;
    let recall = tp / truth.len() as f64;
    assert!(
        precision >= 0.95 && recall >= 0.90,
        "precision {precision:.4}, recall {recall:.4} ({} predicted, {} true)",
        predicted.len(),
        truth.len()
    );

    // Conservation, per source, in the run summary and in quality.json.
    for s in &summary.sources {
        assert_eq!(s.rows_read, s.rows_kept + s.quarantined + s.merged, "{s:?}");
    }
    let quality: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("quality.json")).unwrap()).unwrap();
    for q in quality.as_array().unwrap() {
        let n = |k: &str| q[k].as_u64().unwrap();
        assert_eq!(
            n("rows_read"),
            n("rows_kept") + n("rows_quarantined") + n("rows_merged"),
            "{q}"
        );
    }
    let customers = quality
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["table"] == "customers")
        .unwrap();
    assert_eq!(
        customers["rows_merged"],
        customers["dedup"]["records_merged"]
    );
    // "unknown" ages were nulled (not quarantined) and imputed.
    let age = customers["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "age")
        .unwrap();
    assert!(age["imputed"].as_u64().unwrap() > 100, "{age}");
    assert!(age["invalid"].as_u64().unwrap() > 10, "{age}");
    // The report's quality table has the customers' fields and a deduplication section.
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    for needle in [
        "<td>customers</td><td>age</td>",
        "<td>customers</td><td>email</td>",
        "Deduplication of customers",
    ] {
        assert!(report.contains(needle), "report lacks {needle}");
    }
}

#[test]
fn rules_quarantine_or_null_with_rule_field_and_value() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("customers.csv"),
        "id,email,phone,age,state,signup\n\
         c1, Ann@Example.COM ,(415) 555-2671,34,NY,2024-01-05\n\
         c2,not-an-email,415 555 2672,150,CA,05/01/2024\n\
         c3,cat@example.com,12,28,ZZ,2024-03-01\n\
         c4,dan@example.com,,,ny,2024-02-01\n\
         c5,eve@example.com,+44 20 7946 0958,41,CA,03/04/2024\n\
         c6,fay@example.com,,30,CA,2024-13-01\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("orders.csv"),
        "customer_id,ts,amount,currency\n\
         c1,2024-01-10,10.00,USD\n\
         c1,2023-12-31,5.00,USD\n\
         c4,2024-03-01,10.00,EUR\n\
         c4,2024-03-02,10.00,XYZ\n\
         c5,2024-06-01,100,\n",
    )
    .unwrap();
    let text = r#"
[sources.customers]
path = "customers.csv"
[sources.customers.columns]
customer_id = "id"
email = "email"
phone = "phone"
age = { column = "age", type = "int" }
state = "state"
signup_date = { column = "signup", date_order = "dmy" }

[sources.orders]
path = "orders.csv"
[sources.orders.columns]
customer_id = "customer_id"
timestamp = "ts"
amount = "amount"
currency = "currency"

[prep.customers.fields.email]
normalize = ["email"]
format = "email"
on_invalid = "null"

[prep.customers.fields.phone]
normalize = ["phone"]
phone_region = "US"
on_invalid = "null"

[prep.customers.fields.age]
range = [18, 120]
on_invalid = "null"
impute = "median"
missing_indicator = true

[prep.customers.fields.state]
normalize = ["uppercase"]
map = { NY = "New York", CA = "California" }
allowed = ["New York", "California"]

[prep.orders.currency]
to = "USD"
rates = { EUR = 1.10 }

[[prep.orders.checks]]
rule = "timestamp >= customers.signup_date"
"#;
    std::fs::write(dir.path().join("strata.toml"), text).unwrap();
    let config = Config::load(&dir.path().join("strata.toml")).unwrap();
    let out = dir.path().join("prep");
    let summary = strata_engine::prep(&config, &out, &NoProgress).unwrap();
    let by_table: HashMap<&str, _> = summary
        .sources
        .iter()
        .map(|s| (s.table.as_str(), s))
        .collect();
    // c3: state ZZ not allowed → quarantined by the rule; c6: its date is unreadable →
    // quarantined at load.
    assert_eq!(by_table["customers"].rows_read, 6);
    assert_eq!(
        by_table["customers"].quarantined, 2,
        "{:?}",
        by_table["customers"]
    );
    assert_eq!(by_table["orders"].rows_read, 5);
    // c1's order before signup, and the XYZ order, are quarantined.
    assert_eq!(
        by_table["orders"].quarantined, 2,
        "{:?}",
        by_table["orders"]
    );

    let quarantine = std::fs::read_to_string(out.join("quarantine.csv")).unwrap();
    assert!(quarantine.contains("no rate for `XYZ`"), "{quarantine}");
    assert!(
        quarantine.contains(
            "check `timestamp >= customers.signup_date` fails: 2023-12-31 >= 2024-01-05 is false"
        ),
        "{quarantine}"
    );
    assert!(quarantine.contains("2024-13-01"), "{quarantine}");
    // The allowed-values failure names rule, field and value, with the file line.
    let zz = quarantine
        .lines()
        .find(|l| l.contains("ZZ") && l.contains("allowed"))
        .unwrap_or_else(|| panic!("{quarantine}"));
    assert!(zz.contains("customers.csv,4,state,"), "{zz}");
    assert!(
        zz.contains("rule allowed: `ZZ` is not one of New York, California"),
        "{zz}"
    );

    let batch = read_parquet(&out.join("customers.parquet"));
    use arrow::array::{Array, AsArray};
    let col = |n: &str| batch.column_by_name(n).unwrap().clone();
    let ids = col("customer_id");
    let ids: Vec<&str> = ids.as_string::<i32>().iter().map(|v| v.unwrap()).collect();
    // c2 stays: its invalid email and age are nulled (and flagged), not the row.
    assert_eq!(ids, ["c1", "c2", "c4", "c5"]);
    let email = col("email");
    let email = email.as_string::<i32>();
    assert_eq!(email.value(0), "ann@example.com");
    assert!(email.is_null(1));
    let phone = col("phone");
    let phone = phone.as_string::<i32>();
    assert_eq!(phone.value(0), "+14155552671");
    assert_eq!(phone.value(1), "+14155552672");
    assert_eq!(phone.value(3), "+442079460958");
    let state = col("state");
    assert_eq!(state.as_string::<i32>().value(2), "New York");
    let age = col("age");
    let age = age.as_primitive::<arrow::datatypes::Int64Type>();
    assert_eq!(age.null_count(), 0);
    assert_eq!(
        (age.value(1), age.value(2)),
        (38, 38),
        "median of 34 and 41, rounded"
    );
    let missing = col("age_missing");
    let missing = missing.as_boolean();
    assert!(!missing.value(0) && missing.value(1) && missing.value(2) && !missing.value(3));
    let signup = col("signup_date");
    let signup = signup.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
    let day = |i: usize| {
        chrono::DateTime::from_timestamp_micros(signup.value(i))
            .unwrap()
            .format("%Y-%m-%d")
            .to_string()
    };
    // Under date_order = "dmy", 05/01/2024 is 5 January and 03/04/2024 is 3 April.
    assert_eq!(
        (day(1), day(3)),
        ("2024-01-05".to_string(), "2024-04-03".to_string())
    );
    let orders = read_parquet(&out.join("orders.parquet"));
    let amounts: Vec<f64> = orders
        .column_by_name("amount")
        .unwrap()
        .as_primitive::<arrow::datatypes::Float64Type>()
        .values()
        .to_vec();
    assert_eq!(amounts.len(), 3);
    assert!(
        (amounts[1] - 11.0).abs() < 1e-9,
        "EUR 10 at 1.10: {amounts:?}"
    );
    assert!(
        (amounts[2] - 100.0).abs() < 1e-9,
        "empty currency is the target: {amounts:?}"
    );
}

#[test]
fn c2_is_kept_with_nulled_values_and_flags() {
    // Separate from the test above to keep each assertion's reason plain: a row whose
    // invalid values are nulled stays, flagged.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("customers.csv"),
        "id,email,age\nc1,ann@example.com,30\nc2,not-an-email,150\nc3,cat@example.com,unknown\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("orders.csv"),
        "customer_id,timestamp,amount\nc1,2024-01-01,1\n",
    )
    .unwrap();
    let text = r#"
[sources.orders]
path = "orders.csv"
[sources.customers]
path = "customers.csv"
[sources.customers.columns]
customer_id = "id"
email = "email"
age = { column = "age", type = "int" }
[prep.customers.fields.email]
format = "email"
on_invalid = "null"
[prep.customers.fields.age]
range = [18, 120]
on_invalid = "null"
"#;
    std::fs::write(dir.path().join("strata.toml"), text).unwrap();
    let config = Config::load(&dir.path().join("strata.toml")).unwrap();
    let out = dir.path().join("prep");
    let summary = strata_engine::prep(&config, &out, &NoProgress).unwrap();
    let c = summary
        .sources
        .iter()
        .find(|s| s.table == "customers")
        .unwrap();
    assert_eq!((c.rows_kept, c.quarantined, c.clean), (3, 0, 1), "{c:?}");
    let batch = read_parquet(&out.join("customers.parquet"));
    use arrow::array::{Array, AsArray};
    let flags = batch
        .column_by_name("prep_flags")
        .unwrap()
        .as_string::<i32>()
        .clone();
    assert!(flags.is_null(0));
    assert!(
        flags
            .value(1)
            .contains("email: format: `not-an-email` is not a valid email"),
        "{}",
        flags.value(1)
    );
    assert!(
        flags
            .value(1)
            .contains("age: range: 150 is outside [18, 120]"),
        "{}",
        flags.value(1)
    );
    assert!(
        flags
            .value(2)
            .contains("age: type: cannot read `unknown` as an integer"),
        "{}",
        flags.value(2)
    );
    assert!(batch.column_by_name("email").unwrap().is_null(1));
}

/// The data files do not exist: every error below comes from the config alone.
const SOURCES: &str = "[sources.orders]\npath = \"/nonexistent/orders.csv\"\n\n[sources.customers]\npath = \"/nonexistent/customers.csv\"\n";

#[test]
fn bad_prep_rules_fail_before_reading_data_naming_the_line() {
    let cases = [
        (
            "[prep.customers.fields.email]\nmust_be = \"email\"\n",
            "line 7",
            "unknown field `must_be`",
        ),
        (
            "[prep.customers.fields.email]\nregex = \"^[a-z+$\"\n",
            "line 7",
            "regex does not compile",
        ),
        (
            "[prep.customers.fields.shoe_size]\nrequired = true\n",
            "line 6",
            "`shoe_size` is not a field of the customers source",
        ),
        (
            "[prep.customers.fields.email]\nnormalize = [\"shout\"]\n",
            "line 7",
            "unknown variant `shout`",
        ),
        (
            "[prep.customers.fields.signup_date]\nrange = [18, 120]\n",
            "line 7",
            "does not fit it",
        ),
        (
            "[prep.pseudonymize]\nkey_env = \"STRATA_TEST_SURELY_UNSET_KEY\"\ncustomers = [\"email\"]\n",
            "line 6",
            "STRATA_TEST_SURELY_UNSET_KEY is not set",
        ),
        (
            "[prep.pseudonymize]\ncustomers = [\"email\"]\n",
            "line 6",
            "exactly one of key_env",
        ),
        (
            "[[prep.orders.checks]]\nrule = \"timestamp >= customers.birthday\"\n",
            "line 7",
            "unknown customers field `birthday`",
        ),
        (
            "[[prep.orders.checks]]\nrule = \"timestamp > 5\"\n",
            "line 7",
            "compares a timestamp with a float",
        ),
        (
            "[prep.customers.dedup]\nblocking = [[\"email:metaphone\"]]\ncompare = [{ fields = [\"email\"], method = \"exact\" }]\n",
            "line 6",
            "unknown transform `metaphone`",
        ),
        (
            "[prep.customers.dedup]\nexact = [\"email\"]\ncompare = [{ fields = [\"email\"], method = \"date\" }]\n",
            "line 6",
            "no `blocking` rules",
        ),
    ];
    let mut wrong = Vec::new();
    for (rules, line, fragment) in cases {
        let e = config_error(&format!("{SOURCES}{rules}"));
        if !(e.contains(line) && e.contains(fragment)) {
            wrong.push(format!("{rules}\n→ {e}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    let e = config_error(
        "[sources.orders]\npath = \"o.csv\"\n[sources.orders.columns]\ncustomer_id = \"c\"\ntimestamp = { column = \"t\", timezone = \"Mars/Olympus\" }\namount = \"a\"\n",
    );
    assert!(
        e.contains("unknown time zone `Mars/Olympus`") && e.contains("line 5"),
        "{e}"
    );
}

#[test]
fn pseudonymized_pii_never_reaches_the_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let config = generated(dir.path(), 2_000, 5);
    std::fs::write(dir.path().join("hmac.key"), "a-long-test-key-0123456789\n").unwrap();
    let mut text = std::fs::read_to_string(dir.path().join("strata.toml")).unwrap();
    text.push_str("\n[prep.pseudonymize]\nkey_file = \"hmac.key\"\ncustomers = [\"email\", \"phone\", \"first_name\", \"name\", \"customer_id\"]\n");
    std::fs::write(dir.path().join("strata.toml"), &text).unwrap();
    drop(config);
    let config = Config::load(&dir.path().join("strata.toml")).unwrap();
    let out = dir.path().join("out");
    strata_engine::run(&config, &out, &NoProgress).unwrap();
    let customers = std::fs::read_to_string(dir.path().join("customers.csv")).unwrap();
    let row = customers
        .lines()
        .skip(1)
        .find(|l| l.split(',').nth(3).is_some_and(|e| e.contains('@')))
        .unwrap();
    let some_email = row.split(',').nth(3).unwrap().to_string();
    let some_id = row.split(',').next().unwrap().to_string();
    for name in [
        "assignments.csv",
        "quarantine.csv",
        "merges.jsonl",
        "report.html",
        "quality.json",
        "segments.json",
    ] {
        let body = std::fs::read_to_string(out.join(name)).unwrap();
        assert!(!body.contains(&some_email), "{name} shows an email");
        assert!(
            !body.contains(&format!("{some_id},")),
            "{name} shows a customer id"
        );
    }
    let assignments = std::fs::read_to_string(out.join("assignments.csv")).unwrap();
    assert!(
        assignments.lines().nth(1).unwrap().starts_with("ps_"),
        "{}",
        assignments.lines().nth(1).unwrap()
    );
}
