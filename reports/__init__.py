"""HTML leaderboard: load -> tables -> plots -> render. Reads results and cards; never measures anything."""
