pub use protocol;
