"""Developer tooling kept out of the runtime import path: local stack, demo traffic, benchmark."""
