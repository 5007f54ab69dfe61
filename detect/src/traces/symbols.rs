//! Tenant and service names as small numbers, so the index, the RED windows and the graph key on a `u32`
//! instead of a string. Bounded: past `max` names, new ones get no symbol (and what carries them is
//! counted and skipped by the caller).

use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug)]
pub(crate) struct Symbols {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
    max: usize,
}

impl Symbols {
    pub(crate) fn new(max: usize) -> Self {
        Self { ids: HashMap::new(), names: Vec::new(), max }
    }

    /// The symbol of `name`, made if new and there is room.
    pub(crate) fn intern(&mut self, name: &str) -> Option<u32> {
        if let Some(id) = self.ids.get(name) {
            return Some(*id);
        }
        if self.names.len() >= self.max {
            return None;
        }
        let id = u32::try_from(self.names.len()).ok()?;
        let name: Arc<str> = Arc::from(name);
        self.names.push(Arc::clone(&name));
        self.ids.insert(name, id);
        Some(id)
    }

    /// The symbol of `name` if it has one (never makes one: for readers).
    pub(crate) fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    pub(crate) fn name(&self, id: u32) -> Option<&Arc<str>> {
        self.names.get(id as usize)
    }

    /// The name of `id`, or `""` for a symbol this table never made.
    pub(crate) fn name_or_empty(&self, id: u32) -> Arc<str> {
        self.name(id).cloned().unwrap_or_else(|| Arc::from(""))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn names_get_stable_symbols_until_full() {
        let mut s = Symbols::new(2);
        let a = s.intern("checkout").unwrap();
        assert_eq!(s.intern("checkout"), Some(a));
        let b = s.intern("db").unwrap();
        assert_ne!(a, b);
        assert_eq!(s.intern("third"), None, "full");
        assert_eq!(s.get("db"), Some(b));
        assert_eq!(s.get("third"), None);
        assert_eq!(&*s.name_or_empty(a), "checkout");
        assert_eq!(&*s.name_or_empty(99), "");
        assert_eq!(s.len(), 2);
    }
}
