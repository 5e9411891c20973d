//! Reading a field of a JSON object by name or dotted path, as sources, rules and computed
//! traits name them (`category`, `address.city`).

use serde_json::{Map, Value};

/// `value[path]`, else the dotted path through nested objects (`a.b.c`). A key that itself
/// contains dots is found first.
pub fn json_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    value
        .get(path)
        .or_else(|| path.split('.').try_fold(value, |v, key| v.get(key)))
}

/// [`json_path`] starting from an object's fields.
pub fn json_path_in<'a>(object: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    object.get(path).or_else(|| {
        let mut keys = path.split('.');
        let first = object.get(keys.next()?)?;
        keys.try_fold(first, |v, key| v.get(key))
    })
}
