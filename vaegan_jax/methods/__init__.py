"""Training methods: each module builds networks, a train state and a pure train step."""
