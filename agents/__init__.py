"""SB3 agents trained in the dream, judged in the real env."""
