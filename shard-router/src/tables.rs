//! Table rules: which tables are sharded (on which map and key column) or reference tables.
//! Names match unqualified or schema-qualified, case-insensitively for unquoted identifiers.

use std::collections::HashMap;

use config::{Config, TableConfig};

/// How one table is distributed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableRule {
    /// Sharded: `map` is an index into `Router::maps()`, `key` the key column (folded).
    Sharded {
        /// index into the router's maps
        map: usize,
        /// key column name
        key: String,
    },
    /// A full copy on every shard.
    Reference,
}

/// All table rules, by folded unqualified name.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    by_name: HashMap<String, TableRule>,
}

impl Tables {
    /// Builds the rules from a validated config (map names resolve to map indexes in the
    /// config's BTreeMap order, the same order as `Router::maps()`).
    pub fn new(config: &Config) -> Tables {
        let map_index: HashMap<&str, usize> = config
            .maps
            .keys()
            .enumerate()
            .map(|(i, name)| (name.as_str(), i))
            .collect();
        let by_name = config
            .tables
            .iter()
            .filter_map(|(name, t)| {
                let rule = match t {
                    TableConfig::Reference => TableRule::Reference,
                    TableConfig::Sharded { map, key } => TableRule::Sharded {
                        map: *map_index.get(map.as_str())?,
                        key: key.clone(),
                    },
                };
                Some((name.clone(), rule))
            })
            .collect();
        Tables { by_name }
    }

    /// The rule for a table name as the config stores it (already folded, unqualified).
    pub fn get(&self, folded_name: &str) -> Option<&TableRule> {
        self.by_name.get(folded_name)
    }

    /// All table names and rules.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &TableRule)> {
        self.by_name.iter().map(|(n, r)| (n.as_str(), r))
    }

    /// True when no table is sharded or reference (everything goes to the default shard).
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}
