"""Reader-facing pages: home, sign-up, sign-in, leaderboard (with booth display) and the reading page."""
