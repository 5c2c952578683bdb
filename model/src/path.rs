//! Dotted paths in JSON objects, as agents and queries write them: `kubernetes.pod.name` is the
//! key `"kubernetes.pod.name"` itself, or the path through nested objects
//! (`{"kubernetes": {"pod": {"name": ...}}}`), or any mix of the two.

use serde_json::{Map, Value};

/// The value at a dotted path, looked up as a key first and then through nested objects.
pub fn lookup<'a>(map: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = map.get(path) {
        return Some(value);
    }
    path.match_indices('.')
        .find_map(|(i, _)| match map.get(&path[..i]) {
            Some(Value::Object(inner)) => lookup(inner, &path[i + 1..]),
            _ => None,
        })
}

/// Removes the value at a dotted path (as [`lookup`] finds it); a parent object left empty is
/// removed too.
pub fn take(map: &mut Map<String, Value>, path: &str) -> Option<Value> {
    if let Some(value) = map.remove(path) {
        return Some(value);
    }
    for (i, _) in path.match_indices('.') {
        let (head, rest) = (&path[..i], &path[i + 1..]);
        if let Some(Value::Object(inner)) = map.get_mut(head) {
            if let Some(value) = take(inner, rest) {
                if inner.is_empty() {
                    map.remove(head);
                }
                return Some(value);
            }
        }
    }
    None
}

/// Sets the value at a dotted path through nested objects, creating them (`a.b` is
/// `{"a": {"b": value}}`); a non-object in the way is replaced.
pub fn insert(map: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            map.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let slot = map
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(inner) = slot {
                insert(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn dotted_nested_and_mixed_paths() {
        let Value::Object(mut map) =
            json!({"a.b": 1, "c": {"d": {"e": 2}, "f": 3}, "g": {"h.i": 4}})
        else {
            unreachable!()
        };
        assert_eq!(lookup(&map, "a.b"), Some(&json!(1)));
        assert_eq!(lookup(&map, "c.d.e"), Some(&json!(2)));
        assert_eq!(lookup(&map, "g.h.i"), Some(&json!(4)));
        assert_eq!(lookup(&map, "c.x"), None);
        assert_eq!(take(&mut map, "c.d.e"), Some(json!(2)));
        assert_eq!(take(&mut map, "g.h.i"), Some(json!(4)));
        assert_eq!(Value::Object(map.clone()), json!({"a.b": 1, "c": {"f": 3}}));
        insert(&mut map, "c.g.h", json!(5));
        insert(&mut map, "i", json!(6));
        assert_eq!(
            Value::Object(map),
            json!({"a.b": 1, "c": {"f": 3, "g": {"h": 5}}, "i": 6})
        );
    }
}
