//! [`SmallMap`]: a map from short names to values for the handful of entries a device record
//! holds (its latest values, and since when each has held).
//!
//! A `BTreeMap` allocates a node of eleven slots for its first entry (about 370 bytes for
//! `String` keys and 8-byte values); a device with one metric needs one slot. This map keeps its
//! entries in one sorted vector sized to fit, so a record with one value costs two small
//! allocations instead of a tree node. It (de)serializes as a map, exactly like the `BTreeMap`
//! it replaces, so stored records read back unchanged.

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, Serializer};
use std::collections::BTreeMap;

/// Entries sorted by key, at most one per key.
#[derive(Debug, Clone, PartialEq)]
pub struct SmallMap<V> {
    entries: Vec<(Box<str>, V)>,
}

impl<V> Default for SmallMap<V> {
    fn default() -> Self {
        SmallMap {
            entries: Vec::new(),
        }
    }
}

impl<V> SmallMap<V> {
    /// An empty map; allocates nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| (**k).cmp(key))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.find(key).ok().map(|i| &self.entries[i].1)
    }

    /// `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`, returning the value it replaced. The key is copied only when it
    /// is new, and the vector grows by exactly one entry.
    pub fn insert(&mut self, key: &str, value: V) -> Option<V> {
        match self.find(key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.reserve_exact(1);
                self.entries.insert(i, (key.into(), value));
                None
            }
        }
    }

    /// Sets `key` to `value` unless it already has one.
    pub fn insert_if_absent(&mut self, key: &str, value: V) {
        if let Err(i) = self.find(key) {
            self.entries.reserve_exact(1);
            self.entries.insert(i, (key.into(), value));
        }
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.entries.iter().map(|(k, v)| (&**k, v))
    }
}

impl<V: Serialize> Serialize for SmallMap<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for SmallMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Through a BTreeMap: sorted and one entry per key, whatever the stored order.
        let map = BTreeMap::<String, V>::deserialize(d)?;
        let mut entries = Vec::with_capacity(map.len());
        entries.extend(map.into_iter().map(|(k, v)| (k.into_boxed_str(), v)));
        Ok(SmallMap { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_entries_sorted_and_one_per_key() {
        let mut m = SmallMap::new();
        assert_eq!(m.insert("b", 2.0), None);
        assert_eq!(m.insert("a", 1.0), None);
        assert_eq!(m.insert("c", 3.0), None);
        assert_eq!(m.insert("b", 20.0), Some(2.0));
        m.insert_if_absent("a", 10.0);
        m.insert_if_absent("d", 4.0);
        let got: Vec<(&str, f64)> = m.iter().map(|(k, &v)| (k, v)).collect();
        assert_eq!(got, [("a", 1.0), ("b", 20.0), ("c", 3.0), ("d", 4.0)]);
        assert_eq!(m.len(), 4);
        assert!(m.contains_key("c") && !m.contains_key("e"));
        assert_eq!(m.get("d"), Some(&4.0));
    }

    #[test]
    fn grows_by_exactly_one_entry() {
        let mut m = SmallMap::new();
        m.insert("pressure_mpa", 0.3);
        assert_eq!(m.entries.capacity(), 1);
        m.insert("level_m", 2.0);
        assert_eq!(m.entries.capacity(), 2);
    }

    #[test]
    fn reads_and_writes_the_json_of_a_btreemap() {
        let mut tree = BTreeMap::new();
        tree.insert("z".to_owned(), 1_i64);
        tree.insert("a".to_owned(), 2_i64);
        let text = serde_json::to_string(&tree).expect("serialize tree");
        let m: SmallMap<i64> = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(serde_json::to_string(&m).expect("serialize map"), text);
        // Unsorted stored keys are sorted on the way in.
        let m: SmallMap<i64> = serde_json::from_str(r#"{"z":1,"a":2,"m":3}"#).expect("unsorted");
        assert_eq!(
            m.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["a", "m", "z"]
        );
        assert_eq!(m.get("m"), Some(&3));
    }
}
