//! The crate's error type.

use std::fmt;
use std::path::PathBuf;

/// A result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Why a configuration could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file named on the command line could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file or an environment variable could not be turned into a configuration: a TOML
    /// syntax error, an unknown key, a value of the wrong type. The message is one line and names
    /// each key and where it came from (the file path or the environment variable).
    #[error("{message}")]
    Load {
        /// One readable line; several problems are joined with `; `.
        message: String,
    },
    /// The configuration loaded but some values break a rule (an address that does not parse, a
    /// regex that does not compile, a zero interval). Every problem is listed, each with its key.
    #[error("invalid configuration: {}", join(problems))]
    Invalid {
        /// Each rule broken, in the order the keys appear in the configuration.
        problems: Vec<Problem>,
    },
}

/// One value that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, array entries by index: `collector.redact.0.pattern`.
    pub key: String,
    /// What is wrong with it, lowercase, no trailing period.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.key, self.message)
    }
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
