//! Output capture: lossless under a fast writer, long lines split, logs rotated and read back across generations.
