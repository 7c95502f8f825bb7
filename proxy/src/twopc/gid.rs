//! Global transaction ids: `sp_<proxy_id>_<boot>_<seq>`.
//!
//! `boot` is the process start time in ms (base 36) and `seq` a per-boot counter (base 36), so a
//! gid names its proxy and its boot: recovery tells "ours, from an earlier boot" (nothing can be
//! in flight: presumed abort at once) from "ours, from this boot" (maybe still committing).

use std::path::Path;

/// Every gid starts with this.
const PREFIX: &str = "sp_";

/// PostgreSQL's limit on a prepared transaction's gid (GIDSIZE - 1).
pub const MAX_GID_LEN: usize = 199;

/// A parsed gid of the shardproxy format.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Gid {
    /// The proxy that made it.
    pub proxy_id: String,
    /// That proxy's boot (start time in ms).
    pub boot: u64,
    /// Counter within the boot.
    pub seq: u64,
}

/// Whose a gid found on a shard is, from the point of view of one running proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Made by this process: it may still be committing.
    ThisBoot,
    /// Made by this proxy before it restarted: nothing can be in flight for it.
    EarlierBoot,
    /// Another proxy's, or not a shardproxy gid at all: never touched.
    NotOurs,
}

impl Gid {
    /// The gid text.
    pub fn format(proxy_id: &str, boot: u64, seq: u64) -> String {
        format!("{PREFIX}{proxy_id}_{}_{}", base36(boot), base36(seq))
    }

    /// Parses a gid of our format (any proxy id); `None` for anything else. The proxy id may
    /// itself contain `_`, so the two numbers are taken from the right.
    pub fn parse(text: &str) -> Option<Gid> {
        if text.len() > MAX_GID_LEN {
            return None;
        }
        let rest = text.strip_prefix(PREFIX)?;
        let mut parts = rest.rsplitn(3, '_');
        let seq = parse_base36(parts.next()?)?;
        let boot = parse_base36(parts.next()?)?;
        let proxy_id = parts.next()?;
        let id_ok = !proxy_id.is_empty()
            && proxy_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        id_ok.then(|| Gid {
            proxy_id: proxy_id.to_owned(),
            boot,
            seq,
        })
    }

    /// Whose `text` is for the proxy `proxy_id` running as boot `boot`.
    pub fn owner(text: &str, proxy_id: &str, boot: u64) -> Owner {
        match Gid::parse(text) {
            Some(g) if g.proxy_id == proxy_id && g.boot == boot => Owner::ThisBoot,
            Some(g) if g.proxy_id == proxy_id => Owner::EarlierBoot,
            _ => Owner::NotOurs,
        }
    }
}

impl std::fmt::Display for Gid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&Gid::format(&self.proxy_id, self.boot, self.seq))
    }
}

/// The proxy id used when the config names none: `p` + 8 hex digits of the xxh3 of the
/// canonical state_dir path, so it is stable across restarts of the same installation.
pub fn default_proxy_id(canonical_state_dir: &Path) -> String {
    let hash = xxhash_rust::xxh3::xxh3_64(canonical_state_dir.as_os_str().as_encoded_bytes());
    format!("p{:08x}", hash >> 32)
}

/// Lower-case base 36.
fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::with_capacity(13);
    loop {
        // n % 36 < 36: always a valid index.
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Lower-case base 36 back to a number; `None` on anything else (upper case, empty, overflow).
fn parse_base36(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 13 {
        return None;
    }
    let mut n: u64 = 0;
    for b in text.bytes() {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'z' => b - b'a' + 10,
            _ => return None,
        };
        n = n.checked_mul(36)?.checked_add(u64::from(digit))?;
    }
    Some(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn format_and_parse() {
        let text = Gid::format("p1a2b3c4d", 1_700_000_000_000, 42);
        assert_eq!(text, "sp_p1a2b3c4d_loyw3v28_16");
        let gid = Gid::parse(&text).unwrap();
        assert_eq!(gid.proxy_id, "p1a2b3c4d");
        assert_eq!(gid.boot, 1_700_000_000_000);
        assert_eq!(gid.seq, 42);
        assert_eq!(gid.to_string(), text);
    }

    #[test]
    fn proxy_ids_with_underscores() {
        let text = Gid::format("east_1-a", 5, 0);
        let gid = Gid::parse(&text).unwrap();
        assert_eq!(
            (gid.proxy_id.as_str(), gid.boot, gid.seq),
            ("east_1-a", 5, 0)
        );
    }

    #[test]
    fn foreign_gids_are_not_parsed() {
        for text in [
            "",
            "sp_",
            "sp__1_2",
            "sp_a_1",
            "sp_a_1_",
            "sp_a__2",
            "sp_a_1_Z",
            "xx_a_1_2",
            "sp_a b_1_2",
            "sp_a_zzzzzzzzzzzzzz_1",
            "my_own_prepared_xact",
        ] {
            assert_eq!(Gid::parse(text), None, "{text:?}");
        }
        let long = format!("sp_{}_1_2", "a".repeat(200));
        assert_eq!(Gid::parse(&long), None);
    }

    #[test]
    fn owners() {
        let ours = Gid::format("px", 100, 7);
        assert_eq!(Gid::owner(&ours, "px", 100), Owner::ThisBoot);
        assert_eq!(Gid::owner(&ours, "px", 99), Owner::EarlierBoot);
        assert_eq!(Gid::owner(&ours, "py", 100), Owner::NotOurs);
        // A proxy id that is a suffix of another's must not match it.
        assert_eq!(
            Gid::owner(&Gid::format("a_px", 100, 7), "px", 100),
            Owner::NotOurs
        );
        assert_eq!(Gid::owner("foreign", "px", 100), Owner::NotOurs);
    }

    #[test]
    fn default_ids_are_stable_and_differ() {
        let a = default_proxy_id(Path::new("/var/lib/shardproxy"));
        assert_eq!(a, default_proxy_id(Path::new("/var/lib/shardproxy")));
        assert_ne!(a, default_proxy_id(Path::new("/var/lib/shardproxy2")));
        assert_eq!(a.len(), 9);
        assert!(a.starts_with('p'));
    }

    #[test]
    fn longest_gid_fits_postgres() {
        let text = Gid::format(&"x".repeat(63), u64::MAX, u64::MAX);
        assert!(text.len() <= MAX_GID_LEN, "{}", text.len());
        assert!(Gid::parse(&text).is_some());
    }

    proptest! {
        #[test]
        fn round_trip(id in "[a-zA-Z0-9_-]{1,63}", boot: u64, seq: u64) {
            let text = Gid::format(&id, boot, seq);
            let gid = Gid::parse(&text).unwrap();
            prop_assert_eq!(gid, Gid { proxy_id: id, boot, seq });
        }

        #[test]
        fn parse_never_panics(text in ".{0,80}") {
            let _ = Gid::parse(&text);
        }
    }
}
