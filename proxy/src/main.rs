//! The `shardproxy` binary; the command line lives in [`proxy::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    proxy::cli::main()
}
