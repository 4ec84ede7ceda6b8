//! Crash loops: backoff, stable-uptime reset and the circuit breaker, seen through the real binary.
