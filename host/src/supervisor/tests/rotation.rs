//! Output rotation: generations, compression, reading across rotated files.

#[allow(unused_imports)]
use super::*;
