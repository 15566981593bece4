"""Storage: one module per table group, the only writer of its tables; SQL lives here."""
