//! Text normalization of one value, and the format checks that follow it.

use crate::rules::{Format, Normalizer};
use phonenumber::country::Id as Region;

/// Trimmed and lower-cased; `None` for an empty value.
pub fn normalize_email(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_lowercase())
}

/// E.164 form of a phone number, reading national numbers in `region`; `Err` says why the
/// text is not a valid phone number.
pub fn normalize_phone(text: &str, region: Region) -> Result<String, String> {
    let number = phonenumber::parse(Some(region), text.trim())
        .map_err(|e| format!("not a phone number ({e})"))?;
    if !phonenumber::is_valid(&number) {
        return Err(format!(
            "not a valid phone number for its region ({region:?} by default)"
        ));
    }
    Ok(number.format().mode(phonenumber::Mode::E164).to_string())
}

fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        // A new word after white space, a hyphen or an apostrophe: "Mary-Ann O'Neil".
        start = c.is_whitespace() || c == '-' || c == '\'';
    }
    out
}

/// Applies `steps` in order. `Err` when a step finds the value invalid (a phone number that
/// is not one).
pub(crate) fn apply(steps: &[Normalizer], region: Region, text: &str) -> Result<String, String> {
    let mut v = text.to_string();
    for step in steps {
        v = match step {
            Normalizer::Trim => v.trim().to_string(),
            Normalizer::Lowercase => v.to_lowercase(),
            Normalizer::Uppercase => v.to_uppercase(),
            Normalizer::Title => title_case(&v),
            Normalizer::CollapseSpaces => v.split_whitespace().collect::<Vec<_>>().join(" "),
            Normalizer::Email => v.trim().to_lowercase(),
            Normalizer::Phone => normalize_phone(&v, region)?,
            Normalizer::Digits => v.chars().filter(char::is_ascii_digit).collect(),
        };
    }
    Ok(v)
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && !s.chars().any(char::is_whitespace)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

fn is_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|d| {
        (8..=15).contains(&d.len()) && d.bytes().all(|c| c.is_ascii_digit()) && !d.starts_with('0')
    })
}

/// Whether `s` has `format`.
pub(crate) fn has_format(format: Format, s: &str) -> bool {
    match format {
        Format::Email => is_email(s),
        Format::Phone => is_e164(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Normalizer::*;

    /// Steps, region, input, expected output or error fragment.
    type Case<'a> = (&'a [Normalizer], Region, &'a str, Result<&'a str, &'a str>);

    #[test]
    fn normalizes_text_table() {
        let us = Region::US;
        let cases: &[Case<'_>] = &[
            (&[Trim], us, "  Ann  ", Ok("Ann")),
            (
                &[Trim, Lowercase],
                us,
                " ANN@Example.COM ",
                Ok("ann@example.com"),
            ),
            (&[Email], us, " ANN@Example.COM ", Ok("ann@example.com")),
            (&[Uppercase], us, "ny", Ok("NY")),
            (&[Title], us, "mary-ann o'neil", Ok("Mary-Ann O'Neil")),
            (&[CollapseSpaces], us, "  New   York ", Ok("New York")),
            (&[Digits], us, "(415) 555-2671", Ok("4155552671")),
            (&[Phone], us, "(415) 555-2671", Ok("+14155552671")),
            (&[Phone], us, "415.555.2671", Ok("+14155552671")),
            (&[Phone], us, "+1 415 555 2671", Ok("+14155552671")),
            // International dialling prefixes are the region's own: 011 from the US, 00 from GB.
            (&[Phone], us, "011 44 20 7946 0958", Ok("+442079460958")),
            (
                &[Phone],
                Region::GB,
                "00 1 415 555 2671",
                Ok("+14155552671"),
            ),
            (&[Phone], Region::GB, "020 7946 0958", Ok("+442079460958")),
            (
                &[Phone],
                Region::GB,
                "+44 20 7946 0958",
                Ok("+442079460958"),
            ),
            (&[Phone], Region::DE, "030 901820", Ok("+4930901820")),
            (&[Phone], us, "12", Err("phone")),
            (&[Phone], us, "call me", Err("phone")),
            (&[Phone], us, "(415) 155-2671", Err("valid phone")),
        ];
        for (steps, region, input, expected) in cases {
            let got = apply(steps, *region, input);
            match expected {
                Ok(v) => assert_eq!(got.as_deref(), Ok(*v), "{input:?} with {steps:?}"),
                Err(fragment) => {
                    let e = got.expect_err(input);
                    assert!(e.contains(fragment), "{input:?}: {e}");
                }
            }
        }
    }

    #[test]
    fn checks_formats() {
        for (f, s, ok) in [
            (Format::Email, "ann@example.com", true),
            (Format::Email, "ann.lee+tag@mail.example.co.uk", true),
            (Format::Email, "ann@", false),
            (Format::Email, "ann@example", false),
            (Format::Email, "ann @example.com", false),
            (Format::Email, "a@b@c.com", false),
            (Format::Email, "ann@example..com", false),
            (Format::Phone, "+14155552671", true),
            (Format::Phone, "4155552671", false),
            (Format::Phone, "+0123456789", false),
            (Format::Phone, "+1234", false),
        ] {
            assert_eq!(has_format(f, s), ok, "{s}");
        }
    }
}
