//! `lvt keygen`: writes a new signing key pair and prints what the collector's operator needs.

use std::path::PathBuf;

use clap::Args;

use super::common::{CliError, EXIT_OK};

/// The long help of `lvt keygen` (`--help`): what it does, its inputs and its exit codes.
pub const HELP: &str = "Write a new ed25519 key pair for signing result batches: \
PATH.key (the secret, mode 0600) and PATH.pub (the public key line). When PATH is a directory \
the files are lvt.key and lvt.pub inside it. Existing files are never overwritten.\n\n\
It prints the key id and the public key line to add to the collector's configuration, \
which is how the collector knows this agent.\n\n\
Exit codes: 0 written; 1 the files could not be written; 2 a file already exists.";

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Path prefix of the key files (PATH.key, PATH.pub), or a directory for lvt.key/lvt.pub.
    #[arg(long, value_name = "PATH", default_value = "./lvt")]
    pub out: PathBuf,
}

/// `lvt keygen`: writes the key pair and prints what the collector's operator needs.
pub fn run(args: &KeygenArgs) -> Result<u8, CliError> {
    use lvt_schema::sign::{self, KeyError};
    // A prefix in a directory that does not exist yet (`--out keys/agent1`) gets the directory.
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            CliError::Failed(anyhow::anyhow!("cannot create {}: {e}", parent.display()))
        })?;
    }
    // The key errors' messages already include their cause, so only the message is kept.
    let (secret, public) = sign::write_keypair(&args.out).map_err(|e| match e {
        KeyError::Exists { .. } => CliError::Usage(e.to_string()),
        other => CliError::Failed(anyhow::anyhow!("{other}")),
    })?;
    let verifying =
        sign::read_verifying_key(&public).map_err(|e| CliError::Failed(anyhow::anyhow!("{e}")))?;
    println!("secret key: {} (keep it private)", secret.display());
    println!("public key: {}", public.display());
    println!("key id:     {}", sign::key_id(&verifying));
    println!();
    println!("Add this line to the collector's agent keys:");
    print!("{}", sign::public_key_line(&verifying));
    Ok(EXIT_OK)
}
