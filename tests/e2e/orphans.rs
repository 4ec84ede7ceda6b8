//! No orphans: process trees die with their PID namespace, even after `kill -9` of the host.
