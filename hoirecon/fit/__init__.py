"""Per-clip fitting pieces as plain modules and functions; the Lightning loop is hoirecon.systems.fit."""
