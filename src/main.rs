//! `trawl`: log and audit aggregation for Kubernetes. This file parses arguments and dispatches
//! to the roles; the work lives in the library crates.

#[cfg(feature = "query")]
mod alerting;
mod auth;
mod client;
#[cfg(feature = "query")]
mod console;
#[cfg(all(feature = "collector", feature = "indexer"))]
mod demo;
mod server;
#[cfg(feature = "indexer")]
mod storage_cmd;
mod tls;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use trawl_config::{Config, ServerRole};

#[derive(Parser)]
#[command(
    name = "trawl",
    version,
    about = "Log and audit aggregation for Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every role in one process on local disk: collector, indexer and query API.
    #[cfg(feature = "indexer")]
    Standalone {
        #[command(flatten)]
        common: CommonArgs,
        /// Also run a synthetic cluster (pods writing logs, an API server sending audit
        /// events) so that there is data to search at once.
        #[arg(long)]
        demo: bool,
    },
    /// The indexer role: ingest, WAL, splits, and leaf searches over them.
    #[cfg(feature = "indexer")]
    Indexer {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// The searcher role: a stateless root that fans searches out to the indexers listed in
    /// `[query] indexers` and merges their answers.
    #[cfg(feature = "query")]
    Searcher {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// The collector role: tails container logs and audit events on this node.
    #[cfg(feature = "collector")]
    Collector {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Searches a stream and prints the hits (a client of a running server).
    Search(client::search::SearchArgs),
    /// Follows new matching records as they are ingested.
    Tail(client::tail::TailArgs),
    /// Exports matching records (or an aggregation table) as Arrow, Parquet, CSV or NDJSON.
    Export(client::export::ExportArgs),
    /// Runs a ready audit report, e.g. `trawl reports top-users --since 24h`.
    Reports(client::reports::ReportsArgs),
    /// Lists the lines ingest refused in a stream, newest first, with their errors.
    #[command(name = "dead-letters")]
    DeadLetters(client::dead_letters::DeadLettersArgs),
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The shared tier (`[storage]` and a PostgreSQL `[metastore]`): list splits, check
    /// object storage against the metastore.
    #[cfg(feature = "indexer")]
    Storage {
        #[command(subcommand)]
        command: StorageCommand,
    },
    /// Bearer tokens for `[[auth.tokens]]`.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Prints the salted hash of a token, for `[[auth.tokens]] hash`. Reads the token from
    /// standard input when it is not given (which keeps it out of the shell history).
    Hash {
        /// The token; omit it to read it from standard input (one line).
        token: Option<String>,
    },
    /// Prints a new random token (256 bits) and its hash.
    New,
}

#[cfg(feature = "indexer")]
#[derive(Subcommand)]
enum StorageCommand {
    /// Prints the splits the metastore records (NDJSON: stream, id, state, object key, time
    /// range, documents, bytes, indexer, parents), oldest first.
    Splits {
        /// Configuration file (TOML) naming `[storage]` and `[metastore]`.
        #[arg(long, short = 'c', env = "TRAWL_CONFIG")]
        config: Option<PathBuf>,
        /// Only this stream.
        #[arg(long)]
        stream: Option<String>,
        /// Only this state: staged, published or marked.
        #[arg(long, value_parser = parse_state)]
        state: Option<trawl_storage::pg::SplitState>,
    },
    /// Compares object storage with the metastore: objects without a row, rows without an
    /// object. Exits 1 if it finds any.
    Check {
        /// Configuration file (TOML) naming `[storage]` and `[metastore]`.
        #[arg(long, short = 'c', env = "TRAWL_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[cfg(feature = "indexer")]
fn parse_state(s: &str) -> Result<trawl_storage::pg::SplitState, String> {
    use trawl_storage::pg::SplitState;
    match s {
        "staged" => Ok(SplitState::Staged),
        "published" => Ok(SplitState::Published),
        "marked" => Ok(SplitState::Marked),
        other => Err(format!("`{other}`: one of staged, published, marked")),
    }
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validates a configuration file (with the TRAWL_* environment applied) and names any
    /// problem.
    Check {
        /// The TOML file.
        file: PathBuf,
        /// Also check what this role needs to start (standalone, indexer, searcher,
        /// collector): `trawl collector` needs `collector.indexer_url`, `trawl searcher`
        /// needs `query.indexers`.
        #[arg(long)]
        role: Option<ServerRole>,
    },
}

#[derive(Args, Clone)]
struct CommonArgs {
    /// Configuration file (TOML).
    #[arg(long, short = 'c', env = "TRAWL_CONFIG")]
    config: Option<PathBuf>,
    /// Where data is kept (overrides `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:7400 (overrides `listen`).
    #[arg(long)]
    listen: Option<String>,
}

impl CommonArgs {
    /// The configuration for `role`: file, environment, flags; refused (naming each key) when
    /// a value breaks a rule or the role could not work with it (`trawl collector` without
    /// `collector.indexer_url`, `trawl searcher` without `query.indexers`).
    fn load(&self, role: ServerRole) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref(), &env_map())?;
        config.apply_flags(self.data_dir.clone(), self.listen.clone())?;
        config.validate_for(role)?;
        Ok(config)
    }
}

/// The first line of standard input without its line ending; an error when it is empty.
fn read_token_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the token from standard input")?;
    let token = line.trim_end_matches(['\r', '\n']);
    if token.is_empty() {
        anyhow::bail!("no token given: pass it as an argument or on standard input");
    }
    Ok(token.to_string())
}

fn env_map() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = std::env::var("TRAWL_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,tantivy=warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        #[cfg(feature = "indexer")]
        Command::Standalone { common, demo } => {
            let config = common.load(ServerRole::Standalone)?;
            runtime()?.block_on(server::run(config, server::Roles::standalone(demo)))?;
        }
        #[cfg(feature = "indexer")]
        Command::Indexer { common } => {
            let config = common.load(ServerRole::Indexer)?;
            runtime()?.block_on(server::run(config, server::Roles::indexer()))?;
        }
        #[cfg(feature = "query")]
        Command::Searcher { common } => {
            let config = common.load(ServerRole::Searcher)?;
            runtime()?.block_on(server::run(config, server::Roles::searcher()))?;
        }
        #[cfg(feature = "collector")]
        Command::Collector { common } => {
            let config = common.load(ServerRole::Collector)?;
            runtime()?.block_on(server::run(config, server::Roles::collector()))?;
        }
        Command::Search(args) => return runtime()?.block_on(client::search::run(args)),
        Command::Tail(args) => return runtime()?.block_on(client::tail::run(args)),
        Command::Export(args) => return runtime()?.block_on(client::export::run(args)),
        Command::Reports(args) => return runtime()?.block_on(client::reports::run(args)),
        Command::DeadLetters(args) => return runtime()?.block_on(client::dead_letters::run(args)),
        #[cfg(feature = "indexer")]
        Command::Storage { command } => {
            let load = |file: Option<PathBuf>| {
                trawl_config::Config::load(file.as_deref(), &env_map())
                    .context("loading the configuration")
            };
            return match command {
                StorageCommand::Splits {
                    config,
                    stream,
                    state,
                } => {
                    let config = load(config)?;
                    runtime()?.block_on(storage_cmd::splits(&config, stream.as_deref(), state))
                }
                StorageCommand::Check { config } => {
                    let config = load(config)?;
                    runtime()?.block_on(storage_cmd::check(&config))
                }
            };
        }
        Command::Token {
            command: TokenCommand::Hash { token },
        } => {
            let token = match token {
                Some(token) => token,
                None => read_token_from_stdin()?,
            };
            println!("{}", auth::hash_token(&token));
        }
        Command::Token {
            command: TokenCommand::New,
        } => {
            let token = auth::new_token();
            println!("token: {token}");
            println!("hash: {}", auth::hash_token(&token));
        }
        Command::Config {
            command: ConfigCommand::Check { file, role },
        } => {
            return Ok(match trawl_config::check_file(&file, &env_map(), role) {
                Ok(_) => {
                    println!("{}: ok", file.display());
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("{}: {err}", file.display());
                    ExitCode::FAILURE
                }
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
