"""The long-running daemon: jobs, policy reloads, leader election, HTTP endpoints."""
