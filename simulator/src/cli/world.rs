//! `simulator world`: everything the bridge needs, in one process.

use clap::Args;

use super::Exit;

#[derive(Args, Debug, Clone)]
pub struct WorldArgs {}

pub async fn run(_args: WorldArgs) -> Result<(), Exit> {
    Err(Exit {
        code: 1,
        message: "world is not available yet".into(),
    })
}
