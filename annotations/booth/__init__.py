"""Booth readers: sign-up and sign-in with a PIN, roles, teams, the leaderboard and who may see which series."""
