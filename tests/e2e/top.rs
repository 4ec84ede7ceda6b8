//! `host top` driven in a real terminal (tmux).
