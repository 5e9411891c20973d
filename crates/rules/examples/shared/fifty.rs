//! The benchmarks' 50 segments (ten kinds of condition over five windows) and the events
//! that move them; shared by `live_bench` (the engine alone) and the server's `serve_load`
//! (through `strata serve`), so both measure the same rules.

use serde_json::{Value, json};

/// Event names the segments test, in the order the generators pick them.
pub const EVENTS: [&str; 6] = [
    "Product Viewed",
    "Added to Cart",
    "Order Completed",
    "Email Opened",
    "Page Viewed",
    "Signed Up",
];

/// Segment names and rule texts. `s{w}-9` refers to `s{w}-0`; the `trait plan` condition
/// needs a text trait `plan` on the profiles.
pub fn rule_texts() -> Vec<(String, String)> {
    let windows = ["1h", "6h", "1d", "7d", "30d"];
    let mut out = Vec::new();
    for (w, window) in windows.iter().enumerate() {
        let texts = [
            format!("\"Product Viewed\" at least 3 times within {window}"),
            format!("no \"Order Completed\" within {window}"),
            format!("\"Added to Cart\" then no \"Order Completed\" within {window}"),
            format!("\"Signed Up\" then \"Order Completed\" within {window}"),
            format!("sum of revenue in \"Order Completed\" >= 100 within {window}"),
            format!(
                "\"Email Opened\" with campaign = \"winter\" within {window} and trait plan = \"pro\""
            ),
            format!(
                "(\"Page Viewed\" at least 5 times within {window}) or (\"Product Viewed\" exactly 2 times within {window})"
            ),
            format!("not (\"Page Viewed\" within {window}) and \"Email Opened\" within {window}"),
            format!("\"Product Viewed\" with price > 50 at least 2 times within {window}"),
            format!("in segment \"s{w}-0\" and no \"Added to Cart\" within {window}"),
        ];
        for (k, t) in texts.into_iter().enumerate() {
            out.push((format!("s{w}-{k}"), t));
        }
    }
    out
}

/// The properties of an event named `name`, varied by the random number `r`.
pub fn properties(name: &str, r: u64) -> Value {
    match name {
        "Order Completed" => json!({ "revenue": (r % 200) as f64 }),
        "Product Viewed" => json!({ "price": (r % 100) as f64 }),
        "Email Opened" => {
            json!({ "campaign": if r.is_multiple_of(2) { "winter" } else { "spring" } })
        }
        _ => json!({}),
    }
}
