//! Config errors with `file:line:col` positions, and the collector `validate` reports into.

use std::fmt;
use std::ops::Range;
use std::path::Path;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given to `Config::load` / `Config::parse`.
    pub file: String,
    /// 1-based line; 0 when the error has no position (e.g. the file cannot be read).
    pub line: usize,
    /// 1-based column counted in characters; 0 when the error has no position.
    pub col: usize,
    /// What is wrong, for a human.
    pub message: String,
}

impl ConfigError {
    /// An error at a 1-based line and column.
    pub fn new(file: &str, line: usize, col: usize, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.to_owned(),
            line,
            col,
            message: message.into(),
        }
    }

    /// The config file could not be read.
    pub fn io(path: &Path, err: &std::io::Error) -> ConfigError {
        ConfigError::new(
            &path.display().to_string(),
            0,
            0,
            format!("cannot read config file: {err}"),
        )
    }

    /// Whether the error points at a place in the file.
    pub fn has_position(&self) -> bool {
        self.line > 0
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.has_position() {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.message
            )
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one config file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Wraps one error.
    pub fn single(err: ConfigError) -> ConfigErrors {
        ConfigErrors(vec![err])
    }

    /// The individual errors.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// How many errors there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (never the case for a returned `Err`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Collects errors while validating one text, turning byte offsets into line:col.
pub(crate) struct Reporter<'t> {
    file: String,
    text: &'t str,
    /// Byte offset of the start of every line, so a lookup is a binary search.
    line_starts: Vec<usize>,
    /// (byte offset, error): sorted by offset before they are returned.
    errors: Vec<(usize, ConfigError)>,
}

impl<'t> Reporter<'t> {
    /// A reporter for `text`, naming `file` in every error.
    pub(crate) fn new(text: &'t str, file: &str) -> Reporter<'t> {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Reporter {
            file: file.to_owned(),
            text,
            line_starts,
            errors: Vec::new(),
        }
    }

    /// 1-based (line, column in chars) of a byte offset; out-of-range offsets are clamped.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..offset)
            .map_or(0, |s| s.chars().count())
            + 1;
        (line, col)
    }

    /// `line:col` of a span's start, for messages that refer to another place.
    pub(crate) fn place(&self, span: &Range<usize>) -> String {
        let (line, col) = self.line_col(span.start);
        format!("{line}:{col}")
    }

    /// Records an error at the start of `span`.
    pub(crate) fn error(&mut self, span: &Range<usize>, message: impl Into<String>) {
        let (line, col) = self.line_col(span.start);
        let err = ConfigError::new(&self.file, line, col, message);
        self.errors.push((span.start, err));
    }

    /// Whether anything was reported.
    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// All errors in file order (stable for errors at the same place).
    pub(crate) fn finish(mut self) -> ConfigErrors {
        self.errors.sort_by_key(|(offset, _)| *offset);
        self.errors.dedup_by(|a, b| a.1 == b.1);
        ConfigErrors(self.errors.into_iter().map(|(_, e)| e).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_position() {
        let e = ConfigError::new("a.toml", 3, 7, "bad");
        assert_eq!(e.to_string(), "a.toml:3:7: bad");
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = ConfigError::io(Path::new("/x/a.toml"), &io);
        assert_eq!(
            e.to_string(),
            "/x/a.toml: cannot read config file: No such file"
        );
        assert!(!e.has_position());
    }

    #[test]
    fn errors_display_one_per_line() {
        let errs = ConfigErrors(vec![
            ConfigError::new("f", 1, 1, "one"),
            ConfigError::new("f", 2, 5, "two"),
        ]);
        assert_eq!(errs.to_string(), "f:1:1: one\nf:2:5: two");
        assert_eq!(
            ConfigErrors::single(ConfigError::new("f", 1, 2, "x")).len(),
            1
        );
    }

    #[test]
    fn offsets_to_line_col_count_chars() {
        let text = "ab\nçé = 1\n\nx";
        let r = Reporter::new(text, "f");
        assert_eq!(r.line_col(0), (1, 1));
        assert_eq!(r.line_col(2), (1, 3)); // the newline itself
        assert_eq!(r.line_col(3), (2, 1));
        // 'ç' and 'é' are two bytes each: byte 7 is the space after them, column 3.
        assert_eq!(r.line_col(7), (2, 3));
        // Inside a multi-byte char: clamped back to its start.
        assert_eq!(r.line_col(4), (2, 1));
        assert_eq!(r.line_col(12), (3, 1));
        assert_eq!(r.line_col(13), (4, 1));
        assert_eq!(r.line_col(999), (4, 2));
        assert_eq!(Reporter::new("", "f").line_col(5), (1, 1));
    }

    #[test]
    fn finish_sorts_by_position() {
        let mut r = Reporter::new("a\nb\nc\n", "f");
        r.error(&(4..5), "third line");
        r.error(&(0..1), "first line");
        assert!(r.has_errors());
        let errs = r.finish();
        assert_eq!(errs.to_string(), "f:1:1: first line\nf:3:1: third line");
    }
}
