//! One module per subcommand.

pub mod append;
pub mod audit;
pub mod canon;
pub mod inspect;
pub mod keygen;
pub mod mcp;
pub mod policy;
pub mod tree;
pub mod verify;
pub mod whoami;
