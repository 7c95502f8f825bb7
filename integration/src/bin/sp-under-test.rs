//! `shardproxy` built inside the integration crate, so tests can run it as a real process
//! (`env!("CARGO_BIN_EXE_sp-under-test")`): cargo builds a package's own binaries for its tests,
//! never another package's. Same code, same command line as `shardproxy`.

use std::process::ExitCode;

fn main() -> ExitCode {
    proxy::cli::main()
}
