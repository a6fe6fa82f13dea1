//! The ELM layer over a whole sequence (in progress).
