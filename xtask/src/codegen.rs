//! Generation of the protobuf code in `proto/src/gen/`.

use std::path::Path;

/// Generates the Rust code for `proto/proto/p2p.proto` into `out_dir`.
pub(crate) fn generate(root: &Path, out_dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = root.join("proto/proto");
    let files = protox::compile([proto_dir.join("p2p.proto")], [&proto_dir])?;
    let mut config = prost_build::Config::new();
    config.bytes(["."]);
    config.out_dir(out_dir);
    config.compile_fds(files)?;
    Ok(())
}

/// Regenerates the checked-in code.
pub(crate) fn write(root: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let out = root.join("proto/src/gen");
    std::fs::create_dir_all(&out)?;
    generate(root, &out)?;
    eprintln!("xtask: wrote {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails when `proto/src/gen/` is stale: run `cargo xtask codegen` and commit.
    #[test]
    fn generated_code_is_fresh() {
        let root = crate::workspace_root();
        let tmp = std::env::temp_dir().join(format!("p2p-codegen-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        generate(&root, &tmp).unwrap();
        let fresh = std::fs::read_to_string(tmp.join("p2p.v1.rs")).unwrap();
        let checked_in = std::fs::read_to_string(root.join("proto/src/gen/p2p.v1.rs")).unwrap();
        std::fs::remove_dir_all(&tmp).ok();
        assert!(
            fresh == checked_in,
            "proto/src/gen/p2p.v1.rs is stale: run `cargo xtask codegen` and commit the result"
        );
    }
}
