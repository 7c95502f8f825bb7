//! Merging the answers of several shards to one request into the single answer the client
//! expects: one RowDescription, the rows of all shards, one CommandComplete whose count is the
//! sum, one ReadyForQuery with the combined transaction status.
//!
//! Shards are read one after another (their rows are concatenated, which is exactly right for
//! statements that need no ordering or aggregation across shards); the others keep their
//! answers in their sockets meanwhile, so memory stays bounded.

use std::collections::VecDeque;

use crate::protocol::backend::TransactionStatus;

/// Per-request state of a fan-out.
#[derive(Debug, Default)]
pub struct FanOut {
    /// Shards that still owe their answer; the front one is being read.
    pub pending: VecDeque<usize>,
    /// A RowDescription (or CopyInResponse/CopyOutResponse) went to the client already.
    pub described: bool,
    /// The merged command tag so far.
    pub tag: Option<TagSum>,
    /// Some shard answered EmptyQueryResponse.
    pub empty_query: bool,
    /// Worst transaction status reported so far (Failed > InBlock > Idle).
    pub status: Option<TransactionStatus>,
    /// An error was reported for this request (further output is suppressed).
    pub failed: bool,
    /// The same write on every copy of a reference table: one shard's rows and tag stand for
    /// all (the others are checked only for errors).
    pub replicated: bool,
    /// The first shard has finished its answer.
    pub first_done: bool,
}

impl FanOut {
    /// A fan-out over `shards`, read in that order.
    pub fn new(shards: impl IntoIterator<Item = usize>) -> FanOut {
        FanOut {
            pending: shards.into_iter().collect(),
            ..FanOut::default()
        }
    }

    /// Records a shard's ReadyForQuery status.
    pub fn note_status(&mut self, status: TransactionStatus) {
        self.status = Some(match (self.status, status) {
            (Some(TransactionStatus::Failed), _) | (_, TransactionStatus::Failed) => {
                TransactionStatus::Failed
            }
            (Some(TransactionStatus::InBlock), _) | (_, TransactionStatus::InBlock) => {
                TransactionStatus::InBlock
            }
            _ => TransactionStatus::Idle,
        });
    }

    /// Adds a shard's CommandComplete tag.
    pub fn note_tag(&mut self, tag: &str) {
        match &mut self.tag {
            None => self.tag = Some(TagSum::new(tag)),
            Some(sum) => sum.add(tag),
        }
    }
}

/// Command tags summed across shards: `SELECT 3` + `SELECT 4` = `SELECT 7`; `INSERT 0 2` +
/// `INSERT 0 1` = `INSERT 0 3`; tags without a count (CREATE TABLE) keep the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSum {
    prefix: String,
    count: Option<u64>,
}

impl TagSum {
    fn split(tag: &str) -> (String, Option<u64>) {
        match tag.rsplit_once(' ') {
            Some((prefix, n)) if counted(prefix) => match n.parse::<u64>() {
                Ok(n) => (prefix.to_string(), Some(n)),
                Err(_) => (tag.to_string(), None),
            },
            _ => (tag.to_string(), None),
        }
    }

    /// The tag of the first shard.
    pub fn new(tag: &str) -> TagSum {
        let (prefix, count) = TagSum::split(tag);
        TagSum { prefix, count }
    }

    /// Adds another shard's tag (same command).
    pub fn add(&mut self, tag: &str) {
        let (_, count) = TagSum::split(tag);
        if let (Some(total), Some(n)) = (self.count.as_mut(), count) {
            *total += n;
        }
    }

    /// The merged tag text.
    pub fn text(&self) -> String {
        match self.count {
            Some(n) => format!("{} {n}", self.prefix),
            None => self.prefix.clone(),
        }
    }
}

/// Commands whose tag ends in a row count.
fn counted(prefix: &str) -> bool {
    matches!(
        prefix,
        "SELECT" | "INSERT 0" | "UPDATE" | "DELETE" | "COPY" | "MERGE" | "FETCH" | "MOVE"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_sum_counts() {
        let mut t = TagSum::new("SELECT 3");
        t.add("SELECT 4");
        assert_eq!(t.text(), "SELECT 7");
        let mut t = TagSum::new("INSERT 0 2");
        t.add("INSERT 0 1");
        assert_eq!(t.text(), "INSERT 0 3");
        let mut t = TagSum::new("CREATE TABLE");
        t.add("CREATE TABLE");
        assert_eq!(t.text(), "CREATE TABLE");
        let mut t = TagSum::new("UPDATE 0");
        t.add("UPDATE 5");
        assert_eq!(t.text(), "UPDATE 5");
    }

    #[test]
    fn status_is_the_worst() {
        let mut f = FanOut::new([0, 1]);
        f.note_status(TransactionStatus::Idle);
        f.note_status(TransactionStatus::InBlock);
        assert_eq!(f.status, Some(TransactionStatus::InBlock));
        f.note_status(TransactionStatus::Failed);
        f.note_status(TransactionStatus::Idle);
        assert_eq!(f.status, Some(TransactionStatus::Failed));
    }
}
