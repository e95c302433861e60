//! Compiles `proto/licstore/v1/*.proto` with protox (no system `protoc`) and generates the
//! prost messages and tonic services.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: the build-script binary may be shared with other checkouts, so a path
    // fixed when it was compiled could name a checkout that no longer exists.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "licstore/v1/license.proto",
        "licstore/v1/licstore.proto",
        "licstore/v1/raft.proto",
    ];
    // Relative to this package: target directories are shared between checkouts (CI clones,
    // worktrees), and the build-script run is shared with them, so an absolute path would make
    // one checkout watch another checkout's files and reuse stale generated code.
    for f in &files {
        println!("cargo:rerun-if-changed=../../proto/{f}");
    }
    let descriptors = protox::compile(files, [&root])?;
    // The encoded descriptors, for gRPC server reflection (`grpcurl` without proto files).
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let encoded = prost::Message::encode_to_vec(&descriptors);
    std::fs::write(out_dir.join("licstore_descriptor.bin"), encoded)?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
