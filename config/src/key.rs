//! Shard key values: parsing by key type, canonical text, and names of the enum-like settings.

use std::fmt;

use crate::{AuthMethod, KeyType, KeyValue, PoolMode, Strategy};

impl KeyValue {
    /// Parses the text spelling of a key (`"42"`, `"KR"`, a uuid) as the given key type.
    ///
    /// uuids are accepted in any case, with or without hyphens and braces, as PostgreSQL does.
    pub fn parse(key_type: KeyType, text: &str) -> Result<KeyValue, String> {
        match key_type {
            KeyType::Bigint => text
                .trim()
                .parse::<i64>()
                .map(KeyValue::Int)
                .map_err(|_| format!("{text:?} is not a bigint")),
            KeyType::Text => Ok(KeyValue::Text(text.to_owned())),
            KeyType::Uuid => parse_uuid(text)
                .map(KeyValue::Uuid)
                .ok_or_else(|| format!("{text:?} is not a uuid")),
        }
    }

    /// The key type this value belongs to.
    pub fn key_type(&self) -> KeyType {
        match self {
            KeyValue::Int(_) => KeyType::Bigint,
            KeyValue::Text(_) => KeyType::Text,
            KeyValue::Uuid(_) => KeyType::Uuid,
        }
    }
}

impl fmt::Display for KeyValue {
    /// Integers as digits, text as-is, uuids in lower-case hyphenated form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyValue::Int(v) => write!(f, "{v}"),
            KeyValue::Text(v) => f.write_str(v),
            KeyValue::Uuid(bytes) => {
                for (i, b) in bytes.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        f.write_str("-")?;
                    }
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// PostgreSQL's uuid input rule: optional braces, 32 hex digits, a hyphen allowed after any
/// group of four digits.
pub(crate) fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let inner = match text.strip_prefix('{') {
        Some(rest) => rest.strip_suffix('}')?,
        None => text,
    };
    let mut out = [0u8; 16];
    let mut digits = 0usize;
    let mut prev_hyphen = false;
    for c in inner.chars() {
        if c == '-' {
            if digits == 0 || digits % 4 != 0 || prev_hyphen || digits == 32 {
                return None;
            }
            prev_hyphen = true;
            continue;
        }
        prev_hyphen = false;
        let nibble = u8::try_from(c.to_digit(16)?).ok()?;
        let byte = out.get_mut(digits / 2)?;
        *byte = if digits % 2 == 0 {
            nibble << 4
        } else {
            *byte | nibble
        };
        digits += 1;
    }
    (digits == 32 && !prev_hyphen).then_some(out)
}

impl Strategy {
    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Hash => "hash",
            Strategy::Range => "range",
            Strategy::List => "list",
        }
    }
}

impl KeyType {
    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Bigint => "bigint",
            KeyType::Text => "text",
            KeyType::Uuid => "uuid",
        }
    }
}

impl AuthMethod {
    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ScramSha256 => "scram-sha-256",
            AuthMethod::Md5 => "md5",
            AuthMethod::Trust => "trust",
        }
    }
}

impl PoolMode {
    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolMode::Transaction => "transaction",
            PoolMode::Session => "session",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for PoolMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANON: &str = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";

    #[test]
    fn uuid_spellings() {
        for s in [
            CANON,
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
            "{a0eebc999c0b4ef8bb6d6bb9bd380a11}",
        ] {
            let v = KeyValue::parse(KeyType::Uuid, s).unwrap();
            assert_eq!(v.to_string(), CANON, "{s}");
        }
        for bad in [
            "",
            "a0eebc99",
            "-a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11-",
            "a0eeb-c999c0b4ef8bb6d6bb9bd380a11",
            "a0ee--bc999c0b4ef8bb6d6bb9bd380a11",
            "a0eebc999c0b4ef8bb6d6bb9bd380a111",
            "{a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "g0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0eebc999c0b4ef8bb6d6bb9bd380aé",
        ] {
            assert!(parse_uuid(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn bigint_and_text() {
        assert_eq!(
            KeyValue::parse(KeyType::Bigint, "-42"),
            Ok(KeyValue::Int(-42))
        );
        assert!(KeyValue::parse(KeyType::Bigint, "9223372036854775808").is_err());
        assert!(KeyValue::parse(KeyType::Bigint, "x").is_err());
        assert_eq!(
            KeyValue::parse(KeyType::Text, "KR"),
            Ok(KeyValue::Text("KR".to_owned()))
        );
        assert_eq!(KeyValue::Int(7).key_type(), KeyType::Bigint);
    }

    #[test]
    fn names() {
        assert_eq!(Strategy::Hash.to_string(), "hash");
        assert_eq!(KeyType::Uuid.to_string(), "uuid");
        assert_eq!(AuthMethod::ScramSha256.to_string(), "scram-sha-256");
        assert_eq!(PoolMode::Session.to_string(), "session");
    }
}
