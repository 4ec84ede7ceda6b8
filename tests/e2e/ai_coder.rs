//! An AI-coder session moving through its statuses, seen in `host ps` and MCP.
