//! Checks that keep the Terraform configuration under `terraform/` true to the
//! handlers' code: `handlers::manifest` (the Rust mirror of
//! `docs/contracts.md`) says which tables, environment variables, IAM actions
//! and routes each function needs; these checks read the HCL and compare.
//!
//! There is no Terraform binary on the build machines, so the configuration is
//! parsed with `hcl-rs`, and the composition module's locals and module
//! arguments are *evaluated* with placeholders standing for what only AWS
//! knows (module outputs become strings like `module.tables.connections_table_arn`).
//! The checks then compare real values (environment maps, IAM statements,
//! route maps) instead of grepping text.
//!
//! # Layout
//! - [`tree`]: the `.tf`/`.tfvars` files under `terraform/`, held in memory so
//!   tests can also check deliberately broken variants.
//! - [`eval`]: the evaluator for one module (variables, locals, module calls).
//! - [`checks`]: one function per check, by subject (files, functions,
//!   tables, routes, timeouts); each returns the problems it found as
//!   sentences saying what is wrong and where (empty = pass). Each compares
//!   the HCL with something it does not own (the manifest, protocol and AWS
//!   limits, the handlers' configuration rules); none repeats the HCL.
//!
//! - [`workflows`]: the GitHub workflows, parsed: permissions, pinning, the
//!   region's one place, remote state, the deploy order, the gate's token.
//!
//! The tests in `tests/` run every check against the real tree, and against
//! broken copies to prove each check catches what it claims to.

pub mod checks;
pub mod eval;
pub mod tree;
pub mod workflows;

pub use tree::Tree;
