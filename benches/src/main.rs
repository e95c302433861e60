//! `licbench`: load for licstore, etcd and the echo server (see the library's docs).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = licstore_bench::Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let licstore_bench::args::Command::EchoServer(a) = &cli.command {
        if a.threads > 0 {
            builder.worker_threads(a.threads);
        }
    }
    let runtime = builder.enable_all().build().expect("tokio runtime");
    match runtime.block_on(licstore_bench::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
