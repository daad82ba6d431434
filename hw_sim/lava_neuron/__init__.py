"""Our Lava process and its models, alone in this package: Lava executes every .py file beside a process's
module when it searches for process models."""
