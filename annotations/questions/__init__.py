"""Questions a task asks per lesion and per case: versioned question sets and the coded presets."""
