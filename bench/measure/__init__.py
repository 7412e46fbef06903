"""Small, pure measurement functions; only bench.run loops over cells."""
