//! The `lvt` binary: sets up logging and the runtime, parses options, calls the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = lvt_tester::cmd::Cli::parse();
    lvt_tester::cmd::init_tracing(cli.log_json, &cli.command);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("lvt: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(lvt_tester::cmd::run(cli));
    // Background tasks (simulators, subscribers) must not keep a finished command alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    ExitCode::from(code)
}
