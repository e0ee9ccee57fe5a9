"""Assignment: which case a reader reads next, and the leases that hold a case for one reader while they read it."""
