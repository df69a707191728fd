"""Security review checks (docs/security.md): every hand edit of what the daemon manages is put back."""
