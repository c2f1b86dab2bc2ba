//! The writable collections: TX, and IP, GLOBAL, SESSION, USER and
//! RESOURCE (kept for the transaction only). Keys are stored in lower
//! case, so lookups with a lower-case key need no allocation.

use std::collections::HashMap;

use bytes::Bytes;
use foldhash::fast::RandomState;

use crate::variables::Var;

type Map = HashMap<Box<str>, Bytes, RandomState>;

#[derive(Debug, Default)]
pub struct Vars {
    maps: [Map; 6],
}

fn slot(var: Var) -> Option<usize> {
    Some(match var {
        Var::Tx => 0,
        Var::Ip => 1,
        Var::Global => 2,
        Var::Session => 3,
        Var::User => 4,
        Var::Resource => 5,
        _ => return None,
    })
}

pub fn is_writable(var: Var) -> bool {
    slot(var).is_some()
}

impl Vars {
    fn map(&self, var: Var) -> Option<&Map> {
        self.maps.get(slot(var)?)
    }

    fn map_mut(&mut self, var: Var) -> Option<&mut Map> {
        self.maps.get_mut(slot(var)?)
    }

    /// Empties every collection, keeping the tables' room.
    pub fn clear(&mut self) {
        for m in &mut self.maps {
            m.clear();
        }
    }

    /// `key` must already be in lower case.
    pub fn get(&self, var: Var, key: &str) -> Option<&Bytes> {
        self.map(var)?.get(key)
    }

    pub fn set(&mut self, var: Var, key: &str, value: Bytes) {
        if let Some(m) = self.map_mut(var) {
            let key: std::borrow::Cow<'_, str> = if key.bytes().any(|b| b.is_ascii_uppercase()) {
                key.to_ascii_lowercase().into()
            } else {
                key.into()
            };
            match m.get_mut(&*key) {
                Some(slot) => *slot = value,
                None => {
                    m.insert(key.into_owned().into_boxed_str(), value);
                }
            }
        }
    }

    pub fn remove(&mut self, var: Var, key: &str) {
        if let Some(m) = self.map_mut(var) {
            if key.bytes().any(|b| b.is_ascii_uppercase()) {
                m.remove(key.to_ascii_lowercase().as_str());
            } else {
                m.remove(key);
            }
        }
    }

    pub fn iter(&self, var: Var) -> impl Iterator<Item = (&str, &Bytes)> {
        self.map(var)
            .into_iter()
            .flat_map(|m| m.iter().map(|(k, v)| (&**k, v)))
    }
}
