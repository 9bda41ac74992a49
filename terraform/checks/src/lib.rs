//! Checks of the Terraform configuration; see the tests.
