//! The `shardproxy` command line: run the proxy, run the demo, validate a config, call the admin
//! API. A library module so test binaries can run exactly the proxy's code in a real process.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "shardproxy", version, about = "A PostgreSQL sharding proxy")]
struct Cli {
    /// Config file (for `run` and the default command; `admin` reads its URL and token from it).
    #[arg(short = 'c', long = "config", env = "SHARDPROXY_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Log level filter (overridden by RUST_LOG).
    #[arg(long, default_value = "info", global = true)]
    log_level: String,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy with a config file (the default command).
    Run,
    /// Start local PostgreSQL servers, sample sharded data and the proxy: zero setup.
    Demo {
        /// Number of local PostgreSQL servers (shards).
        #[arg(long, default_value_t = 3)]
        shards: usize,
        /// Directory for the servers' data and the generated config.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Validate a config file and print a summary (exit 1 with every error otherwise).
    CheckConfig {
        /// The config file.
        file: PathBuf,
    },
    /// Client of the admin HTTP API: status, maps, moves, jobs, in-doubt transactions.
    Admin(crate::admin_cli::AdminArgs),
}

fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Parses the command line and runs the chosen command (the whole `shardproxy` binary).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_level, cli.log_format);
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig { file } => check_config(&file),
        Command::Run => {
            let path = cli
                .config
                .unwrap_or_else(|| PathBuf::from("config/shardproxy.toml"));
            let cfg = match config::Config::load(&path) {
                Ok(cfg) => cfg,
                Err(errors) => {
                    eprintln!("error: {errors}");
                    return ExitCode::FAILURE;
                }
            };
            let workers = cfg.proxy.workers;
            block_on(workers, run(cfg, path))
        }
        Command::Demo { shards, dir } => block_on(
            0,
            crate::demo::run(crate::demo::DemoOptions { shards, dir }),
        ),
        Command::Admin(args) => admin(args, cli.config),
    }
}

/// `shardproxy admin ...`: `config` (from `-c` / SHARDPROXY_CONFIG) supplies the URL and token
/// defaults.
fn admin(mut args: crate::admin_cli::AdminArgs, config: Option<PathBuf>) -> ExitCode {
    args.config = config;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(crate::admin_cli::run(
        args,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    ));
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match config::Config::load(file) {
        Ok(cfg) => {
            println!("{}: OK\n{}", file.display(), cfg.summary());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `fut` on a runtime of `workers` threads (0 = one per core, 1 = current-thread);
/// env SHARDPROXY_WORKERS overrides it.
fn block_on(
    workers: usize,
    fut: impl std::future::Future<Output = anyhow::Result<()>>,
) -> ExitCode {
    let workers = std::env::var("SHARDPROXY_WORKERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(workers);
    let built = match workers {
        0 => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    };
    let runtime = match built {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cfg: config::Config, path: PathBuf) -> anyhow::Result<()> {
    let mut proxy = crate::start(cfg, Some(path)).await?;
    let trigger = proxy.shutdown_trigger();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        let _ = trigger.send(true);
    });
    proxy.wait().await;
    tracing::info!("shardproxy stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
