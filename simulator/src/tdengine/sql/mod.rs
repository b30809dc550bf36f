//! The SQL subset the stand-in understands: lexer, statement tree, parser.

pub mod ast;
pub mod lexer;
pub mod parser;

pub use parser::parse;
